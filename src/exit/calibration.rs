//! Exit calibration: simulate every policy over a grid of exit settings on dev documents and
//! keep, for each accuracy budget, the cheapest setting that stays within it.
//!
//! A budget of `b` points allows a dev accuracy down to the `full` policy's minus `b / 100`.
//! The search runs over probability grids; [`crate::pack`] builds them from cached features.
//! Cost is the share of the full document's token×layer operations that a setting computes,
//! summed over all dev documents (so long documents weigh what they cost).

use serde::{Deserialize, Serialize};

use super::policy::{DocumentGrid, simulate};
use super::setting::{Budget, ExitRule, NumberedSetting, PolicyConfig, PolicyKind};

/// Accuracy budgets (points below `full`) calibrated by default: 0, 0.5, 1, 2 and 4.
pub const DEFAULT_BUDGETS: [Budget; 5] = [
    Budget::from_hundredths(0),
    Budget::from_hundredths(50),
    Budget::from_hundredths(100),
    Budget::from_hundredths(200),
    Budget::from_hundredths(400),
];

/// One chosen exit setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatingPoint {
    /// Accuracy budget in points below `full` on dev.
    pub budget: Budget,
    /// The setting.
    pub config: PolicyConfig,
    /// Its dev accuracy.
    pub dev_accuracy: f64,
    /// Its dev cost as a share of full-depth, whole-document operations.
    pub dev_cost: f64,
}

/// An operating point as people read it (`/v1/info`): layers numbered from 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumberedOperatingPoint {
    /// The accuracy budget in points.
    pub budget: Budget,
    /// The setting.
    #[serde(flatten)]
    pub setting: NumberedSetting,
    /// Dev accuracy.
    pub dev_accuracy: f64,
    /// Dev cost as a share of full-depth, whole-document operations.
    pub dev_cost: f64,
}

impl OperatingPoint {
    /// This point with its layers numbered from 1.
    pub fn numbered(&self) -> NumberedOperatingPoint {
        NumberedOperatingPoint {
            budget: self.budget,
            setting: self.config.numbered(),
            dev_accuracy: self.dev_accuracy,
            dev_cost: self.dev_cost,
        }
    }
}

/// Measured quality and cost of one setting on a set of documents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Share of documents answered correctly.
    pub accuracy: f64,
    /// Token×layer operations computed over those of whole documents at full depth.
    pub cost: f64,
}

/// Every document's grid with its true class.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledGrid {
    /// Position of the document in its data file.
    pub index: usize,
    /// Probabilities per cell and tokens per sentence.
    pub grid: DocumentGrid,
    /// True class index.
    pub class: usize,
}

/// Accuracy and cost of `config` over `documents`.
pub fn measure(config: &PolicyConfig, documents: &[LabelledGrid]) -> Measurement {
    let Some(first) = documents.first() else {
        return Measurement {
            accuracy: 0.0,
            cost: 0.0,
        };
    };
    let policy = config.policy(first.grid.layers());
    let mut correct = 0usize;
    let mut computed = 0u64;
    let mut full = 0u64;
    for document in documents {
        let outcome = simulate(policy.as_ref(), &document.grid);
        correct += usize::from(outcome.prediction == document.class);
        computed += outcome.token_layers;
        full += outcome.full_token_layers;
    }
    Measurement {
        accuracy: correct as f64 / documents.len().max(1) as f64,
        cost: computed as f64 / full.max(1) as f64,
    }
}

/// Thresholds tried for a rule.
fn thresholds(rule: ExitRule) -> Vec<f32> {
    match rule {
        ExitRule::MaxProbability => vec![
            0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.97, 0.98, 0.99, 0.995,
            0.999,
        ],
        ExitRule::Margin => vec![
            0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995,
            0.999,
        ],
        ExitRule::AccumulatedMargin => vec![
            0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0,
            25.0, 30.0, 40.0,
        ],
    }
}

/// Pass sizes tried for the 2d policy: one sentence per pass (the paper's walk), or whole
/// sentences gathered up to this many tokens. On IMDB reviews single sentences are weak
/// evidence and small decodes cost more per token; longer passes exit less often mid-document
/// but each exit check sees more text.
pub const TWO_DIMENSIONAL_PASS_TOKENS: [usize; 5] = [0, 32, 64, 128, 256];

/// Every setting searched for `kind` on a model with `layers` layers.
pub fn candidate_configs(
    kind: PolicyKind,
    layers: usize,
    decision_layer: usize,
) -> Vec<PolicyConfig> {
    let base = PolicyConfig {
        kind,
        ..PolicyConfig::full(layers, decision_layer)
    };
    if kind == PolicyKind::Full {
        return vec![base];
    }
    let caps: Vec<usize> = if kind == PolicyKind::TwoDimensional {
        (0..layers).collect()
    } else {
        vec![layers - 1]
    };
    let pass_sizes: &[usize] = if kind == PolicyKind::TwoDimensional {
        &TWO_DIMENSIONAL_PASS_TOKENS
    } else {
        &[0]
    };
    let minimum_layers: Vec<usize> = if kind == PolicyKind::Sentence {
        vec![0]
    } else {
        let mut minimum = vec![0, layers / 6, layers / 3];
        minimum.dedup();
        minimum
    };
    let mut configs = Vec::new();
    for rule in [
        ExitRule::MaxProbability,
        ExitRule::Margin,
        ExitRule::AccumulatedMargin,
    ] {
        for threshold in thresholds(rule) {
            for &depth_cap in &caps {
                for &min_layer in minimum_layers
                    .iter()
                    .filter(|&&minimum| minimum <= depth_cap)
                {
                    for patience in [1, 2] {
                        for &min_pass_tokens in pass_sizes {
                            configs.push(PolicyConfig {
                                rule,
                                threshold,
                                min_layer,
                                patience,
                                depth_cap,
                                min_pass_tokens,
                                ..base
                            });
                        }
                    }
                }
            }
        }
    }
    configs
}

