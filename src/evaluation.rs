//! The figures of `exitwise eval`: accuracy, macro-F1, exit statistics, wall-clock and operation
//! speed-ups per policy, the oracle, and the cost of the paper's staircase schedule. Pure Rust
//! over per-document results; the command measures, this module summarises.

use serde::Serialize;

use crate::policy::{Cell, DocumentGrid, ExitState, Outcome, PolicyConfig, argmax};

/// One policy's result on one document, with its time in every run.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentResult {
    /// True class.
    pub class: usize,
    /// Predicted class.
    pub predicted: usize,
    /// Layer whose head answered (0-based).
    pub exit_layer: usize,
    /// Sentences read.
    pub sentences_read: usize,
    /// Token×layer operations computed.
    pub token_layers: u64,
    /// Token×layer operations of the whole document at full depth.
    pub full_token_layers: u64,
    /// Milliseconds of each run.
    pub milliseconds: Vec<f64>,
}

/// A policy's figures over a data set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySummary {
    /// Share of documents answered correctly.
    pub accuracy: f64,
    /// Mean over classes of the per-class F1 score.
    pub macro_f1: f64,
    /// Documents per second (documents over the median, across runs, of the total time).
    pub docs_per_s: f64,
    /// Median over documents of the per-document median time (ms).
    pub ms_median: f64,
    /// 90th percentile over documents of the per-document median time (ms).
    pub ms_p90: f64,
    /// Mean 0-based layer of the answering head.
    pub mean_exit_layer: f64,
    /// Median 0-based layer of the answering head.
    pub median_exit_layer: f64,
    /// Mean number of sentences read.
    pub mean_sentences_read: f64,
    /// Median number of sentences read.
    pub median_sentences_read: f64,
    /// Mean token×layer operations per document.
    pub token_layers_mean: f64,
    /// Median total time of `full` over this policy's (runs' medians).
    pub speedup_vs_full_wall: Option<f64>,
    /// Median total time of `layer` over this policy's.
    pub speedup_vs_layer_wall: Option<f64>,
    /// Operations of `full` over this policy's.
    pub speedup_vs_full_ops: Option<f64>,
    /// Operations of `layer` over this policy's.
    pub speedup_vs_layer_ops: Option<f64>,
    /// Median, across runs, of the total seconds over all documents.
    pub total_seconds: f64,
    /// Total token×layer operations.
    pub token_layers_total: u64,
}

/// The median of `values` (mean of the middle two for an even count; 0 when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let count = sorted.len();
    match count {
        0 => 0.0,
        _ if count % 2 == 1 => sorted[count / 2],
        _ => (sorted[count / 2 - 1] + sorted[count / 2]) / 2.0,
    }
}

/// The `quantile` (0..=1) of `values` by linear interpolation between order statistics.
pub fn quantile(values: &[f64], quantile: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let position = quantile.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// Mean over classes of the F1 score; classes that occur neither as truth nor as prediction
/// are left out (they have no F1).
pub fn macro_f1(pairs: &[(usize, usize)], classes: usize) -> f64 {
    let mut scores = Vec::new();
    for class in 0..classes {
        let true_positive = pairs
            .iter()
            .filter(|&&(truth, predicted)| truth == class && predicted == class)
            .count();
        let false_positive = pairs
            .iter()
            .filter(|&&(truth, predicted)| truth != class && predicted == class)
            .count();
        let false_negative = pairs
            .iter()
            .filter(|&&(truth, predicted)| truth == class && predicted != class)
            .count();
        let denominator = 2 * true_positive + false_positive + false_negative;
        if denominator > 0 {
            scores.push(2.0 * true_positive as f64 / denominator as f64);
        }
    }
    if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    }
}

