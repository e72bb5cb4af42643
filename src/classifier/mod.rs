//! The online classifier: runs a document through the engine under an exit policy, computing
//! only what the policy needs, and answers with the head of the cell where it stopped.
//!
//! It walks documents through the same [`ExitPolicy`] as [`crate::exit::simulate`] does on
//! cached features, in the same order and with the same [`ExitState`], so calibration on dev
//! data predicts what it does. [`record`] turns a classification into the record users see;
//! [`parallel`] classifies several documents at once, each on its own session over one model;
//! [`batch`] keeps the output of long jobs resumable and splits inputs into shards.
//!
//! Every classification also leaves its [`Feeding`]: the passes fed to the model and the layer
//! each stopped after. [`Classifier::replay`] feeds a recorded one again, with the same taps
//! and heads but the recorded exit instead of the exit rule's, so that the cost of a run can
//! be measured on another machine, or on a model with the same shapes and other weights.

pub mod batch;
pub mod parallel;
pub mod record;

use crate::engine::{EngineError, Flow, LayerHidden, LayerObserver, Session};
use crate::exit::policy::layer_zero_exits;
use crate::exit::{Cell, ExitPolicy, ExitState, PolicyConfig, PolicyKind, WalkContext, argmax};
use crate::features::FeatureAccumulator;
use crate::pack::AdapterPack;
use crate::text::PreparedDocument;

pub use record::ResultRecord;

/// What one classification fed to the model, in order: enough to feed the same again.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Feeding {
    /// Whether the layer-0 head was asked and answered (no model work then).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub layer_zero_answered: bool,
    /// The passes fed, in order.
    pub passes: Vec<FedPass>,
    /// The cell where the exit rule stopped the walk; none when it ran out (the fallback
    /// layer's head answered) or the layer-0 head answered.
    pub exit: Option<Cell>,
    /// Token×layer operations computed.
    pub token_layers: u64,
}

/// One pass: whole sentences fed together (in decodes of at most the session's batch), run
/// until the policy's depth or the exit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FedPass {
    /// The document's sentences in the pass, `first..end` (0-based).
    pub sentences: [usize; 2],
    /// The document's tokens in the pass, `first..end`.
    pub tokens: [usize; 2],
    /// Layers its last decode computed (the earlier decodes of a long pass run to the depth).
    pub layers: usize,
}

/// Why a replay did not feed what was recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The document or setting differ from the recorded ones (another tokenizer, token limit or
    /// setting).
    #[error("the replay fed {replayed}, where the trace has {recorded}")]
    Diverged {
        /// What the trace recorded.
        recorded: String,
        /// What the replay fed.
        replayed: String,
    },
}

impl Feeding {
    /// A short description for messages: the passes and where they stopped.
    pub fn describe(&self) -> String {
        if self.layer_zero_answered {
            return "no pass (the layer-0 head answered)".to_string();
        }
        let passes: Vec<String> = self
            .passes
            .iter()
            .map(|pass| {
                format!(
                    "tokens {}..{} to layer {}",
                    pass.tokens[0], pass.tokens[1], pass.layers
                )
            })
            .collect();
        format!("{} pass(es): {}", self.passes.len(), passes.join(", "))
    }
}

/// Who ends a walk: the policy's exit rule, or a recorded exit (a replay, which still asks
/// every head and the rule, for their cost, and ignores their answers).
#[derive(Debug, Clone, Copy)]
enum ExitDecision {
    Rule,
    Recorded(Option<Cell>),
}

/// Where and how a classification stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReport {
    /// The cell whose head answered, as 0-based indices.
    pub cell: Cell,
    /// Sentences of the document within the token limit.
    pub sentences: usize,
    /// Layers of the model.
    pub layers: usize,
    /// The policy.
    pub policy: PolicyKind,
    /// Whether a confident cell ended the walk.
    pub exited: bool,
    /// Whether the layer-0 head answered, before any model layer ran (it read the whole
    /// document's tokens).
    pub layer_zero: bool,
}

impl ExitReport {
    /// Sentences read: the answering sentence's number, from 1.
    pub fn sentences_read(&self) -> usize {
        self.cell.sentence + 1
    }

