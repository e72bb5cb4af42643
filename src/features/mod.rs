//! Per-layer features of partial documents: what an adapter head sees at an exit.
//!
//! After each sentence, every layer `l` yields two candidate features:
//! - [`FeatureKind::LastToken`]: the hidden state of the last token read so far;
//! - [`FeatureKind::MeanTokens`]: the mean of the hidden states of all tokens read so far. At the
//!   model's last layer llama.cpp computes only the output row of each batch (the sentence's
//!   last token), so there the mean runs over the sentence-final tokens.
//!
//! The same [`FeatureAccumulator`] computes features for training and at classification time,
//! so the heads always see exactly what they were trained on. [`cache`] keeps the features of a
//! data file on disk and [`extraction`] fills it and turns it into training matrices.

pub mod cache;
pub mod extraction;
pub mod lexical;

use ndarray::{Array2, Array3, ArrayView1, Axis};
use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Flow, LayerHidden, LayerObserver, Session};
use crate::text::PreparedDocument;

/// Which hidden-state summary a head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// The last token's hidden state.
    LastToken,
    /// The mean hidden state of all tokens read so far.
    MeanTokens,
}

impl FeatureKind {
    /// Both kinds, in a fixed order (the order of the feature cache).
    pub const ALL: [FeatureKind; 2] = [FeatureKind::LastToken, FeatureKind::MeanTokens];

    /// Name used in packs and reports.
    pub fn name(self) -> &'static str {
        match self {
            FeatureKind::LastToken => "last_token",
            FeatureKind::MeanTokens => "mean_tokens",
        }
    }
}

/// Accumulates both feature kinds over the sentences of one document, layer by layer.
///
/// Feed it to [`Session::feed`] for each sentence; after the feed, [`Self::current`] holds the
/// features of the prefix read so far for the layers computed.
#[derive(Debug, Clone)]
pub struct FeatureAccumulator {
    sums: Array2<f64>,
    counts: Vec<usize>,
    last_token: Array2<f32>,
    mean_tokens: Array2<f32>,
}

impl FeatureAccumulator {
    /// An accumulator for a model with `layers` layers of width `width`.
    pub fn new(layers: usize, width: usize) -> Self {
        FeatureAccumulator {
            sums: Array2::zeros((layers, width)),
            counts: vec![0; layers],
            last_token: Array2::zeros((layers, width)),
            mean_tokens: Array2::zeros((layers, width)),
        }
    }

    /// Forgets the document read so far.
    pub fn reset(&mut self) {
        self.sums.fill(0.0);
        self.counts.fill(0);
        self.last_token.fill(0.0);
        self.mean_tokens.fill(0.0);
    }

    /// The current feature of `kind` at `layer`.
    pub fn current(&self, kind: FeatureKind, layer: usize) -> ArrayView1<'_, f32> {
        match kind {
            FeatureKind::LastToken => self.last_token.row(layer),
            FeatureKind::MeanTokens => self.mean_tokens.row(layer),
        }
    }

    /// Records one layer's states of the batch just decoded.
    pub fn record(&mut self, layer: usize, states: ndarray::ArrayView2<'_, f32>) {
        let rows = states.nrows();
        if rows == 0 {
            return;
        }
        self.last_token.row_mut(layer).assign(&states.row(rows - 1));
        let mut sum = self.sums.row_mut(layer);
        for row in states.axis_iter(Axis(0)) {
            sum.zip_mut_with(&row, |total, value| *total += f64::from(*value));
        }
        self.counts[layer] += rows;
        let count = self.counts[layer] as f64;
        let sum = self.sums.row(layer);
        self.mean_tokens
            .row_mut(layer)
            .zip_mut_with(&sum, |mean, total| *mean = (total / count) as f32);
    }
}

impl LayerObserver for FeatureAccumulator {
    fn on_layer(&mut self, hidden: &LayerHidden<'_>) -> Flow {
        self.record(hidden.layer(), hidden.states());
        Flow::Continue
    }
}

/// Features of every sentence prefix of one document, at every layer.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentFeatures {
    /// `[prefix, layer, width]`: prefix `k` covers the first `k + 1` sentences.
    pub last_token: Array3<f32>,
    /// Same shape, mean over the tokens read.
    pub mean_tokens: Array3<f32>,
}

impl DocumentFeatures {
    /// Number of sentence prefixes (= sentences read).
    pub fn prefixes(&self) -> usize {
        self.last_token.shape()[0]
    }

    /// The array of one kind.
    pub fn of(&self, kind: FeatureKind) -> &Array3<f32> {
        match kind {
            FeatureKind::LastToken => &self.last_token,
            FeatureKind::MeanTokens => &self.mean_tokens,
        }
    }
}

/// Feeds `document` sentence by sentence through every layer and records both feature kinds
/// after each sentence. Resets the session first.
pub fn extract_document_features(
    session: &mut Session<'_>,
    accumulator: &mut FeatureAccumulator,
    document: &PreparedDocument,
) -> Result<DocumentFeatures, EngineError> {
    let model = session.model();
    let (layers, width) = (model.layers(), model.width());
    let prefixes = document.sentences.len();
    let mut last_token = Array3::zeros((prefixes, layers, width));
    let mut mean_tokens = Array3::zeros((prefixes, layers, width));
    session.reset();
    accumulator.reset();
    for (index, sentence) in document.sentences.iter().enumerate() {
        session.feed(&sentence.tokens, accumulator)?;
        last_token
            .index_axis_mut(Axis(0), index)
            .assign(&accumulator.last_token);
        mean_tokens
            .index_axis_mut(Axis(0), index)
            .assign(&accumulator.mean_tokens);
    }
    Ok(DocumentFeatures {
        last_token,
        mean_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn running_mean_and_last_token_follow_the_batches() {
        let mut accumulator = FeatureAccumulator::new(2, 2);
        accumulator.record(0, array![[1.0, 2.0], [3.0, 4.0]].view());
        assert_eq!(
            accumulator.current(FeatureKind::LastToken, 0),
            array![3.0, 4.0]
        );
        assert_eq!(
            accumulator.current(FeatureKind::MeanTokens, 0),
            array![2.0, 3.0]
        );
        accumulator.record(0, array![[5.0, 9.0]].view());
        assert_eq!(
            accumulator.current(FeatureKind::LastToken, 0),
            array![5.0, 9.0]
        );
        // (1 + 3 + 5) / 3 and (2 + 4 + 9) / 3.
        assert_eq!(
            accumulator.current(FeatureKind::MeanTokens, 0),
            array![3.0, 5.0]
        );
        assert_eq!(
            accumulator.current(FeatureKind::MeanTokens, 1),
            array![0.0, 0.0]
        );
        accumulator.reset();
        assert_eq!(
            accumulator.current(FeatureKind::MeanTokens, 0),
            array![0.0, 0.0]
        );
    }

    #[test]
    fn kinds_have_stable_names() {
        assert_eq!(FeatureKind::LastToken.name(), "last_token");
        assert_eq!(
            serde_json::to_string(&FeatureKind::MeanTokens).expect("json"),
            "\"mean_tokens\""
        );
    }
}
