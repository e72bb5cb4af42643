//! The server's metrics, rendered in the Prometheus text exposition format (version 0.0.4).
//! Counters and histograms behind one mutex: a handful of updates per request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::classifier::Classification;

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: Vec<f64>) -> Self {
        let counts = vec![0; bounds.len()];
        Histogram {
            bounds,
            counts,
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, text: &mut String, name: &str, help: &str) {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(text, "{name}_sum {}", self.sum);
        let _ = writeln!(text, "{name}_count {}", self.count);
    }
}

#[derive(Debug)]
struct State {
    requests: BTreeMap<(String, u16), u64>,
    latency: Histogram,
    exit_layer: Histogram,
    exit_sentence: Histogram,
    documents: u64,
    layer_zero_exits: u64,
    token_layers: u64,
    full_token_layers: u64,
    abandoned: u64,
}

/// Everything `/metrics` reports (the queue depth is read live from the worker).
#[derive(Debug)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    /// Empty metrics for a model with `layers` layers.
    pub fn new(layers: usize) -> Self {
        Metrics {
            state: Mutex::new(State {
                requests: BTreeMap::new(),
                latency: Histogram::new(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                // Layer 0 is the layer-0 head, which answers before any model layer.
                exit_layer: Histogram::new((0..=layers).map(|layer| layer as f64).collect()),
                exit_sentence: Histogram::new(vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0, 64.0]),
                documents: 0,
                layer_zero_exits: 0,
                token_layers: 0,
                full_token_layers: 0,
                abandoned: 0,
            }),
        }
    }

    fn with<T>(&self, update: impl FnOnce(&mut State) -> T) -> T {
        // A panic while holding the lock cannot leave the counters inconsistent in a way that
        // matters; keep counting.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        update(&mut state)
    }

    /// One answered request to `route` (the matched route, never the raw path, so the label
    /// set stays small).
    pub fn record_request(&self, route: &str, status: u16, seconds: f64) {
        self.with(|state| {
            *state
                .requests
                .entry((route.to_string(), status))
                .or_default() += 1;
            state.latency.observe(seconds);
        });
    }

    /// One classified document.
    pub fn record_document(&self, result: &Classification) {
        self.with(|state| {
            state.documents += 1;
            state.layer_zero_exits += u64::from(result.exit.layer_zero);
            state.exit_layer.observe(result.exit.layer_number() as f64);
            state
                .exit_sentence
                .observe(result.exit.sentences_read() as f64);
            state.token_layers += result.token_layers;
            state.full_token_layers += result.full_token_layers;
        });
    }

    /// A queued job whose client had gone before the model reached it.
    pub fn record_abandoned(&self) {
        self.with(|state| state.abandoned += 1);
    }

    /// The Prometheus text.
    pub fn render(&self, queue_depth: usize, queue_capacity: usize, ready: bool) -> String {
        self.with(|state| {
            let mut text = String::new();
            let _ = writeln!(
                text,
                "# HELP exitwise_requests_total HTTP requests answered, by route and status code"
            );
            let _ = writeln!(text, "# TYPE exitwise_requests_total counter");
            for ((route, status), count) in &state.requests {
                let _ = writeln!(
                    text,
                    "exitwise_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
            state.latency.render(
                &mut text,
                "exitwise_request_duration_seconds",
                "Time from request to answer",
            );
            let gauge = |text: &mut String, name: &str, help: &str, value: String| {
                let _ = writeln!(text, "# HELP {name} {help}");
                let _ = writeln!(text, "# TYPE {name} gauge");
                let _ = writeln!(text, "{name} {value}");
            };
            let counter = |text: &mut String, name: &str, help: &str, value: u64| {
                let _ = writeln!(text, "# HELP {name} {help}");
                let _ = writeln!(text, "# TYPE {name} counter");
                let _ = writeln!(text, "{name} {value}");
            };
            gauge(
                &mut text,
                "exitwise_queue_depth",
                "Jobs waiting for the model",
                queue_depth.to_string(),
            );
            gauge(
                &mut text,
                "exitwise_queue_capacity",
                "Jobs that may wait before requests are refused with 429",
                queue_capacity.to_string(),
            );
            gauge(
                &mut text,
                "exitwise_ready",
                "1 when the model and pack are loaded",
                u8::from(ready).to_string(),
            );
            counter(
                &mut text,
                "exitwise_documents_total",
                "Documents classified",
                state.documents,
            );
            counter(
                &mut text,
                "exitwise_layer_zero_exits_total",
                "Documents the layer-0 head answered, before any model layer ran",
                state.layer_zero_exits,
            );
            counter(
                &mut text,
                "exitwise_abandoned_jobs_total",
                "Queued requests whose client left before the model reached them",
                state.abandoned,
            );
            counter(
                &mut text,
                "exitwise_token_layers_computed_total",
                "Token×layer operations computed",
                state.token_layers,
            );
            counter(
                &mut text,
                "exitwise_token_layers_saved_total",
                "Token×layer operations early exit did not compute (whole documents at full depth minus computed)",
                state.full_token_layers.saturating_sub(state.token_layers),
            );
            state.exit_layer.render(
                &mut text,
                "exitwise_exit_layer",
                "Layer (1-based) whose head answered",
            );
            state.exit_sentence.render(
                &mut text,
                "exitwise_exit_sentence",
                "Sentences read before the answer",
            );
            text
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_render_in_prometheus_form() {
        let metrics = Metrics::new(3);
        metrics.record_request("/v1/classify", 200, 0.02);
        metrics.record_request("/v1/classify", 200, 0.3);
        metrics.record_request("/v1/classify", 429, 0.001);
        let text = metrics.render(2, 8, true);
        assert!(
            text.contains("exitwise_requests_total{route=\"/v1/classify\",status=\"200\"} 2\n")
        );
        assert!(
            text.contains("exitwise_requests_total{route=\"/v1/classify\",status=\"429\"} 1\n")
        );
        assert!(text.contains("exitwise_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("exitwise_request_duration_seconds_bucket{le=\"0.025\"} 2\n"));
        assert!(text.contains("exitwise_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("exitwise_request_duration_seconds_count 3\n"));
        assert!(text.contains("exitwise_queue_depth 2\n"));
        assert!(text.contains("exitwise_exit_layer_bucket{le=\"3\"} 0\n"));
        // Every line is a comment or `name{labels} value`.
        for line in text.lines() {
            assert!(
                line.starts_with("# ")
                    || line
                        .rsplit_once(' ')
                        .is_some_and(|(_, value)| value.parse::<f64>().is_ok()),
                "{line}"
            );
        }
    }

    #[test]
    fn layer_zero_exits_are_counted_at_layer_zero() {
        use crate::classifier::ExitReport;
        use crate::exit::{Cell, PolicyKind};
        let metrics = Metrics::new(3);
        let answer = |layer_zero: bool, layer: usize| Classification {
            class: 0,
            probabilities: vec![0.9, 0.1],
            exit: ExitReport {
                cell: Cell { sentence: 1, layer },
                sentences: 2,
                layers: 3,
                policy: PolicyKind::TwoDimensional,
                exited: true,
                layer_zero,
            },
            tokens_read: if layer_zero { 0 } else { 10 },
            tokens_total: 10,
            truncated: false,
            token_layers: if layer_zero { 0 } else { 20 },
            full_token_layers: 30,
        };
        metrics.record_document(&answer(true, 0));
        metrics.record_document(&answer(false, 1));
        let text = metrics.render(0, 8, true);
        assert!(
            text.contains("exitwise_layer_zero_exits_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("exitwise_exit_layer_bucket{le=\"0\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("exitwise_exit_layer_bucket{le=\"2\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("exitwise_documents_total 2\n"), "{text}");
    }
}
