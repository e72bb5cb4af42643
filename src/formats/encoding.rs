//! Plain text in the encodings people's files are in: a byte-order mark decides (UTF-8,
//! UTF-16 and UTF-32, either byte order); without one, UTF-8 when the bytes are valid UTF-8;
//! otherwise the legacy encoding Firefox's detector ([`chardetng`]) guesses, kept only when the
//! bytes decode without errors into text without control characters. `--encoding` forces one.
//!
//! Decoding is [`encoding_rs`]' (the WHATWG encodings); UTF-32, which the WHATWG standard
//! leaves out, is the one decoder written here (four bytes to one `char`, see docs/design.md).

use std::borrow::Cow;

use encoding_rs::Encoding;

use super::ReadError;

/// A text encoding exitwise can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    /// One of the WHATWG encodings (UTF-8, UTF-16, windows-1252, Shift_JIS, …).
    Whatwg(&'static Encoding),
    /// UTF-32, little-endian.
    Utf32Le,
    /// UTF-32, big-endian.
    Utf32Be,
}

impl TextEncoding {
    /// UTF-8.
    pub const UTF_8: TextEncoding = TextEncoding::Whatwg(encoding_rs::UTF_8);

    /// The encoding a label names (`latin1`, `utf-16le`, `shift_jis`, `utf-32`, …), as the
    /// WHATWG standard maps labels; `None` for an unknown label.
    pub fn from_label(label: &str) -> Option<TextEncoding> {
        let normalized = label.trim().to_ascii_lowercase().replace('_', "-");
        match normalized.as_str() {
            "utf-32" | "utf-32le" | "utf32" | "utf32le" => Some(TextEncoding::Utf32Le),
            "utf-32be" | "utf32be" => Some(TextEncoding::Utf32Be),
            _ => Encoding::for_label_no_replacement(label.trim().as_bytes())
                .map(TextEncoding::Whatwg),
        }
    }

    /// The encoding's canonical name (`UTF-8`, `windows-1252`, `UTF-32LE`).
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Whatwg(encoding) => encoding.name(),
            TextEncoding::Utf32Le => "UTF-32LE",
            TextEncoding::Utf32Be => "UTF-32BE",
        }
    }

    /// Whether this is UTF-8.
    pub fn is_utf8(self) -> bool {
        self == TextEncoding::UTF_8
    }

    /// Decodes `bytes` (without a byte-order mark), replacing malformed sequences with U+FFFD
    /// (an incomplete UTF-32 character at the end is dropped).
    pub fn decode_lossy(self, bytes: &[u8]) -> String {
        match self {
            TextEncoding::Whatwg(encoding) => {
                encoding.decode_without_bom_handling(bytes).0.into_owned()
            }
            TextEncoding::Utf32Le | TextEncoding::Utf32Be => utf32_words(bytes, self)
                .map(|value| char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect(),
        }
    }

    /// Decodes `bytes` (without a byte-order mark), refusing malformed input: the text, or
    /// the byte offset of the first malformed sequence.
    pub fn decode_strict(self, bytes: &[u8]) -> Result<Cow<'_, str>, usize> {
        match self {
            TextEncoding::Whatwg(encoding) if encoding == encoding_rs::UTF_8 => {
                std::str::from_utf8(bytes)
                    .map(Cow::Borrowed)
                    .map_err(|error| error.valid_up_to())
            }
            TextEncoding::Whatwg(encoding) => encoding
                .decode_without_bom_handling_and_without_replacement(bytes)
                .ok_or_else(|| first_malformed_offset(encoding, bytes)),
            TextEncoding::Utf32Le | TextEncoding::Utf32Be => {
                decode_utf32(bytes, self).map(Cow::Owned)
            }
        }
    }
}

/// The byte-order mark at the start of `bytes`: the encoding and the mark's length. UTF-32's
/// marks are tested first, since UTF-32LE's begins with UTF-16LE's.
pub fn byte_order_mark(bytes: &[u8]) -> Option<(TextEncoding, usize)> {
    if bytes.starts_with(&[0xFF, 0xFE, 0x00, 0x00]) {
        return Some((TextEncoding::Utf32Le, 4));
    }
    if bytes.starts_with(&[0x00, 0x00, 0xFE, 0xFF]) {
        return Some((TextEncoding::Utf32Be, 4));
    }
    Encoding::for_bom(bytes).map(|(encoding, length)| (TextEncoding::Whatwg(encoding), length))
}

/// Decoded text and the encoding it was read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedText {
    /// The text.
    pub text: String,
    /// The encoding used.
    pub encoding: TextEncoding,
}

