//! Traces: what `eval` fed to the model, per document and setting, kept in a file that
//! `bench-engine --replay` feeds again, timing each setting.
//!
//! The cost of a computation does not depend on the weights' values: the documents' tokens and,
//! per setting, the passes fed and the layer each stopped after are the whole workload. A trace
//! recorded on the CPU with the real model can therefore be replayed where the real model
//! cannot go (a lent GPU machine that takes only a few MB), on a model of the same shapes and
//! vocabulary with random weights: the replay asks the same heads and exit rule, for their
//! cost, but ends each walk where the recording did ([`Classifier::replay`]).
//!
//! The file is JSON Lines: a header ([`TraceHeader`]) and one line per document
//! ([`TracedDocument`]) with one [`Feeding`] per setting, in the header's order.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::classifier::{Classifier, Feeding, ReplayError};
use crate::dataset::Dataset;
use crate::engine::{Model, ModelFacts};
use crate::exit::PolicyKind;
use crate::locations::file_name;
use crate::text::{PreparedDocument, prepare_document};

use super::median;
use super::runner::{Entry, EvalDocument, interleaved_runs};

/// The trace format this build writes and reads.
pub const TRACE_FORMAT: u32 = 1;

/// The first line of a trace: what it was recorded with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceHeader {
    /// The format version ([`TRACE_FORMAT`]).
    pub exitwise_trace: u32,
    /// The model the feeding was recorded on.
    pub model: TracedModel,
    /// The labelled data.
    pub data: TracedData,
    /// The adapter pack's name.
    pub pack: String,
    /// Most tokens read per document.
    pub token_limit: usize,
    /// The settings, in the order of each document's feedings.
    pub settings: Vec<Entry>,
}

/// The recording model: a replay needs one of the same shapes and vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracedModel {
    /// Its file's name.
    pub file: String,
    /// SHA-256 of its file.
    pub sha256: String,
    /// `general.architecture`.
    pub architecture: String,
    /// Layers.
    pub layers: usize,
    /// Width of the hidden states.
    pub width: usize,
    /// Tokens in its vocabulary.
    pub vocabulary_size: usize,
}

/// The recording data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracedData {
    /// Its file's name.
    pub file: String,
    /// SHA-256 of its file (the replay checks each document instead, so a copy that holds
    /// only the traced documents does as well).
    pub sha256: String,
    /// The field holding the text.
    pub text_field: String,
}

/// One document's line: how it was tokenized, and each setting's feeding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracedDocument {
    /// Its position in the data file (0-based).
    pub index: usize,
    /// Its id.
    pub id: String,
    /// Its tokens within the token limit.
    pub tokens: usize,
    /// SHA-256 of those tokens (little-endian 32-bit ids): a replay tokenizes the text again
    /// and must get the same.
    pub tokens_sha256: String,
    /// One per setting, in the header's order.
    pub feedings: Vec<Feeding>,
}

/// A whole trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// What it was recorded with.
    pub header: TraceHeader,
    /// The documents, in the order they were fed.
    pub documents: Vec<TracedDocument>,
}

/// Why a trace cannot be written, read or replayed. Messages fit on one line.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Reading or writing the file failed.
    #[error("cannot {action} the trace `{}`: {cause}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        cause: std::io::Error,
    },
    /// A line is not what a trace holds.
    #[error("`{}` line {line} is not a trace line of this exitwise: {reason}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The trace was recorded with a model of other shapes or vocabulary.
    #[error(
        "the trace was recorded with `{}` ({}), and this model is {}: replay it on a model of the same shapes and vocabulary",
        .traced.file, describe_traced(.traced), describe_facts(.facts)
    )]
    OtherModel {
        /// The recording model.
        traced: Box<TracedModel>,
        /// The model given.
        facts: Box<ModelFacts>,
    },
    /// The trace was recorded on other data, or with another tokenizer or token limit.
    #[error("the trace was recorded on other data: {reason}")]
    OtherData {
        /// Which document differs, and how.
        reason: String,
    },
    /// A replay fed something else than the recording.
    #[error("document `{id}` under {setting}: {cause}")]
    Diverged {
        /// The document.
        id: String,
        /// The setting.
        setting: String,
        /// What differed.
        #[source]
        cause: ReplayError,
    },
}

fn describe_traced(model: &TracedModel) -> String {
    format!(
        "{}, {} layers of width {}, {} tokens",
        model.architecture, model.layers, model.width, model.vocabulary_size
    )
}

fn describe_facts(facts: &ModelFacts) -> String {
    format!(
        "{}, {} layers of width {}, {} tokens",
        facts.architecture, facts.layers, facts.width, facts.vocabulary_size
    )
}

