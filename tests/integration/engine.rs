//! The engine against real models: every layer tapped, stops that really stop, KV-cache reuse
//! across sentences, reset between documents.

use exitwise::engine::{EngineError, Flow, LayerHidden, Model, Session, SessionOptions, Token};
use exitwise::text::prepare_document;
use ndarray::Array2;

use crate::common::{TestModel, cosine, shared_model};

const REVIEW: &str = "I went in expecting very little from this film. The first half hour is slow, \
and the dialogue is often clumsy!\nStill, the lead actress carries every scene she is in. By the \
end I was completely won over, and I would happily watch it again.";

/// Runs `test` on every test model that is present (both architectures).
fn for_each_model(test: impl Fn(&Model)) {
    for which in [TestModel::Gemma, TestModel::Smol] {
        if let Some(model) = shared_model(which) {
            test(model);
        }
    }
}

/// One thread per session: the test harness already runs tests in parallel on the two cores.
fn session(model: &Model, context_tokens: usize) -> Session<'_> {
    Session::new(
        model,
        &SessionOptions {
            context_tokens,
            threads: Some(1),
            poll: None,
            sessions_in_process: 1,
            tap: true,
        },
    )
    .expect("session")
}

fn tokens_of(model: &Model, text: &str) -> Vec<Token> {
    let mut tokens = model.document_start_tokens();
    tokens.extend(model.tokenize(text).expect("tokenize"));
    tokens
}

/// Records what the tap shows, optionally stopping after a layer.
#[derive(Default)]
struct Recorder {
    stop_after: Option<usize>,
    layers: Vec<usize>,
    states: Vec<Array2<f32>>,
    batch_tokens: Vec<usize>,
}

impl Recorder {
    fn stopping_after(layer: usize) -> Self {
        Recorder {
            stop_after: Some(layer),
            ..Recorder::default()
        }
    }

    fn last_token(&self, layer: usize) -> Vec<f32> {
        let states = &self.states[layer];
        states.row(states.nrows() - 1).to_vec()
    }
}

impl exitwise::engine::LayerObserver for Recorder {
    fn on_layer(&mut self, hidden: &LayerHidden<'_>) -> Flow {
        self.layers.push(hidden.layer());
        self.states.push(hidden.states().to_owned());
        self.batch_tokens.push(hidden.batch_tokens());
        match self.stop_after {
            Some(layer) if hidden.layer() >= layer => Flow::Stop,
            _ => Flow::Continue,
        }
    }
}

#[test]
fn every_layer_is_tapped_once_per_decode_with_the_model_width() {
    for_each_model(|model| {
        let layers = model.layers();
        let tokens = tokens_of(model, REVIEW);
        let mut session = session(model, 256);
        for decode in 0..2 {
            let mut recorder = Recorder::default();
            // The second decode continues the document: the tap must behave the same.
            let batch = if decode == 0 {
                &tokens[..]
            } else {
                &tokens[1..6]
            };
            let outcome = session.feed(batch, &mut recorder).expect("decode");
            assert_eq!(recorder.layers, (0..layers).collect::<Vec<_>>());
            assert_eq!(outcome.layers_computed, layers);
            assert!(!outcome.stopped_early);
            for (layer, states) in recorder.states.iter().enumerate() {
                assert_eq!(states.ncols(), model.width(), "layer {layer} width");
                // The last layer computes only the output row; every other layer has all rows.
                let expected_rows = if layer + 1 == layers { 1 } else { batch.len() };
                assert_eq!(states.nrows(), expected_rows, "layer {layer} rows");
                assert!(
                    states.iter().all(|value| value.is_finite()),
                    "layer {layer} finite"
                );
            }
            assert!(
                recorder
                    .batch_tokens
                    .iter()
                    .all(|&count| count == batch.len())
            );
        }
        assert_eq!(session.position(), tokens.len() + 5);
    });
}

#[test]
fn stopping_after_layer_k_computes_exactly_layers_zero_to_k() {
    for_each_model(|model| {
        let layers = model.layers();
        let tokens = tokens_of(model, REVIEW);
        for stop in [0, 1, layers / 2, layers - 2, layers - 1] {
            let mut session = session(model, 256);
            let mut recorder = Recorder::stopping_after(stop);
            let outcome = session
                .feed(&tokens, &mut recorder)
                .expect("decode after a stop");
            assert_eq!(
                recorder.layers,
                (0..=stop).collect::<Vec<_>>(),
                "stop {stop}"
            );
            assert_eq!(outcome.layers_computed, stop + 1);
            assert_eq!(outcome.stopped_early, stop + 1 < layers);
            assert_eq!(session.complete_layers(), stop + 1);
            // The session goes on after a stop.
            let mut next = Recorder::default();
            session
                .feed(&tokens[1..4], &mut next)
                .expect("decode after a stop");
            assert_eq!(next.layers.len(), layers);
            assert_eq!(
                session.complete_layers(),
                stop + 1,
                "a stop is remembered until reset"
            );
            session.reset();
            assert_eq!(session.complete_layers(), layers);
        }
    });
}

