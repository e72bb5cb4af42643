//! Exit policies: when to stop reading a document (sentences) and computing the model
//! (layers). Pure Rust over class probabilities; testable without a model.
//!
//! A document is a grid of cells `(sentence prefix k, layer l)`: at each cell the layer-`l` head
//! gives class probabilities for the first `k + 1` sentences. The four policies walk that grid in
//! different orders:
//! - [`PolicyKind::Full`]: every sentence, every layer; the answer is the best layer's head on
//!   the whole document (no exit).
//! - [`PolicyKind::Layer`]: the whole document in one pass, exit at the first confident layer
//!   (the paper's "optimal layer-wise early exit" baseline).
//! - [`PolicyKind::Sentence`]: sentence by sentence at full depth, the best layer's head decides
//!   after each sentence; stop at the first confident sentence (the exiting sentence is computed
//!   only up to the best layer, since nothing reads its deeper layers).
//! - [`PolicyKind::TwoDimensional`]: pass by pass — one sentence (the paper's walk), or whole
//!   sentences gathered up to a calibrated number of tokens — layer by layer inside each pass up
//!   to a depth cap; exit at the first confident cell. No pass is computed deeper than the cap,
//!   so the KV cache always holds every layer the next pass needs.
//!
//! When no cell is confident, `layer` answers like `full` (the decision layer on the whole
//! document, which it has computed), `sentence` with the decision layer on the last sentence,
//! and `2d` with the deepest computed cell of the last sentence.
//!
//! Each policy is a type behind the [`ExitPolicy`] trait; [`PolicyConfig`] is the stored setting
//! (what packs keep per operating point) and [`PolicyConfig::policy`] makes the policy from it.
//!
//! Cost is counted in token×layer operations, as the engine computes them: a feed of `t`
//! tokens that stops after layer `l` costs `t · (l + 1)`.

use std::sync::Arc;

use super::grid::{Cell, DocumentGrid, Outcome, WalkContext, argmax};
use super::learned::{CellTracker, ExitModel, ExitModels};
use super::setting::{ExitRule, PolicyConfig, PolicyKind};

/// Tracks the exit rule over the cells a policy visits.
#[derive(Debug, Clone)]
pub struct ExitState {
    rule: ExitRule,
    threshold: f32,
    min_layer: usize,
    patience: usize,
    streak: usize,
    accumulated: f32,
    /// The learned rule's model and the features of the cells visited (learned rules only).
    learned: Option<(Arc<ExitModel>, CellTracker)>,
}

/// The two largest values of a probability vector.
fn top_two(probabilities: &[f32]) -> (f32, f32) {
    probabilities.iter().fold(
        (f32::NEG_INFINITY, f32::NEG_INFINITY),
        |(first, second), &value| {
            if value > first {
                (value, first)
            } else if value > second {
                (first, value)
            } else {
                (first, second)
            }
        },
    )
}

impl ExitState {
    /// A fresh state for one document of `context`'s shape; a learned rule needs its `model`
    /// (without one it never exits).
    pub fn new(config: &PolicyConfig, model: Option<Arc<ExitModel>>, context: WalkContext) -> Self {
        let learned = match config.rule.learned_target() {
            Some(_) => model.map(|model| (model, CellTracker::new(context))),
            None => None,
        };
        ExitState {
            rule: config.rule,
            threshold: config.threshold,
            min_layer: config.min_layer,
            patience: config.patience.max(1),
            streak: 0,
            accumulated: 0.0,
            learned,
        }
    }

    /// Sees the probabilities of a cell, reached after `tokens_read` tokens of the document;
    /// answers whether to exit there.
    pub fn observe(&mut self, cell: Cell, probabilities: &[f32], tokens_read: usize) -> bool {
        // The learned rule's features follow every visited cell, those below the minimum
        // layer included, as in the walks it was trained on.
        let learned = self.learned.as_mut().map(|(model, tracker)| {
            model.probability(&tracker.observe(cell, probabilities, tokens_read))
        });
        if cell.layer < self.min_layer {
            return false;
        }
        let (first, second) = top_two(probabilities);
        let second = if second.is_finite() { second } else { 0.0 };
        let confidence = match self.rule {
            ExitRule::MaxProbability => first,
            ExitRule::Margin => first - second,
            ExitRule::AccumulatedMargin => {
                self.accumulated += first - second;
                self.accumulated
            }
            ExitRule::LearnedAgreement | ExitRule::LearnedCorrect => {
                learned.unwrap_or(f32::NEG_INFINITY)
            }
        };
        if confidence >= self.threshold {
            self.streak += 1;
        } else {
            self.streak = 0;
        }
        self.streak >= self.patience
    }
}

