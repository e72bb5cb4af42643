//! Turns a text into what the engine feeds: sentences (see [`super::segment`]) tokenized with
//! the model's own tokenizer, the document-start token in front, cut at a token limit.

use std::ops::Range;

use super::segment::split_sentences;
use crate::engine::{EngineError, Model, Token};

/// Default most tokens read from one document (document-start token included).
pub const DEFAULT_TOKEN_LIMIT: usize = 2048;

/// Most bytes of a document looked at for a token limit: far more than the limit's tokens can
/// use (64 bytes a token, at least 1 MiB), and a bound on the work and memory one document may
/// cost however it arrives (a file, a line, a JSON record, an HTTP request).
pub fn byte_limit(token_limit: usize) -> usize {
    token_limit.saturating_mul(64).max(1 << 20)
}

/// The longest prefix of `text` within `limit` bytes that ends on a character boundary, and
/// whether anything was cut.
pub fn bounded_prefix(text: &str, limit: usize) -> (&str, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// One sentence, ready to feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentenceTokens {
    /// Byte range of the sentence's content in the document.
    pub span: Range<usize>,
    /// Its tokens, including the separator before it (and the document-start token for the
    /// first sentence).
    pub tokens: Vec<Token>,
}

/// A document split and tokenized for feeding, sentence after sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedDocument {
    /// Sentences within the token limit, in order; the last one may be cut short.
    pub sentences: Vec<SentenceTokens>,
    /// Whether the token limit cut the document.
    pub truncated: bool,
    /// Sentences of the whole document, including those past the limit.
    pub sentences_in_document: usize,
}

impl PreparedDocument {
    /// Tokens that will be fed (all kept sentences).
    pub fn token_count(&self) -> usize {
        self.sentences
            .iter()
            .map(|sentence| sentence.tokens.len())
            .sum()
    }

    /// All kept token ids in order, as the layer-0 head reads them (token ids are never
    /// negative).
    pub fn token_ids(&self) -> Vec<u32> {
        self.sentences
            .iter()
            .flat_map(|sentence| sentence.tokens.iter().map(|&token| token as u32))
            .collect()
    }
}

/// Why a document cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Nothing but whitespace.
    #[error("the document is empty")]
    Empty,
    /// The limit leaves no room for any text.
    #[error("the token limit {0} leaves no room for text")]
    LimitTooSmall(usize),
    /// The tokenizer failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Splits `text` into sentences and tokenizes each one with `model`'s tokenizer, keeping at
/// most `token_limit` tokens in all. Only the first [`byte_limit`] bytes are looked at.
///
/// Each sentence is tokenized together with the whitespace that separates it from the previous
/// one, so the concatenated tokens stay close to tokenizing the whole text at once.
pub fn prepare_document(
    model: &Model,
    text: &str,
    token_limit: usize,
) -> Result<PreparedDocument, DocumentError> {
    let (text, cut) = bounded_prefix(text, byte_limit(token_limit));
    let sentences = split_sentences(text);
    if sentences.is_empty() {
        return Err(DocumentError::Empty);
    }
    let start_tokens = model.document_start_tokens();
    if token_limit <= start_tokens.len() {
        return Err(DocumentError::LimitTooSmall(token_limit));
    }
    let mut budget = token_limit;
    let mut prepared = Vec::with_capacity(sentences.len());
    let mut truncated = false;
    for (index, sentence) in sentences.iter().enumerate() {
        let mut tokens = if index == 0 {
            start_tokens.clone()
        } else {
            Vec::new()
        };
        tokens.extend(model.tokenize(sentence.feed_text(text))?);
        if tokens.len() > budget {
            tokens.truncate(budget);
            truncated = true;
        }
        budget -= tokens.len();
        // A sentence reduced to nothing (or to the start token alone) carries no text.
        let text_tokens = tokens.len() - if index == 0 { start_tokens.len() } else { 0 };
        if text_tokens > 0 {
            prepared.push(SentenceTokens {
                span: sentence.span.clone(),
                tokens,
            });
        } else if index == 0 {
            return Err(DocumentError::Empty);
        }
        if truncated || budget == 0 {
            truncated = truncated || index + 1 < sentences.len();
            break;
        }
    }
    Ok(PreparedDocument {
        sentences: prepared,
        truncated: truncated || cut,
        sentences_in_document: sentences.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_bound_cuts_on_a_character_boundary() {
        assert_eq!(byte_limit(2048), 1 << 20);
        assert_eq!(byte_limit(100_000), 6_400_000);
        assert_eq!(bounded_prefix("short", 10), ("short", false));
        // "é" is two bytes: a bound in its middle keeps the text before it.
        assert_eq!(bounded_prefix("aé", 2), ("a", true));
        assert_eq!(bounded_prefix("aé", 3), ("aé", false));
        assert_eq!(bounded_prefix("😍😍", 5), ("😍", true));
    }
}