/// Decodes a plain-text file's bytes: `forced` when given (a byte-order mark is still
/// skipped), else by its byte-order mark, else UTF-8 when valid, else the detected legacy
/// encoding when the result reads as text. `cut` says the bytes were cut at a size limit, so an
/// incomplete character at their end is dropped rather than refused.
pub fn decode(
    bytes: &[u8],
    forced: Option<TextEncoding>,
    cut: bool,
) -> Result<DecodedText, ReadError> {
    let (encoding, body) = match (byte_order_mark(bytes), forced) {
        (Some((marked, length)), None) => (marked, &bytes[length..]),
        (Some((marked, length)), Some(forced)) if marked == forced => (forced, &bytes[length..]),
        (_, Some(forced)) => (forced, bytes),
        (None, None) => return detect_and_decode(bytes, cut),
    };
    let body = if cut {
        trim_partial(encoding, body)
    } else {
        body
    };
    let text = encoding
        .decode_strict(body)
        .map_err(|offset| ReadError::Malformed {
            what: format!("{} text", encoding.name()),
            reason: format!("invalid byte sequence at offset {offset}"),
        })?
        .into_owned();
    if forced.is_none() && !reads_as_text(&text) {
        return Err(ReadError::Binary(
            "control characters in what its byte-order mark calls text".into(),
        ));
    }
    Ok(DecodedText { text, encoding })
}

fn detect_and_decode(bytes: &[u8], cut: bool) -> Result<DecodedText, ReadError> {
    // NUL bytes never occur in text of any single- or multi-byte legacy encoding, and UTF-16
    // or UTF-32 without a byte-order mark is not something Windows or Unix tools write.
    if bytes.contains(&0) {
        return Err(ReadError::Binary("NUL bytes".into()));
    }
    let utf8_body = if cut {
        trim_partial(TextEncoding::UTF_8, bytes)
    } else {
        bytes
    };
    if let Ok(text) = std::str::from_utf8(utf8_body) {
        if !reads_as_text(text) {
            return Err(ReadError::Binary("control characters".into()));
        }
        return Ok(DecodedText {
            text: text.to_string(),
            encoding: TextEncoding::UTF_8,
        });
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(bytes, !cut);
    let guess = TextEncoding::Whatwg(detector.guess(None, chardetng::Utf8Detection::Deny));
    let body = if cut {
        trim_partial(guess, bytes)
    } else {
        bytes
    };
    match guess.decode_strict(body) {
        Ok(text) if reads_as_text(&text) => Ok(DecodedText {
            text: text.into_owned(),
            encoding: guess,
        }),
        _ => Err(ReadError::UndecidableEncoding {
            guess: guess.name().to_string(),
        }),
    }
}

/// Whether decoded text reads as text: control characters other than tab, line feed, form
/// feed, carriage return and escape are at most 1 in 1000 characters. Random bytes decoded as
/// a single-byte encoding are about one in eight control characters.
fn reads_as_text(text: &str) -> bool {
    let (mut characters, mut controls) = (0usize, 0usize);
    for character in text.chars() {
        characters += 1;
        if character.is_control() && !matches!(character, '\t' | '\n' | '\x0c' | '\r' | '\x1b') {
            controls += 1;
        }
    }
    controls * 1000 <= characters
}

/// `bytes` without an incomplete character at their end (they were cut at a byte limit).
fn trim_partial(encoding: TextEncoding, bytes: &[u8]) -> &[u8] {
    match encoding {
        TextEncoding::Utf32Le | TextEncoding::Utf32Be => &bytes[..bytes.len() / 4 * 4],
        TextEncoding::Whatwg(encoding)
            if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE =>
        {
            let even = &bytes[..bytes.len() / 2 * 2];
            // A lone leading surrogate at the end is the first half of a cut pair.
            match even.len().checked_sub(2).map(|start| &even[start..]) {
                Some(last) => {
                    let unit = if encoding == encoding_rs::UTF_16LE {
                        u16::from_le_bytes([last[0], last[1]])
                    } else {
                        u16::from_be_bytes([last[0], last[1]])
                    };
                    if (0xD800..0xDC00).contains(&unit) {
                        &even[..even.len() - 2]
                    } else {
                        even
                    }
                }
                None => even,
            }
        }
        TextEncoding::Whatwg(encoding) => {
            // Multi-byte legacy encodings use at most 4 bytes a character: drop up to 3 bytes
            // from the end until the rest decodes.
            let mut end = bytes.len();
            for _ in 0..4 {
                if encoding
                    .decode_without_bom_handling_and_without_replacement(&bytes[..end])
                    .is_some()
                {
                    return &bytes[..end];
                }
                if end == 0 {
                    break;
                }
                end -= 1;
            }
            bytes
        }
    }
}

fn first_malformed_offset(encoding: &'static Encoding, bytes: &[u8]) -> usize {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut output = String::with_capacity(
        decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .unwrap_or(bytes.len() * 3 + 16),
    );
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut output, true);
    match result {
        encoding_rs::DecoderResult::Malformed(length, consumed_after) => {
            read.saturating_sub(usize::from(length) + usize::from(consumed_after))
        }
        _ => read,
    }
}

/// The 32-bit words of UTF-32 `bytes` in `encoding`'s byte order (a partial last word dropped).
fn utf32_words(bytes: &[u8], encoding: TextEncoding) -> impl Iterator<Item = u32> + '_ {
    bytes.chunks_exact(4).map(move |chunk| {
        let word = [chunk[0], chunk[1], chunk[2], chunk[3]];
        if encoding == TextEncoding::Utf32Be {
            u32::from_be_bytes(word)
        } else {
            u32::from_le_bytes(word)
        }
    })
}

