//! Which reader a file needs, from its first bytes and, where those do not decide, its name's
//! extension. Binary formats are told by their magic bytes ([`infer`]'s signatures; ZIP-based
//! documents by their entries, see [`super::office`]); text formats by sniffing: HTML by the
//! WHATWG MIME-sniffing patterns (as [`infer`] implements them), mail by a header block of
//! RFC 5322 fields, a mailbox by its `From ` separator line.

use super::Format;
use super::encoding::byte_order_mark;

/// Bytes looked at to recognise a format.
pub const SNIFF_BYTES: usize = 8192;

/// What the first bytes say a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// One document in this format.
    Document(Format),
    /// An mbox mailbox: one document per message.
    Mailbox,
    /// A ZIP archive: a DOCX or ODT document, or an archive exitwise does not read (its
    /// entries tell, once the whole file is read).
    Zip,
    /// A binary format exitwise does not read, with its MIME type when known.
    Binary(Option<&'static str>),
}

/// Recognises `head` (a file's first [`SNIFF_BYTES`] or all of it) with the file's name
/// `extension` (lower-case, without the dot) as a tie-breaker.
pub fn detect(head: &[u8], extension: Option<&str>) -> Detected {
    if infer::archive::is_pdf(head) {
        return Detected::Document(Format::Pdf);
    }
    if infer::archive::is_zip(head) {
        return Detected::Zip;
    }
    let text_head = match byte_order_mark(head) {
        Some((encoding, length)) => encoding.decode_lossy(&head[length..]),
        None if looks_like_text(head) => String::from_utf8_lossy(head).into_owned(),
        None => {
            // Not UTF-8 text: a known binary signature decides, else a legacy encoding may
            // still read it as text (decoding will tell).
            if let Some(kind) = infer::get(head)
                && kind.matcher_type() != infer::MatcherType::Text
            {
                return Detected::Binary(Some(kind.mime_type()));
            }
            String::from_utf8_lossy(head).into_owned()
        }
    };
    detect_text(&text_head, extension)
}

/// Recognises text that is already decoded (a request body declared as text, a head decoded
/// by its byte-order mark).
pub fn detect_text(head: &str, extension: Option<&str>) -> Detected {
    if head.starts_with("From ") && header_block_fields(after_first_line(head)) >= 1 {
        return Detected::Mailbox;
    }
    if header_block_fields(head) >= 2 {
        return Detected::Document(Format::Mail);
    }
    if infer::text::is_html(head.as_bytes()) || starts_as_xhtml(head) {
        return Detected::Document(Format::Html);
    }
    match extension {
        Some("eml" | "msg" | "mail") => Detected::Document(Format::Mail),
        Some("mbox" | "mbx") => Detected::Mailbox,
        Some("html" | "htm" | "xhtml" | "shtml") => Detected::Document(Format::Html),
        _ => Detected::Document(Format::Text),
    }
}

/// Header field names that mark a mail (lower case).
const MAIL_FIELDS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "received",
    "return-path",
    "delivered-to",
    "reply-to",
    "sender",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "in-reply-to",
    "references",
    "x-mailer",
    "envelope-to",
];

/// How many well-known mail fields a header block at the start of `text` has: every line up
/// to the first empty one (or the end of `text`) must be a header field (`Name: value`) or a
/// folded continuation; otherwise it is not a header block and the answer is 0.
fn header_block_fields(text: &str) -> usize {
    let mut known = 0;
    let mut lines = 0;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return if lines > 0 { known } else { 0 };
        }
        lines += 1;
        if line.starts_with([' ', '\t']) {
            if lines == 1 {
                return 0;
            }
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            // The last line may be cut by the sniffing window.
            return if text.ends_with(line) { known } else { 0 };
        };
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_graphic() && byte != b':');
        if !valid_name {
            return 0;
        }
        if MAIL_FIELDS.contains(&name.to_ascii_lowercase().as_str()) {
            known += 1;
        }
    }
    known
}

fn after_first_line(text: &str) -> &str {
    text.split_once('\n').map_or("", |(_, rest)| rest)
}

fn starts_as_xhtml(head: &str) -> bool {
    let trimmed = head.trim_start();
    trimmed.starts_with("<?xml")
        && trimmed
            .get(..trimmed.len().min(1024))
            .is_some_and(|start| start.to_ascii_lowercase().contains("<html"))
}

/// Whether `bytes` read as UTF-8 text (an incomplete character at the end allowed, as the
/// window may cut one) without NUL or other control bytes.
fn looks_like_text(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    };
    valid
        && !bytes
            .iter()
            .any(|&byte| byte < 0x20 && !matches!(byte, b'\t' | b'\n' | b'\x0c' | b'\r' | 0x1b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide_binary_formats() {
        assert_eq!(
            detect(b"%PDF-1.7\n%\xe2\xe3", Some("txt")),
            Detected::Document(Format::Pdf)
        );
        assert_eq!(detect(b"PK\x03\x04\x14\x00", None), Detected::Zip);
        assert_eq!(
            detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", Some("txt")),
            Detected::Binary(Some("image/png"))
        );
    }

    #[test]
    fn mail_and_mailboxes_are_sniffed() {
        let mail = "Return-Path: <a@example.org>\nReceived: from x\n\tby y\nSubject: Hi\n\nBody";
        assert_eq!(
            detect(mail.as_bytes(), None),
            Detected::Document(Format::Mail)
        );
        let mbox = format!("From a@example.org Mon Sep 30 13:53:59 2002\n{mail}");
        assert_eq!(detect(mbox.as_bytes(), Some("txt")), Detected::Mailbox);
        // One known field is not enough, and prose with a colon is not a header block.
        assert_eq!(
            detect(b"Subject: films\n\nI liked it.", None),
            Detected::Document(Format::Text)
        );
        assert_eq!(
            detect(b"Verdict: a fine film. Cast: great.\nSee it.", None),
            Detected::Document(Format::Text)
        );
        assert_eq!(
            detect(b"From here on, it gets better.\nTruly.", None),
            Detected::Document(Format::Text)
        );
        // The extension decides when the content does not.
        assert_eq!(
            detect(b"Just a body.", Some("eml")),
            Detected::Document(Format::Mail)
        );
        assert_eq!(detect(b"", Some("mbox")), Detected::Mailbox);
    }

    #[test]
    fn html_is_sniffed_in_any_unicode_encoding() {
        assert_eq!(
            detect(b"  <!DOCTYPE html><html><p>Hi</p>", Some("txt")),
            Detected::Document(Format::Html)
        );
        assert_eq!(
            detect(
                b"<?xml version=\"1.0\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\">",
                None
            ),
            Detected::Document(Format::Html)
        );
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(
            "<html><body>Hi</body></html>"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        assert_eq!(detect(&utf16, None), Detected::Document(Format::Html));
        assert_eq!(
            detect(b"I <b>loved</b> it.", None),
            Detected::Document(Format::Text)
        );
        assert_eq!(
            detect(b"I loved it.", Some("html")),
            Detected::Document(Format::Html)
        );
    }

    #[test]
    fn legacy_text_is_text_not_binary() {
        let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode("Très bien, très émouvant.");
        assert_eq!(detect(&latin1, None), Detected::Document(Format::Text));
    }
}
