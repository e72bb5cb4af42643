//! Exit calibration: for each policy and accuracy budget, the setting to use.
//!
//! **With a guarantee** ([`calibrate_fixed_sequence`], Learn then Test as CALM does for early
//! exit): a document is *lost* when `full` answers it correctly and the setting does not
//! ([`LossKind::AccuracyLoss`]), or, without labels, when the setting answers differently from
//! `full` ([`LossKind::Disagreement`]); either share bounds the accuracy a setting loses against
//! `full`. For a budget of ε points and a risk δ, the settings of a policy are tested in a fixed
//! order from conservative to aggressive ([`ExitSequence`], fixed on the training data before
//! the calibration data is seen); a setting passes when the Clopper–Pearson upper bound
//! ([`super::bound`]) of its loss rate on the calibration documents is at most ε, and the test
//! stops at the first that fails. The last setting that passed is used: with probability at
//! least 1 − δ over the calibration sample, its loss on new documents from the same
//! distribution is at most ε. When not even the first passes, the policy uses `full`'s setting.
//!
//! **By point estimates** ([`calibrate_point_estimates`], what packs of format 1 did): the
//! cheapest setting whose dev accuracy is within the budget. Kept to compare against; it picks
//! the winner of many noisy estimates and is optimistic by construction.
//!
//! Cost is the share of the whole documents' token×layer operations at full depth that a setting
//! computes, summed over all documents (long documents weigh what they cost). The search runs
//! over probability grids; [`crate::pack`] builds them from cached features.

use serde::{Deserialize, Serialize};

use super::bound::clopper_pearson_upper;
use super::learned::ExitModels;
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

/// The risk δ a budget may be broken with, by default.
pub const DEFAULT_DELTA: f64 = 0.1;

/// The most settings an [`ExitSequence`] keeps.
pub const SEQUENCE_LENGTH: usize = 48;

/// What counts as a lost document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// `full` answers it correctly and the setting does not (needs labels).
    AccuracyLoss,
    /// The setting answers differently from `full` (needs no labels).
    Disagreement,
}

impl LossKind {
    /// Both kinds.
    pub const ALL: [LossKind; 2] = [LossKind::AccuracyLoss, LossKind::Disagreement];

    /// The name used in packs and reports.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::AccuracyLoss => "accuracy_loss",
            LossKind::Disagreement => "disagreement",
        }
    }
}

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

/// A calibration document: its probability grid and, when labelled, its true class.
#[derive(Debug, Clone, PartialEq)]
pub struct GridDocument {
    /// Position of the document in its data file.
    pub index: usize,
    /// Probabilities per cell and tokens per sentence.
    pub grid: DocumentGrid,
    /// True class index, when known.
    pub class: Option<usize>,
}

/// Measured quality and cost of one setting on a set of documents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Share of documents answered correctly (without labels: `None`).
    pub accuracy: Option<f64>,
    /// Token×layer operations computed over those of whole documents at full depth.
    pub cost: f64,
    /// Documents lost (see [`LossKind`]).
    pub losses: usize,
    /// Documents measured.
    pub documents: usize,
    /// Documents the layer-0 head answered.
    pub layer_zero_answers: usize,
}

impl Measurement {
    /// The share of documents lost.
    pub fn loss_rate(&self) -> f64 {
        self.losses as f64 / self.documents.max(1) as f64
    }
}

/// The documents a calibration measures on, with `full`'s answer to each.
#[derive(Debug, Clone, Copy)]
pub struct CalibrationSet<'a> {
    /// The documents.
    pub documents: &'a [GridDocument],
    /// `full`'s answer to each, in order.
    pub full_answers: &'a [usize],
    /// Layers of the model.
    pub layers: usize,
    /// The learned rules' models.
    pub models: ExitModels<'a>,
}

