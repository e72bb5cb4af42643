//! Runs the model over a labelled data file once, filling the feature cache, and turns the
//! cached features into per-layer training matrices of sentence prefixes.

use std::path::Path;

use ndarray::{Array2, Axis};

use super::cache::{CACHE_FORMAT, CacheError, CacheKey, FeatureCache, default_cache_root};
use super::{FeatureAccumulator, FeatureKind, extract_document_features};
use crate::dataset::Dataset;
use crate::engine::{EngineError, Model, Session, SessionOptions};
use crate::text::{DocumentError, prepare_document};

/// Why extraction stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExtractionError {
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// No session could be created for the extraction.
    #[error("cannot create a session: {0}")]
    Session(EngineError),
    /// The engine failed on a document.
    #[error("cannot read document `{id}`: {cause}")]
    Engine {
        /// The document.
        id: String,
        /// The engine's error.
        cause: EngineError,
    },
}

/// What [`fill_cache`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractionReport {
    /// Documents run through the model now.
    pub decoded: usize,
    /// Documents already in the cache.
    pub cached: usize,
    /// Documents that hold no text, with their ids (left out of training).
    pub empty: Vec<String>,
}

/// Makes sure every document of `dataset` has its features in `cache`, decoding those that are
/// missing. `progress(done, total)` is called after each document. Each document is flushed to
/// the cache as soon as it is done, so an interruption loses at most the one in progress.
pub fn fill_cache(
    session: &mut Session<'_>,
    dataset: &Dataset,
    cache: &mut FeatureCache,
    token_limit: usize,
    progress: &dyn Fn(usize, usize),
) -> Result<ExtractionReport, ExtractionError> {
    let model = session.model();
    let mut accumulator = FeatureAccumulator::new(model.layers(), model.width());
    let mut report = ExtractionReport::default();
    let total = dataset.documents.len();
    for (index, document) in dataset.documents.iter().enumerate() {
        if cache.contains(index) {
            report.cached += 1;
        } else {
            match prepare_document(model, &document.text, token_limit) {
                Ok(prepared) => {
                    let features = extract_document_features(session, &mut accumulator, &prepared)
                        .map_err(|cause| ExtractionError::Engine {
                            id: document.id.clone(),
                            cause,
                        })?;
                    cache.put(index, &features)?;
                    report.decoded += 1;
                }
                Err(DocumentError::Empty) => report.empty.push(document.id.clone()),
                Err(DocumentError::LimitTooSmall(_)) => report.empty.push(document.id.clone()),
                Err(DocumentError::Engine(cause)) => {
                    return Err(ExtractionError::Engine {
                        id: document.id.clone(),
                        cause,
                    });
                }
            }
        }
        progress(index + 1, total);
    }
    Ok(report)
}

/// Where and how the features of a data file are extracted: the model, the cache folder, the
/// token limit and the threads.
#[derive(Debug, Clone, Copy)]
pub struct FeatureSource<'a> {
    /// The model.
    pub model: &'a Model,
    /// Its file's sha256 (part of the cache key).
    pub model_sha256: &'a str,
    /// Tokens read per document.
    pub token_limit: usize,
    /// The cache folder; `None`: [`default_cache_root`].
    pub cache_root: Option<&'a Path>,
    /// Threads for llama.cpp (`None`: its default).
    pub threads: Option<usize>,
}

impl FeatureSource<'_> {
    /// Opens the cache of `data` and runs the model over the documents it lacks (calling
    /// `progress(done, total)` after each document). The session is created only when a
    /// document is missing, so a complete cache costs no model work.
    pub fn cached(
        &self,
        data: &Dataset,
        progress: &dyn Fn(usize, usize),
    ) -> Result<(FeatureCache, ExtractionReport), ExtractionError> {
        let root = self
            .cache_root
            .map_or_else(default_cache_root, Path::to_path_buf);
        let mut cache = FeatureCache::open(
            &root,
            CacheKey {
                format: CACHE_FORMAT,
                model_sha256: self.model_sha256.to_string(),
                data_sha256: data.sha256.clone(),
                token_limit: self.token_limit,
                layers: self.model.layers(),
                width: self.model.width(),
            },
        )?;
        if (0..data.documents.len()).all(|index| cache.contains(index)) {
            let report = ExtractionReport {
                cached: data.documents.len(),
                ..ExtractionReport::default()
            };
            return Ok((cache, report));
        }
        let mut session = Session::new(
            self.model,
            &SessionOptions {
                context_tokens: self.token_limit,
                threads: self.threads,
                poll: None,
                sessions_in_process: 1,
                tap: true,
            },
        )
        .map_err(ExtractionError::Session)?;
        let report = fill_cache(&mut session, data, &mut cache, self.token_limit, progress)?;
        Ok((cache, report))
    }
}

