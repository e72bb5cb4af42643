//! `exitwise quantize`: another quantization of a model file, through llama.cpp's quantizer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use exitwise::engine::{QuantizationType, QuantizeOptions, quantize};
use exitwise::gguf::read_gguf_info;

use crate::cli::resolve::resolve_model_path;
use crate::cli::{EXIT_OK, GlobalOptions, output};

/// Quantization types on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TypeArgument {
    /// 16-bit floats (from a quantized file: dequantized, same quality, full-precision speed)
    #[value(name = "F16")]
    F16,
    /// 8-bit blocks
    #[value(name = "Q8_0")]
    Q8_0,
    /// 4-bit k-quants, medium mix
    #[value(name = "Q4_K_M")]
    Q4KM,
    /// 4-bit blocks
    #[value(name = "Q4_0")]
    Q4_0,
    /// 3-bit k-quants, small mix
    #[value(name = "Q3_K_S")]
    Q3KS,
    /// 2-bit k-quants
    #[value(name = "Q2_K")]
    Q2K,
}

impl From<TypeArgument> for QuantizationType {
    fn from(argument: TypeArgument) -> Self {
        match argument {
            TypeArgument::F16 => QuantizationType::F16,
            TypeArgument::Q8_0 => QuantizationType::Q8_0,
            TypeArgument::Q4KM => QuantizationType::Q4KM,
            TypeArgument::Q4_0 => QuantizationType::Q4_0,
            TypeArgument::Q3KS => QuantizationType::Q3KS,
            TypeArgument::Q2K => QuantizationType::Q2K,
        }
    }
}

/// Arguments of `exitwise quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// The source GGUF file, or the name of a catalog model
    #[arg(long, value_name = "PATH|NAME")]
    model: PathBuf,

    /// The quantization type to write
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    kind: TypeArgument,

    /// The file to write (never the source; an existing file needs --force)
    #[arg(long, value_name = "OUT.gguf")]
    out: PathBuf,

    /// Accept a source that is already quantized: its tensors are dequantized first, so the
    /// result cannot be better than the source
    #[arg(long)]
    allow_requantize: bool,

    /// Replace an existing output file
    #[arg(long)]
    force: bool,
}

/// Whether a file's tensors are stored in float types only (F32, F16, BF16).
fn is_unquantized(path: &Path) -> anyhow::Result<(bool, String)> {
    let info = read_gguf_info(path)
        .with_context(|| format!("cannot read the model `{}`", path.display()))?;
    let unquantized = info
        .tensors
        .iter()
        .all(|tensor| matches!(tensor.ggml_type.name, "f32" | "f16" | "bf16"));
    let name = info.file_type_name().unwrap_or("unknown").to_string();
    Ok((unquantized, name))
}

/// Runs `exitwise quantize`.
pub fn run(args: &QuantizeArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let input = resolve_model_path(Some(&args.model), global)?;
    let kind = QuantizationType::from(args.kind);
    let same_file = match (input.canonicalize(), args.out.canonicalize()) {
        (Ok(input), Ok(output)) => input == output,
        _ => false,
    };
    anyhow::ensure!(
        !same_file,
        "cannot quantize `{}` onto itself: choose another --out",
        input.display()
    );
    anyhow::ensure!(
        args.force || !args.out.exists(),
        "cannot write `{}`: the file exists (--force replaces it)",
        args.out.display()
    );
    let (unquantized, source_type) = is_unquantized(&input)?;
    if !unquantized {
        anyhow::ensure!(
            args.allow_requantize,
            "cannot quantize `{}`: it is already quantized ({source_type}); --allow-requantize dequantizes it first, and the result cannot be better than the source",
            input.display()
        );
        eprintln!(
            "note: `{}` is already quantized ({source_type}): the {} file cannot be better than the source",
            input.display(),
            kind.name()
        );
    }
    // Write next to the destination and rename when done, so a failure or Ctrl-C never leaves
    // a half-written model under the final name.
    let directory = exitwise::durable::folder_of(&args.out);
    let partial = tempfile::Builder::new()
        .prefix(".exitwise-quantize-")
        .suffix(".gguf.partial")
        .tempfile_in(directory)
        .with_context(|| format!("cannot create a file in `{}`", directory.display()))?;
    let partial_path = partial.path().to_path_buf();

    let bar = output::spinner(&format!("quantizing to {}", kind.name()));
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            quantize(
                &input,
                &partial_path,
                kind,
                &QuantizeOptions {
                    threads: global.threads(),
                    allow_requantize: args.allow_requantize,
                },
            )
        });
        // The progress line: bytes written so far (llama.cpp reports no progress itself).
        while !worker.is_finished() {
            let written = std::fs::metadata(&partial_path).map_or(0, |metadata| metadata.len());
            bar.set_message(format!(
                "quantizing to {}: {:.1} MB written, {:.0} s",
                kind.name(),
                written as f64 / 1e6,
                started.elapsed().as_secs_f64()
            ));
            bar.tick();
            std::thread::sleep(Duration::from_millis(200));
        }
        worker.join()
    });
    bar.finish_and_clear();
    let outcome = outcome.map_err(|_| anyhow::anyhow!("the quantizer thread panicked"))?;
    if let Err(error) = outcome {
        // llama.cpp reports a failed write as a stream error ("basic_ios::clear"): say when the
        // destination's disk is full, which is the usual cause.
        drop(partial);
        let full = disk_is_full(directory).then(|| {
            format!(
                " (no space left on the disk holding `{}`)",
                directory.display()
            )
        });
        return Err(anyhow::Error::new(error).context(format!(
            "cannot quantize `{}` to {} as `{}`{}",
            input.display(),
            kind.name(),
            args.out.display(),
            full.unwrap_or_default()
        )));
    }
    // Synced, readable like any other output, renamed, its folder synced: a crash or power
    // loss leaves the previous file or the whole new one.
    exitwise::durable::persist(partial, &args.out)
        .with_context(|| format!("cannot write `{}`", args.out.display()))?;
    let size = std::fs::metadata(&args.out).map_or(0, |metadata| metadata.len());
    eprintln!(
        "wrote `{}` ({}, {:.1} MB) from `{}` ({source_type}) in {:.1} s",
        args.out.display(),
        kind.name(),
        size as f64 / 1e6,
        input.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(EXIT_OK)
}

/// Whether a small write into `folder` fails for lack of space.
fn disk_is_full(folder: &Path) -> bool {
    use std::io::Write as _;
    let Ok(mut probe) = tempfile::Builder::new()
        .prefix(".exitwise-space-")
        .tempfile_in(folder)
    else {
        return false;
    };
    probe
        .write_all(&[0u8; 64 * 1024])
        .and_then(|()| probe.as_file().sync_all())
        .is_err_and(|error| error.kind() == std::io::ErrorKind::StorageFull)
}