/// `full`'s answer to every document: the decision layer's head on the whole document.
pub fn full_answers(
    documents: &[GridDocument],
    layers: usize,
    decision_layer: usize,
) -> Vec<usize> {
    let full = PolicyConfig::full(layers, decision_layer).policy(layers, ExitModels::NONE);
    documents
        .iter()
        .map(|document| simulate(full.as_ref(), &document.grid).prediction)
        .collect()
}

/// Everything one simulation of a setting over a set tells: both losses at once.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tally {
    accuracy: Option<f64>,
    cost: f64,
    accuracy_losses: usize,
    disagreements: usize,
    documents: usize,
    layer_zero_answers: usize,
}

impl Tally {
    fn measurement(&self, loss: LossKind) -> Measurement {
        Measurement {
            accuracy: self.accuracy,
            cost: self.cost,
            losses: match loss {
                LossKind::AccuracyLoss => self.accuracy_losses,
                LossKind::Disagreement => self.disagreements,
            },
            documents: self.documents,
            layer_zero_answers: self.layer_zero_answers,
        }
    }
}

fn tally(config: &PolicyConfig, set: &CalibrationSet<'_>) -> Tally {
    let policy = config.policy(set.layers, set.models);
    let mut correct = 0usize;
    let mut labelled = 0usize;
    let (mut accuracy_losses, mut disagreements) = (0usize, 0usize);
    let mut computed = 0u64;
    let mut full = 0u64;
    let mut layer_zero_answers = 0usize;
    for (document, &full_answer) in set.documents.iter().zip(set.full_answers) {
        let outcome = simulate(policy.as_ref(), &document.grid);
        layer_zero_answers += usize::from(outcome.layer_zero);
        computed += outcome.token_layers;
        full += outcome.full_token_layers;
        if let Some(class) = document.class {
            labelled += 1;
            correct += usize::from(outcome.prediction == class);
            accuracy_losses += usize::from(full_answer == class && outcome.prediction != class);
        }
        disagreements += usize::from(outcome.prediction != full_answer);
    }
    Tally {
        accuracy: (labelled > 0).then(|| correct as f64 / labelled as f64),
        cost: computed as f64 / full.max(1) as f64,
        accuracy_losses,
        disagreements,
        documents: set.documents.len(),
        layer_zero_answers,
    }
}

/// Accuracy, cost and losses of `config` over the set.
pub fn measure(config: &PolicyConfig, set: &CalibrationSet<'_>, loss: LossKind) -> Measurement {
    tally(config, set).measurement(loss)
}

/// Simulates every setting, spreading them over `threads` threads; results in order.
fn tally_all(configs: &[PolicyConfig], set: &CalibrationSet<'_>, threads: usize) -> Vec<Tally> {
    map_in_parallel(configs, threads, |config| tally(config, set))
}

/// `work` applied to every item on up to `threads` threads, results in the items' order.
///
/// Threads take the next item when they are free (settings differ in cost by orders of
/// magnitude and the costly ones sit together in the list, so fixed chunks would leave one
/// thread with most of the work). A panic in `work` is not swallowed: it reaches the caller
/// once the other threads stopped, so no result can shift onto another item.
fn map_in_parallel<Item: Sync, Output: Send>(
    items: &[Item],
    threads: usize,
    work: impl Fn(&Item) -> Output + Sync,
) -> Vec<Output> {
    let threads = threads.clamp(1, items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (next, work) = (&next, &work);
    let mut numbered: Vec<(usize, Output)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(index) else {
                            return done;
                        };
                        done.push((index, work(item)));
                    }
                })
            })
            .collect();
        let mut numbered = Vec::with_capacity(items.len());
        let mut panic = None;
        for handle in handles {
            match handle.join() {
                Ok(done) => numbered.extend(done),
                Err(payload) => panic = Some(payload),
            }
        }
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
        numbered
    });
    numbered.sort_unstable_by_key(|(index, _)| *index);
    assert_eq!(numbered.len(), items.len(), "every item has its result");
    numbered.into_iter().map(|(_, output)| output).collect()
}

