//! `exitwise eval`: accuracy and wall-clock of the exit policies side by side, interleaved per
//! document in one process, with the oracle and the paper's staircase schedule from cached
//! features.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use exitwise::calibration::{LabelledGrid, candidate_configs, labelled_grids};
use exitwise::classifier::Classifier;
use exitwise::dataset::Dataset;
use exitwise::document::{PreparedDocument, prepare_document};
use exitwise::engine::{Session, SessionOptions};
use exitwise::evaluation::{
    DocumentResult, PolicySummary, cheapest_at_accuracy, oracle, schedule_measurement,
    simulate_staircase, summarise,
};
use exitwise::pack::AdapterPack;
use exitwise::policy::{PolicyConfig, PolicyKind, simulate};

use super::classify::PolicyArgument;
use super::features::FeatureSource;
use super::{EXIT_OK, GlobalOptions, LabelledFields, load_model, load_pack, model_sha256, output};

/// Arguments of `exitwise eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME", conflicts_with = "models")]
    model: Option<PathBuf>,

    /// Several model files (e.g. quantizations of one model), comma-separated: prints a matrix
    /// of models × policies from one interleaved run, speed-ups against the first model's
    /// `full`, and the product check (quantization speed-up × exit speed-up against both
    /// together). Put the reference (e.g. F16) first. All use the same pack.
    #[arg(long, value_name = "A.gguf,B.gguf,…", value_delimiter = ',', num_args = 1..)]
    models: Vec<PathBuf>,

    /// Adapter pack: a folder, or the name of a pack in `adapters/` [default: the compiled-in
    /// pack]
    #[arg(long, value_name = "NAME|DIR")]
    adapters: Option<PathBuf>,

    /// Labelled data: JSON Lines, or CSV/TSV with a header row
    #[arg(long, value_name = "FILE")]
    data: PathBuf,

    #[command(flatten)]
    fields: LabelledFields,

    /// Policies to run, comma-separated, in this order for the first document (the order is
    /// rotated by one for each next document)
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "full,layer,sentence,2d"
    )]
    policies: Vec<PolicyArgument>,

    /// Accuracy budget of the calibrated settings (points below `full` on dev)
    #[arg(long, default_value_t = 1.0, value_name = "POINTS")]
    budget: f64,

    /// Use only the first N documents
    #[arg(long, value_name = "N")]
    limit: Option<usize>,

    /// Runs over the documents; times are the medians across runs
    #[arg(long, default_value_t = 3, value_name = "R", value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,

    /// Also write every figure, the per-document results and the machine's facts as JSON to
    /// this file
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,

    /// Draw accuracy against wall-clock speed-up over every calibrated operating point of each
    /// policy, with the oracle; SVG or PNG by the file's extension (times every operating point,
    /// not only --budget)
    #[arg(long, value_name = "OUT.svg|OUT.png")]
    plot: Option<PathBuf>,

    /// Folder of the feature cache (the oracle and the staircase use cached features of the
    /// data, extracted on first use) [default: $EXITWISE_CACHE_DIR, else ~/.cache/exitwise]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Skip the oracle and the staircase simulation (they need the data's features at every
    /// cell: a full extraction pass the first time)
    #[arg(long)]
    no_simulation: bool,
}

/// One setting that is timed: a policy at a budget.
#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: PolicyKind,
    budget: f64,
    config: PolicyConfig,
}

/// The machine and build the figures were measured on.
#[derive(Debug, Serialize)]
struct MachineFacts {
    cpu: String,
    logical_cpus: usize,
    threads: usize,
    build_features: Vec<&'static str>,
    exitwise_version: &'static str,
    commit: &'static str,
    model: String,
    model_sha256: String,
    model_quantization: String,
    pack: String,
}

#[derive(Debug, Serialize)]
struct OracleReport {
    accuracy: f64,
    token_layers_mean: f64,
    speedup_vs_full_ops: f64,
}

#[derive(Debug, Serialize)]
struct ScheduleReport {
    /// Accuracy of the calibrated 2d setting, simulated on this data: the target.
    target_accuracy: f64,
    /// Cost of the calibrated 2d setting relative to full.
    calibrated_2d_cost: f64,
    /// Cheapest depth-capped 2d setting on this data reaching the target.
    best_2d: Option<ScheduleChoice>,
    /// Cheapest staircase setting on this data reaching the target.
    best_staircase: Option<ScheduleChoice>,
}

