//! The learned exit rule: a small logistic regression, stored in the pack, that maps what the
//! online walk knows at a cell to the probability that the answer there is final-quality —
//! the one `full` would give ([`ExitTarget::AgreesWithFull`]) or the true class
//! ([`ExitTarget::Correct`]).
//!
//! Its inputs ([`CELL_FEATURES`]) are only what a walk knows when it reaches a cell: the cell's
//! probabilities (top class, margin, entropy), the margin accumulated over the cells visited,
//! how many consecutive visited cells agreed on the top class, the change since the previous
//! visited cell, the layer, and how much of the document (sentences, tokens) has been read out
//! of how much there is — the text is whole before classification starts. [`CellTracker`]
//! computes them, identically for training rows, for the simulation and for the online walk.
//!
//! The model is trained on cells the heads did not see (see [`crate::heads::training`]'s
//! cross-fitting): heads fitted on one half of the training documents give the probabilities of
//! the other half's cells, and the other way round.

use std::sync::Arc;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::policy::{Cell, DocumentGrid, visited_cells};
use super::setting::{ExitRule, ExitTarget, PolicyConfig, PolicyKind};
use crate::heads::argmax;
use crate::heads::logistic::{FitOptions, Standardizer, fit_logistic};

/// Names of the features a learned exit model reads, in order.
pub const CELL_FEATURES: [&str; 14] = [
    "top_probability",
    "margin",
    "normalised_entropy",
    "log_accumulated_margin",
    "log_agreement_streak",
    "top_changed",
    "top_probability_change",
    "layer_fraction",
    "margin_times_layer_fraction",
    "sentence_fraction",
    "token_fraction",
    "log_tokens_read",
    "log_tokens_total",
    "log_cells_visited",
];

/// Number of cell features.
pub const FEATURE_COUNT: usize = CELL_FEATURES.len();

/// What a walk knows about the whole document before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkContext {
    /// Layers of the model.
    pub layers: usize,
    /// Sentences of the document (within the token limit).
    pub sentences: usize,
    /// Tokens of the document (within the token limit).
    pub tokens_total: usize,
}

/// Follows the cells a walk visits and computes each one's [`CELL_FEATURES`].
#[derive(Debug, Clone)]
pub struct CellTracker {
    context: WalkContext,
    accumulated_margin: f32,
    visited: usize,
    streak: usize,
    previous: Option<(usize, Vec<f32>)>,
}

impl CellTracker {
    /// A tracker for one document.
    pub fn new(context: WalkContext) -> Self {
        CellTracker {
            context,
            accumulated_margin: 0.0,
            visited: 0,
            streak: 0,
            previous: None,
        }
    }

    /// Visits `cell` with its class `probabilities`, after `tokens_read` tokens of the
    /// document; answers the cell's features.
    pub fn observe(
        &mut self,
        cell: Cell,
        probabilities: &[f32],
        tokens_read: usize,
    ) -> [f32; FEATURE_COUNT] {
        let top = argmax(ndarray::ArrayView1::from(probabilities));
        let top_probability = probabilities.get(top).copied().unwrap_or(0.0);
        let second = probabilities
            .iter()
            .enumerate()
            .filter(|&(class, _)| class != top)
            .map(|(_, &probability)| probability)
            .fold(0.0f32, f32::max);
        let margin = top_probability - second;
        let classes = probabilities.len().max(2) as f32;
        let entropy: f32 = probabilities
            .iter()
            .filter(|&&probability| probability > 0.0)
            .map(|&probability| -probability * probability.ln())
            .sum();
        self.accumulated_margin += margin;
        self.visited += 1;
        let (changed, change) = match &self.previous {
            Some((previous_top, previous)) => (
                f32::from(u8::from(*previous_top != top)),
                top_probability - previous.get(top).copied().unwrap_or(0.0),
            ),
            None => (0.0, 0.0),
        };
        self.streak = match &self.previous {
            Some((previous_top, _)) if *previous_top == top => self.streak + 1,
            _ => 1,
        };
        self.previous = Some((top, probabilities.to_vec()));
        let context = self.context;
        let layer_fraction = cell.layer as f32 / context.layers.saturating_sub(1).max(1) as f32;
        [
            top_probability,
            margin,
            entropy / classes.ln(),
            self.accumulated_margin.ln_1p(),
            (self.streak as f32).ln_1p(),
            changed,
            change,
            layer_fraction,
            margin * layer_fraction,
            (cell.sentence + 1) as f32 / context.sentences.max(1) as f32,
            tokens_read as f32 / context.tokens_total.max(1) as f32,
            (tokens_read as f32).ln_1p(),
            (context.tokens_total as f32).ln_1p(),
            (self.visited as f32).ln_1p(),
        ]
    }
}

