//! Unit tests of the calibration, on small hand-made grids.

use super::sequences::{frontier, thin};
use super::*;
use crate::exit::bound::clopper_pearson_upper;
use crate::exit::grid::DocumentGrid;
use crate::exit::learned::ExitModels;
use crate::exit::setting::{
    Budget, ExitRule, PolicyConfig, PolicyKind, WHOLE_DOCUMENT_PASS_TOKENS,
};

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
