//! `exitwise accuracy`: every layer head's accuracy on a labelled file, whole documents and
//! sentence prefixes, from cached features.

use std::path::PathBuf;

use anyhow::Context as _;

use exitwise::dataset::{Dataset, FieldNames};
use exitwise::features::extraction::{FeatureSource, load_prefix_sets};
use exitwise::heads::LayerReport;
use exitwise::heads::training::evaluate_layer;

use crate::cli::feature_source::cached_features;
use crate::cli::options::LabelledFields;
use crate::cli::resolve::{load_model_for_pack, load_pack};
use crate::cli::tables::render_layer_table;
use crate::cli::{EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise accuracy`.
#[derive(Debug, clap::Args)]
pub struct AccuracyArgs {
    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Adapter pack: a folder, or the name of a pack in `adapters/` [default: the compiled-in
    /// pack]
    #[arg(long, value_name = "NAME|DIR")]
    adapters: Option<PathBuf>,

    /// Labelled data: JSON Lines, or CSV/TSV with a header row
    #[arg(long, value_name = "FILE")]
    data: PathBuf,

    #[command(flatten)]
    fields: LabelledFields,

    /// Field (column) holding the document id
    #[arg(long, default_value = "id", value_name = "NAME")]
    id_field: String,

    /// Use only the first N documents
    #[arg(long, value_name = "N")]
    max_docs: Option<usize>,

    /// Folder of the feature cache [default: $EXITWISE_CACHE_DIR, else ~/.cache/exitwise]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Refuse a pack trained on another model file (by default only another architecture or
    /// width is refused)
    #[arg(long)]
    strict: bool,
}

/// Runs `exitwise accuracy`.
pub fn run(args: &AccuracyArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let pack = load_pack(args.adapters.as_ref())?;
    let manifest = &pack.manifest;
    let fields = FieldNames {
        id: args.id_field.clone(),
        ..args.fields.names(manifest)
    };
    let data = Dataset::read(&args.data, &fields, args.max_docs)?;
    data.check_labels_within(&manifest.labels)?;
    let (model, model_sha256) =
        load_model_for_pack(&pack, args.model.as_ref(), global, args.strict)?;
    let source = FeatureSource {
        model: &model,
        model_sha256: &model_sha256,
        token_limit: manifest.token_limit,
        cache_root: args.cache_dir.as_deref(),
        threads: global.threads(),
    };
    let (mut cache, _, _) = cached_features(&source, &data, "features")?;
    let class_of = |label: &str| manifest.labels.iter().position(|known| known == label);
    let kinds = [manifest.feature_kind];
    let set = load_prefix_sets(
        &mut cache,
        &data,
        &class_of,
        &kinds,
        model.layers(),
        model.width(),
    )?
    .pop()
    .context("no prefix set was built")?;
    let reports: Vec<LayerReport> = pack
        .heads
        .iter()
        .enumerate()
        .map(|(layer, head)| {
            let accuracy = evaluate_layer(head, &set, layer);
            LayerReport {
                layer,
                l2: manifest.layers[layer].l2,
                temperature: head.head.temperature,
                dev_accuracy_prefixes: accuracy.prefixes,
                dev_accuracy_full: accuracy.full,
                dev_accuracy_1: accuracy.after_1,
                dev_accuracy_2: accuracy.after_2,
                dev_accuracy_4: accuracy.after_4,
                cross_fitted_accuracy_prefixes: None,
                cross_fitted_accuracy_full: None,
            }
        })
        .collect();
    let documents = set.rows_at(None).len();
    let best = manifest.best_layer;
    let last = reports.len() - 1;
    let mut text = format!(
        "pack {} on `{}`: {documents} documents, {} sentence prefixes, label field `{}`\n",
        manifest.name,
        args.data.display(),
        set.len(),
        fields.label
    );
    text.push_str(&render_layer_table(&reports, best, "data"));
    text.push_str(&format!(
        "whole documents: the pack's best layer ({}) {}: {:.4}; last layer {}: {:.4}\n",
        if manifest.format_version >= 2 {
            "chosen by cross-fitting on the training data"
        } else {
            "chosen on dev"
        },
        best + 1,
        reports[best].dev_accuracy_full,
        last + 1,
        reports[last].dev_accuracy_full
    ));
    output::print(&text)?;
    Ok(EXIT_OK)
}
