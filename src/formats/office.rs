//! Word-processor documents: DOCX (Office Open XML) and ODT (OpenDocument Text), read as
//! their body's paragraphs, one line each. Both are ZIP archives of XML: the archive is read by
//! the [`zip`] crate and the XML streamed by [`quick_xml`]; what is written here is only which
//! elements hold paragraph text (see docs/design.md for why no document crate is used).
//!
//! Bounded: the body's XML is decompressed through a byte limit (a decompression bomb stops
//! there) and parsing stops once the text limit is reached; the XML is streamed, so nesting
//! depth costs no call stack.

use std::io::{BufReader, Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{Format, ReadError};

/// Most bytes of a document's body XML decompressed.
pub const MOST_XML_BYTES: u64 = 64 << 20;

/// Which document a ZIP archive holds, by its entries: `None` for an archive that is neither
/// DOCX nor ODT (or no archive at all).
pub fn identify(bytes: &[u8]) -> Option<Format> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    if let Ok(mut mimetype) = archive.by_name("mimetype") {
        let mut declared = String::new();
        let _ = (&mut mimetype).take(256).read_to_string(&mut declared);
        if declared.trim() == "application/vnd.oasis.opendocument.text" {
            return Some(Format::Odt);
        }
    }
    if archive.by_name("word/document.xml").is_ok() {
        return Some(Format::Docx);
    }
    None
}

/// The paragraph text of a DOCX or ODT document, up to `text_limit` bytes.
pub fn read(bytes: &[u8], format: Format, text_limit: usize) -> Result<String, ReadError> {
    let malformed = |reason: String| ReadError::Malformed {
        what: format.noun().to_string(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|error| malformed(format!("not a readable ZIP archive: {error}")))?;
    let (entry_name, vocabulary) = match format {
        Format::Docx => ("word/document.xml", &DOCX),
        Format::Odt => ("content.xml", &ODT),
        _ => unreachable!("office documents are DOCX or ODT"),
    };
    let entry = archive
        .by_name(entry_name)
        .map_err(|error| malformed(format!("no `{entry_name}`: {error}")))?;
    let text = paragraphs(
        BufReader::new(entry.take(MOST_XML_BYTES)),
        vocabulary,
        text_limit,
    )
    .map_err(|error| malformed(format!("`{entry_name}`: {error}")))?;
    if text.trim().is_empty() {
        return Err(ReadError::NoText(format!("{} document", format.noun())));
    }
    Ok(text)
}

/// The elements of a word-processor format that matter for its text (local names).
struct Vocabulary {
    /// Paragraph-level elements: each ends a line.
    paragraphs: &'static [&'static [u8]],
    /// Elements whose character data is text (DOCX keeps text in `w:t` only; ODT's text is
    /// all character data inside a paragraph).
    text: Option<&'static [u8]>,
    /// Elements whose content is not body text (deleted runs, field codes, annotations).
    skipped: &'static [&'static [u8]],
    /// Empty elements that stand for a tab.
    tabs: &'static [&'static [u8]],
    /// Empty elements that stand for a line break.
    breaks: &'static [&'static [u8]],
    /// Empty elements that stand for spaces (ODT's `text:s`, with a count).
    spaces: Option<&'static [u8]>,
}

const DOCX: Vocabulary = Vocabulary {
    paragraphs: &[b"p"],
    text: Some(b"t"),
    skipped: &[b"instrText", b"delText", b"del"],
    tabs: &[b"tab"],
    breaks: &[b"br", b"cr"],
    spaces: None,
};

const ODT: Vocabulary = Vocabulary {
    paragraphs: &[b"p", b"h"],
    text: None,
    skipped: &[
        b"annotation",
        b"note-citation",
        b"tracked-changes",
        b"deletion",
    ],
    tabs: &[b"tab"],
    breaks: &[b"line-break"],
    spaces: Some(b"s"),
};

