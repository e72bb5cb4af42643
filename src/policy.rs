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
//!   after each sentence; stop at the first confident sentence.
//! - [`PolicyKind::TwoDimensional`]: sentence by sentence, layer by layer inside each sentence
//!   up to a depth cap; exit at the first confident cell. No sentence is computed deeper than the
//!   cap, so the KV cache always holds every layer the next sentence needs.
//!
//! When no cell is confident the answer is the deepest computed cell of the last sentence.
//!
//! Cost is counted in token×layer operations, as the engine computes them: a feed of `t`
//! tokens that stops after layer `l` costs `t · (l + 1)`.

use serde::{Deserialize, Serialize};

/// The four ways of walking the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// No exit.
    Full,
    /// Layer-wise exit over the whole document.
    Layer,
    /// Sentence-wise exit at full depth.
    Sentence,
    /// Two-dimensional exit (sentences × layers) with a depth cap.
    #[serde(rename = "2d")]
    TwoDimensional,
}

impl PolicyKind {
    /// Every policy, in reporting order.
    pub const ALL: [PolicyKind; 4] = [
        PolicyKind::Full,
        PolicyKind::Layer,
        PolicyKind::Sentence,
        PolicyKind::TwoDimensional,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Full => "full",
            PolicyKind::Layer => "layer",
            PolicyKind::Sentence => "sentence",
            PolicyKind::TwoDimensional => "2d",
        }
    }
}

/// How confidence is measured at a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitRule {
    /// The largest class probability.
    MaxProbability,
    /// The gap between the two largest class probabilities.
    Margin,
    /// The top-2 margin summed over the cells seen so far (Hůla et al.): confidence that builds
    /// up across layers and sentences.
    AccumulatedMargin,
}

impl ExitRule {
    /// The name used in packs and reports.
    pub fn name(self) -> &'static str {
        match self {
            ExitRule::MaxProbability => "max_probability",
            ExitRule::Margin => "margin",
            ExitRule::AccumulatedMargin => "accumulated_margin",
        }
    }
}

/// A complete exit setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Walking order.
    pub kind: PolicyKind,
    /// Confidence measure.
    pub rule: ExitRule,
    /// Exit when the measure reaches this value.
    pub threshold: f32,
    /// Cells below this layer never exit (and are not counted towards patience).
    pub min_layer: usize,
    /// Consecutive confident cells needed to exit (1: the first confident cell exits).
    pub patience: usize,
    /// Deepest layer any sentence is computed to (the 2d policy's cap); other policies ignore it.
    pub depth_cap: usize,
    /// Layer whose head answers for `full` and decides for `sentence`.
    pub decision_layer: usize,
}

/// A cell of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// Sentence index (the prefix of sentences `0..=sentence`).
    pub sentence: usize,
    /// Layer index.
    pub layer: usize,
}

/// Tracks the exit rule over the cells a policy visits.
#[derive(Debug, Clone)]
pub struct ExitState {
    rule: ExitRule,
    threshold: f32,
    min_layer: usize,
    patience: usize,
    streak: usize,
    accumulated: f32,
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
    /// A fresh state for one document.
    pub fn new(config: &PolicyConfig) -> Self {
        ExitState {
            rule: config.rule,
            threshold: config.threshold,
            min_layer: config.min_layer,
            patience: config.patience.max(1),
            streak: 0,
            accumulated: 0.0,
        }
    }

    /// Sees the probabilities of a cell; answers whether to exit there.
    pub fn observe(&mut self, cell: Cell, probabilities: &[f32]) -> bool {
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
        };
        if confidence >= self.threshold {
            self.streak += 1;
        } else {
            self.streak = 0;
        }
        self.streak >= self.patience
    }
}

/// Class probabilities of every cell of one document, and its tokens per sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentGrid {
    /// `probabilities[sentence][layer]` is the head's class distribution at that cell.
    pub probabilities: Vec<Vec<Vec<f32>>>,
    /// Tokens fed for each sentence (document-start token included in the first).
    pub sentence_tokens: Vec<usize>,
}

