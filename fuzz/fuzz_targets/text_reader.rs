//! Recognising and reading a whole file as `classify` does (sniffing, byte-order marks,
//! encoding detection, then the reader the content calls for), on arbitrary bytes with an
//! arbitrary extension: no panic, every document accounted for, text within its limit. Bytes
//! recognised as a PDF, DOCX or ODT go to the container readers through the in-process
//! isolation only when they are not a PDF (PDF has its own target, `pdf_reader`).
#![no_main]

use exitwise::formats::{Detected, Format, Isolation, ReadOptions, detect, encoding};
use exitwise::text::input::read_stream;
use libfuzzer_sys::fuzz_target;

const TEXT_LIMIT: usize = 8192;

fuzz_target!(|input: (u8, &[u8])| {
    let (choice, bytes) = input;
    let extension = ["txt", "eml", "mbox", "html", "docx", "bin"][usize::from(choice) % 6];
    if detect(&bytes[..bytes.len().min(8192)], Some(extension)) == Detected::Document(Format::Pdf) {
        return;
    }
    let _ = encoding::decode(bytes, None, choice % 2 == 1);
    let options = ReadOptions {
        format: None,
        encoding: None,
        text_limit: TEXT_LIMIT,
        isolation: Isolation::InProcess,
    };
    let mut documents = 0usize;
    let _ = read_stream::<()>(
        "input",
        Some(extension),
        &mut std::io::Cursor::new(bytes),
        &options,
        &mut |document| {
            documents += 1;
            if let Ok(text) = &document.text {
                assert!(document.format.is_some());
                // Text and pages are cut at the limit; a mail may decode to more than its
                // raw bytes only by charset expansion.
                if document.format == Some(Format::Text) {
                    assert!(text.len() <= TEXT_LIMIT * 3);
                }
            }
            Ok(())
        },
    );
    assert!(documents >= 1);
});