    /// The answering layer's number, from 1 ("layer 4 of 18"); 0 for the layer-0 head.
    pub fn layer_number(&self) -> usize {
        if self.layer_zero {
            0
        } else {
            self.cell.layer + 1
        }
    }
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

/// Feeds features to the accumulator and asks the exit rule at every layer the policy consults.
struct PolicyObserver<'a> {
    accumulator: &'a mut FeatureAccumulator,
    pack: &'a AdapterPack,
    policy: &'a dyn ExitPolicy,
    state: &'a mut ExitState,
    /// The sentence the cells of this pass belong to.
    sentence: usize,
    /// Tokens of the document read once this pass is fed.
    tokens_read: usize,
    /// Whether this batch completes the pass. A pass longer than one decode is fed in
    /// batches: the leading ones only feed the accumulator, up to the pass's depth; the exit
    /// rule is asked during the last one, as it would be in one decode.
    completes_pass: bool,
    /// Who decides the exit.
    decision: ExitDecision,
    /// The exit cell and its probabilities, once found.
    exit: Option<(Cell, Vec<f32>)>,
}

impl LayerObserver for PolicyObserver<'_> {
    fn on_layer(&mut self, hidden: &LayerHidden<'_>) -> Flow {
        let layer = hidden.layer();
        self.accumulator.record(layer, hidden.states());
        if self.completes_pass && self.policy.consults(layer) {
            let feature = self
                .accumulator
                .current(self.pack.manifest.feature_kind, layer);
            let probabilities = self.pack.probabilities(layer, feature).to_vec();
            let cell = Cell {
                sentence: self.sentence,
                layer,
            };
            let rule_exits = self.state.observe(cell, &probabilities, self.tokens_read);
            let exits = match self.decision {
                ExitDecision::Rule => rule_exits,
                ExitDecision::Recorded(exit) => exit == Some(cell),
            };
            if exits {
                self.exit = Some((cell, probabilities));
                return Flow::Stop;
            }
        }
        if layer >= self.policy.depth() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn wants_layer(&self, layer: usize) -> bool {
        self.policy.needs_layer(layer)
    }
}

/// A session, a pack and an exit policy, ready to classify documents one after the other.
pub struct Classifier<'model, 'pack> {
    session: Session<'model>,
    pack: &'pack AdapterPack,
    accumulator: FeatureAccumulator,
    config: PolicyConfig,
    policy: Box<dyn ExitPolicy + Send + Sync>,
    /// What the last classification fed.
    feeding: Feeding,
}

impl<'model, 'pack> Classifier<'model, 'pack> {
    /// A classifier over `session` (whose context must hold the pack's token limit).
    pub fn new(session: Session<'model>, pack: &'pack AdapterPack, config: PolicyConfig) -> Self {
        let model = session.model();
        let accumulator = FeatureAccumulator::new(model.layers(), model.width());
        let policy = config.policy(pack.heads.len(), pack.exit_models());
        Classifier {
            session,
            pack,
            accumulator,
            config,
            policy,
            feeding: Feeding::default(),
        }
    }

    /// What the last classification (or replay) fed to the model.
    pub fn last_feeding(&self) -> &Feeding {
        &self.feeding
    }

    /// Feeds `recorded` again: the same passes, taps, heads and exit rule as the classification
    /// that recorded it under this setting, but the walk ends where the recording did whatever
    /// the heads answer (on a model with other weights they read noise). The document must be
    /// tokenized as it was; a replay that cannot feed the same passes is refused.
    pub fn replay(
        &mut self,
        document: &PreparedDocument,
        recorded: &Feeding,
    ) -> Result<(), ReplayError> {
        self.walk(
            document,
            ExitDecision::Recorded(recorded.exit),
            Some(recorded),
        )?;
        if self.feeding != *recorded {
            return Err(ReplayError::Diverged {
                recorded: recorded.describe(),
                replayed: self.feeding.describe(),
            });
        }
        Ok(())
    }

    /// The exit setting in use.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Switches to another exit setting (the session, its thread pool and buffers are kept).
    pub fn set_config(&mut self, config: PolicyConfig) {
        self.policy = config.policy(self.pack.heads.len(), self.pack.exit_models());
        self.config = config;
    }

