//! The oracle: per document, the cheapest cell whose head already gives the true class — the
//! limit of any exit rule with these heads.

use serde::Serialize;

use crate::exit::{Cell, DocumentGrid, argmax};

/// Where the oracle stops on one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleOutcome {
    /// The cheapest cell whose head gives the true class (or the first cell, when none does).
    pub cell: Cell,
    /// Whether some cell gives the true class.
    pub correct: bool,
    /// Token×layer operations to reach that cell: its sentence prefix up to its layer.
    pub token_layers: u64,
    /// Whether the layer-0 head gives the true class (at no cost; `cell` is then the last
    /// sentence at index 0).
    pub layer_zero: bool,
}

/// The oracle: the cheapest cell whose head already gives the true class, reached by computing
/// the cell's sentence prefix up to the cell's layer and nothing else. No exit rule with these
/// heads answers a document correctly for less. When no cell is right the oracle cannot be
/// right either, and stops at the first cell.
///
/// When the grid has the layer-0 head's probabilities and they give the true class, that is
/// the cheapest answer: no model layer runs.
pub fn oracle(grid: &DocumentGrid, class: usize) -> OracleOutcome {
    if let Some(probabilities) = &grid.layer_zero
        && argmax(probabilities) == class
    {
        return OracleOutcome {
            cell: Cell {
                sentence: grid.sentences().saturating_sub(1),
                layer: 0,
            },
            correct: true,
            token_layers: 0,
            layer_zero: true,
        };
    }
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
                    layer_zero: false,
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
        layer_zero: false,
    })
}

/// The oracle over a set of labelled documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OracleReport {
    /// Share of documents some cell answers correctly.
    pub accuracy: f64,
    /// Share of documents the layer-0 head answers correctly (the oracle's cheapest answer).
    pub layer_zero_share: f64,
    /// Mean token×layer operations to reach the oracle's cell.
    pub token_layers_mean: f64,
    /// Operations of whole documents at full depth over the oracle's.
    pub speedup_vs_full_ops: f64,
}

/// The oracle on every `(grid, true class)`, and its cost on each document, in order. `None`
/// without documents.
pub fn oracle_report(documents: &[(&DocumentGrid, usize)]) -> Option<(OracleReport, Vec<u64>)> {
    if documents.is_empty() {
        return None;
    }
    let mut costs = Vec::with_capacity(documents.len());
    let mut correct = 0usize;
    let mut layer_zero = 0usize;
    let mut full_operations = 0u64;
    for &(grid, class) in documents {
        let outcome = oracle(grid, class);
        correct += usize::from(outcome.correct);
        layer_zero += usize::from(outcome.layer_zero);
        costs.push(outcome.token_layers);
        full_operations += grid.sentence_tokens.iter().sum::<usize>() as u64 * grid.layers() as u64;
    }
    let total: u64 = costs.iter().sum();
    let count = documents.len() as f64;
    let report = OracleReport {
        accuracy: correct as f64 / count,
        layer_zero_share: layer_zero as f64 / count,
        token_layers_mean: total as f64 / count,
        speedup_vs_full_ops: full_operations as f64 / total.max(1) as f64,
    };
    Some((report, costs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::grid::two_class_grid as grid;
    use crate::exit::{ExitPolicy, ExitRule, PolicyConfig, PolicyKind};

    /// On a document `policy` answers correctly, the oracle never costs more.
    fn oracle_bounds(policy: &dyn ExitPolicy, grid: &DocumentGrid, class: usize) -> bool {
        let outcome = crate::exit::simulate(policy, grid);
        outcome.prediction != class || oracle(grid, class).token_layers <= outcome.token_layers
    }

    #[test]
    fn a_right_layer_zero_head_is_the_cheapest_answer() {
        let mut document = grid(&[10, 20], 4, |_, layer| if layer == 3 { 0.9 } else { 0.1 });
        document.layer_zero = Some(vec![0.2, 0.8]);
        let outcome = oracle(&document, 1);
        assert!(outcome.correct && outcome.layer_zero);
        assert_eq!(outcome.token_layers, 0);
        assert_eq!(
            outcome.cell,
            Cell {
                sentence: 1,
                layer: 0
            }
        );
        // Wrong at layer 0: the cheapest right cell, as without it.
        let outcome = oracle(&document, 0);
        assert!(!outcome.layer_zero);
        let (report, costs) = oracle_report(&[(&document, 1), (&document, 0)]).expect("report");
        assert_eq!(report.layer_zero_share, 0.5);
        assert_eq!(costs[0], 0);
    }

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
                    layer_zero_threshold: None,
                };
                let policy = config.policy(6, crate::exit::ExitModels::NONE);
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
    fn the_oracle_report_sums_a_hand_computed_set() {
        // Document 1 (class 1): right from (0, 1): 10·2 = 20 of 30·3 = 90 operations.
        // Document 2 (class 0): never right: the first cell, 5·1 = 5 of 15·3 = 45.
        let first = grid(&[10, 20], 3, |_, layer| if layer >= 1 { 0.9 } else { 0.1 });
        let second = grid(&[5, 10], 3, |_, _| 0.9);
        let (report, costs) = oracle_report(&[(&first, 1), (&second, 0)]).expect("documents");
        assert_eq!(costs, vec![20, 5]);
        assert_eq!(report.accuracy, 0.5);
        assert_eq!(report.token_layers_mean, 12.5);
        assert!((report.speedup_vs_full_ops - 135.0 / 25.0).abs() < 1e-12);
        assert_eq!(oracle_report(&[]), None);
    }
}
