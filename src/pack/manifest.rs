//! `adapter.toml`: what a pack knows about itself — format version, labels, feature kind,
//! token limit, the model it belongs to, its training data, per-layer dev facts and the
//! calibrated operating points. Layer fields are indices from 0 (see `adapters/README.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exit::OperatingPoint;
use crate::features::FeatureKind;
use crate::heads::LayerReport;

/// The pack format this build writes and reads.
pub const PACK_FORMAT_VERSION: u32 = 1;
/// Manifest file name inside a pack folder.
pub const MANIFEST_FILE: &str = "adapter.toml";
/// Weights file name inside a pack folder.
pub const WEIGHTS_FILE: &str = "heads.safetensors";

/// What a pack was trained on; checked against the model it is used with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFingerprint {
    /// `general.architecture`.
    pub architecture: String,
    /// Transformer layers.
    pub layers: usize,
    /// Hidden-state width.
    pub width: usize,
    /// SHA-256 of the GGUF file the heads were trained on.
    pub sha256: String,
    /// Its quantization type, e.g. `Q4_K_M`.
    pub quantization: Option<String>,
}

/// Where the heads' training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingDescription {
    /// Training file (as given on the command line).
    pub train_file: String,
    /// Its SHA-256.
    pub train_sha256: String,
    /// Documents trained on.
    pub train_documents: usize,
    /// Sentence prefixes trained on (all prefixes of all documents).
    pub train_prefixes: usize,
    /// Development file (L2 penalty, feature kind and temperature chosen on it).
    pub dev_file: String,
    /// Its SHA-256.
    pub dev_sha256: String,
    /// Development documents.
    pub dev_documents: usize,
    /// Field with the text.
    pub text_field: String,
    /// Field with the label.
    pub label_field: String,
    /// Mean dev accuracy over layers and prefixes of each feature kind compared.
    pub feature_comparison: BTreeMap<String, f64>,
    /// Program and version that trained the pack.
    pub created_by: String,
}

/// `adapter.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackManifest {
    /// Format version ([`PACK_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Pack name (its folder name when trained).
    pub name: String,
    /// Class labels, in head output order.
    pub labels: Vec<String>,
    /// The feature the heads read.
    pub feature_kind: FeatureKind,
    /// Token limit per document the features were extracted with.
    pub token_limit: usize,
    /// Layer with the best dev accuracy on whole documents (index from 0).
    pub best_layer: usize,
    /// The model the heads belong to.
    pub model: ModelFingerprint,
    /// Training data.
    pub training: TrainingDescription,
    /// One entry per layer, in order.
    pub layers: Vec<LayerReport>,
    /// Exit settings chosen on dev for each policy and accuracy budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationSection>,
}

/// `[calibration]`: the exit operating points chosen on dev.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSection {
    /// Dev documents simulated.
    pub dev_documents: usize,
    /// One point per policy and budget (`full` once).
    pub operating_points: Vec<OperatingPoint>,
}

impl PackManifest {
    /// Checks the manifest's consistency: labels, layer entries, temperatures, token limit and
    /// that every operating point fits the model.
    pub fn validate(&self) -> Result<(), String> {
        if self.labels.len() < 2 {
            return Err(format!(
                "{} labels; a classifier needs at least 2",
                self.labels.len()
            ));
        }
        let mut unique = self.labels.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != self.labels.len() {
            return Err("labels repeat".into());
        }
        if self.model.layers == 0 || self.model.width == 0 {
            return Err("the model fingerprint has no layers or zero width".into());
        }
        if self.layers.len() != self.model.layers {
            return Err(format!(
                "{} layer entries for a {}-layer model",
                self.layers.len(),
                self.model.layers
            ));
        }
        if let Some((index, report)) = self
            .layers
            .iter()
            .enumerate()
            .find(|(index, report)| report.layer != *index)
        {
            return Err(format!("layer entry {index} is for layer {}", report.layer));
        }
        if self.best_layer >= self.model.layers {
            return Err(format!("best layer {} does not exist", self.best_layer));
        }
        if let Some(report) = self
            .layers
            .iter()
            .find(|report| !(report.temperature.is_finite() && report.temperature > 0.0))
        {
            return Err(format!(
                "layer {} has temperature {}",
                report.layer, report.temperature
            ));
        }
        if self.token_limit == 0 {
            return Err("token limit 0".into());
        }
        if let Some(calibration) = &self.calibration {
            for point in &calibration.operating_points {
                let config = &point.config;
                if config.depth_cap >= self.model.layers
                    || config.decision_layer >= self.model.layers
                    || config.min_layer >= self.model.layers
                    || !config.threshold.is_finite()
                {
                    return Err(format!(
                        "operating point {point:?} does not fit a {}-layer model",
                        self.model.layers
                    ));
                }
            }
        }
        Ok(())
    }
}
