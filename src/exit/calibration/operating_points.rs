//! Choosing each policy's setting for each accuracy budget: by fixed-sequence testing with an
//! upper confidence bound of the loss ([`calibrate_fixed_sequence`]), or by point estimates
//! ([`calibrate_point_estimates`], kept to compare against).

use serde::{Deserialize, Serialize};

use super::measurement::{CalibrationSet, LossKind, Measurement, measure, measure_all};
use super::sequences::{ExitSequence, RuleSet, candidate_configs, layer_zero_path};
use crate::exit::bound::clopper_pearson_upper;
use crate::exit::setting::{Budget, NumberedSetting, PolicyConfig, PolicyKind};

/// Accuracy budgets (points below `full`) calibrated by default: 0, 0.5, 1, 2 and 4.
pub const DEFAULT_BUDGETS: [Budget; 5] = [
    Budget::from_hundredths(0),
    Budget::from_hundredths(50),
    Budget::from_hundredths(100),
    Budget::from_hundredths(200),
    Budget::from_hundredths(400),
];

/// The risk δ a budget may be broken with, by default.
pub const DEFAULT_DELTA: f64 = 0.1;

/// How a pack's operating points were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// The cheapest setting whose dev accuracy is within the budget (no guarantee).
    PointEstimate,
    /// Fixed-sequence testing with an upper confidence bound of the loss.
    FixedSequence,
}

impl CalibrationMethod {
    /// The name used in packs and reports.
    pub fn name(self) -> &'static str {
        match self {
            CalibrationMethod::PointEstimate => "point_estimate",
            CalibrationMethod::FixedSequence => "fixed_sequence",
        }
    }
}

/// One chosen exit setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatingPoint {
    /// Accuracy budget in points below `full`.
    pub budget: Budget,
    /// The policy this point is for; absent in packs of format 1, where it is the setting's.
    /// (When nothing could be certified it is `full`'s setting.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyKind>,
    /// The setting.
    pub config: PolicyConfig,
    /// Its accuracy on the calibration documents (absent without labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_accuracy: Option<f64>,
    /// Its cost on them, as a share of full-depth, whole-document operations.
    pub dev_cost: f64,
    /// Its loss rate on them (see [`LossKind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_loss: Option<f64>,
    /// The upper confidence bound of its loss rate at the calibration's risk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_bound: Option<f64>,
}

impl OperatingPoint {
    /// The policy this point is for.
    pub fn policy(&self) -> PolicyKind {
        self.policy.unwrap_or(self.config.kind)
    }

    /// Whether the point falls back to `full`'s setting for another policy (nothing certified;
    /// a `full` walk behind a layer-0 exit is not a fallback).
    pub fn is_fallback(&self) -> bool {
        self.policy() != self.config.kind && self.config.layer_zero_threshold.is_none()
    }

    /// This point with its layers numbered from 1.
    pub fn numbered(&self) -> NumberedOperatingPoint {
        NumberedOperatingPoint {
            policy: self.policy().name(),
            budget: self.budget,
            setting: self.config.numbered(),
            dev_accuracy: self.dev_accuracy,
            dev_cost: self.dev_cost,
            dev_loss: self.dev_loss,
            loss_bound: self.loss_bound,
        }
    }
}

/// An operating point as people read it (`/v1/info`): layers numbered from 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumberedOperatingPoint {
    /// The policy the point is for (its setting is `full`'s when nothing was certified).
    pub policy: &'static str,
    /// The accuracy budget in points.
    pub budget: Budget,
    /// The setting.
    pub setting: NumberedSetting,
    /// Accuracy on the calibration documents.
    pub dev_accuracy: Option<f64>,
    /// Cost as a share of full-depth, whole-document operations.
    pub dev_cost: f64,
    /// Loss rate on the calibration documents.
    pub dev_loss: Option<f64>,
    /// Its upper confidence bound.
    pub loss_bound: Option<f64>,
}

/// The `full` operating point of a set (budget 0, no loss by definition).
fn full_point(set: &CalibrationSet<'_>, decision_layer: usize, loss: LossKind) -> OperatingPoint {
    let config = PolicyConfig::full(set.layers, decision_layer);
    let measured = measure(&config, set, loss);
    OperatingPoint {
        budget: Budget::ZERO,
        policy: None,
        config,
        dev_accuracy: measured.accuracy,
        dev_cost: measured.cost,
        dev_loss: Some(0.0),
        loss_bound: Some(0.0),
    }
}

