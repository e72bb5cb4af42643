//! Labelled documents for training and evaluation: JSON Lines, or CSV/TSV with a header row.
//!
//! Labels are whatever strings the file has (numbers are read as their decimal text), so a pack
//! learns the user's own label names.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One labelled document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledDocument {
    /// The `id` field when the file has one, else the line (JSON Lines) or record number.
    pub id: String,
    /// The text to classify.
    pub text: String,
    /// The label, as written in the file.
    pub label: String,
}

/// Which fields of a record hold what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldNames {
    /// Field with the text.
    pub text: String,
    /// Field with the label; empty: the file is read without labels (every label empty).
    pub label: String,
    /// Field with the document id (optional in the file).
    pub id: String,
}

impl Default for FieldNames {
    fn default() -> Self {
        FieldNames {
            text: "text".into(),
            label: "label".into(),
            id: "id".into(),
        }
    }
}

/// A labelled data file, read whole.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The file it came from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes: keys the feature cache, recorded in packs.
    pub sha256: String,
    /// Documents in file order (at most `max_documents` of them).
    pub documents: Vec<LabelledDocument>,
}

/// File formats the reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// One JSON object per line.
    JsonLines,
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
}

impl DataFormat {
    /// The format a file name implies: `.csv`, `.tsv`/`.tab`, anything else JSON Lines.
    pub fn from_path(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => DataFormat::Csv,
            Some("tsv" | "tab") => DataFormat::Tsv,
            _ => DataFormat::JsonLines,
        }
    }
}

/// Why a data file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Reading failed.
    #[error("cannot read `{path}`: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (part of the message, so not exposed as the source).
        cause: std::io::Error,
    },
    /// A record is malformed.
    #[error("`{path}` line {line}: {reason}")]
    Record {
        /// The file.
        path: PathBuf,
        /// 1-based line (JSON Lines) or record (CSV/TSV, header = 1) number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Nothing to learn from.
    #[error(
        "`{path}` has {count} documents with {classes} distinct labels; training needs at least 2 labels"
    )]
    TooFewClasses {
        /// The file.
        path: PathBuf,
        /// Documents read.
        count: usize,
        /// Distinct labels.
        classes: usize,
    },
    /// A label appears in one file but not in the file the model was trained on.
    #[error(
        "label `{label}` of `{path}` (first at {id}) does not occur in the training data (labels: {known})"
    )]
    UnknownLabel {
        /// The label.
        label: String,
        /// The file it is in.
        path: PathBuf,
        /// The first document with it.
        id: String,
        /// The known labels, comma-separated.
        known: String,
    },
}

impl Dataset {
    /// Reads `path` (format from its extension), keeping at most `max_documents` documents.
    pub fn read(
        path: &Path,
        fields: &FieldNames,
        max_documents: Option<usize>,
    ) -> Result<Self, DatasetError> {
        let io_error = |cause| DatasetError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let bytes = std::fs::read(path).map_err(io_error)?;
        Self::from_bytes(
            path,
            &bytes,
            DataFormat::from_path(path),
            fields,
            max_documents,
        )
    }

    /// Parses the contents of a data file in `format`; `path` names it in errors.
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        format: DataFormat,
        fields: &FieldNames,
        max_documents: Option<usize>,
    ) -> Result<Self, DatasetError> {
        let limit = max_documents.unwrap_or(usize::MAX);
        let documents = match format {
            DataFormat::JsonLines => read_json_lines(path, bytes, fields, limit)?,
            DataFormat::Csv => read_delimited(path, bytes, b',', fields, limit)?,
            DataFormat::Tsv => read_delimited(path, bytes, b'\t', fields, limit)?,
        };
        Ok(Dataset {
            path: path.to_path_buf(),
            sha256: crate::digest::sha256_hex(bytes),
            documents,
        })
    }

    /// Distinct labels, sorted.
    pub fn labels(&self) -> Vec<String> {
        self.documents
            .iter()
            .map(|document| document.label.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Checks that the file can train a classifier (two labels or more).
    pub fn check_trainable(&self) -> Result<(), DatasetError> {
        let classes = self.labels().len();
        if classes < 2 {
            return Err(DatasetError::TooFewClasses {
                path: self.path.clone(),
                count: self.documents.len(),
                classes,
            });
        }
        Ok(())
    }

    /// Checks that every label of this file is one of `known` (the training labels).
    pub fn check_labels_within(&self, known: &[String]) -> Result<(), DatasetError> {
        match self
            .documents
            .iter()
            .find(|document| !known.contains(&document.label))
        {
            Some(document) => Err(DatasetError::UnknownLabel {
                label: document.label.clone(),
                path: self.path.clone(),
                id: document.id.clone(),
                known: known.join(", "),
            }),
            None => Ok(()),
        }
    }
}

/// A JSON value as label or id text: strings as they are, numbers and booleans as written.
pub fn value_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A JSON Lines record as a JSON object, or the reason it is not one.
pub fn json_object(line: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str(line) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        Ok(_) => Err("expected a JSON object".into()),
        Err(error) => Err(format!("invalid JSON: {error}")),
    }
}

