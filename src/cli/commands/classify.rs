//! `exitwise classify`: classifies files, directories and streams with two-dimensional early
//! exit, one result per document, written as soon as it is known.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use exitwise::classifier::batch::{RecordFile, Resumed, Shard};
use exitwise::classifier::parallel::{PoolOptions, Submitter, classify_in_parallel};
use exitwise::classifier::{Classification, Classifier, ResultRecord};
use exitwise::dataset::FieldNames;
use exitwise::engine::{SessionOptions, SessionPlan, usable_cpus};
use exitwise::exit::Budget;
use exitwise::formats::{Format as ReadFormat, TextEncoding};
use exitwise::pack::AdapterPack;
use exitwise::text::input::{InputDocument, ReadMode, Source, expand_inputs, read_source};
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

    /// Documents classified at once, each by its own session over the one loaded model
    /// [default: one per CPU this process may use, at most one per document]
    ///
    /// Each session has its own KV cache and threads; --threads is split among them (without
    /// it, each takes its share of what other processes leave free). One document at a time
    /// with every thread answers a single document soonest; several at a time keep more cores
    /// busy (docs/results.md, "Scaling"). Records keep the input order unless --unordered.
    #[arg(short = 'j', long, value_name = "N")]
    jobs: Option<usize>,

    /// Write each record as soon as its document is done, not in input order
    #[arg(long)]
    unordered: bool,

    /// Write the records to FILE (JSON Lines unless --format says otherwise), one line per
    /// document as soon as it is done; a FILE that already holds records is refused unless
    /// --resume
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Continue the --output FILE of an earlier run: documents whose id is already in it are
    /// skipped (error records included), and a last line cut short by a kill is removed first
    ///
    /// A killed or requeued job rerun with the same arguments and --resume ends with every
    /// document's record exactly once. Ids must be unique in the inputs, as they are for
    /// files (their paths as given), lines (`FILE:N`) and JSON Lines with unique --id-field.
    #[arg(long, requires = "output")]
    resume: bool,

    /// Classify only shard K of N (K from 0): the documents whose id hashes to K
    ///
    /// The hash is the first 8 bytes of the id's SHA-256 modulo N, stable across runs and
    /// machines: N processes given 0/N … N-1/N over the same inputs (with the same paths)
    /// classify every document exactly once, and `cat` merges their outputs. For Slurm job
    /// arrays and Kubernetes Indexed Jobs (deploy/).
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,

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

/// Where records go.
enum Sink {
    /// Standard output, flushed after each record.
    Stdout,
    /// `--output FILE`, one write per record.
    File(RecordFile),
}

impl Sink {
    fn write(&mut self, text: &str) -> anyhow::Result<()> {
        match self {
            Sink::Stdout => output::print(text)?,
            Sink::File(file) => file.write_line(text)?,
        }
        Ok(())
    }
}

/// Writes records in the chosen format, flushing each one.
struct Printer {
    format: Format,
    header_written: bool,
    sink: Sink,
}

impl Printer {
    fn print(&mut self, text: &str) -> anyhow::Result<()> {
        self.sink.write(text)
    }

