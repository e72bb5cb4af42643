//! Command-line interface: one file per subcommand; this file holds the shared options, error
//! reporting and exit codes.

mod accuracy;
mod bench_engine;
mod calibrate;
mod classify;
mod completions;
mod eval;
mod features;
mod inspect;
mod models;
mod output;
mod plot;
mod quantize;
mod segment;
mod serve;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use exitwise::catalog::{Catalog, FileState, default_models_dir};
use exitwise::engine::{Model, ModelOptions};

/// Exit status: everything worked.
pub const EXIT_OK: u8 = 0;
/// Exit status: the command ran but some results are failures (e.g. a model failed
/// verification).
pub const EXIT_FAILURES: u8 = 1;
/// Exit status: usage or set-up error (bad arguments, unusable model file, missing model).
pub const EXIT_SETUP: u8 = 2;

/// Classify text with a GGUF language model, stopping early in two dimensions.
///
/// exitwise reads a document sentence by sentence and runs the model layer by layer inside each
/// sentence; small per-layer classifier heads decide when it is confident enough to stop.
#[derive(Debug, Parser)]
#[command(
    name = "exitwise",
    version,
    long_version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("EXITWISE_BUILD_COMMIT"), ")"),
    propagate_version = true,
    max_term_width = 100,
    after_help = "Exit status:\n  0  success\n  1  the command ran, but some results failed (e.g. `models verify` found a bad file)\n  2  usage or set-up error (bad arguments, missing or unusable model)\n\nEnvironment:\n  EXITWISE_MODELS_DIR    where models are stored (default: the source tree's `models/`)\n  EXITWISE_ADAPTERS_DIR  folder of named adapter packs (default: the source tree's `adapters/`)\n  EXITWISE_CACHE_DIR     the feature cache of train/calibrate/accuracy (default: ~/.cache/exitwise)\n  EXITWISE_LOG           log filter for stderr, e.g. `debug` or `llama.cpp=trace` (default: warn)\n  NO_COLOR               disables colour and progress bars"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    #[command(flatten)]
    global: GlobalOptions,
}

/// Options every subcommand understands.
#[derive(Debug, clap::Args)]
pub struct GlobalOptions {
    /// CPU threads for llama.cpp [default: all cores]
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,

    /// Layers to offload to the GPU (needs a build with `--features cuda`, `metal` or
    /// `vulkan`)
    ///
    /// Default: all layers on GPU builds, 0 on CPU builds.
    #[arg(long, global = true, value_name = "N")]
    gpu_layers: Option<u32>,

    /// Folder of fetched models
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "EXITWISE_MODELS_DIR",
        hide_env = true
    )]
    models_dir: Option<PathBuf>,

    /// More log output on stderr (-v: info, -vv: debug, -vvv: llama.cpp's own log)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Classify files, directories or stdin, stopping early in sentences and layers
    Classify(classify::ClassifyArgs),
    /// Show a model's facts: architecture, layers, width, parameters, quantization, sha256
    Inspect(inspect::InspectArgs),
    /// Measure what a layer exit saves: decode time when stopping after each layer
    BenchEngine(bench_engine::BenchEngineArgs),
    /// List, fetch and verify the models of the catalog
    Models(models::ModelsArgs),
    /// Show how a document is read: its sentences and their token counts
    Segment(segment::SegmentArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff) to stdout
    Man,
    /// Learn an adapter pack (a classifier head per layer) from labelled data
    Train(train::TrainArgs),
    /// Choose a pack's exit settings on dev data (part of `train`; rerun after changes)
    Calibrate(calibrate::CalibrateArgs),
    /// Measure every layer head's accuracy on a labelled file (whole documents and prefixes)
    Accuracy(accuracy::AccuracyArgs),
    /// Measure accuracy and wall-clock of the exit policies side by side on labelled data
    Eval(eval::EvalArgs),
    /// Serve classifications over HTTP (JSON), for systemd and small boxes
    Serve(serve::ServeArgs),
    /// Write another quantization of a model file (llama.cpp's quantizer)
    Quantize(quantize::QuantizeArgs),
}

/// Parses the command line, runs the command and turns its outcome into an exit status.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let outcome = match &cli.command {
        Command::Classify(args) => classify::run(args, &cli.global),
        Command::Completions(args) => completions::run_completions(args),
        Command::Man => completions::run_man(),
        Command::Inspect(args) => inspect::run(args, &cli.global),
        Command::BenchEngine(args) => bench_engine::run(args, &cli.global),
        Command::Models(args) => models::run(args, &cli.global),
        Command::Segment(args) => segment::run(args, &cli.global),
        Command::Train(args) => train::run(args, &cli.global),
        Command::Calibrate(args) => calibrate::run(args, &cli.global),
        Command::Eval(args) => eval::run(args, &cli.global),
        Command::Serve(args) => serve::run(args, &cli.global),
        Command::Quantize(args) => quantize::run(args, &cli.global),
        Command::Accuracy(args) => accuracy::run(args, &cli.global),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) if output::is_broken_pipe(&error) => ExitCode::from(EXIT_OK),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug,llama.cpp=info",
        _ => "trace",
    };
    let filter = std::env::var("EXITWISE_LOG").unwrap_or_else(|_| default.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(output::color_enabled())
        .without_time()
        .try_init();
}

