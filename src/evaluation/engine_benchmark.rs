//! The engine benchmark (`exitwise bench-engine`): that a layer exit saves wall-clock time in
//! proportion to the layers skipped, and that tapping every layer costs little.
//!
//! The same prompt is decoded with a stop after layer 1, 2, …, N, and by plain llama.cpp (no
//! callback, output head for the last token). Variants are interleaved inside each run, in an
//! order rotated from run to run, so drifts of the machine hit all of them alike.

use std::time::Instant;

use serde::Serialize;

use super::statistics::median;
use crate::engine::{
    EngineError, Flow, LayerHidden, LayerObserver, Model, Session, SessionOptions, Token,
};

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

/// What is decoded in one timed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Plain llama.cpp: no callback, every layer and the output head.
    Plain,
    /// Every layer in one graph chunk, no layer looked at, the output head skipped: the cost
    /// of the layers alone, against which tapping is measured.
    LayersUntapped,
    /// Every layer tapped up to this layer index (from 0), then a stop.
    StopAfter(usize),
}

impl Variant {
    /// The row's label; layers are numbered from 1.
    pub fn label(self) -> String {
        match self {
            Variant::Plain => "plain llama.cpp".into(),
            Variant::LayersUntapped => "all layers, untapped".into(),
            Variant::StopAfter(layer) => format!("stop after layer {}", layer + 1),
        }
    }
}

/// One variant's times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// [`Variant::label`].
    pub variant: String,
    /// Layers computed (None for plain decoding: all, plus the output head).
    pub layers_computed: Option<usize>,
    /// Median over the runs.
    pub median_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Median over plain decoding's median.
    pub ratio_to_plain: f64,
    /// Every run's time.
    pub samples_ms: Vec<f64>,
}

/// The benchmark's findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineBenchmark {
    /// The model file.
    pub model: String,
    /// Its architecture.
    pub architecture: String,
    /// Its layers.
    pub layers: usize,
    /// Its quantization.
    pub quantization: Option<String>,
    /// Prompt tokens, decoded in one batch.
    pub tokens: usize,
    /// Timed runs per variant.
    pub runs: u32,
    /// llama.cpp threads.
    pub threads: usize,
    /// The back ends built in ([`crate::engine::build_description`]).
    pub backends: String,
    /// Where the layers ran ([`Model::placement`]).
    pub placement: String,
    /// One row per variant: plain, untapped, then a stop after each layer.
    pub rows: Vec<Row>,
    /// Least-squares fit of the stops' medians: fixed milliseconds…
    pub fit_fixed_ms: f64,
    /// …plus milliseconds per layer computed…
    pub fit_per_layer_ms: f64,
    /// …and its R².
    pub fit_r_squared: f64,
    /// Every layer tapped against the same layers untapped, minus 1.
    pub tapping_overhead: f64,
    /// Share of plain decoding spent on the output head.
    pub head_share: f64,
}

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    /// The engine failed.
    #[error("{action}: {cause}")]
    Engine {
        /// What was being done.
        action: &'static str,
        /// The engine's error.
        cause: EngineError,
    },
    /// A decode did not compute what the variant asks for.
    #[error("{0}")]
    Check(String),
}

pub(crate) fn engine_error(action: &'static str) -> impl FnOnce(EngineError) -> BenchmarkError {
    move |cause| BenchmarkError::Engine { action, cause }
}

