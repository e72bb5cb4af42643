//! Shared by `train`, `calibrate`, `accuracy` and `eval`: the feature cache of a data file,
//! filled with whatever documents it lacks, behind a progress bar.

use std::time::Instant;

use anyhow::Context as _;

use exitwise::dataset::Dataset;
use exitwise::features::cache::FeatureCache;
use exitwise::features::extraction::{ExtractionReport, FeatureSource};

use super::output;

/// [`FeatureSource::cached`] with a progress bar named `what`; also the seconds it took.
pub fn cached_features(
    source: &FeatureSource<'_>,
    data: &Dataset,
    what: &str,
) -> anyhow::Result<(FeatureCache, ExtractionReport, f64)> {
    let started = Instant::now();
    let bar = output::documents_bar(data.documents.len() as u64, what);
    let (cache, report) = source
        .cached(data, &|done, _| bar.set_position(done as u64))
        .with_context(|| format!("cannot extract features of `{}`", data.path.display()))?;
    bar.finish_and_clear();
    Ok((cache, report, started.elapsed().as_secs_f64()))
}
