//! A pack's exit decisions: the probability grids of documents (from cached features and the
//! pack's heads, or from the training's out-of-fold probabilities), the learned exit models and
//! the exit sequences drawn on the training documents, and the operating points chosen on
//! calibration documents ([`crate::exit::calibration`]).

use std::collections::BTreeMap;

use crate::dataset::Dataset;
use crate::engine::Model;
use crate::exit::calibration::{
    CalibrationMethod, CalibrationSet, GridDocument, LossKind, RuleSet, calibrate_fixed_sequence,
    calibrate_point_estimates, exit_sequences, full_answers,
};
use crate::exit::learned_training::{TrainingDocument, fit_exit_models};
use crate::exit::{Budget, DocumentGrid, ExitModels, PolicyKind};
use crate::features::DocumentFeatures;
use crate::features::cache::{CacheError, FeatureCache};
use crate::features::extraction::PrefixSet;
use crate::heads::TrainedHeads;
use crate::text::{PreparedDocument, prepare_document};

use super::assemble::display_path;
use super::{AdapterPack, CalibrationData, CalibrationSection};

/// Why a pack could not be calibrated.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The feature cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// No calibration document has cached features (and, when labels are used, a label the
    /// pack knows).
    #[error("no calibration document is usable")]
    NoDocuments,
    /// Calibration with a guarantee needs the exit sequences that training draws.
    #[error(
        "the pack has no exit sequences (packs of format 1 were calibrated by point estimates): retrain it with this exitwise, or calibrate with `--method point`"
    )]
    NoSequences,
    /// Point estimates need labels.
    #[error("point-estimate calibration needs labelled data")]
    PointEstimatesNeedLabels,
}

/// How to calibrate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationOptions {
    /// Fixed-sequence testing (with a guarantee) or point estimates (without).
    pub method: CalibrationMethod,
    /// The rules the settings may use.
    pub rules: RuleSet,
    /// The risk δ of the guarantee.
    pub delta: f64,
    /// Whether the data's labels are used (the loss is then the accuracy lost against `full`;
    /// without labels, disagreement with `full`).
    pub labelled: bool,
    /// Threads for the point-estimate search.
    pub threads: usize,
}

impl CalibrationOptions {
    /// The loss these options bound.
    pub fn loss(&self) -> LossKind {
        if self.labelled {
            LossKind::AccuracyLoss
        } else {
            LossKind::Disagreement
        }
    }
}

/// Chooses the pack's operating points for `budgets` on `documents` (grids from the pack's
/// heads) and stores them with how they were chosen and on what data.
pub fn calibrate_pack(
    pack: &mut AdapterPack,
    documents: &[GridDocument],
    data: &Dataset,
    budgets: &[Budget],
    options: &CalibrationOptions,
) -> Result<(), CalibrationError> {
    if documents.is_empty() {
        return Err(CalibrationError::NoDocuments);
    }
    let layers = pack.heads.len();
    let decision_layer = pack.manifest.best_layer;
    let answers = full_answers(documents, layers, decision_layer);
    let set = CalibrationSet {
        documents,
        full_answers: &answers,
        layers,
        models: pack.exit_models(),
    };
    let loss = options.loss();
    let points = match options.method {
        CalibrationMethod::FixedSequence => {
            let sequences = &pack.manifest.exit_sequences;
            if !sequences
                .iter()
                .any(|sequence| sequence.loss == loss && sequence.rules == options.rules)
            {
                return Err(CalibrationError::NoSequences);
            }
            calibrate_fixed_sequence(
                sequences,
                &set,
                decision_layer,
                budgets,
                options.delta,
                loss,
                options.rules,
            )
        }
        CalibrationMethod::PointEstimate => {
            if !options.labelled {
                return Err(CalibrationError::PointEstimatesNeedLabels);
            }
            calibrate_point_estimates(
                &set,
                decision_layer,
                budgets,
                options.rules,
                options.threads,
            )
        }
    };
    pack.manifest.calibration = Some(CalibrationSection {
        dev_documents: documents.len(),
        method: Some(options.method),
        loss: Some(loss),
        rules: Some(options.rules),
        delta: (options.method == CalibrationMethod::FixedSequence).then_some(options.delta),
        data: Some(CalibrationData {
            file: display_path(&data.path),
            sha256: data.sha256.clone(),
            documents: documents.len(),
            labelled: options.labelled,
        }),
        operating_points: points,
    });
    Ok(())
}

/// Most training documents the exit sequences are drawn on (a sample spread over the file,
/// which keeps the search over tens of thousands of settings to minutes).
pub const SEQUENCE_DOCUMENTS: usize = 2000;

/// Trains the learned exit models on the out-of-fold grids of the training documents and draws
/// every policy's exit sequences there (both losses, both rule sets).
pub fn learn_exit_decisions(
    pack: &mut AdapterPack,
    training: &[GridDocument],
    threads: usize,
    progress: &dyn Fn(&str),
) {
    let layers = pack.heads.len();
    let decision_layer = pack.manifest.best_layer;
    let answers = full_answers(training, layers, decision_layer);
    progress("learning the exit models");
    let documents: Vec<TrainingDocument<'_>> = training
        .iter()
        .zip(&answers)
        .filter_map(|(document, &full_answer)| {
            document.class.map(|class| TrainingDocument {
                grid: &document.grid,
                class,
                full_answer,
            })
        })
        .collect();
    pack.manifest.exit_models = fit_exit_models(&documents, decision_layer);

    let step = training.len().div_ceil(SEQUENCE_DOCUMENTS).max(1);
    let sample: Vec<GridDocument> = training.iter().step_by(step).cloned().collect();
    let sample_answers: Vec<usize> = answers.iter().step_by(step).copied().collect();
    let set = CalibrationSet {
        documents: &sample,
        full_answers: &sample_answers,
        layers,
        models: ExitModels::new(&pack.manifest.exit_models),
    };
    let mut sequences = Vec::new();
    for kind in [
        PolicyKind::Layer,
        PolicyKind::Sentence,
        PolicyKind::TwoDimensional,
    ] {
        progress(&format!("drawing the exit sequences of `{}`", kind.name()));
        sequences.extend(exit_sequences(kind, &set, decision_layer, threads));
    }
    pack.manifest.exit_sequences = sequences;
}