/// SHA-256 of token ids, as a trace keeps them.
pub fn tokens_sha256(tokens: &[u32]) -> String {
    let bytes: Vec<u8> = tokens
        .iter()
        .flat_map(|token| token.to_le_bytes())
        .collect();
    crate::digest::sha256_hex(&bytes)
}

impl TracedModel {
    /// The traced facts of a model file.
    pub fn new(path: &Path, sha256: &str, facts: &ModelFacts) -> Self {
        TracedModel {
            file: file_name(path),
            sha256: sha256.to_string(),
            architecture: facts.architecture.clone(),
            layers: facts.layers,
            width: facts.width,
            vocabulary_size: facts.vocabulary_size,
        }
    }
}

impl TracedData {
    /// The traced facts of a data file.
    pub fn new(path: &Path, sha256: &str, text_field: &str) -> Self {
        TracedData {
            file: file_name(path),
            sha256: sha256.to_string(),
            text_field: text_field.to_string(),
        }
    }
}

impl TracedDocument {
    /// A document's line, from its preparation and its feedings.
    pub fn new(
        index: usize,
        id: &str,
        prepared: &PreparedDocument,
        feedings: Vec<Feeding>,
    ) -> Self {
        let tokens = prepared.token_ids();
        TracedDocument {
            index,
            id: id.to_string(),
            tokens: tokens.len(),
            tokens_sha256: tokens_sha256(&tokens),
            feedings,
        }
    }

    /// Refuses a document that is not this one as the trace has it: another id, or other
    /// tokens (another text, vocabulary or token limit).
    pub fn check(&self, id: &str, prepared: &PreparedDocument) -> Result<(), TraceError> {
        if id != self.id {
            return Err(TraceError::OtherData {
                reason: format!(
                    "document {} is `{id}` here and `{}` in the trace",
                    self.index + 1,
                    self.id
                ),
            });
        }
        let tokens = prepared.token_ids();
        if tokens.len() != self.tokens || tokens_sha256(&tokens) != self.tokens_sha256 {
            return Err(TraceError::OtherData {
                reason: format!(
                    "document `{id}` has other tokens than in the trace ({} here, {} there): another text, vocabulary or token limit",
                    tokens.len(),
                    self.tokens
                ),
            });
        }
        Ok(())
    }
}

impl Trace {
    /// The trace of an `eval` run: `feedings[position]` holds, for the document at that
    /// position, each setting's feeding with the setting's index, in the order they were fed.
    pub fn of_run(
        header: TraceHeader,
        documents: &[EvalDocument],
        feedings: Vec<Vec<(usize, Feeding)>>,
    ) -> Trace {
        let documents = documents
            .iter()
            .zip(feedings)
            .map(|(document, mut fed)| {
                // Fed in rotated order; the trace keeps the settings' order.
                fed.sort_by_key(|(which, _)| *which);
                TracedDocument::new(
                    document.index,
                    &document.id,
                    &document.prepared[0],
                    fed.into_iter().map(|(_, feeding)| feeding).collect(),
                )
            })
            .collect();
        Trace { header, documents }
    }

    /// The trace as JSON Lines.
    pub fn to_json_lines(&self) -> String {
        let mut text = serde_json::to_string(&self.header).expect("a trace header serializes");
        text.push('\n');
        for document in &self.documents {
            text.push_str(&serde_json::to_string(document).expect("a trace line serializes"));
            text.push('\n');
        }
        text
    }

    /// Writes the trace to `path`, whole or not at all.
    pub fn write(&self, path: &Path) -> Result<(), TraceError> {
        crate::durable::write(path, self.to_json_lines().as_bytes()).map_err(|cause| {
            TraceError::Io {
                action: "write",
                path: path.to_path_buf(),
                cause,
            }
        })
    }