impl GlobalOptions {
    /// The models folder in effect.
    pub fn models_dir(&self) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(default_models_dir)
    }

    /// llama.cpp model-loading options from the global flags.
    pub fn model_options(&self) -> ModelOptions {
        ModelOptions {
            gpu_layers: self.gpu_layers,
        }
    }

    /// Threads for llama.cpp.
    pub fn threads(&self) -> Option<usize> {
        self.threads
    }
}

/// Resolves `--model`: a path to a GGUF file, or the name of a catalog model in the models
/// folder; without it, the catalog's default model.
pub fn resolve_model_path(
    model: Option<&PathBuf>,
    global: &GlobalOptions,
) -> anyhow::Result<PathBuf> {
    let catalog = Catalog::embedded()?;
    let dir = global.models_dir();
    let entry = match model {
        Some(path) => {
            let as_name = path.to_str().and_then(|name| catalog.get(name).ok());
            match as_name {
                Some(entry) if !path.exists() => entry,
                _ => return Ok(path.clone()),
            }
        }
        None => catalog.default_model(),
    };
    let path = entry.path_in(&dir);
    match entry.file_state(&dir) {
        FileState::Present => Ok(path),
        FileState::Missing => anyhow::bail!(
            "the model `{}` is not in `{}`: fetch it with `exitwise models fetch {}` (or `make run` in the source tree), or pass `--model PATH`",
            entry.name,
            dir.display(),
            entry.name
        ),
        FileState::WrongSize(size) => anyhow::bail!(
            "the model file `{}` has {size} bytes instead of {}: fetch it again with `exitwise models fetch {}`",
            path.display(),
            entry.bytes,
            entry.name
        ),
    }
}

/// SHA-256 of a loaded model's file (pack fingerprints and feature-cache keys).
pub fn model_sha256(model: &Model) -> anyhow::Result<String> {
    exitwise::catalog::sha256_file(model.path(), &|_| {})
        .with_context(|| format!("cannot hash `{}`", model.path().display()))
}

/// Loads the model `--model` names (see [`resolve_model_path`]).
pub fn load_model(model: Option<&PathBuf>, global: &GlobalOptions) -> anyhow::Result<Model> {
    let path = resolve_model_path(model, global)?;
    Model::load(&path, &global.model_options())
        .with_context(|| format!("cannot load the model `{}`", path.display()))
}

/// Folder of adapter packs: `$EXITWISE_ADAPTERS_DIR`, else the source tree's `adapters/`.
pub fn adapters_dir() -> PathBuf {
    match std::env::var_os("EXITWISE_ADAPTERS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters"),
    }
}

/// `--text-field` and `--label-field` of the commands that read labelled data for a pack.
#[derive(Debug, clap::Args)]
pub struct LabelledFields {
    /// Field (column) holding the text
    #[arg(long, default_value = "text", value_name = "NAME")]
    text_field: String,

    /// Field (column) holding the label [default: the field the pack was trained on]
    #[arg(long, value_name = "NAME")]
    label_field: Option<String>,
}

impl LabelledFields {
    /// The field names; the label field defaults to the one `manifest`'s pack was trained on.
    pub fn names(&self, manifest: &exitwise::pack::PackManifest) -> exitwise::dataset::FieldNames {
        exitwise::dataset::FieldNames {
            text: self.text_field.clone(),
            label: self
                .label_field
                .clone()
                .unwrap_or_else(|| manifest.training.label_field.clone()),
            ..exitwise::dataset::FieldNames::default()
        }
    }
}

/// Resolves `--adapters`: a pack folder, or the name of a pack in the adapters folder (or the
/// pack compiled into the binary); without it, the compiled-in default pack.
pub fn load_pack(adapters: Option<&PathBuf>) -> anyhow::Result<exitwise::pack::AdapterPack> {
    use exitwise::pack::{AdapterPack, EMBEDDED_PACK};
    let embedded = || {
        AdapterPack::embedded().map(|pack| pack.context("cannot load the compiled-in default pack"))
    };
    let Some(given) = adapters else {
        return embedded().unwrap_or_else(|| {
            anyhow::bail!(
                "this build has no compiled-in default adapter pack: pass --adapters NAME|DIR"
            )
        });
    };
    if given.is_dir() {
        return AdapterPack::load_dir(given)
            .with_context(|| format!("cannot load the adapter pack `{}`", given.display()));
    }
    let name = given.to_string_lossy();
    let in_folder = adapters_dir().join(given);
    if given.components().count() == 1 && in_folder.is_dir() {
        return AdapterPack::load_dir(&in_folder)
            .with_context(|| format!("cannot load the adapter pack `{}`", in_folder.display()));
    }
    if EMBEDDED_PACK.is_some_and(|pack| pack.name == name)
        && let Some(pack) = embedded()
    {
        return pack;
    }
    let known: Vec<String> = std::fs::read_dir(adapters_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().join(exitwise::pack::MANIFEST_FILE).is_file())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    anyhow::bail!(
        "no adapter pack `{name}`: it is neither a folder nor a pack in `{}` (packs there: {})",
        adapters_dir().display(),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}
