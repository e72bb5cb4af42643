//! Documents from where users keep them: files (each one document, or one per message of a
//! mailbox), folders of files (a Maildir's messages among them), stdin, one document per line
//! (`--lines`) or JSON Lines records (`--jsonl`), handed on one by one as soon as each is
//! complete. A whole file or stdin is read by the reader its content calls for
//! ([`crate::formats`]: mail, HTML, PDF, DOCX, ODT, text in any common encoding). Bytes that
//! cannot be read become a document whose text is the reason, so one bad input never stops
//! the others.

use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dataset::{FieldNames, json_object, text_field, value_text};
use crate::formats::mailbox::{Mailbox, MailboxMessage, read_line_bounded};
use crate::formats::{
    Detected, Extracted, Format, MOST_CONTAINER_BYTES, ReadError, ReadOptions, SNIFF_BYTES,
    TextEncoding, binary_error, detect, read_document, resolve_zip,
};

/// How a source is cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// The whole source is one document (a mailbox: one per message), read by the reader its
    /// content calls for.
    Whole,
    /// Every non-empty line is a document.
    Lines,
    /// Every non-empty line is a JSON object with the text in a field.
    JsonLines,
}

/// A document, or the reason it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDocument {
    /// The path, `path#N` (the N-th message of a mailbox), `path:line`, `line N` (stdin) or
    /// the record's id field.
    pub id: String,
    /// The reader used (`None`: the source could not be opened, or is of no format exitwise
    /// reads).
    pub format: Option<Format>,
    /// The encoding the text was decoded from, when it was not UTF-8.
    pub encoding: Option<&'static str>,
    /// The text, or why there is none.
    pub text: Result<String, String>,
    /// Time spent turning the raw bytes into text (parsing, decoding, extracting; not the
    /// reading of the bytes themselves).
    pub reading: Duration,
}

impl InputDocument {
    fn failed(id: String, format: Option<Format>, reason: impl ToString) -> Self {
        InputDocument {
            id,
            format,
            encoding: None,
            text: Err(reason.to_string()),
            reading: Duration::ZERO,
        }
    }
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

/// Expands directories into their files (sorted), keeping the order of the arguments. A
/// Maildir (a folder with `cur` and `new`) contributes the messages in `cur` and `new` even
/// without `recursive`, and never those still being delivered into `tmp`.
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

/// Whether `dir` is a Maildir.
fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() && dir.join("new").is_dir()
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
    let maildir = is_maildir(dir);
    for path in paths {
        if path.is_dir() {
            let name = path.file_name().and_then(|name| name.to_str());
            if maildir && matches!(name, Some("cur" | "new")) {
                walk(&path, false, sources);
            } else if recursive && !(maildir && name == Some("tmp")) {
                walk(&path, recursive, sources);
            }
        } else {
            sources.push(Source::File(path));
        }
    }
}