fn decode_utf32(bytes: &[u8], encoding: TextEncoding) -> Result<String, usize> {
    if !bytes.len().is_multiple_of(4) {
        return Err(bytes.len() / 4 * 4);
    }
    let mut text = String::with_capacity(bytes.len() / 4);
    for (index, value) in utf32_words(bytes, encoding).enumerate() {
        text.push(char::from_u32(value).ok_or(index * 4)?);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(text: &str, mark: bool) -> Vec<u8> {
        let mut bytes = if mark { vec![0xFF, 0xFE] } else { Vec::new() };
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        bytes
    }

    #[test]
    fn byte_order_marks_decide() {
        let decoded = decode(&utf16le("Héllo, wörld 😍", true), None, false).expect("UTF-16");
        assert_eq!(decoded.text, "Héllo, wörld 😍");
        assert_eq!(decoded.encoding.name(), "UTF-16LE");
        let mut big_endian = vec![0xFE, 0xFF];
        big_endian.extend("Ünïcode".encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(
            decode(&big_endian, None, false).expect("UTF-16BE").text,
            "Ünïcode"
        );
        let mut utf32 = vec![0xFF, 0xFE, 0, 0];
        utf32.extend("Grüße 😍".chars().flat_map(|c| u32::from(c).to_le_bytes()));
        let decoded = decode(&utf32, None, false).expect("UTF-32");
        assert_eq!(
            (decoded.text.as_str(), decoded.encoding.name()),
            ("Grüße 😍", "UTF-32LE")
        );
        let mut utf32be = vec![0, 0, 0xFE, 0xFF];
        utf32be.extend("ab".chars().flat_map(|c| u32::from(c).to_be_bytes()));
        assert_eq!(decode(&utf32be, None, false).expect("UTF-32BE").text, "ab");
        let utf8 = decode("\u{feff}fine".as_bytes(), None, false).expect("UTF-8 BOM");
        assert_eq!(utf8.text, "fine");
    }

    #[test]
    fn legacy_encodings_are_detected() {
        let (latin1, _, _) = encoding_rs::WINDOWS_1252
            .encode("Un très beau film, émouvant et drôle, à voir absolument. Les acteurs sont formidables.");
        let decoded = decode(&latin1, None, false).expect("windows-1252");
        assert!(
            decoded.text.starts_with("Un très beau film"),
            "{}",
            decoded.text
        );
        assert_eq!(decoded.encoding.name(), "windows-1252");
        let (shift_jis, _, _) = encoding_rs::SHIFT_JIS
            .encode("この映画はとても面白かったです。俳優の演技も素晴らしい。");
        let decoded = decode(&shift_jis, None, false).expect("Shift_JIS");
        assert_eq!(decoded.encoding.name(), "Shift_JIS");
        assert!(decoded.text.starts_with("この映画は"));
    }

    #[test]
    fn forced_encodings_win_and_refuse_what_does_not_decode() {
        let forced = TextEncoding::from_label("latin1").expect("a label");
        assert_eq!(forced.name(), "windows-1252");
        let decoded = decode(b"caf\xe9", Some(forced), false).expect("forced");
        assert_eq!(decoded.text, "café");
        let utf16 = TextEncoding::from_label("UTF-16LE").expect("a label");
        assert_eq!(
            decode(&utf16le("ok", false), Some(utf16), false)
                .expect("no BOM")
                .text,
            "ok"
        );
        assert_eq!(
            TextEncoding::from_label("utf-32be"),
            Some(TextEncoding::Utf32Be)
        );
        assert_eq!(TextEncoding::from_label("no-such-thing"), None);
        let error = decode(b"caf\xe9", Some(TextEncoding::UTF_8), false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed UTF-8 text: invalid byte sequence at offset 3"
        );
    }

    #[test]
    fn binary_and_undecidable_bytes_are_refused() {
        assert_eq!(
            decode(b"a\0b", None, false).unwrap_err().to_string(),
            "binary content (NUL bytes), not text"
        );
        // Bytes that are not UTF-8 and decode into control characters in every guess.
        let noise: Vec<u8> = (0u32..4096)
            .map(|i| ((i * 2_654_435_761) >> 13) as u8 | 1)
            .collect();
        let error = decode(&noise, None, false).unwrap_err();
        assert!(
            matches!(
                error,
                ReadError::UndecidableEncoding { .. } | ReadError::Binary(_)
            ),
            "{error}"
        );
        assert!(decode(b"tab\tand\x01control", None, false).is_err());
    }

    #[test]
    fn a_cut_drops_the_incomplete_last_character() {
        let bytes = "aé".as_bytes();
        assert_eq!(
            decode(&bytes[..2], None, true).expect("cut UTF-8").text,
            "a"
        );
        let utf16 = utf16le("a😍", true);
        assert_eq!(
            decode(&utf16[..utf16.len() - 2], None, true)
                .expect("cut UTF-16")
                .text,
            "a"
        );
        assert_eq!(
            decode(&utf16[..utf16.len() - 1], None, true)
                .expect("odd UTF-16")
                .text,
            "a"
        );
    }
}
