//! The files people have become the text they read: mail (and mailboxes), web pages, PDF,
//! DOCX and ODT documents, and plain text in any common encoding, each recognised by its
//! content ([`sniff`]) and read by a kept crate, never by its markup. Every reader is bounded:
//! raw bytes by a size limit per format, text by the document's byte limit, time and memory of
//! the fragile readers by a child process ([`isolation`]).
//!
//! Nothing here knows about models or tokens: the output is a `String` for [`crate::text`].

pub mod encoding;
pub mod html;
pub mod isolation;
pub mod mail;
pub mod mailbox;
pub mod office;
pub mod pdf;
pub mod sniff;

use std::fmt;

pub use encoding::TextEncoding;
pub use isolation::Isolation;
pub use sniff::{Detected, SNIFF_BYTES, detect};

/// A document format exitwise reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text, in any encoding.
    Text,
    /// One mail message (RFC 5322 / MIME); an mbox mailbox is many of them.
    Mail,
    /// A web page.
    Html,
    /// A PDF's text layer.
    Pdf,
    /// An Office Open XML word-processor document.
    Docx,
    /// An OpenDocument text document.
    Odt,
}

impl Format {
    /// Every format, in the order help texts list them.
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Mail,
        Format::Html,
        Format::Pdf,
        Format::Docx,
        Format::Odt,
    ];

    /// The name records and options use (`text`, `mail`, `html`, `pdf`, `docx`, `odt`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Mail => "mail",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Odt => "odt",
        }
    }

    /// The format as a sentence names it (`text`, `mail`, `web page`, `PDF`, `DOCX`, `ODT`).
    pub fn noun(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Mail => "mail",
            Format::Html => "web page",
            Format::Pdf => "PDF",
            Format::Docx => "DOCX",
            Format::Odt => "ODT",
        }
    }

    /// The format of a name, as [`Format::name`] writes it.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.name() == name)
    }

    /// Most raw bytes of one document of this format that are read. Text is read up to the
    /// document's byte limit (more could not be used); markup carries several times its text
    /// in tags, scripts and encodings; containers (PDF, DOCX, ODT) must be read whole, and a
    /// bigger one is refused rather than cut.
    pub fn raw_limit(self, text_limit: usize) -> usize {
        match self {
            Format::Text => text_limit,
            Format::Html => text_limit.max(MOST_MARKUP_BYTES / 4),
            Format::Mail => text_limit.max(MOST_MARKUP_BYTES),
            Format::Pdf | Format::Docx | Format::Odt => MOST_CONTAINER_BYTES,
        }
    }

    /// Whether a document cut at [`Format::raw_limit`] is refused (it cannot be read in part).
    pub fn needs_whole_file(self) -> bool {
        matches!(self, Format::Pdf | Format::Docx | Format::Odt)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Most raw bytes of one mail (attachments included; a web page gets a quarter of it).
pub const MOST_MARKUP_BYTES: usize = 64 << 20;

/// Most bytes of one PDF, DOCX or ODT file.
pub const MOST_CONTAINER_BYTES: usize = 128 << 20;

/// Why a document has no text to classify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ReadError {
    /// Bytes that are no text and no format exitwise reads.
    #[error("binary content ({0}), not text")]
    Binary(String),
    /// A known format exitwise does not read.
    #[error("not a format exitwise reads: {0} (it reads text, mail, HTML, PDF, DOCX and ODT)")]
    Unsupported(String),
    /// No encoding decodes the bytes into text.
    #[error(
        "cannot tell the text's encoding: it is not UTF-8, and as {guess} (the best guess) it does not read as text; name one with --encoding"
    )]
    UndecidableEncoding {
        /// The detector's best guess.
        guess: String,
    },
    /// The bytes break the format's rules.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read (`PDF`, `UTF-16LE text`, …).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A container bigger than exitwise reads.
    #[error("the {what} is larger than {limit} MiB, the most exitwise reads of one")]
    TooLarge {
        /// What it is (`PDF file`, `ZIP archive`).
        what: String,
        /// The limit, in MiB.
        limit: usize,
    },
    /// A PDF whose pages hold no text.
    #[error("the PDF has no text layer (a scanned image?): run OCR on it first")]
    NoTextLayer,
    /// A PDF that needs a password.
    #[error("the PDF is encrypted with a password")]
    Encrypted,
    /// A document whose format holds no text here.
    #[error("the {0} holds no text")]
    NoText(String),
    /// A reader ran out of time.
    #[error("reading the {} took longer than {seconds} s (it is killed then)", .format.noun())]
    TimedOut {
        /// The format read.
        format: Format,
        /// The time limit.
        seconds: u64,
    },
    /// A reader failed (crashed, ran out of memory, or could not start).
    #[error("the {} reader failed: {reason}", .format.noun())]
    ReaderFailed {
        /// The format read.
        format: Format,
        /// What happened.
        reason: String,
    },
    /// `--encoding` named an encoding exitwise does not know.
    #[error("unknown text encoding `{0}`")]
    UnknownEncoding(String),
}

