//! A text becomes what the engine feeds: documents are read from files, folders and streams
//! ([`input`]), cut into sentences ([`segment`]), and each sentence becomes the model's own
//! tokens under a token limit ([`document`]).

pub mod document;
pub mod input;
pub mod segment;

pub use document::{
    DEFAULT_TOKEN_LIMIT, DocumentError, PreparedDocument, SentenceTokens, byte_limit,
    prepare_document,
};
pub use segment::{Sentence, split_sentences};