/// Reads one source in `mode`, handing each document to `handle` as soon as it is complete.
/// Text is kept up to `options.text_limit` bytes (cut on a character boundary) and the rest
/// left unread (drained from stdin); a JSON Lines record longer than four times that is
/// refused; other formats are read up to their own raw limit ([`Format::raw_limit`]), so
/// memory stays bounded in every mode. Only `handle`'s errors end the reading; a source that cannot be read becomes a
/// document whose text is the reason.
pub fn read_source<E>(
    source: &Source,
    mode: ReadMode,
    fields: &FieldNames,
    options: &ReadOptions,
    handle: &mut dyn FnMut(InputDocument) -> Result<(), E>,
) -> Result<(), E> {
    let (name, extension, reader): (String, Option<String>, Box<dyn Read>) = match source {
        Source::Stdin => (
            "<stdin>".to_string(),
            None,
            Box::new(std::io::stdin().lock()),
        ),
        Source::Unreadable(path, reason) => {
            return handle(InputDocument::failed(
                path.display().to_string(),
                None,
                reason,
            ));
        }
        Source::File(path) => match std::fs::File::open(path) {
            Ok(file) => (
                path.display().to_string(),
                path.extension()
                    .and_then(|extension| extension.to_str())
                    .map(str::to_ascii_lowercase),
                Box::new(file),
            ),
            Err(error) => {
                return handle(InputDocument::failed(
                    path.display().to_string(),
                    None,
                    format!("cannot open the file: {error}"),
                ));
            }
        },
    };
    let mut reader = BufReader::new(reader);
    let read = match mode {
        ReadMode::Whole => read_stream(&name, extension.as_deref(), &mut reader, options, handle),
        ReadMode::Lines | ReadMode::JsonLines => {
            read_lines(source, &name, &mut reader, mode, fields, options, handle)
        }
    };
    if read.is_ok() && matches!(source, Source::Stdin) {
        // Drain what was not read, so a writer on the other end of the pipe is not cut off (a
        // file's unread rest is simply left unread). Not after `handle` failed: a reader of
        // stdout that went away ends the program at once, even with an endless stdin.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    }
    read
}

/// Reads a whole stream named `name` (its file's `extension`, lower case, helps recognise it):
/// recognises its format from its first bytes, then reads one document, or streams a
/// mailbox's messages (`NAME#N`). What `read_source` does with a file or stdin in
/// [`ReadMode::Whole`], for any reader (a request body).
pub fn read_stream<E>(
    name: &str,
    extension: Option<&str>,
    reader: &mut impl BufRead,
    options: &ReadOptions,
    handle: &mut dyn FnMut(InputDocument) -> Result<(), E>,
) -> Result<(), E> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    if let Err(error) = reader
        .by_ref()
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
    {
        return handle(InputDocument::failed(
            name.to_string(),
            None,
            format!("cannot read: {error}"),
        ));
    }
    let detected = match options.format {
        // A forced mail reader still splits a mailbox into its messages.
        Some(Format::Mail) if head.starts_with(b"From ") => Detected::Mailbox,
        Some(format) => Detected::Document(format),
        None => detect(&head, extension),
    };
    // The format, when the first bytes tell it (a ZIP archive's entries tell DOCX from ODT),
    // and the most bytes read.
    let (known, limit) = match detected {
        Detected::Mailbox => {
            let stream = BufReader::new(Cursor::new(head).chain(reader));
            return read_mailbox(name, stream, options, handle);
        }
        Detected::Binary(mime) => {
            return handle(InputDocument::failed(
                name.to_string(),
                None,
                binary_error(mime),
            ));
        }
        Detected::Document(format) => (Some(format), format.raw_limit(options.text_limit)),
        Detected::Zip => (None, MOST_CONTAINER_BYTES),
    };
    let (bytes, cut) = match read_rest(head, reader, limit) {
        Ok(read) => read,
        Err(error) => {
            return handle(InputDocument::failed(
                name.to_string(),
                known,
                format!("cannot read: {error}"),
            ));
        }
    };
    let format = match known {
        Some(format) => format,
        None if cut => {
            // An archive too big to read whole cannot be told apart by its entries.
            return handle(InputDocument::failed(
                name.to_string(),
                None,
                ReadError::TooLarge {
                    what: "ZIP archive".into(),
                    limit: limit >> 20,
                },
            ));
        }
        None => match resolve_zip(&bytes) {
            Ok(format) => format,
            Err(error) => return handle(InputDocument::failed(name.to_string(), None, error)),
        },
    };
    handle(document(name.to_string(), format, || {
        read_document(&bytes, format, cut, options)
    }))
}

/// The document `id` of `format` that `read` extracts, timed.
fn document(
    id: String,
    format: Format,
    read: impl FnOnce() -> Result<Extracted, ReadError>,
) -> InputDocument {
    let started = Instant::now();
    let read = read();
    let reading = started.elapsed();
    match read {
        Ok(extracted) => InputDocument {
            id,
            format: Some(extracted.format),
            encoding: extracted.encoding,
            text: Ok(extracted.text),
            reading,
        },
        Err(error) => InputDocument {
            reading,
            ..InputDocument::failed(id, Some(format), error)
        },
    }
}

/// `head` and the rest of `reader` up to `limit` bytes in all, and whether there was more
/// (one byte past the limit is read to tell; the rest stays unread).
fn read_rest(
    mut head: Vec<u8>,
    reader: &mut impl Read,
    limit: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    if head.len() <= limit {
        let room = (limit - head.len()) as u64;
        reader.take(room + 1).read_to_end(&mut head)?;
    }
    let cut = head.len() > limit;
    head.truncate(limit);
    Ok((head, cut))
}

