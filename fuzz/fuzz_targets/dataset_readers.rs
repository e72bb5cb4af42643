//! The labelled-data readers (JSON Lines, CSV, TSV) on arbitrary bytes: documents or an error
//! naming the line, never a panic. The first byte picks the format and the fields.
#![no_main]

use std::path::Path;

use exitwise::dataset::{DataFormat, Dataset, FieldNames};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((&choice, contents)) = bytes.split_first() else {
        return;
    };
    let format = match choice % 3 {
        0 => DataFormat::JsonLines,
        1 => DataFormat::Csv,
        _ => DataFormat::Tsv,
    };
    let fields = if choice & 0x80 == 0 {
        FieldNames::default()
    } else {
        // Reading texts without labels, as `calibrate --unlabelled` does.
        FieldNames {
            label: String::new(),
            ..FieldNames::default()
        }
    };
    if let Ok(data) = Dataset::from_bytes(Path::new("fuzz"), contents, format, &fields, Some(64)) {
        assert!(data.documents.len() <= 64);
        let labels = data.labels();
        let _ = data.check_labels_within(&labels);
        let _ = data.check_trainable();
    }
});
