//! `exitwise train`: learns an adapter pack (one classifier head per layer) from labelled data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use exitwise::calibration::{DEFAULT_BUDGETS, calibrate, labelled_grids};
use exitwise::dataset::{Dataset, FieldNames};
use exitwise::document::DEFAULT_TOKEN_LIMIT;
use exitwise::engine::Model;
use exitwise::extraction::load_prefix_sets;
use exitwise::feature_cache::FeatureCache;
use exitwise::features::FeatureKind;
use exitwise::pack::{
    AdapterPack, CalibrationSection, LayerReport, ModelFingerprint, PACK_FORMAT_VERSION,
    PackManifest, TrainingDescription,
};
use exitwise::policy::PolicyKind;
use exitwise::training::{TrainedHeads, train_heads};

use super::features::FeatureSource;
use super::{EXIT_OK, GlobalOptions, load_model, model_sha256, output};

/// Arguments of `exitwise train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Training data: JSON Lines, or CSV/TSV with a header row (by extension)
    #[arg(long, value_name = "FILE")]
    train: PathBuf,

    /// Development data (same format): chooses the L2 penalty, the feature kind and the
    /// calibration temperature, and measures the per-layer accuracy
    #[arg(long, value_name = "FILE")]
    dev: PathBuf,

    /// Output folder of the pack (its name is the folder's name), e.g. `adapters/my-pack`
    #[arg(long, value_name = "DIR", required_unless_present = "extract_only")]
    out: Option<PathBuf>,

    /// Field (column) holding the text
    #[arg(long, default_value = "text", value_name = "NAME")]
    text_field: String,

    /// Field (column) holding the label; labels are any strings, 2 or more classes
    #[arg(long, default_value = "label", value_name = "NAME")]
    label_field: String,

    /// Field (column) holding the document id (optional in the data)
    #[arg(long, default_value = "id", value_name = "NAME")]
    id_field: String,

    /// Use only the first N training documents
    #[arg(long, value_name = "N")]
    max_docs: Option<usize>,

    /// Use only the first N development documents
    #[arg(long, value_name = "N")]
    max_dev_docs: Option<usize>,

    /// Most tokens read per document (document-start token included)
    #[arg(long, default_value_t = DEFAULT_TOKEN_LIMIT, value_name = "N")]
    token_limit: usize,

    /// Folder of the feature cache [default: $EXITWISE_CACHE_DIR, else ~/.cache/exitwise]
    ///
    /// Features are cached per model file, data file and token limit: training again (other
    /// labels of the same file, fewer documents, another output) never re-runs the model.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Only run the model over the data and fill the feature cache; train nothing
    #[arg(long)]
    extract_only: bool,
}