/// Whether the layer-0 head's `probabilities` end the walk before layer 1 under `threshold`:
/// its top class probability reaches it.
pub fn layer_zero_exits(threshold: f32, probabilities: &[f32]) -> bool {
    top_two(probabilities).0 >= threshold
}

/// The outcome when `config` asks layer 0 and the grid's layer-0 head is confident enough: the
/// whole document read by the head, no model layer computed; `None` when the walk goes on.
pub fn layer_zero_outcome(config: &PolicyConfig, grid: &DocumentGrid) -> Option<Outcome> {
    let threshold = config.layer_zero_threshold?;
    let probabilities = grid.layer_zero.as_ref()?;
    if !layer_zero_exits(threshold, probabilities) {
        return None;
    }
    let total_tokens: u64 = grid
        .sentence_tokens
        .iter()
        .map(|&tokens| tokens as u64)
        .sum();
    Some(Outcome {
        answer: Cell {
            sentence: grid.sentences().saturating_sub(1),
            layer: 0,
        },
        exited: true,
        layer_zero: true,
        prediction: argmax(probabilities),
        sentences_read: grid.sentences(),
        token_layers: 0,
        full_token_layers: total_tokens * grid.layers() as u64,
    })
}

/// How a policy feeds a document to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The whole document in one pass: its cells all belong to the last sentence.
    WholeDocument,
    /// Consecutive whole sentences per pass, at least `min_tokens` tokens each (the last pass
    /// may be shorter; 0: one sentence per pass), the KV cache carrying the earlier passes. The
    /// cells of a pass belong to its last sentence.
    Sentences {
        /// Fewest tokens in a pass.
        min_tokens: usize,
    },
}

impl Reading {
    /// The passes over a document whose sentences have `sentence_tokens` tokens: ranges of
    /// sentence indices, in order, covering every sentence once.
    pub fn passes(self, sentence_tokens: &[usize]) -> Vec<std::ops::Range<usize>> {
        let sentences = sentence_tokens.len();
        let min_tokens = match self {
            Reading::WholeDocument => return std::iter::once(0..sentences).collect(),
            Reading::Sentences { min_tokens } => min_tokens,
        };
        let mut passes = Vec::new();
        let mut start = 0;
        let mut tokens = 0;
        for (sentence, &count) in sentence_tokens.iter().enumerate() {
            tokens += count;
            if tokens >= min_tokens || sentence + 1 == sentences {
                passes.push(start..sentence + 1);
                start = sentence + 1;
                tokens = 0;
            }
        }
        passes
    }
}

/// A way of walking a document's grid: what the engine computes and where the exit rule may
/// stop it.
///
/// The simulator ([`simulate`], used by calibration on cached features) and the online
/// classifier ([`crate::classifier::Classifier`]) walk documents through this trait only, so a
/// setting calibrated on dev behaves the same when it classifies. The walk is: for each pass
/// (see [`ExitPolicy::reading`]), layers `0..=depth`; at every layer the policy
/// [consults](ExitPolicy::consults), the exit rule sees that cell and may end the walk there,
/// which also ends the computation of that pass. When no cell exits, the answer is the
/// [fallback layer](ExitPolicy::fallback_layer) of the last sentence.
pub trait ExitPolicy {
    /// The stored setting the policy was made from, on its model.
    fn setting(&self) -> &Setting;
    /// Whole document at once, or sentence by sentence.
    fn reading(&self) -> Reading;
    /// The deepest layer a pass computes when no exit stops it.
    fn depth(&self) -> usize;
    /// Whether the exit rule looks at the head of `layer`.
    fn consults(&self, layer: usize) -> bool;
    /// The layer whose head answers when no cell was confident.
    fn fallback_layer(&self) -> usize;

    /// The stored setting the policy was made from.
    fn config(&self) -> &PolicyConfig {
        &self.setting().config
    }

    /// Which of the four policies this is.
    fn kind(&self) -> PolicyKind {
        self.config().kind
    }

    /// A fresh exit-rule state for one document of `context`'s shape.
    fn exit_state(&self, context: WalkContext) -> ExitState {
        let setting = self.setting();
        ExitState::new(&setting.config, setting.model.clone(), context)
    }

    /// Whether the walk needs the hidden state of `layer` (the engine taps only those).
    fn needs_layer(&self, layer: usize) -> bool {
        self.consults(layer) || layer == self.fallback_layer() || layer == self.depth()
    }
}

