//! A mail (RFC 5322 / MIME) as the text its reader sees: the decoded subject on the first
//! line, then the decoded text parts (quoted-printable and base64 undone, every charset turned
//! into Unicode), the HTML part as visible text when the mail has no plain part; attachments,
//! headers and forwarded messages are left out. Runs of spaces and tabs become one space: in a
//! plain-text mail they align columns, they are not words. Parsed by Stalwart's
//! [`mail_parser`], which walks MIME nesting with a heap stack (any depth costs no call stack)
//! and never panics.
//!
//! Broken mail is common (spam is built broken on purpose): a multipart body whose closing
//! boundary is missing leaves its text parts undecoded, flagged as an encoding problem; when a
//! mail has no readable body part, such parts are decoded leniently (base64 with
//! mail_parser's own decoder, quoted-printable with the `quoted_printable` crate's robust mode)
//! rather than left out.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{MessageParser, MessagePart, MimeHeaders, PartType};

use super::{ReadError, html};

/// The text of one raw message.
pub fn read(raw: &[u8]) -> Result<String, ReadError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| ReadError::Malformed {
            what: "mail".into(),
            reason: "no header fields".into(),
        })?;
    let mut text = String::new();
    if let Some(subject) = message.subject() {
        text.push_str(collapse_spaces(subject).trim());
    }
    let mut bodies = Vec::new();
    for &part in &message.text_body {
        let body = match message.parts.get(part as usize).map(|part| &part.body) {
            Some(PartType::Text(body)) => body.to_string(),
            Some(PartType::Html(body)) => html_part_text(body)?,
            _ => continue,
        };
        bodies.push(body);
    }
    if bodies.iter().all(|body| body.trim().is_empty()) {
        for part in message.parts.iter().filter(|part| part.is_encoding_problem) {
            if let Some(body) = leniently_decoded(part) {
                bodies.push(body?);
            }
        }
    }
    for body in bodies {
        let body = collapse_spaces(body.trim_matches(['\n', '\r']));
        if body.trim().is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&body);
    }
    if text.trim().is_empty() {
        return Err(ReadError::NoText("mail".into()));
    }
    Ok(text)
}