    /// Reads the trace at `path`.
    pub fn read(path: &Path) -> Result<Trace, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|cause| TraceError::Io {
            action: "read",
            path: path.to_path_buf(),
            cause,
        })?;
        Trace::parse(path, &text)
    }

    /// Parses a trace's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Trace, TraceError> {
        let parse_error = |line: usize, reason: String| TraceError::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty());
        let (_, first) = lines
            .next()
            .ok_or_else(|| parse_error(1, "the file is empty".to_string()))?;
        // The version first, so that another format is named as such rather than as a field
        // this build does not know.
        let version = serde_json::from_str::<serde_json::Value>(first)
            .ok()
            .and_then(|value| value.get("exitwise_trace")?.as_u64());
        match version {
            Some(version) if version == u64::from(TRACE_FORMAT) => {}
            Some(version) => {
                return Err(parse_error(
                    1,
                    format!("trace format {version}, and this build reads format {TRACE_FORMAT}"),
                ));
            }
            None => return Err(parse_error(1, "no `exitwise_trace` header".to_string())),
        }
        let header: TraceHeader =
            serde_json::from_str(first).map_err(|error| parse_error(1, error.to_string()))?;
        let mut documents = Vec::new();
        for (number, line) in lines {
            let document: TracedDocument = serde_json::from_str(line)
                .map_err(|error| parse_error(number + 1, error.to_string()))?;
            if document.feedings.len() != header.settings.len() {
                return Err(parse_error(
                    number + 1,
                    format!(
                        "{} feedings for {} settings",
                        document.feedings.len(),
                        header.settings.len()
                    ),
                ));
            }
            documents.push(document);
        }
        Ok(Trace { header, documents })
    }

    /// Refuses a model whose shapes or vocabulary size differ from the recording model's (its
    /// weights may differ: a replay measures cost, not answers).
    pub fn check_model(&self, facts: &ModelFacts) -> Result<(), TraceError> {
        let traced = &self.header.model;
        if traced.architecture != facts.architecture
            || traced.layers != facts.layers
            || traced.width != facts.width
            || traced.vocabulary_size != facts.vocabulary_size
        {
            return Err(TraceError::OtherModel {
                traced: Box::new(traced.clone()),
                facts: Box::new(facts.clone()),
            });
        }
        Ok(())
    }
}

/// The traced documents of `data`, prepared with `model` as the trace was and checked against
/// it: the same document at each traced position, tokenized into the same tokens.
pub fn prepare_traced_documents(
    model: &Model,
    trace: &Trace,
    data: &Dataset,
) -> Result<Vec<PreparedDocument>, TraceError> {
    trace
        .documents
        .iter()
        .map(|traced| {
            let document =
                data.documents
                    .get(traced.index)
                    .ok_or_else(|| TraceError::OtherData {
                        reason: format!(
                            "`{}` has {} documents, and the trace has document {} (`{}`)",
                            data.path.display(),
                            data.documents.len(),
                            traced.index + 1,
                            traced.id
                        ),
                    })?;
            let prepared = prepare_document(model, &document.text, trace.header.token_limit)
                .map_err(|error| TraceError::OtherData {
                    reason: format!("document `{}`: {error}", document.id),
                })?;
            traced.check(&document.id, &prepared)?;
            Ok(prepared)
        })
        .collect()
}

/// One setting's replay, summed over the documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayedSetting {
    /// `full`, `2d@1`, ….
    pub name: String,
    /// The policy.
    pub kind: PolicyKind,
    /// Token×layer operations fed (as recorded).
    pub token_layers: u64,
    /// Seconds for all documents: the sum of each document's median over the runs.
    pub seconds: f64,
    /// Documents per second.
    pub documents_per_second: f64,
    /// `full`'s seconds over this setting's, when `full` was traced.
    pub speed_up: Option<f64>,
    /// `full`'s token×layer operations over this setting's, when `full` was traced.
    pub operations_speed_up: Option<f64>,
}

/// What a replay measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Documents replayed.
    pub documents: usize,
    /// Runs over them.
    pub runs: usize,
    /// Each setting, in the trace's order.
    pub settings: Vec<ReplayedSetting>,
}

