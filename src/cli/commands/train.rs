//! `exitwise train`: learns an adapter pack (one classifier head per layer) from labelled data.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};

use exitwise::dataset::{Dataset, FieldNames};
use exitwise::exit::DEFAULT_BUDGETS;
use exitwise::exit::calibration::{CalibrationMethod, DEFAULT_DELTA, RuleSet};
use exitwise::features::FeatureKind;
use exitwise::features::cache::FeatureCache;
use exitwise::features::extraction::{FeatureSource, load_prefix_sets};
use exitwise::features::lexical::DEFAULT_BUCKETS;
use exitwise::heads::{TrainedHeads, train_heads};
use exitwise::pack::AdapterPack;
use exitwise::pack::assemble::{PackDescription, TrainingData, assemble};
use exitwise::pack::calibrate::{
    CalibrationOptions, DocumentTokens, calibrate_pack, dataset_tokens, labelled_grids,
    learn_exit_decisions, out_of_fold_grids,
};
use exitwise::pack::layer_zero::{LabelledTokens, train_layer_zero};
use exitwise::text::DEFAULT_TOKEN_LIMIT;

use crate::cli::feature_source::cached_features;
use crate::cli::resolve::{load_model, model_sha256};
use crate::cli::tables::{render_layer_table, render_operating_points};
use crate::cli::{EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Training data: JSON Lines, or CSV/TSV with a header row (by extension)
    #[arg(long, value_name = "FILE")]
    train: PathBuf,

    /// Development data (same format): the exit calibration is chosen on it, and the
    /// per-layer accuracy measured (the penalty, temperature and feature kind are chosen by
    /// cross-fitting on the training data)
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

    /// Risk δ of the exit calibration: the probability that a budget does not hold on new
    /// documents like the dev data [default: 0.1]
    #[arg(long, value_name = "DELTA")]
    delta: Option<f64>,

    /// Buckets of the layer-0 head's hashed n-grams (a power of two) [default: 262144]
    ///
    /// The layer-0 head reads the document's token ids (unigrams and bigrams, TF-IDF) and
    /// answers before layer 1 when calibration finds it safe; its weights take 4 bytes per
    /// bucket and class.
    #[arg(long, value_name = "N", value_parser = parse_buckets)]
    layer_zero_buckets: Option<usize>,

    /// Keep the pack at --out as it is (its layer heads, exit models and sequences), train only
    /// its layer-0 head and calibrate it again on --dev
    ///
    /// The model's tokenizer reads the training data, and the model runs only over the dev
    /// documents not yet in the feature cache. The pack becomes format 3.
    #[arg(long, conflicts_with = "extract_only")]
    only_layer_zero: bool,
}

fn parse_buckets(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(buckets) if buckets.is_power_of_two() && (2..=1 << 24).contains(&buckets) => Ok(buckets),
        _ => Err(format!("`{text}` is not a power of two from 2 to 16777216")),
    }
}

