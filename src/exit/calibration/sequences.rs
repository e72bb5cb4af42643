//! The settings calibration searches and the order it tests them in: every candidate setting of
//! a policy, the cost–loss frontier drawn from them on training documents ([`ExitSequence`]),
//! and the path that adds the layer-0 thresholds to a sequence ([`layer_zero_path`]). All of it
//! is fixed before the calibration documents are seen.

use serde::{Deserialize, Serialize};

use super::measurement::{CalibrationSet, LossKind, Measurement, tally_all};
use crate::exit::setting::{ExitRule, PolicyConfig, PolicyKind, TWO_DIMENSIONAL_PASS_TOKENS};

/// The most settings an [`ExitSequence`] keeps.
pub const SEQUENCE_LENGTH: usize = 48;

/// Which rules a calibration may choose from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSet {
    /// Maximum probability, margin and accumulated margin.
    Classic,
    /// The classic rules and the learned ones.
    All,
}

impl RuleSet {
    /// The rules of the set.
    pub fn rules(self) -> &'static [ExitRule] {
        match self {
            RuleSet::Classic => &ExitRule::CLASSIC,
            RuleSet::All => &ExitRule::ALL,
        }
    }

    /// The name used in packs and reports.
    pub fn name(self) -> &'static str {
        match self {
            RuleSet::Classic => "classic",
            RuleSet::All => "all",
        }
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
        ExitRule::LearnedAgreement | ExitRule::LearnedCorrect => vec![
            0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.993,
            0.996, 0.998, 0.999,
        ],
    }
}

/// Every setting searched for `kind` on a model with `layers` layers, with `rules`.
pub fn candidate_configs(
    kind: PolicyKind,
    layers: usize,
    decision_layer: usize,
    rules: &[ExitRule],
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
    let mut configs = Vec::new();
    for &rule in rules {
        // A learned model sees the layer itself; a minimum layer adds nothing to it.
        let minimum_layers: Vec<usize> =
            if kind == PolicyKind::Sentence || rule.learned_target().is_some() {
                vec![0]
            } else {
                let mut minimum = vec![0, layers / 6, layers / 3];
                minimum.dedup();
                minimum
            };
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

/// A policy's settings in the order calibration tests them, from conservative to aggressive:
/// the settings on the cost–loss frontier of the training documents (none cheaper at the same
/// or lower loss), from the dearest to the cheapest, at most [`SEQUENCE_LENGTH`] of them.
/// Fixed before the calibration data is seen, which is what makes the test valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitSequence {
    /// The policy.
    pub policy: PolicyKind,
    /// The loss the frontier was drawn for.
    pub loss: LossKind,
    /// The rules its settings use.
    pub rules: RuleSet,
    /// The settings, in test order.
    pub configs: Vec<PolicyConfig>,
}

/// Every sequence of `kind` — both losses, both rule sets — from one simulation of every
/// setting on `set`.
pub fn exit_sequences(
    kind: PolicyKind,
    set: &CalibrationSet<'_>,
    decision_layer: usize,
    threads: usize,
) -> Vec<ExitSequence> {
    let configs = candidate_configs(kind, set.layers, decision_layer, RuleSet::All.rules());
    let tallies = tally_all(&configs, set, threads);
    let mut sequences = Vec::new();
    for rules in [RuleSet::All, RuleSet::Classic] {
        for loss in LossKind::ALL {
            let measured: Vec<Measurement> = tallies
                .iter()
                .map(|tally| tally.measurement(loss))
                .collect();
            sequences.push(ExitSequence {
                policy: kind,
                loss,
                rules,
                configs: frontier(&configs, &measured, &|config| {
                    rules.rules().contains(&config.rule)
                }),
            });
        }
    }
    sequences
}

/// The cost–loss frontier of the settings `keep` accepts, from the dearest (fewest losses) to
/// the cheapest, thinned to [`SEQUENCE_LENGTH`].
pub(super) fn frontier(
    configs: &[PolicyConfig],
    measured: &[Measurement],
    keep: &dyn Fn(&PolicyConfig) -> bool,
) -> Vec<PolicyConfig> {
    let mut order: Vec<usize> = (0..configs.len())
        .filter(|&index| keep(&configs[index]))
        .collect();
    order.sort_by(|&left, &right| {
        measured[left]
            .losses
            .cmp(&measured[right].losses)
            .then(measured[left].cost.total_cmp(&measured[right].cost))
    });
    // By rising loss, each setting cheaper than every one before it.
    let mut frontier = Vec::new();
    let mut cheapest = f64::INFINITY;
    for index in order {
        if measured[index].cost < cheapest - 1e-12 {
            cheapest = measured[index].cost;
            frontier.push(configs[index]);
        }
    }
    thin(frontier, SEQUENCE_LENGTH)
}

/// At most `most` items, evenly spread, the first and the last kept.
pub(super) fn thin<T: Copy>(items: Vec<T>, most: usize) -> Vec<T> {
    if items.len() <= most || most < 2 {
        return items;
    }
    let last = items.len() - 1;
    let mut kept: Vec<usize> = (0..most).map(|step| step * last / (most - 1)).collect();
    kept.dedup();
    kept.into_iter().map(|index| items[index]).collect()
}

/// Thresholds of the layer-0 exit in the order calibration tests them, from the most
/// conservative (layer 0 answers only what its head is nearly sure of) to the most
/// aggressive. Fixed before any data is seen, which is what makes the test valid.
pub const LAYER_ZERO_THRESHOLDS: [f32; 30] = [
    0.999, 0.998, 0.995, 0.99, 0.985, 0.98, 0.975, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.91, 0.9,
    0.89, 0.88, 0.87, 0.86, 0.85, 0.84, 0.82, 0.8, 0.78, 0.76, 0.74, 0.72, 0.7, 0.65, 0.6,
];

/// A policy's walk settings (`walks`, its exit sequence) combined with the layer-0 thresholds,
/// in the order calibration tests them: a path from `full` (no exit at all) that advances along
/// both lists in proportion to their lengths — at each step the list whose next entry is the
/// smaller share of its length moves on (layer 0 on ties) — so that both the walk and layer 0
/// grow bolder together. Every setting on the path asks layer 0 with the current threshold (none
/// before the first step along it) and walks with the current walk setting (`full`'s before the
/// first step along the walks). The path depends only on the pack, never on calibration data,
/// which is what keeps the test valid.
pub fn layer_zero_path(walks: &[PolicyConfig], full: PolicyConfig) -> Vec<PolicyConfig> {
    let (walk_count, threshold_count) = (walks.len(), LAYER_ZERO_THRESHOLDS.len());
    let (mut walk, mut threshold) = (0usize, 0usize);
    let mut path = Vec::with_capacity(walk_count + threshold_count);
    while walk < walk_count || threshold < threshold_count {
        // Compare (walk + 1) / walk_count with (threshold + 1) / threshold_count exactly.
        let walk_share = (walk + 1) * threshold_count;
        let threshold_share = (threshold + 1) * walk_count;
        if threshold < threshold_count && (walk == walk_count || threshold_share <= walk_share) {
            threshold += 1;
        } else {
            walk += 1;
        }
        let base = if walk == 0 { full } else { walks[walk - 1] };
        path.push(PolicyConfig {
            layer_zero_threshold: (threshold > 0).then(|| LAYER_ZERO_THRESHOLDS[threshold - 1]),
            ..base
        });
    }
    path
}
