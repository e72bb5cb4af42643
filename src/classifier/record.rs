//! The per-document result record, shared by `classify --format jsonl` and the server's
//! `/v1/classify`, so both speak the same fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Classification;
use crate::formats::Format;

/// Where the walk stopped (1-based, as people count: "layer 4 of 18").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Sentences read: the number of the answering sentence, from 1.
    pub sentence: usize,
    /// Sentences of the document within the token limit.
    pub sentences: usize,
    /// Layer whose head answered, 1-based.
    pub layer: usize,
    /// Layers of the model.
    pub layers: usize,
    /// The policy.
    pub policy: String,
}

/// Token×layer operations computed, against the whole document at full depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRecord {
    /// Operations computed.
    pub token_layers: u64,
    /// Operations of the whole document at full depth.
    pub full_token_layers: u64,
}

/// One classified document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The document's id (path, line, id field or request id).
    pub id: String,
    /// The reader that turned the input into text: `text`, `mail`, `html`, `pdf`, `docx` or
    /// `odt` (absent in records of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The encoding the text was decoded from, when it was not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Predicted label.
    pub label: String,
    /// Its calibrated probability.
    pub confidence: f32,
    /// Every label's probability.
    pub probs: BTreeMap<String, f32>,
    /// Where the walk stopped.
    pub exit: ExitRecord,
    /// Tokens fed to the model.
    pub tokens_read: usize,
    /// Tokens of the document within the token limit.
    pub tokens_total: usize,
    /// Whether the token limit cut the document.
    pub truncated: bool,
    /// Operations computed.
    pub cost: CostRecord,
    /// Milliseconds spent on this document (rounded to 0.1).
    pub ms: f64,
}

impl ResultRecord {
    /// The record of `result` for the document `id`, read by `format` (from `encoding`, when
    /// not UTF-8), with the pack's `labels`.
    pub fn new(
        id: &str,
        format: Format,
        encoding: Option<&str>,
        labels: &[String],
        result: &Classification,
        milliseconds: f64,
    ) -> Self {
        ResultRecord {
            id: id.to_string(),
            format: Some(format.name().to_string()),
            encoding: encoding.map(str::to_string),
            label: labels[result.class].clone(),
            confidence: result.probabilities[result.class],
            probs: labels
                .iter()
                .cloned()
                .zip(result.probabilities.iter().copied())
                .collect(),
            exit: ExitRecord {
                sentence: result.exit.sentences_read(),
                sentences: result.exit.sentences,
                layer: result.exit.layer_number(),
                layers: result.exit.layers,
                policy: result.exit.policy.name().to_string(),
            },
            tokens_read: result.tokens_read,
            tokens_total: result.tokens_total,
            truncated: result.truncated,
            cost: CostRecord {
                token_layers: result.token_layers,
                full_token_layers: result.full_token_layers,
            },
            ms: (milliseconds * 10.0).round() / 10.0,
        }
    }
}
