//! Documents from where users keep them: files (each one document), folders of files, stdin,
//! one document per line (`--lines`) or JSON Lines records (`--jsonl`), handed on one by one as
//! soon as each is complete. Bytes that are not text (NUL bytes, invalid UTF-8) become a
//! document whose text is the reason, so one bad input never stops the others.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::dataset::{FieldNames, value_text};

/// How a source is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// The whole source is one document.
    Whole,
    /// Every non-empty line is a document.
    Lines,
    /// Every non-empty line is a JSON object with the text in a field.
    JsonLines,
}

/// A document, or the reason it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDocument {
    /// The path, `path:line`, `line N` (stdin) or the record's id field.
    pub id: String,
    /// The text, or why there is none.
    pub text: Result<String, String>,
}

/// What one input argument stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input (`-`).
    Stdin,
    /// A file.
    File(PathBuf),
    /// A path that could not be listed, with the reason.
    Unreadable(PathBuf, String),
}

/// Expands directories into their files (sorted), keeping the order of the arguments.
pub fn expand_inputs(inputs: &[PathBuf], recursive: bool) -> Vec<Source> {
    let mut sources = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            sources.push(Source::Stdin);
        } else if input.is_dir() {
            walk(input, recursive, &mut sources);
        } else {
            sources.push(Source::File(input.clone()));
        }
    }
    sources
}

fn walk(dir: &Path, recursive: bool, sources: &mut Vec<Source>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            sources.push(Source::Unreadable(
                dir.to_path_buf(),
                format!("cannot list the folder: {error}"),
            ));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, sources);
            }
        } else {
            sources.push(Source::File(path));
        }
    }
}

/// Reads one source in `mode`, handing each document to `handle` as soon as it is complete.
/// A whole document or a line is read up to `byte_limit` bytes (cut on a character boundary)
/// and the rest is drained unread; a JSON Lines record longer than four times that is refused,
/// so memory stays bounded in every mode. Only `handle`'s errors end the reading; a source that
/// cannot be read becomes a document whose text is the reason.
pub fn read_source<E>(
    source: &Source,
    mode: ReadMode,
    fields: &FieldNames,
    byte_limit: usize,
    handle: &mut dyn FnMut(InputDocument) -> Result<(), E>,
) -> Result<(), E> {
    let (name, reader): (String, Box<dyn Read>) = match source {
        Source::Stdin => ("<stdin>".to_string(), Box::new(std::io::stdin().lock())),
        Source::Unreadable(path, reason) => {
            return handle(InputDocument {
                id: path.display().to_string(),
                text: Err(reason.clone()),
            });
        }
        Source::File(path) => match std::fs::File::open(path) {
            Ok(file) => (path.display().to_string(), Box::new(file)),
            Err(error) => {
                return handle(InputDocument {
                    id: path.display().to_string(),
                    text: Err(format!("cannot open the file: {error}")),
                });
            }
        },
    };
    let mut reader = BufReader::new(reader);
    match mode {
        ReadMode::Whole => {
            let mut bytes = Vec::new();
            let text = (&mut reader)
                .take(byte_limit as u64)
                .read_to_end(&mut bytes)
                .map_err(|error| format!("cannot read: {error}"))
                .and_then(|_| {
                    // Drain the rest so a writer on the other end of a pipe is not cut off; the
                    // token limit would not have read it anyway.
                    let drained = std::io::copy(&mut reader, &mut std::io::sink()).unwrap_or(0);
                    if drained > 0 {
                        trim_partial_character(&mut bytes);
                    }
                    decode_text(bytes)
                });
            handle(InputDocument { id: name, text })
        }
        ReadMode::Lines | ReadMode::JsonLines => {
            let stdin = matches!(source, Source::Stdin);
            let mut line = Vec::new();
            let mut number = 0usize;
            loop {
                line.clear();
                let limit = match mode {
                    // JSON escapes a text into more bytes than it has.
                    ReadMode::JsonLines => byte_limit.saturating_mul(4),
                    _ => byte_limit,
                };
                let (read, cut) = match read_line_bounded(&mut reader, &mut line, limit) {
                    Ok(read) => read,
                    Err(error) => {
                        return handle(InputDocument {
                            id: name.clone(),
                            text: Err(format!("cannot read: {error}")),
                        });
                    }
                };
                if read == 0 {
                    return Ok(());
                }
                number += 1;
                let default_id = if stdin {
                    format!("line {number}")
                } else {
                    format!("{name}:{number}")
                };
                while line
                    .last()
                    .is_some_and(|byte| matches!(byte, b'\n' | b'\r'))
                {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if cut && mode == ReadMode::JsonLines {
                    handle(InputDocument {
                        id: default_id,
                        text: Err(format!("the record is longer than {limit} bytes")),
                    })?;
                    continue;
                }
                if cut {
                    trim_partial_character(&mut line);
                }
                let item = match decode_text(line.clone()) {
                    Err(reason) => InputDocument {
                        id: default_id,
                        text: Err(reason),
                    },
                    Ok(text) if mode == ReadMode::Lines => InputDocument {
                        id: default_id,
                        text: Ok(text),
                    },
                    Ok(text) => json_item(&text, fields, default_id),
                };
                handle(item)?;
            }
        }
    }
}

/// Reads one line (through its `\n`) into `line`, keeping at most `limit` bytes of it and
/// draining the rest: the bytes consumed (0 at the end of the input) and whether the line was
/// cut.
fn read_line_bounded(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(usize, bool)> {
    let (mut consumed, mut cut) = (0usize, false);
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok((consumed, cut));
        }
        let (chunk, ends) = match available.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        let room = limit.saturating_sub(line.len());
        if chunk.len() > room {
            line.extend_from_slice(&chunk[..room]);
            cut = true;
        } else {
            line.extend_from_slice(chunk);
        }
        let used = chunk.len();
        reader.consume(used);
        consumed += used;
        if ends {
            return Ok((consumed, cut));
        }
    }
}

