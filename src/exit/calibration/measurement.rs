//! Simulating settings over the calibration documents: each one's accuracy, cost and losses,
//! many settings at once over several threads.

use serde::{Deserialize, Serialize};

use crate::exit::grid::DocumentGrid;
use crate::exit::learned::ExitModels;
use crate::exit::policy::simulate;
use crate::exit::setting::PolicyConfig;
use crate::threads::map_in_parallel;

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
pub(super) struct Tally {
    accuracy: Option<f64>,
    cost: f64,
    accuracy_losses: usize,
    disagreements: usize,
    documents: usize,
    layer_zero_answers: usize,
}

impl Tally {
    pub(super) fn measurement(&self, loss: LossKind) -> Measurement {
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
pub(super) fn tally_all(
    configs: &[PolicyConfig],
    set: &CalibrationSet<'_>,
    threads: usize,
) -> Vec<Tally> {
    map_in_parallel(configs, threads, |config| tally(config, set))
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