impl DocumentGrid {
    fn sentences(&self) -> usize {
        self.sentence_tokens.len()
    }

    fn layers(&self) -> usize {
        self.probabilities.first().map_or(0, Vec::len)
    }

    fn at(&self, cell: Cell) -> &[f32] {
        &self.probabilities[cell.sentence][cell.layer]
    }
}

/// What a policy did on one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The cell whose head answered.
    pub answer: Cell,
    /// Whether a confident cell ended the walk (false: the walk ran out).
    pub exited: bool,
    /// Index of the predicted class.
    pub prediction: usize,
    /// Sentences read.
    pub sentences_read: usize,
    /// Token×layer operations computed.
    pub token_layers: u64,
    /// Token×layer operations of the whole document at full depth.
    pub full_token_layers: u64,
}

/// Index of the most probable class (first on ties).
pub fn argmax(probabilities: &[f32]) -> usize {
    crate::heads::argmax(ndarray::ArrayView1::from(probabilities))
}

/// Runs `config` over a document's grid: where it exits, what it answers, what it costs.
///
/// # Panics
/// If the grid is empty or its layers are fewer than the config's layers require; grids come
/// from packs and documents that were checked before.
pub fn simulate(config: &PolicyConfig, grid: &DocumentGrid) -> Outcome {
    let sentences = grid.sentences();
    let layers = grid.layers();
    assert!(
        sentences > 0 && layers > 0,
        "an empty grid cannot be classified"
    );
    let last_sentence = sentences - 1;
    let last_layer = layers - 1;
    let total_tokens: u64 = grid
        .sentence_tokens
        .iter()
        .map(|&tokens| tokens as u64)
        .sum();
    let full_token_layers = total_tokens * layers as u64;
    let tokens_before = |sentence: usize| -> u64 {
        grid.sentence_tokens[..sentence]
            .iter()
            .map(|&tokens| tokens as u64)
            .sum()
    };
    let mut state = ExitState::new(config);
    let finish = |answer: Cell, exited: bool, token_layers: u64| Outcome {
        answer,
        exited,
        prediction: argmax(grid.at(answer)),
        sentences_read: answer.sentence + 1,
        token_layers,
        full_token_layers,
    };
    let decision_layer = config.decision_layer.min(last_layer);
    match config.kind {
        PolicyKind::Full => finish(
            Cell {
                sentence: last_sentence,
                layer: decision_layer,
            },
            false,
            full_token_layers,
        ),
        PolicyKind::Layer => {
            for layer in 0..layers {
                let cell = Cell {
                    sentence: last_sentence,
                    layer,
                };
                if state.observe(cell, grid.at(cell)) {
                    return finish(cell, true, total_tokens * (layer as u64 + 1));
                }
            }
            finish(
                Cell {
                    sentence: last_sentence,
                    layer: last_layer,
                },
                false,
                full_token_layers,
            )
        }
        PolicyKind::Sentence => {
            for sentence in 0..sentences {
                let cell = Cell {
                    sentence,
                    layer: decision_layer,
                };
                let cost = (tokens_before(sentence) + grid.sentence_tokens[sentence] as u64)
                    * layers as u64;
                if state.observe(cell, grid.at(cell)) {
                    return finish(cell, true, cost);
                }
            }
            finish(
                Cell {
                    sentence: last_sentence,
                    layer: decision_layer,
                },
                false,
                full_token_layers,
            )
        }
        PolicyKind::TwoDimensional => {
            let cap = config.depth_cap.min(last_layer);
            for sentence in 0..sentences {
                for layer in 0..=cap {
                    let cell = Cell { sentence, layer };
                    if state.observe(cell, grid.at(cell)) {
                        let cost = tokens_before(sentence) * (cap as u64 + 1)
                            + grid.sentence_tokens[sentence] as u64 * (layer as u64 + 1);
                        return finish(cell, true, cost);
                    }
                }
            }
            finish(
                Cell {
                    sentence: last_sentence,
                    layer: cap,
                },
                false,
                total_tokens * (cap as u64 + 1),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid where the confidence of class 1 is `confidence(sentence, layer)`.
    fn grid(
        sentence_tokens: &[usize],
        layers: usize,
        confidence: impl Fn(usize, usize) -> f32,
    ) -> DocumentGrid {
        DocumentGrid {
            probabilities: (0..sentence_tokens.len())
                .map(|sentence| {
                    (0..layers)
                        .map(|layer| {
                            let high = confidence(sentence, layer);
                            vec![1.0 - high, high]
                        })
                        .collect()
                })
                .collect(),
            sentence_tokens: sentence_tokens.to_vec(),
        }
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
        }
    }

    #[test]
    fn full_never_exits_and_answers_with_the_decision_layer() {
        // Confident everywhere: full still reads everything.
        let document = grid(&[10, 20, 30], 4, |_, _| 0.99);
        let outcome = simulate(
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
        let outcome = simulate(
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
        let never = simulate(
            &config(PolicyKind::Layer, ExitRule::MaxProbability, 0.99),
            &document,
        );
        assert!(!never.exited);
        assert_eq!(
            never.answer,
            Cell {
                sentence: 2,
                layer: 3
            }
        );
        assert_eq!(never.token_layers, 240);
    }

    #[test]
    fn sentence_exits_at_the_first_confident_sentence_at_full_depth() {
        let document = grid(&[10, 20, 30], 4, |sentence, _| 0.55 + 0.2 * sentence as f32);
        let outcome = simulate(
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
        // Sentences 0 and 1 at all 4 layers.
        assert_eq!(outcome.token_layers, 30 * 4);
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
        let outcome = simulate(&setting, &document);
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
        let outcome = simulate(&setting, &deep);
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
        };
        let mut setting = config(PolicyKind::Layer, ExitRule::MaxProbability, 0.5);
        assert_eq!(simulate(&setting, &three).answer.layer, 0);
        setting.rule = ExitRule::Margin;
        setting.threshold = 0.2;
        // Margins 0.1 then 0.3.
        assert_eq!(simulate(&setting, &three).answer.layer, 1);
        setting.rule = ExitRule::AccumulatedMargin;
        setting.threshold = 0.35;
        // Accumulated 0.1, then 0.4.
        assert!(simulate(&setting, &three).exited);
        setting.threshold = 0.45;
        assert!(!simulate(&setting, &three).exited);
    }

    #[test]
    fn accumulated_margin_builds_up_across_sentences_in_2d() {
        // Margin 0.2 at every cell: with a cap of 1 (two layers per sentence) the sum reaches 0.7
        // at the fourth cell, sentence 1 layer 1.
        let document = grid(&[4, 4, 4], 3, |_, _| 0.6);
        let mut setting = config(PolicyKind::TwoDimensional, ExitRule::AccumulatedMargin, 0.7);
        setting.depth_cap = 1;
        let outcome = simulate(&setting, &document);
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
        assert_eq!(simulate(&setting, &document).answer.layer, 2);
        setting.patience = 3;
        assert_eq!(simulate(&setting, &document).answer.layer, 4);
        // A dip resets the streak.
        let dip = grid(&[10], 6, |_, layer| if layer == 2 { 0.5 } else { 0.9 });
        setting.min_layer = 0;
        setting.patience = 2;
        assert_eq!(simulate(&setting, &dip).answer.layer, 1);
        setting.patience = 3;
        assert_eq!(simulate(&setting, &dip).answer.layer, 5);
        setting.patience = 4;
        assert!(!simulate(&setting, &dip).exited);
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(PolicyKind::TwoDimensional.name(), "2d");
        assert_eq!(
            serde_json::to_string(&PolicyKind::TwoDimensional).expect("json"),
            "\"2d\""
        );
        assert_eq!(
            serde_json::to_string(&ExitRule::AccumulatedMargin).expect("json"),
            "\"accumulated_margin\""
        );
    }
}
