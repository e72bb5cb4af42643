//! `exitwise bench-engine`: measures what a layer exit saves (see
//! [`exitwise::evaluation::engine_benchmark`]) and prints the table; with `--replay`, times the
//! feeding an `eval --trace` recorded ([`exitwise::evaluation::trace`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use exitwise::classifier::Classifier;
use exitwise::dataset::{Dataset, FieldNames};
use exitwise::engine::{Model, ModelOptions};
use exitwise::evaluation::device_agreement::{DeviceAgreement, compare_with_cpu};
use exitwise::evaluation::engine_benchmark::{EngineBenchmark, run_engine_benchmark, variants};
use exitwise::evaluation::runner::measuring_session;
use exitwise::evaluation::trace::{
    ReplayReport, Trace, TracedModel, prepare_traced_documents, replay_trace,
};
use exitwise::locations::file_name;

use crate::cli::resolve::{load_model, load_pack, resolve_model_path};
use crate::cli::{EXIT_FAILURES, EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise bench-engine`.
#[derive(Debug, clap::Args)]
pub struct BenchEngineArgs {
    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Prompt length in tokens (one batch, so at most the 2048 tokens one decode takes)
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(2..=2048))]
    tokens: u32,

    /// Timed runs per variant; the table shows medians
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,

    /// First check a GPU back end against the CPU: decode the prompt with the model as loaded
    /// (offloaded, see `--gpu-layers`) and on the CPU alone, and compare every layer's hidden
    /// states
    ///
    /// Prints each layer's cosines (the layer as a whole, its last token, its worst token); the
    /// exit code is 1 when a whole layer's or a last token's is below 0.999 (the timings still
    /// run). Needs a GPU device (`exitwise inspect` lists them).
    #[arg(long)]
    compare_cpu: bool,

    /// Also write every measurement as JSON to this file
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Time the workload of a trace (`eval --trace`) instead of one prompt: every document fed
    /// in the same passes, to the same layers, with the same heads, per setting
    ///
    /// The walks end where the recording's did, whatever the heads answer, so the model need
    /// only have the recording model's shapes and vocabulary (a copy with random weights, for
    /// one). Prints each setting's documents per second and its speed-up over `full`, in time
    /// (measured here) and in operations (recorded); --runs times each document that often
    /// (medians), interleaved as `eval` does. Needs --data.
    #[arg(
        long,
        value_name = "TRACE",
        requires = "data",
        conflicts_with_all = ["compare_cpu", "tokens"]
    )]
    replay: Option<PathBuf>,

    /// With --replay: the data the trace was recorded on (or a file with its documents at the
    /// same positions); each document must tokenize as in the trace
    #[arg(long, value_name = "FILE", requires = "replay")]
    data: Option<PathBuf>,

    /// With --replay: the adapter pack whose heads are asked [default: the trace's]
    #[arg(long, value_name = "NAME|DIR", requires = "replay")]
    adapters: Option<PathBuf>,

    /// With --replay: only the trace's first N documents
    #[arg(long, value_name = "N", requires = "replay")]
    max_docs: Option<usize>,
}

/// The JSON file's content.
#[derive(serde::Serialize)]
struct BenchEngineJson<'report> {
    #[serde(flatten)]
    benchmark: &'report EngineBenchmark,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement_with_cpu: Option<&'report DeviceAgreement>,
}

/// Runs `exitwise bench-engine`.
pub fn run(args: &BenchEngineArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    if let (Some(trace), Some(data)) = (&args.replay, &args.data) {
        return replay(args, global, trace, data);
    }
    let model = load_model(args.model.as_ref(), global)?;
    let agreement = if args.compare_cpu {
        let agreement = compare_devices(&model, args, global)?;
        output::print(&render_agreement(&agreement))?;
        Some(agreement)
    } else {
        None
    };
    let decodes = u64::from(args.runs + 1) * variants(model.layers()).len() as u64;
    let bar = output::steps_bar(decodes, "bench-engine");
    let report = run_engine_benchmark(
        &model,
        args.tokens as usize,
        args.runs,
        global.threads(),
        &|| bar.inc(1),
    )?;
    bar.finish_and_clear();
    output::print(&render_table(&report))?;
    if let Some(path) = &args.json {
        output::write_json(
            path,
            &BenchEngineJson {
                benchmark: &report,
                agreement_with_cpu: agreement.as_ref(),
            },
        )?;
    }
    Ok(match agreement {
        Some(agreement) if !agreement.agrees => EXIT_FAILURES,
        _ => EXIT_OK,
    })
}

/// `bench-engine --replay TRACE --data DATA`.
fn replay(
    args: &BenchEngineArgs,
    global: &GlobalOptions,
    trace_path: &Path,
    data_path: &Path,
) -> anyhow::Result<u8> {
    let mut trace = Trace::read(trace_path)?;
    if let Some(count) = args.max_docs {
        trace.documents.truncate(count);
    }
    let header = &trace.header;
    let model = load_model(args.model.as_ref(), global)?;
    trace.check_model(model.facts())?;
    let pack = load_pack(Some(
        args.adapters
            .as_ref()
            .unwrap_or(&PathBuf::from(&header.pack)),
    ))?;
    anyhow::ensure!(
        pack.manifest.name == header.pack,
        "the trace was recorded with the pack `{}`, and this one is `{}`",
        header.pack,
        pack.manifest.name
    );
    // The model's weights may differ from the pack's (a replay ignores the heads' answers);
    // its shapes may not.
    pack.check_model(model.facts(), None, false)?;
    let fields = FieldNames {
        text: header.data.text_field.clone(),
        label: String::new(),
        ..FieldNames::default()
    };
    let data = Dataset::read(data_path, &fields, None)?;
    let documents = prepare_traced_documents(&model, &trace, &data)?;
    anyhow::ensure!(
        !documents.is_empty(),
        "the trace `{}` has no document",
        trace_path.display()
    );
    let session = measuring_session(&model, header.token_limit, global.threads())?;
    let threads = session.threads();
    let first = header
        .settings
        .first()
        .with_context(|| format!("the trace `{}` has no setting", trace_path.display()))?;
    let mut classifier = Classifier::new(session, &pack, first.config);
    let runs = args.runs as usize;
    let bar = output::documents_bar((documents.len() * runs) as u64, "replay");
    let report = replay_trace(&mut classifier, &trace, &documents, runs, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let placement = model.placement();
    output::print(&render_replay(&trace, &report, &model, threads, &placement))?;
    if let Some(path) = &args.json {
        output::write_json(
            path,
            &ReplayJson {
                trace: trace_path.display().to_string(),
                recorded_with: &header.model,
                model: model.path().display().to_string(),
                placement,
                threads,
                replay: &report,
            },
        )?;
    }
    Ok(EXIT_OK)
}

/// The JSON file of a replay.
#[derive(serde::Serialize)]
struct ReplayJson<'report> {
    trace: String,
    recorded_with: &'report TracedModel,
    model: String,
    placement: String,
    threads: usize,
    #[serde(flatten)]
    replay: &'report ReplayReport,
}

fn render_replay(
    trace: &Trace,
    report: &ReplayReport,
    model: &Model,
    threads: usize,
    placement: &str,
) -> String {
    let header = &trace.header;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "replay of {} documents of `{}` recorded with `{}` (pack {}), fed to `{}`: {placement}, {threads} threads, median of {} runs",
        report.documents,
        header.data.file,
        header.model.file,
        header.pack,
        file_name(model.path()),
        report.runs
    );
    let _ = writeln!(
        text,
        "{:<14} {:>12} {:>13} {:>15} {:>13} {:>15}",
        "setting", "documents/s", "ms/document", "token×layers", "× full, time", "× full, ops"
    );
    let ratio =
        |value: Option<f64>| value.map_or_else(|| "-".to_string(), |value| format!("{value:.2}"));
    for setting in &report.settings {
        let _ = writeln!(
            text,
            "{:<14} {:>12.2} {:>13.1} {:>15} {:>13} {:>15}",
            setting.name,
            setting.documents_per_second,
            setting.seconds * 1000.0 / report.documents.max(1) as f64,
            setting.token_layers,
            ratio(setting.speed_up),
            ratio(setting.operations_speed_up)
        );
    }
    text
}

/// Loads the same model file on the CPU alone and compares it with `model` (offloaded).
fn compare_devices(
    model: &Model,
    args: &BenchEngineArgs,
    global: &GlobalOptions,
) -> anyhow::Result<DeviceAgreement> {
    let backends = exitwise::engine::backend_report()?;
    if backends.gpu_devices.is_empty() {
        anyhow::bail!(
            "--compare-cpu needs a GPU device and there is none: {}",
            backends.why_no_gpu()
        );
    }
    if global.model_options().gpu_layers == Some(0) {
        anyhow::bail!(
            "--compare-cpu compares an offloaded model with the CPU: --gpu-layers 0 offloads nothing"
        );
    }
    let path = resolve_model_path(args.model.as_ref(), global)?;
    let cpu_model = Model::load(
        &path,
        &ModelOptions {
            gpu_layers: Some(0),
        },
    )
    .with_context(|| format!("cannot load the model `{}` on the CPU", path.display()))?;
    compare_with_cpu(model, &cpu_model, args.tokens as usize, global.threads())
        .context("cannot compare the GPU with the CPU")
}

fn render_agreement(agreement: &DeviceAgreement) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "GPU against CPU: {} tokens in one batch, every layer's hidden states (cosine)",
        agreement.tokens
    );
    let _ = writeln!(
        text,
        "{:<7} {:>12} {:>12} {:>12}",
        "layer", "whole layer", "last token", "worst token"
    );
    for layer in &agreement.layers {
        let _ = writeln!(
            text,
            "{:<7} {:>12.6} {:>12.6} {:>12.6}",
            layer.layer, layer.layer_cosine, layer.last_token_cosine, layer.worst_token_cosine
        );
    }
    let _ = writeln!(
        text,
        "{}: lowest cosine of a whole layer or a last token {:.6} (threshold {})\n",
        if agreement.agrees {
            "agree"
        } else {
            "DISAGREE"
        },
        agreement.worst_cosine,
        agreement.threshold
    );
    text
}

fn render_table(report: &EngineBenchmark) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "bench-engine: {} ({}, {} layers, {}), {} tokens in one batch, median of {} runs, {} threads, build {}, {}",
        report.model,
        report.architecture,
        report.layers,
        report
            .quantization
            .as_deref()
            .unwrap_or("unknown quantization"),
        report.tokens,
        report.runs,
        report.threads,
        report.backends,
        report.placement
    );
    let _ = writeln!(
        text,
        "{:<22} {:>10} {:>10} {:>9} {:>11}",
        "variant", "median ms", "min ms", "× plain", "layers / N"
    );
    for row in &report.rows {
        let share = row.layers_computed.map_or_else(
            || "all + head".to_string(),
            |layers| format!("{:.3}", layers as f64 / report.layers as f64),
        );
        let _ = writeln!(
            text,
            "{:<22} {:>10.1} {:>10.1} {:>9.3} {:>11}",
            row.variant, row.median_ms, row.min_ms, row.ratio_to_plain, share
        );
    }
    let _ = writeln!(
        text,
        "fit over the stops: {:.1} ms + {:.2} ms per layer (R² = {:.4})",
        report.fit_fixed_ms, report.fit_per_layer_ms, report.fit_r_squared
    );
    let _ = writeln!(
        text,
        "tapping overhead (stop after layer {}, every layer tapped, vs all layers untapped): {:+.1}%",
        report.layers,
        report.tapping_overhead * 100.0
    );
    let _ = writeln!(
        text,
        "output head and logits (plain vs all layers untapped): {:.1}% of plain decoding",
        report.head_share * 100.0
    );
    text
}
