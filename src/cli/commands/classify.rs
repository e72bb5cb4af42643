//! `exitwise classify`: classifies files, directories and streams with two-dimensional early
//! exit, one result per document, written as soon as it is known.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use exitwise::classifier::{Classification, Classifier, ResultRecord};
use exitwise::dataset::FieldNames;
use exitwise::engine::{Session, SessionOptions};
use exitwise::exit::Budget;
use exitwise::formats::{Format as ReadFormat, TextEncoding};
use exitwise::pack::AdapterPack;
use exitwise::text::input::{ReadMode, expand_inputs, read_source};
use exitwise::text::{DocumentError, prepare_document};

use crate::cli::options::{InputFormat, PolicyArgument, parse_encoding, read_options};
use crate::cli::resolve::{check_token_limit, load_model, load_pack, model_sha256};
use crate::cli::{EXIT_FAILURES, EXIT_OK, GlobalOptions, output};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table for people
    Text,
    /// One JSON object per document
    Jsonl,
    /// Tab-separated values with a header row
    Tsv,
}

/// Arguments of `exitwise classify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 every document classified; 1 some documents failed (their error records are in the output and on stderr, the others are classified); 2 usage or set-up error."
)]
pub struct ClassifyArgs {
    /// Documents: files (each one document; an mbox mailbox one per message), directories
    /// (their files; see --recursive; a Maildir its messages) or `-` for stdin [default: stdin]
    #[arg(value_name = "FILE|DIR|-")]
    inputs: Vec<PathBuf>,

    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Adapter pack: a folder, or the name of a pack in `adapters/` [default: the compiled-in
    /// pack, gemma3-270m-imdb]
    #[arg(long, value_name = "NAME|DIR")]
    adapters: Option<PathBuf>,

    /// Exit policy
    #[arg(long, value_enum, default_value_t = PolicyArgument::TwoDimensional)]
    policy: PolicyArgument,

    /// Accuracy budget: the pack's setting calibrated to lose at most this many points of
    /// accuracy against `full` (calibrated: 0, 0.5, 1, 2, 4)
    ///
    /// Packs calibrated by fixed-sequence testing (`exitwise calibrate`) promise that the budget
    /// holds on new documents like their calibration data with probability 1 − δ (δ is in the
    /// pack, 0.1 by default); a budget nothing could be certified for runs `full`'s setting,
    /// with a warning. Older packs chose it by point estimates on dev, with no such promise.
    #[arg(long, default_value = "1", value_name = "POINTS")]
    budget: Budget,

    /// Output format [default: text on a terminal, jsonl otherwise]
    #[arg(long, value_enum)]
    format: Option<Format>,

    /// Every non-empty line of each input is a document
    #[arg(long, conflicts_with = "jsonl")]
    lines: bool,

    /// Each input is JSON Lines: one document per line, its text in --text-field
    #[arg(long)]
    jsonl: bool,

    /// With --jsonl: the field holding the text
    #[arg(long, default_value = "text", value_name = "NAME")]
    text_field: String,

    /// With --jsonl: the field holding the document id [default ids: line numbers]
    #[arg(long, default_value = "id", value_name = "NAME")]
    id_field: String,

    /// Walk directories recursively (otherwise only the files directly inside; a Maildir's
    /// `cur` and `new` are always read)
    #[arg(short, long)]
    recursive: bool,

    /// Reader of files and stdin [default: auto]
    ///
    /// `auto` recognises each document by its content (PDF, DOCX and ODT by their magic bytes,
    /// HTML and mail by sniffing, an mbox mailbox by its `From ` lines), then by its
    /// extension; any other binary file is an error record. A mail gives its subject and text
    /// parts (the HTML part when there is no plain one), an mbox one record per message
    /// (`FILE#N`), a page its title and main content, a PDF its text layer, DOCX and ODT
    /// their paragraphs. Records name the reader used (`format`).
    #[arg(long, value_enum, default_value_t = InputFormat::Auto, conflicts_with_all = ["lines", "jsonl"])]
    input_format: InputFormat,

    /// Encoding of plain text, pages and --lines input [default: detected]
    ///
    /// Without it: a byte-order mark decides (UTF-8, UTF-16, UTF-32), else UTF-8 if the
    /// bytes are valid UTF-8, else the legacy encoding detected (windows-1252, Shift_JIS, …)
    /// when its decoding reads as text; otherwise the document is an error record. A page's
    /// `<meta charset>` is honoured. Mail carries its own charsets. WHATWG labels (latin1,
    /// windows-1251, shift_jis, utf-16le, …) and utf-32le/utf-32be.
    #[arg(long, value_name = "NAME", value_parser = parse_encoding, conflicts_with = "jsonl")]
    encoding: Option<TextEncoding>,

    /// Most tokens read per document [default: the pack's]
    ///
    /// Up to the model's trained context (`exitwise inspect`; 32768 for gemma3-270m): long PDFs
    /// and mail threads are read further, and `2d` still stops where it is confident. The KV
    /// cache grows with the limit (gemma3-270m: 96 MiB more at 32768 tokens); the pack's
    /// settings were calibrated on documents cut at its own limit.
    #[arg(long, value_name = "N")]
    token_limit: Option<usize>,

    /// Refuse a pack trained on another model file (by default only another architecture or
    /// width is refused, another quantization is a warning)
    #[arg(long)]
    strict: bool,
}

#[derive(Serialize)]
struct ErrorRecord<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'a str>,
    error: &'a str,
}

