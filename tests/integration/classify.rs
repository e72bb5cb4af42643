//! `exitwise classify` on files, directories, stdin, lines and JSON Lines; error records;
//! formats. Uses the small pack trained on the fixtures.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{TestModel, model_path, text, tiny_pack};

/// Runs `exitwise classify` with the fixture pack, one thread, and `arguments`.
fn classify(arguments: &[&str], stdin: &[u8]) -> Option<Output> {
    let model = model_path(TestModel::Gemma)?;
    let (dir, _) = tiny_pack()?;
    let pack = dir.path().join("tiny-reviews");
    let mut child = Command::new(env!("CARGO_BIN_EXE_exitwise"))
        .args(["classify", "--threads", "1", "--model"])
        .arg(&model)
        .arg("--adapters")
        .arg(&pack)
        .args(arguments)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    Some(child.wait_with_output().expect("finish"))
}

fn records(output: &Output) -> Vec<serde_json::Value> {
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

const REVIEW: &str =
    "A charming, warm film with a great cast. I enjoyed it a lot.\nThe music is lovely too.";

/// The fields that do not depend on how the document arrived.
fn essence(record: &serde_json::Value) -> String {
    format!(
        "{} {} {} {}",
        record["label"], record["exit"], record["cost"], record["tokens_total"]
    )
}

#[test]
fn the_same_document_gives_the_same_result_from_a_file_stdin_lines_and_jsonl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("review.txt");
    std::fs::write(&file, REVIEW).expect("write");
    let Some(from_file) = classify(&["--format", "jsonl", file.to_str().expect("path")], b"")
    else {
        return;
    };
    assert_eq!(
        from_file.status.code(),
        Some(0),
        "{}",
        text(&from_file.stderr)
    );
    let from_file = records(&from_file);
    assert_eq!(from_file.len(), 1);
    assert_eq!(from_file[0]["id"], file.to_str().expect("path"));
    for field in [
        "label",
        "confidence",
        "probs",
        "exit",
        "tokens_read",
        "tokens_total",
        "truncated",
        "cost",
        "ms",
    ] {
        assert!(
            !from_file[0][field].is_null(),
            "missing {field}: {}",
            from_file[0]
        );
    }
    assert_eq!(from_file[0]["exit"]["policy"], "2d");

    let from_stdin =
        records(&classify(&["--format", "jsonl", "-"], REVIEW.as_bytes()).expect("runs"));
    assert_eq!(from_stdin[0]["id"], "<stdin>");
    assert_eq!(essence(&from_stdin[0]), essence(&from_file[0]));

    // One line holding the whole review (its line break written as a sentence boundary in JSON).
    let json = serde_json::json!({"id": "r1", "text": REVIEW}).to_string() + "\n";
    let from_jsonl =
        records(&classify(&["--format", "jsonl", "--jsonl"], json.as_bytes()).expect("runs"));
    assert_eq!(from_jsonl[0]["id"], "r1");
    assert_eq!(essence(&from_jsonl[0]), essence(&from_file[0]));

    let single_line = REVIEW.replace('\n', " ");
    let lines = format!("{single_line}\n\n{single_line}\n");
    let from_lines =
        records(&classify(&["--format", "jsonl", "--lines"], lines.as_bytes()).expect("runs"));
    assert_eq!(from_lines.len(), 2, "the empty line is skipped");
    assert_eq!(from_lines[0]["id"], "line 1");
    assert_eq!(from_lines[1]["id"], "line 3");
    let from_single =
        records(&classify(&["--format", "jsonl", "-"], single_line.as_bytes()).expect("runs"));
    assert_eq!(essence(&from_lines[0]), essence(&from_single[0]));
}