/// A learned exit model: for the walks of one policy, the probability that the answer at a
/// cell meets its target, `sigmoid(bias + Σ weights · (x − mean) · scale)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitModel {
    /// The policy whose walks it was trained on.
    pub policy: PolicyKind,
    /// What it predicts.
    pub target: ExitTarget,
    /// Its inputs, [`CELL_FEATURES`].
    pub features: Vec<String>,
    /// Feature means.
    pub mean: Vec<f32>,
    /// Inverse standard deviations.
    pub scale: Vec<f32>,
    /// One weight per feature.
    pub weights: Vec<f32>,
    /// The bias.
    pub bias: f32,
    /// Cells it was trained on.
    pub training_cells: usize,
    /// Share of those cells whose answer met the target.
    pub positive_share: f64,
}

impl ExitModel {
    /// The predicted probability for one cell's features.
    pub fn probability(&self, features: &[f32; FEATURE_COUNT]) -> f32 {
        let logit = features
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((value, mean), scale), weight)| (value - mean) * scale * weight)
            .sum::<f32>()
            + self.bias;
        1.0 / (1.0 + (-logit).exp())
    }

    /// Checks that the model reads the features this build computes and holds finite numbers.
    pub fn validate(&self) -> Result<(), String> {
        if self.features != CELL_FEATURES {
            return Err(format!(
                "the exit model for `{}` reads features {:?}; this exitwise computes {:?}",
                self.policy.name(),
                self.features,
                CELL_FEATURES
            ));
        }
        let lengths = [self.mean.len(), self.scale.len(), self.weights.len()];
        if lengths.iter().any(|&length| length != FEATURE_COUNT) {
            return Err(format!(
                "the exit model for `{}` has {lengths:?} values for {FEATURE_COUNT} features",
                self.policy.name()
            ));
        }
        let finite = self
            .mean
            .iter()
            .chain(&self.scale)
            .chain(&self.weights)
            .all(|value| value.is_finite())
            && self.bias.is_finite();
        if !finite {
            return Err(format!(
                "the exit model for `{}` holds non-finite values",
                self.policy.name()
            ));
        }
        Ok(())
    }
}

/// The learned exit models a policy may use: one per policy kind and target.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExitModels<'a> {
    models: &'a [ExitModel],
}

impl<'a> ExitModels<'a> {
    /// No learned models: the learned rules never exit.
    pub const NONE: ExitModels<'static> = ExitModels { models: &[] };

    /// The models of a pack.
    pub fn new(models: &'a [ExitModel]) -> Self {
        ExitModels { models }
    }

    /// The model a setting's rule uses, if it is a learned rule and the model exists.
    pub fn for_config(&self, config: &PolicyConfig) -> Option<Arc<ExitModel>> {
        let target = config.rule.learned_target()?;
        self.models
            .iter()
            .find(|model| model.policy == config.kind && model.target == target)
            .map(|model| Arc::new(model.clone()))
    }
}

/// A document's grid with what the models are trained to predict.
#[derive(Debug, Clone, Copy)]
pub struct TrainingDocument<'a> {
    /// Probabilities of the cells, from heads that did not see the document.
    pub grid: &'a DocumentGrid,
    /// The true class.
    pub class: usize,
    /// The class `full` answers (the decision layer on the whole document).
    pub full_answer: usize,
}

/// Cells of walks with their features and whether each target was met.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingCells {
    /// One row of [`CELL_FEATURES`] per cell.
    pub features: Vec<[f32; FEATURE_COUNT]>,
    /// Whether the cell's answer equals `full`'s.
    pub agrees_with_full: Vec<bool>,
    /// Whether it is the true class.
    pub correct: Vec<bool>,
}

impl TrainingCells {
    /// Number of cells.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    fn targets(&self, target: ExitTarget) -> &[bool] {
        match target {
            ExitTarget::AgreesWithFull => &self.agrees_with_full,
            ExitTarget::Correct => &self.correct,
        }
    }
}