/// Measures every setting, spreading them over `threads` threads; results in order.
pub fn measure_all(
    configs: &[PolicyConfig],
    set: &CalibrationSet<'_>,
    loss: LossKind,
    threads: usize,
) -> Vec<Measurement> {
    tally_all(configs, set, threads)
        .iter()
        .map(|tally| tally.measurement(loss))
        .collect()
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

/// A 2d pass size that no document reaches: the whole document in one pass, so that the 2d
/// policy walks only the layers (up to its depth cap), as `layer` does.
pub const WHOLE_DOCUMENT_PASS_TOKENS: usize = 1 << 20;

/// Pass sizes tried for the 2d policy: one sentence per pass (the paper's walk), whole
/// sentences gathered up to this many tokens, or the whole document at once. On IMDB reviews
/// single sentences are weak evidence and small decodes cost more per token; longer passes
/// exit less often mid-document but each exit check sees more text. The whole-document pass
/// makes every walk `layer` can take one that 2d can take too (with a depth cap besides, and
/// 2d's own exit model), so that 2d's settings, and the sequence calibration draws from them,
/// are not limited to sentence-shaped walks where a document is best read whole: on mail and
/// news, 2d's calibrated setting was dearer than `layer`'s.
pub const TWO_DIMENSIONAL_PASS_TOKENS: [usize; 6] =
    [0, 32, 64, 128, 256, WHOLE_DOCUMENT_PASS_TOKENS];

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
fn frontier(
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
fn thin<T: Copy>(items: Vec<T>, most: usize) -> Vec<T> {
    if items.len() <= most || most < 2 {
        return items;
    }
    let last = items.len() - 1;
    let mut kept: Vec<usize> = (0..most).map(|step| step * last / (most - 1)).collect();
    kept.dedup();
    kept.into_iter().map(|index| items[index]).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence of `kind` drawn on `set` (training documents the heads did not see).
    fn exit_sequence(
        kind: PolicyKind,
        set: &CalibrationSet<'_>,
        decision_layer: usize,
        loss: LossKind,
        rules: RuleSet,
        threads: usize,
    ) -> ExitSequence {
        let configs = candidate_configs(kind, set.layers, decision_layer, rules.rules());
        let measured = measure_all(&configs, set, loss, threads);
        ExitSequence {
            policy: kind,
            loss,
            rules,
            configs: frontier(&configs, &measured, &|_| true),
        }
    }

    #[test]
    fn parallel_tallies_keep_the_order_and_a_panic_fails_the_whole_run() {
        let items: Vec<u64> = (0..50).collect();
        // Costs that differ a lot, the costly ones together: results still in order.
        let squares = map_in_parallel(&items, 3, |&item| {
            if item < 5 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            item * item
        });
        assert_eq!(
            squares,
            items.iter().map(|item| item * item).collect::<Vec<_>>()
        );
        // One panicking item: the caller panics with its message, never gets the others'
        // results shifted onto the wrong items.
        let outcome = std::panic::catch_unwind(|| {
            map_in_parallel(&items, 3, |&item| {
                assert!(item != 17, "setting 17 is broken");
                item
            })
        });
        let payload = outcome.expect_err("the panic reaches the caller");
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_string())
            })
            .unwrap_or_default();
        assert_eq!(message, "setting 17 is broken");
    }

    /// Documents whose cells get confident (and right) from `confident_from` layer on, wrong and
    /// unsure before.
    fn documents(count: usize, confident_from: usize) -> Vec<GridDocument> {
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
                GridDocument {
                    index,
                    grid: DocumentGrid {
                        probabilities,
                        sentence_tokens: vec![10, 10, 10],
                        layer_zero: None,
                    },
                    class: Some(class),
                }
            })
            .collect()
    }

    /// The same documents with their labels taken away.
    fn without_labels(documents: &[GridDocument]) -> Vec<GridDocument> {
        documents
            .iter()
            .cloned()
            .map(|document| GridDocument {
                class: None,
                ..document
            })
            .collect()
    }

    fn set<'a>(documents: &'a [GridDocument], full_answers: &'a [usize]) -> CalibrationSet<'a> {
        CalibrationSet {
            documents,
            full_answers,
            layers: 6,
            models: ExitModels::NONE,
        }
    }

    #[test]
    fn measure_counts_accuracy_cost_and_losses() {
        let documents = documents(4, 2);
        let answers = full_answers(&documents, 6, 5);
        assert_eq!(answers, vec![0, 1, 0, 1]);
        let set = set(&documents, &answers);
        let full = PolicyConfig::full(6, 5);
        assert_eq!(
            measure(&full, &set, LossKind::AccuracyLoss),
            Measurement {
                accuracy: Some(1.0),
                cost: 1.0,
                losses: 0,
                documents: 4,
                layer_zero_answers: 0,
            }
        );
        let eager = PolicyConfig {
            kind: PolicyKind::Layer,
            rule: ExitRule::MaxProbability,
            threshold: 0.4,
            ..full
        };
        // Exits at layer 0, where every answer is wrong: 1/6 of the operations, all lost.
        let measurement = measure(&eager, &set, LossKind::AccuracyLoss);
        assert_eq!(measurement.accuracy, Some(0.0));
        assert_eq!(measurement.losses, 4);
        assert!((measurement.cost - 1.0 / 6.0).abs() < 1e-12);
        // Without labels, disagreement with full counts the same documents.
        let unlabelled = without_labels(&documents);
        let unlabelled_set = CalibrationSet {
            documents: &unlabelled,
            ..set
        };
        let measurement = measure(&eager, &unlabelled_set, LossKind::Disagreement);
        assert_eq!(measurement.accuracy, None);
        assert_eq!(measurement.losses, 4);
        assert_eq!(
            measure(&eager, &unlabelled_set, LossKind::AccuracyLoss).losses,
            0
        );
    }

    #[test]
    fn point_estimates_pick_the_cheapest_setting_within_each_budget() {
        let documents = documents(6, 2);
        let answers = full_answers(&documents, 6, 5);
        let points = calibrate_point_estimates(
            &set(&documents, &answers),
            5,
            &DEFAULT_BUDGETS,
            RuleSet::Classic,
            2,
        );
        assert_eq!(points[0].config.kind, PolicyKind::Full);
        assert_eq!(points.len(), 1 + 3 * DEFAULT_BUDGETS.len());
        let two_dimensional: Vec<&OperatingPoint> = points
            .iter()
            .filter(|point| point.config.kind == PolicyKind::TwoDimensional)
            .collect();
        for point in &two_dimensional {
            assert_eq!(point.dev_accuracy, Some(1.0), "no accuracy to lose here");
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
        assert_eq!(
            candidate_configs(PolicyKind::Full, 18, 9, &ExitRule::ALL).len(),
            1
        );
        let layer = candidate_configs(PolicyKind::Layer, 18, 9, &ExitRule::ALL);
        assert!(layer.iter().all(|config| config.depth_cap == 17));
        let two_dimensional = candidate_configs(PolicyKind::TwoDimensional, 18, 9, &ExitRule::ALL);
        assert!(two_dimensional.iter().any(|config| config.depth_cap == 0));
        // Every `layer` setting has a 2d twin that walks the same cells: one pass, every layer.
        for config in &layer {
            assert!(
                two_dimensional.iter().any(|twin| PolicyConfig {
                    kind: PolicyKind::Layer,
                    min_pass_tokens: 0,
                    ..*twin
                } == *config
                    && twin.min_pass_tokens == WHOLE_DOCUMENT_PASS_TOKENS),
                "{config:?}"
            );
        }
        assert!(
            two_dimensional
                .iter()
                .all(|config| config.min_layer <= config.depth_cap)
        );
        let rules: std::collections::HashSet<_> = layer.iter().map(|config| config.rule).collect();
        assert_eq!(rules.len(), 5, "every policy may use every rule");
        let classic = candidate_configs(PolicyKind::Layer, 18, 9, RuleSet::Classic.rules());
        assert!(
            classic
                .iter()
                .all(|config| config.rule.learned_target().is_none())
        );
    }

    fn layer_config(threshold: f32) -> PolicyConfig {
        PolicyConfig {
            kind: PolicyKind::Layer,
            rule: ExitRule::MaxProbability,
            threshold,
            ..PolicyConfig::full(6, 5)
        }
    }

    /// 100 documents: the first `wrong_early` are wrong (and unsure, 0.55) at layers 0 and 1,
    /// all are right and sure (0.95) from layer 2.
    fn mixed(wrong_early: usize) -> Vec<GridDocument> {
        (0..100)
            .map(|index| {
                let class = 1;
                let probabilities = vec![
                    (0..6)
                        .map(|layer| {
                            let right = match layer {
                                0 | 1 if index < wrong_early => 0.45,
                                0 | 1 => 0.7,
                                _ => 0.95,
                            };
                            vec![1.0 - right, right]
                        })
                        .collect(),
                ];
                GridDocument {
                    index,
                    grid: DocumentGrid {
                        probabilities,
                        sentence_tokens: vec![10],
                        layer_zero: None,
                    },
                    class: Some(class),
                }
            })
            .collect()
    }

    #[test]
    fn fixed_sequence_testing_stops_at_the_first_failure() {
        let documents = mixed(3);
        let answers = full_answers(&documents, 6, 5);
        let set = set(&documents, &answers);
        // In test order: 0.99 (never exits: full cost, no loss), 0.9 (exits at layer 2: half
        // the cost, no loss), 0.5 (exits at layer 0: 3 documents lost), then 0.6 (layer 0 for
        // the 97 sure documents, layer 2 for the 3 others: no loss at 106/600 of the cost),
        // which would pass at 4 points but comes after a failure.
        let sequence = ExitSequence {
            policy: PolicyKind::Layer,
            loss: LossKind::AccuracyLoss,
            rules: RuleSet::Classic,
            configs: vec![
                layer_config(0.99),
                layer_config(0.9),
                layer_config(0.5),
                layer_config(0.6),
            ],
        };
        assert_eq!(
            measure(&layer_config(0.6), &set, LossKind::AccuracyLoss).losses,
            0
        );
        let budgets = [Budget::from_hundredths(400), Budget::from_hundredths(1000)];
        let points = certify(&sequence, &set, 5, &budgets, 0.1);
        // 0 losses of 100: bound 1 - 0.1^(1/100) = 0.022763, within 4 points; 3 losses: bound
        // 0.065586 (hand-computed: exact binomial sums and bisection), over 4 points.
        let at_four = &points[0];
        assert_eq!(at_four.config.threshold, 0.9);
        assert_eq!(at_four.dev_loss, Some(0.0));
        assert!((at_four.loss_bound.expect("bound") - 0.022763).abs() < 1e-5);
        assert!((at_four.dev_cost - 0.5).abs() < 1e-12);
        // At 10 points the third passes (bound 0.065586) and so does the fourth.
        let at_ten = &points[1];
        assert_eq!(at_ten.config.threshold, 0.6, "{at_ten:?}");
        assert!((at_ten.dev_cost - 106.0 / 600.0).abs() < 1e-12);
        let third = certify(
            &ExitSequence {
                configs: sequence.configs[..3].to_vec(),
                ..sequence.clone()
            },
            &set,
            5,
            &budgets[1..],
            0.1,
        );
        assert!((third[0].loss_bound.expect("bound") - 0.065586).abs() < 1e-5);
        // Budget 0 certifies nothing: the policy falls back to full's setting.
        let none = certify(&sequence, &set, 5, &[Budget::ZERO], 0.1);
        assert!(none[0].is_fallback());
        assert_eq!(none[0].policy(), PolicyKind::Layer);
        assert_eq!(none[0].config.kind, PolicyKind::Full);
        assert_eq!(none[0].loss_bound, Some(0.0));
    }

    #[test]
    fn a_failure_first_means_the_later_settings_are_never_tried() {
        let documents = mixed(3);
        let answers = full_answers(&documents, 6, 5);
        let set = set(&documents, &answers);
        let sequence = ExitSequence {
            policy: PolicyKind::Layer,
            loss: LossKind::AccuracyLoss,
            rules: RuleSet::Classic,
            configs: vec![layer_config(0.5), layer_config(0.99)],
        };
        let points = certify(&sequence, &set, 5, &[Budget::from_hundredths(400)], 0.1);
        assert!(points[0].is_fallback(), "{points:?}");
    }

    #[test]
    fn sequences_run_from_conservative_to_aggressive() {
        let documents = mixed(3);
        let answers = full_answers(&documents, 6, 5);
        let set = set(&documents, &answers);
        let sequence = exit_sequence(
            PolicyKind::Layer,
            &set,
            5,
            LossKind::AccuracyLoss,
            RuleSet::Classic,
            2,
        );
        assert!(!sequence.configs.is_empty());
        let measured: Vec<Measurement> = sequence
            .configs
            .iter()
            .map(|config| measure(config, &set, LossKind::AccuracyLoss))
            .collect();
        for pair in measured.windows(2) {
            assert!(pair[0].losses <= pair[1].losses, "{measured:?}");
            assert!(pair[0].cost > pair[1].cost, "{measured:?}");
        }
        // The frontier here: no loss at 106/600 of the cost (sure documents exit at layer 0,
        // the 3 unsure ones at layer 2), then 3 losses at a sixth (every document at layer 0).
        assert_eq!(measured.len(), 2, "{measured:?}");
        assert_eq!(measured[0].losses, 0);
        assert!((measured[0].cost - 106.0 / 600.0).abs() < 1e-12);
        assert_eq!(measured[1].losses, 3);
        assert!((measured[1].cost - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn one_simulation_draws_every_sequence_alike() {
        let documents = mixed(3);
        let answers = full_answers(&documents, 6, 5);
        let set = set(&documents, &answers);
        let sequences = exit_sequences(PolicyKind::Layer, &set, 5, 2);
        assert_eq!(sequences.len(), 4);
        for sequence in &sequences {
            let alone = exit_sequence(PolicyKind::Layer, &set, 5, sequence.loss, sequence.rules, 1);
            assert_eq!(&alone, sequence);
        }
    }

    #[test]
    fn thinning_keeps_the_ends() {
        let items: Vec<usize> = (0..100).collect();
        let kept = thin(items, 5);
        assert_eq!(kept, vec![0, 24, 49, 74, 99]);
        assert_eq!(thin(vec![1, 2], 5), vec![1, 2]);
    }

    #[test]
    fn the_layer_zero_path_advances_both_lists_in_proportion() {
        let full = PolicyConfig::full(6, 5);
        let walks: Vec<PolicyConfig> = [0.99, 0.9]
            .map(|threshold| PolicyConfig {
                kind: PolicyKind::Layer,
                threshold,
                ..full
            })
            .to_vec();
        let path = layer_zero_path(&walks, full);
        let thresholds = LAYER_ZERO_THRESHOLDS.len();
        assert_eq!(path.len(), walks.len() + thresholds);
        // Half the thresholds with `full` behind them, then the first walk with the other
        // half, then the last walk with the last threshold.
        let half = thresholds / 2;
        for (step, config) in path.iter().enumerate() {
            let (walk, threshold) = match step {
                step if step < half => (full, step),
                step if step < thresholds + 1 => (walks[0], (step - 1).max(half - 1)),
                _ => (walks[1], thresholds - 1),
            };
            assert_eq!(config.kind, walk.kind, "step {step}");
            assert_eq!(config.threshold, walk.threshold, "step {step}");
            assert_eq!(
                config.layer_zero_threshold,
                Some(LAYER_ZERO_THRESHOLDS[threshold]),
                "step {step}"
            );
        }
        // Without walks, the path is the thresholds behind `full`.
        let alone = layer_zero_path(&[], full);
        assert_eq!(alone.len(), thresholds);
        assert!(alone.iter().all(|config| config.kind == PolicyKind::Full));
    }

    #[test]
    fn calibration_certifies_layer_zero_and_the_walk_together() {
        // 1000 documents, full right on all; the layer-0 head is sure (0.99) and right on 900,
        // sure and wrong on 1 and unsure (0.6) but right on the rest.
        let mut documents = documents(1000, 2);
        for (index, document) in documents.iter_mut().enumerate() {
            let class = index % 2;
            let (right, top) = match index {
                0..900 => (true, 0.99),
                900 => (false, 0.99),
                _ => (true, 0.6),
            };
            let mut probabilities = vec![1.0 - top, 1.0 - top];
            probabilities[if right { class } else { 1 - class }] = top;
            document.grid.layer_zero = Some(probabilities);
        }
        let answers = full_answers(&documents, 6, 5);
        let set = set(&documents, &answers);
        let walk = PolicyConfig {
            kind: PolicyKind::Layer,
            rule: ExitRule::MaxProbability,
            threshold: 0.9,
            ..PolicyConfig::full(6, 5)
        };
        // The walk's sequence for `loss`, tested on `set` for `budgets` at δ = 0.1.
        let calibrate = |set: &CalibrationSet<'_>, loss, budgets: &[Budget]| {
            let sequence = ExitSequence {
                policy: PolicyKind::Layer,
                loss,
                rules: RuleSet::Classic,
                configs: vec![walk],
            };
            calibrate_fixed_sequence(&[sequence], set, 5, budgets, 0.1, loss, RuleSet::Classic)
        };
        let points = calibrate(
            &set,
            LossKind::AccuracyLoss,
            &[Budget::from_hundredths(100), Budget::ZERO],
        );
        // One loss in 1000 is within a point: the whole path passes, to the walk behind the
        // last threshold. Layer 0 answers everything: no model cost.
        let point = &points[1];
        assert_eq!(point.budget, Budget::from_hundredths(100));
        assert_eq!(
            point.config,
            PolicyConfig {
                layer_zero_threshold: Some(0.6),
                ..walk
            }
        );
        assert!(!point.is_fallback());
        let measured = measure(&point.config, &set, LossKind::AccuracyLoss);
        assert_eq!(measured.layer_zero_answers, 1000);
        assert_eq!(measured.cost, 0.0);
        assert_eq!(point.dev_loss, Some(0.001));
        assert_eq!(point.loss_bound, Some(clopper_pearson_upper(1, 1000, 0.1)));
        // A budget of 0 is never certified (no bound is 0): `full`, without layer 0.
        let zero = &points[2];
        assert!(zero.is_fallback());
        assert_eq!(zero.config.layer_zero_threshold, None);

        // Recalibration without labels (disagreement with full) keeps layer 0 as well.
        let unlabelled = without_labels(&documents);
        let unlabelled_set = CalibrationSet {
            documents: &unlabelled,
            ..set
        };
        let points = calibrate(
            &unlabelled_set,
            LossKind::Disagreement,
            &[Budget::from_hundredths(100)],
        );
        assert_eq!(points[1].config.layer_zero_threshold, Some(0.6));
        assert_eq!(points[1].dev_loss, Some(0.001));

        // Without layer-0 probabilities the calibration is what it was.
        let plain: Vec<GridDocument> = documents
            .iter()
            .cloned()
            .map(|mut document| {
                document.grid.layer_zero = None;
                document
            })
            .collect();
        let plain_set = CalibrationSet {
            documents: &plain,
            ..set
        };
        let points = calibrate(
            &plain_set,
            LossKind::AccuracyLoss,
            &[Budget::from_hundredths(100)],
        );
        assert_eq!(points[1].config, walk);
        assert_eq!(
            points[1].loss_bound,
            Some(clopper_pearson_upper(0, 1000, 0.1))
        );
    }
}