#[test]
fn bad_inputs_become_error_records_and_the_rest_is_still_classified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("a-good.txt");
    std::fs::write(&good, REVIEW).expect("write");
    let binary = dir.path().join("b-binary.bin");
    std::fs::write(&binary, b"\x7fELF\0\0\0binary").expect("write");
    let latin1 = dir.path().join("c-latin1.txt");
    std::fs::write(&latin1, b"Un film tr\xe8s \xe9mouvant, je l'ai ador\xe9.").expect("write");
    // Bytes that are not UTF-8 and read as control characters in any legacy encoding.
    let undecidable = dir.path().join("c2-undecidable.txt");
    std::fs::write(
        &undecidable,
        b"\x81\x8d\x8f\x90\x9d\x01\x02\x03\x04\x05\x06",
    )
    .expect("write");
    let empty = dir.path().join("d-empty.txt");
    std::fs::write(&empty, "  \n ").expect("write");
    let missing = dir.path().join("e-missing.txt");
    let Some(output) = classify(
        &[
            "--format",
            "jsonl",
            dir.path().to_str().expect("path"),
            missing.to_str().expect("path"),
        ],
        b"",
    ) else {
        return;
    };
    assert_eq!(output.status.code(), Some(1));
    let records = records(&output);
    let ids: Vec<&str> = records
        .iter()
        .map(|record| record["id"].as_str().expect("id"))
        .collect();
    let name = |path: &Path| path.to_str().expect("path").to_string();
    assert_eq!(
        ids,
        [
            name(&good),
            name(&binary),
            name(&latin1),
            name(&undecidable),
            name(&empty),
            name(&missing)
        ]
    );
    assert!(records[0]["label"].is_string());
    assert_eq!(records[0]["format"], "text");
    assert!(records[0].get("encoding").is_none(), "UTF-8 is not named");
    // Too short for any signature: NUL bytes say it is no text.
    assert_eq!(records[1]["error"], "binary content (NUL bytes), not text");
    assert_eq!(records[1]["format"], "text");
    // Latin-1 is detected and read.
    assert!(records[2]["label"].is_string(), "{}", records[2]);
    assert_eq!(records[2]["encoding"], "windows-1252");
    assert_eq!(records[3]["format"], "text");
    assert!(
        records[3]["error"]
            .as_str()
            .expect("error")
            .starts_with("cannot tell the text's encoding: it is not UTF-8, and as "),
        "{}",
        records[3]
    );
    assert_eq!(records[4]["error"], "the document is empty");
    assert!(
        records[5]["error"]
            .as_str()
            .expect("error")
            .starts_with("cannot open the file: ")
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "error: cannot classify `{}`: binary content",
            name(&binary)
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: cannot classify `{}`: the document is empty",
            name(&empty)
        )),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .last()
            .expect("summary")
            .starts_with("2 documents classified, 4 failed in "),
        "{stderr}"
    );
}

#[test]
fn malformed_json_lines_are_reported_by_line() {
    let input = "{\"text\": \"Superb acting.\"}\n{oops\n{\"body\": \"x\"}\n{\"id\": \"z\", \"text\": \"Dull and lifeless.\"}\n";
    let Some(output) = classify(&["--format", "jsonl", "--jsonl"], input.as_bytes()) else {
        return;
    };
    assert_eq!(output.status.code(), Some(1));
    let records = records(&output);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0]["id"], "line 1");
    assert!(
        records[1]["error"]
            .as_str()
            .expect("error")
            .starts_with("invalid JSON")
    );
    assert_eq!(records[2]["error"], "no string field `text`");
    assert_eq!(records[3]["id"], "z");
    assert!(records[3]["label"].is_string());
}

#[test]
fn text_and_tsv_formats_have_headers_and_one_row_per_document() {
    let input = "Superb acting.\nDull and lifeless.\n";
    let Some(output) = classify(&["--format", "tsv", "--lines"], input.as_bytes()) else {
        return;
    };
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].starts_with("id\tlabel\tconfidence\tsentence\tsentences\tlayer\tlayers\t"));
    assert_eq!(rows[1].split('\t').count(), rows[0].split('\t').count());
    assert!(rows[1].starts_with("line 1\t"));
    let output = classify(&["--format", "text", "--lines"], input.as_bytes()).expect("runs");
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("DOCUMENT"), "{stdout}");
    assert_eq!(stdout.lines().count(), 3);
}

#[test]
fn directories_are_walked_only_when_recursive() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("top.txt"), "Superb acting.").expect("write");
    std::fs::create_dir(dir.path().join("deeper")).expect("dir");
    std::fs::write(dir.path().join("deeper/inner.txt"), "Dull and lifeless.").expect("write");
    let root = dir.path().to_str().expect("path");
    let Some(flat) = classify(&["--format", "jsonl", root], b"") else {
        return;
    };
    assert_eq!(records(&flat).len(), 1);
    let deep = classify(&["--format", "jsonl", "--recursive", root], b"").expect("runs");
    let records = records(&deep);
    assert_eq!(records.len(), 2);
    assert!(
        records[0]["id"]
            .as_str()
            .expect("id")
            .ends_with("deeper/inner.txt")
    );
}