/// A record's text: its string field `name`, or the reason there is none.
pub fn text_field(
    record: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<String, String> {
    record
        .get(name)
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("no string field `{name}`"))
}

fn read_json_lines(
    path: &Path,
    reader: impl Read,
    fields: &FieldNames,
    limit: usize,
) -> Result<Vec<LabelledDocument>, DatasetError> {
    let mut documents = Vec::new();
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        if documents.len() >= limit {
            break;
        }
        let number = index + 1;
        let record_error = |reason: String| DatasetError::Record {
            path: path.to_path_buf(),
            line: number,
            reason,
        };
        let line = line.map_err(|cause| record_error(format!("cannot read the line: {cause}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let object = json_object(&line).map_err(record_error)?;
        let text = text_field(&object, &fields.text).map_err(record_error)?;
        let label = if fields.label.is_empty() {
            String::new()
        } else {
            object
                .get(&fields.label)
                .and_then(value_text)
                .ok_or_else(|| record_error(format!("no label field `{}`", fields.label)))?
        };
        let id = object
            .get(&fields.id)
            .and_then(value_text)
            .unwrap_or_else(|| format!("line {number}"));
        documents.push(LabelledDocument { id, text, label });
    }
    Ok(documents)
}

fn read_delimited(
    path: &Path,
    reader: impl Read,
    delimiter: u8,
    fields: &FieldNames,
    limit: usize,
) -> Result<Vec<LabelledDocument>, DatasetError> {
    let mut csv_reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(reader);
    let header_error = |reason: String| DatasetError::Record {
        path: path.to_path_buf(),
        line: 1,
        reason,
    };
    let headers = csv_reader
        .headers()
        .map_err(|error| header_error(format!("cannot read the header: {error}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|header| header == name);
    let text_column =
        column(&fields.text).ok_or_else(|| header_error(format!("no column `{}`", fields.text)))?;
    let label_column = if fields.label.is_empty() {
        None
    } else {
        Some(
            column(&fields.label)
                .ok_or_else(|| header_error(format!("no column `{}`", fields.label)))?,
        )
    };
    let id_column = column(&fields.id);
    let mut documents = Vec::new();
    for (index, record) in csv_reader.records().enumerate() {
        if documents.len() >= limit {
            break;
        }
        let number = index + 2;
        let record = record.map_err(|error| DatasetError::Record {
            path: path.to_path_buf(),
            line: error
                .position()
                .map_or(number, |position| position.line() as usize),
            reason: error.to_string(),
        })?;
        let field = |column: usize| record.get(column).unwrap_or_default().to_string();
        documents.push(LabelledDocument {
            id: id_column.map_or_else(|| format!("record {number}"), field),
            text: field(text_column),
            label: label_column.map(field).unwrap_or_default(),
        });
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write");
        path
    }

    #[test]
    fn reads_json_lines_with_string_and_number_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "data.jsonl",
            "{\"id\": \"a\", \"text\": \"Good.\", \"label\": \"pos\", \"stars\": 9}\n\n{\"text\": \"Bad.\", \"label\": \"neg\", \"stars\": 2}\n",
        );
        let data = Dataset::read(&path, &FieldNames::default(), None).expect("read");
        assert_eq!(data.documents.len(), 2);
        assert_eq!(data.documents[0].id, "a");
        assert_eq!(data.documents[1].id, "line 3");
        assert_eq!(data.labels(), ["neg", "pos"]);
        let stars = FieldNames {
            label: "stars".into(),
            ..FieldNames::default()
        };
        let data = Dataset::read(&path, &stars, Some(1)).expect("read");
        assert_eq!(data.documents.len(), 1);
        assert_eq!(data.documents[0].label, "9");
        assert_eq!(data.sha256.len(), 64);
    }

    #[test]
    fn an_empty_label_field_reads_texts_without_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let unlabelled = FieldNames {
            label: String::new(),
            ..FieldNames::default()
        };
        let lines = write(dir.path(), "texts.jsonl", "{\"text\": \"Good.\"}\n");
        let data = Dataset::read(&lines, &unlabelled, None).expect("read");
        assert_eq!(data.documents[0].label, "");
        assert!(Dataset::read(&lines, &FieldNames::default(), None).is_err());
        let table = write(dir.path(), "texts.csv", "text\nGood.\n");
        let data = Dataset::read(&table, &unlabelled, None).expect("read");
        assert_eq!(data.documents[0].text, "Good.");
        assert_eq!(data.documents[0].label, "");
    }

    #[test]
    fn reads_csv_and_tsv_with_quoted_multiline_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let csv_path = write(
            dir.path(),
            "data.csv",
            "label,text\nspam,\"Win money, now!\nClick here.\"\nham,See you at five.\n",
        );
        let data = Dataset::read(&csv_path, &FieldNames::default(), None).expect("csv");
        assert_eq!(data.documents.len(), 2);
        assert_eq!(data.documents[0].text, "Win money, now!\nClick here.");
        assert_eq!(data.documents[0].id, "record 2");
        let tsv_path = write(
            dir.path(),
            "data.tsv",
            "id\ttext\tlabel\nx1\tHello there.\tham\n",
        );
        let data = Dataset::read(&tsv_path, &FieldNames::default(), None).expect("tsv");
        assert_eq!(data.documents[0].id, "x1");
        assert_eq!(data.documents[0].label, "ham");
    }

    #[test]
    fn malformed_records_name_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "bad.jsonl",
            "{\"text\": \"ok\", \"label\": \"a\"}\n{\"text\": 3, \"label\": \"b\"}\n",
        );
        let error = Dataset::read(&path, &FieldNames::default(), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("`{}` line 2: no string field `text`", path.display())
        );
        let path = write(dir.path(), "broken.jsonl", "{\"text\": \"ok\"\n");
        let error = Dataset::read(&path, &FieldNames::default(), None).unwrap_err();
        assert!(
            error.to_string().contains("line 1: invalid JSON"),
            "{error}"
        );
        let path = write(dir.path(), "nolabel.csv", "text,kind\nhello,x\n");
        let error = Dataset::read(&path, &FieldNames::default(), None).unwrap_err();
        assert!(
            error.to_string().ends_with("line 1: no column `label`"),
            "{error}"
        );
    }

    #[test]
    fn label_checks_name_the_offending_label() {
        let dir = tempfile::tempdir().expect("tempdir");
        let train = write(
            dir.path(),
            "train.jsonl",
            "{\"text\": \"a\", \"label\": \"x\"}\n",
        );
        let data = Dataset::read(&train, &FieldNames::default(), None).expect("read");
        assert!(matches!(
            data.check_trainable(),
            Err(DatasetError::TooFewClasses { classes: 1, .. })
        ));
        let dev = write(
            dir.path(),
            "dev.jsonl",
            "{\"id\": 7, \"text\": \"b\", \"label\": \"y\"}\n",
        );
        let dev = Dataset::read(&dev, &FieldNames::default(), None).expect("read");
        let error = dev
            .check_labels_within(&["x".to_string(), "z".to_string()])
            .unwrap_err();
        assert!(
            error.to_string().starts_with("label `y` of `")
                && error
                    .to_string()
                    .ends_with("(first at 7) does not occur in the training data (labels: x, z)"),
            "{error}"
        );
    }
}