    /// The pack in use.
    pub fn pack(&self) -> &'pack AdapterPack {
        self.pack
    }

    /// Classifies one prepared document, walking it as [`crate::exit::simulate`] walks its grid
    /// (a setting with a layer-0 threshold asks the pack's layer-0 head first).
    pub fn classify(&mut self, document: &PreparedDocument) -> Result<Classification, EngineError> {
        self.walk(document, ExitDecision::Rule, None)
    }

    /// The walk of [`Classifier::classify`], its exit decided by `decision`; `recorded` (a
    /// replay) decides whether the layer-0 head answered.
    fn walk(
        &mut self,
        document: &PreparedDocument,
        decision: ExitDecision,
        recorded: Option<&Feeding>,
    ) -> Result<Classification, EngineError> {
        let pack = self.pack;
        self.feeding = Feeding::default();
        let policy = self.policy.as_ref();
        let layers = pack.heads.len();
        let sentences = document.sentences.len();
        let last_sentence = sentences.saturating_sub(1);
        let tokens_total = document.token_count();
        let mut state = policy.exit_state(WalkContext {
            layers,
            sentences,
            tokens_total,
        });
        let full_token_layers = (tokens_total * layers) as u64;
        // Layer 0: the lexical head on the document's tokens, before any model work.
        if let (Some(threshold), Some(head)) = (self.config.layer_zero_threshold, &pack.layer_zero)
        {
            let probabilities = head.probabilities(&document.token_ids());
            let answered = match recorded {
                None => layer_zero_exits(threshold, &probabilities),
                Some(recorded) => recorded.layer_zero_answered,
            };
            if answered {
                self.feeding.layer_zero_answered = true;
                return Ok(Classification {
                    class: argmax(&probabilities),
                    probabilities,
                    exit: ExitReport {
                        cell: Cell {
                            sentence: last_sentence,
                            layer: 0,
                        },
                        sentences,
                        layers,
                        policy: policy.kind(),
                        exited: true,
                        layer_zero: true,
                    },
                    tokens_read: 0,
                    tokens_total,
                    truncated: document.truncated,
                    token_layers: 0,
                    full_token_layers,
                });
            }
        }
        let mut token_layers = 0u64;
        let mut tokens_read = 0usize;
        self.session.reset();
        self.accumulator.reset();

        // Each pass feeds whole sentences; their ends are outputs so that the last layer sees
        // the same rows as in training (llama.cpp computes the last layer only for output
        // rows, and training fed one sentence at a time with its last token as the output).
        let sentence_tokens: Vec<usize> = document
            .sentences
            .iter()
            .map(|sentence| sentence.tokens.len())
            .collect();
        let mut exit = None;
        let batch = self.session.batch_capacity();
        for pass in policy.reading().passes(&sentence_tokens) {
            let mut pass_layers = 0;
            let mut tokens = Vec::new();
            let mut ends = Vec::with_capacity(pass.len());
            for sentence in &document.sentences[pass.clone()] {
                tokens.extend_from_slice(&sentence.tokens);
                ends.push(tokens.len() - 1);
            }
            // A pass longer than one decode (long documents read whole) is fed in batches: the
            // leading ones run to the pass's depth, the last one decides. A batch without a
            // sentence end (a sentence longer than a batch) gives its last token to the last
            // layer.
            for start in (0..tokens.len()).step_by(batch) {
                let end = (start + batch).min(tokens.len());
                let mut outputs: Vec<usize> = ends
                    .iter()
                    .filter(|&&sentence_end| (start..end).contains(&sentence_end))
                    .map(|sentence_end| sentence_end - start)
                    .collect();
                if outputs.is_empty() {
                    outputs.push(end - start - 1);
                }
                let mut observer = PolicyObserver {
                    accumulator: &mut self.accumulator,
                    pack,
                    policy,
                    state: &mut state,
                    sentence: pass.end - 1,
                    tokens_read: tokens_read + end - start,
                    completes_pass: end == tokens.len(),
                    decision,
                    exit: None,
                };
                let outcome =
                    self.session
                        .feed_with_outputs(&tokens[start..end], &outputs, &mut observer)?;
                exit = observer.exit.take();
                tokens_read += outcome.tokens;
                token_layers += (outcome.tokens * outcome.layers_computed) as u64;
                pass_layers = outcome.layers_computed;
            }
            self.feeding.passes.push(FedPass {
                sentences: [pass.start, pass.end],
                tokens: [tokens_read - tokens.len(), tokens_read],
                layers: pass_layers,
            });
            if exit.is_some() {
                break;
            }
        }
        let exited = exit.is_some();
        self.feeding.exit = exit.as_ref().map(|(cell, _)| *cell);
        self.feeding.token_layers = token_layers;
        let (answer, probabilities) = exit.unwrap_or_else(|| {
            // Nothing was confident: the fallback layer's head on everything read.
            let layer = policy.fallback_layer();
            let feature = self.accumulator.current(pack.manifest.feature_kind, layer);
            let probabilities = pack.probabilities(layer, feature).to_vec();
            let cell = Cell {
                sentence: last_sentence,
                layer,
            };
            (cell, probabilities)
        });
        let class = argmax(&probabilities);
        Ok(Classification {
            class,
            probabilities,
            exit: ExitReport {
                cell: answer,
                sentences,
                layers,
                policy: policy.kind(),
                exited,
                layer_zero: false,
            },
            tokens_read,
            tokens_total,
            truncated: document.truncated,
            token_layers,
            full_token_layers,
        })
    }
}
