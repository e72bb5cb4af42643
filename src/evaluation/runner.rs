//! Measuring for `exitwise eval`: documents prepared once per model, a warmed-up classifier per
//! model, and every (setting, document) pair classified in one process, interleaved per
//! document with the order rotated, so that machine noise hits every setting alike.

use std::time::Instant;

use crate::classifier::Classifier;
use crate::dataset::Dataset;
use crate::engine::{EngineError, Model, Session, SessionOptions};
use crate::exit::{Budget, PolicyConfig, PolicyKind};
use crate::pack::{AdapterPack, PackError};
use crate::text::{DocumentError, PreparedDocument, prepare_document};

use super::statistics::DocumentResult;

/// Why a measurement stopped.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// A document's label is not one of the pack's.
    #[error("document `{id}` has the label `{label}`, which the pack does not know")]
    UnknownLabel {
        /// The document.
        id: String,
        /// Its label.
        label: String,
    },
    /// No session could be created.
    #[error("cannot create a session: {0}")]
    Session(EngineError),
    /// Nothing to run.
    #[error("no exit setting to run")]
    NoSetting,
    /// The warm-up failed.
    #[error("cannot classify the warm-up document: {0}")]
    WarmUp(EngineError),
    /// A classification failed.
    #[error("cannot classify document `{id}`: {cause}")]
    Classify {
        /// The document.
        id: String,
        /// The engine's error.
        cause: EngineError,
    },
    /// Two runs answered a document differently.
    #[error(
        "document `{id}` was classified differently in run {run}: the engine is not deterministic here"
    )]
    Nondeterministic {
        /// The document.
        id: String,
        /// The run (from 1).
        run: usize,
    },
    /// A later run met a document the first did not.
    #[error("a later run met a document the first run did not")]
    MissingFirstRun,
}

/// One setting that is timed: a policy at a budget (a trace keeps them as they are, see
/// [`super::trace::TraceHeader`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The policy.
    pub kind: PolicyKind,
    /// The budget it was calibrated for (zero for `full`).
    pub budget: Budget,
    /// The setting.
    pub config: PolicyConfig,
}

impl Entry {
    /// `full`, or the policy at its budget: `2d@1`.
    pub fn name(&self) -> String {
        if self.kind == PolicyKind::Full {
            self.kind.name().to_string()
        } else {
            format!("{}@{}", self.kind.name(), self.budget)
        }
    }

    /// Whether this is the setting reported as its policy at `budget` (the others only feed
    /// the plot).
    pub fn is_main(&self, budget: Budget) -> bool {
        self.kind == PolicyKind::Full || self.budget == budget
    }
}

/// The settings to time: each of `kinds` at `budget`, and with `all_budgets` every calibrated
/// operating point as well (then `full` is timed too, since the plot's speed-ups are against
/// it).
pub fn timed_entries(
    pack: &AdapterPack,
    kinds: &[PolicyKind],
    budget: Budget,
    all_budgets: bool,
) -> Result<Vec<Entry>, PackError> {
    let mut entries = Vec::new();
    let mut kinds = kinds.to_vec();
    if all_budgets && !kinds.contains(&PolicyKind::Full) {
        kinds.insert(0, PolicyKind::Full);
    }
    for kind in kinds {
        entries.push(Entry {
            kind,
            budget: if kind == PolicyKind::Full {
                Budget::ZERO
            } else {
                budget
            },
            config: pack.operating_point(kind, budget)?,
        });
        if all_budgets && kind != PolicyKind::Full {
            let calibration = pack.manifest.calibration.as_ref();
            for point in calibration
                .into_iter()
                .flat_map(|calibration| &calibration.operating_points)
                .filter(|point| point.config.kind == kind && point.budget != budget)
            {
                entries.push(Entry {
                    kind,
                    budget: point.budget,
                    config: point.config,
                });
            }
        }
    }
    Ok(entries)
}

/// A labelled document, prepared with each model's tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalDocument {
    /// Its position in the data file.
    pub index: usize,
    /// Its id.
    pub id: String,
    /// Its class index in the pack.
    pub class: usize,
    /// One preparation per model, in the models' order.
    pub prepared: Vec<PreparedDocument>,
}

/// The documents of a data file ready to classify, and those left out.
#[derive(Debug)]
pub struct PreparedData {
    /// Documents with text, in file order.
    pub documents: Vec<EvalDocument>,
    /// The id of each document left out, and why.
    pub left_out: Vec<(String, DocumentError)>,
}

/// Prepares every document of `data` for each of `models` (their tokenizers may differ);
/// documents without text are left out, with the reason.
pub fn prepare_documents(
    models: &[&Model],
    data: &Dataset,
    labels: &[String],
    token_limit: usize,
) -> Result<PreparedData, EvaluationError> {
    let mut documents = Vec::new();
    let mut left_out = Vec::new();
    for (index, document) in data.documents.iter().enumerate() {
        let class = labels
            .iter()
            .position(|label| *label == document.label)
            .ok_or_else(|| EvaluationError::UnknownLabel {
                id: document.id.clone(),
                label: document.label.clone(),
            })?;
        let prepared: Result<Vec<PreparedDocument>, DocumentError> = models
            .iter()
            .map(|model| prepare_document(model, &document.text, token_limit))
            .collect();
        match prepared {
            Ok(prepared) => documents.push(EvalDocument {
                index,
                id: document.id.clone(),
                class,
                prepared,
            }),
            Err(error) => left_out.push((document.id.clone(), error)),
        }
    }
    Ok(PreparedData {
        documents,
        left_out,
    })
}

