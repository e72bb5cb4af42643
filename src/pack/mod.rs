//! Adapter packs: the per-layer heads that turn a GGUF model into a classifier with early exit.
//!
//! A pack is a folder with `adapter.toml` (format version, model fingerprint, labels, feature
//! kind, per-layer dev accuracy and calibration, training data description) and
//! `heads.safetensors` (per layer: `layers.<l>.weight` `[classes, width]`, `layers.<l>.bias`
//! `[classes]`, `layers.<l>.mean` and `layers.<l>.scale` `[width]`, all little-endian f32).
//! Both are plain, documented formats that other tools read.
//!
//! [`manifest`] and [`weights`] are the two files; [`assemble`] makes a pack from trained heads;
//! [`calibrate`] builds the dev probability grids from cached features and stores the operating
//! points [`crate::exit::calibration`] chooses on them.

pub mod assemble;
pub mod calibrate;
pub mod layer_zero;
pub mod manifest;
pub mod weights;

use std::path::{Path, PathBuf};

use ndarray::{Array1, ArrayView1};

use crate::engine::ModelFacts;
use crate::exit::{Budget, ExitModels, PolicyConfig, PolicyKind};
use crate::heads::LayerHead;
use crate::heads::lexical::LexicalHead;

pub use manifest::{
    CalibrationData, CalibrationSection, LAYER_ZERO_FORMAT_VERSION, MANIFEST_FILE,
    ModelFingerprint, PACK_FORMAT_VERSION, PackManifest, READABLE_FORMAT_VERSIONS,
    TrainingDescription, WEIGHTS_FILE,
};
use weights::{read_heads, write_heads};

/// A pack compiled into the binary by `build.rs`.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedPack {
    /// The pack's name.
    pub name: &'static str,
    /// `adapter.toml`.
    pub manifest: &'static str,
    /// `heads.safetensors`.
    pub weights: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/embedded_pack.rs"));

/// Why a pack cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A file could not be read or written.
    #[error("cannot {action} `{path}`: {cause}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause (part of the message, so not exposed as the source).
        cause: std::io::Error,
    },
    /// `adapter.toml` is malformed or inconsistent.
    #[error("invalid manifest of pack `{origin}`: {reason}")]
    Manifest {
        /// The pack folder or name.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The format version is not one this build reads.
    #[error("pack `{origin}` has format version {found}; this exitwise reads versions 1 to 3")]
    Version {
        /// The pack.
        origin: String,
        /// The version in its manifest.
        found: u32,
    },
    /// `heads.safetensors` is corrupt, truncated or has wrong shapes.
    #[error("invalid weights of pack `{origin}` (heads.safetensors): {reason}")]
    Weights {
        /// The pack.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The pack has no exit setting for the requested policy and budget.
    #[error("pack `{origin}` has {reason}")]
    Calibration {
        /// The pack.
        origin: String,
        /// What is missing.
        reason: String,
    },
    /// The pack belongs to another model.
    #[error("pack `{origin}` does not fit the model: {reason}")]
    ModelMismatch {
        /// The pack.
        origin: String,
        /// The difference.
        reason: String,
    },
}

/// The key of `adapter.toml` that records the SHA-256 of `heads.safetensors` (packs written
/// since exitwise 0.1's durable writes; older packs load without it). It is kept out of
/// [`PackManifest`]: it describes the files, not the pack, and is computed as they are written.
const HEADS_SHA256_KEY: &str = "heads_sha256";

/// `manifest` with the weights' hash as its second line, after `format_version`: top-level
/// keys must come before TOML's first table.
fn with_heads_line(manifest: &str, heads_sha256: &str) -> String {
    let (first, rest) = manifest.split_once('\n').unwrap_or((manifest, ""));
    format!("{first}\n{HEADS_SHA256_KEY} = \"{heads_sha256}\"\n{rest}")
}

/// `manifest` without the weights' hash line, for [`PackManifest`], which does not know it.
fn without_heads_line(manifest: &str) -> std::borrow::Cow<'_, str> {
    let prefix = format!("{HEADS_SHA256_KEY} =");
    if manifest.lines().any(|line| line.starts_with(&prefix)) {
        manifest
            .lines()
            .filter(|line| !line.starts_with(&prefix))
            .flat_map(|line| [line, "\n"])
            .collect::<String>()
            .into()
    } else {
        manifest.into()
    }
}

