//! The online classifier against the simulation it is calibrated with.

use exitwise::classifier::Classifier;
use exitwise::engine::{Session, SessionOptions};
use exitwise::exit::{DocumentGrid, ExitRule, PolicyConfig, PolicyKind, simulate};
use exitwise::features::{FeatureAccumulator, extract_document_features};
use exitwise::pack::AdapterPack;
use exitwise::pack::calibrate::{DocumentTokens, document_grid};
use exitwise::text::{PreparedDocument, prepare_document};

use crate::common::{TestModel, shared_model, tiny_pack};

const TEXTS: [&str; 3] = [
    "A charming, warm film with a great cast. I enjoyed it a lot. The music is lovely too.",
    "Poorly written and badly acted. I was bored stiff.\nThe ending is even worse. Avoid.",
    "The plot is thin. Still, the lead is wonderful and the last act is moving. Worth seeing.",
];

fn options() -> SessionOptions {
    SessionOptions {
        context_tokens: 512,
        threads: Some(1),
        poll: None,
        sessions_in_process: 1,
        tap: true,
    }
}

/// The probability grid of `document` as calibration sees it: features extracted sentence by
/// sentence through `session`, every cell's head applied.
fn grid_of(
    pack: &AdapterPack,
    session: &mut Session<'_>,
    accumulator: &mut FeatureAccumulator,
    document: &PreparedDocument,
) -> DocumentGrid {
    let features = extract_document_features(session, accumulator, document).expect("features");
    document_grid(pack, &features, &DocumentTokens::of(document))
}

/// `config` simulated on `grid` and run online on `document` (a fresh session per run).
fn both_ways(
    model: &exitwise::engine::Model,
    pack: &AdapterPack,
    grid: &DocumentGrid,
    document: &PreparedDocument,
    config: PolicyConfig,
) -> (
    exitwise::exit::Outcome,
    exitwise::classifier::Classification,
) {
    let simulated = simulate(
        config.policy(model.layers(), pack.exit_models()).as_ref(),
        grid,
    );
    let mut classifier = Classifier::new(
        Session::new(model, &options()).expect("session"),
        pack,
        config,
    );
    (simulated, classifier.classify(document).expect("classify"))
}