/// The one session a measurement runs on: tapped, for documents of up to `token_limit` tokens,
/// alone in the process.
pub fn measuring_session(
    model: &Model,
    token_limit: usize,
    threads: Option<usize>,
) -> Result<Session<'_>, EvaluationError> {
    Session::new(
        model,
        &SessionOptions {
            context_tokens: token_limit,
            threads,
            poll: None,
            sessions_in_process: 1,
            tap: true,
        },
    )
    .map_err(EvaluationError::Session)
}

/// A session on `model` for documents of up to `token_limit` tokens and a classifier over it,
/// warmed up with every setting of `configs` on `document` (the first decodes of a session
/// allocate buffers and fault pages in, which must not be timed); also the session's thread
/// count.
pub fn warmed_classifier<'model, 'pack>(
    model: &'model Model,
    pack: &'pack AdapterPack,
    token_limit: usize,
    threads: Option<usize>,
    configs: &[PolicyConfig],
    document: &PreparedDocument,
) -> Result<(Classifier<'model, 'pack>, usize), EvaluationError> {
    let session = measuring_session(model, token_limit, threads)?;
    let threads = session.threads();
    let first = configs.first().ok_or(EvaluationError::NoSetting)?;
    let mut classifier = Classifier::new(session, pack, *first);
    for &config in configs {
        classifier.set_config(config);
        classifier
            .classify(document)
            .map_err(EvaluationError::WarmUp)?;
    }
    Ok((classifier, threads))
}

/// Calls `measure(entry, document position, run, that entry's results)` for every run, document
/// and entry, interleaved per document with the entries' order rotated by one for each next
/// document and run, so that machine noise hits every entry alike; `progress()` after each
/// document. Answers the results of each entry.
pub fn interleaved_runs<Measurement, Failure>(
    runs: usize,
    documents: usize,
    entries: usize,
    progress: &dyn Fn(),
    mut measure: impl FnMut(usize, usize, usize, &mut Vec<Measurement>) -> Result<(), Failure>,
) -> Result<Vec<Vec<Measurement>>, Failure> {
    let mut results: Vec<Vec<Measurement>> = (0..entries)
        .map(|_| Vec::with_capacity(documents))
        .collect();
    for run in 0..runs {
        for position in 0..documents {
            for offset in 0..entries {
                let which = (position + run + offset) % entries;
                measure(which, position, run, &mut results[which])?;
            }
            progress();
        }
    }
    Ok(results)
}

/// Classifies the document at `position` once and records the result and its time in
/// `results` (one entry per document, in order: the first run adds it, later runs add their
/// time and check that the answer and the cost did not change).
pub fn measure_one(
    classifier: &mut Classifier<'_, '_>,
    document: &PreparedDocument,
    (position, class, id): (usize, usize, &str),
    run: usize,
    results: &mut Vec<DocumentResult>,
) -> Result<(), EvaluationError> {
    let started = Instant::now();
    let classification =
        classifier
            .classify(document)
            .map_err(|cause| EvaluationError::Classify {
                id: id.to_string(),
                cause,
            })?;
    let milliseconds = started.elapsed().as_secs_f64() * 1000.0;
    if run == 0 {
        results.push(DocumentResult {
            class,
            predicted: classification.class,
            exit_layer: classification.exit.layer_number(),
            sentences_read: classification.exit.sentences_read(),
            token_layers: classification.token_layers,
            full_token_layers: classification.full_token_layers,
            milliseconds: vec![milliseconds],
        });
        return Ok(());
    }
    let result = results
        .get_mut(position)
        .ok_or(EvaluationError::MissingFirstRun)?;
    if result.predicted != classification.class
        || result.token_layers != classification.token_layers
    {
        return Err(EvaluationError::Nondeterministic {
            id: id.to_string(),
            run: run + 1,
        });
    }
    result.milliseconds.push(milliseconds);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_interleaved_and_rotated() {
        let order = std::cell::RefCell::new(Vec::new());
        let results = interleaved_runs(
            2,
            2,
            3,
            &|| order.borrow_mut().push(None),
            |which, position, run, _: &mut Vec<()>| {
                order.borrow_mut().push(Some((run, position, which)));
                Ok::<(), EvaluationError>(())
            },
        )
        .expect("runs");
        assert_eq!(results.len(), 3);
        let visits: Vec<Option<(usize, usize, usize)>> = order.into_inner();
        assert_eq!(
            visits,
            vec![
                Some((0, 0, 0)),
                Some((0, 0, 1)),
                Some((0, 0, 2)),
                None,
                Some((0, 1, 1)),
                Some((0, 1, 2)),
                Some((0, 1, 0)),
                None,
                Some((1, 0, 1)),
                Some((1, 0, 2)),
                Some((1, 0, 0)),
                None,
                Some((1, 1, 2)),
                Some((1, 1, 0)),
                Some((1, 1, 1)),
                None,
            ]
        );
    }
}