/// The walks whose cells train the model of `kind`: `layer` and `sentence` walk one way; `2d`
/// walks with every pass size and, per document, one depth cap drawn from a fixed spread, so
/// the model sees the feature values capped walks produce.
pub fn training_walks(
    kind: PolicyKind,
    layers: usize,
    decision_layer: usize,
    document: usize,
) -> Vec<PolicyConfig> {
    let never = PolicyConfig {
        kind,
        rule: ExitRule::MaxProbability,
        // Nothing reaches it: the walk visits every cell it would visit without an exit.
        threshold: 2.0,
        ..PolicyConfig::full(layers, decision_layer)
    };
    match kind {
        PolicyKind::Full => Vec::new(),
        PolicyKind::Layer | PolicyKind::Sentence => vec![never],
        PolicyKind::TwoDimensional => {
            let last = layers.saturating_sub(1);
            let caps = [last / 6, last / 3, last / 2, (2 * last) / 3, last];
            super::calibration::TWO_DIMENSIONAL_PASS_TOKENS
                .iter()
                .enumerate()
                .map(|(offset, &min_pass_tokens)| PolicyConfig {
                    depth_cap: caps[(document + offset) % caps.len()],
                    min_pass_tokens,
                    ..never
                })
                .collect()
        }
    }
}