/// What every policy holds: its stored setting, the model's last layer, and the learned rule's
/// model when the setting uses one.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The stored setting.
    pub config: PolicyConfig,
    /// The model's last layer index.
    pub last_layer: usize,
    /// The learned rule's model.
    pub model: Option<Arc<ExitModel>>,
}

/// `full`: every sentence, every layer, the decision layer answers.
#[derive(Debug, Clone, PartialEq)]
pub struct FullPolicy(Setting);

/// `layer`: the whole document in one pass, exit at the first confident layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPolicy(Setting);

/// `sentence`: sentence by sentence at full depth; the decision layer's head decides after each
/// sentence. An exit ends the pass at the decision layer: no later sentence needs the deeper
/// layers of the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct SentencePolicy(Setting);

/// `2d`: sentence by sentence, layer by layer up to the depth cap, exit at the first confident
/// cell.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoDimensionalPolicy(Setting);

impl Setting {
    fn decision_layer(&self) -> usize {
        self.config.decision_layer.min(self.last_layer)
    }
}

impl ExitPolicy for FullPolicy {
    fn setting(&self) -> &Setting {
        &self.0
    }
    fn reading(&self) -> Reading {
        Reading::WholeDocument
    }
    fn depth(&self) -> usize {
        self.0.last_layer
    }
    fn consults(&self, _layer: usize) -> bool {
        false
    }
    fn fallback_layer(&self) -> usize {
        self.0.decision_layer()
    }
}

impl ExitPolicy for LayerPolicy {
    fn setting(&self) -> &Setting {
        &self.0
    }
    fn reading(&self) -> Reading {
        Reading::WholeDocument
    }
    fn depth(&self) -> usize {
        self.0.last_layer
    }
    fn consults(&self, _layer: usize) -> bool {
        true
    }
    /// Every layer is computed when nothing exits: answer as `full` does.
    fn fallback_layer(&self) -> usize {
        self.0.decision_layer()
    }
}

impl ExitPolicy for SentencePolicy {
    fn setting(&self) -> &Setting {
        &self.0
    }
    fn reading(&self) -> Reading {
        Reading::Sentences { min_tokens: 0 }
    }
    fn depth(&self) -> usize {
        self.0.last_layer
    }
    fn consults(&self, layer: usize) -> bool {
        layer == self.0.decision_layer()
    }
    fn fallback_layer(&self) -> usize {
        self.0.decision_layer()
    }
}

impl ExitPolicy for TwoDimensionalPolicy {
    fn setting(&self) -> &Setting {
        &self.0
    }
    fn reading(&self) -> Reading {
        Reading::Sentences {
            min_tokens: self.0.config.min_pass_tokens,
        }
    }
    fn depth(&self) -> usize {
        self.0.config.depth_cap.min(self.0.last_layer)
    }
    fn consults(&self, layer: usize) -> bool {
        layer <= self.depth()
    }
    fn fallback_layer(&self) -> usize {
        self.depth()
    }
}

impl PolicyConfig {
    /// The policy this setting describes, on a model with `layers` layers (at least one);
    /// layers beyond the model are clamped to its last. A learned rule takes its model from
    /// `models` (without it, it never exits).
    pub fn policy(
        &self,
        layers: usize,
        models: ExitModels<'_>,
    ) -> Box<dyn ExitPolicy + Send + Sync> {
        let setting = Setting {
            config: *self,
            last_layer: layers.saturating_sub(1),
            model: models.for_config(self),
        };
        match self.kind {
            PolicyKind::Full => Box::new(FullPolicy(setting)),
            PolicyKind::Layer => Box::new(LayerPolicy(setting)),
            PolicyKind::Sentence => Box::new(SentencePolicy(setting)),
            PolicyKind::TwoDimensional => Box::new(TwoDimensionalPolicy(setting)),
        }
    }
}

/// The passes of `policy` over `grid`'s document: the sentence their cells belong to, the
/// tokens each feeds, and the tokens read once it is fed.
fn passes_of(
    policy: &(impl ExitPolicy + ?Sized),
    grid: &DocumentGrid,
) -> Vec<(usize, usize, usize)> {
    let mut read = 0;
    policy
        .reading()
        .passes(&grid.sentence_tokens)
        .into_iter()
        .map(|pass| {
            let tokens: usize = grid.sentence_tokens[pass.clone()].iter().sum();
            read += tokens;
            (pass.end - 1, tokens, read)
        })
        .collect()
}

