//! `exitwise bench-engine`: shows that a layer exit saves wall-clock time in proportion to the
//! layers skipped, and that tapping every layer costs little.
//!
//! The same prompt is decoded with a stop after layer 0, 1, …, N-1, and by plain llama.cpp
//! (no callback, output head for the last token). Variants are interleaved inside each run, in
//! an order rotated from run to run, so drifts of the machine hit all of them alike.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, ensure};
use serde::Serialize;

use exitwise::engine::{Flow, LayerHidden, LayerObserver, Session, SessionOptions, Token};

use super::{EXIT_OK, GlobalOptions, load_model, output};

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

/// An original English text, repeated as needed; the benchmark measures compute, so the content
/// only has to be ordinary prose for the tokenizer.
const PROMPT_TEXT: &str = "The old harbour town wakes slowly in winter. Fishing boats leave before dawn, \
their lamps swinging over black water, and the bakery on the corner opens its shutters an hour later. \
By nine the market square is full: farmers sell apples and cabbages from wooden crates, a man repairs \
umbrellas under the clock tower, and children argue about football on their way to school. Visitors \
rarely come in this season. The hotels close their upper floors, the ferry runs twice a day instead of \
six times, and the museum of maritime history keeps only its ground floor heated. Yet the people who live \
here say that winter is the best time of the year. The light is low and golden, the streets are quiet, \
and there is time to talk. In the afternoon the fishermen return, sort their catch on the quay and sell \
the best of it directly to the restaurants. Gulls circle above them, hoping for scraps. When the sun sets \
behind the lighthouse, the cafes fill with workers drinking tea, and the radio reports the weather for \
the next morning: wind from the north, moderate seas, a chance of snow on the hills. ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    /// Every layer in one graph chunk, no layer looked at, the output head skipped: the cost
    /// of the layers alone, against which tapping is measured.
    LayersUntapped,
    StopAfter(usize),
}

impl Variant {
    fn label(self) -> String {
        match self {
            Variant::Plain => "plain llama.cpp".into(),
            Variant::LayersUntapped => "all layers, untapped".into(),
            Variant::StopAfter(layer) => format!("stop after layer {layer}"),
        }
    }
}

#[derive(Debug, Serialize)]
struct Row {
    variant: String,
    /// Layers computed (None for plain decoding: all, plus the output head).
    layers_computed: Option<usize>,
    median_ms: f64,
    min_ms: f64,
    ratio_to_plain: f64,
    samples_ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    architecture: String,
    layers: usize,
    quantization: Option<String>,
    tokens: usize,
    runs: u32,
    threads: usize,
    backends: &'static str,
    rows: Vec<Row>,
    fit_fixed_ms: f64,
    fit_per_layer_ms: f64,
    fit_r_squared: f64,
    tapping_overhead: f64,
    head_share: f64,
}