#[derive(Debug, Serialize)]
struct ScheduleChoice {
    accuracy: f64,
    cost: f64,
    speedup_vs_full_ops: f64,
    config: PolicyConfig,
    /// Layers opened per sentence (staircase only).
    step: Option<usize>,
}

#[derive(Debug, Serialize)]
struct OperatingPointReport {
    policy: &'static str,
    budget: f64,
    accuracy: f64,
    speedup_vs_full_wall: Option<f64>,
    speedup_vs_full_ops: Option<f64>,
}

#[derive(Debug, Serialize)]
struct DocumentReport {
    index: usize,
    class: usize,
    policies: BTreeMap<&'static str, DocumentPolicyReport>,
    oracle_token_layers: Option<u64>,
}

#[derive(Debug, Serialize)]
struct DocumentPolicyReport {
    predicted: usize,
    exit_layer: usize,
    sentences_read: usize,
    token_layers: u64,
    full_token_layers: u64,
    ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct EvalReport {
    documents: usize,
    runs: usize,
    budget: f64,
    data: String,
    labels: Vec<String>,
    machine: MachineFacts,
    policies: BTreeMap<&'static str, PolicySummary>,
    oracle: Option<OracleReport>,
    schedule: Option<ScheduleReport>,
    operating_points: Vec<OperatingPointReport>,
    per_document: Vec<DocumentReport>,
}

/// Runs `exitwise eval`.
pub fn run(args: &EvalArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    if let Some(path) = &args.plot {
        super::plot::check_path(path)?;
    }
    let runs = args.runs as usize;
    if !args.models.is_empty() {
        return run_matrix(args, global);
    }
    let pack = load_pack(args.adapters.as_ref())?;
    let manifest = &pack.manifest;
    let data = labelled_data(args, &pack)?;
    let model = load_model(args.model.as_ref(), global)?;
    let model_sha256 = model_sha256(&model)?;
    for warning in pack.check_model(model.facts(), Some(&model_sha256), false)? {
        eprintln!("warning: {warning}");
    }

    let kinds = chosen_kinds(args);
    let entries = timed_entries(&pack, &kinds, args.budget, args.plot.is_some())?;

    // Tokenize once; documents without text are left out (and said so).
    let mut documents: Vec<(usize, PreparedDocument, usize)> = Vec::new();
    for (index, document) in data.documents.iter().enumerate() {
        let class = manifest
            .labels
            .iter()
            .position(|label| *label == document.label)
            .context("a label outside the pack passed the label check")?;
        match prepare_document(&model, &document.text, manifest.token_limit) {
            Ok(prepared) => documents.push((index, prepared, class)),
            Err(error) => eprintln!("warning: document `{}` left out: {error}", document.id),
        }
    }
    anyhow::ensure!(
        !documents.is_empty(),
        "no document of `{}` has text to classify",
        args.data.display()
    );

    let configs: Vec<PolicyConfig> = entries.iter().map(|entry| entry.config).collect();
    let (mut classifier, threads) =
        warmed_classifier(&model, &pack, global, &configs, &documents[0].1)?;

    let results = interleaved_runs(
        runs,
        documents.len(),
        entries.len(),
        |which, position, run, results| {
            let (index, document, class) = &documents[position];
            classifier.set_config(entries[which].config);
            measure_one(
                &mut classifier,
                document,
                (position, *class, &data.documents[*index].id),
                run,
                results,
            )
        },
    )?;

    let classes = manifest.labels.len();
    let main_results = |kind: PolicyKind| -> Option<&[DocumentResult]> {
        entries
            .iter()
            .position(|entry| entry.kind == kind && is_main(entry, args.budget))
            .map(|position| results[position].as_slice())
    };
    let full_results = main_results(PolicyKind::Full);
    let layer_results = main_results(PolicyKind::Layer);
    let mut policies = BTreeMap::new();
    for &kind in &kinds {
        let own = main_results(kind).context("a chosen policy was not run")?;
        policies.insert(
            kind.name(),
            summarise(own, classes, full_results, layer_results),
        );
    }
    let operating_points: Vec<OperatingPointReport> = entries
        .iter()
        .zip(&results)
        .map(|(entry, own)| {
            let summary = summarise(own, classes, full_results, layer_results);
            OperatingPointReport {
                policy: entry.kind.name(),
                budget: entry.budget,
                accuracy: summary.accuracy,
                speedup_vs_full_wall: summary.speedup_vs_full_wall,
                speedup_vs_full_ops: summary.speedup_vs_full_ops,
            }
        })
        .collect();

    // The oracle and the staircase from every cell's features.
    let mut oracle_costs: Option<Vec<u64>> = None;
    let mut oracle_report = None;
    let mut schedule = None;
    if !args.no_simulation {
        let source = FeatureSource {
            model: &model,
            model_sha256: &model_sha256,
            token_limit: manifest.token_limit,
            cache_dir: args.cache_dir.as_ref(),
            threads: global.threads(),
        };
        let (mut cache, _, _) = source.cached(&data, "features (oracle)")?;
        let by_index: BTreeMap<usize, LabelledGrid> =
            labelled_grids(&pack, &model, &mut cache, &data)?
                .into_iter()
                .map(|grid| (grid.index, grid))
                .collect();
        let mut costs = Vec::with_capacity(documents.len());
        let mut correct = 0usize;
        let mut full_operations = 0u64;
        for (index, _, class) in &documents {
            let grid = by_index
                .get(index)
                .with_context(|| format!("no cached features for document {index}"))?;
            let outcome = oracle(&grid.grid, *class);
            correct += usize::from(outcome.correct);
            costs.push(outcome.token_layers);
            full_operations +=
                grid.grid.sentence_tokens.iter().sum::<usize>() as u64 * grid.grid.layers() as u64;
        }
        let total: u64 = costs.iter().sum();
        oracle_report = Some(OracleReport {
            accuracy: correct as f64 / documents.len() as f64,
            token_layers_mean: total as f64 / documents.len() as f64,
            speedup_vs_full_ops: full_operations as f64 / total.max(1) as f64,
        });
        oracle_costs = Some(costs);
        if kinds.contains(&PolicyKind::TwoDimensional) {
            let labelled: Vec<(&exitwise::policy::DocumentGrid, usize)> = documents
                .iter()
                .filter_map(|(index, _, class)| {
                    by_index.get(index).map(|grid| (&grid.grid, *class))
                })
                .collect();
            let calibrated = pack.operating_point(PolicyKind::TwoDimensional, args.budget)?;
            schedule = Some(compare_schedules(&labelled, &calibrated, pack.heads.len()));
        }
    }

    let machine = MachineFacts {
        cpu: cpu_model(),
        logical_cpus: std::thread::available_parallelism().map_or(1, usize::from),
        threads,
        build_features: build_features(),
        exitwise_version: env!("CARGO_PKG_VERSION"),
        commit: env!("EXITWISE_BUILD_COMMIT"),
        model: model.path().display().to_string(),
        model_sha256: model_sha256.clone(),
        model_quantization: model.facts().quantization.clone().unwrap_or_default(),
        pack: manifest.name.clone(),
    };
    let report = EvalReport {
        documents: documents.len(),
        runs,
        budget: args.budget,
        data: args.data.display().to_string(),
        labels: manifest.labels.clone(),
        machine,
        policies,
        oracle: oracle_report,
        schedule,
        operating_points,
        per_document: documents
            .iter()
            .enumerate()
            .map(|(position, (index, _, class))| DocumentReport {
                index: *index,
                class: *class,
                policies: entries
                    .iter()
                    .zip(&results)
                    .filter(|(entry, _)| is_main(entry, args.budget))
                    .map(|(entry, own)| {
                        let result = &own[position];
                        (
                            entry.kind.name(),
                            DocumentPolicyReport {
                                predicted: result.predicted,
                                exit_layer: result.exit_layer,
                                sentences_read: result.sentences_read,
                                token_layers: result.token_layers,
                                full_token_layers: result.full_token_layers,
                                ms: result.milliseconds.clone(),
                            },
                        )
                    })
                    .collect(),
                oracle_token_layers: oracle_costs.as_ref().map(|costs| costs[position]),
            })
            .collect(),
    };

    output::print(&render(&report, &kinds))?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the JSON report to `{}`", path.display()))?;
        eprintln!("report written to `{}`", path.display());
    }
    if let Some(path) = &args.plot {
        super::plot::draw_operating_points(
            path,
            &report.operating_points_for_plot(),
            report.oracle.as_ref().map(|oracle| oracle.accuracy),
            &format!("{} on {}", manifest.name, file_name(&args.data)),
        )
        .with_context(|| format!("cannot draw the plot `{}`", path.display()))?;
        eprintln!("plot written to `{}`", path.display());
    }
    Ok(EXIT_OK)
}