#[test]
fn an_uncalibrated_budget_is_a_usage_error_naming_the_calibrated_ones() {
    let Some(output) = classify(&["--budget", "3", "-"], b"Fine.") else {
        return;
    };
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("error: pack `tiny-reviews` has no exit setting for policy `2d` at budget 3 (calibrated budgets: 0, 0.5, 1, 2, 4)"),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_classification_quietly() {
    let (Some(model), Some((dir, _))) = (model_path(TestModel::Gemma), tiny_pack()) else {
        return;
    };
    let input = "Superb acting.\n".repeat(4000);
    let pack = dir.path().join("tiny-reviews");
    let mut arguments: Vec<&std::ffi::OsStr> = [
        "classify",
        "--threads",
        "1",
        "--format",
        "jsonl",
        "--lines",
        "--policy",
        "full",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    arguments.extend([
        std::ffi::OsStr::new("--model"),
        model.as_os_str(),
        std::ffi::OsStr::new("--adapters"),
        pack.as_os_str(),
    ]);
    let output = crate::common::exitwise_with_closed_stdout(&arguments, input.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        !text(&output.stderr).contains("error"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn the_default_pack_gets_clear_reviews_right_and_2d_reads_less_than_full() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    if exitwise::pack::EMBEDDED_PACK.is_none() {
        eprintln!("skipped: this build has no compiled-in default pack");
        return;
    }
    let positive = "This film is a masterpiece. The acting is superb, the story is moving and the music is beautiful. I loved every minute of it and I will watch it again.";
    let negative = "This was the worst film I have seen in years. The plot makes no sense, the acting is wooden and the dialogue is embarrassing. A complete waste of time.";
    let input = format!("{positive}\n{negative}\n");
    let run = |policy: &str| {
        let output = crate::common::exitwise(
            &[
                "classify",
                "--threads",
                "1",
                "--format",
                "jsonl",
                "--lines",
                "--policy",
                policy,
                "--model",
                model.to_str().expect("path"),
            ],
            input.as_bytes(),
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        records(&output)
    };
    let full = run("full");
    let two_dimensional = run("2d");
    for results in [&full, &two_dimensional] {
        assert_eq!(results[0]["label"], "pos", "{}", results[0]);
        assert_eq!(results[1]["label"], "neg", "{}", results[1]);
    }
    // Reviews this clear are answered by the default pack's layer-0 head from their tokens
    // alone: layer 0, nothing fed to the model, no operation.
    for record in &two_dimensional {
        assert_eq!(record["exit"]["layer"], 0, "{record}");
        assert_eq!(record["tokens_read"], 0, "{record}");
        assert_eq!(record["cost"]["token_layers"], 0, "{record}");
        assert!(
            record["tokens_total"].as_u64().expect("tokens") > 0,
            "{record}"
        );
    }
    for (full, early) in full.iter().zip(&two_dimensional) {
        let full_cost = full["cost"]["token_layers"].as_u64().expect("cost");
        let early_cost = early["cost"]["token_layers"].as_u64().expect("cost");
        assert_eq!(
            full_cost,
            full["cost"]["full_token_layers"].as_u64().expect("cost")
        );
        assert!(
            early_cost < full_cost,
            "2d {early_cost} vs full {full_cost}"
        );
    }
}

#[test]
fn a_pack_of_format_1_still_loads_and_classifies_as_before() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pack-format-1");
    let review = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/review.txt");
    let output = Command::new(env!("CARGO_BIN_EXE_exitwise"))
        .args(["classify", "--threads", "1", "--format", "jsonl", "--model"])
        .arg(&model)
        .arg("--adapters")
        .arg(&pack)
        .arg(&review)
        .output()
        .expect("classify runs");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record = &records(&output)[0];
    // What this pack answered before format 2 (`classify --format jsonl examples/` with the
    // binary of commit 9b4ef35).
    assert_eq!(record["label"], "pos");
    assert!(
        (record["confidence"].as_f64().expect("confidence") - 0.865_087_87).abs() < 1e-4,
        "{record}"
    );
    assert_eq!(
        record["exit"],
        serde_json::json!({"sentence": 8, "sentences": 8, "layer": 2, "layers": 18, "policy": "2d"})
    );
    assert_eq!(
        record["cost"],
        serde_json::json!({"token_layers": 300, "full_token_layers": 2700})
    );
}

#[test]
fn gpu_layers_without_a_gpu_warn_and_classify_on_the_cpu() {
    let Some(output) = classify(&["--gpu-layers", "4", "-"], REVIEW.as_bytes()) else {
        return;
    };
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(records(&output).len(), 1);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("4 layers were asked to run on a GPU, but there is no GPU device")
            && stderr.contains("this build has no GPU back end"),
        "{stderr}"
    );
}