#[test]
fn hidden_states_up_to_the_stop_are_identical_with_and_without_it() {
    for_each_model(|model| {
        let tokens = tokens_of(model, REVIEW);
        let stop = model.layers() / 2;
        let mut session = session(model, 256);
        let mut full = Recorder::default();
        session.feed(&tokens, &mut full).expect("full decode");
        session.reset();
        let mut stopped = Recorder::stopping_after(stop);
        session.feed(&tokens, &mut stopped).expect("stopped decode");
        for layer in 0..=stop {
            let difference = (&full.states[layer] - &stopped.states[layer])
                .iter()
                .fold(0f32, |worst, value| worst.max(value.abs()));
            assert!(difference <= 1e-5, "layer {layer} differs by {difference}");
        }
    });
}

#[test]
fn a_new_thread_count_computes_the_same_hidden_states() {
    for_each_model(|model| {
        let tokens = tokens_of(model, REVIEW);
        let mut session = session(model, 256);
        let mut one_thread = Recorder::default();
        session
            .feed(&tokens, &mut one_thread)
            .expect("decode on one thread");
        for threads in [2, 1] {
            session.set_threads(threads).expect("new thread pool");
            assert_eq!(session.threads(), threads);
            session.reset();
            let mut again = Recorder::default();
            session
                .feed(&tokens, &mut again)
                .expect("decode after the change");
            assert_eq!(again.layers, one_thread.layers);
            for layer in 0..model.layers() {
                let similarity = cosine(&one_thread.last_token(layer), &again.last_token(layer));
                assert!(
                    similarity > 0.99999,
                    "{threads} thread(s), layer {layer}: cosine {similarity}"
                );
            }
        }
    });
}

#[test]
fn sentence_by_sentence_matches_the_whole_document_at_once() {
    for_each_model(|model| {
        let layers = model.layers();
        let document = prepare_document(model, REVIEW, 2048).expect("prepare");
        assert!(
            document.sentences.len() >= 4,
            "the review has several sentences"
        );
        let all_tokens = crate::common::all_tokens(&document);

        let mut whole_session = session(model, 512);
        let mut whole = Recorder::default();
        whole_session
            .feed(&all_tokens, &mut whole)
            .expect("whole decode");

        let mut incremental_session = session(model, 512);
        let mut end = 0;
        let mut last = Recorder::default();
        for sentence in &document.sentences {
            let mut recorder = Recorder::default();
            incremental_session
                .feed(&sentence.tokens, &mut recorder)
                .expect("sentence decode");
            end += sentence.tokens.len();
            // Each sentence's last token must match the whole decode's row at that position
            // (every layer but the last keeps all rows in the whole decode).
            for layer in 0..layers - 1 {
                let whole_row = whole.states[layer].row(end - 1).to_vec();
                let similarity = cosine(&recorder.last_token(layer), &whole_row);
                assert!(
                    similarity > 0.999,
                    "layer {layer}, token {end}: cosine {similarity}"
                );
            }
            last = recorder;
        }
        assert_eq!(incremental_session.position(), all_tokens.len());
        for layer in 0..layers {
            let similarity = cosine(&last.last_token(layer), &whole.last_token(layer));
            assert!(
                similarity > 0.999,
                "final token, layer {layer}: cosine {similarity}"
            );
        }
    });
}

#[test]
fn reset_makes_the_next_document_independent_of_a_stopped_one() {
    for_each_model(|model| {
        let first = tokens_of(
            model,
            "This is a completely different text about tax law and accounting.",
        );
        let second = tokens_of(model, REVIEW);

        let mut fresh_session = session(model, 256);
        let mut fresh = Recorder::default();
        fresh_session
            .feed(&second, &mut fresh)
            .expect("fresh decode");

        let mut reused = session(model, 256);
        reused
            .feed(&first, &mut Recorder::stopping_after(2))
            .expect("stopped document");
        reused.reset();
        assert_eq!(reused.position(), 0);
        let mut after = Recorder::default();
        reused.feed(&second, &mut after).expect("second document");
        for layer in 0..model.layers() {
            let similarity = cosine(&after.last_token(layer), &fresh.last_token(layer));
            assert!(similarity > 0.99999, "layer {layer}: cosine {similarity}");
        }
    });
}