/// A loaded, validated adapter pack.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterPack {
    /// The manifest.
    pub manifest: PackManifest,
    /// One head per layer.
    pub heads: Vec<LayerHead>,
    /// The layer-0 head (format 3 packs that have one).
    pub layer_zero: Option<LexicalHead>,
}

impl AdapterPack {
    /// Loads and validates the pack in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, PackError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|cause| PackError::Io {
                action: "read",
                path,
                cause,
            })
        };
        let manifest = read(MANIFEST_FILE)?;
        let weights = read(WEIGHTS_FILE)?;
        let manifest = String::from_utf8(manifest).map_err(|_| PackError::Manifest {
            origin: dir.display().to_string(),
            reason: "not UTF-8".into(),
        })?;
        Self::from_parts(&manifest, &weights, &dir.display().to_string())
    }

    /// Parses and validates a pack from its two files' contents (`origin` names it in errors).
    pub fn from_parts(
        manifest_text: &str,
        weights: &[u8],
        origin: &str,
    ) -> Result<Self, PackError> {
        let manifest_error = |reason: String| PackError::Manifest {
            origin: origin.to_string(),
            reason,
        };
        // Read the version first, so a future format gets the version message rather than a
        // field error.
        let table = toml::from_str::<toml::Table>(manifest_text)
            .map_err(|error| manifest_error(error.message().to_string()))?;
        let version = table
            .get("format_version")
            .and_then(toml::Value::as_integer)
            .ok_or_else(|| manifest_error("no integer `format_version`".into()))?;
        if !READABLE_FORMAT_VERSIONS
            .iter()
            .any(|&readable| i64::from(readable) == version)
        {
            return Err(PackError::Version {
                origin: origin.to_string(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
            });
        }
        let manifest: PackManifest = toml::from_str(&without_heads_line(manifest_text))
            .map_err(|error| manifest_error(error.message().to_string()))?;
        manifest.validate().map_err(manifest_error)?;
        if let Some(recorded) = table.get(HEADS_SHA256_KEY).and_then(toml::Value::as_str) {
            let actual = crate::digest::sha256_hex(weights);
            if actual != recorded {
                return Err(PackError::Weights {
                    origin: origin.to_string(),
                    reason: format!(
                        "`{WEIGHTS_FILE}` has sha256 {actual}, and `{MANIFEST_FILE}` expects {recorded}: the pack was being written when it was interrupted, or changed since; write it again"
                    ),
                });
            }
        }
        let (heads, layer_zero) =
            read_heads(&manifest, weights).map_err(|reason| PackError::Weights {
                origin: origin.to_string(),
                reason,
            })?;
        Ok(AdapterPack {
            manifest,
            heads,
            layer_zero,
        })
    }

    /// The default pack compiled into this binary, if the build had it.
    pub fn embedded() -> Option<Result<Self, PackError>> {
        EMBEDDED_PACK.map(|pack| Self::from_parts(pack.manifest, pack.weights, pack.name))
    }

    /// Writes the pack into `dir` (created if needed); each file is written durably (a
    /// temporary name, synced, renamed, the folder synced: [`crate::durable`]), so neither a
    /// failure nor a crash or power loss leaves a half-written file.
    pub fn save(&self, dir: &Path) -> Result<(), PackError> {
        std::fs::create_dir_all(dir).map_err(|cause| PackError::Io {
            action: "create",
            path: dir.to_path_buf(),
            cause,
        })?;
        let weights = write_heads(&self.heads, self.layer_zero.as_ref()).map_err(|reason| {
            PackError::Weights {
                origin: dir.display().to_string(),
                reason,
            }
        })?;
        let manifest =
            toml::to_string_pretty(&self.manifest).map_err(|error| PackError::Manifest {
                origin: dir.display().to_string(),
                reason: error.to_string(),
            })?;
        let manifest = with_heads_line(&manifest, &crate::digest::sha256_hex(&weights));
        // The weights first, the manifest last: the manifest, with the weights' hash, is what
        // makes the new pack whole. A crash between the two leaves the new weights beside the
        // old manifest, which loading refuses by the hash.
        for (name, bytes) in [
            (WEIGHTS_FILE, weights),
            (MANIFEST_FILE, manifest.into_bytes()),
        ] {
            let path = dir.join(name);
            crate::durable::write(&path, &bytes).map_err(|cause| PackError::Io {
                action: "write",
                path,
                cause,
            })?;
        }
        Ok(())
    }

    /// Whether a pack may be written into `dir`: it does not exist or is empty, holds a pack,
    /// or holds only what an interrupted write of one left (the weights, hidden `.partial`
    /// files); never a folder of other files.
    pub fn may_write_into(dir: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return !dir.exists();
        };
        let mut names = entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned());
        dir.join(MANIFEST_FILE).exists()
            || names.all(|name| {
                name == WEIGHTS_FILE || (name.starts_with('.') && name.ends_with(".partial"))
            })
    }

    /// Checks that the pack fits `model`: architecture, layers and width must match; another
    /// quantization (or another file of the same shape, when `model_sha256` is given) gives a
    /// warning, or an error when `strict`. Returns the warnings.
    pub fn check_model(
        &self,
        model: &ModelFacts,
        model_sha256: Option<&str>,
        strict: bool,
    ) -> Result<Vec<String>, PackError> {
        let expected = &self.manifest.model;
        let mismatch = |reason: String| PackError::ModelMismatch {
            origin: self.manifest.name.clone(),
            reason,
        };
        if expected.architecture != model.architecture
            || expected.layers != model.layers
            || expected.width != model.width
        {
            return Err(mismatch(format!(
                "it was trained for {} with {} layers of width {}, the model is {} with {} layers of width {}",
                expected.architecture,
                expected.layers,
                expected.width,
                model.architecture,
                model.layers,
                model.width
            )));
        }
        let mut warnings = Vec::new();
        if expected.quantization != model.quantization {
            warnings.push(format!(
                "pack `{}` was trained on a {} file, the model is {}: accuracy may differ",
                self.manifest.name,
                expected.quantization.as_deref().unwrap_or("unknown"),
                model
                    .quantization
                    .as_deref()
                    .unwrap_or("of unknown quantization")
            ));
        } else if let Some(sha256) = model_sha256.filter(|sha256| *sha256 != expected.sha256) {
            warnings.push(format!(
                "pack `{}` was trained on the model file with sha256 {}, this one has {sha256}",
                self.manifest.name, expected.sha256
            ));
        }
        if strict && let Some(warning) = warnings.first() {
            return Err(mismatch(format!("{warning} (refused because of --strict)")));
        }
        Ok(warnings)
    }

    /// The calibrated exit setting of `policy` at `budget` points below `full` on dev.
    /// `full` needs no calibration: it reads everything and answers with the best layer.
    pub fn operating_point(
        &self,
        policy: PolicyKind,
        budget: Budget,
    ) -> Result<PolicyConfig, PackError> {
        let calibration_error = |reason: String| PackError::Calibration {
            origin: self.manifest.name.clone(),
            reason,
        };
        if policy == PolicyKind::Full {
            return Ok(PolicyConfig::full(
                self.manifest.model.layers,
                self.manifest.best_layer,
            ));
        }
        let Some(calibration) = &self.manifest.calibration else {
            return Err(calibration_error(
                "no exit calibration: run `exitwise calibrate PACK --dev FILE`".into(),
            ));
        };
        let points: Vec<_> = calibration
            .operating_points
            .iter()
            .filter(|point| point.policy() == policy)
            .collect();
        points
            .iter()
            .find(|point| point.budget == budget)
            .map(|point| point.config)
            .ok_or_else(|| {
                let budgets: Vec<String> = points
                    .iter()
                    .map(|point| point.budget.to_string())
                    .collect();
                calibration_error(format!(
                    "no exit setting for policy `{}` at budget {budget} (calibrated budgets: {})",
                    policy.name(),
                    if budgets.is_empty() {
                        "none".to_string()
                    } else {
                        budgets.join(", ")
                    }
                ))
            })
    }

    /// The learned exit rule's models.
    pub fn exit_models(&self) -> ExitModels<'_> {
        ExitModels::new(&self.manifest.exit_models)
    }

    /// Calibrated class probabilities of the head of `layer` for a raw feature vector.
    pub fn probabilities(&self, layer: usize, feature: ArrayView1<'_, f32>) -> Array1<f32> {
        self.heads[layer].probabilities(feature)
    }
}