/// Summarises one policy's per-document results; `full` and `layer` are the references of the
/// speed-ups (absent when those policies were not run).
pub fn summarise(
    results: &[DocumentResult],
    classes: usize,
    full: Option<&[DocumentResult]>,
    layer: Option<&[DocumentResult]>,
) -> PolicySummary {
    let count = results.len().max(1) as f64;
    let pairs: Vec<(usize, usize)> = results
        .iter()
        .map(|result| (result.class, result.predicted))
        .collect();
    let correct = pairs
        .iter()
        .filter(|(truth, predicted)| truth == predicted)
        .count();
    let per_document: Vec<f64> = results
        .iter()
        .map(|result| median(&result.milliseconds))
        .collect();
    let seconds = total_seconds(results);
    let token_layers_total: u64 = results.iter().map(|result| result.token_layers).sum();
    let exit_layers: Vec<f64> = results
        .iter()
        .map(|result| result.exit_layer as f64)
        .collect();
    let sentences: Vec<f64> = results
        .iter()
        .map(|result| result.sentences_read as f64)
        .collect();
    let ratio = |reference: Option<&[DocumentResult]>,
                 measure: &dyn Fn(&[DocumentResult]) -> f64| {
        reference.map(|reference| {
            let own = measure(results);
            if own > 0.0 {
                measure(reference) / own
            } else {
                f64::INFINITY
            }
        })
    };
    let operations =
        |set: &[DocumentResult]| set.iter().map(|result| result.token_layers as f64).sum();
    PolicySummary {
        accuracy: correct as f64 / count,
        macro_f1: macro_f1(&pairs, classes),
        docs_per_s: if seconds > 0.0 {
            results.len() as f64 / seconds
        } else {
            0.0
        },
        ms_median: median(&per_document),
        ms_p90: quantile(&per_document, 0.9),
        mean_exit_layer: exit_layers.iter().sum::<f64>() / count,
        median_exit_layer: median(&exit_layers),
        mean_sentences_read: sentences.iter().sum::<f64>() / count,
        median_sentences_read: median(&sentences),
        token_layers_mean: token_layers_total as f64 / count,
        speedup_vs_full_wall: ratio(full, &total_seconds),
        speedup_vs_layer_wall: ratio(layer, &total_seconds),
        speedup_vs_full_ops: ratio(full, &operations),
        speedup_vs_layer_ops: ratio(layer, &operations),
        total_seconds: seconds,
        token_layers_total,
    }
}

/// The median, across runs, of the total time over all documents (seconds).
fn total_seconds(results: &[DocumentResult]) -> f64 {
    let runs = results
        .iter()
        .map(|result| result.milliseconds.len())
        .max()
        .unwrap_or(0);
    let totals: Vec<f64> = (0..runs)
        .map(|run| {
            results
                .iter()
                .filter_map(|result| result.milliseconds.get(run))
                .sum::<f64>()
                / 1000.0
        })
        .collect();
    median(&totals)
}

/// Where the oracle stops on one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleOutcome {
    /// The cheapest cell whose head gives the true class (or the first cell, when none does).
    pub cell: Cell,
    /// Whether some cell gives the true class.
    pub correct: bool,
    /// Token×layer operations to reach that cell: its sentence prefix up to its layer.
    pub token_layers: u64,
}

/// The oracle: the cheapest cell whose head already gives the true class, reached by computing
/// the cell's sentence prefix up to the cell's layer and nothing else. No exit rule with these
/// heads answers a document correctly for less. When no cell is right the oracle cannot be
/// right either, and stops at the first cell.
pub fn oracle(grid: &DocumentGrid, class: usize) -> OracleOutcome {
    let mut best: Option<OracleOutcome> = None;
    let mut tokens_through = 0u64;
    for (sentence, cells) in grid.probabilities.iter().enumerate() {
        tokens_through += grid.sentence_tokens[sentence] as u64;
        for (layer, probabilities) in cells.iter().enumerate() {
            let cost = tokens_through * (layer as u64 + 1);
            if argmax(probabilities) == class && best.is_none_or(|best| cost < best.token_layers) {
                best = Some(OracleOutcome {
                    cell: Cell { sentence, layer },
                    correct: true,
                    token_layers: cost,
                });
            }
        }
    }
    best.unwrap_or(OracleOutcome {
        cell: Cell {
            sentence: 0,
            layer: 0,
        },
        correct: false,
        token_layers: grid.sentence_tokens.first().copied().unwrap_or(0) as u64,
    })
}