/// Probabilities of every cell of a document, from its cached features and the pack's heads,
/// and of its layer-0 head on the document's token ids when the pack has one.
pub fn document_grid(
    pack: &AdapterPack,
    features: &DocumentFeatures,
    tokens: &DocumentTokens,
) -> DocumentGrid {
    let array = features.of(pack.manifest.feature_kind);
    let probabilities = (0..features.prefixes())
        .map(|prefix| {
            (0..pack.heads.len())
                .map(|layer| {
                    pack.probabilities(layer, array.slice(ndarray::s![prefix, layer, ..]))
                        .to_vec()
                })
                .collect()
        })
        .collect();
    DocumentGrid {
        probabilities,
        sentence_tokens: tokens.sentence_tokens.clone(),
        layer_zero: pack
            .layer_zero
            .as_ref()
            .map(|head| head.probabilities(&tokens.ids)),
    }
}

/// A document's tokens as the classifier feeds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentTokens {
    /// Tokens per sentence.
    pub sentence_tokens: Vec<usize>,
    /// Every token id, in order (what the layer-0 head reads).
    pub ids: Vec<u32>,
}

impl DocumentTokens {
    /// The tokens of a prepared document.
    pub fn of(prepared: &PreparedDocument) -> Self {
        DocumentTokens {
            sentence_tokens: prepared
                .sentences
                .iter()
                .map(|sentence| sentence.tokens.len())
                .collect(),
            ids: prepared.token_ids(),
        }
    }
}

/// The tokens of every document of `dataset`, as the classifier feeds them (`None` for a
/// document without text). The model's tokenizer runs; the model does not.
pub fn dataset_tokens(
    model: &Model,
    dataset: &Dataset,
    token_limit: usize,
) -> Vec<Option<DocumentTokens>> {
    dataset
        .documents
        .iter()
        .map(|document| {
            prepare_document(model, &document.text, token_limit)
                .ok()
                .map(|prepared| DocumentTokens::of(&prepared))
        })
        .collect()
}

/// The grids of every cached document of `dataset`, with its class when `labelled` (documents
/// whose label the pack does not know are then left out).
pub fn document_grids(
    pack: &AdapterPack,
    model: &Model,
    cache: &mut FeatureCache,
    dataset: &Dataset,
    labelled: bool,
) -> Result<Vec<GridDocument>, CacheError> {
    let tokens = dataset_tokens(model, dataset, pack.manifest.token_limit);
    let mut grids = Vec::new();
    for (index, document) in dataset.documents.iter().enumerate() {
        let class = pack
            .manifest
            .labels
            .iter()
            .position(|label| *label == document.label);
        if labelled && class.is_none() {
            continue;
        }
        let Some(features) = cache.get(index)? else {
            continue;
        };
        let Some(document_tokens) = &tokens[index] else {
            continue;
        };
        // The cache was filled from the same preparation; a mismatch means another tokenizer.
        if document_tokens.sentence_tokens.len() != features.prefixes() {
            continue;
        }
        grids.push(GridDocument {
            index,
            grid: document_grid(pack, &features, document_tokens),
            class: if labelled { class } else { None },
        });
    }
    Ok(grids)
}

/// The grids of every cached, labelled document of `dataset` (see [`document_grids`]).
pub fn labelled_grids(
    pack: &AdapterPack,
    model: &Model,
    cache: &mut FeatureCache,
    dataset: &Dataset,
) -> Result<Vec<GridDocument>, CacheError> {
    document_grids(pack, model, cache, dataset, true)
}

/// The grids of the training documents from the heads that did not see them (the
/// cross-fitting's out-of-fold probabilities), with their classes.
pub fn out_of_fold_grids(
    trained: &TrainedHeads,
    set: &PrefixSet,
    tokens: &[Option<DocumentTokens>],
) -> Vec<GridDocument> {
    // Rows of each document, in prefix order.
    let mut rows_of: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for row in 0..set.len() {
        rows_of.entry(set.documents[row]).or_default().push(row);
    }
    let mut grids = Vec::with_capacity(rows_of.len());
    for (document, mut rows) in rows_of {
        rows.sort_by_key(|&row| set.sentences_read[row]);
        let Some(Some(tokens)) = tokens.get(document) else {
            continue;
        };
        if tokens.sentence_tokens.len() != rows.len() {
            continue;
        }
        let probabilities = rows
            .iter()
            .map(|&row| {
                trained
                    .out_of_fold
                    .iter()
                    .map(|layer| layer.row(row).to_vec())
                    .collect()
            })
            .collect();
        grids.push(GridDocument {
            index: document,
            grid: DocumentGrid {
                probabilities,
                sentence_tokens: tokens.sentence_tokens.clone(),
                // The exit sequences are drawn without layer 0: calibration tests them with
                // layer 0 along a fixed path (`exit::calibration::layer_zero_path`).
                layer_zero: None,
            },
            class: rows.first().map(|&row| set.labels[row]),
        });
    }
    grids
}