/// Features of every sentence prefix of every document, one matrix per layer, for one kind.
#[derive(Debug, Clone)]
pub struct PrefixSet {
    /// The feature kind.
    pub kind: FeatureKind,
    /// `layers` matrices of `prefixes × width`.
    pub layers: Vec<Array2<f32>>,
    /// Class index of each row.
    pub labels: Vec<usize>,
    /// Document (index into the dataset) of each row.
    pub documents: Vec<usize>,
    /// Sentences read (1-based prefix length) at each row.
    pub sentences_read: Vec<usize>,
    /// Sentences of the row's document (the prefix is complete when equal).
    pub sentences_total: Vec<usize>,
}

impl PrefixSet {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of distinct documents the rows come from.
    pub fn document_count(&self) -> usize {
        self.documents
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }

    /// Rows to evaluate "after `sentences` sentences": each document's prefix of that length, or
    /// its whole text when it is shorter. `None`: the whole documents.
    pub fn rows_at(&self, sentences: Option<usize>) -> Vec<usize> {
        (0..self.len())
            .filter(|&row| {
                let total = self.sentences_total[row];
                let read = self.sentences_read[row];
                match sentences {
                    None => read == total,
                    Some(wanted) => read == wanted.min(total),
                }
            })
            .collect()
    }
}

/// Reads the cached features of `dataset` into one [`PrefixSet`] for each of `kinds`.
/// `class_of` maps a label to its class index; documents without cached features are skipped.
pub fn load_prefix_sets(
    cache: &mut FeatureCache,
    dataset: &Dataset,
    class_of: &dyn Fn(&str) -> Option<usize>,
    kinds: &[FeatureKind],
    layers: usize,
    width: usize,
) -> Result<Vec<PrefixSet>, CacheError> {
    let mut rows_total = 0usize;
    let mut shapes = Vec::new();
    for (index, document) in dataset.documents.iter().enumerate() {
        if !cache.contains(index) {
            continue;
        }
        let Some(class) = class_of(&document.label) else {
            continue;
        };
        // Sizes first, from the cache's index, so the matrices are allocated once at their
        // final size.
        if let Some(prefixes) = cache.prefixes(index) {
            shapes.push((index, class, prefixes));
            rows_total += prefixes;
        }
    }
    let mut sets: Vec<PrefixSet> = kinds
        .iter()
        .map(|&kind| PrefixSet {
            kind,
            layers: (0..layers)
                .map(|_| Array2::zeros((rows_total, width)))
                .collect(),
            labels: Vec::with_capacity(rows_total),
            documents: Vec::with_capacity(rows_total),
            sentences_read: Vec::with_capacity(rows_total),
            sentences_total: Vec::with_capacity(rows_total),
        })
        .collect();
    let mut row = 0usize;
    for (index, class, prefixes) in shapes {
        let Some(features) = cache.get(index)? else {
            continue;
        };
        for set in &mut sets {
            let array = features.of(set.kind);
            for prefix in 0..prefixes {
                for (layer, matrix) in set.layers.iter_mut().enumerate() {
                    matrix
                        .row_mut(row + prefix)
                        .assign(&array.index_axis(Axis(0), prefix).row(layer));
                }
                set.labels.push(class);
                set.documents.push(index);
                set.sentences_read.push(prefix + 1);
                set.sentences_total.push(prefixes);
            }
        }
        row += prefixes;
    }
    Ok(sets)
}
