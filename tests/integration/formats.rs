//! Real files: mail, mailboxes, Maildirs, web pages, PDF, DOCX, ODT and text in other
//! encodings are read as their text, never their markup; bombs and deep nesting are error
//! records and the next document is still classified. `segment --text` shows what a reader
//! extracted without a model; classification uses the real model and the default pack.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::{TestModel, exitwise, model_path, text};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name)
}

/// The review of `examples/review.txt`, one paragraph a line.
fn review() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/review.txt"))
        .expect("the example review")
        .trim()
        .to_string()
}

/// What `segment --text` extracts from `path` (exit status, stdout, stderr).
fn extracted(arguments: &[&str], path: &Path) -> (Option<i32>, String, String) {
    let mut all = vec!["segment", "--text"];
    all.extend_from_slice(arguments);
    let path = path.to_str().expect("a UTF-8 path");
    all.push(path);
    let output = exitwise(&all, b"");
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// `exitwise classify` with the default pack on one thread, `--format FORMAT` and `inputs`;
/// `None` (skipped) without the model.
fn classify(format: &str, inputs: &[&Path], stdin: &[u8]) -> Option<Output> {
    let model = model_path(TestModel::Gemma)?;
    let mut arguments = vec![
        "classify",
        "--threads",
        "1",
        "--model",
        model.to_str().expect("a UTF-8 path"),
        "--format",
        format,
    ];
    arguments.extend(
        inputs
            .iter()
            .map(|input| input.to_str().expect("a UTF-8 path")),
    );
    Some(exitwise(&arguments, stdin))
}

/// The JSON records on stdout.
fn records(output: &Output) -> Vec<serde_json::Value> {
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record"))
        .collect()
}

/// A ZIP archive of `entries`.
fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        writer
            .start_file(
                *name,
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated),
            )
            .expect("an entry");
        writer.write_all(content).expect("written");
    }
    writer.finish().expect("finished").into_inner()
}

fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|paragraph| {
            format!("<w:p><w:r><w:t xml:space=\"preserve\">{paragraph}</w:t></w:r></w:p>")
        })
        .collect();
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    archive(&[
        ("[Content_Types].xml", b"<Types/>".as_slice()),
        ("word/document.xml", xml.as_bytes()),
    ])
}

fn odt(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|paragraph| format!("<text:p>{paragraph}</text:p>"))
        .collect();
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
    );
    archive(&[
        (
            "mimetype",
            b"application/vnd.oasis.opendocument.text".as_slice(),
        ),
        ("content.xml", xml.as_bytes()),
    ])
}

/// A page with the review in `<article>` and hostile boilerplate around it: a menu, a script
/// and a footer whose words would read negative.
fn page(review: &str) -> String {
    let paragraphs: String = review
        .lines()
        .map(|line| format!("<p>{line}</p>\n"))
        .collect();
    format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Reviews</title>
<script>var banner = "terrible deals, worst prices, awful offers, dreadful service";</script>
<style>.deals {{ color: red }}</style></head>
<body><nav><a href="/">Home</a> <a href="/deals">Terrible deals</a> <a href="/worst">Worst prices</a></nav>
<article>{paragraphs}</article>
<aside>Most read: the worst films of the year, an awful sequel, a dreadful remake</aside>
<footer>Terms, privacy, cookies</footer><script>track("awful")</script></body></html>"#
    )
}

/// A multipart mail: the review as base64 text and its HTML twin.
fn mail(review: &str) -> String {
    let body = review
        .as_bytes()
        .chunks(57)
        .map(base64_line)
        .collect::<Vec<_>>()
        .join("\r\n");
    format!(
        "From: Ann <ann@example.org>\r\nTo: bob@example.org\r\nSubject: A film\r\nMessage-ID: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>{}</p></body></html>\r\n--b1--\r\n",
        review.replace('\n', "</p><p>")
    )
}