/// The cells that the walks of `kind` visit on every document, with their features and
/// targets.
pub fn training_cells(
    kind: PolicyKind,
    documents: &[TrainingDocument<'_>],
    decision_layer: usize,
) -> TrainingCells {
    let mut cells = TrainingCells::default();
    for (index, document) in documents.iter().enumerate() {
        let grid = document.grid;
        let context = WalkContext {
            layers: grid.layers(),
            sentences: grid.sentences(),
            tokens_total: grid.sentence_tokens.iter().sum(),
        };
        for walk in training_walks(kind, grid.layers(), decision_layer, index) {
            let policy = walk.policy(grid.layers(), ExitModels::NONE);
            let mut tracker = CellTracker::new(context);
            for (cell, tokens_read) in visited_cells(policy.as_ref(), grid) {
                let probabilities = &grid.probabilities[cell.sentence][cell.layer];
                cells
                    .features
                    .push(tracker.observe(cell, probabilities, tokens_read));
                let answer = argmax(ndarray::ArrayView1::from(probabilities.as_slice()));
                cells.agrees_with_full.push(answer == document.full_answer);
                cells.correct.push(answer == document.class);
            }
        }
    }
    cells
}

/// Fits the model of `kind` for `target` on `cells` (a logistic regression on standardised
/// features with a light L2 penalty). `None` without cells.
pub fn fit_exit_model(
    kind: PolicyKind,
    target: ExitTarget,
    cells: &TrainingCells,
) -> Option<ExitModel> {
    if cells.is_empty() {
        return None;
    }
    let matrix = Array2::from_shape_fn((cells.len(), FEATURE_COUNT), |(row, column)| {
        cells.features[row][column]
    });
    let standardizer = Standardizer::fit(matrix.view());
    let standardized = standardizer.apply(matrix.view());
    let labels: Vec<usize> = cells
        .targets(target)
        .iter()
        .map(|&met| usize::from(met))
        .collect();
    let positives = labels.iter().sum::<usize>();
    let head = fit_logistic(
        standardized.view(),
        &labels,
        2,
        &FitOptions {
            l2: 1e-4,
            ..FitOptions::default()
        },
        None,
    );
    // Two classes: the log-odds of class 1 is the difference of the two logits.
    let weights = (&head.weights.row(1) - &head.weights.row(0)).to_vec();
    Some(ExitModel {
        policy: kind,
        target,
        features: CELL_FEATURES
            .iter()
            .map(|name| (*name).to_string())
            .collect(),
        mean: standardizer.mean.to_vec(),
        scale: standardizer.scale.to_vec(),
        weights,
        bias: head.bias[1] - head.bias[0],
        training_cells: cells.len(),
        positive_share: positives as f64 / cells.len() as f64,
    })
}

/// Every model a pack stores: for `layer`, `sentence` and `2d`, one per target, each trained
/// on the cells its policy's walks visit.
pub fn fit_exit_models(
    documents: &[TrainingDocument<'_>],
    decision_layer: usize,
) -> Vec<ExitModel> {
    let mut models = Vec::new();
    for kind in [
        PolicyKind::Layer,
        PolicyKind::Sentence,
        PolicyKind::TwoDimensional,
    ] {
        let cells = training_cells(kind, documents, decision_layer);
        for target in ExitTarget::ALL {
            models.extend(fit_exit_model(kind, target, &cells));
        }
    }
    models
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::policy::two_class_grid as grid;

    fn context() -> WalkContext {
        WalkContext {
            layers: 4,
            sentences: 2,
            tokens_total: 30,
        }
    }

    #[test]
    fn features_follow_the_walk() {
        let mut tracker = CellTracker::new(context());
        let first = tracker.observe(
            Cell {
                sentence: 0,
                layer: 0,
            },
            &[0.3, 0.7],
            10,
        );
        assert!((first[0] - 0.7).abs() < 1e-6, "top probability");
        assert!((first[1] - 0.4).abs() < 1e-6, "margin");
        let entropy = -(0.3f32 * 0.3f32.ln() + 0.7 * 0.7f32.ln()) / 2f32.ln();
        assert!((first[2] - entropy).abs() < 1e-6, "normalised entropy");
        assert!(
            (first[3] - 0.4f32.ln_1p()).abs() < 1e-6,
            "accumulated margin"
        );
        assert!((first[4] - 1f32.ln_1p()).abs() < 1e-6, "streak of one");
        assert_eq!((first[5], first[6], first[7]), (0.0, 0.0, 0.0));
        assert!((first[9] - 0.5).abs() < 1e-6, "one of two sentences");
        assert!(
            (first[10] - 10.0 / 30.0).abs() < 1e-6,
            "a third of the tokens"
        );
        // The top class flips at the next cell: the streak restarts and the change is seen.
        let second = tracker.observe(
            Cell {
                sentence: 0,
                layer: 3,
            },
            &[0.9, 0.1],
            10,
        );
        assert_eq!(second[5], 1.0, "top changed");
        assert!(
            (second[6] - (0.9 - 0.3)).abs() < 1e-6,
            "probability change of the new top"
        );
        assert!((second[4] - 1f32.ln_1p()).abs() < 1e-6);
        assert!((second[3] - 1.2f32.ln_1p()).abs() < 1e-6);
        assert_eq!(second[7], 1.0, "last layer");
        let third = tracker.observe(
            Cell {
                sentence: 1,
                layer: 0,
            },
            &[0.8, 0.2],
            30,
        );
        assert!((third[4] - 2f32.ln_1p()).abs() < 1e-6, "two agreeing cells");
        assert_eq!(third[9], 1.0);
        assert_eq!(third[10], 1.0);
        assert!((third[13] - 3f32.ln_1p()).abs() < 1e-6);
    }

    #[test]
    fn a_model_learns_that_confident_cells_agree() {
        // Documents whose cells are right from layer 2 on, with growing confidence: the model
        // must give the confident late cells a higher probability than the early ones.
        let grids: Vec<DocumentGrid> = (0..40)
            .map(|index| {
                let class = index % 2;
                grid(&[8, 8, 8], 6, move |_, layer| {
                    let right = if layer >= 2 {
                        0.6 + 0.07 * layer as f32
                    } else {
                        0.4
                    };
                    if class == 1 { right } else { 1.0 - right }
                })
            })
            .collect();
        let documents: Vec<TrainingDocument<'_>> = grids
            .iter()
            .enumerate()
            .map(|(index, grid)| TrainingDocument {
                grid,
                class: index % 2,
                full_answer: index % 2,
            })
            .collect();
        let models = fit_exit_models(&documents, 5);
        assert_eq!(models.len(), 6);
        for model in &models {
            model.validate().expect("valid");
        }
        let layer_model = models
            .iter()
            .find(|model| model.policy == PolicyKind::Layer && model.target == ExitTarget::Correct)
            .expect("the layer model");
        let context = WalkContext {
            layers: 6,
            sentences: 3,
            tokens_total: 24,
        };
        let mut tracker = CellTracker::new(context);
        let mut probabilities = Vec::new();
        for layer in 0..6 {
            let right = if layer >= 2 {
                0.6 + 0.07 * layer as f32
            } else {
                0.4
            };
            let features = tracker.observe(Cell { sentence: 2, layer }, &[1.0 - right, right], 24);
            probabilities.push(layer_model.probability(&features));
        }
        assert!(probabilities[5] > 0.9, "{probabilities:?}");
        assert!(probabilities[0] < 0.1, "{probabilities:?}");
    }

    #[test]
    fn models_with_other_features_are_refused() {
        let mut model = ExitModel {
            policy: PolicyKind::Layer,
            target: ExitTarget::Correct,
            features: CELL_FEATURES
                .iter()
                .map(|name| (*name).to_string())
                .collect(),
            mean: vec![0.0; FEATURE_COUNT],
            scale: vec![1.0; FEATURE_COUNT],
            weights: vec![0.0; FEATURE_COUNT],
            bias: 0.0,
            training_cells: 1,
            positive_share: 1.0,
        };
        model.validate().expect("valid");
        assert_eq!(model.probability(&[0.0; FEATURE_COUNT]), 0.5);
        model.features.pop();
        assert!(model.validate().unwrap_err().contains("reads features"));
        model.features.push("top_probability".into());
        model.features[13] = "top_probability".into();
        assert!(model.validate().is_err());
    }
}
