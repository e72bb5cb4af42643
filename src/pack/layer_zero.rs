//! A pack's layer-0 head: trained on the token ids of the training documents (the model's
//! tokenizer runs, no model layer does), its report with the dev accuracy, stored in the pack
//! (which becomes format 3).

use crate::heads::argmax;
use crate::heads::lexical::{LexicalDocument, TrainedLexicalHead, train_lexical_head};

use super::AdapterPack;
use super::calibrate::DocumentTokens;
use super::manifest::LAYER_ZERO_FORMAT_VERSION;

/// A labelled document for the layer-0 head: its tokens and class.
#[derive(Debug, Clone, Copy)]
pub struct LabelledTokens<'a> {
    /// Position in the data file.
    pub index: usize,
    /// Its tokens as the classifier feeds them.
    pub tokens: &'a DocumentTokens,
    /// True class.
    pub class: usize,
}

/// Trains the layer-0 head on `train` with `buckets` buckets, measures it on `dev`, and puts
/// it into `pack` (format 3). Returns the training (cross-fitted accuracy, out-of-fold
/// probabilities); `None` when there is nothing to train on.
pub fn train_layer_zero(
    pack: &mut AdapterPack,
    train: &[LabelledTokens<'_>],
    dev: &[LabelledTokens<'_>],
    buckets: usize,
) -> Option<TrainedLexicalHead> {
    if train.is_empty() {
        return None;
    }
    let documents: Vec<LexicalDocument> = train
        .iter()
        .map(|document| LexicalDocument {
            index: document.index,
            tokens: document.tokens.ids.clone(),
            class: document.class,
        })
        .collect();
    let mut trained = train_lexical_head(&documents, pack.manifest.labels.len(), buckets);
    let correct = dev
        .iter()
        .filter(|document| {
            argmax(ndarray::ArrayView1::from(
                trained.head.probabilities(&document.tokens.ids).as_slice(),
            )) == document.class
        })
        .count();
    trained.report.dev_accuracy = (!dev.is_empty()).then(|| correct as f64 / dev.len() as f64);
    pack.layer_zero = Some(trained.head.clone());
    pack.manifest.layer_zero = Some(trained.report.clone());
    pack.manifest.format_version = pack.manifest.format_version.max(LAYER_ZERO_FORMAT_VERSION);
    Some(trained)
}
