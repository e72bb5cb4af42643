//! `exitwise eval`: accuracy and wall-clock of the exit policies side by side, interleaved per
//! document in one process, with the oracle and the paper's staircase schedule from cached
//! features. This file holds the arguments; [`single`] measures one model, [`matrix`] several
//! (`--models`), and [`render`] prints their tables. The measuring and the reports are the
//! library's ([`exitwise::evaluation`]).

mod matrix;
mod render;
mod simulated;
mod single;

use std::path::PathBuf;

use exitwise::dataset::Dataset;
use exitwise::exit::{Budget, PolicyKind};
use exitwise::pack::AdapterPack;
use exitwise::text::DocumentError;

use crate::cli::GlobalOptions;
use crate::cli::options::{LabelledFields, PolicyArgument};

/// Arguments of `exitwise eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME", conflicts_with = "models")]
    model: Option<PathBuf>,

    /// Several model files (e.g. quantizations of one model), comma-separated: prints a matrix
    /// of models × policies from one interleaved run, speed-ups against the first model's
    /// `full`, and the product check (quantization speed-up × exit speed-up against both
    /// together). Put the reference (e.g. F16) first. All use the same pack.
    #[arg(long, value_name = "A.gguf,B.gguf,…", value_delimiter = ',', num_args = 1..)]
    models: Vec<PathBuf>,

    /// Adapter pack: a folder, or the name of a pack in `adapters/` [default: the compiled-in
    /// pack]
    #[arg(long, value_name = "NAME|DIR")]
    adapters: Option<PathBuf>,

    /// Labelled data: JSON Lines, or CSV/TSV with a header row
    #[arg(long, value_name = "FILE")]
    data: PathBuf,

    #[command(flatten)]
    fields: LabelledFields,

    /// Policies to run, comma-separated, in this order for the first document (the order is
    /// rotated by one for each next document)
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "full,layer,sentence,2d"
    )]
    policies: Vec<PolicyArgument>,

    /// Accuracy budget of the calibrated settings (points below `full` on dev)
    #[arg(long, default_value = "1", value_name = "POINTS")]
    budget: Budget,

    /// Use only the first N documents
    #[arg(long, value_name = "N", alias = "limit")]
    max_docs: Option<usize>,

    /// Most tokens read per document [default: the pack's]
    ///
    /// Above the pack's limit, long documents are read further than the pack was calibrated
    /// for (its settings were chosen on documents cut at its limit); the KV cache grows with
    /// the limit. Pair with --no-simulation for documents of many thousand tokens: the oracle
    /// and the staircase extract every sentence prefix's features.
    #[arg(long, value_name = "N", conflicts_with = "simulated")]
    token_limit: Option<usize>,

    /// Runs over the documents; times are the medians across runs
    #[arg(long, default_value_t = 3, value_name = "R", value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,

    /// Also write every figure, the per-document results and the machine's facts as JSON to
    /// this file
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,

    /// Also write what was fed to the model to this file: per document and setting, the passes
    /// (token ranges) and the layer each stopped after, with the tokens' hash
    ///
    /// `exitwise bench-engine --replay FILE --data DATA` feeds the same again and times it, on
    /// another machine or on a model of the same shapes and vocabulary with other weights (the
    /// cost of a computation does not depend on the weights). JSON Lines, from the first run.
    #[arg(long, value_name = "OUT", conflicts_with_all = ["models", "simulated"])]
    trace: Option<PathBuf>,

    /// Draw accuracy against wall-clock speed-up over every calibrated operating point of each
    /// policy, with the oracle; SVG or PNG by the file's extension (times every operating point,
    /// not only --budget)
    #[arg(long, value_name = "OUT.svg|OUT.png")]
    plot: Option<PathBuf>,

    /// Folder of the feature cache (the oracle and the staircase use cached features of the
    /// data, extracted on first use) [default: $EXITWISE_CACHE_DIR, else ~/.cache/exitwise]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Skip the oracle and the staircase simulation (they need the data's features at every
    /// cell: a full extraction pass the first time)
    #[arg(long, conflicts_with = "simulated")]
    no_simulation: bool,

    /// Time nothing: simulate every calibrated operating point of the pack on the data's
    /// cached features and say, per policy and budget, whether the budget held (accuracy lost
    /// against `full`), with the operation speed-ups
    #[arg(long, conflicts_with_all = ["models", "plot", "runs"])]
    simulated: bool,
}

/// Runs `exitwise eval`.
pub fn run(args: &EvalArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    if let Some(path) = &args.plot {
        crate::cli::plot::check_path(path)?;
    }
    if args.simulated {
        simulated::run(args, global)
    } else if args.models.is_empty() {
        single::run(args, global)
    } else {
        matrix::run(args, global)
    }
}

/// The labelled data of `--data`, its labels checked against the pack's.
fn labelled_data(args: &EvalArgs, pack: &AdapterPack) -> anyhow::Result<Dataset> {
    let manifest = &pack.manifest;
    let fields = args.fields.names(manifest);
    let data = Dataset::read(&args.data, &fields, args.max_docs)?;
    data.check_labels_within(&manifest.labels)?;
    Ok(data)
}

/// Most tokens read per document: `--token-limit`, else the pack's.
fn token_limit(args: &EvalArgs, pack: &AdapterPack) -> usize {
    args.token_limit.unwrap_or(pack.manifest.token_limit)
}

/// `--policies` without repetitions, in the order given.
fn chosen_kinds(args: &EvalArgs) -> Vec<PolicyKind> {
    let mut kinds: Vec<PolicyKind> = Vec::new();
    for policy in &args.policies {
        let kind = PolicyKind::from(*policy);
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

/// Says which documents were left out and why; refuses to go on without any.
fn warn_left_out(
    left_out: &[(String, DocumentError)],
    kept: usize,
    args: &EvalArgs,
) -> anyhow::Result<()> {
    for (id, error) in left_out {
        eprintln!("warning: document `{id}` left out: {error}");
    }
    anyhow::ensure!(
        kept > 0,
        "no document of `{}` has text to classify",
        args.data.display()
    );
    Ok(())
}

/// Writes `report` as JSON to `--json`, when given, and says so on stderr.
fn write_report(args: &EvalArgs, report: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        crate::cli::output::write_json(path, report)?;
        eprintln!("report written to `{}`", path.display());
    }
    Ok(())
}
