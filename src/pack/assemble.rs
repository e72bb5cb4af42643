//! Assembling a pack from trained heads: the feature kind with the better dev accuracy, the
//! model's fingerprint and a description of the training data.

use std::collections::BTreeMap;
use std::path::Path;

use crate::dataset::{Dataset, FieldNames};
use crate::engine::ModelFacts;
use crate::features::extraction::PrefixSet;
use crate::heads::TrainedHeads;

use super::{
    AdapterPack, ModelFingerprint, PACK_FORMAT_VERSION, PackManifest, TrainingDescription,
};

/// A data file and the sentence prefixes read from it.
#[derive(Debug, Clone, Copy)]
pub struct TrainingData<'a> {
    /// The file.
    pub dataset: &'a Dataset,
    /// Its prefixes (any feature kind: they share rows).
    pub prefixes: &'a PrefixSet,
}

/// Everything a pack records besides its heads.
#[derive(Debug, Clone, Copy)]
pub struct PackDescription<'a> {
    /// The pack's name (its folder's name).
    pub name: &'a str,
    /// Class labels, in head output order.
    pub labels: &'a [String],
    /// Tokens per document the features were extracted with.
    pub token_limit: usize,
    /// The model the heads were trained on.
    pub model: &'a ModelFacts,
    /// SHA-256 of its file.
    pub model_sha256: &'a str,
    /// The fields the data files were read with.
    pub fields: &'a FieldNames,
    /// Training data.
    pub train: TrainingData<'a>,
    /// Development data.
    pub dev: TrainingData<'a>,
}

/// The pack made of the candidate (one per feature kind) with the best mean cross-fitted
/// accuracy over layers and prefixes (the first on ties), without exit decisions yet, and the
/// chosen candidate (its out-of-fold probabilities train the exit decisions); `None` without
/// candidates. The comparison of the kinds is recorded in the manifest.
pub fn assemble(
    description: &PackDescription<'_>,
    candidates: Vec<TrainedHeads>,
) -> Option<(AdapterPack, TrainedHeads)> {
    let feature_comparison: BTreeMap<String, f64> = candidates
        .iter()
        .map(|trained| {
            (
                trained.kind.name().to_string(),
                trained.mean_prefix_accuracy(),
            )
        })
        .collect();
    let chosen = candidates.into_iter().reduce(|best, next| {
        if next.mean_prefix_accuracy() > best.mean_prefix_accuracy() {
            next
        } else {
            best
        }
    })?;
    let PackDescription {
        model, train, dev, ..
    } = *description;
    let manifest = PackManifest {
        format_version: PACK_FORMAT_VERSION,
        name: description.name.to_string(),
        labels: description.labels.to_vec(),
        feature_kind: chosen.kind,
        token_limit: description.token_limit,
        best_layer: chosen.best_layer(),
        model: ModelFingerprint {
            architecture: model.architecture.clone(),
            layers: model.layers,
            width: model.width,
            sha256: description.model_sha256.to_string(),
            quantization: model.quantization.clone(),
        },
        training: TrainingDescription {
            train_file: display_path(&train.dataset.path),
            train_sha256: train.dataset.sha256.clone(),
            train_documents: train.prefixes.document_count(),
            train_prefixes: train.prefixes.len(),
            dev_file: display_path(&dev.dataset.path),
            dev_sha256: dev.dataset.sha256.clone(),
            dev_documents: dev.prefixes.document_count(),
            text_field: description.fields.text.clone(),
            label_field: description.fields.label.clone(),
            feature_comparison,
            cross_fitting_folds: Some(crate::heads::training::FOLDS),
            created_by: format!(
                "exitwise {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("EXITWISE_BUILD_COMMIT")
            ),
        },
        layers: chosen.reports.clone(),
        exit_models: Vec::new(),
        exit_sequences: Vec::new(),
        calibration: None,
        layer_zero: None,
    };
    let pack = AdapterPack {
        manifest,
        heads: chosen.heads.clone(),
        layer_zero: None,
    };
    Some((pack, chosen))
}

