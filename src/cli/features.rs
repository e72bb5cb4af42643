//! Shared by `train`, `calibrate` and `accuracy`: the feature cache of a data file, filled
//! with whatever documents it lacks.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;

use exitwise::dataset::Dataset;
use exitwise::engine::{Model, Session, SessionOptions};
use exitwise::extraction::{ExtractionReport, fill_cache};
use exitwise::feature_cache::{CACHE_FORMAT, CacheKey, FeatureCache, default_cache_root};

use super::output;

/// Where and how features are extracted.
pub struct FeatureSource<'a> {
    /// The model.
    pub model: &'a Model,
    /// Its file's sha256 (part of the cache key).
    pub model_sha256: &'a str,
    /// Tokens read per document.
    pub token_limit: usize,
    /// `--cache-dir`, if given.
    pub cache_dir: Option<&'a PathBuf>,
    /// `--threads`, if given.
    pub threads: Option<usize>,
}

impl FeatureSource<'_> {
    /// Opens the cache of `data` and runs the model over the documents it lacks (with a
    /// progress bar named `what`); the model is loaded into a session only when needed.
    pub fn cached(
        &self,
        data: &Dataset,
        what: &str,
    ) -> anyhow::Result<(FeatureCache, ExtractionReport, f64)> {
        let started = Instant::now();
        let root = self.cache_dir.cloned().unwrap_or_else(default_cache_root);
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
            return Ok((cache, report, started.elapsed().as_secs_f64()));
        }
        let mut session = Session::new(
            self.model,
            &SessionOptions {
                context_tokens: self.token_limit,
                threads: self.threads,
                tap: true,
            },
        )
        .context("cannot create a session")?;
        let bar = output::documents_bar(data.documents.len() as u64, what);
        let report = fill_cache(
            &mut session,
            data,
            &mut cache,
            self.token_limit,
            &|done, _| bar.set_position(done as u64),
        )
        .with_context(|| format!("cannot extract features of `{}`", data.path.display()))?;
        bar.finish_and_clear();
        Ok((cache, report, started.elapsed().as_secs_f64()))
    }
}
