//! The learned exit rule as a walk uses it: a small logistic regression, stored in the pack, that
//! maps what the online walk knows at a cell to the probability that the answer there is
//! final-quality — the one `full` would give ([`ExitTarget::AgreesWithFull`]) or the true class
//! ([`ExitTarget::Correct`]). Its training is [`super::learned_training`].
//!
//! Its inputs ([`CELL_FEATURES`]) are only what a walk knows when it reaches a cell: the cell's
//! probabilities (top class, margin, entropy), the margin accumulated over the cells visited,
//! how many consecutive visited cells agreed on the top class, the change since the previous
//! visited cell, the layer, and how much of the document (sentences, tokens) has been read out
//! of how much there is — the text is whole before classification starts. [`CellTracker`]
//! computes them, identically for training rows, for the simulation and for the online walk.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::grid::{Cell, WalkContext, argmax};
use super::setting::{ExitTarget, PolicyConfig, PolicyKind};

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
        let top = argmax(probabilities);
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

#[cfg(test)]
mod tests {
    use super::*;

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
