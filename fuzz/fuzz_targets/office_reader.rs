//! DOCX and ODT on arbitrary input: the first byte picks raw archive bytes (the ZIP layer) or
//! the rest as the body XML of a well-formed DOCX or ODT archive (the XML layer). No panic;
//! text stays within the limit (plus one paragraph's overshoot).
#![no_main]

use std::io::{Cursor, Write};

use exitwise::formats::{Format, office};
use libfuzzer_sys::fuzz_target;

const TEXT_LIMIT: usize = 4096;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let (bytes, format) = match mode % 3 {
        0 => (rest.to_vec(), office::identify(rest).unwrap_or(Format::Docx)),
        1 => (archive("word/document.xml", None, rest), Format::Docx),
        _ => (
            archive("content.xml", Some("application/vnd.oasis.opendocument.text"), rest),
            Format::Odt,
        ),
    };
    if mode % 3 != 0 {
        assert_eq!(office::identify(&bytes), Some(format));
    }
    if let Ok(text) = office::read(&bytes, format, TEXT_LIMIT) {
        assert!(!text.trim().is_empty());
        assert!(text.len() <= TEXT_LIMIT + rest.len());
    }
});

fn archive(entry: &str, mimetype: Option<&str>, content: &[u8]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored);
    if let Some(mimetype) = mimetype {
        writer.start_file("mimetype", options).expect("entry");
        writer.write_all(mimetype.as_bytes()).expect("written");
    }
    writer.start_file(entry, options).expect("entry");
    writer.write_all(content).expect("written");
    writer.finish().expect("finished").into_inner()
}
