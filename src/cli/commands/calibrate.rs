//! `exitwise calibrate`: (re)chooses a pack's exit settings on dev data from cached features.

use std::path::PathBuf;

use anyhow::Context as _;

use exitwise::dataset::Dataset;
use exitwise::features::extraction::FeatureSource;
use exitwise::pack::AdapterPack;
use exitwise::pack::calibrate::calibrate_pack;

use crate::cli::feature_source::cached_features;
use crate::cli::options::LabelledFields;
use crate::cli::resolve::{load_model, model_sha256};
use crate::cli::tables::render_operating_points;
use crate::cli::{EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise calibrate`.
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// The pack folder to calibrate (rewritten in place)
    #[arg(value_name = "PACK")]
    pack: PathBuf,

    /// Development data: JSON Lines, or CSV/TSV with a header row
    #[arg(long, value_name = "FILE")]
    dev: PathBuf,

    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    #[command(flatten)]
    fields: LabelledFields,

    /// Use only the first N development documents
    #[arg(long, value_name = "N")]
    max_dev_docs: Option<usize>,

    /// Folder of the feature cache [default: $EXITWISE_CACHE_DIR, else ~/.cache/exitwise]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

/// Runs `exitwise calibrate`.
pub fn run(args: &CalibrateArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let mut pack = AdapterPack::load_dir(&args.pack)
        .with_context(|| format!("cannot load the adapter pack `{}`", args.pack.display()))?;
    let fields = args.fields.names(&pack.manifest);
    let dev = Dataset::read(&args.dev, &fields, args.max_dev_docs)?;
    dev.check_labels_within(&pack.manifest.labels)?;
    let model = load_model(args.model.as_ref(), global)?;
    let model_sha256 = model_sha256(&model)?;
    for warning in pack.check_model(model.facts(), Some(&model_sha256), false)? {
        eprintln!("warning: {warning}");
    }
    let source = FeatureSource {
        model: &model,
        model_sha256: &model_sha256,
        token_limit: pack.manifest.token_limit,
        cache_root: args.cache_dir.as_deref(),
        threads: global.threads(),
    };
    let (mut cache, _, _) = cached_features(&source, &dev, "features")?;
    calibrate_pack(&mut pack, &model, &mut cache, &dev)?;
    pack.save(&args.pack)
        .with_context(|| format!("cannot save the pack to `{}`", args.pack.display()))?;
    output::print(&render_operating_points(&pack.manifest))?;
    eprintln!("calibration saved to `{}`", args.pack.display());
    Ok(EXIT_OK)
}