/// How a document was read, for its record.
struct ReadAs<'a> {
    format: ReadFormat,
    encoding: Option<&'a str>,
}

/// Writes records in the chosen format, flushing each one.
struct Printer {
    format: Format,
    header_written: bool,
}

impl Printer {
    fn header(&mut self) -> anyhow::Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        match self.format {
            Format::Jsonl => {}
            Format::Text => output::print(&format!(
                "{:<32} {:<6} {:<12} {:>6} {:>9} {:>7} {:>6} {:>8}\n",
                "DOCUMENT", "FORMAT", "LABEL", "CONF", "SENTENCE", "LAYER", "COST", "MS"
            ))?,
            Format::Tsv => output::print(
                "id\tlabel\tconfidence\tsentence\tsentences\tlayer\tlayers\ttokens_read\ttokens_total\ttruncated\ttoken_layers\tfull_token_layers\tms\terror\tformat\n",
            )?,
        }
        Ok(())
    }

    fn result(
        &mut self,
        pack: &AdapterPack,
        id: &str,
        read_as: &ReadAs<'_>,
        result: &Classification,
        milliseconds: f64,
    ) -> anyhow::Result<()> {
        self.header()?;
        let labels = &pack.manifest.labels;
        let label = labels[result.class].as_str();
        let confidence = result.probabilities[result.class];
        let line = match self.format {
            Format::Jsonl => {
                serde_json::to_string(&ResultRecord::new(
                    id,
                    read_as.format,
                    read_as.encoding,
                    labels,
                    result,
                    milliseconds,
                ))? + "\n"
            }
            Format::Text => format!(
                "{:<32} {:<6} {:<12} {:>6.3} {:>9} {:>7} {:>5.1}% {:>8.1}\n",
                id,
                read_as.format.name(),
                label,
                confidence,
                format!("{}/{}", result.exit.sentences_read(), result.exit.sentences),
                format!("{}/{}", result.exit.layer_number(), result.exit.layers),
                cost_share(result) * 100.0,
                milliseconds
            ),
            Format::Tsv => format!(
                "{}\t{label}\t{confidence:.6}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{milliseconds:.1}\t\t{}\n",
                tsv_field(id),
                result.exit.sentences_read(),
                result.exit.sentences,
                result.exit.layer_number(),
                result.exit.layers,
                result.tokens_read,
                result.tokens_total,
                result.truncated,
                result.token_layers,
                result.full_token_layers,
                read_as.format.name()
            ),
        };
        output::print(&line)?;
        Ok(())
    }

    fn error(&mut self, id: &str, format: Option<ReadFormat>, reason: &str) -> anyhow::Result<()> {
        self.header()?;
        let format = format.map(ReadFormat::name);
        let line = match self.format {
            Format::Jsonl => {
                serde_json::to_string(&ErrorRecord {
                    id,
                    format,
                    error: reason,
                })? + "\n"
            }
            Format::Text => format!("{id:<32} {:<6} error: {reason}\n", format.unwrap_or("-")),
            Format::Tsv => format!(
                "{}\t\t\t\t\t\t\t\t\t\t\t\t\t{}\t{}\n",
                tsv_field(id),
                tsv_field(reason),
                format.unwrap_or("")
            ),
        };
        output::print(&line)?;
        Ok(())
    }
}