/// Runs `exitwise train`.
pub fn run(args: &TrainArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let fields = FieldNames {
        text: args.text_field.clone(),
        label: args.label_field.clone(),
        id: args.id_field.clone(),
    };
    let train = Dataset::read(&args.train, &fields, args.max_docs)?;
    train.check_trainable()?;
    let labels = train.labels();
    let dev = Dataset::read(&args.dev, &fields, args.max_dev_docs)?;
    dev.check_labels_within(&labels)?;
    if let Some(out) = &args.out
        && out.exists()
        && !out.join(exitwise::pack::MANIFEST_FILE).exists()
        && std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some())
    {
        bail!(
            "refusing to write the pack into `{}`: the folder exists and is not a pack",
            out.display()
        );
    }

    let model = load_model(args.model.as_ref(), global)?;
    let model_sha256 = model_sha256(&model)?;
    let source = FeatureSource {
        model: &model,
        model_sha256: &model_sha256,
        token_limit: args.token_limit,
        cache_dir: args.cache_dir.as_ref(),
        threads: global.threads(),
    };
    let extract = |data: &Dataset, what: &str| -> anyhow::Result<FeatureCache> {
        let (cache, report, seconds) = source.cached(data, what)?;
        eprintln!(
            "{what}: {} documents decoded in {seconds:.0} s, {} from the cache{}",
            report.decoded,
            report.cached,
            if report.empty.is_empty() {
                String::new()
            } else {
                format!(", {} empty and skipped", report.empty.len())
            }
        );
        Ok(cache)
    };
    let mut train_cache = extract(&train, "train")?;
    let mut dev_cache = extract(&dev, "dev")?;
    if args.extract_only {
        eprintln!(
            "features cached in `{}` and `{}`",
            train_cache.folder().display(),
            dev_cache.folder().display()
        );
        return Ok(EXIT_OK);
    }
    let Some(out) = &args.out else {
        bail!("--out is required to train a pack");
    };

    let class_of = |label: &str| labels.iter().position(|known| known == label);
    let (layers, width) = (model.layers(), model.width());
    let kinds = &FeatureKind::ALL;
    let train_sets = load_prefix_sets(&mut train_cache, &train, &class_of, kinds, layers, width)?;
    let dev_sets = load_prefix_sets(&mut dev_cache, &dev, &class_of, kinds, layers, width)?;
    let threads = global
        .threads()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let bar = output::steps_bar((layers * train_sets.len()) as u64, "training heads");
    let mut candidates: Vec<TrainedHeads> = Vec::new();
    for (train_set, dev_set) in train_sets.iter().zip(&dev_sets) {
        let finished_before = (candidates.len() * layers) as u64;
        candidates.push(train_heads(
            train_set,
            dev_set,
            labels.len(),
            threads,
            &|done| bar.set_position(finished_before + done as u64),
        ));
    }
    bar.finish_and_clear();
    let feature_comparison: BTreeMap<String, f64> = candidates
        .iter()
        .map(|trained| {
            (
                trained.kind.name().to_string(),
                trained.mean_prefix_accuracy(),
            )
        })
        .collect();
    let chosen = candidates
        .into_iter()
        .reduce(|best, next| {
            if next.mean_prefix_accuracy() > best.mean_prefix_accuracy() {
                next
            } else {
                best
            }
        })
        .context("no feature kind was trained")?;

    let name = out.file_name().map_or_else(
        || "pack".to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let pack = AdapterPack {
        manifest: PackManifest {
            format_version: PACK_FORMAT_VERSION,
            name,
            labels: labels.clone(),
            feature_kind: chosen.kind,
            token_limit: args.token_limit,
            best_layer: chosen.best_layer(),
            model: fingerprint(&model, &model_sha256),
            training: TrainingDescription {
                train_file: display_path(&args.train),
                train_sha256: train.sha256.clone(),
                train_documents: train_sets[0].document_count(),
                train_prefixes: train_sets[0].len(),
                dev_file: display_path(&args.dev),
                dev_sha256: dev.sha256.clone(),
                dev_documents: dev_sets[0].document_count(),
                text_field: args.text_field.clone(),
                label_field: args.label_field.clone(),
                feature_comparison,
                created_by: format!(
                    "exitwise {} (commit {})",
                    env!("CARGO_PKG_VERSION"),
                    env!("EXITWISE_BUILD_COMMIT")
                ),
            },
            layers: chosen.reports.clone(),
            calibration: None,
        },
        heads: chosen.heads.clone(),
    };
    let mut pack = pack;
    calibrate_pack(&mut pack, &model, &mut dev_cache, &dev)?;
    pack.save(out)
        .with_context(|| format!("cannot save the pack to `{}`", out.display()))?;
    output::print(&render_report(&pack))?;
    eprintln!("pack saved to `{}`", out.display());
    Ok(EXIT_OK)
}

fn fingerprint(model: &Model, sha256: &str) -> ModelFingerprint {
    let facts = model.facts();
    ModelFingerprint {
        architecture: facts.architecture.clone(),
        layers: facts.layers,
        width: facts.width,
        sha256: sha256.to_string(),
        quantization: facts.quantization.clone(),
    }
}

/// A path as given, shortened to what follows `data/` for the shared data sets, so packs do not
/// record a machine's folder layout.
fn display_path(path: &Path) -> String {
    let text = path.display().to_string();
    match text.rfind("/data/") {
        Some(position) => text[position + "/data/".len()..].to_string(),
        None => text,
    }
}

fn render_report(pack: &AdapterPack) -> String {
    let manifest = &pack.manifest;
    let mut text = String::new();
    let comparison: Vec<String> = manifest
        .training
        .feature_comparison
        .iter()
        .map(|(kind, accuracy)| format!("{kind} {accuracy:.4}"))
        .collect();
    let _ = writeln!(
        text,
        "pack {}: {} classes ({}), {} training documents ({} sentence prefixes), {} dev documents",
        manifest.name,
        manifest.labels.len(),
        manifest.labels.join(", "),
        manifest.training.train_documents,
        manifest.training.train_prefixes,
        manifest.training.dev_documents
    );
    let _ = writeln!(
        text,
        "feature kind: {} (mean dev accuracy over layers and prefixes: {})",
        manifest.feature_kind.name(),
        comparison.join(", ")
    );
    text.push_str(&render_layer_table(
        &manifest.layers,
        manifest.best_layer,
        "dev",
    ));
    text.push_str(&render_operating_points(manifest));
    text
}

