//! Training the learned exit rule ([`super::learned`]): the cells the walks of each policy visit
//! on training documents, their features and whether each answer met its target, and the
//! logistic regression fitted on them.
//!
//! The model is trained on cells the heads did not see (see [`crate::heads::training`]'s
//! cross-fitting): heads fitted on one half of the training documents give the probabilities of
//! the other half's cells, and the other way round.

use ndarray::Array2;

use super::grid::{DocumentGrid, argmax};
use super::learned::{CELL_FEATURES, CellTracker, ExitModel, ExitModels, FEATURE_COUNT};
use super::policy::visited_cells;
use super::setting::{ExitRule, ExitTarget, PolicyConfig, PolicyKind, TWO_DIMENSIONAL_PASS_TOKENS};
use crate::heads::logistic::{FitOptions, Standardizer, fit_logistic};

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
            TWO_DIMENSIONAL_PASS_TOKENS
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
        let context = grid.walk_context();
        for walk in training_walks(kind, grid.layers(), decision_layer, index) {
            let policy = walk.policy(grid.layers(), ExitModels::NONE);
            let mut tracker = CellTracker::new(context);
            for (cell, tokens_read) in visited_cells(policy.as_ref(), grid) {
                let probabilities = &grid.probabilities[cell.sentence][cell.layer];
                cells
                    .features
                    .push(tracker.observe(cell, probabilities, tokens_read));
                let answer = argmax(probabilities);
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
    use crate::exit::grid::{Cell, WalkContext, two_class_grid as grid};

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
}