fn paragraphs(
    xml: impl std::io::BufRead,
    vocabulary: &Vocabulary,
    text_limit: usize,
) -> Result<String, quick_xml::Error> {
    let mut reader = Reader::from_reader(xml);
    let mut buffer = Vec::new();
    let mut text = String::new();
    // Depths of the open paragraph, text element and skipped element (0: none open). Only
    // counters, so that any nesting depth costs nothing.
    let (mut depth, mut in_paragraph, mut in_text, mut skipping) = (0usize, 0usize, 0usize, 0usize);
    let mut line = String::new();
    loop {
        buffer.clear();
        match reader.read_event_into(&mut buffer)? {
            Event::Start(element) => {
                depth += 1;
                let name = element.local_name();
                let name = name.as_ref();
                if skipping == 0 && vocabulary.skipped.contains(&name) {
                    skipping = depth;
                } else if vocabulary.paragraphs.contains(&name) && in_paragraph == 0 {
                    in_paragraph = depth;
                } else if vocabulary.text == Some(name) {
                    in_text = depth;
                }
            }
            Event::End(_) => {
                if depth == skipping {
                    skipping = 0;
                } else if depth == in_paragraph {
                    in_paragraph = 0;
                    let trimmed = line.trim();
                    if !trimmed.is_empty() {
                        text.push_str(trimmed);
                        text.push('\n');
                    }
                    line.clear();
                    if text.len() >= text_limit {
                        break;
                    }
                } else if depth == in_text {
                    in_text = 0;
                }
                depth = depth.saturating_sub(1);
            }
            Event::Empty(element) if skipping == 0 && in_paragraph > 0 => {
                let name = element.local_name();
                let name = name.as_ref();
                if vocabulary.tabs.contains(&name) {
                    line.push('\t');
                } else if vocabulary.breaks.contains(&name) {
                    line.push('\n');
                } else if vocabulary.spaces == Some(name) {
                    let count = element
                        .try_get_attribute("text:c")
                        .ok()
                        .flatten()
                        .and_then(|count| std::str::from_utf8(&count.value).ok()?.parse().ok())
                        .unwrap_or(1usize);
                    line.extend(std::iter::repeat_n(' ', count.min(64)));
                }
            }
            Event::Text(content) if reads_text(vocabulary, skipping, in_paragraph, in_text) => {
                line.push_str(&content.xml_content()?);
            }
            Event::CData(content) if reads_text(vocabulary, skipping, in_paragraph, in_text) => {
                line.push_str(&content.decode()?);
            }
            Event::GeneralRef(reference)
                if reads_text(vocabulary, skipping, in_paragraph, in_text) =>
            {
                if let Some(character) = reference.resolve_char_ref()? {
                    line.push(character);
                } else if let Some(entity) =
                    quick_xml::escape::resolve_predefined_entity(&reference.decode()?)
                {
                    line.push_str(entity);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        if line.len() > text_limit {
            break;
        }
    }
    let trimmed = line.trim();
    if !trimmed.is_empty() {
        text.push_str(trimmed);
    }
    Ok(text.trim_end().to_string())
}

fn reads_text(
    vocabulary: &Vocabulary,
    skipping: usize,
    in_paragraph: usize,
    in_text: usize,
) -> bool {
    skipping == 0 && in_paragraph > 0 && (vocabulary.text.is_none() || in_text > 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// A ZIP archive of `entries` (name, content), stored or deflated.
    pub(crate) fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            writer.start_file(*name, options).expect("an entry");
            writer.write_all(content).expect("written");
        }
        writer.finish().expect("finished").into_inner()
    }

    pub(crate) fn docx(body: &str) -> Vec<u8> {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        );
        archive(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", xml.as_bytes()),
        ])
    }

    pub(crate) fn odt(body: &str) -> Vec<u8> {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>{body}</office:text></office:body></office:document-content>"#
        );
        archive(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text"),
            ("content.xml", xml.as_bytes()),
        ])
    }

    #[test]
    fn docx_paragraphs_one_line_each() {
        let bytes = docx(
            "<w:p><w:r><w:t>A fine film</w:t></w:r><w:r><w:t xml:space=\"preserve\"> &amp; a fine cast.</w:t></w:r></w:p>\
             <w:p><w:r><w:instrText>PAGE \\* MERGEFORMAT</w:instrText></w:r></w:p>\
             <w:p><w:del><w:r><w:delText>Deleted.</w:delText></w:r></w:del><w:r><w:t>Loved</w:t><w:tab/><w:t>it.</w:t></w:r></w:p>\
             <w:tbl><w:tr><w:tc><w:p><w:r><w:t>In a table.</w:t></w:r></w:p></w:tc></w:tr></w:tbl>",
        );
        assert_eq!(identify(&bytes), Some(Format::Docx));
        assert_eq!(
            read(&bytes, Format::Docx, 1 << 20).expect("a DOCX"),
            "A fine film & a fine cast.\nLoved\tit.\nIn a table."
        );
    }

    #[test]
    fn odt_paragraphs_and_headings() {
        let bytes = odt("<text:h text:outline-level=\"1\">Review</text:h>\
             <text:p>Two<text:s text:c=\"2\"/>spaces, <text:span>a span</text:span>.<office:annotation><text:p>A comment.</text:p></office:annotation></text:p>\
             <text:list><text:list-item><text:p>A list item.</text:p></text:list-item></text:list>");
        assert_eq!(identify(&bytes), Some(Format::Odt));
        assert_eq!(
            read(&bytes, Format::Odt, 1 << 20).expect("an ODT"),
            "Review\nTwo  spaces, a span.\nA list item."
        );
    }

    #[test]
    fn malformed_and_empty_documents_say_why() {
        assert_eq!(identify(b"PK\x03\x04 not really"), None);
        let other = archive(&[("readme.txt", b"hello")]);
        assert_eq!(identify(&other), None);
        let broken = archive(&[("word/document.xml", b"<w:document><w:p><w:t>cut")]);
        let error = read(&broken, Format::Docx, 1 << 20);
        // A cut body still gives the text read so far, or says what is wrong.
        assert!(
            error.as_ref().is_ok_and(|text| text == "cut")
                || error
                    .as_ref()
                    .is_err_and(|error| error.to_string().starts_with("malformed DOCX")),
            "{error:?}"
        );
        assert_eq!(
            read(&docx("<w:p/>"), Format::Docx, 1 << 20)
                .unwrap_err()
                .to_string(),
            "the DOCX document holds no text"
        );
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limits() {
        // 20 MB of paragraphs compress to a few hundred kB; reading stops at the text limit.
        let paragraph = "<w:p><w:r><w:t>Again and again.</w:t></w:r></w:p>";
        let body = paragraph.repeat(20_000_000 / paragraph.len());
        let bytes = docx(&body);
        assert!(bytes.len() < 2 << 20, "{} bytes", bytes.len());
        let started = std::time::Instant::now();
        let text = read(&bytes, Format::Docx, 1 << 20).expect("a DOCX");
        assert!(text.len() <= (1 << 20) + 64, "{}", text.len());
        assert!(started.elapsed().as_secs() < 10);
    }
}
