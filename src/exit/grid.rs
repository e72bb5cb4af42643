//! The grid a document's walk moves over: cell `(sentence prefix k, layer l)` holds the layer-`l`
//! head's class probabilities for the first `k + 1` sentences. What the simulator, the learned
//! rule's training and the online classifier all read and report, with no policy in it.

use serde::{Deserialize, Serialize};

/// A cell of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// Sentence index (the prefix of sentences `0..=sentence`).
    pub sentence: usize,
    /// Layer index.
    pub layer: usize,
}

/// What a walk knows about the whole document before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkContext {
    /// Layers of the model.
    pub layers: usize,
    /// Sentences of the document (within the token limit).
    pub sentences: usize,
    /// Tokens of the document (within the token limit).
    pub tokens_total: usize,
}

/// Class probabilities of every cell of one document, and its tokens per sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentGrid {
    /// `probabilities[sentence][layer]` is the head's class distribution at that cell.
    pub probabilities: Vec<Vec<Vec<f32>>>,
    /// Tokens fed for each sentence (document-start token included in the first).
    pub sentence_tokens: Vec<usize>,
    /// The layer-0 head's class distribution on the whole document (its tokens within the
    /// token limit), when the pack has one.
    pub layer_zero: Option<Vec<f32>>,
}

impl DocumentGrid {
    /// Sentences of the document.
    pub fn sentences(&self) -> usize {
        self.sentence_tokens.len()
    }

    /// Layers of the model (cells per sentence).
    pub fn layers(&self) -> usize {
        self.probabilities.first().map_or(0, Vec::len)
    }

    /// The class probabilities at `cell`.
    pub(crate) fn at(&self, cell: Cell) -> &[f32] {
        &self.probabilities[cell.sentence][cell.layer]
    }

    /// What a walk knows about this document before it starts.
    pub fn walk_context(&self) -> WalkContext {
        WalkContext {
            layers: self.layers(),
            sentences: self.sentences(),
            tokens_total: self.sentence_tokens.iter().sum(),
        }
    }
}

/// What a policy did on one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The cell whose head answered (for a layer-0 answer: the last sentence at index 0, with
    /// `layer_zero` set).
    pub answer: Cell,
    /// Whether a confident cell ended the walk (false: the walk ran out).
    pub exited: bool,
    /// Whether the layer-0 head answered, before any model layer ran.
    pub layer_zero: bool,
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

/// A two-class grid where the probability of class 1 is `confidence(sentence, layer)`; for the
/// unit tests of the policies and of the evaluation.
#[cfg(test)]
pub(crate) fn two_class_grid(
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
        layer_zero: None,
    }
}
