//! Calibration of a pack on dev data: the probability grid of every dev document from its
//! cached features and the pack's heads, and the operating points that
//! [`crate::exit::calibration`] chooses on those grids, stored in the pack.

use crate::dataset::Dataset;
use crate::engine::Model;
use crate::exit::calibration::{LabelledGrid, calibrate};
use crate::exit::{DEFAULT_BUDGETS, DocumentGrid};
use crate::features::DocumentFeatures;
use crate::features::cache::{CacheError, FeatureCache};
use crate::text::prepare_document;

use super::{AdapterPack, CalibrationSection};

/// Why a pack could not be calibrated.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The feature cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// No dev document has cached features and a label the pack knows.
    #[error("no dev document is usable for calibration")]
    NoDocuments,
}

/// Simulates the exit policies on the cached dev features of `dev` and stores the operating
/// points chosen for the default budgets in `pack`.
pub fn calibrate_pack(
    pack: &mut AdapterPack,
    model: &Model,
    dev_cache: &mut FeatureCache,
    dev: &Dataset,
) -> Result<(), CalibrationError> {
    let grids = labelled_grids(pack, model, dev_cache, dev)?;
    if grids.is_empty() {
        return Err(CalibrationError::NoDocuments);
    }
    let points = calibrate(
        &grids,
        pack.heads.len(),
        pack.manifest.best_layer,
        &DEFAULT_BUDGETS,
    );
    pack.manifest.calibration = Some(CalibrationSection {
        dev_documents: grids.len(),
        operating_points: points,
    });
    Ok(())
}

/// Probabilities of every cell of a document, from its cached features and the pack's heads.
pub fn document_grid(
    pack: &AdapterPack,
    features: &DocumentFeatures,
    sentence_tokens: Vec<usize>,
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
        sentence_tokens,
    }
}

/// The grids of every cached document of `dataset` whose label the pack knows. Sentence token
/// counts come from the model's tokenizer (cheap; the model is not run).
pub fn labelled_grids(
    pack: &AdapterPack,
    model: &Model,
    cache: &mut FeatureCache,
    dataset: &Dataset,
) -> Result<Vec<LabelledGrid>, CacheError> {
    let mut grids = Vec::new();
    for (index, document) in dataset.documents.iter().enumerate() {
        let Some(class) = pack
            .manifest
            .labels
            .iter()
            .position(|label| *label == document.label)
        else {
            continue;
        };
        let Some(features) = cache.get(index)? else {
            continue;
        };
        let Ok(prepared) = prepare_document(model, &document.text, pack.manifest.token_limit)
        else {
            continue;
        };
        let sentence_tokens: Vec<usize> = prepared
            .sentences
            .iter()
            .map(|sentence| sentence.tokens.len())
            .collect();
        // The cache was filled from the same preparation; a mismatch means another tokenizer.
        if sentence_tokens.len() != features.prefixes() {
            continue;
        }
        grids.push(LabelledGrid {
            index,
            grid: document_grid(pack, &features, sentence_tokens),
            class,
        });
    }
    Ok(grids)
}
