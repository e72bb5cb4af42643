//! `exitwise bench-engine`: measures what a layer exit saves (see
//! [`exitwise::evaluation::engine_benchmark`]) and prints the table.

use std::fmt::Write as _;
use std::path::PathBuf;

use exitwise::evaluation::engine_benchmark::{EngineBenchmark, run_engine_benchmark, variants};

use crate::cli::resolve::load_model;
use crate::cli::{EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise bench-engine`.
#[derive(Debug, clap::Args)]
pub struct BenchEngineArgs {
    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Prompt length in tokens (one batch)
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(2..=32768))]
    tokens: u32,

    /// Timed runs per variant; the table shows medians
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,

    /// Also write every measurement as JSON to this file
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Runs `exitwise bench-engine`.
pub fn run(args: &BenchEngineArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let model = load_model(args.model.as_ref(), global)?;
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
        output::write_json(path, &report)?;
    }
    Ok(EXIT_OK)
}

fn render_table(report: &EngineBenchmark) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "bench-engine: {} ({}, {} layers, {}), {} tokens in one batch, median of {} runs, {} threads, {}",
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
        report.backends
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
