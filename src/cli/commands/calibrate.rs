//! `exitwise calibrate`: chooses a pack's exit settings again, on labelled dev data or on a
//! user's own unlabelled text, from cached features.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use exitwise::dataset::{Dataset, FieldNames};
use exitwise::exit::DEFAULT_BUDGETS;
use exitwise::exit::calibration::{CalibrationMethod, DEFAULT_DELTA, RuleSet};
use exitwise::features::extraction::FeatureSource;
use exitwise::pack::calibrate::{CalibrationOptions, calibrate_pack, document_grids};
use exitwise::pack::{AdapterPack, MANIFEST_FILE};

use crate::cli::feature_source::cached_features;
use crate::cli::options::LabelledFields;
use crate::cli::resolve::load_model_for_pack;
use crate::cli::tables::render_operating_points;
use crate::cli::{EXIT_OK, GlobalOptions, output};

/// How settings are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArgument {
    /// Fixed-sequence testing: the budget holds on new data like the calibration data with
    /// probability 1 − δ
    FixedSequence,
    /// The cheapest setting within the budget on the data (no guarantee; what packs of format
    /// 1 did; for comparisons)
    Point,
}

/// Which rules the settings may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RulesArgument {
    /// Every rule, the learned ones included
    All,
    /// Maximum probability, margin and accumulated margin only (for comparisons)
    Classic,
}

/// Arguments of `exitwise calibrate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A budget B then promises: with probability at least 1 − δ over the calibration documents, the accuracy lost against `full` on new documents from the same distribution is at most B points (without labels: bounded by the disagreement with `full`, which is at least the accuracy lost). A budget nothing can be certified for falls back to `full`'s setting."
)]
pub struct CalibrateArgs {
    /// The pack folder to calibrate
    #[arg(value_name = "PACK")]
    pack: PathBuf,

    /// Calibration data: JSON Lines, or CSV/TSV with a header row (with --unlabelled, a text
    /// field is all it needs)
    #[arg(long, value_name = "FILE")]
    dev: PathBuf,

    /// Ignore labels: bound the disagreement with `full` on this text, e.g. a user's own
    /// documents of another domain
    #[arg(long)]
    unlabelled: bool,

    /// Risk δ: the probability that a budget does not hold [default: 0.1]
    #[arg(long, value_name = "DELTA", value_parser = parse_delta)]
    delta: Option<f64>,

    /// Where to write the recalibrated pack [default: PACK itself, which needs --force]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Replace an existing pack at the output folder (PACK itself included)
    #[arg(long)]
    force: bool,

    /// How settings are chosen
    #[arg(long, value_enum, default_value = "fixed-sequence")]
    method: MethodArgument,

    /// Which rules the settings may use
    #[arg(long, value_enum, default_value = "all")]
    rules: RulesArgument,

    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    #[command(flatten)]
    fields: LabelledFields,

    /// Use only the first N calibration documents
    #[arg(long, value_name = "N")]
    max_dev_docs: Option<usize>,

    /// Folder of the feature cache [default: $EXITWISE_CACHE_DIR, else ~/.cache/exitwise]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

fn parse_delta(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(delta) if delta > 0.0 && delta < 1.0 => Ok(delta),
        _ => Err(format!(
            "`{text}` is not a risk between 0 and 1 (exclusive)"
        )),
    }
}

/// Runs `exitwise calibrate`.
pub fn run(args: &CalibrateArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let mut pack = AdapterPack::load_dir(&args.pack)
        .with_context(|| format!("cannot load the adapter pack `{}`", args.pack.display()))?;
    let out = args.out.clone().unwrap_or_else(|| args.pack.clone());
    if out.join(MANIFEST_FILE).exists() && !args.force {
        bail!(
            "refusing to replace the pack `{}`: pass --force, or --out DIR for a new pack",
            out.display()
        );
    }
    if !AdapterPack::may_write_into(&out) {
        bail!(
            "refusing to write the pack into `{}`: the folder exists and is not a pack",
            out.display()
        );
    }
    let mut fields = args.fields.names(&pack.manifest);
    if args.unlabelled {
        // Texts only: a label field, present or not, is not read as a label.
        fields = FieldNames {
            label: String::new(),
            ..fields
        };
    }
    let dev = Dataset::read(&args.dev, &fields, args.max_dev_docs)?;
    if !args.unlabelled {
        dev.check_labels_within(&pack.manifest.labels)?;
    }
    let (model, model_sha256) = load_model_for_pack(&pack, args.model.as_ref(), global, false)?;
    let source = FeatureSource {
        model: &model,
        model_sha256: &model_sha256,
        token_limit: pack.manifest.token_limit,
        cache_root: args.cache_dir.as_deref(),
        threads: global.threads(),
    };
    let (mut cache, _, _) = cached_features(&source, &dev, "features")?;
    let grids = document_grids(&pack, &model, &mut cache, &dev, !args.unlabelled)?;
    let options = CalibrationOptions {
        method: match args.method {
            MethodArgument::FixedSequence => CalibrationMethod::FixedSequence,
            MethodArgument::Point => CalibrationMethod::PointEstimate,
        },
        rules: match args.rules {
            RulesArgument::All => RuleSet::All,
            RulesArgument::Classic => RuleSet::Classic,
        },
        delta: args.delta.unwrap_or(DEFAULT_DELTA),
        labelled: !args.unlabelled,
        threads: global
            .threads()
            .unwrap_or_else(exitwise::engine::usable_cpus),
    };
    calibrate_pack(&mut pack, &grids, &dev, &DEFAULT_BUDGETS, &options)?;
    if out != args.pack {
        pack.manifest.name = out.file_name().map_or_else(
            || pack.manifest.name.clone(),
            |name| name.to_string_lossy().into_owned(),
        );
    }
    pack.save(&out)
        .with_context(|| format!("cannot save the pack to `{}`", out.display()))?;
    output::print(&render_operating_points(&pack.manifest))?;
    eprintln!("calibrated pack saved to `{}`", out.display());
    Ok(EXIT_OK)
}