#[test]
fn online_classification_exits_where_the_simulation_does_and_costs_the_same() {
    let (Some(model), Some((_, pack))) = (shared_model(TestModel::Gemma), tiny_pack()) else {
        return;
    };
    let layers = model.layers();
    // (policy, rule, threshold, depth cap, fewest tokens per 2d pass)
    let configs = [
        (PolicyKind::Full, ExitRule::MaxProbability, 1.0, 17, 0),
        (PolicyKind::Layer, ExitRule::MaxProbability, 0.9, 17, 0),
        (PolicyKind::Layer, ExitRule::AccumulatedMargin, 3.0, 17, 0),
        (PolicyKind::Sentence, ExitRule::MaxProbability, 0.9, 17, 0),
        (
            PolicyKind::TwoDimensional,
            ExitRule::MaxProbability,
            0.9,
            6,
            0,
        ),
        (
            PolicyKind::TwoDimensional,
            ExitRule::AccumulatedMargin,
            4.0,
            9,
            0,
        ),
        (
            PolicyKind::TwoDimensional,
            ExitRule::MaxProbability,
            1.1,
            4,
            0,
        ),
        // Passes of several sentences (the texts have 3 or 4 sentences of a few tokens).
        (
            PolicyKind::TwoDimensional,
            ExitRule::AccumulatedMargin,
            4.0,
            9,
            12,
        ),
        (
            PolicyKind::TwoDimensional,
            ExitRule::MaxProbability,
            1.1,
            17,
            12,
        ),
        (
            PolicyKind::TwoDimensional,
            ExitRule::MaxProbability,
            0.9,
            8,
            1000,
        ),
        // The learned rules: their features follow the walk (streaks, accumulated margin,
        // tokens read), which the online walk must reproduce cell for cell.
        (PolicyKind::Layer, ExitRule::LearnedAgreement, 0.6, 17, 0),
        (PolicyKind::Layer, ExitRule::LearnedCorrect, 0.95, 17, 0),
        (PolicyKind::Sentence, ExitRule::LearnedCorrect, 0.6, 17, 0),
        (
            PolicyKind::TwoDimensional,
            ExitRule::LearnedAgreement,
            0.6,
            9,
            0,
        ),
        (
            PolicyKind::TwoDimensional,
            ExitRule::LearnedCorrect,
            0.8,
            17,
            12,
        ),
        (
            PolicyKind::TwoDimensional,
            ExitRule::LearnedAgreement,
            0.99,
            5,
            1000,
        ),
    ];
    // Training gave the pack a learned model for every policy and target.
    assert_eq!(pack.manifest.exit_models.len(), 6);
    let mut extraction = Session::new(model, &options()).expect("session");
    let mut accumulator = FeatureAccumulator::new(layers, model.width());
    for text in TEXTS {
        let document = prepare_document(model, text, pack.manifest.token_limit).expect("prepare");
        let grid = grid_of(pack, &mut extraction, &mut accumulator, &document);
        for (kind, rule, threshold, depth_cap, min_pass_tokens) in configs {
            let config = PolicyConfig {
                kind,
                rule,
                threshold,
                min_layer: 0,
                patience: 1,
                depth_cap,
                decision_layer: pack.manifest.best_layer,
                min_pass_tokens,
                layer_zero_threshold: None,
            };
            let (simulated, online) = both_ways(model, pack, &grid, &document, config);
            let context = format!(
                "{kind:?} {rule:?} {threshold} cap {depth_cap} passes {min_pass_tokens} on {text:?}"
            );
            assert_eq!(online.exit.cell, simulated.answer, "{context}");
            assert_eq!(
                online.exit.sentences_read(),
                simulated.sentences_read,
                "{context}"
            );
            assert_eq!(online.exit.exited, simulated.exited, "{context}");
            assert_eq!(online.class, simulated.prediction, "{context}");
            assert_eq!(online.token_layers, simulated.token_layers, "{context}");
            assert_eq!(
                online.full_token_layers, simulated.full_token_layers,
                "{context}"
            );
            let expected = &grid.probabilities[simulated.answer.sentence][simulated.answer.layer];
            for (online, expected) in online.probabilities.iter().zip(expected) {
                assert!(
                    (online - expected).abs() < 0.02,
                    "{context}: {online} vs {expected}"
                );
            }
            if kind == PolicyKind::TwoDimensional {
                assert!(online.exit.cell.layer <= depth_cap);
            }
        }
    }
}

#[test]
fn a_layer_zero_answer_online_is_the_simulated_one_and_costs_no_layer() {
    let (Some(model), Some((_, pack))) = (shared_model(TestModel::Gemma), tiny_pack()) else {
        return;
    };
    let layers = model.layers();
    let head = pack
        .layer_zero
        .as_ref()
        .expect("training gave the pack a layer-0 head");
    let mut extraction = Session::new(model, &options()).expect("session");
    let mut accumulator = FeatureAccumulator::new(layers, model.width());
    let mut layer_zero_answers = 0;
    for text in TEXTS {
        let document = prepare_document(model, text, pack.manifest.token_limit).expect("prepare");
        let grid = grid_of(pack, &mut extraction, &mut accumulator, &document);
        let layer_zero = grid.layer_zero.clone().expect("layer-0 probabilities");
        assert_eq!(layer_zero, head.probabilities(&document.token_ids()));
        // Two classes: a threshold of 0.5 always answers at layer 0, 1.1 never does.
        for threshold in [0.5, 0.6, 0.75, 0.9, 1.1] {
            let config = PolicyConfig {
                kind: PolicyKind::TwoDimensional,
                rule: ExitRule::MaxProbability,
                threshold: 0.9,
                min_layer: 0,
                patience: 1,
                depth_cap: 6,
                decision_layer: pack.manifest.best_layer,
                min_pass_tokens: 0,
                layer_zero_threshold: Some(threshold),
            };
            let (simulated, online) = both_ways(model, pack, &grid, &document, config);
            let context = format!("layer 0 at {threshold} on {text:?}");
            assert_eq!(online.exit.layer_zero, simulated.layer_zero, "{context}");
            assert_eq!(online.class, simulated.prediction, "{context}");
            assert_eq!(online.token_layers, simulated.token_layers, "{context}");
            if threshold == 0.5 {
                assert!(online.exit.layer_zero, "{context}");
            }
            if threshold > 1.0 {
                assert!(!online.exit.layer_zero, "{context}");
            }
            if online.exit.layer_zero {
                layer_zero_answers += 1;
                assert_eq!(online.exit.layer_number(), 0, "{context}");
                assert_eq!(online.exit.sentences_read(), document.sentences.len());
                assert_eq!(
                    (online.tokens_read, online.token_layers),
                    (0, 0),
                    "{context}"
                );
                assert_eq!(online.probabilities, layer_zero, "{context}");
            } else {
                assert!(online.exit.layer_number() >= 1, "{context}");
                assert!(online.token_layers > 0, "{context}");
            }
        }
    }
    assert!(layer_zero_answers >= TEXTS.len());
}