/// Trains `pack`'s layer-0 head on the training documents' tokens and reports it.
fn add_layer_zero(
    pack: &mut AdapterPack,
    train: &Dataset,
    train_tokens: &[Option<DocumentTokens>],
    dev: &Dataset,
    dev_tokens: &[Option<DocumentTokens>],
    buckets: usize,
) -> anyhow::Result<()> {
    fn labelled<'a>(
        labels: &[String],
        dataset: &Dataset,
        tokens: &'a [Option<DocumentTokens>],
    ) -> Vec<LabelledTokens<'a>> {
        dataset
            .documents
            .iter()
            .zip(tokens)
            .enumerate()
            .filter_map(|(index, (document, tokens))| {
                Some(LabelledTokens {
                    index,
                    tokens: tokens.as_ref()?,
                    class: labels.iter().position(|label| *label == document.label)?,
                })
            })
            .collect()
    }
    let labels = pack.manifest.labels.clone();
    let train_documents = labelled(&labels, train, train_tokens);
    let dev_documents = labelled(&labels, dev, dev_tokens);
    let started = std::time::Instant::now();
    let spinner = output::spinner("training the layer-0 head");
    let trained = train_layer_zero(pack, &train_documents, &dev_documents, buckets)
        .context("no training document has text and a label")?;
    spinner.finish_and_clear();
    let report = &trained.report;
    eprintln!(
        "layer-0 head ({} buckets, L2 {}) trained on {} documents in {:.0} s: cross-fitted accuracy {:.4}, dev {}",
        report.buckets,
        report.l2,
        report.training_documents,
        started.elapsed().as_secs_f64(),
        report.cross_fitted_accuracy,
        report.dev_accuracy.map_or_else(
            || "not measured".to_string(),
            |accuracy| format!("{accuracy:.4}")
        )
    );
    Ok(())
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
        && !AdapterPack::may_write_into(out)
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
        cache_root: args.cache_dir.as_deref(),
        threads: global.threads(),
    };
    let extract = |data: &Dataset, what: &str| -> anyhow::Result<FeatureCache> {
        let (cache, report, seconds) = cached_features(&source, data, what)?;
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
    let buckets = args.layer_zero_buckets.unwrap_or(DEFAULT_BUCKETS);
    if args.only_layer_zero {
        let Some(out) = &args.out else {
            bail!("--only-layer-zero needs --out PACK");
        };
        let mut pack = AdapterPack::load_dir(out)
            .with_context(|| format!("cannot load the adapter pack `{}`", out.display()))?;
        pack.check_model(model.facts(), Some(&model_sha256), false)?;
        if pack.manifest.labels != labels {
            bail!(
                "the pack `{}` tells {:?} apart, the training data {:?}",
                out.display(),
                pack.manifest.labels,
                labels
            );
        }
        let token_limit = pack.manifest.token_limit;
        let train_tokens = dataset_tokens(&model, &train, token_limit);
        let dev_tokens = dataset_tokens(&model, &dev, token_limit);
        add_layer_zero(&mut pack, &train, &train_tokens, &dev, &dev_tokens, buckets)?;
        let source = FeatureSource {
            token_limit,
            ..source
        };
        let (mut dev_cache, _, _) = cached_features(&source, &dev, "dev")?;
        let calibration = Calibration {
            model: &model,
            dev: &dev,
            delta: args.delta.unwrap_or(DEFAULT_DELTA),
            threads: global
                .threads()
                .unwrap_or_else(exitwise::engine::usable_cpus),
        };
        calibrate_and_save(&mut pack, &calibration, &mut dev_cache, out)?;
        return Ok(EXIT_OK);
    }
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
        .unwrap_or_else(exitwise::engine::usable_cpus);
    let started = std::time::Instant::now();
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
    eprintln!(
        "heads of {} feature kinds trained by {}-fold cross-fitting in {:.0} s",
        candidates.len(),
        exitwise::heads::training::FOLDS,
        started.elapsed().as_secs_f64()
    );

    let name = out.file_name().map_or_else(
        || "pack".to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let description = PackDescription {
        name: &name,
        labels: &labels,
        token_limit: args.token_limit,
        model: model.facts(),
        model_sha256: &model_sha256,
        fields: &fields,
        train: TrainingData {
            dataset: &train,
            prefixes: &train_sets[0],
        },
        dev: TrainingData {
            dataset: &dev,
            prefixes: &dev_sets[0],
        },
    };
    let (mut pack, chosen) =
        assemble(&description, candidates).context("no feature kind was trained")?;
    let chosen_set = train_sets
        .iter()
        .find(|set| set.kind == chosen.kind)
        .context("the chosen feature kind has no training rows")?;
    let train_tokens = dataset_tokens(&model, &train, args.token_limit);
    let dev_tokens = dataset_tokens(&model, &dev, args.token_limit);
    add_layer_zero(&mut pack, &train, &train_tokens, &dev, &dev_tokens, buckets)?;
    let started = std::time::Instant::now();
    let spinner = output::spinner("exit decisions");
    let training_grids = out_of_fold_grids(&chosen, chosen_set, &train_tokens);
    learn_exit_decisions(&mut pack, &training_grids, threads, &|step| {
        spinner.set_message(step.to_string());
    });
    eprintln!(
        "exit models and sequences learned on {} training documents in {:.0} s",
        training_grids.len(),
        started.elapsed().as_secs_f64()
    );
    spinner.set_message("calibrating on dev");
    let calibration = Calibration {
        model: &model,
        dev: &dev,
        delta: args.delta.unwrap_or(DEFAULT_DELTA),
        threads,
    };
    calibrate_and_save(&mut pack, &calibration, &mut dev_cache, out)?;
    spinner.finish_and_clear();
    Ok(EXIT_OK)
}

/// What the last step of training needs: the model, the dev data, the risk and threads.
struct Calibration<'a> {
    model: &'a exitwise::engine::Model,
    dev: &'a Dataset,
    delta: f64,
    threads: usize,
}

/// Calibrates `pack` on the dev data (fixed-sequence testing, every rule, the default budgets),
/// saves it to `out` and prints its report.
fn calibrate_and_save(
    pack: &mut AdapterPack,
    calibration: &Calibration<'_>,
    dev_cache: &mut FeatureCache,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let dev_grids = labelled_grids(pack, calibration.model, dev_cache, calibration.dev)?;
    calibrate_pack(
        pack,
        &dev_grids,
        calibration.dev,
        &DEFAULT_BUDGETS,
        &CalibrationOptions {
            method: CalibrationMethod::FixedSequence,
            rules: RuleSet::All,
            delta: calibration.delta,
            labelled: true,
            threads: calibration.threads,
        },
    )?;
    pack.save(out)
        .with_context(|| format!("cannot save the pack to `{}`", out.display()))?;
    output::print(&render_report(pack))?;
    eprintln!("pack saved to `{}`", out.display());
    Ok(())
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
        "feature kind: {} (mean cross-fitted accuracy over layers and prefixes of the training documents: {})",
        manifest.feature_kind.name(),
        comparison.join(", ")
    );
    if let Some(layer_zero) = &manifest.layer_zero {
        let _ = writeln!(
            text,
            "layer 0 (token-id unigrams and bigrams in {} buckets, {:.1} MB of weights): cross-fitted accuracy {:.4}, dev {}",
            layer_zero.buckets,
            // The IDF and one weight per class, 4 bytes each, per bucket.
            (layer_zero.buckets * (manifest.labels.len() + 1) * 4) as f64 / 1e6,
            layer_zero.cross_fitted_accuracy,
            layer_zero
                .dev_accuracy
                .map_or_else(|| "-".to_string(), |accuracy| format!("{accuracy:.4}"))
        );
    }
    text.push_str(&render_layer_table(
        &manifest.layers,
        manifest.best_layer,
        "dev",
    ));
    text.push_str(&render_operating_points(manifest));
    text
}