/// Decodes a prompt of `tokens` tokens in every variant, `runs` times after one warm-up run,
/// interleaved; `progress()` is called after each decode.
pub fn run_engine_benchmark(
    model: &Model,
    tokens: usize,
    runs: u32,
    threads: Option<usize>,
    progress: &dyn Fn(),
) -> Result<EngineBenchmark, BenchmarkError> {
    let layers = model.layers();
    let prompt = prompt_tokens(model, tokens)?;
    let options = tapped_session_options(tokens, threads);
    let mut tapped =
        Session::new(model, &options).map_err(engine_error("cannot create the tapped session"))?;
    let mut plain = Session::new(
        model,
        &SessionOptions {
            poll: None,
            tap: false,
            ..options
        },
    )
    .map_err(engine_error("cannot create the plain session"))?;

    let variants = variants(layers);
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    // Run 0 warms up (graph allocation, page cache, CPU frequency) and is not recorded.
    for run in 0..=runs as usize {
        for offset in 0..variants.len() {
            let index = (offset + run) % variants.len();
            let milliseconds = time_variant(variants[index], &prompt, &mut tapped, &mut plain)?;
            if run > 0 {
                samples[index].push(milliseconds);
            }
            progress();
        }
    }

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
    Ok(EngineBenchmark {
        model: model.path().display().to_string(),
        architecture: facts.architecture.clone(),
        layers,
        quantization: facts.quantization.clone(),
        tokens,
        runs,
        threads: tapped.threads(),
        backends: crate::engine::build_description(),
        placement: model.placement(),
        // Every layer tapped versus the same layers in one untapped chunk (both skip the head).
        tapping_overhead: medians[layers + 1] / medians[1] - 1.0,
        head_share: 1.0 - medians[1] / plain_median,
        rows,
        fit_fixed_ms,
        fit_per_layer_ms,
        fit_r_squared,
    })
}

/// The variants of a model with `layers` layers, in table order.
pub fn variants(layers: usize) -> Vec<Variant> {
    [Variant::Plain, Variant::LayersUntapped]
        .into_iter()
        .chain((0..layers).map(Variant::StopAfter))
        .collect()
}

/// A tapped session for one prompt of `tokens` tokens on `threads` threads (`None`: as other
/// processes leave free), at the default polling level.
pub(crate) fn tapped_session_options(tokens: usize, threads: Option<usize>) -> SessionOptions {
    SessionOptions {
        context_tokens: tokens,
        threads,
        poll: None,
        sessions_in_process: 1,
        tap: true,
    }
}

pub(crate) fn prompt_tokens(model: &Model, count: usize) -> Result<Vec<Token>, BenchmarkError> {
    let mut tokens = model.document_start_tokens();
    let passage = model
        .tokenize(PROMPT_TEXT)
        .map_err(engine_error("cannot tokenize the benchmark prompt"))?;
    if passage.is_empty() {
        return Err(BenchmarkError::Check(
            "the benchmark prompt tokenized to nothing".into(),
        ));
    }
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
) -> Result<f64, BenchmarkError> {
    match variant {
        Variant::Plain => {
            plain.reset();
            let start = Instant::now();
            plain
                .feed_untapped(prompt)
                .map_err(engine_error("plain decode failed"))?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        }
        Variant::LayersUntapped => {
            tapped.reset();
            let mut observer = LookAtNothing;
            let start = Instant::now();
            let outcome = tapped
                .feed(prompt, &mut observer)
                .map_err(engine_error("untapped decode failed"))?;
            let milliseconds = start.elapsed().as_secs_f64() * 1e3;
            if outcome.observed_layers != 0 || outcome.layers_computed != tapped.model().layers() {
                return Err(BenchmarkError::Check(format!(
                    "the untapped decode observed {} layers and computed {}",
                    outcome.observed_layers, outcome.layers_computed
                )));
            }
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
                .map_err(engine_error("tapped decode failed"))?;
            let milliseconds = start.elapsed().as_secs_f64() * 1e3;
            if outcome.layers_computed != stop_layer + 1 || observed != stop_layer + 1 {
                return Err(BenchmarkError::Check(format!(
                    "a stop after layer {} computed {} layers ({observed} observed)",
                    stop_layer + 1,
                    outcome.layers_computed
                )));
            }
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

/// Least-squares line `y = fixed + per_layer · x` and its R².
pub fn linear_fit(points: &[(f64, f64)]) -> (f64, f64, f64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_fit_recovers_a_line() {
        let points: Vec<(f64, f64)> = (1..=5).map(|x| (x as f64, 2.0 + 3.0 * x as f64)).collect();
        let (fixed, slope, r_squared) = linear_fit(&points);
        assert!((fixed - 2.0).abs() < 1e-9);
        assert!((slope - 3.0).abs() < 1e-9);
        assert!((r_squared - 1.0).abs() < 1e-12);
    }

    #[test]
    fn variants_number_layers_from_one() {
        let variants = variants(3);
        assert_eq!(variants.len(), 5);
        assert_eq!(variants[2].label(), "stop after layer 1");
        assert_eq!(variants[4].label(), "stop after layer 3");
    }
}