fn tsv_field(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

fn cost_share(result: &Classification) -> f64 {
    result.token_layers as f64 / result.full_token_layers.max(1) as f64
}

/// Runs `exitwise classify`.
pub fn run(args: &ClassifyArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let pack = load_pack(args.adapters.as_ref())?;
    let config = pack.operating_point(args.policy.into(), args.budget)?;
    warn_if_fallback(&pack, args.policy.into(), args.budget, &config);
    let model = load_model(args.model.as_ref(), global)?;
    // Hashing the model costs a read of the whole file: only --strict compares it.
    let model_sha256 = if args.strict {
        Some(model_sha256(&model)?)
    } else {
        None
    };
    for warning in pack.check_model(model.facts(), model_sha256.as_deref(), args.strict)? {
        eprintln!("warning: {warning}");
    }
    let token_limit = args.token_limit.unwrap_or(pack.manifest.token_limit);
    check_token_limit(&model, token_limit)?;
    let session = Session::new(
        &model,
        &SessionOptions {
            context_tokens: token_limit,
            threads: global.threads(),
            poll: None,
            tap: true,
        },
    )
    .context("cannot create a session")?;
    let mut classifier = Classifier::new(session, &pack, config);
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Text
    } else {
        Format::Jsonl
    });
    let mut printer = Printer {
        format,
        header_written: false,
    };
    let mode = if args.jsonl {
        ReadMode::JsonLines
    } else if args.lines {
        ReadMode::Lines
    } else {
        ReadMode::Whole
    };
    let fields = FieldNames {
        text: args.text_field.clone(),
        id: args.id_field.clone(),
        ..FieldNames::default()
    };

    let inputs = if args.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.inputs.clone()
    };
    let sources = expand_inputs(&inputs, args.recursive);
    let bar = if sources.len() > 1 {
        output::documents_bar(sources.len() as u64, "classify")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let (mut classified, mut failed) = (0usize, 0usize);
    let (mut computed, mut full) = (0u64, 0u64);
    // Text is kept up to this many bytes, in every mode: far more than the token limit can
    // use, and a bound on memory for endless streams and endless lines.
    let read_options = read_options(
        args.input_format,
        args.encoding,
        exitwise::text::byte_limit(token_limit),
    )?;
    for source in &sources {
        read_source(source, mode, &fields, &read_options, &mut |item| {
            let document_started = Instant::now();
            let outcome =
                item.text
                    .and_then(|text| match prepare_document(&model, &text, token_limit) {
                        Ok(document) => classifier
                            .classify(&document)
                            .map_err(|error| error.to_string()),
                        Err(DocumentError::Empty) => Err("the document is empty".to_string()),
                        Err(error) => Err(error.to_string()),
                    });
            match outcome {
                Ok(result) => {
                    classified += 1;
                    computed += result.token_layers;
                    full += result.full_token_layers;
                    let milliseconds =
                        (item.reading + document_started.elapsed()).as_secs_f64() * 1e3;
                    let read_as = ReadAs {
                        format: item.format.unwrap_or(ReadFormat::Text),
                        encoding: item.encoding,
                    };
                    printer.result(&pack, &item.id, &read_as, &result, milliseconds)
                }
                Err(reason) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("error: cannot classify `{}`: {reason}", item.id));
                    printer.error(&item.id, item.format, &reason)
                }
            }
        })?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut summary = format!(
        "{classified} documents classified{} in {:.1} s",
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64()
    );
    if full > 0 {
        let _ = write!(
            summary,
            "; computed {:.1}% of the full model over the full documents (policy {}, budget {})",
            computed as f64 / full as f64 * 100.0,
            config.kind.name(),
            args.budget
        );
    }
    eprintln!("{summary}");
    Ok(if failed > 0 { EXIT_FAILURES } else { EXIT_OK })
}

/// Says when `policy` at `budget` has no certified setting in the pack, so that `full`'s
/// setting runs instead (the records then say `full`).
pub fn warn_if_fallback(
    pack: &AdapterPack,
    policy: exitwise::exit::PolicyKind,
    budget: Budget,
    config: &exitwise::exit::PolicyConfig,
) {
    if config.kind != policy {
        eprintln!(
            "warning: pack `{}` has no setting of policy `{}` certified for budget {budget}: classifying with `{}`",
            pack.manifest.name,
            policy.name(),
            config.kind.name()
        );
    }
}
