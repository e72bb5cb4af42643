//! The paper's staircase schedule, simulated on probability grids, against the depth-capped 2d
//! walk: what an engine that computes each (token, layer) cell exactly once would gain.

use serde::Serialize;

use crate::exit::calibration::{RuleSet, candidate_configs};
use crate::exit::policy::layer_zero_outcome;
use crate::exit::{
    Cell, DocumentGrid, ExitModels, ExitState, Outcome, PolicyConfig, PolicyKind, argmax, simulate,
};

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
    // Layer 0 answers first, as in every walk, when the setting asks it.
    if let Some(outcome) = layer_zero_outcome(config, grid) {
        return outcome;
    }
    // The staircase is the paper's walk with the classic rules; a learned model was trained on
    // other walks, so none is used here.
    let mut state = ExitState::new(config, None, grid.walk_context());
    let mut tokens_read = 0usize;
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
        tokens_read += grid.sentence_tokens[sentence];
        let earlier_layers = earlier_depth.map_or(0, |depth| depth as u64 + 1);
        for layer in 0..=depth {
            let cell = Cell { sentence, layer };
            last_answer = cell;
            if state.observe(cell, &grid.probabilities[sentence][layer], tokens_read) {
                let newly_opened = (layer as u64 + 1).saturating_sub(earlier_layers);
                let cost = computed + tokens_before * newly_opened + tokens * (layer as u64 + 1);
                return Outcome {
                    answer: cell,
                    exited: true,
                    layer_zero: false,
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
        layer_zero: false,
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

/// The calibrated 2d setting against the cheapest settings of both schedules that reach its
/// accuracy on the same documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleReport {
    /// Accuracy of the calibrated 2d setting, simulated on this data: the target.
    pub target_accuracy: f64,
    /// Cost of the calibrated 2d setting relative to full.
    pub calibrated_2d_cost: f64,
    /// Cheapest depth-capped 2d setting on this data reaching the target.
    pub best_2d: Option<ScheduleChoice>,
    /// Cheapest staircase setting on this data reaching the target.
    pub best_staircase: Option<ScheduleChoice>,
}

/// One schedule's cheapest setting at the target accuracy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleChoice {
    /// Its accuracy on the data.
    pub accuracy: f64,
    /// Its cost relative to full.
    pub cost: f64,
    /// `1 / cost`.
    pub speedup_vs_full_ops: f64,
    /// The setting (layers numbered from 1 in the JSON).
    #[serde(serialize_with = "PolicyConfig::serialize_numbered")]
    pub config: PolicyConfig,
    /// Layers opened per sentence (staircase only).
    pub step: Option<usize>,
}

/// Layers the staircase opens with each new sentence.
pub const STAIRCASE_STEPS: [usize; 5] = [1, 2, 3, 4, 6];

/// The calibrated 2d setting (its learned rule's model from `models`) against the cheapest
/// 2d and staircase settings on the same `(grid, true class)` documents that reach its
/// accuracy, on a model with `layers` layers. Both schedules try the classic rules (the
/// paper's): every rule and threshold of the 2d search, the staircase uncapped and at the
/// calibrated cap, opening each of [`STAIRCASE_STEPS`] layers per sentence.
pub fn compare_schedules(
    grids: &[(&DocumentGrid, usize)],
    calibrated: &PolicyConfig,
    layers: usize,
    models: ExitModels<'_>,
) -> ScheduleReport {
    let calibrated_policy = calibrated.policy(layers, models);
    let (target_accuracy, calibrated_2d_cost) =
        schedule_measurement(grids, &|grid| simulate(calibrated_policy.as_ref(), grid));
    // Every schedule asks layer 0 as the calibrated setting does, so that they differ only in
    // how they walk the model's layers.
    let two_dimensional: Vec<PolicyConfig> = candidate_configs(
        PolicyKind::TwoDimensional,
        layers,
        layers - 1,
        RuleSet::Classic.rules(),
    )
    .into_iter()
    .map(|config| PolicyConfig {
        layer_zero_threshold: calibrated.layer_zero_threshold,
        ..config
    })
    .collect();
    let measured_2d: Vec<(f64, f64)> = two_dimensional
        .iter()
        .map(|config| {
            let policy = config.policy(layers, ExitModels::NONE);
            schedule_measurement(grids, &|grid| simulate(policy.as_ref(), grid))
        })
        .collect();
    let choice =
        |config: PolicyConfig, accuracy: f64, cost: f64, step: Option<usize>| ScheduleChoice {
            accuracy,
            cost,
            speedup_vs_full_ops: 1.0 / cost.max(1e-12),
            config,
            step,
        };
    let best_2d = cheapest_at_accuracy(&measured_2d, target_accuracy)
        .map(|(index, accuracy, cost)| choice(two_dimensional[index], accuracy, cost, None));
    let staircase: Vec<(PolicyConfig, usize)> = two_dimensional
        .iter()
        .filter(|config| config.depth_cap == layers - 1 || config.depth_cap == calibrated.depth_cap)
        .flat_map(|&config| STAIRCASE_STEPS.map(|step| (config, step)))
        .collect();
    let measured_staircase: Vec<(f64, f64)> = staircase
        .iter()
        .map(|(config, step)| {
            schedule_measurement(grids, &|grid| simulate_staircase(config, *step, grid))
        })
        .collect();
    let best_staircase = cheapest_at_accuracy(&measured_staircase, target_accuracy).map(
        |(index, accuracy, cost)| {
            let (config, step) = staircase[index];
            choice(config, accuracy, cost, Some(step))
        },
    );
    ScheduleReport {
        target_accuracy,
        calibrated_2d_cost,
        best_2d,
        best_staircase,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitRule;
    use crate::exit::grid::two_class_grid as grid;

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
            layer_zero_threshold: None,
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
        let two_dimensional = simulate(config.policy(6, ExitModels::NONE).as_ref(), &confident);
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

    #[test]
    fn schedules_are_compared_at_the_calibrated_accuracy() {
        // Three sentences of 10 tokens on 6 layers, right and sure (0.99) from layer 2 of the
        // first sentence on, unsure and wrong (0.45) before: the cheapest exact walk of either
        // schedule exits at (0, 2) and costs 10·3 of 30·6 operations.
        let right_from_layer_2 = grid(
            &[10, 10, 10],
            6,
            |_, layer| if layer >= 2 { 0.99 } else { 0.45 },
        );
        let documents = [(&right_from_layer_2, 1), (&right_from_layer_2, 1)];
        // A calibrated setting that never exits before its cap of layer 3 of the last sentence:
        // it is right, at 30·4 of 180 operations.
        let calibrated = PolicyConfig {
            kind: PolicyKind::TwoDimensional,
            rule: ExitRule::MaxProbability,
            threshold: 1.0,
            min_layer: 0,
            patience: 1,
            depth_cap: 3,
            decision_layer: 5,
            min_pass_tokens: 0,
            layer_zero_threshold: None,
        };
        let report = compare_schedules(&documents, &calibrated, 6, ExitModels::NONE);
        assert_eq!(report.target_accuracy, 1.0);
        assert!((report.calibrated_2d_cost - 120.0 / 180.0).abs() < 1e-12);
        let best_2d = report.best_2d.expect("a 2d setting reaches the target");
        assert_eq!(best_2d.accuracy, 1.0);
        assert!((best_2d.cost - 30.0 / 180.0).abs() < 1e-12, "{best_2d:?}");
        assert!((best_2d.speedup_vs_full_ops - 6.0).abs() < 1e-9);
        let staircase = report
            .best_staircase
            .expect("a staircase reaches the target");
        assert!(
            (staircase.cost - 30.0 / 180.0).abs() < 1e-12,
            "{staircase:?}"
        );
        // Opening fewer than 3 layers with the first sentence cannot exit there.
        assert!(
            staircase.step.is_some_and(|step| step >= 3),
            "{staircase:?}"
        );
    }
}