/// For each policy and budget, the cheapest setting whose dev accuracy stays within the budget
/// below the `full` policy's (ties: the more accurate). The `full` policy is reported once, with
/// budget 0.
pub fn calibrate(
    documents: &[LabelledGrid],
    layers: usize,
    decision_layer: usize,
    budgets: &[Budget],
) -> Vec<OperatingPoint> {
    let full_config = PolicyConfig::full(layers, decision_layer);
    let full = measure(&full_config, documents);
    let mut points = vec![OperatingPoint {
        budget: Budget::ZERO,
        config: full_config,
        dev_accuracy: full.accuracy,
        dev_cost: full.cost,
    }];
    for kind in [
        PolicyKind::Layer,
        PolicyKind::Sentence,
        PolicyKind::TwoDimensional,
    ] {
        let measured: Vec<(PolicyConfig, Measurement)> =
            candidate_configs(kind, layers, decision_layer)
                .into_iter()
                .map(|config| {
                    let measurement = measure(&config, documents);
                    (config, measurement)
                })
                .collect();
        for &budget in budgets {
            let floor = full.accuracy - budget.as_fraction() - 1e-12;
            let chosen = measured
                .iter()
                .filter(|(_, measurement)| measurement.accuracy >= floor)
                .min_by(|(_, left), (_, right)| {
                    left.cost
                        .total_cmp(&right.cost)
                        .then(right.accuracy.total_cmp(&left.accuracy))
                });
            if let Some((config, measurement)) = chosen {
                points.push(OperatingPoint {
                    budget,
                    config: *config,
                    dev_accuracy: measurement.accuracy,
                    dev_cost: measurement.cost,
                });
            }
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Documents whose cells get confident (and right) from `confident_from` layer on, wrong and
    /// unsure before.
    fn documents(count: usize, confident_from: usize) -> Vec<LabelledGrid> {
        (0..count)
            .map(|index| {
                let class = index % 2;
                let probabilities = (0..3)
                    .map(|_| {
                        (0..6)
                            .map(|layer| {
                                let right = if layer >= confident_from { 0.95 } else { 0.45 };
                                let mut row = vec![1.0 - right, 1.0 - right];
                                row[class] = right;
                                row
                            })
                            .collect()
                    })
                    .collect();
                LabelledGrid {
                    index,
                    grid: DocumentGrid {
                        probabilities,
                        sentence_tokens: vec![10, 10, 10],
                    },
                    class,
                }
            })
            .collect()
    }

    #[test]
    fn measure_counts_accuracy_and_cost_share() {
        let documents = documents(4, 2);
        let full = PolicyConfig::full(6, 5);
        assert_eq!(
            measure(&full, &documents),
            Measurement {
                accuracy: 1.0,
                cost: 1.0
            }
        );
        let eager = PolicyConfig {
            kind: PolicyKind::Layer,
            rule: ExitRule::MaxProbability,
            threshold: 0.4,
            ..full
        };
        // Exits at layer 0, where every answer is wrong: 1/6 of the operations.
        let measurement = measure(&eager, &documents);
        assert_eq!(measurement.accuracy, 0.0);
        assert!((measurement.cost - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn calibration_picks_the_cheapest_setting_within_each_budget() {
        let documents = documents(6, 2);
        let points = calibrate(&documents, 6, 5, &DEFAULT_BUDGETS);
        assert_eq!(points[0].config.kind, PolicyKind::Full);
        assert_eq!(points.len(), 1 + 3 * DEFAULT_BUDGETS.len());
        let two_dimensional: Vec<&OperatingPoint> = points
            .iter()
            .filter(|point| point.config.kind == PolicyKind::TwoDimensional)
            .collect();
        for point in &two_dimensional {
            assert_eq!(point.dev_accuracy, 1.0, "no accuracy to lose here");
            // Right answers start at layer 2 of the first sentence: 3 of 18 layer-sentence
            // steps is the cheapest exact setting.
            assert!((point.dev_cost - 3.0 / 18.0).abs() < 1e-12, "{point:?}");
            assert_eq!(point.config.depth_cap, 2);
        }
        let layer_point = points
            .iter()
            .find(|point| point.config.kind == PolicyKind::Layer)
            .expect("layer");
        assert!(
            (layer_point.dev_cost - 3.0 / 6.0).abs() < 1e-12,
            "{layer_point:?}"
        );
    }

    #[test]
    fn candidates_respect_the_policy_shape() {
        assert_eq!(candidate_configs(PolicyKind::Full, 18, 9).len(), 1);
        let layer = candidate_configs(PolicyKind::Layer, 18, 9);
        assert!(layer.iter().all(|config| config.depth_cap == 17));
        let two_dimensional = candidate_configs(PolicyKind::TwoDimensional, 18, 9);
        assert!(two_dimensional.iter().any(|config| config.depth_cap == 0));
        assert!(
            two_dimensional
                .iter()
                .all(|config| config.min_layer <= config.depth_cap)
        );
        let rules: std::collections::HashSet<_> = layer
            .iter()
            .map(|config| format!("{:?}", config.rule))
            .collect();
        assert_eq!(rules.len(), 3, "every policy may use every rule");
    }
}