#[test]
fn an_observer_panic_reaches_the_caller_and_the_session_survives() {
    let Some(model) = shared_model(TestModel::Gemma) else {
        return;
    };
    let tokens = tokens_of(model, REVIEW);
    let mut session = session(model, 256);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut observer = |hidden: &LayerHidden<'_>| -> Flow {
            assert!(hidden.layer() < 3, "observer gives up at layer 3");
            Flow::Continue
        };
        let _ = session.feed(&tokens, &mut observer);
    }));
    assert!(result.is_err(), "the panic crossed back into Rust");
    session.reset();
    let mut recorder = Recorder::default();
    session
        .feed(&tokens, &mut recorder)
        .expect("the session still decodes");
    assert_eq!(recorder.layers.len(), model.layers());
}

#[test]
fn a_full_context_and_an_empty_batch_are_errors_not_crashes() {
    let Some(model) = shared_model(TestModel::Gemma) else {
        return;
    };
    let tokens = tokens_of(model, REVIEW);
    let mut session = session(model, 16);
    let error = session.feed(&tokens, &mut Recorder::default()).unwrap_err();
    assert!(
        matches!(
            error,
            EngineError::ContextFull {
                used: 0,
                capacity: 16,
                ..
            }
        ),
        "{error}"
    );
    let error = session.feed(&[], &mut Recorder::default()).unwrap_err();
    assert_eq!(error.to_string(), "no tokens to decode");
    session
        .feed(&tokens[..8], &mut Recorder::default())
        .expect("a batch that fits");
}

#[test]
fn an_untapped_session_decodes_but_refuses_to_tap() {
    let Some(model) = shared_model(TestModel::Gemma) else {
        return;
    };
    let tokens = tokens_of(model, REVIEW);
    let options = SessionOptions {
        context_tokens: 256,
        threads: Some(1),
        poll: None,
        sessions_in_process: 1,
        tap: false,
    };
    let mut plain = Session::new(model, &options).expect("plain session");
    plain.feed_untapped(&tokens).expect("plain decode");
    assert_eq!(plain.position(), tokens.len());
    let error = plain
        .feed(&tokens[..2], &mut Recorder::default())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "this session was created without the layer tap"
    );
}

#[test]
fn one_pass_with_sentence_ends_as_outputs_matches_sentence_by_sentence_features() {
    use exitwise::features::{FeatureAccumulator, FeatureKind, extract_document_features};
    for_each_model(|model| {
        let layers = model.layers();
        let document = prepare_document(model, REVIEW, 2048).expect("prepare");
        let mut session = session(model, 512);
        let mut accumulator = FeatureAccumulator::new(layers, model.width());
        let incremental =
            extract_document_features(&mut session, &mut accumulator, &document).expect("features");

        let mut ends = Vec::new();
        let mut end = 0;
        for sentence in &document.sentences {
            end += sentence.tokens.len();
            ends.push(end - 1);
        }
        session.reset();
        let mut one_pass = FeatureAccumulator::new(layers, model.width());
        let mut rows_at_last_layer = 0;
        let mut observer = |hidden: &LayerHidden<'_>| {
            if hidden.layer() + 1 == layers {
                rows_at_last_layer = hidden.states().nrows();
            }
            one_pass.record(hidden.layer(), hidden.states());
            Flow::Continue
        };
        session
            .feed_with_outputs(&crate::common::all_tokens(&document), &ends, &mut observer)
            .expect("one pass");
        assert_eq!(rows_at_last_layer, document.sentences.len());
        let last_prefix = incremental.prefixes() - 1;
        for kind in FeatureKind::ALL {
            for layer in 0..layers {
                let expected = incremental
                    .of(kind)
                    .slice(ndarray::s![last_prefix, layer, ..])
                    .to_vec();
                let similarity = cosine(&one_pass.current(kind, layer).to_vec(), &expected);
                assert!(
                    similarity > 0.999,
                    "{kind:?} layer {layer}: cosine {similarity}"
                );
            }
        }
        let error = session.feed_with_outputs(
            &crate::common::all_tokens(&document)[..3],
            &[2, 1],
            &mut Recorder::default(),
        );
        assert!(error.is_err(), "outputs must ascend");
    });
}
