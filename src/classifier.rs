//! The online classifier: runs a document through the engine under an exit policy, computing
//! only what the policy needs, and answers with the head of the cell where it stopped.
//!
//! It walks the same grid as [`crate::policy::simulate`] does on cached features, in the same
//! order and with the same [`ExitState`], so calibration on dev data predicts what it does.

use crate::document::PreparedDocument;
use crate::engine::{EngineError, Flow, LayerHidden, LayerObserver, Session};
use crate::features::FeatureAccumulator;
use crate::pack::AdapterPack;
use crate::policy::{Cell, ExitState, PolicyConfig, PolicyKind, argmax};

/// Where and how a classification stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReport {
    /// Sentences read (1-based count).
    pub sentence: usize,
    /// Sentences of the document within the token limit.
    pub sentences: usize,
    /// Layer whose head answered (0-based).
    pub layer: usize,
    /// Layers of the model.
    pub layers: usize,
    /// The policy.
    pub policy: PolicyKind,
    /// Whether a confident cell ended the walk.
    pub exited: bool,
}

/// The answer for one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Index of the predicted label.
    pub class: usize,
    /// Calibrated probabilities of every label at the answering cell.
    pub probabilities: Vec<f32>,
    /// Where it stopped.
    pub exit: ExitReport,
    /// Tokens fed to the model.
    pub tokens_read: usize,
    /// Tokens of the document within the token limit.
    pub tokens_total: usize,
    /// Whether the token limit cut the document.
    pub truncated: bool,
    /// Token×layer operations computed.
    pub token_layers: u64,
    /// Token×layer operations of the whole document at full depth.
    pub full_token_layers: u64,
}

/// Feeds features to the accumulator and, when it has an exit state, decides at each layer.
struct PolicyObserver<'a> {
    accumulator: &'a mut FeatureAccumulator,
    pack: &'a AdapterPack,
    state: Option<&'a mut ExitState>,
    sentence: usize,
    /// Stop after this layer.
    cap: usize,
    /// The only layer needed (`full` and `sentence`); `None`: every layer up to the cap.
    watched: Option<usize>,
    /// The exit cell and its probabilities, once found.
    exit: Option<(Cell, Vec<f32>)>,
}