/// Feeds every document of `trace` under every setting `runs` times, interleaved per document
/// as `eval` times them (the order rotated by one per document and run), after one untimed
/// warm-up of each setting on the first document; `documents` are the traced documents,
/// prepared again and checked ([`TracedDocument::check`]). `progress()` after each document.
pub fn replay_trace(
    classifier: &mut Classifier<'_, '_>,
    trace: &Trace,
    documents: &[PreparedDocument],
    runs: usize,
    progress: &dyn Fn(),
) -> Result<ReplayReport, TraceError> {
    let settings = &trace.header.settings;
    let replay_one = |classifier: &mut Classifier<'_, '_>, which: usize, position: usize| {
        let traced = &trace.documents[position];
        classifier.set_config(settings[which].config);
        classifier
            .replay(&documents[position], &traced.feedings[which])
            .map_err(|cause| TraceError::Diverged {
                id: traced.id.clone(),
                setting: settings[which].name(),
                cause,
            })
    };
    if !documents.is_empty() {
        for which in 0..settings.len() {
            replay_one(classifier, which, 0)?;
        }
    }
    let milliseconds = interleaved_runs(
        runs,
        documents.len(),
        settings.len(),
        progress,
        |which, position, run, times: &mut Vec<Vec<f64>>| {
            let started = Instant::now();
            replay_one(classifier, which, position)?;
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            if run == 0 {
                times.push(vec![elapsed]);
            } else {
                times[position].push(elapsed);
            }
            Ok(())
        },
    )?;
    let mut replayed: Vec<ReplayedSetting> = settings
        .iter()
        .enumerate()
        .map(|(which, setting)| {
            let seconds: f64 = milliseconds[which]
                .iter()
                .map(|times| median(times) / 1000.0)
                .sum();
            ReplayedSetting {
                name: setting.name(),
                kind: setting.kind,
                token_layers: trace
                    .documents
                    .iter()
                    .map(|document| document.feedings[which].token_layers)
                    .sum(),
                seconds,
                documents_per_second: documents.len() as f64 / seconds.max(f64::MIN_POSITIVE),
                speed_up: None,
                operations_speed_up: None,
            }
        })
        .collect();
    if let Some(full) = replayed
        .iter()
        .find(|setting| setting.kind == PolicyKind::Full)
        .cloned()
    {
        for setting in &mut replayed {
            setting.speed_up = Some(full.seconds / setting.seconds.max(f64::MIN_POSITIVE));
            setting.operations_speed_up =
                Some(full.token_layers as f64 / setting.token_layers.max(1) as f64);
        }
    }
    Ok(ReplayReport {
        documents: documents.len(),
        runs,
        settings: replayed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::FedPass;
    use crate::exit::{Budget, Cell, PolicyConfig};

    fn facts(layers: usize) -> ModelFacts {
        ModelFacts {
            name: None,
            architecture: "gemma3".to_string(),
            layers,
            width: 640,
            parameters: 0,
            quantization: None,
            tensor_types: Vec::new(),
            file_size: 0,
            vocabulary_size: 262_144,
            trained_context: None,
        }
    }

    fn trace() -> Trace {
        let config = PolicyConfig::full(18, 17);
        Trace {
            header: TraceHeader {
                exitwise_trace: TRACE_FORMAT,
                model: TracedModel::new(Path::new("/m/gemma3-270m.gguf"), "ab", &facts(18)),
                data: TracedData::new(Path::new("/d/test.jsonl"), "cd", "text"),
                pack: "gemma3-270m-imdb".to_string(),
                token_limit: 512,
                settings: vec![Entry {
                    kind: PolicyKind::Full,
                    budget: Budget::ZERO,
                    config,
                }],
            },
            documents: vec![TracedDocument {
                index: 0,
                id: "a".to_string(),
                tokens: 3,
                tokens_sha256: tokens_sha256(&[1, 2, 3]),
                feedings: vec![Feeding {
                    layer_zero_answered: false,
                    passes: vec![FedPass {
                        sentences: [0, 2],
                        tokens: [0, 3],
                        layers: 18,
                    }],
                    exit: Some(Cell {
                        sentence: 1,
                        layer: 17,
                    }),
                    token_layers: 54,
                }],
            }],
        }
    }

    #[test]
    fn a_trace_reads_back_as_written() {
        let trace = trace();
        let text = trace.to_json_lines();
        assert_eq!(text.lines().count(), 2);
        let read = Trace::parse(Path::new("t.jsonl"), &text).expect("parses");
        assert_eq!(read, trace);
    }

    #[test]
    fn another_format_or_shape_is_refused_with_the_line() {
        let path = Path::new("t.jsonl");
        let text = trace().to_json_lines().replace(
            &format!("\"exitwise_trace\":{TRACE_FORMAT}"),
            "\"exitwise_trace\":99",
        );
        let error = Trace::parse(path, &text).expect_err("format 99");
        assert_eq!(
            error.to_string(),
            format!(
                "`t.jsonl` line 1 is not a trace line of this exitwise: trace format 99, and this build reads format {TRACE_FORMAT}"
            )
        );
        let error = Trace::parse(path, "{\"documents\": 3}\n").expect_err("no header");
        assert!(error.to_string().ends_with("no `exitwise_trace` header"));
        let mut trace = trace();
        trace.documents[0].feedings.push(Feeding::default());
        let error = Trace::parse(path, &trace.to_json_lines()).expect_err("two feedings");
        assert!(
            error.to_string().ends_with(
                "line 2 is not a trace line of this exitwise: 2 feedings for 1 settings"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_model_of_other_shapes_is_refused_in_one_line() {
        let trace = trace();
        trace.check_model(&facts(18)).expect("same shapes");
        let error = trace.check_model(&facts(30)).expect_err("30 layers");
        let message = error.to_string();
        assert_eq!(
            message,
            "the trace was recorded with `gemma3-270m.gguf` (gemma3, 18 layers of width 640, 262144 tokens), and this model is gemma3, 30 layers of width 640, 262144 tokens: replay it on a model of the same shapes and vocabulary"
        );
        assert!(!message.contains('\n'));
    }

    #[test]
    fn token_hashes_depend_on_every_id_and_its_order() {
        assert_ne!(tokens_sha256(&[1, 2, 3]), tokens_sha256(&[1, 3, 2]));
        assert_ne!(tokens_sha256(&[1, 2]), tokens_sha256(&[1, 2, 0]));
        assert_eq!(tokens_sha256(&[7]), tokens_sha256(&[7]));
    }
}