/// A small pack (3 layers of width 4, two classes) for unit tests.
#[cfg(test)]
pub(crate) fn sample_pack() -> AdapterPack {
    use std::collections::BTreeMap;

    use ndarray::Array2;

    use crate::features::FeatureKind;
    use crate::heads::{LayerReport, LinearHead, Standardizer};

    let (layers, width, classes) = (3, 4, 2);
    let heads = (0..layers)
        .map(|layer| LayerHead {
            standardizer: Standardizer {
                mean: Array1::from_elem(width, layer as f32),
                scale: Array1::from_elem(width, 0.5),
            },
            head: LinearHead {
                weights: Array2::from_shape_fn((classes, width), |(class, column)| {
                    (class * width + column) as f32 * 0.1
                }),
                bias: Array1::from(vec![0.25, -0.25]),
                temperature: 1.5,
            },
        })
        .collect();
    let manifest = PackManifest {
        format_version: PACK_FORMAT_VERSION,
        name: "tiny".into(),
        labels: vec!["neg".into(), "pos".into()],
        feature_kind: FeatureKind::MeanTokens,
        token_limit: 2048,
        best_layer: 2,
        model: ModelFingerprint {
            architecture: "gemma3".into(),
            layers,
            width,
            sha256: "c".repeat(64),
            quantization: Some("Q4_K_M".into()),
        },
        training: TrainingDescription {
            train_file: "train.jsonl".into(),
            train_sha256: "a".repeat(64),
            train_documents: 10,
            train_prefixes: 30,
            dev_file: "dev.jsonl".into(),
            dev_sha256: "b".repeat(64),
            dev_documents: 5,
            text_field: "text".into(),
            label_field: "label".into(),
            feature_comparison: BTreeMap::from([
                ("last_token".into(), 0.7),
                ("mean_tokens".into(), 0.8),
            ]),
            created_by: "exitwise test".into(),
            cross_fitting_folds: Some(2),
        },
        layers: (0..layers)
            .map(|layer| LayerReport {
                layer,
                l2: 0.01,
                temperature: 1.5,
                dev_accuracy_prefixes: 0.75,
                dev_accuracy_full: 0.8,
                dev_accuracy_1: 0.6,
                dev_accuracy_2: 0.7,
                dev_accuracy_4: 0.75,
                cross_fitted_accuracy_prefixes: Some(0.7),
                cross_fitted_accuracy_full: None,
            })
            .collect(),
        exit_models: Vec::new(),
        exit_sequences: Vec::new(),
        calibration: None,
        layer_zero: None,
    };
    AdapterPack {
        manifest,
        heads,
        layer_zero: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(architecture: &str, layers: usize, width: usize, quantization: &str) -> ModelFacts {
        ModelFacts {
            name: None,
            architecture: architecture.into(),
            layers,
            width,
            parameters: 0,
            quantization: Some(quantization.into()),
            tensor_types: Vec::new(),
            file_size: 0,
            vocabulary_size: 0,
            trained_context: None,
        }
    }

    #[test]
    fn round_trip_preserves_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = sample_pack();
        pack.save(dir.path()).expect("save");
        let loaded = AdapterPack::load_dir(dir.path()).expect("load");
        assert_eq!(loaded, pack);
        let feature = ndarray::array![1.0f32, 2.0, 3.0, 4.0];
        assert_eq!(
            loaded.probabilities(1, feature.view()),
            pack.probabilities(1, feature.view())
        );
    }

    #[test]
    fn the_manifest_records_the_weights_and_a_mismatch_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = sample_pack();
        pack.save(dir.path()).expect("save");
        let manifest = std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).expect("read");
        let weights = std::fs::read(dir.path().join(WEIGHTS_FILE)).expect("weights");
        let second_line = manifest.lines().nth(1).expect("two lines");
        assert_eq!(
            second_line,
            format!("heads_sha256 = \"{}\"", crate::digest::sha256_hex(&weights))
        );
        // The weights of another pack beside this manifest, as a crash between the two
        // renames of a replacement would leave them: refused, naming both files.
        let mut other = sample_pack();
        other.heads[0].head.bias[0] += 1.0;
        let other_dir = tempfile::tempdir().expect("tempdir");
        other.save(other_dir.path()).expect("save");
        std::fs::copy(
            other_dir.path().join(WEIGHTS_FILE),
            dir.path().join(WEIGHTS_FILE),
        )
        .expect("copy");
        let error = AdapterPack::load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("heads.safetensors") && error.contains("was interrupted"),
            "{error}"
        );
        // Without the line (packs written before it), the weights are not checked.
        let old = without_heads_line(&manifest);
        assert!(!old.contains("heads_sha256"));
        std::fs::write(dir.path().join(MANIFEST_FILE), old.as_bytes()).expect("write");
        let loaded = AdapterPack::load_dir(dir.path()).expect("an older pack loads");
        assert_eq!(loaded.heads, other.heads);
    }

    #[test]
    fn packs_are_written_only_into_packs_empty_folders_or_interrupted_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("pack");
        assert!(AdapterPack::may_write_into(&folder), "missing");
        std::fs::create_dir(&folder).expect("create");
        assert!(AdapterPack::may_write_into(&folder), "empty");
        std::fs::write(folder.join(WEIGHTS_FILE), b"weights").expect("write");
        std::fs::write(folder.join(".adapter.toml.x1y2z3.partial"), b"half").expect("write");
        assert!(AdapterPack::may_write_into(&folder), "an interrupted write");
        std::fs::write(folder.join("notes.txt"), b"mine").expect("write");
        assert!(!AdapterPack::may_write_into(&folder), "someone's files");
        std::fs::write(folder.join(MANIFEST_FILE), b"format_version = 3").expect("write");
        assert!(AdapterPack::may_write_into(&folder), "a pack");
        let file = dir.path().join("file");
        std::fs::write(&file, b"").expect("write");
        assert!(!AdapterPack::may_write_into(&file), "a file");
    }

    #[test]
    fn calibration_round_trips_and_is_validated() {
        use crate::exit::calibration::{CalibrationMethod, LossKind, RuleSet};
        use crate::exit::{ExitRule, OperatingPoint};
        let mut pack = sample_pack();
        let config = PolicyConfig {
            kind: PolicyKind::TwoDimensional,
            rule: ExitRule::AccumulatedMargin,
            threshold: 2.5,
            min_layer: 1,
            patience: 2,
            depth_cap: 2,
            decision_layer: 2,
            min_pass_tokens: 0,
            layer_zero_threshold: None,
        };
        pack.manifest.calibration = Some(CalibrationSection {
            dev_documents: 5,
            method: Some(CalibrationMethod::FixedSequence),
            loss: Some(LossKind::AccuracyLoss),
            rules: Some(RuleSet::All),
            delta: Some(0.1),
            data: Some(CalibrationData {
                file: "dev.jsonl".into(),
                sha256: "b".repeat(64),
                documents: 5,
                labelled: true,
            }),
            operating_points: vec![OperatingPoint {
                budget: Budget::from_hundredths(100),
                policy: Some(PolicyKind::TwoDimensional),
                config,
                dev_accuracy: Some(0.8),
                dev_cost: 0.25,
                dev_loss: Some(0.0),
                loss_bound: Some(0.37),
            }],
        });
        let dir = tempfile::tempdir().expect("tempdir");
        pack.save(dir.path()).expect("save");
        let manifest = std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).expect("manifest");
        assert!(manifest.contains("kind = \"2d\""), "{manifest}");
        assert_eq!(AdapterPack::load_dir(dir.path()).expect("load"), pack);
        let weights = std::fs::read(dir.path().join(WEIGHTS_FILE)).expect("weights");
        let too_deep = manifest.replace("depth_cap = 2", "depth_cap = 3");
        let error = AdapterPack::from_parts(&too_deep, &weights, "tiny").unwrap_err();
        assert!(
            error.to_string().contains("does not fit a 3-layer model"),
            "{error}"
        );
    }

    #[test]
    fn model_checks_refuse_other_shapes_and_warn_on_other_quantization() {
        let pack = sample_pack();
        assert_eq!(
            pack.check_model(&facts("gemma3", 3, 4, "Q4_K_M"), None, true)
                .expect("fits"),
            Vec::<String>::new()
        );
        let error = pack
            .check_model(&facts("llama", 3, 4, "Q4_K_M"), None, false)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "pack `tiny` does not fit the model: it was trained for gemma3 with 3 layers of width 4, the model is llama with 3 layers of width 4"
        );
        assert!(
            pack.check_model(&facts("gemma3", 3, 8, "Q4_K_M"), None, false)
                .is_err()
        );
        let warnings = pack
            .check_model(&facts("gemma3", 3, 4, "Q8_0"), None, false)
            .expect("accepted");
        assert_eq!(
            warnings,
            ["pack `tiny` was trained on a Q4_K_M file, the model is Q8_0: accuracy may differ"]
        );
        let error = pack
            .check_model(&facts("gemma3", 3, 4, "Q8_0"), None, true)
            .unwrap_err();
        assert!(
            error.to_string().ends_with("(refused because of --strict)"),
            "{error}"
        );
        let warnings = pack
            .check_model(
                &facts("gemma3", 3, 4, "Q4_K_M"),
                Some(&"d".repeat(64)),
                false,
            )
            .expect("accepted");
        assert_eq!(warnings.len(), 1);
    }

    /// The sample pack with a small layer-0 head (16 buckets).
    fn pack_with_layer_zero() -> AdapterPack {
        use crate::heads::lexical::{LEXICAL_FEATURES, LexicalReport};
        let mut pack = sample_pack();
        let head = LexicalHead {
            idf: (0..16).map(|bucket| 1.0 + bucket as f32 / 16.0).collect(),
            weights: ndarray::Array2::from_shape_fn((2, 16), |(class, bucket)| {
                (class as f32 - 0.5) * (bucket as f32 - 7.5) / 4.0
            }),
            bias: Array1::from(vec![0.1, -0.1]),
            temperature: 1.25,
        };
        pack.manifest.layer_zero = Some(LexicalReport {
            features: LEXICAL_FEATURES.into(),
            buckets: 16,
            l2: 1e-4,
            temperature: 1.25,
            training_documents: 10,
            cross_fitted_accuracy: 0.7,
            dev_accuracy: Some(0.8),
            nonzero_weights: 32,
        });
        pack.layer_zero = Some(head);
        pack
    }

    #[test]
    fn layer_zero_heads_round_trip_and_corrupt_ones_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = pack_with_layer_zero();
        pack.save(dir.path()).expect("save");
        let loaded = AdapterPack::load_dir(dir.path()).expect("load");
        assert_eq!(loaded, pack);
        let head = loaded.layer_zero.as_ref().expect("a layer-0 head");
        let probabilities = head.probabilities(&[1, 2, 3]);
        assert_eq!(
            probabilities,
            pack.layer_zero
                .as_ref()
                .expect("head")
                .probabilities(&[1, 2, 3])
        );

        // Without the weights' hash, so that the checks of the weights' content are reached.
        let manifest = std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).expect("manifest");
        let manifest = without_heads_line(&manifest).into_owned();
        let weights = std::fs::read(dir.path().join(WEIGHTS_FILE)).expect("weights");
        // A NaN in the layer-0 bias (tensors are stored in name order, `layer_zero.bias`
        // first: the first 0.1 of the file is its class 0).
        let bias = 0.1f32.to_le_bytes();
        let at = weights
            .windows(4)
            .position(|window| window == bias)
            .expect("the layer-0 bias");
        let mut corrupt = weights.clone();
        corrupt[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let error = AdapterPack::from_parts(&manifest, &corrupt, "tiny").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid weights of pack `tiny` (heads.safetensors): tensor `layer_zero.bias` holds non-finite values"
        );
        // Its buckets must match the manifest's.
        let other = manifest.replace("buckets = 16", "buckets = 32");
        let error = AdapterPack::from_parts(&other, &weights, "tiny").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("tensor `layer_zero.idf` has shape [16], expected [32]"),
            "{error}"
        );
        // A format 2 pack cannot carry one.
        let old = manifest.replace("format_version = 3", "format_version = 2");
        let error = AdapterPack::from_parts(&old, &weights, "tiny").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("a layer-0 head in a pack of format 2"),
            "{error}"
        );
    }

    #[test]
    fn older_packs_load_without_layer_zero_and_their_settings_never_ask_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut pack = sample_pack();
        pack.manifest.format_version = 2;
        pack.save(dir.path()).expect("save");
        let manifest = std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).expect("manifest");
        assert!(!manifest.contains("layer_zero"), "{manifest}");
        let loaded = AdapterPack::load_dir(dir.path()).expect("load");
        assert!(loaded.layer_zero.is_none());
        assert_eq!(loaded.manifest.format_version, 2);
        // A stored setting without the field reads as one that does not ask layer 0.
        let config: PolicyConfig = toml::from_str(
            "kind = \"2d\"\nrule = \"margin\"\nthreshold = 0.5\nmin_layer = 0\npatience = 1\ndepth_cap = 2\ndecision_layer = 2\n",
        )
        .expect("a format 2 setting");
        assert_eq!(config.layer_zero_threshold, None);
    }

    #[test]
    fn corrupt_truncated_or_future_packs_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pack = sample_pack();
        pack.save(dir.path()).expect("save");
        // Without the weights' hash, so that the checks of the weights' content are reached.
        let manifest = std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).expect("manifest");
        let manifest = without_heads_line(&manifest).into_owned();
        let weights = std::fs::read(dir.path().join(WEIGHTS_FILE)).expect("weights");

        for cut in [0, 7, 100, weights.len() / 2, weights.len() - 1] {
            let error = AdapterPack::from_parts(&manifest, &weights[..cut], "tiny").unwrap_err();
            assert!(
                matches!(error, PackError::Weights { .. }),
                "cut {cut}: {error}"
            );
        }
        let mut flipped = weights.clone();
        let last = flipped.len() - 2;
        flipped[last] = 0xff;
        flipped[last + 1] = 0x7f; // a NaN in the last tensor
        assert!(AdapterPack::from_parts(&manifest, &flipped, "tiny").is_err());

        let future = manifest.replace("format_version = 3", "format_version = 9");
        let error = AdapterPack::from_parts(&future, &weights, "tiny").unwrap_err();
        assert_eq!(
            error.to_string(),
            "pack `tiny` has format version 9; this exitwise reads versions 1 to 3"
        );

        let wide = manifest.replace("width = 4", "width = 5");
        let error = AdapterPack::from_parts(&wide, &weights, "tiny").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("has shape [2, 4], expected [2, 5]"),
            "{error}"
        );

        let error =
            AdapterPack::from_parts("format_version = 2\nname = 3", &weights, "tiny").unwrap_err();
        assert!(matches!(error, PackError::Manifest { .. }), "{error}");
        let error = AdapterPack::load_dir(&dir.path().join("missing")).unwrap_err();
        assert!(error.to_string().starts_with("cannot read `"), "{error}");
    }
}
