//! `exitwise bench-engine`: measures what a layer exit saves (see
//! [`exitwise::evaluation::engine_benchmark`]) and prints the table.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use exitwise::engine::{Model, ModelOptions};
use exitwise::evaluation::device_agreement::{DeviceAgreement, compare_with_cpu};
use exitwise::evaluation::engine_benchmark::{EngineBenchmark, run_engine_benchmark, variants};

use crate::cli::resolve::{load_model, resolve_model_path};
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