/// Streams the messages of a mailbox: `NAME` when it holds one message, `NAME#N` for the N-th
/// of several (one message is held back until the next one shows whether there are several).
fn read_mailbox<E>(
    name: &str,
    stream: impl BufRead,
    options: &ReadOptions,
    handle: &mut dyn FnMut(InputDocument) -> Result<(), E>,
) -> Result<(), E> {
    let limit = Format::Mail.raw_limit(options.text_limit);
    let mut held: Option<MailboxMessage> = None;
    let mut several = false;
    for message in Mailbox::new(stream, limit) {
        match message {
            Ok(message) => {
                if let Some(previous) = held.replace(message) {
                    several = true;
                    handle(message_document(name, &previous, true, options))?;
                }
            }
            Err(error) => {
                let next = held.as_ref().map_or(1, |held| held.number + 1);
                if let Some(previous) = held.take() {
                    handle(message_document(name, &previous, true, options))?;
                }
                return handle(InputDocument::failed(
                    mailbox_id(name, next, next > 1),
                    Some(Format::Mail),
                    format!("cannot read: {error}"),
                ));
            }
        }
    }
    match held {
        Some(last) => handle(message_document(name, &last, several, options)),
        None => handle(InputDocument::failed(
            name.to_string(),
            Some(Format::Mail),
            "the mailbox holds no messages",
        )),
    }
}

/// A mailbox's message as a document (`several`: the mailbox holds more than one).
fn message_document(
    name: &str,
    message: &MailboxMessage,
    several: bool,
    options: &ReadOptions,
) -> InputDocument {
    document(
        mailbox_id(name, message.number, several),
        Format::Mail,
        || read_document(&message.raw, Format::Mail, message.cut, options),
    )
}

fn mailbox_id(name: &str, number: usize, several: bool) -> String {
    if several {
        format!("{name}#{number}")
    } else {
        name.to_string()
    }
}

