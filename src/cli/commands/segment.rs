//! `exitwise segment`: shows how a document is read — its sentences and their tokens, with the
//! model's own tokenizer and the token limit — exactly as the classifier will feed it.

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use exitwise::text::{DEFAULT_TOKEN_LIMIT, DocumentError, prepare_document};

use crate::cli::resolve::load_model;
use crate::cli::{EXIT_FAILURES, EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise segment`.
#[derive(Debug, clap::Args)]
pub struct SegmentArgs {
    /// Document to read; `-` or nothing reads stdin
    #[arg(value_name = "FILE|-")]
    input: Option<PathBuf>,

    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Most tokens read from the document (document-start token included); the rest is cut
    #[arg(long, default_value_t = DEFAULT_TOKEN_LIMIT, value_name = "N")]
    token_limit: usize,

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
    sentences_read: usize,
    sentences_in_document: usize,
    tokens_read: usize,
    truncated: bool,
}

/// Runs `exitwise segment`.
pub fn run(args: &SegmentArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    // A document that cannot be read is a failed result (exit 1), like in `classify`; only
    // set-up problems (the model) are exit 2.
    let (name, bytes) = match read_input(args.input.as_ref()) {
        Ok(input) => input,
        Err(error) => {
            eprintln!("error: {error:#}");
            return Ok(EXIT_FAILURES);
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            eprintln!(
                "error: cannot read `{name}`: it is not UTF-8 text (invalid byte at offset {})",
                error.utf8_error().valid_up_to()
            );
            return Ok(EXIT_FAILURES);
        }
    };
    let model = load_model(args.model.as_ref(), global)?;
    let document = match prepare_document(&model, &text, args.token_limit) {
        Ok(document) => document,
        Err(error @ DocumentError::Empty) => {
            eprintln!("error: cannot read `{name}`: {error}");
            return Ok(EXIT_FAILURES);
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
    let summary = Summary {
        document: &name,
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
            "{} of {} sentences, {} tokens{}",
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
    Ok(EXIT_OK)
}

fn read_input(input: Option<&PathBuf>) -> anyhow::Result<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    match input {
        Some(path) if path.as_os_str() != "-" => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
            Ok((path.display().to_string(), bytes))
        }
        _ => {
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("cannot read stdin")?;
            Ok(("<stdin>".to_string(), bytes))
        }
    }
}