impl LayerObserver for PolicyObserver<'_> {
    fn on_layer(&mut self, hidden: &LayerHidden<'_>) -> Flow {
        let layer = hidden.layer();
        self.accumulator.record(layer, hidden.states());
        if let Some(state) = self.state.as_deref_mut() {
            let feature = self
                .accumulator
                .current(self.pack.manifest.feature_kind, layer);
            let probabilities = self.pack.probabilities(layer, feature).to_vec();
            let cell = Cell {
                sentence: self.sentence,
                layer,
            };
            if state.observe(cell, &probabilities) {
                self.exit = Some((cell, probabilities));
                return Flow::Stop;
            }
        }
        if layer >= self.cap {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn wants_layer(&self, layer: usize) -> bool {
        self.watched.is_none_or(|watched| watched == layer)
    }
}

/// A session, a pack and an exit setting, ready to classify documents one after the other.
pub struct Classifier<'model, 'pack> {
    session: Session<'model>,
    pack: &'pack AdapterPack,
    accumulator: FeatureAccumulator,
    config: PolicyConfig,
}

impl<'model, 'pack> Classifier<'model, 'pack> {
    /// A classifier over `session` (whose context must hold the pack's token limit).
    pub fn new(session: Session<'model>, pack: &'pack AdapterPack, config: PolicyConfig) -> Self {
        let model = session.model();
        let accumulator = FeatureAccumulator::new(model.layers(), model.width());
        Classifier {
            session,
            pack,
            accumulator,
            config,
        }
    }

    /// The exit setting in use.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The pack in use.
    pub fn pack(&self) -> &'pack AdapterPack {
        self.pack
    }

    /// The answer when no cell was confident: the head of `layer` on everything read.
    fn last_sentence_answer(&self, last_sentence: usize, layer: usize) -> (Cell, Vec<f32>, bool) {
        let feature = self
            .accumulator
            .current(self.pack.manifest.feature_kind, layer);
        let probabilities = self.pack.probabilities(layer, feature).to_vec();
        let cell = Cell {
            sentence: last_sentence,
            layer,
        };
        (cell, probabilities, false)
    }

    /// Classifies one prepared document.
    pub fn classify(&mut self, document: &PreparedDocument) -> Result<Classification, EngineError> {
        let pack = self.pack;
        let layers = pack.heads.len();
        let last_layer = layers - 1;
        let config = self.config;
        let decision_layer = config.decision_layer.min(last_layer);
        let sentences = document.sentences.len();
        let last_sentence = sentences.saturating_sub(1);
        let tokens_total = document.token_count();
        let mut state = ExitState::new(&config);
        let mut token_layers = 0u64;
        let mut tokens_read = 0usize;
        self.session.reset();
        self.accumulator.reset();
        let kind = pack.manifest.feature_kind;

        let (answer, probabilities, exited) = match config.kind {
            PolicyKind::Full | PolicyKind::Layer => {
                // The whole document in one pass; sentence ends are outputs so that the last
                // layer sees the same rows as in training.
                let tokens = document.all_tokens();
                let mut ends = Vec::with_capacity(sentences);
                let mut end = 0;
                for sentence in &document.sentences {
                    end += sentence.tokens.len();
                    ends.push(end - 1);
                }
                let deciding = config.kind == PolicyKind::Layer;
                let mut observer = PolicyObserver {
                    accumulator: &mut self.accumulator,
                    pack,
                    state: deciding.then_some(&mut state),
                    sentence: last_sentence,
                    cap: last_layer,
                    watched: (!deciding).then_some(decision_layer),
                    exit: None,
                };
                let outcome = self
                    .session
                    .feed_with_outputs(&tokens, &ends, &mut observer)?;
                let exit = observer.exit.take();
                tokens_read += outcome.tokens;
                token_layers += (outcome.tokens * outcome.layers_computed) as u64;
                match exit {
                    Some((cell, probabilities)) => (cell, probabilities, true),
                    None => {
                        let layer = if deciding { last_layer } else { decision_layer };
                        self.last_sentence_answer(last_sentence, layer)
                    }
                }
            }
            PolicyKind::Sentence | PolicyKind::TwoDimensional => {
                let two_dimensional = config.kind == PolicyKind::TwoDimensional;
                let cap = if two_dimensional {
                    config.depth_cap.min(last_layer)
                } else {
                    last_layer
                };
                let mut found = None;
                for (index, sentence) in document.sentences.iter().enumerate() {
                    let mut observer = PolicyObserver {
                        accumulator: &mut self.accumulator,
                        pack,
                        state: two_dimensional.then_some(&mut state),
                        sentence: index,
                        cap,
                        watched: (!two_dimensional).then_some(decision_layer),
                        exit: None,
                    };
                    let outcome = self.session.feed(&sentence.tokens, &mut observer)?;
                    let exit = observer.exit.take();
                    tokens_read += outcome.tokens;
                    token_layers += (outcome.tokens * outcome.layers_computed) as u64;
                    if let Some((cell, probabilities)) = exit {
                        found = Some((cell, probabilities, true));
                        break;
                    }
                    if !two_dimensional {
                        let cell = Cell {
                            sentence: index,
                            layer: decision_layer,
                        };
                        let probabilities = pack
                            .probabilities(
                                decision_layer,
                                self.accumulator.current(kind, decision_layer),
                            )
                            .to_vec();
                        if state.observe(cell, &probabilities) {
                            found = Some((cell, probabilities, true));
                            break;
                        }
                    }
                }
                found.unwrap_or_else(|| {
                    let layer = if two_dimensional { cap } else { decision_layer };
                    self.last_sentence_answer(last_sentence, layer)
                })
            }
        };
        let class = argmax(&probabilities);
        Ok(Classification {
            class,
            probabilities,
            exit: ExitReport {
                sentence: answer.sentence + 1,
                sentences,
                layer: answer.layer,
                layers,
                policy: config.kind,
                exited,
            },
            tokens_read,
            tokens_total,
            truncated: document.truncated,
            token_layers,
            full_token_layers: (tokens_total * layers) as u64,
        })
    }
}