/// Drops an incomplete UTF-8 character at the end of bytes that were cut at a byte limit.
fn trim_partial_character(bytes: &mut Vec<u8>) {
    if let Err(error) = std::str::from_utf8(bytes)
        && error.error_len().is_none()
    {
        bytes.truncate(error.valid_up_to());
    }
}

/// A JSON Lines record as a document: its text field, and its id field when present.
fn json_item(line: &str, fields: &FieldNames, default_id: String) -> InputDocument {
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(error) => {
            return InputDocument {
                id: default_id,
                text: Err(format!("invalid JSON: {error}")),
            };
        }
    };
    let id = value
        .get(&fields.id)
        .and_then(value_text)
        .unwrap_or(default_id);
    let text = match value.get(&fields.text) {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        _ => Err(format!("no string field `{}`", fields.text)),
    };
    InputDocument { id, text }
}

/// Bytes as text: binary content (NUL bytes) and invalid UTF-8 are refused with the reason.
pub fn decode_text(bytes: Vec<u8>) -> Result<String, String> {
    if bytes.contains(&0) {
        return Err("binary content (NUL bytes), not text".into());
    }
    String::from_utf8(bytes).map_err(|error| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            error.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_decoding_refuses_binary_and_invalid_utf8() {
        assert_eq!(decode_text(b"fine".to_vec()), Ok("fine".to_string()));
        assert_eq!(
            decode_text(b"a\0b".to_vec()),
            Err("binary content (NUL bytes), not text".to_string())
        );
        assert_eq!(
            decode_text(b"caf\xe9".to_vec()),
            Err("not UTF-8 text (invalid byte at offset 3)".to_string())
        );
    }

    #[test]
    fn json_items_take_text_and_id_fields() {
        let fields = FieldNames::default();
        let item = json_item(r#"{"id": 7, "text": "Good."}"#, &fields, "line 1".into());
        assert_eq!(item.id, "7");
        assert_eq!(item.text, Ok("Good.".to_string()));
        let item = json_item(r#"{"body": "Good."}"#, &fields, "line 2".into());
        assert_eq!(item.id, "line 2");
        assert_eq!(item.text, Err("no string field `text`".to_string()));
        let item = json_item("{oops", &fields, "line 3".into());
        assert!(
            item.text
                .is_err_and(|reason| reason.starts_with("invalid JSON"))
        );
    }

    fn read_all(content: &[u8], mode: ReadMode, limit: usize) -> Vec<InputDocument> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("input");
        std::fs::write(&path, content).expect("write");
        let mut documents = Vec::new();
        read_source::<()>(
            &Source::File(path),
            mode,
            &FieldNames::default(),
            limit,
            &mut |document| {
                documents.push(document);
                Ok(())
            },
        )
        .expect("read");
        documents
    }

    #[test]
    fn every_mode_reads_at_most_its_byte_limit() {
        let lines = read_all(b"abcdefghijklmnop\nsecond\n\nthird", ReadMode::Lines, 10);
        let texts: Vec<_> = lines.iter().map(|document| document.text.clone()).collect();
        assert_eq!(
            texts,
            [
                Ok("abcdefghij".to_string()),
                Ok("second".to_string()),
                Ok("third".to_string())
            ]
        );
        assert!(lines[2].id.ends_with(":4"), "{}", lines[2].id);
        // A cut never splits a character: "é" is two bytes.
        let cut = read_all("aaaaaaaaaé\n".as_bytes(), ReadMode::Lines, 10);
        assert_eq!(cut[0].text, Ok("aaaaaaaaa".to_string()));
        let whole = read_all("aaaaaaaaaébc".as_bytes(), ReadMode::Whole, 10);
        assert_eq!(whole[0].text, Ok("aaaaaaaaa".to_string()));
        // A JSON record cannot be cut: too long is an error, the next record is still read.
        let long = format!(
            "{{\"text\": \"{}\"}}\n{{\"text\": \"ok\"}}\n",
            "x".repeat(100)
        );
        let records = read_all(long.as_bytes(), ReadMode::JsonLines, 10);
        assert_eq!(
            records[0].text,
            Err("the record is longer than 40 bytes".to_string())
        );
        assert_eq!(records[1].text, Ok("ok".to_string()));
    }
}