/// Cost of the paper's schedule: sentence prefixes with the depth opened progressively, `step`
/// more layers with each new sentence (up to `config.depth_cap`), and every (token, layer) cell
/// computed exactly once: when a deeper layer opens, the earlier sentences get only that layer.
/// Cells are visited prefix by prefix, layers `0..=opened depth` within each, with the exit rule
/// of `config`. (llama.cpp cannot compute a layer for earlier tokens alone; this costs what an
/// engine that can would compute.)
pub fn simulate_staircase(config: &PolicyConfig, step: usize, grid: &DocumentGrid) -> Outcome {
    let layers = grid.layers();
    let sentences = grid.sentences();
    assert!(
        sentences > 0 && layers > 0,
        "an empty grid cannot be classified"
    );
    let cap = config.depth_cap.min(layers - 1);
    let step = step.max(1);
    let total_tokens: u64 = grid
        .sentence_tokens
        .iter()
        .map(|&tokens| tokens as u64)
        .sum();
    let mut state = ExitState::new(config);
    let mut tokens_before = 0u64;
    // Deepest layer the earlier sentences are computed to (`None`: none yet).
    let mut earlier_depth: Option<usize> = None;
    let mut last_answer = Cell {
        sentence: 0,
        layer: 0,
    };
    let mut computed = 0u64;
    for sentence in 0..sentences {
        let depth = ((sentence + 1) * step - 1).min(cap);
        let tokens = grid.sentence_tokens[sentence] as u64;
        let earlier_layers = earlier_depth.map_or(0, |depth| depth as u64 + 1);
        for layer in 0..=depth {
            let cell = Cell { sentence, layer };
            last_answer = cell;
            if state.observe(cell, &grid.probabilities[sentence][layer]) {
                let newly_opened = (layer as u64 + 1).saturating_sub(earlier_layers);
                let cost = computed + tokens_before * newly_opened + tokens * (layer as u64 + 1);
                return Outcome {
                    answer: cell,
                    exited: true,
                    prediction: argmax(&grid.probabilities[sentence][layer]),
                    sentences_read: sentence + 1,
                    token_layers: cost,
                    full_token_layers: total_tokens * layers as u64,
                };
            }
        }
        let newly_opened = (depth as u64 + 1).saturating_sub(earlier_layers);
        computed += tokens_before * newly_opened + tokens * (depth as u64 + 1);
        tokens_before += tokens;
        earlier_depth = Some(earlier_depth.map_or(depth, |earlier| earlier.max(depth)));
    }
    Outcome {
        answer: last_answer,
        exited: false,
        prediction: argmax(&grid.probabilities[last_answer.sentence][last_answer.layer]),
        sentences_read: sentences,
        token_layers: computed,
        full_token_layers: total_tokens * layers as u64,
    }
}

/// Accuracy and mean relative cost (operations over full-depth operations) of a simulated
/// schedule over labelled grids.
pub fn schedule_measurement(
    grids: &[(&DocumentGrid, usize)],
    walk: &dyn Fn(&DocumentGrid) -> Outcome,
) -> (f64, f64) {
    let mut correct = 0usize;
    let mut computed = 0u64;
    let mut full = 0u64;
    for &(grid, class) in grids {
        let outcome = walk(grid);
        correct += usize::from(outcome.prediction == class);
        computed += outcome.token_layers;
        full += outcome.full_token_layers;
    }
    (
        correct as f64 / grids.len().max(1) as f64,
        computed as f64 / full.max(1) as f64,
    )
}