/// A path as given, shortened to what follows `data/` for the shared data sets, so packs do not
/// record a machine's folder layout.
pub fn display_path(path: &Path) -> String {
    let text = path.display().to_string();
    match text.rfind("/data/") {
        Some(position) => text[position + "/data/".len()..].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2};

    use super::*;
    use crate::dataset::LabelledDocument;
    use crate::features::FeatureKind;
    use crate::heads::{LayerHead, LayerReport, LinearHead, Standardizer};

    fn candidate(kind: FeatureKind, prefix_accuracy: f64) -> TrainedHeads {
        let layers = 2;
        TrainedHeads {
            kind,
            heads: (0..layers)
                .map(|_| LayerHead {
                    standardizer: Standardizer {
                        mean: Array1::zeros(3),
                        scale: Array1::ones(3),
                    },
                    head: LinearHead {
                        weights: Array2::zeros((2, 3)),
                        bias: Array1::zeros(2),
                        temperature: 1.0,
                    },
                })
                .collect(),
            reports: (0..layers)
                .map(|layer| LayerReport {
                    layer,
                    l2: 1.0,
                    temperature: 1.0,
                    // Dev figures are only reported: the cross-fitted ones decide.
                    dev_accuracy_prefixes: 0.9,
                    // Layer 1 is the best on whole documents.
                    dev_accuracy_full: 0.9 - 0.1 * layer as f64,
                    dev_accuracy_1: 0.5,
                    dev_accuracy_2: 0.5,
                    dev_accuracy_4: 0.5,
                    cross_fitted_accuracy_prefixes: Some(prefix_accuracy),
                    cross_fitted_accuracy_full: Some(0.5 + 0.1 * layer as f64),
                })
                .collect(),
            out_of_fold: Vec::new(),
        }
    }

    fn prefixes() -> PrefixSet {
        PrefixSet {
            kind: FeatureKind::MeanTokens,
            layers: Vec::new(),
            labels: vec![0, 0, 1],
            documents: vec![0, 0, 1],
            sentences_read: vec![1, 2, 1],
            sentences_total: vec![2, 2, 1],
        }
    }

    #[test]
    fn the_kind_with_the_better_prefix_accuracy_makes_the_pack() {
        let dataset = Dataset {
            path: "../shared/data/imdb/train.jsonl".into(),
            sha256: "a".repeat(64),
            documents: vec![LabelledDocument {
                id: "1".into(),
                text: "Good.".into(),
                label: "pos".into(),
            }],
        };
        let set = prefixes();
        let model = ModelFacts {
            name: None,
            architecture: "gemma3".into(),
            layers: 2,
            width: 3,
            parameters: 0,
            quantization: Some("Q4_K_M".into()),
            tensor_types: Vec::new(),
            file_size: 0,
            vocabulary_size: 0,
            trained_context: None,
        };
        let labels = ["neg".to_string(), "pos".to_string()];
        let description = PackDescription {
            name: "tiny",
            labels: &labels,
            token_limit: 2048,
            model: &model,
            model_sha256: &"c".repeat(64),
            fields: &FieldNames::default(),
            train: TrainingData {
                dataset: &dataset,
                prefixes: &set,
            },
            dev: TrainingData {
                dataset: &dataset,
                prefixes: &set,
            },
        };
        let (pack, chosen) = assemble(
            &description,
            vec![
                candidate(FeatureKind::LastToken, 0.6),
                candidate(FeatureKind::MeanTokens, 0.8),
            ],
        )
        .expect("a candidate");
        let manifest = &pack.manifest;
        assert_eq!(manifest.feature_kind, FeatureKind::MeanTokens);
        assert_eq!(manifest.best_layer, 1);
        assert_eq!(manifest.training.feature_comparison["last_token"], 0.6);
        assert_eq!(manifest.training.train_file, "imdb/train.jsonl");
        assert_eq!(manifest.training.train_documents, 2);
        assert_eq!(manifest.training.train_prefixes, 3);
        assert_eq!(manifest.model.width, 3);
        assert!(manifest.validate().is_ok());
        assert_eq!(pack.heads.len(), 2);
        assert_eq!(chosen.kind, FeatureKind::MeanTokens);
        assert_eq!(manifest.training.cross_fitting_folds, Some(2));
        assert!(assemble(&description, Vec::new()).is_none());
    }

    #[test]
    fn shared_data_paths_lose_the_machine_s_folders() {
        assert_eq!(
            display_path(Path::new("../shared/data/imdb/train.jsonl")),
            "imdb/train.jsonl"
        );
        assert_eq!(
            display_path(Path::new("/home/me/reviews.csv")),
            "/home/me/reviews.csv"
        );
    }
}