/// The cells `policy` visits on `grid` when nothing exits, in walk order, each with the tokens
/// read when it is reached: the cells a learned rule is trained on.
pub fn visited_cells(
    policy: &(impl ExitPolicy + ?Sized),
    grid: &DocumentGrid,
) -> Vec<(Cell, usize)> {
    let depth = policy.depth().min(grid.layers().saturating_sub(1));
    passes_of(policy, grid)
        .into_iter()
        .flat_map(|(sentence, _, read)| {
            (0..=depth)
                .filter(|&layer| policy.consults(layer))
                .map(move |layer| (Cell { sentence, layer }, read))
        })
        .collect()
}

/// Walks `policy` over a document's grid: where it exits, what it answers, what it costs. A
/// setting with a layer-0 threshold first asks the layer-0 head (when the grid has its
/// probabilities): a confident answer there costs no token×layer operation.
///
/// # Panics
/// If the grid is empty or has fewer layers than the policy walks; grids come from packs and
/// documents that were checked before.
pub fn simulate(policy: &(impl ExitPolicy + ?Sized), grid: &DocumentGrid) -> Outcome {
    let sentences = grid.sentences();
    let layers = grid.layers();
    assert!(
        sentences > 0 && layers > 0,
        "an empty grid cannot be classified"
    );
    let last_sentence = sentences - 1;
    let depth = policy.depth();
    assert!(depth < layers, "the policy walks deeper than the grid");
    let total_tokens: u64 = grid
        .sentence_tokens
        .iter()
        .map(|&tokens| tokens as u64)
        .sum();
    let full_token_layers = total_tokens * layers as u64;
    if let Some(outcome) = layer_zero_outcome(policy.config(), grid) {
        return outcome;
    }
    let finish = |answer: Cell, exited: bool, token_layers: u64| Outcome {
        answer,
        exited,
        layer_zero: false,
        prediction: argmax(grid.at(answer)),
        sentences_read: answer.sentence + 1,
        token_layers,
        full_token_layers,
    };
    let mut state = policy.exit_state(grid.walk_context());
    // Token×layer operations of the passes before the current one, all computed to `depth`.
    let mut computed = 0u64;
    for (sentence, tokens, read) in passes_of(policy, grid) {
        let tokens = tokens as u64;
        for layer in (0..=depth).filter(|&layer| policy.consults(layer)) {
            let cell = Cell { sentence, layer };
            if state.observe(cell, grid.at(cell), read) {
                return finish(cell, true, computed + tokens * (layer as u64 + 1));
            }
        }
        computed += tokens * (depth as u64 + 1);
    }
    finish(
        Cell {
            sentence: last_sentence,
            layer: policy.fallback_layer(),
        },
        false,
        computed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::exit::grid::two_class_grid as grid;

    fn run(config: &PolicyConfig, grid: &DocumentGrid) -> Outcome {
        simulate(
            config.policy(grid.layers(), ExitModels::NONE).as_ref(),
            grid,
        )
    }

    fn config(kind: PolicyKind, rule: ExitRule, threshold: f32) -> PolicyConfig {
        PolicyConfig {
            kind,
            rule,
            threshold,
            min_layer: 0,
            patience: 1,
            depth_cap: 3,
            decision_layer: 2,
            min_pass_tokens: 0,
            layer_zero_threshold: None,
        }
    }

    #[test]
    fn full_never_exits_and_answers_with_the_decision_layer() {
        // Confident everywhere: full still reads everything.
        let document = grid(&[10, 20, 30], 4, |_, _| 0.99);
        let outcome = run(
            &config(PolicyKind::Full, ExitRule::MaxProbability, 0.5),
            &document,
        );
        assert!(!outcome.exited);
        assert_eq!(
            outcome.answer,
            Cell {
                sentence: 2,
                layer: 2
            }
        );
        assert_eq!(outcome.token_layers, 60 * 4);
        assert_eq!(outcome.full_token_layers, 240);
        assert_eq!(outcome.sentences_read, 3);
        assert_eq!(outcome.prediction, 1);
    }

    #[test]
    fn layer_exits_at_the_first_confident_layer_over_the_whole_document() {
        // Confidence grows with depth; the whole document is read at once.
        let document = grid(&[10, 20, 30], 4, |_, layer| 0.6 + 0.1 * layer as f32);
        let outcome = run(
            &config(PolicyKind::Layer, ExitRule::MaxProbability, 0.75),
            &document,
        );
        assert!(outcome.exited);
        assert_eq!(
            outcome.answer,
            Cell {
                sentence: 2,
                layer: 2
            }
        );
        assert_eq!(outcome.token_layers, 60 * 3);
        let never = run(
            &config(PolicyKind::Layer, ExitRule::MaxProbability, 0.99),
            &document,
        );
        assert!(!never.exited);
        // Nothing confident: every layer was computed, the decision layer answers as in `full`.
        assert_eq!(
            never.answer,
            Cell {
                sentence: 2,
                layer: 2
            }
        );
        assert_eq!(never.token_layers, 240);
    }

    #[test]
    fn sentence_exits_at_the_first_confident_sentence_at_full_depth() {
        let document = grid(&[10, 20, 30], 4, |sentence, _| 0.55 + 0.2 * sentence as f32);
        let outcome = run(
            &config(PolicyKind::Sentence, ExitRule::MaxProbability, 0.7),
            &document,
        );
        assert!(outcome.exited);
        assert_eq!(
            outcome.answer,
            Cell {
                sentence: 1,
                layer: 2
            }
        );
        assert_eq!(outcome.sentences_read, 2);
        // Sentence 0 at all 4 layers (the next sentence needs them in the KV cache), sentence 1
        // up to the decision layer 2, where it exits.
        assert_eq!(outcome.token_layers, 10 * 4 + 20 * 3);
        // Without an exit: every sentence at full depth, the decision layer answers.
        let never = run(
            &config(PolicyKind::Sentence, ExitRule::MaxProbability, 0.99),
            &document,
        );
        assert!(!never.exited);
        assert_eq!(
            never.answer,
            Cell {
                sentence: 2,
                layer: 2
            }
        );
        assert_eq!(never.token_layers, 60 * 4);
    }

    #[test]
    fn two_dimensional_walks_layers_inside_sentences_and_never_passes_the_cap() {
        // Confident only at sentence 1, layer 2.
        let document = grid(&[10, 20, 30], 6, |sentence, layer| {
            if (sentence, layer) == (1, 2) {
                0.9
            } else {
                0.6
            }
        });
        let mut setting = config(PolicyKind::TwoDimensional, ExitRule::MaxProbability, 0.8);
        setting.depth_cap = 3;
        let outcome = run(&setting, &document);
        assert!(outcome.exited);
        assert_eq!(
            outcome.answer,
            Cell {
                sentence: 1,
                layer: 2
            }
        );
        // Sentence 0 to the cap (4 layers), sentence 1 to layer 2 (3 layers).
        assert_eq!(outcome.token_layers, 10 * 4 + 20 * 3);
        assert_eq!(outcome.full_token_layers, 60 * 6);
        // A confident cell beyond the cap is never reached.
        let deep = grid(
            &[10, 20, 30],
            6,
            |_, layer| if layer == 5 { 0.95 } else { 0.6 },
        );
        let outcome = run(&setting, &deep);
        assert!(!outcome.exited);
        assert_eq!(
            outcome.answer,
            Cell {
                sentence: 2,
                layer: 3
            }
        );
        assert_eq!(outcome.token_layers, 60 * 4);
    }

    #[test]
    fn rules_measure_confidence_differently() {
        let three = DocumentGrid {
            probabilities: vec![vec![vec![0.5, 0.4, 0.1], vec![0.6, 0.3, 0.1]]],
            sentence_tokens: vec![5],
            layer_zero: None,
        };
        let mut setting = config(PolicyKind::Layer, ExitRule::MaxProbability, 0.5);
        assert_eq!(run(&setting, &three).answer.layer, 0);
        setting.rule = ExitRule::Margin;
        setting.threshold = 0.2;
        // Margins 0.1 then 0.3.
        assert_eq!(run(&setting, &three).answer.layer, 1);
        setting.rule = ExitRule::AccumulatedMargin;
        setting.threshold = 0.35;
        // Accumulated 0.1, then 0.4.
        assert!(run(&setting, &three).exited);
        setting.threshold = 0.45;
        assert!(!run(&setting, &three).exited);
    }

    #[test]
    fn accumulated_margin_builds_up_across_sentences_in_2d() {
        // Margin 0.2 at every cell: with a cap of 1 (two layers per sentence) the sum reaches 0.7
        // at the fourth cell, sentence 1 layer 1.
        let document = grid(&[4, 4, 4], 3, |_, _| 0.6);
        let mut setting = config(PolicyKind::TwoDimensional, ExitRule::AccumulatedMargin, 0.7);
        setting.depth_cap = 1;
        let outcome = run(&setting, &document);
        assert_eq!(
            outcome.answer,
            Cell {
                sentence: 1,
                layer: 1
            }
        );
        assert_eq!(outcome.token_layers, 4 * 2 + 4 * 2);
    }

    #[test]
    fn minimum_layer_and_patience_delay_the_exit() {
        let document = grid(&[10], 6, |_, _| 0.9);
        let mut setting = config(PolicyKind::Layer, ExitRule::MaxProbability, 0.8);
        setting.min_layer = 2;
        assert_eq!(run(&setting, &document).answer.layer, 2);
        setting.patience = 3;
        assert_eq!(run(&setting, &document).answer.layer, 4);
        // A dip resets the streak.
        let dip = grid(&[10], 6, |_, layer| if layer == 2 { 0.5 } else { 0.9 });
        setting.min_layer = 0;
        setting.patience = 2;
        assert_eq!(run(&setting, &dip).answer.layer, 1);
        setting.patience = 3;
        assert_eq!(run(&setting, &dip).answer.layer, 5);
        setting.patience = 4;
        assert!(!run(&setting, &dip).exited);
    }

    #[test]
    fn layer_zero_answers_before_any_layer_when_its_head_is_confident() {
        let mut document = grid(&[10, 20, 30], 4, |_, layer| 0.6 + 0.1 * layer as f32);
        let mut setting = config(PolicyKind::TwoDimensional, ExitRule::MaxProbability, 0.85);
        // Without layer-0 probabilities, or without a threshold, the walk is as before.
        let walked = run(&setting, &document);
        assert!(!walked.layer_zero);
        assert_eq!(walked.answer.layer, 3);
        setting.layer_zero_threshold = Some(0.9);
        assert_eq!(run(&setting, &document), walked);
        // Confident enough: layer 0 answers, reading the whole document and no layer.
        document.layer_zero = Some(vec![0.95, 0.05]);
        let outcome = run(&setting, &document);
        assert!(outcome.layer_zero && outcome.exited);
        assert_eq!(outcome.prediction, 0);
        assert_eq!(outcome.token_layers, 0);
        assert_eq!(outcome.full_token_layers, 60 * 4);
        assert_eq!(outcome.sentences_read, 3);
        // Not confident enough: the walk goes on as without layer 0.
        document.layer_zero = Some(vec![0.85, 0.15]);
        assert_eq!(run(&setting, &document), walked);
        assert!(layer_zero_exits(0.85, &[0.85, 0.15]));
        assert!(!layer_zero_exits(0.86, &[0.85, 0.15]));
    }

    #[test]
    fn passes_group_whole_sentences_up_to_the_minimum() {
        let tokens = [5, 20, 3, 3, 40, 2];
        assert_eq!(
            Reading::Sentences { min_tokens: 0 }.passes(&tokens),
            vec![0..1, 1..2, 2..3, 3..4, 4..5, 5..6]
        );
        assert_eq!(
            Reading::Sentences { min_tokens: 10 }.passes(&tokens),
            vec![0..2, 2..5, 5..6]
        );
        assert_eq!(
            Reading::Sentences { min_tokens: 1000 }.passes(&tokens),
            std::iter::once(0..6).collect::<Vec<_>>()
        );
        assert_eq!(
            Reading::WholeDocument.passes(&tokens),
            std::iter::once(0..6).collect::<Vec<_>>()
        );
    }

    #[test]
    fn two_dimensional_passes_exit_at_pass_ends_and_cost_whole_passes() {
        // Sentences of 10, 10, 30 tokens; passes of at least 20 tokens: [0, 1] and [2].
        // Confident only at sentence 1 (the end of the first pass), layer 1.
        let document = grid(&[10, 10, 30], 4, |sentence, layer| {
            if sentence >= 1 && layer >= 1 {
                0.9
            } else {
                0.6
            }
        });
        let mut setting = config(PolicyKind::TwoDimensional, ExitRule::MaxProbability, 0.8);
        setting.min_pass_tokens = 20;
        let outcome = run(&setting, &document);
        assert_eq!(
            outcome.answer,
            Cell {
                sentence: 1,
                layer: 1
            }
        );
        assert_eq!(outcome.token_layers, 20 * 2);
        assert_eq!(outcome.sentences_read, 2);
        // One sentence per pass: sentence 0 to the cap first (4 layers), then sentence 1.
        setting.min_pass_tokens = 0;
        assert_eq!(run(&setting, &document).token_layers, 10 * 4 + 10 * 2);
    }
}