/// How documents are read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The reader to use (`None`: recognise each document's format).
    pub format: Option<Format>,
    /// The encoding of plain text and web pages (`None`: detect it).
    pub encoding: Option<TextEncoding>,
    /// Most bytes of text kept of one document (see [`crate::text::byte_limit`]).
    pub text_limit: usize,
    /// Where the fragile readers run.
    pub isolation: Isolation,
}

/// A document's text and how it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The text.
    pub text: String,
    /// The reader used.
    pub format: Format,
    /// The encoding the text was decoded from, when it was not UTF-8 (plain text and pages).
    pub encoding: Option<&'static str>,
}

/// Reads one document of `format` from its raw bytes (`cut`: they were cut at the format's
/// raw limit).
pub fn read_document(
    bytes: &[u8],
    format: Format,
    cut: bool,
    options: &ReadOptions,
) -> Result<Extracted, ReadError> {
    if cut && format.needs_whole_file() {
        return Err(ReadError::TooLarge {
            what: format!("{} file", format.noun()),
            limit: format.raw_limit(options.text_limit) >> 20,
        });
    }
    let mut encoding = None;
    let text = match format {
        Format::Text => {
            let decoded = encoding::decode(bytes, options.encoding, cut)?;
            encoding = Some(decoded.encoding);
            decoded.text
        }
        Format::Html => {
            let decoded = html::decode(bytes, options.encoding, cut)?;
            encoding = Some(decoded.encoding);
            html::main_text(&decoded.text)?
        }
        Format::Mail => mail::read(bytes)?,
        Format::Pdf => options
            .isolation
            .read(bytes, Format::Pdf, options.text_limit)?,
        Format::Docx | Format::Odt => office::read(bytes, format, options.text_limit)?,
    };
    Ok(Extracted {
        text,
        format,
        encoding: encoding
            .filter(|encoding| !encoding.is_utf8())
            .map(TextEncoding::name),
    })
}

/// The readers of container formats, as a child process runs them ([`isolation::run_child`])
/// or a test calls them.
pub(crate) fn read_container(
    bytes: &[u8],
    format: Format,
    text_limit: usize,
) -> Result<String, ReadError> {
    match format {
        Format::Pdf => pdf::read(bytes, text_limit),
        Format::Docx | Format::Odt => office::read(bytes, format, text_limit),
        Format::Text | Format::Mail | Format::Html => Err(ReadError::ReaderFailed {
            format,
            reason: "not a container format".into(),
        }),
    }
}

/// What a file's recognised kind means for reading it: its format, or the error record a
/// binary file gets. ZIP archives are told apart by their entries, so this takes all bytes.
pub fn resolve_zip(bytes: &[u8]) -> Result<Format, ReadError> {
    office::identify(bytes).ok_or_else(|| ReadError::Unsupported("a ZIP archive".into()))
}

/// The error record of a binary file of a known or unknown kind.
pub fn binary_error(mime: Option<&str>) -> ReadError {
    match mime {
        Some(mime) => ReadError::Unsupported(mime.to_string()),
        None => ReadError::Binary("unknown format".into()),
    }
}