    fn header(&mut self) -> anyhow::Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        match self.format {
            Format::Jsonl => {}
            Format::Text => self.print(&format!(
                "{:<32} {:<6} {:<12} {:>6} {:>9} {:>7} {:>6} {:>8}\n",
                "DOCUMENT", "FORMAT", "LABEL", "CONF", "SENTENCE", "LAYER", "COST", "MS"
            ))?,
            Format::Tsv => self.print(
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
        self.print(&line)
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
        self.print(&line)
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
    let format = match (args.format, &args.output) {
        (Some(format), _) => format,
        (None, Some(_)) => Format::Jsonl,
        (None, None) if std::io::stdout().is_terminal() => Format::Text,
        (None, None) => Format::Jsonl,
    };
    if args.resume && format != Format::Jsonl {
        anyhow::bail!("--resume reads the ids back from JSON Lines records: use --format jsonl");
    }
    let (sink, resumed) = match &args.output {
        Some(path) => {
            let (file, resumed) = RecordFile::open(path, args.resume)?;
            if args.resume {
                eprintln!(
                    "resuming `{}`: {} records kept{}",
                    path.display(),
                    resumed.ids.len(),
                    if resumed.cut_bytes > 0 {
                        format!(
                            ", a partial last line of {} bytes removed",
                            resumed.cut_bytes
                        )
                    } else {
                        String::new()
                    }
                );
            }
            (Sink::File(file), resumed)
        }
        None => (Sink::Stdout, Resumed::default()),
    };
    let mut printer = Printer {
        format,
        header_written: false,
        sink,
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
    // A known number of documents caps the sessions: one file gets every thread.
    let documents_known = (mode == ReadMode::Whole
        && sources
            .iter()
            .all(|source| !matches!(source, Source::Stdin)))
    .then_some(sources.len());
    let plan = SessionPlan::choose(args.jobs, global.threads(), usable_cpus(), documents_known);
    tracing::info!(
        "{} session(s) of {} thread(s)",
        plan.sessions,
        plan.threads_per_session
            .map_or_else(|| "governed".to_string(), |threads| threads.to_string())
    );
    let pool = PoolOptions {
        plan,
        session: SessionOptions {
            context_tokens: token_limit,
            threads: None,
            poll: None,
            sessions_in_process: plan.sessions,
            tap: true,
        },
        ordered: !args.unordered,
    };
    let bar = if sources.len() > 1 {
        output::documents_bar(sources.len() as u64, "classify")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let (mut classified, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let (mut computed, mut full) = (0u64, 0u64);
    // Text is kept up to this many bytes, in every mode: far more than the token limit can
    // use, and a bound on memory for endless streams and endless lines.
    let read_options = read_options(
        args.input_format,
        args.encoding,
        exitwise::text::byte_limit(token_limit),
    )?;
    let produce = |submitter: &mut Submitter<InputDocument>| -> anyhow::Result<()> {
        for source in &sources {
            read_source(source, mode, &fields, &read_options, &mut |item| {
                if args.shard.is_some_and(|shard| !shard.contains(&item.id)) {
                    return Ok(());
                }
                if resumed.ids.contains(&item.id) {
                    skipped += 1;
                    return Ok(());
                }
                submitter.submit(item)
            })?;
            bar.inc(1);
        }
        Ok(())
    };
    let work = |classifier: &mut Classifier<'_, '_>, item: InputDocument| {
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
        Answered {
            id: item.id,
            format: item.format,
            encoding: item.encoding,
            outcome,
            milliseconds: (item.reading + document_started.elapsed()).as_secs_f64() * 1e3,
        }
    };
    let deliver = |answer: Answered| -> anyhow::Result<()> {
        match answer.outcome {
            Ok(result) => {
                classified += 1;
                computed += result.token_layers;
                full += result.full_token_layers;
                let read_as = ReadAs {
                    format: answer.format.unwrap_or(ReadFormat::Text),
                    encoding: answer.encoding,
                };
                printer.result(&pack, &answer.id, &read_as, &result, answer.milliseconds)
            }
            Err(reason) => {
                failed += 1;
                bar.suspend(|| eprintln!("error: cannot classify `{}`: {reason}", answer.id));
                printer.error(&answer.id, answer.format, &reason)
            }
        }
    };
    classify_in_parallel(&model, &pack, config, &pool, produce, work, deliver)?;
    bar.finish_and_clear();
    if let Sink::File(file) = &mut printer.sink {
        file.sync()?;
    }
    let mut summary = format!(
        "{classified} documents classified{}{} in {:.1} s",
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        },
        if skipped > 0 {
            format!(", {skipped} already in the output")
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

/// A document's answer, carried from its session's thread to the output.
struct Answered {
    id: String,
    format: Option<ReadFormat>,
    encoding: Option<&'static str>,
    outcome: Result<Classification, String>,
    milliseconds: f64,
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
