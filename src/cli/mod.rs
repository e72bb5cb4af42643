//! Command-line interface: one file per subcommand in [`commands`], each parsing its arguments,
//! calling the library and printing; this file holds the command list, error reporting and exit
//! codes, and the helpers the commands share sit beside it: [`options`] (flags several commands
//! take), [`resolve`] (finding models and packs), [`output`] (stdout, stderr, progress bars),
//! [`tables`] (the per-layer and calibration tables), [`feature_source`] (the feature cache
//! behind a progress bar) and [`plot`] (`eval --plot`).

mod commands;
mod feature_source;
mod options;
mod output;
mod plot;
mod resolve;
mod tables;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{
    accuracy, bench_engine, calibrate, classify, completions, eval, inspect, models, quantize,
    segment, serve, train,
};
pub use options::GlobalOptions;

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
    long_version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("EXITWISE_BUILD_COMMIT"), ")\nllama.cpp back ends: ", env!("EXITWISE_BUILD_KIND"), "\n(`exitwise inspect` names the CPU variant and GPU devices in use)"),
    propagate_version = true,
    max_term_width = 100,
    after_help = "Exit status:\n  0  success\n  1  the command ran, but some results failed (e.g. `models verify` found a bad file)\n  2  usage or set-up error (bad arguments, missing or unusable model)\n\nEnvironment:\n  EXITWISE_MODELS_DIR    the only folder of models searched (default: the search path `exitwise models list` shows)\n  EXITWISE_ADAPTERS_DIR  folder of named adapter packs (default: the search path of `exitwise models list`)\n  EXITWISE_CACHE_DIR     the feature cache of train/calibrate/accuracy (default: ~/.cache/exitwise)\n  EXITWISE_BACKEND_DIR   where a portable build loads llama.cpp's back-end libraries (default: ../lib/exitwise beside the binary)\n  EXITWISE_LOG           log filter for stderr, e.g. `debug` or `llama.cpp=trace` (default: warn)\n  NO_COLOR               disables colour and progress bars"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    #[command(flatten)]
    global: GlobalOptions,
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
    /// Read one PDF, DOCX or ODT from stdin under memory and time limits and answer in JSON on
    /// stdout: the child process `classify`, `segment` and `serve` start for each such document
    #[command(hide = true)]
    ReadContainer(ReadContainerArgs),
}

/// Arguments of the hidden `read-container`, as the parent process appends them.
#[derive(Debug, clap::Args)]
struct ReadContainerArgs {
    /// FORMAT TEXT_LIMIT MEMORY_BYTES SECONDS
    #[arg(num_args = 4)]
    arguments: Vec<String>,
}

/// Parses the command line, runs the command and turns its outcome into an exit status.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbosity());
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
        Command::ReadContainer(args) => Ok(exitwise::formats::isolation::run_child(
            &args.arguments,
            std::io::stdin().lock(),
            std::io::stdout().lock(),
        )),
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
    // html5ever warns of every HTML quirk it meets in a page (foster parenting, …): noise in
    // a tool that reads other people's pages; `EXITWISE_LOG` still shows it.
    let default = match verbose {
        0 => "warn,html5ever=error",
        1 => "info,html5ever=error",
        2 => "debug,llama.cpp=info,html5ever=warn",
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