/// The cheapest setting of a schedule among `candidates` whose accuracy reaches `target`
/// (ties: the more accurate): `(candidate index, accuracy, relative cost)`.
pub fn cheapest_at_accuracy(measured: &[(f64, f64)], target: f64) -> Option<(usize, f64, f64)> {
    measured
        .iter()
        .enumerate()
        .filter(|(_, (accuracy, _))| *accuracy >= target - 1e-12)
        .min_by(|(_, left), (_, right)| left.1.total_cmp(&right.1).then(right.0.total_cmp(&left.0)))
        .map(|(index, &(accuracy, cost))| (index, accuracy, cost))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ExitPolicy, ExitRule, PolicyKind};

    /// On a document `policy` answers correctly, the oracle never costs more.
    fn oracle_bounds(policy: &dyn ExitPolicy, grid: &DocumentGrid, class: usize) -> bool {
        let outcome = crate::policy::simulate(policy, grid);
        outcome.prediction != class || oracle(grid, class).token_layers <= outcome.token_layers
    }

    fn result(
        class: usize,
        predicted: usize,
        token_layers: u64,
        milliseconds: &[f64],
    ) -> DocumentResult {
        DocumentResult {
            class,
            predicted,
            exit_layer: 2,
            sentences_read: 1,
            token_layers,
            full_token_layers: 100,
            milliseconds: milliseconds.to_vec(),
        }
    }

    #[test]
    fn medians_and_quantiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.9), 4.6);
        assert_eq!(quantile(&[7.0], 0.9), 7.0);
    }

    #[test]
    fn macro_f1_matches_a_hand_computation() {
        // Class 0: TP 2, FP 1, FN 0 → F1 0.8; class 1: TP 1, FP 0, FN 1 → F1 2/3.
        let pairs = [(0, 0), (0, 0), (1, 0), (1, 1)];
        assert!((macro_f1(&pairs, 2) - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // A class never seen is left out.
        assert!((macro_f1(&pairs, 3) - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn summaries_count_accuracy_time_and_speedups() {
        let full = vec![
            result(0, 0, 100, &[10.0, 12.0]),
            result(1, 1, 100, &[10.0, 8.0]),
        ];
        let fast = vec![result(0, 0, 25, &[2.0, 3.0]), result(1, 0, 50, &[5.0, 4.0])];
        let summary = summarise(&fast, 2, Some(&full), None);
        assert_eq!(summary.accuracy, 0.5);
        // Run totals 7 ms and 7 ms → 0.007 s; full: 20 and 20 ms.
        assert!((summary.total_seconds - 0.007).abs() < 1e-12);
        assert!((summary.docs_per_s - 2.0 / 0.007).abs() < 1e-6);
        assert!((summary.speedup_vs_full_wall.expect("full") - 20.0 / 7.0).abs() < 1e-9);
        assert!((summary.speedup_vs_full_ops.expect("full") - 200.0 / 75.0).abs() < 1e-12);
        assert_eq!(summary.speedup_vs_layer_wall, None);
        // Per-document medians 2.5 and 4.5.
        assert_eq!(summary.ms_median, 3.5);
        assert_eq!(summary.token_layers_mean, 37.5);
    }

    use crate::policy::two_class_grid as grid;

    #[test]
    fn the_oracle_takes_the_cheapest_correct_cell() {
        // Class 1 is right at (0, 3) (cost 10·4 = 40) and at (1, 1) (cost 30·2 = 60).
        let document = grid(&[10, 20], 4, |sentence, layer| {
            if (sentence, layer) == (0, 3) || (sentence, layer) == (1, 1) {
                0.9
            } else {
                0.1
            }
        });
        let outcome = oracle(&document, 1);
        assert!(outcome.correct);
        assert_eq!(
            outcome.cell,
            Cell {
                sentence: 0,
                layer: 3
            }
        );
        assert_eq!(outcome.token_layers, 40);
        let never = oracle(&document, 0);
        assert_eq!(
            never.cell,
            Cell {
                sentence: 0,
                layer: 0
            }
        );
        let wrong_everywhere = grid(&[10, 20], 4, |_, _| 0.1);
        assert!(!oracle(&wrong_everywhere, 1).correct);
    }

    #[test]
    fn the_oracle_never_costs_more_than_a_correct_policy() {
        let configs = [
            (PolicyKind::Full, ExitRule::MaxProbability, 1.0),
            (PolicyKind::Layer, ExitRule::MaxProbability, 0.7),
            (PolicyKind::Sentence, ExitRule::Margin, 0.3),
            (PolicyKind::TwoDimensional, ExitRule::AccumulatedMargin, 1.0),
        ];
        for seed in 0..50u64 {
            // Pseudo-random grids.
            let document = grid(
                &[3 + (seed % 5) as usize, 7, 2, 11],
                6,
                |sentence, layer| {
                    let mixed = (seed * 31 + sentence as u64 * 17 + layer as u64 * 7) % 97;
                    mixed as f32 / 97.0
                },
            );
            for (kind, rule, threshold) in configs {
                let config = PolicyConfig {
                    kind,
                    rule,
                    threshold,
                    min_layer: 0,
                    patience: 1,
                    depth_cap: 3,
                    decision_layer: 4,
                    min_pass_tokens: 0,
                };
                let policy = config.policy(6);
                for class in 0..2 {
                    assert!(
                        oracle_bounds(policy.as_ref(), &document, class),
                        "{kind:?} seed {seed}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_staircase_computes_each_cell_once() {
        // Never confident: step 1, cap 5, 3 sentences of 10 tokens on 6 layers. Depths 0, 1, 2:
        // sentence 0 ends at depth 2 (3 layers), sentence 1 at 2 (3), sentence 2 at 2 (3).
        let document = grid(&[10, 10, 10], 6, |_, _| 0.5);
        let config = PolicyConfig {
            kind: PolicyKind::TwoDimensional,
            rule: ExitRule::MaxProbability,
            threshold: 0.99,
            min_layer: 0,
            patience: 1,
            depth_cap: 5,
            decision_layer: 5,
            min_pass_tokens: 0,
        };
        let outcome = simulate_staircase(&config, 1, &document);
        assert!(!outcome.exited);
        assert_eq!(outcome.token_layers, 30 * 3);
        assert_eq!(
            outcome.answer,
            Cell {
                sentence: 2,
                layer: 2
            }
        );
        // Confident at (1, 1): sentence 0 was computed to layer 0, opening layer 1 costs its 10
        // tokens once more; sentence 1 costs 10·2.
        let confident = grid(&[10, 10, 10], 6, |sentence, layer| {
            if (sentence, layer) == (1, 1) {
                0.995
            } else {
                0.5
            }
        });
        let outcome = simulate_staircase(&config, 1, &confident);
        assert!(outcome.exited);
        assert_eq!(
            outcome.answer,
            Cell {
                sentence: 1,
                layer: 1
            }
        );
        assert_eq!(outcome.token_layers, 10 + 10 + 20);
        // A step as deep as the model is the 2d walk without a cap.
        let two_dimensional = crate::policy::simulate(config.policy(6).as_ref(), &confident);
        let staircase = simulate_staircase(&config, 6, &confident);
        assert_eq!(staircase.token_layers, two_dimensional.token_layers);
        assert_eq!(staircase.answer, two_dimensional.answer);
    }

    #[test]
    fn cheapest_at_accuracy_picks_the_lowest_cost_that_reaches_the_target() {
        let measured = [(0.90, 0.5), (0.88, 0.2), (0.91, 0.3), (0.91, 0.3)];
        assert_eq!(cheapest_at_accuracy(&measured, 0.9), Some((2, 0.91, 0.3)));
        assert_eq!(cheapest_at_accuracy(&measured, 0.95), None);
    }
}