/// The text of a `text/plain` or `text/html` part that mail_parser left undecoded (its MIME
/// structure is broken): transfer encoding undone, charset decoded, HTML made visible text.
/// `None` for other parts.
fn leniently_decoded(part: &MessagePart<'_>) -> Option<Result<String, ReadError>> {
    let PartType::Text(raw) = &part.body else {
        return None;
    };
    let content_type = part.content_type()?;
    let html = match (content_type.ctype(), content_type.subtype()) {
        ("text", Some(subtype)) if subtype.eq_ignore_ascii_case("html") => true,
        ("text", Some(subtype)) if subtype.eq_ignore_ascii_case("plain") => false,
        _ => return None,
    };
    let bytes = match part.content_transfer_encoding() {
        Some(encoding) if encoding.eq_ignore_ascii_case("base64") => {
            // Only the alphabet: broken mail carries stray characters between the lines.
            let alphabet: Vec<u8> = raw
                .bytes()
                .filter(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='))
                .collect();
            base64_decode(&alphabet)?
        }
        Some(encoding) if encoding.eq_ignore_ascii_case("quoted-printable") => {
            // Robust mode keeps a malformed escape as it is, as mail readers do.
            quoted_printable::decode(raw.as_bytes(), quoted_printable::ParseMode::Robust).ok()?
        }
        _ => raw.as_bytes().to_vec(),
    };
    let text = match content_type
        .attribute("charset")
        .and_then(|charset| charset_decoder(charset.as_bytes()))
    {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    };
    Some(if html {
        html_part_text(&text)
    } else {
        Ok(text)
    })
}

/// The visible text of an HTML part; when there is none although the part has content (an
/// unclosed `<!--` hides the whole body from a browser: a spammer's trick against filters),
/// its text with the tags stripped, as mail_parser's converter strips them.
fn html_part_text(html: &str) -> Result<String, ReadError> {
    let visible = html::visible_text(html)?;
    if visible.trim().is_empty() {
        return Ok(mail_parser::decoders::html::html_to_text(html));
    }
    Ok(visible)
}

/// `text` with every run of spaces and tabs as one space.
fn collapse_spaces(text: &str) -> String {
    let mut collapsed = String::with_capacity(text.len());
    let mut in_run = false;
    for character in text.chars() {
        if matches!(character, ' ' | '\t') {
            if !in_run {
                collapsed.push(' ');
            }
            in_run = true;
        } else {
            collapsed.push(character);
            in_run = false;
        }
    }
    collapsed
}

/// The `Message-ID` of a raw message, without its angle brackets, when it has one (headers only
/// are parsed).
pub fn message_id(raw: &[u8]) -> Option<String> {
    MessageParser::default()
        .parse_headers(raw)
        .and_then(|message| message.message_id().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_and_decoded_text_parts() {
        let raw = concat!(
            "From: Ann <ann@example.org>\r\n",
            "Subject: =?utf-8?q?Caf=C3=A9_tonight?=\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/mixed; boundary=\"outer\"\r\n",
            "\r\n",
            "--outer\r\n",
            "Content-Type: multipart/alternative; boundary=\"inner\"\r\n",
            "\r\n",
            "--inner\r\n",
            "Content-Type: text/plain; charset=iso-8859-1\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n",
            "\r\n",
            "Shall we meet at the caf=E9?\r\n",
            "--inner\r\n",
            "Content-Type: text/html; charset=utf-8\r\n",
            "\r\n",
            "<p>Shall we meet at the café?</p>\r\n",
            "--inner--\r\n",
            "--outer\r\n",
            "Content-Type: application/pdf; name=\"menu.pdf\"\r\n",
            "Content-Disposition: attachment; filename=\"menu.pdf\"\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "\r\n",
            "JVBERi0xLjQK\r\n",
            "--outer--\r\n",
        );
        assert_eq!(
            read(raw.as_bytes()).expect("a mail"),
            "Café tonight\nShall we meet at the café?"
        );
    }

    #[test]
    fn html_only_mail_reads_as_visible_text() {
        let raw = concat!(
            "Subject: Offer\n",
            "Content-Type: text/html\n",
            "Content-Transfer-Encoding: base64\n",
            "\n",
            // "<html><style>p{}</style><p>Cheap pills</p><script>x()</script></html>"
            "PGh0bWw+PHN0eWxlPnB7fTwvc3R5bGU+PHA+Q2hlYXAgcGlsbHM8L3A+PHNjcmlwdD54KCk8L3NjcmlwdD48L2h0bWw+\n",
        );
        assert_eq!(read(raw.as_bytes()).expect("a mail"), "Offer\nCheap pills");
    }

    #[test]
    fn broken_multipart_bodies_and_legacy_charsets_are_still_read() {
        // No closing boundary; a Big5 subject.
        let raw = concat!(
            "Subject: =?big5?Q?=A7A=A6n?=\n",
            "Content-Type: multipart/mixed; boundary=\"b\"\n",
            "\n",
            "--b\n",
            "Content-Type: text/html; charset=\"iso-8859-1\"\n",
            "Content-Transfer-Encoding: base64\n",
            "\n",
            "\n",
            // "<p>Caf\xe9   time</p>"
            "PHA+Q2Fm6SAgIHRpbWU8L3A+\n",
        );
        assert_eq!(read(raw.as_bytes()).expect("a mail"), "你好\nCafé time");
    }

    #[test]
    fn a_mail_without_text_is_an_error() {
        let raw = "Subject: \nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n";
        assert_eq!(
            read(raw.as_bytes()).unwrap_err().to_string(),
            "the mail holds no text"
        );
        assert_eq!(
            message_id(b"Message-ID: <abc@example.org>\nSubject: x\n\nbody").as_deref(),
            Some("abc@example.org")
        );
    }
}