/// Simulates the exit policies on the dev features and stores the chosen operating points in
/// the pack.
pub(super) fn calibrate_pack(
    pack: &mut AdapterPack,
    model: &Model,
    dev_cache: &mut FeatureCache,
    dev: &Dataset,
) -> anyhow::Result<()> {
    let grids = labelled_grids(pack, model, dev_cache, dev)?;
    anyhow::ensure!(
        !grids.is_empty(),
        "no dev document is usable for calibration"
    );
    let points = calibrate(
        &grids,
        pack.heads.len(),
        pack.manifest.best_layer,
        &DEFAULT_BUDGETS,
    );
    pack.manifest.calibration = Some(CalibrationSection {
        dev_documents: grids.len(),
        operating_points: points,
    });
    Ok(())
}

/// The calibrated operating points as a table.
pub(super) fn render_operating_points(manifest: &PackManifest) -> String {
    let Some(calibration) = &manifest.calibration else {
        return String::new();
    };
    let mut text = format!(
        "exit calibration on {} dev documents (cost: share of full-depth, whole-document token×layer operations; pass: what one decode reads, a sentence, whole sentences up to ≥N tokens, or the document)\n",
        calibration.dev_documents
    );
    let _ = writeln!(
        text,
        "{:<9} {:>6} {:<19} {:>9} {:>6} {:>9} {:>8} {:>6} {:>9} {:>9}",
        "policy",
        "budget",
        "rule",
        "threshold",
        "decide",
        "depth cap",
        "patience",
        "pass",
        "dev acc",
        "dev cost"
    );
    for point in &calibration.operating_points {
        let config = &point.config;
        let dash = || "-".to_string();
        let (rule, threshold, patience) = match config.kind {
            PolicyKind::Full => (dash(), dash(), dash()),
            _ => (
                config.rule.name().to_string(),
                format!("{:.3}", config.threshold),
                config.patience.to_string(),
            ),
        };
        // Which head answers: a fixed layer for `full` and `sentence`, the exit cell otherwise.
        let decide = match config.kind {
            PolicyKind::Full | PolicyKind::Sentence => config.decision_layer.to_string(),
            _ => format!("≥{}", config.min_layer),
        };
        let (cap, pass) = match config.kind {
            PolicyKind::TwoDimensional => (
                config.depth_cap.to_string(),
                if config.min_pass_tokens == 0 {
                    "1 sent".to_string()
                } else {
                    format!("≥{}", config.min_pass_tokens)
                },
            ),
            PolicyKind::Sentence => (dash(), "1 sent".to_string()),
            _ => (dash(), "doc".to_string()),
        };
        let _ = writeln!(
            text,
            "{:<9} {:>6.1} {:<19} {:>9} {:>6} {:>9} {:>8} {:>6} {:>9.4} {:>9.3}",
            config.kind.name(),
            point.budget,
            rule,
            threshold,
            decide,
            cap,
            patience,
            pass,
            point.dev_accuracy,
            point.dev_cost
        );
    }
    text
}

/// The per-layer accuracy table (`set` names the data: "dev", "test"); `*` marks `best_layer`.
pub(super) fn render_layer_table(reports: &[LayerReport], best_layer: usize, set: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:>5} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "layer",
        "l2",
        "temp",
        format!("{set} full"),
        format!("{set} @1"),
        format!("{set} @2"),
        format!("{set} @4"),
        "prefixes"
    );
    for report in reports {
        let marker = if report.layer == best_layer { " *" } else { "" };
        let _ = writeln!(
            text,
            "{:>5} {:>8.0e} {:>7.3} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4}{marker}",
            report.layer,
            report.l2,
            report.temperature,
            report.dev_accuracy_full,
            report.dev_accuracy_1,
            report.dev_accuracy_2,
            report.dev_accuracy_4,
            report.dev_accuracy_prefixes
        );
    }
    let _ = writeln!(
        text,
        "* best layer on whole dev documents (the pack's choice)"
    );
    text
}