fn base64_line(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut line = String::new();
    for chunk in bytes.chunks(3) {
        let word = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for index in 0..4 {
            if index <= chunk.len() {
                line.push(char::from(
                    ALPHABET[((word >> (18 - 6 * index)) & 63) as usize],
                ));
            } else {
                line.push('=');
            }
        }
    }
    line
}

/// The review saved in every form a workstation holds it in.
fn seven_forms(dir: &Path) -> Vec<(PathBuf, &'static str, Option<&'static str>)> {
    let review = review();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let paragraphs: Vec<&str> = review.lines().collect();
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(review.encode_utf16().flat_map(u16::to_le_bytes));
    let mut utf32 = vec![0xFF, 0xFE, 0, 0];
    utf32.extend(review.chars().flat_map(|c| u32::from(c).to_le_bytes()));
    let latin1: Vec<u8> = format!("{review}\nTrès émouvant.")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("Latin-1"))
        .collect();
    let pdf = dir.join("review.pdf");
    std::fs::copy(fixture("review.pdf"), &pdf).expect("copy");
    vec![
        (write("review.txt", review.as_bytes()), "text", None),
        (write("review.html", page(&review).as_bytes()), "html", None),
        (pdf, "pdf", None),
        (write("review.eml", mail(&review).as_bytes()), "mail", None),
        (write("review.docx", &docx(&paragraphs)), "docx", None),
        (write("review.odt", &odt(&paragraphs)), "odt", None),
        (write("review-utf16.txt", &utf16), "text", Some("UTF-16LE")),
        (write("review-utf32.txt", &utf32), "text", Some("UTF-32LE")),
        (
            write("review-latin1.txt", &latin1),
            "text",
            Some("windows-1252"),
        ),
    ]
}

#[test]
fn every_form_of_a_review_reads_as_its_text_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let review = review();
    for (path, _, _) in seven_forms(dir.path()) {
        let (status, stdout, stderr) = extracted(&[], &path);
        assert_eq!(status, Some(0), "{}: {stderr}", path.display());
        for paragraph in review.lines() {
            assert!(
                stdout.contains(paragraph),
                "{}: `{paragraph}` missing from {stdout}",
                path.display()
            );
        }
        for boilerplate in [
            "terrible",
            "Worst",
            "awful",
            "dreadful",
            "color",
            "Content-Type",
            "PDF",
        ] {
            assert!(
                !stdout.contains(boilerplate),
                "{}: {boilerplate} in {stdout}",
                path.display()
            );
        }
    }
}

#[test]
fn every_form_of_a_review_is_classified_alike_and_records_name_the_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let forms = seven_forms(dir.path());
    let Some(output) = classify("jsonl", &[dir.path()], b"") else {
        return;
    };
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records = records(&output);
    assert_eq!(records.len(), forms.len());
    for (path, format, encoding) in &forms {
        let record = records
            .iter()
            .find(|record| record["id"] == path.to_str().expect("path"))
            .unwrap_or_else(|| panic!("no record of {}", path.display()));
        assert_eq!(record["format"], *format, "{record}");
        assert_eq!(record["encoding"].as_str(), *encoding, "{record}");
        assert_eq!(record["label"], "pos", "{record}");
    }
    // The same text, read from any form, gives the same probabilities.
    let probability = |name: &str| {
        records
            .iter()
            .find(|record| record["id"].as_str().is_some_and(|id| id.ends_with(name)))
            .and_then(|record| record["probs"]["pos"].as_f64())
            .expect("a probability")
    };
    let plain = probability("/review.txt");
    for name in [
        "/review.docx",
        "/review.odt",
        "/review-utf16.txt",
        "/review-utf32.txt",
    ] {
        assert!((probability(name) - plain).abs() < 1e-4, "{name}");
    }
}