/// Runs `exitwise bench-engine`.
pub fn run(args: &BenchEngineArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let model = load_model(args.model.as_ref(), global)?;
    let layers = model.layers();
    let token_count = args.tokens as usize;
    let prompt = prompt_tokens(&model, token_count)?;
    let options = SessionOptions {
        context_tokens: token_count,
        threads: global.threads(),
        tap: true,
    };
    let mut tapped = Session::new(&model, &options).context("cannot create the tapped session")?;
    let mut plain = Session::new(
        &model,
        &SessionOptions {
            tap: false,
            ..options
        },
    )
    .context("cannot create the plain session")?;

    let variants: Vec<Variant> = [Variant::Plain, Variant::LayersUntapped]
        .into_iter()
        .chain((0..layers).map(Variant::StopAfter))
        .collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let bar = output::steps_bar(
        u64::from(args.runs + 1) * variants.len() as u64,
        "bench-engine",
    );
    // Run 0 warms up (graph allocation, page cache, CPU frequency) and is not recorded.
    for run in 0..=args.runs as usize {
        for offset in 0..variants.len() {
            let index = (offset + run) % variants.len();
            let milliseconds = time_variant(variants[index], &prompt, &mut tapped, &mut plain)?;
            if run > 0 {
                samples[index].push(milliseconds);
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let medians: Vec<f64> = samples.iter().map(|runs| median(runs)).collect();
    let plain_median = medians[0];
    let rows: Vec<Row> = variants
        .iter()
        .zip(&samples)
        .zip(&medians)
        .map(|((variant, runs), &median_ms)| Row {
            variant: variant.label(),
            layers_computed: match variant {
                Variant::Plain => None,
                Variant::LayersUntapped => Some(layers),
                Variant::StopAfter(layer) => Some(layer + 1),
            },
            median_ms,
            min_ms: runs.iter().copied().fold(f64::INFINITY, f64::min),
            ratio_to_plain: median_ms / plain_median,
            samples_ms: runs.clone(),
        })
        .collect();
    let points: Vec<(f64, f64)> = variants
        .iter()
        .zip(&rows)
        .filter_map(|(variant, row)| match variant {
            Variant::StopAfter(layer) => Some(((layer + 1) as f64, row.median_ms)),
            _ => None,
        })
        .collect();
    let (fit_fixed_ms, fit_per_layer_ms, fit_r_squared) = linear_fit(&points);
    let facts = model.facts();
    let report = Report {
        model: model.path().display().to_string(),
        architecture: facts.architecture.clone(),
        layers,
        quantization: facts.quantization.clone(),
        tokens: token_count,
        runs: args.runs,
        threads: tapped.threads(),
        backends: exitwise::engine::build_backends(),
        // Every layer tapped versus the same layers in one untapped chunk (both skip the head).
        tapping_overhead: medians[layers + 1] / medians[1] - 1.0,
        head_share: 1.0 - medians[1] / plain_median,
        rows,
        fit_fixed_ms,
        fit_per_layer_ms,
        fit_r_squared,
    };
    output::print(&render_table(&report))?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(EXIT_OK)
}

fn prompt_tokens(model: &exitwise::engine::Model, count: usize) -> anyhow::Result<Vec<Token>> {
    let mut tokens = model.document_start_tokens();
    let passage = model
        .tokenize(PROMPT_TEXT)
        .context("cannot tokenize the benchmark prompt")?;
    ensure!(
        !passage.is_empty(),
        "the benchmark prompt tokenized to nothing"
    );
    while tokens.len() < count {
        tokens.extend_from_slice(&passage);
    }
    tokens.truncate(count);
    Ok(tokens)
}

fn time_variant(
    variant: Variant,
    prompt: &[Token],
    tapped: &mut Session<'_>,
    plain: &mut Session<'_>,
) -> anyhow::Result<f64> {
    match variant {
        Variant::Plain => {
            plain.reset();
            let start = Instant::now();
            plain.feed_untapped(prompt).context("plain decode failed")?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        }
        Variant::LayersUntapped => {
            tapped.reset();
            let mut observer = LookAtNothing;
            let start = Instant::now();
            let outcome = tapped
                .feed(prompt, &mut observer)
                .context("untapped decode failed")?;
            let milliseconds = start.elapsed().as_secs_f64() * 1e3;
            ensure!(
                outcome.observed_layers == 0 && outcome.layers_computed == tapped.model().layers(),
                "the untapped decode observed {} layers and computed {}",
                outcome.observed_layers,
                outcome.layers_computed
            );
            Ok(milliseconds)
        }
        Variant::StopAfter(stop_layer) => {
            tapped.reset();
            let mut observed = 0usize;
            let mut observer = |hidden: &LayerHidden<'_>| {
                observed += 1;
                if hidden.layer() >= stop_layer {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            };
            let start = Instant::now();
            let outcome = tapped
                .feed(prompt, &mut observer)
                .context("tapped decode failed")?;
            let milliseconds = start.elapsed().as_secs_f64() * 1e3;
            ensure!(
                outcome.layers_computed == stop_layer + 1 && observed == stop_layer + 1,
                "a stop after layer {stop_layer} computed {} layers ({observed} observed)",
                outcome.layers_computed
            );
            Ok(milliseconds)
        }
    }
}

/// Wants no layer: the graph runs in one chunk up to the last layer and stops before the head.
struct LookAtNothing;

impl LayerObserver for LookAtNothing {
    fn on_layer(&mut self, _: &LayerHidden<'_>) -> Flow {
        Flow::Continue
    }

    fn wants_layer(&self, _: usize) -> bool {
        false
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.is_empty() {
        f64::NAN
    } else if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// Least-squares line `y = fixed + per_layer · x` and its R².
fn linear_fit(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let count = points.len() as f64;
    let mean_x = points.iter().map(|point| point.0).sum::<f64>() / count;
    let mean_y = points.iter().map(|point| point.1).sum::<f64>() / count;
    let covariance: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let slope = covariance / variance;
    let intercept = mean_y - slope * mean_x;
    let residual: f64 = points
        .iter()
        .map(|(x, y)| (y - (intercept + slope * x)).powi(2))
        .sum();
    let total: f64 = points.iter().map(|(_, y)| (y - mean_y).powi(2)).sum();
    (intercept, slope, 1.0 - residual / total)
}

fn render_table(report: &Report) -> String {
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
        report.layers - 1,
        report.tapping_overhead * 100.0
    );
    let _ = writeln!(
        text,
        "output head and logits (plain vs all layers untapped): {:.1}% of plain decoding",
        report.head_share * 100.0
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn linear_fit_recovers_a_line() {
        let points: Vec<(f64, f64)> = (1..=5).map(|x| (x as f64, 2.0 + 3.0 * x as f64)).collect();
        let (fixed, slope, r_squared) = linear_fit(&points);
        assert!((fixed - 2.0).abs() < 1e-9);
        assert!((slope - 3.0).abs() < 1e-9);
        assert!((r_squared - 1.0).abs() < 1e-12);
    }
}