#[test]
fn a_pass_longer_than_one_decode_is_fed_in_batches_and_answers_as_in_one() {
    let (Some(model), Some((_, pack))) = (shared_model(TestModel::Gemma), tiny_pack()) else {
        return;
    };
    let layers = model.layers();
    let long = SessionOptions {
        context_tokens: 4096,
        ..options()
    };
    // About 2,400 tokens: more than one decode takes (2,048), read whole by `full` and `layer`.
    let text = TEXTS.join("\n").repeat(36);
    let document = prepare_document(model, &text, 4096).expect("prepare");
    assert!(document.token_count() > 2048, "{}", document.token_count());
    assert!(!document.truncated);
    let mut extraction = Session::new(model, &long).expect("session");
    let mut accumulator = FeatureAccumulator::new(layers, model.width());
    let grid = grid_of(pack, &mut extraction, &mut accumulator, &document);
    // One decode and sentence-by-sentence feeding round differently (about 0.01 on a
    // probability here), so `layer` gets a threshold no rounding crosses: halfway across the
    // first clear rise of the top probability over the layers below it.
    let top: Vec<f32> = grid.probabilities[document.sentences.len() - 1]
        .iter()
        .map(|probabilities| probabilities.iter().copied().fold(0.0, f32::max))
        .collect();
    let threshold = (1..layers)
        .find_map(|layer| {
            let below = top[..layer].iter().copied().fold(0.0, f32::max);
            (top[layer] - below > 0.04).then_some((below + top[layer]) / 2.0)
        })
        .expect("the top probability rises somewhere");
    for (kind, threshold) in [(PolicyKind::Full, 1.0), (PolicyKind::Layer, threshold)] {
        let config = PolicyConfig {
            kind,
            rule: ExitRule::MaxProbability,
            threshold,
            min_layer: 0,
            patience: 1,
            depth_cap: 17,
            decision_layer: pack.manifest.best_layer,
            min_pass_tokens: 0,
            layer_zero_threshold: None,
        };
        let simulated = simulate(config.policy(layers, pack.exit_models()).as_ref(), &grid);
        let mut classifier =
            Classifier::new(Session::new(model, &long).expect("session"), pack, config);
        let online = classifier.classify(&document).expect("classify");
        assert_eq!(online.exit.cell, simulated.answer, "{kind:?}");
        assert_eq!(online.tokens_read, document.token_count(), "{kind:?}");
        // The leading batch runs to the pass's depth whatever layer the last one exits at.
        assert!(online.token_layers >= simulated.token_layers, "{kind:?}");
        let expected = &grid.probabilities[simulated.answer.sentence][simulated.answer.layer];
        for (online, expected) in online.probabilities.iter().zip(expected) {
            assert!(
                (online - expected).abs() < 0.02,
                "{kind:?}: {online} vs {expected}"
            );
        }
    }
}