#[test]
fn stdin_is_recognised_like_a_file() {
    let pdf = std::fs::read(fixture("review.pdf")).expect("the fixture");
    let output = exitwise(&["segment", "--text", "-"], &pdf);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with("A film that stays with you\nI had heard"));
    let output = exitwise(&["segment", "--text"], page(&review()).as_bytes());
    assert!(
        text(&output.stdout).starts_with("Reviews\nI had heard"),
        "{}",
        text(&output.stdout)
    );
    let Some(output) = classify("jsonl", &[Path::new("-")], &pdf) else {
        return;
    };
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records = records(&output);
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0]["id"].as_str(), records[0]["format"].as_str()),
        (Some("<stdin>"), Some("pdf"))
    );
}

#[test]
fn input_format_and_encoding_force_the_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let html = dir.path().join("page.html");
    std::fs::write(&html, "<p>Tags <b>stay</b>.</p>").expect("write");
    let (status, stdout, _) = extracted(&["--input-format", "text"], &html);
    assert_eq!(
        (status, stdout.as_str()),
        (Some(0), "<p>Tags <b>stay</b>.</p>\n")
    );
    let (_, stdout, _) = extracted(&[], &html);
    assert_eq!(stdout, "Tags stay.\n");
    // UTF-8 bytes read as Latin-1 on request.
    let utf8 = dir.path().join("utf8.txt");
    std::fs::write(&utf8, "café").expect("write");
    let (_, stdout, _) = extracted(&["--encoding", "latin1"], &utf8);
    assert_eq!(stdout, "cafÃ©\n");
    let (status, _, stderr) = extracted(&["--encoding", "klingon"], &utf8);
    assert_eq!(status, Some(2));
    assert!(stderr.contains("unknown encoding `klingon`"), "{stderr}");
    // A forced reader that does not fit says so.
    let (status, _, stderr) = extracted(&["--input-format", "pdf"], &utf8);
    assert_eq!(status, Some(1));
    assert!(stderr.contains("malformed PDF"), "{stderr}");
    let (status, _, stderr) = extracted(&["--input-format", "docx"], &utf8);
    assert_eq!(status, Some(1));
    assert!(stderr.contains("malformed DOCX"), "{stderr}");
    // Records of lines and JSON Lines keep their text as text: no reader is chosen for them.
    let output = exitwise(&["classify", "--jsonl", "--input-format", "html", "-"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("cannot be used with"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_scanned_pdf_and_unknown_binaries_are_error_records_that_say_why() {
    let (status, _, stderr) = extracted(&[], &fixture("scan.pdf"));
    assert_eq!(status, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error: cannot read `{}`: the PDF has no text layer (a scanned image?): run OCR on it first\n",
            fixture("scan.pdf").display()
        )
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let zip = dir.path().join("photos.zip");
    std::fs::write(&zip, archive(&[("a.jpg", b"\xff\xd8\xff")])).expect("write");
    let (status, _, stderr) = extracted(&[], &zip);
    assert_eq!(status, Some(1));
    assert!(
        stderr.contains("not a format exitwise reads: a ZIP archive"),
        "{stderr}"
    );
    let truncated = dir.path().join("cut.pdf");
    let pdf = std::fs::read(fixture("review.pdf")).expect("the fixture");
    std::fs::write(&truncated, &pdf[..pdf.len() / 3]).expect("write");
    let (status, _, stderr) = extracted(&[], &truncated);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(
        stderr.contains("malformed PDF") || stderr.contains("the PDF reader failed"),
        "{stderr}"
    );
}

#[test]
fn mailboxes_and_maildirs_give_one_document_per_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mailbox = dir.path().join("inbox.mbox");
    let mut content = String::new();
    for (number, subject) in ["Cheap pills", "Lunch?", "Minutes"].iter().enumerate() {
        content.push_str(&format!(
            "From sender{number}@example.org Mon Sep 30 13:53:5{number} 2002\nFrom: sender{number}@example.org\nSubject: {subject}\n\nBody {number}.\n>From the archive.\n\n"
        ));
    }
    std::fs::write(&mailbox, &content).expect("write");
    let (status, stdout, stderr) = extracted(&[], &mailbox);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "Cheap pills\nBody 0.\nFrom the archive.\nLunch?\nBody 1.\nFrom the archive.\nMinutes\nBody 2.\nFrom the archive.\n"
    );
    let maildir = dir.path().join("Maildir");
    for (folder, name, subject) in [
        ("cur", "1.host:2,S", "Seen"),
        ("new", "2.host", "New"),
        ("tmp", "3.host", "Half-delivered"),
    ] {
        std::fs::create_dir_all(maildir.join(folder)).expect("folders");
        std::fs::write(
            maildir.join(folder).join(name),
            format!("From: a@example.org\nSubject: {subject}\n\nA short note.\n"),
        )
        .expect("write");
    }
    let Some(output) = classify("tsv", &[&mailbox, &maildir], b"") else {
        return;
    };
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let rows: Vec<Vec<String>> = text(&output.stdout)
        .lines()
        .skip(1)
        .map(|row| row.split('\t').map(str::to_string).collect())
        .collect();
    let root = format!("{}/", dir.path().display());
    let ids: Vec<&str> = rows
        .iter()
        .map(|row| row[0].strip_prefix(&root).expect("inside the folder"))
        .collect();
    assert_eq!(
        ids,
        [
            "inbox.mbox#1",
            "inbox.mbox#2",
            "inbox.mbox#3",
            "Maildir/cur/1.host:2,S",
            "Maildir/new/2.host"
        ]
    );
    assert!(
        rows.iter()
            .all(|row| row.last().map(String::as_str) == Some("mail"))
    );
}

#[test]
fn raw_spamassassin_messages_read_as_the_data_set_reads_them() {
    // Two messages of the corpus as delivered (CC0, see tests/fixtures/README.md): a signed
    // multipart ham and an HTML-only spam.
    let cases = [
        (
            "spamassassin-easy-ham-1-01397",
            "easy-ham-1/01397.53c38cd7bcd8f13b0d6b784c9265cec1",
        ),
        (
            "spamassassin-spam-2-01238",
            "spam-2/01238.32c2cef2a001f81d237017d243bad8e4",
        ),
    ];
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/spam/test.jsonl");
    let data = std::fs::read_to_string(&data).ok();
    for (file, id) in cases {
        let (status, stdout, stderr) = extracted(&[], &fixture(file));
        assert_eq!(status, Some(0), "{stderr}");
        assert!(
            !stdout.contains("Received:") && !stdout.contains("<a href"),
            "{stdout}"
        );
        match &data {
            Some(data) => {
                let record: serde_json::Value = data
                    .lines()
                    .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON"))
                    .find(|record| record["id"] == id)
                    .expect("the message is in the test split");
                assert_eq!(
                    stdout.trim_end(),
                    record["text"].as_str().expect("text").trim_end()
                );
            }
            None => eprintln!("skipped the comparison with ../shared/data: not found"),
        }
    }
    let (_, spam, _) = extracted(&[], &fixture("spamassassin-spam-2-01238"));
    assert_eq!(
        spam,
        "ONLINE LIVE STRIPTEASE FOR YOU\nsee me naked Click Here\n"
    );
}

/// A PDF whose one page's content stream inflates to `inflated` bytes of spaces.
fn pdf_bomb(inflated: usize) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..inflated / chunk.len() {
        encoder.write_all(&chunk).expect("compressed");
    }
    let stream = encoder.finish().expect("compressed");
    let mut pdf = Vec::new();
    let mut offsets = Vec::new();
    pdf.extend_from_slice(b"%PDF-1.4\n");
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>".to_vec(),
        [
            format!(
                "<< /Length {} /Filter /FlateDecode >>\nstream\n",
                stream.len()
            )
            .as_bytes(),
            &stream,
            b"\nendstream",
        ]
        .concat(),
    ];
    for (index, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", index + 1).as_bytes());
        pdf.extend_from_slice(object);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

#[test]
fn bombs_and_deep_nesting_are_error_records_and_the_next_document_is_classified() {
    if model_path(TestModel::Gemma).is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let write =
        |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).expect("write");
    // HTML and MIME nested ten thousand deep.
    write(
        "a-deep.html",
        format!(
            "<html><body>{}<p>Deep.</p>{}</body></html>",
            "<div>".repeat(10_000),
            "</div>".repeat(10_000)
        )
        .as_bytes(),
    );
    let mut mime = String::from("From: a@example.org\nSubject: Deep and fine\n");
    for level in 0..10_000 {
        mime.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n"
        ));
    }
    mime.push_str("Content-Type: text/plain\n\nA wonderful film, I loved it.\n");
    write("b-deep.eml", mime.as_bytes());
    // A DOCX whose 30 MB of paragraphs compress to a few hundred kB: read up to the text limit.
    let paragraph = "A wonderful film. ";
    let paragraphs: Vec<&str> = std::iter::repeat_n(paragraph, 30_000_000 / 60).collect();
    write("c-bomb.docx", &docx(&paragraphs));
    // A PDF whose page inflates to 3 GiB: the child reader runs out of its memory.
    write("d-bomb.pdf", &pdf_bomb(3 << 30));
    // A page whose parent is itself: pdf-extract follows it for ever (found by the
    // `pdf_reader` fuzz target); the child reader is killed after 30 s.
    std::fs::copy(
        fixture("cyclic-page-tree.pdf"),
        dir.path().join("d2-cyclic.pdf"),
    )
    .expect("copy");
    write("e-good.txt", review().as_bytes());
    let started = Instant::now();
    let output = classify("jsonl", &[dir.path()], b"").expect("the model is there");
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let records = records(&output);
    assert_eq!(records.len(), 6, "{}", text(&output.stdout));
    assert_eq!(records[0]["format"], "html");
    assert_eq!(
        records[0]["error"],
        "malformed HTML: elements nest more than 512 deep, deeper than exitwise reads"
    );
    assert_eq!(
        (records[1]["format"].as_str(), records[1]["label"].as_str()),
        (Some("mail"), Some("pos"))
    );
    assert_eq!(records[2]["format"], "docx");
    assert_eq!(records[2]["truncated"], true);
    assert_eq!(records[3]["format"], "pdf");
    let error = records[3]["error"].as_str().expect("an error");
    assert!(
        error.starts_with("the PDF reader failed: it stopped with"),
        "{error}"
    );
    assert_eq!(
        records[4]["error"],
        "reading the PDF took longer than 30 s (it is killed then)"
    );
    assert_eq!(
        (records[5]["format"].as_str(), records[5]["label"].as_str()),
        (Some("text"), Some("pos"))
    );
    assert!(elapsed < Duration::from_secs(150), "{elapsed:?}");
}

#[test]
fn segment_names_the_reader_and_the_encoding() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"Tr\xe8s \xe9mouvant. Un tr\xe8s beau film.").expect("write");
    let output = exitwise(
        &[
            "segment",
            "--model",
            model.to_str().expect("path"),
            latin1.to_str().expect("path"),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Très émouvant."), "{stdout}");
    assert!(
        stdout.ends_with(&format!(
            "{}: read as text (windows-1252); 2 of 2 sentences, 13 tokens\n",
            latin1.display()
        )) || stdout
            .lines()
            .last()
            .is_some_and(|line| line.contains(": read as text (windows-1252); 2 of 2 sentences, ")),
        "{stdout}"
    );
    let output = exitwise(
        &[
            "segment",
            "--json",
            "--model",
            model.to_str().expect("path"),
            fixture("review.pdf").to_str().expect("path"),
        ],
        b"",
    );
    let summary: serde_json::Value =
        serde_json::from_str(text(&output.stdout).lines().last().expect("a summary"))
            .expect("JSON");
    assert_eq!(summary["format"], "pdf");
    assert_eq!(summary["sentences_read"], 9);
}
