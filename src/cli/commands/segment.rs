//! `exitwise segment`: shows how a document is read — the reader its content called for, the
//! text extracted, and its sentences and their tokens, with the model's own tokenizer and the
//! token limit — exactly as the classifier will feed it.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use exitwise::dataset::FieldNames;
use exitwise::engine::Model;
use exitwise::formats::TextEncoding;
use exitwise::text::input::{InputDocument, ReadMode, Source, read_source};
use exitwise::text::{DEFAULT_TOKEN_LIMIT, DocumentError, byte_limit, prepare_document};

use crate::cli::options::{InputFormat, parse_encoding, read_options};
use crate::cli::resolve::load_model;
use crate::cli::{EXIT_FAILURES, EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise segment`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 the document was read; 1 it could not be read (the reason is on stderr); 2 usage or set-up error."
)]
pub struct SegmentArgs {
    /// Document to read (a mailbox: each of its messages); `-` or nothing reads stdin
    #[arg(value_name = "FILE|-")]
    input: Option<PathBuf>,

    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Most tokens read from the document (document-start token included); the rest is cut
    #[arg(long, default_value_t = DEFAULT_TOKEN_LIMIT, value_name = "N")]
    token_limit: usize,

    /// Reader of the document [default: auto, recognised by content, then extension]
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    input_format: InputFormat,

    /// Encoding of plain text and pages [default: detected; see `classify --help`]
    #[arg(long, value_name = "NAME", value_parser = parse_encoding)]
    encoding: Option<TextEncoding>,

    /// Print only the extracted text, as the model reads it (no model is loaded)
    #[arg(long, conflicts_with = "json")]
    text: bool,

    /// Print JSON Lines (one object per sentence, then a summary object) instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct SentenceLine<'a> {
    sentence: usize,
    start: usize,
    end: usize,
    tokens: usize,
    text: &'a str,
}

#[derive(Debug, Serialize)]
struct Summary<'a> {
    document: &'a str,
    format: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'a str>,
    sentences_read: usize,
    sentences_in_document: usize,
    tokens_read: usize,
    truncated: bool,
}

/// Runs `exitwise segment`.
pub fn run(args: &SegmentArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let source = match &args.input {
        Some(path) if path.as_os_str() != "-" => Source::File(path.clone()),
        _ => Source::Stdin,
    };
    let options = read_options(
        args.input_format,
        args.encoding,
        byte_limit(args.token_limit),
    )?;
    // The model is loaded on the first document that reads: a document that cannot be read
    // is a failed result (exit 1), like in `classify`, whatever the model.
    let mut model: Option<Model> = None;
    let mut failed = false;
    read_source(
        &source,
        ReadMode::Whole,
        &FieldNames::default(),
        &options,
        &mut |document| -> anyhow::Result<()> {
            let text = match &document.text {
                Ok(text) => text,
                Err(reason) => {
                    failed = true;
                    eprintln!("error: cannot read `{}`: {reason}", document.id);
                    return Ok(());
                }
            };
            if args.text {
                return Ok(output::print(&format!("{}\n", text.trim_end()))?);
            }
            let model = match &mut model {
                Some(model) => model,
                None => model.insert(load_model(args.model.as_ref(), global)?),
            };
            if !print_document(args, model, &document, text)? {
                failed = true;
            }
            Ok(())
        },
    )?;
    Ok(if failed { EXIT_FAILURES } else { EXIT_OK })
}

/// Prints one document's sentences and summary; `false` when it has none.
fn print_document(
    args: &SegmentArgs,
    model: &Model,
    input: &InputDocument,
    text: &str,
) -> anyhow::Result<bool> {
    let name = &input.id;
    let document = match prepare_document(model, text, args.token_limit) {
        Ok(document) => document,
        Err(error @ DocumentError::Empty) => {
            eprintln!("error: cannot read `{name}`: {error}");
            return Ok(false);
        }
        Err(error) => return Err(error).with_context(|| format!("cannot prepare `{name}`")),
    };
    let mut out = String::new();
    for (index, sentence) in document.sentences.iter().enumerate() {
        let content = &text[sentence.span.clone()];
        if args.json {
            let line = SentenceLine {
                sentence: index + 1,
                start: sentence.span.start,
                end: sentence.span.end,
                tokens: sentence.tokens.len(),
                text: content,
            };
            let _ = writeln!(out, "{}", serde_json::to_string(&line)?);
        } else {
            let _ = writeln!(
                out,
                "{:>4} {:>5}  {}",
                index + 1,
                sentence.tokens.len(),
                content.escape_debug()
            );
        }
    }
    let format = input.format.map_or("text", |format| format.name());
    let summary = Summary {
        document: name,
        format,
        encoding: input.encoding,
        sentences_read: document.sentences.len(),
        sentences_in_document: document.sentences_in_document,
        tokens_read: document.token_count(),
        truncated: document.truncated,
    };
    if args.json {
        let _ = writeln!(out, "{}", serde_json::to_string(&summary)?);
    } else {
        let _ = writeln!(
            out,
            "{}: read as {format}{}; {} of {} sentences, {} tokens{}",
            summary.document,
            summary
                .encoding
                .map_or_else(String::new, |encoding| format!(" ({encoding})")),
            summary.sentences_read,
            summary.sentences_in_document,
            summary.tokens_read,
            if summary.truncated {
                format!(", truncated at the {}-token limit", args.token_limit)
            } else {
                String::new()
            }
        );
    }
    output::print(&out)?;
    Ok(true)
}