impl EvalReport {
    fn operating_points_for_plot(&self) -> Vec<super::plot::PlotPoint> {
        self.operating_points
            .iter()
            .filter_map(|point| {
                Some(super::plot::PlotPoint {
                    series: point.policy,
                    budget: point.budget,
                    accuracy: point.accuracy,
                    speedup: point.speedup_vs_full_wall?,
                })
            })
            .collect()
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Whether `entry` is the setting reported as its policy (the others only feed the plot).
fn is_main(entry: &Entry, budget: f64) -> bool {
    entry.kind == PolicyKind::Full || (entry.budget - budget).abs() < 1e-9
}

/// The settings to time: each policy at `budget`, and with `all_budgets` every calibrated
/// operating point as well.
fn timed_entries(
    pack: &AdapterPack,
    kinds: &[PolicyKind],
    budget: f64,
    all_budgets: bool,
) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    // The speed-ups of the plot are against `full`, so it is timed whenever the plot is drawn.
    let mut kinds = kinds.to_vec();
    if all_budgets && !kinds.contains(&PolicyKind::Full) {
        kinds.insert(0, PolicyKind::Full);
    }
    for kind in kinds {
        entries.push(Entry {
            kind,
            budget: if kind == PolicyKind::Full {
                0.0
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
                .filter(|point| point.config.kind == kind && (point.budget - budget).abs() > 1e-9)
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

/// The calibrated 2d setting against the cheapest 2d and staircase settings on the same grids
/// that reach its accuracy.
fn compare_schedules(
    grids: &[(&exitwise::policy::DocumentGrid, usize)],
    calibrated: &PolicyConfig,
    layers: usize,
) -> ScheduleReport {
    let calibrated_policy = calibrated.policy(layers);
    let (target_accuracy, calibrated_2d_cost) =
        schedule_measurement(grids, &|grid| simulate(calibrated_policy.as_ref(), grid));
    let two_dimensional = candidate_configs(PolicyKind::TwoDimensional, layers, layers - 1);
    let measured_2d: Vec<(f64, f64)> = two_dimensional
        .iter()
        .map(|config| {
            let policy = config.policy(layers);
            schedule_measurement(grids, &|grid| simulate(policy.as_ref(), grid))
        })
        .collect();
    let choice =
        |config: PolicyConfig, accuracy: f64, cost: f64, step: Option<usize>| ScheduleChoice {
            accuracy,
            cost,
            speedup_vs_full_ops: 1.0 / cost.max(1e-12),
            config,
            step,
        };
    let best_2d = cheapest_at_accuracy(&measured_2d, target_accuracy)
        .map(|(index, accuracy, cost)| choice(two_dimensional[index], accuracy, cost, None));
    // The staircase: the same rules and thresholds, uncapped and at the calibrated cap, opening
    // 1, 2, 3, 4 or 6 layers per sentence.
    let mut staircase: Vec<(PolicyConfig, usize)> = Vec::new();
    for config in candidate_configs(PolicyKind::TwoDimensional, layers, layers - 1)
        .into_iter()
        .filter(|config| config.depth_cap == layers - 1 || config.depth_cap == calibrated.depth_cap)
    {
        for step in [1, 2, 3, 4, 6] {
            staircase.push((config, step));
        }
    }
    let measured_staircase: Vec<(f64, f64)> = staircase
        .iter()
        .map(|(config, step)| {
            schedule_measurement(grids, &|grid| simulate_staircase(config, *step, grid))
        })
        .collect();
    let best_staircase = cheapest_at_accuracy(&measured_staircase, target_accuracy).map(
        |(index, accuracy, cost)| {
            let (config, step) = staircase[index];
            choice(config, accuracy, cost, Some(step))
        },
    );
    ScheduleReport {
        target_accuracy,
        calibrated_2d_cost,
        best_2d,
        best_staircase,
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |value| format!("{value:.2}x"))
}

/// The readable table.
fn render(report: &EvalReport, kinds: &[PolicyKind]) -> String {
    let mut text = format!(
        "{} documents of `{}`, {} run(s), budget {}, {} threads, pack {}\n",
        report.documents,
        report.data,
        report.runs,
        report.budget,
        report.machine.threads,
        report.machine.pack
    );
    let _ = writeln!(
        text,
        "{:<9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "policy",
        "accuracy",
        "macro-F1",
        "docs/s",
        "ms med",
        "ms p90",
        "layer",
        "sent.",
        "tok×layer",
        "wall/full",
        "wall/layer",
        "ops/full",
        "ops/layer"
    );
    for kind in kinds {
        let Some(summary) = report.policies.get(kind.name()) else {
            continue;
        };
        let _ = writeln!(
            text,
            "{:<9} {:>8.4} {:>8.4} {:>9.2} {:>8.1} {:>8.1} {:>7.2} {:>7.2} {:>10.0} {:>9} {:>9} {:>9} {:>9}",
            kind.name(),
            summary.accuracy,
            summary.macro_f1,
            summary.docs_per_s,
            summary.ms_median,
            summary.ms_p90,
            summary.mean_exit_layer + 1.0,
            summary.mean_sentences_read,
            summary.token_layers_mean,
            ratio(summary.speedup_vs_full_wall),
            ratio(summary.speedup_vs_layer_wall),
            ratio(summary.speedup_vs_full_ops),
            ratio(summary.speedup_vs_layer_ops),
        );
    }
    text.push_str("(layer: mean exit layer, 1-based; sent.: mean sentences read; wall/x and ops/x: speed-up over policy x in wall-clock and in token×layer operations)\n");
    if let Some(oracle) = &report.oracle {
        let _ = writeln!(
            text,
            "oracle (cheapest correct cell per document): accuracy {:.4}, {:.0} token×layers, {:.2}x fewer operations than full",
            oracle.accuracy, oracle.token_layers_mean, oracle.speedup_vs_full_ops
        );
    }
    if let Some(schedule) = &report.schedule {
        let _ = writeln!(
            text,
            "schedules at the calibrated 2d accuracy on this data ({:.4}; calibrated 2d: {:.2}x fewer operations than full):",
            schedule.target_accuracy,
            1.0 / schedule.calibrated_2d_cost.max(1e-12)
        );
        for (name, choice) in [
            ("2d (depth cap, best on this data)", &schedule.best_2d),
            (
                "paper's staircase (best on this data)",
                &schedule.best_staircase,
            ),
        ] {
            match choice {
                Some(choice) => {
                    let _ = writeln!(
                        text,
                        "  {name:<38} accuracy {:.4}, {:.2}x fewer operations than full ({} {} threshold {}, cap {}{})",
                        choice.accuracy,
                        choice.speedup_vs_full_ops,
                        choice.config.rule.name(),
                        if choice.config.patience > 1 {
                            format!("patience {}", choice.config.patience)
                        } else {
                            String::new()
                        },
                        choice.config.threshold,
                        choice.config.depth_cap,
                        choice.step.map_or_else(String::new, |step| format!(
                            ", {step} layer(s) per sentence"
                        ))
                    );
                }
                None => {
                    let _ = writeln!(text, "  {name:<38} no setting reaches the target");
                }
            }
        }
    }
    text
}

/// A session on `model` and a classifier over it, warmed up with every setting of `configs` on
/// `document` (the first decodes of a session allocate buffers and fault pages in, which must
/// not be timed); also the session's thread count.
fn warmed_classifier<'model, 'pack>(
    model: &'model exitwise::engine::Model,
    pack: &'pack AdapterPack,
    global: &GlobalOptions,
    configs: &[PolicyConfig],
    document: &PreparedDocument,
) -> anyhow::Result<(Classifier<'model, 'pack>, usize)> {
    let session = Session::new(
        model,
        &SessionOptions {
            context_tokens: pack.manifest.token_limit,
            threads: global.threads(),
            tap: true,
        },
    )
    .context("cannot create a session")?;
    let threads = session.threads();
    let first = configs.first().context("no exit setting to run")?;
    let mut classifier = Classifier::new(session, pack, *first);
    for &config in configs {
        classifier.set_config(config);
        classifier
            .classify(document)
            .context("cannot classify the warm-up document")?;
    }
    Ok((classifier, threads))
}

/// The labelled data of `--data`, its labels checked against the pack's.
fn labelled_data(args: &EvalArgs, pack: &AdapterPack) -> anyhow::Result<Dataset> {
    let manifest = &pack.manifest;
    let fields = args.fields.names(manifest);
    let data = Dataset::read(&args.data, &fields, args.limit)?;
    data.check_labels_within(&manifest.labels)?;
    Ok(data)
}

/// `--policies` without repetitions, in the order given.
fn chosen_kinds(args: &EvalArgs) -> Vec<PolicyKind> {
    let mut kinds: Vec<PolicyKind> = Vec::new();
    for policy in &args.policies {
        let kind = PolicyKind::from(*policy);
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds
}

/// Calls `measure(entry, document position, run, that entry's results)` for every run, document
/// and entry, interleaved per document with the entries' order rotated by one for each next
/// document and run, so that machine noise hits every entry alike; a progress bar counts the
/// documents. Answers the results of each entry.
fn interleaved_runs(
    runs: usize,
    documents: usize,
    entries: usize,
    mut measure: impl FnMut(usize, usize, usize, &mut Vec<DocumentResult>) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Vec<DocumentResult>>> {
    let mut results: Vec<Vec<DocumentResult>> = (0..entries)
        .map(|_| Vec::with_capacity(documents))
        .collect();
    let bar = output::documents_bar((documents * runs) as u64, "eval");
    for run in 0..runs {
        for position in 0..documents {
            for offset in 0..entries {
                let which = (position + run + offset) % entries;
                measure(which, position, run, &mut results[which])?;
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(results)
}

/// Classifies the document at `position` once and records the result and its time in
/// `results` (one entry per document, in order: the first run adds it, later runs add their
/// time and check that the answer and the cost did not change).
fn measure_one(
    classifier: &mut Classifier<'_, '_>,
    document: &PreparedDocument,
    (position, class, id): (usize, usize, &str),
    run: usize,
    results: &mut Vec<DocumentResult>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let classification = classifier
        .classify(document)
        .with_context(|| format!("cannot classify document `{id}`"))?;
    let milliseconds = started.elapsed().as_secs_f64() * 1000.0;
    if run == 0 {
        results.push(DocumentResult {
            class,
            predicted: classification.class,
            exit_layer: classification.exit.layer,
            sentences_read: classification.exit.sentence,
            token_layers: classification.token_layers,
            full_token_layers: classification.full_token_layers,
            milliseconds: vec![milliseconds],
        });
        return Ok(());
    }
    let result = results
        .get_mut(position)
        .context("a later run met a document the first run did not")?;
    anyhow::ensure!(
        result.predicted == classification.class
            && result.token_layers == classification.token_layers,
        "document `{id}` was classified differently in run {}: the engine is not deterministic here",
        run + 1
    );
    result.milliseconds.push(milliseconds);
    Ok(())
}

/// The processor's model name (Linux), else the architecture.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Cargo features this binary was built with.
fn build_features() -> Vec<&'static str> {
    let mut features = Vec::new();
    if cfg!(feature = "cuda") {
        features.push("cuda");
    }
    if cfg!(feature = "metal") {
        features.push("metal");
    }
    if cfg!(feature = "vulkan") {
        features.push("vulkan");
    }
    if features.is_empty() {
        features.push("cpu");
    }
    features
}

/// One model of the matrix, loaded, with what loading it cost in resident memory.
struct MatrixModel {
    model: exitwise::engine::Model,
    label: String,
    quantization: String,
}

#[derive(Debug, Serialize)]
struct MatrixRow {
    model: String,
    quantization: String,
    /// Resident memory added by loading the model, creating its session and the warm-up (MB).
    rss_added_mb: f64,
    policies: BTreeMap<&'static str, PolicySummary>,
}

#[derive(Debug, Serialize)]
struct ProductCheck {
    model: String,
    /// Wall-clock speed-up of this model's `full` over the reference's `full`.
    quantization_speedup: f64,
    /// Wall-clock speed-up of the reference's exit policy over its `full`.
    exit_speedup: f64,
    /// Their product: what the two savings would give if they multiplied.
    predicted: f64,
    /// Measured: this model's exit policy over the reference's `full`.
    measured: f64,
    /// The exit policy compared.
    policy: &'static str,
}

#[derive(Debug, Serialize)]
struct MatrixReport {
    documents: usize,
    runs: usize,
    budget: f64,
    data: String,
    machine: MachineFacts,
    peak_rss_mb: f64,
    rows: Vec<MatrixRow>,
    product_check: Vec<ProductCheck>,
}

/// Resident and peak resident memory of this process in MB (Linux; 0 elsewhere).
fn resident_memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kilobytes| kilobytes.parse::<f64>().ok())
            .map_or(0.0, |kilobytes| kilobytes / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `eval --models`: the models × policies matrix.
fn run_matrix(args: &EvalArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let runs = args.runs as usize;
    let pack = load_pack(args.adapters.as_ref())?;
    let manifest = &pack.manifest;
    let data = labelled_data(args, &pack)?;
    let mut kinds = chosen_kinds(args);
    if !kinds.contains(&PolicyKind::Full) {
        // Every speed-up of the matrix is against the reference's `full`.
        kinds.insert(0, PolicyKind::Full);
    }
    let configs: Vec<PolicyConfig> = kinds
        .iter()
        .map(|&kind| pack.operating_point(kind, args.budget))
        .collect::<Result<_, _>>()?;

    // Resident memory is measured around each model's load and, below, around its session's
    // creation and warm-up (which faults its compute buffers in): their sum is the row's cost.
    let mut loaded = Vec::new();
    let mut rss_added = Vec::new();
    for path in &args.models {
        let before = resident_memory_mb().0;
        let model = load_model(Some(path), global)?;
        for warning in pack.check_model(model.facts(), None, false)? {
            eprintln!("warning: {warning}");
        }
        let quantization = model.facts().quantization.clone().unwrap_or_default();
        loaded.push(MatrixModel {
            label: file_name(path),
            quantization,
            model,
        });
        rss_added.push(resident_memory_mb().0 - before);
    }
    // Tokenization comes from each file's vocabulary (quantizations of one model agree).
    let mut documents: Vec<(usize, Vec<PreparedDocument>, usize)> = Vec::new();
    for (index, document) in data.documents.iter().enumerate() {
        let class = manifest
            .labels
            .iter()
            .position(|label| *label == document.label)
            .context("a label outside the pack passed the label check")?;
        let prepared: Result<Vec<PreparedDocument>, _> = loaded
            .iter()
            .map(|entry| prepare_document(&entry.model, &document.text, manifest.token_limit))
            .collect();
        match prepared {
            Ok(prepared) => documents.push((index, prepared, class)),
            Err(error) => eprintln!("warning: document `{}` left out: {error}", document.id),
        }
    }
    anyhow::ensure!(
        !documents.is_empty(),
        "no document of `{}` has text to classify",
        args.data.display()
    );
    let mut classifiers = Vec::new();
    let mut threads = 0;
    for (which, entry) in loaded.iter().enumerate() {
        let before = resident_memory_mb().0;
        let (classifier, session_threads) = warmed_classifier(
            &entry.model,
            &pack,
            global,
            &configs,
            &documents[0].1[which],
        )?;
        threads = session_threads;
        classifiers.push(classifier);
        rss_added[which] += resident_memory_mb().0 - before;
    }
    let entries: Vec<(usize, usize)> = (0..loaded.len())
        .flat_map(|model| (0..kinds.len()).map(move |policy| (model, policy)))
        .collect();
    let results = interleaved_runs(
        runs,
        documents.len(),
        entries.len(),
        |which, position, run, results| {
            let (index, prepared, class) = &documents[position];
            let (model, policy) = entries[which];
            let classifier = &mut classifiers[model];
            classifier.set_config(configs[policy]);
            measure_one(
                classifier,
                &prepared[model],
                (position, *class, &data.documents[*index].id),
                run,
                results,
            )
        },
    )?;
    let (_, peak) = resident_memory_mb();

    let classes = manifest.labels.len();
    let at = |model: usize, kind: PolicyKind| -> Option<&[DocumentResult]> {
        let policy = kinds.iter().position(|&known| known == kind)?;
        let which = entries.iter().position(|&entry| entry == (model, policy))?;
        Some(results[which].as_slice())
    };
    let reference_full = at(0, PolicyKind::Full);
    let reference_layer = at(0, PolicyKind::Layer);
    let mut rows = Vec::new();
    for (model, entry) in loaded.iter().enumerate() {
        let mut policies = BTreeMap::new();
        for &kind in &kinds {
            if let Some(own) = at(model, kind) {
                policies.insert(
                    kind.name(),
                    summarise(own, classes, reference_full, reference_layer),
                );
            }
        }
        rows.push(MatrixRow {
            model: entry.label.clone(),
            quantization: entry.quantization.clone(),
            rss_added_mb: rss_added[model],
            policies,
        });
    }
    let wall = |row: &MatrixRow, kind: PolicyKind| {
        row.policies
            .get(kind.name())
            .and_then(|summary| summary.speedup_vs_full_wall)
    };
    let mut product_check = Vec::new();
    for &kind in kinds.iter().filter(|&&kind| kind != PolicyKind::Full) {
        for row in rows.iter().skip(1) {
            if let (Some(quantization), Some(exit), Some(measured)) = (
                wall(row, PolicyKind::Full),
                wall(&rows[0], kind),
                wall(row, kind),
            ) {
                product_check.push(ProductCheck {
                    model: row.model.clone(),
                    quantization_speedup: quantization,
                    exit_speedup: exit,
                    predicted: quantization * exit,
                    measured,
                    policy: kind.name(),
                });
            }
        }
    }
    let report = MatrixReport {
        documents: documents.len(),
        runs,
        budget: args.budget,
        data: args.data.display().to_string(),
        machine: MachineFacts {
            cpu: cpu_model(),
            logical_cpus: std::thread::available_parallelism().map_or(1, usize::from),
            threads,
            build_features: build_features(),
            exitwise_version: env!("CARGO_PKG_VERSION"),
            commit: env!("EXITWISE_BUILD_COMMIT"),
            model: args
                .models
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
            model_sha256: String::new(),
            model_quantization: String::new(),
            pack: manifest.name.clone(),
        },
        peak_rss_mb: peak,
        rows,
        product_check,
    };
    output::print(&render_matrix(&report, &kinds))?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the JSON report to `{}`", path.display()))?;
        eprintln!("report written to `{}`", path.display());
    }
    Ok(EXIT_OK)
}

fn render_matrix(report: &MatrixReport, kinds: &[PolicyKind]) -> String {
    let mut text = format!(
        "{} documents of `{}`, {} run(s), budget {}, {} threads, pack {}; cells: accuracy, documents/s (speed-up over the first row's full)\n",
        report.documents,
        report.data,
        report.runs,
        report.budget,
        report.machine.threads,
        report.machine.pack
    );
    let _ = write!(text, "{:<28} {:>8} {:>9}", "model", "quant", "+RSS MB");
    for kind in kinds {
        let _ = write!(text, " {:>26}", kind.name());
    }
    text.push('\n');
    for row in &report.rows {
        let _ = write!(
            text,
            "{:<28} {:>8} {:>9.0}",
            row.model, row.quantization, row.rss_added_mb
        );
        for kind in kinds {
            match row.policies.get(kind.name()) {
                Some(summary) => {
                    let _ = write!(
                        text,
                        " {:>26}",
                        format!(
                            "{:.4} {:>6.2}/s ({:.2}x)",
                            summary.accuracy,
                            summary.docs_per_s,
                            summary.speedup_vs_full_wall.unwrap_or(0.0)
                        )
                    );
                }
                None => {
                    let _ = write!(text, " {:>26}", "-");
                }
            }
        }
        text.push('\n');
    }
    let _ = writeln!(
        text,
        "peak resident memory of the process: {:.0} MB",
        report.peak_rss_mb
    );
    for check in &report.product_check {
        let _ = writeln!(
            text,
            "{} + {} against the first row's full: measured {:.2}x; quantization alone {:.2}x × {} alone {:.2}x = {:.2}x",
            check.model,
            check.policy,
            check.measured,
            check.quantization_speedup,
            check.policy,
            check.exit_speedup,
            check.predicted
        );
    }
    text
}