/// Reads a source line by line: each non-empty line a document (`Lines`) or a JSON record
/// (`JsonLines`).
fn read_lines<E>(
    source: &Source,
    name: &str,
    reader: &mut impl BufRead,
    mode: ReadMode,
    fields: &FieldNames,
    options: &ReadOptions,
    handle: &mut dyn FnMut(InputDocument) -> Result<(), E>,
) -> Result<(), E> {
    let stdin = matches!(source, Source::Stdin);
    let mut line = Vec::new();
    let mut number = 0usize;
    // JSON escapes a text into more bytes than it has.
    let limit = match mode {
        ReadMode::JsonLines => options.text_limit.saturating_mul(4),
        _ => options.text_limit,
    };
    // Lines are UTF-8 unless an encoding is given; JSON is always UTF-8.
    let encoding = match mode {
        ReadMode::Lines => options.encoding.unwrap_or(TextEncoding::UTF_8),
        _ => TextEncoding::UTF_8,
    };
    loop {
        line.clear();
        let (read, cut) = match read_line_bounded(reader, &mut line, limit) {
            Ok(read) => read,
            Err(error) => {
                return handle(InputDocument::failed(
                    name.to_string(),
                    Some(Format::Text),
                    format!("cannot read: {error}"),
                ));
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
        strip_line_end(&mut line, encoding);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if cut && mode == ReadMode::JsonLines {
            handle(InputDocument::failed(
                default_id,
                Some(Format::Text),
                format!("the record is longer than {limit} bytes"),
            ))?;
            continue;
        }
        let item = match decode_line(&line, encoding, cut) {
            Err(reason) => InputDocument::failed(default_id, Some(Format::Text), reason),
            Ok(text) if mode == ReadMode::Lines => InputDocument {
                id: default_id,
                format: Some(Format::Text),
                encoding: Some(encoding.name()).filter(|_| !encoding.is_utf8()),
                text: Ok(text),
                reading: Duration::ZERO,
            },
            Ok(text) => json_item(&text, fields, default_id),
        };
        handle(item)?;
    }
}

/// Drops the line end (`\n`, `\r\n`; in UTF-16, the `\n` byte's partner and the `\r`).
fn strip_line_end(line: &mut Vec<u8>, encoding: TextEncoding) {
    if encoding == TextEncoding::Whatwg(encoding_rs::UTF_16LE) {
        // A UTF-16LE line ends with 0x0A 0x00; the read stopped at 0x0A.
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.first() == Some(&0) {
            line.remove(0);
        }
        while line.ends_with(&[b'\r', 0]) {
            line.truncate(line.len() - 2);
        }
        return;
    }
    while line
        .last()
        .is_some_and(|byte| matches!(byte, b'\n' | b'\r'))
    {
        line.pop();
    }
}

/// A line's bytes as text in `encoding`: NUL bytes (in a byte encoding) and malformed
/// sequences are refused with the reason; a line cut at the byte limit loses an incomplete
/// last character.
fn decode_line(line: &[u8], encoding: TextEncoding, cut: bool) -> Result<String, String> {
    if encoding.is_utf8() {
        let mut bytes = line.to_vec();
        if cut {
            trim_partial_character(&mut bytes);
        }
        return decode_text(bytes);
    }
    crate::formats::encoding::decode(line, Some(encoding), cut)
        .map(|decoded| decoded.text)
        .map_err(|error| error.to_string())
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
    let record = match json_object(line) {
        Ok(record) => record,
        Err(reason) => return InputDocument::failed(default_id, Some(Format::Text), reason),
    };
    let id = record
        .get(&fields.id)
        .and_then(value_text)
        .unwrap_or(default_id);
    let text = text_field(&record, &fields.text);
    InputDocument {
        id,
        format: Some(Format::Text),
        encoding: None,
        text,
        reading: Duration::ZERO,
    }
}

/// Bytes as UTF-8 text: binary content (NUL bytes) and invalid UTF-8 are refused with the
/// reason.
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
    use crate::formats::Isolation;

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

    fn options(limit: usize) -> ReadOptions {
        ReadOptions {
            format: None,
            encoding: None,
            text_limit: limit,
            isolation: Isolation::InProcess,
        }
    }

    fn read_file(
        name: &str,
        content: &[u8],
        mode: ReadMode,
        options: &ReadOptions,
    ) -> Vec<InputDocument> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        let mut documents = Vec::new();
        read_source::<()>(
            &Source::File(path),
            mode,
            &FieldNames::default(),
            options,
            &mut |mut document| {
                // Ids without the temporary folder.
                document.id = document.id.rsplit('/').next().expect("a name").to_string();
                documents.push(document);
                Ok(())
            },
        )
        .expect("read");
        documents
    }

    fn read_all(content: &[u8], mode: ReadMode, limit: usize) -> Vec<InputDocument> {
        read_file("input", content, mode, &options(limit))
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

    #[test]
    fn whole_files_are_read_by_their_format() {
        let html = read_all(
            b"<html><head><title>T</title><script>bad()</script></head><body><p>Good.</p></body></html>",
            ReadMode::Whole,
            1 << 20,
        );
        assert_eq!(
            (html[0].format, html[0].text.clone()),
            (Some(Format::Html), Ok("T\nGood.".into()))
        );
        let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode("Très émouvant, un très beau film.");
        let text = read_all(&latin1, ReadMode::Whole, 1 << 20);
        assert_eq!(text[0].encoding, Some("windows-1252"));
        assert_eq!(text[0].text, Ok("Très émouvant, un très beau film.".into()));
        let png = read_all(
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0",
            ReadMode::Whole,
            1 << 20,
        );
        assert_eq!(
            png[0].text,
            Err("not a format exitwise reads: image/png (it reads text, mail, HTML, PDF, DOCX and ODT)".into())
        );
        let zip = read_all(
            &crate::formats::office::tests::archive(&[("a.txt", b"x")]),
            ReadMode::Whole,
            1 << 20,
        );
        assert_eq!(
            zip[0].text,
            Err("not a format exitwise reads: a ZIP archive (it reads text, mail, HTML, PDF, DOCX and ODT)".into())
        );
        let docx = read_all(
            &crate::formats::office::tests::docx("<w:p><w:r><w:t>Fine.</w:t></w:r></w:p>"),
            ReadMode::Whole,
            1 << 20,
        );
        assert_eq!(
            (docx[0].format, docx[0].text.clone()),
            (Some(Format::Docx), Ok("Fine.".into()))
        );
    }

    #[test]
    fn a_forced_reader_wins_over_the_content() {
        let forced = ReadOptions {
            format: Some(Format::Text),
            ..options(1 << 20)
        };
        let read = read_file("page.html", b"<p>Tags stay.</p>", ReadMode::Whole, &forced);
        assert_eq!(read[0].text, Ok("<p>Tags stay.</p>".into()));
        let latin1 = ReadOptions {
            encoding: TextEncoding::from_label("latin1"),
            ..options(1 << 20)
        };
        let lines = read_file("lines", b"caf\xe9\nna\xefve\n", ReadMode::Lines, &latin1);
        let texts: Vec<_> = lines.iter().map(|line| line.text.clone()).collect();
        assert_eq!(texts, [Ok("café".to_string()), Ok("naïve".to_string())]);
        assert_eq!(lines[0].encoding, Some("windows-1252"));
    }

    #[test]
    fn mailboxes_are_one_document_per_message() {
        let mailbox = concat!(
            "From a@example.org Mon Sep 30 13:53:59 2002\n",
            "From: a@example.org\nSubject: One\n\nFirst body.\n\n",
            "From b@example.org Mon Sep 30 13:54:00 2002\n",
            "From: b@example.org\nSubject: Two\n\n",
            "From c@example.org Mon Sep 30 13:54:01 2002\n",
            "From: c@example.org\nSubject: Three\n\nThird body.\n",
        );
        let read = read_file(
            "box.mbox",
            mailbox.as_bytes(),
            ReadMode::Whole,
            &options(1 << 20),
        );
        let found: Vec<_> = read
            .iter()
            .map(|d| (d.id.as_str(), d.text.clone()))
            .collect();
        assert_eq!(
            found,
            [
                ("box.mbox#1", Ok("One\nFirst body.".to_string())),
                ("box.mbox#2", Ok("Two".to_string())),
                ("box.mbox#3", Ok("Three\nThird body.".to_string())),
            ]
        );
        // One message: the file's own name.
        let one = read_file(
            "single.eml",
            b"From a@example.org Mon Sep 30 13:53:59 2002\nFrom: a@example.org\nSubject: Hi\n\nBody.\n",
            ReadMode::Whole,
            &options(1 << 20),
        );
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].id.as_str(), one[0].format),
            ("single.eml", Some(Format::Mail))
        );
    }

    #[test]
    fn a_mailbox_streams_its_messages() {
        /// A mailbox of `messages` messages, made as it is read, counting the bytes handed out.
        struct Generated {
            messages: usize,
            next: usize,
            pending: Vec<u8>,
            handed: std::rc::Rc<std::cell::Cell<usize>>,
        }
        impl Read for Generated {
            fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
                if self.pending.is_empty() && self.next < self.messages {
                    self.pending = format!(
                        "From a@example.org Mon Sep 30 13:53:59 2002\nSubject: n{}\n\nBody.\n",
                        self.next
                    )
                    .into_bytes();
                    self.next += 1;
                }
                let count = buffer.len().min(self.pending.len());
                buffer[..count].copy_from_slice(&self.pending[..count]);
                self.pending.drain(..count);
                self.handed.set(self.handed.get() + count);
                Ok(count)
            }
        }
        let handed = std::rc::Rc::new(std::cell::Cell::new(0));
        let messages = 200_000;
        let mut reader = BufReader::new(Generated {
            messages,
            next: 0,
            pending: Vec::new(),
            handed: std::rc::Rc::clone(&handed),
        });
        let (mut documents, mut read_when_first) = (0usize, None);
        read_stream::<()>(
            "box",
            None,
            &mut reader,
            &options(1 << 20),
            &mut |document| {
                documents += 1;
                read_when_first.get_or_insert(handed.get());
                assert_eq!(document.id, format!("box#{documents}"));
                assert_eq!(document.text, Ok(format!("n{}\nBody.", documents - 1)));
                Ok(())
            },
        )
        .expect("read");
        assert_eq!(documents, messages);
        // The first message was handed on after a few kilobytes, not after the whole mailbox.
        assert!(
            read_when_first.expect("a document") < 64 << 10,
            "{read_when_first:?}"
        );
        assert!(handed.get() > 10 << 20);
    }

    #[test]
    fn containers_over_their_limit_are_refused_not_cut() {
        let error = read_document(b"%PDF-1.7 cut", Format::Pdf, true, &options(1 << 20))
            .expect_err("a cut PDF");
        assert_eq!(
            error.to_string(),
            "the PDF file is larger than 128 MiB, the most exitwise reads of one"
        );
    }

    #[test]
    fn maildirs_give_their_messages_not_those_in_delivery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("Mail");
        for (folder, file) in [("cur", "1:2,S"), ("new", "2"), ("tmp", "3")] {
            std::fs::create_dir_all(maildir.join(folder)).expect("folders");
            std::fs::write(maildir.join(folder).join(file), "Subject: x\n\nbody\n").expect("write");
        }
        let names: Vec<String> = expand_inputs(std::slice::from_ref(&maildir), false)
            .into_iter()
            .map(|source| match source {
                Source::File(path) => path
                    .strip_prefix(&maildir)
                    .expect("inside")
                    .display()
                    .to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["cur/1:2,S", "new/2"]);
    }
}