/// For each policy and budget, the cheapest setting whose accuracy on the (labelled) documents
/// stays within the budget below the `full` policy's (ties: the more accurate); the `full`
/// policy is reported once, with budget 0. No guarantee: this is what packs of format 1 did.
pub fn calibrate_point_estimates(
    set: &CalibrationSet<'_>,
    decision_layer: usize,
    budgets: &[Budget],
    rules: RuleSet,
    threads: usize,
) -> Vec<OperatingPoint> {
    let full = full_point(set, decision_layer, LossKind::AccuracyLoss);
    let full_accuracy = full.dev_accuracy.unwrap_or(0.0);
    let mut points = vec![full];
    for kind in [
        PolicyKind::Layer,
        PolicyKind::Sentence,
        PolicyKind::TwoDimensional,
    ] {
        let configs = candidate_configs(kind, set.layers, decision_layer, rules.rules());
        let measured = measure_all(&configs, set, LossKind::AccuracyLoss, threads);
        for &budget in budgets {
            let floor = full_accuracy - budget.as_fraction() - 1e-12;
            let chosen = configs
                .iter()
                .zip(&measured)
                .filter(|(_, measurement)| measurement.accuracy.unwrap_or(0.0) >= floor)
                .min_by(|(_, left), (_, right)| {
                    left.cost.total_cmp(&right.cost).then(
                        right
                            .accuracy
                            .unwrap_or(0.0)
                            .total_cmp(&left.accuracy.unwrap_or(0.0)),
                    )
                });
            if let Some((config, measurement)) = chosen {
                points.push(OperatingPoint {
                    budget,
                    policy: None,
                    config: *config,
                    dev_accuracy: measurement.accuracy,
                    dev_cost: measurement.cost,
                    dev_loss: Some(measurement.loss_rate()),
                    loss_bound: None,
                });
            }
        }
    }
    points
}

/// Fixed-sequence testing of one policy's `sequence` on `set` for each budget at risk `delta`:
/// the last setting (in order) before the first whose loss bound exceeds the budget, or, when
/// the first already does, `full`'s setting for that policy.
pub fn certify(
    sequence: &ExitSequence,
    set: &CalibrationSet<'_>,
    decision_layer: usize,
    budgets: &[Budget],
    delta: f64,
) -> Vec<OperatingPoint> {
    let documents = set.documents.len();
    // Settings are measured lazily, in order, and only as far as some budget goes.
    let mut measured: Vec<Measurement> = Vec::new();
    let mut points = Vec::new();
    for &budget in budgets {
        let mut chosen: Option<(PolicyConfig, Measurement, f64)> = None;
        for (position, config) in sequence.configs.iter().enumerate() {
            if position == measured.len() {
                measured.push(measure(config, set, sequence.loss));
            }
            let measurement = measured[position];
            let bound = clopper_pearson_upper(measurement.losses, documents, delta);
            if bound > budget.as_fraction() {
                break;
            }
            chosen = Some((*config, measurement, bound));
        }
        let point = match chosen {
            Some((config, measurement, bound)) => OperatingPoint {
                budget,
                policy: Some(sequence.policy),
                config,
                dev_accuracy: measurement.accuracy,
                dev_cost: measurement.cost,
                dev_loss: Some(measurement.loss_rate()),
                loss_bound: Some(bound),
            },
            None => OperatingPoint {
                policy: Some(sequence.policy),
                budget,
                ..full_point(set, decision_layer, sequence.loss)
            },
        };
        points.push(point);
    }
    points
}

/// Every policy's operating points for every budget by fixed-sequence testing of the
/// sequences for `loss` and `rules`, with `full` first (budget 0).
///
/// When every document's grid has layer-0 probabilities (a pack with a layer-0 head), each
/// policy's sequence is tested along its [`layer_zero_path`], so that the chosen settings ask
/// layer 0 first, under the same bound.
pub fn calibrate_fixed_sequence(
    sequences: &[ExitSequence],
    set: &CalibrationSet<'_>,
    decision_layer: usize,
    budgets: &[Budget],
    delta: f64,
    loss: LossKind,
    rules: RuleSet,
) -> Vec<OperatingPoint> {
    let mut points = vec![full_point(set, decision_layer, loss)];
    let with_layer_zero = !set.documents.is_empty()
        && set
            .documents
            .iter()
            .all(|document| document.grid.layer_zero.is_some());
    for kind in [
        PolicyKind::Layer,
        PolicyKind::Sentence,
        PolicyKind::TwoDimensional,
    ] {
        if let Some(sequence) = sequences.iter().find(|sequence| {
            sequence.policy == kind && sequence.loss == loss && sequence.rules == rules
        }) {
            if with_layer_zero {
                let path = ExitSequence {
                    configs: layer_zero_path(
                        &sequence.configs,
                        PolicyConfig::full(set.layers, decision_layer),
                    ),
                    ..sequence.clone()
                };
                points.extend(certify(&path, set, decision_layer, budgets, delta));
            } else {
                points.extend(certify(sequence, set, decision_layer, budgets, delta));
            }
        }
    }
    points
}
