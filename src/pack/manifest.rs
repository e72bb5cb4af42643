//! `adapter.toml`: what a pack knows about itself — format version, labels, feature kind,
//! token limit, the model it belongs to, its training data, per-layer dev facts and the
//! calibrated operating points. Layer fields are indices from 0 (see `adapters/README.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exit::calibration::{
    CalibrationMethod, ExitSequence, LossKind, OperatingPoint, RuleSet,
};
use crate::exit::{ExitModel, ExitModels};
use crate::features::FeatureKind;
use crate::heads::LayerReport;
use crate::heads::lexical::LexicalReport;

/// The pack format this build writes. Format 2 adds the learned exit models, the exit
/// sequences and calibration with a guarantee; format 3 the layer-0 head (`[layer_zero]`, its
/// tensors in `heads.safetensors`) and settings that ask it. This build reads formats 1 and 2
/// as well, and they behave as they did.
pub const PACK_FORMAT_VERSION: u32 = 3;
/// Every format this build reads.
pub const READABLE_FORMAT_VERSIONS: [u32; 3] = [1, 2, 3];
/// The first format with a layer-0 head.
pub const LAYER_ZERO_FORMAT_VERSION: u32 = 3;
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
    /// Development file: exit calibration (and, in format 1 packs, the L2 penalty, feature kind
    /// and temperature) chosen on it.
    pub dev_file: String,
    /// Its SHA-256.
    pub dev_sha256: String,
    /// Development documents.
    pub dev_documents: usize,
    /// Field with the text.
    pub text_field: String,
    /// Field with the label.
    pub label_field: String,
    /// Mean accuracy over layers and prefixes of each feature kind compared (cross-fitted on
    /// the training data; on dev in format 1 packs).
    pub feature_comparison: BTreeMap<String, f64>,
    /// Folds of the cross-fitting on the training data that chose the L2 penalty, the
    /// temperature, the feature kind and the best layer, and gave the learned exit models cells
    /// the heads did not see (absent in format 1 packs, which chose them on dev).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_fitting_folds: Option<usize>,
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
    /// Layer with the best accuracy on whole documents (cross-fitted on train; on dev in format 1
    /// packs), whose head `full` answers with (index from 0).
    pub best_layer: usize,
    /// The model the heads belong to.
    pub model: ModelFingerprint,
    /// Training data.
    pub training: TrainingDescription,
    /// One entry per layer, in order.
    pub layers: Vec<LayerReport>,
    /// The learned exit rule's models, one per policy and target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit_models: Vec<ExitModel>,
    /// Each policy's settings in the order calibration tests them, per loss and rule set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit_sequences: Vec<ExitSequence>,
    /// Exit settings chosen for each policy and accuracy budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationSection>,
    /// The layer-0 head, when the pack has one (format 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_zero: Option<LexicalReport>,
}

/// `[calibration]`: the exit operating points, how they were chosen and on what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSection {
    /// Calibration documents simulated.
    pub dev_documents: usize,
    /// How the settings were chosen (absent in format 1 packs: point estimates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<CalibrationMethod>,
    /// The loss bounded (fixed-sequence calibration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossKind>,
    /// The rules the settings may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RuleSet>,
    /// The risk δ: the probability, over the calibration sample, that a budget does not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// The calibration data's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<CalibrationData>,
    /// One point per policy and budget (`full` once).
    pub operating_points: Vec<OperatingPoint>,
}

impl CalibrationSection {
    /// The method, point estimates for format 1 packs.
    pub fn method(&self) -> CalibrationMethod {
        self.method.unwrap_or(CalibrationMethod::PointEstimate)
    }

    /// What the budgets promise, in one sentence.
    pub fn promise(&self) -> String {
        match (self.method(), self.delta) {
            (CalibrationMethod::FixedSequence, Some(delta)) => format!(
                "fixed-sequence testing at risk δ = {delta}: with probability at least {:.0}%, a policy at budget B loses at most B points of accuracy against `full` on new documents like these ({})",
                (1.0 - delta) * 100.0,
                match self.loss {
                    Some(LossKind::Disagreement) => "bounded by its disagreement with `full`",
                    _ => "bounded by the documents `full` gets right and it gets wrong",
                }
            ),
            _ => "point estimates: a policy at budget B was within B points of `full` on these documents, with no guarantee for others".to_string(),
        }
    }
}

/// The data a calibration ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationData {
    /// The file (as given, shared data sets shortened to what follows `data/`).
    pub file: String,
    /// Its SHA-256.
    pub sha256: String,
    /// Documents used.
    pub documents: usize,
    /// Whether their labels were used.
    pub labelled: bool,
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
        for model in &self.exit_models {
            model.validate()?;
        }
        if let Some(report) = &self.layer_zero {
            if self.format_version < LAYER_ZERO_FORMAT_VERSION {
                return Err(format!(
                    "a layer-0 head in a pack of format {} (it came with format {LAYER_ZERO_FORMAT_VERSION})",
                    self.format_version
                ));
            }
            if !report.buckets.is_power_of_two() {
                return Err(format!(
                    "the layer-0 head has {} buckets, not a power of two",
                    report.buckets
                ));
            }
        }
        let models = ExitModels::new(&self.exit_models);
        let configs = self
            .exit_sequences
            .iter()
            .flat_map(|sequence| &sequence.configs)
            .chain(
                self.calibration
                    .iter()
                    .flat_map(|calibration| &calibration.operating_points)
                    .map(|point| &point.config),
            );
        for config in configs {
            if let Some(threshold) = config.layer_zero_threshold {
                if self.layer_zero.is_none() {
                    return Err(format!(
                        "the setting {config:?} asks layer 0, but the pack has no layer-0 head"
                    ));
                }
                if !threshold.is_finite() {
                    return Err(format!(
                        "the setting {config:?} has a non-finite layer-0 threshold"
                    ));
                }
            }
            if config.rule.learned_target().is_some() && models.for_config(config).is_none() {
                return Err(format!(
                    "the setting {config:?} uses the rule `{}`, but the pack has no exit model for it",
                    config.rule.name()
                ));
            }
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
