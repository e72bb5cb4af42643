//! Batch jobs: parallel documents (`--jobs`, `--unordered`), resumable output (`-o FILE
//! --resume`) after a `kill -9`, and shards (`--shard K/N`) that cover every document once.
//! Uses the compiled-in pack and the fixtures' 24 reviews as JSON Lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use exitwise::classifier::parallel::{PoolError, PoolOptions, classify_in_parallel};
use exitwise::engine::{SessionOptions, SessionPlan};
use exitwise::exit::Budget;
use exitwise::pack::AdapterPack;

use crate::common::{TestModel, model_path, shared_model, text};

/// The fixtures' reviews (train and dev), one JSON Lines file, in a fresh folder.
fn reviews() -> (tempfile::TempDir, PathBuf) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut all = String::new();
    for name in ["reviews-train.jsonl", "reviews-dev.jsonl"] {
        all += &std::fs::read_to_string(fixtures.join(name)).expect("fixture");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("reviews.jsonl");
    std::fs::write(&path, all).expect("write");
    (dir, path)
}

fn command(model: &Path, input: &Path, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exitwise"));
    command
        .args(["classify", "--jsonl", "--model"])
        .arg(model)
        .arg(input)
        .args(arguments)
        .env("NO_COLOR", "1");
    command
}

fn run(model: &Path, input: &Path, arguments: &[&str]) -> Output {
    command(model, input, arguments).output().expect("runs")
}

fn parse(jsonl: &str) -> Vec<Value> {
    jsonl
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|record| record["id"].as_str().expect("an id").to_string())
        .collect()
}

/// Records by id, checking that no id is there twice.
fn by_id(records: &[Value]) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for record in records {
        let id = record["id"].as_str().expect("an id").to_string();
        assert!(
            map.insert(id.clone(), record.clone()).is_none(),
            "{id} twice"
        );
    }
    map
}

/// Asserts that two runs answered every document alike: label, where it stopped, what it
/// computed, and probabilities within 1e-4 (the time is the only field allowed to differ).
fn assert_same_answers(left: &BTreeMap<String, Value>, right: &BTreeMap<String, Value>) {
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        right.keys().collect::<Vec<_>>()
    );
    for (id, record) in left {
        let other = &right[id];
        for field in ["label", "exit", "cost", "tokens_read", "tokens_total"] {
            assert_eq!(record[field], other[field], "{id}: {field}");
        }
        for (label, probability) in record["probs"].as_object().expect("probs") {
            let difference = (probability.as_f64().expect("a number")
                - other["probs"][label].as_f64().expect("a number"))
            .abs();
            assert!(difference < 1e-4, "{id}: {label} differs by {difference}");
        }
    }
}

#[test]
fn parallel_documents_keep_the_input_order_and_answer_as_one_session_does() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let (_dir, input) = reviews();
    let one = run(&model, &input, &["--jobs", "1", "--threads", "1"]);
    assert_eq!(one.status.code(), Some(0), "{}", text(&one.stderr));
    let one = parse(&text(&one.stdout));
    assert_eq!(one.len(), 24);
    let three = run(&model, &input, &["--jobs", "3", "--threads", "3"]);
    assert_eq!(three.status.code(), Some(0), "{}", text(&three.stderr));
    let three = parse(&text(&three.stdout));
    assert_eq!(ids(&three), ids(&one), "records in input order");
    assert_same_answers(&by_id(&one), &by_id(&three));

    let unordered = run(
        &model,
        &input,
        &["--jobs", "3", "--threads", "3", "--unordered"],
    );
    assert_eq!(
        unordered.status.code(),
        Some(0),
        "{}",
        text(&unordered.stderr)
    );
    assert_same_answers(&by_id(&one), &by_id(&parse(&text(&unordered.stdout))));
}

#[test]
fn a_killed_run_resumes_without_losing_or_repeating_a_record() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let (dir, input) = reviews();
    let whole = run(&model, &input, &["--policy", "full", "--threads", "2"]);
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));
    let whole = by_id(&parse(&text(&whole.stdout)));

    let output = dir.path().join("part.jsonl");
    let output_argument = output.to_str().expect("path");
    let mut child = command(
        &model,
        &input,
        &["--policy", "full", "--threads", "2", "-o", output_argument],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("starts");
    // Killed (SIGKILL) once a few records are out.
    let started = Instant::now();
    loop {
        let written = std::fs::read_to_string(&output).unwrap_or_default();
        if written.lines().count() >= 3 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no records");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let mut written = std::fs::read_to_string(&output).expect("read");
    let complete = written.matches('\n').count();
    // The kill may itself have cut a line short; the whole partial line is what goes.
    let kept_bytes = written.rfind('\n').map_or(0, |end| end + 1);
    assert!(
        complete < 24,
        "the kill came after the last record: the test proves nothing"
    );
    // A write cut short by the kill, as a power cut or a kill mid-write leaves it.
    written.push_str("{\"id\":\"train-9\",\"label\":\"p");
    let cut_bytes = written.len() - kept_bytes;
    std::fs::write(&output, &written).expect("write");

    let again = run(
        &model,
        &input,
        &["--policy", "full", "--threads", "2", "-o", output_argument],
    );
    assert_eq!(again.status.code(), Some(2), "refused without --resume");
    assert!(
        text(&again.stderr).contains("already holds records: pass --resume"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&output).expect("read"),
        written,
        "left as it was"
    );

    let resumed = run(
        &model,
        &input,
        &[
            "--policy",
            "full",
            "--threads",
            "2",
            "-o",
            output_argument,
            "--resume",
        ],
    );
    let stderr = text(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{complete} records kept, a partial last line of {cut_bytes} bytes removed"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{complete} already in the output")),
        "{stderr}"
    );
    assert!(resumed.stdout.is_empty(), "records go to the file only");
    let final_records = by_id(&parse(&std::fs::read_to_string(&output).expect("read")));
    assert_same_answers(&whole, &final_records);

    // Nothing left to do: a second resume classifies nothing and leaves the file alone.
    let before = std::fs::read_to_string(&output).expect("read");
    let idle = run(&model, &input, &["-o", output_argument, "--resume"]);
    assert_eq!(idle.status.code(), Some(0), "{}", text(&idle.stderr));
    assert!(
        text(&idle.stderr).contains("0 documents classified, 24 already in the output"),
        "{}",
        text(&idle.stderr)
    );
    assert_eq!(std::fs::read_to_string(&output).expect("read"), before);
}

#[test]
fn shards_cover_every_document_exactly_once_and_merge_with_cat() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let (_dir, input) = reviews();
    let whole = run(&model, &input, &["--threads", "2"]);
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));
    let whole = by_id(&parse(&text(&whole.stdout)));
    let mut merged = String::new();
    let mut sizes = Vec::new();
    for shard in 0..3 {
        let part = run(
            &model,
            &input,
            &["--threads", "2", "--shard", &format!("{shard}/3")],
        );
        assert_eq!(part.status.code(), Some(0), "{}", text(&part.stderr));
        let part = text(&part.stdout);
        sizes.push(part.lines().count());
        merged += &part;
    }
    // `by_id` refuses an id seen twice; the keys must be every document's.
    assert_same_answers(&whole, &by_id(&parse(&merged)));
    assert!(sizes.iter().all(|&size| size > 0), "{sizes:?}");

    let bad = run(&model, &input, &["--shard", "3/3"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("expected K/N with 0 ≤ K < N"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn resume_needs_an_output_file_of_json_lines() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let (dir, input) = reviews();
    let without_output = run(&model, &input, &["--resume"]);
    assert_eq!(without_output.status.code(), Some(2));
    assert!(
        text(&without_output.stderr).contains("--output <FILE>"),
        "{}",
        text(&without_output.stderr)
    );
    let output = dir.path().join("out.tsv");
    let as_tsv = run(
        &model,
        &input,
        &[
            "--resume",
            "--format",
            "tsv",
            "-o",
            output.to_str().expect("path"),
        ],
    );
    assert_eq!(as_tsv.status.code(), Some(2));
    assert_eq!(
        text(&as_tsv.stderr),
        "error: --resume reads the ids back from JSON Lines records: use --format jsonl\n"
    );
}

/// The pool over the compiled-in pack: jobs are texts, answers their labels.
fn pool_run(
    jobs: usize,
    texts: &[&str],
    work: impl Fn(&mut exitwise::classifier::Classifier<'_, '_>, (usize, String)) -> (usize, usize)
    + Sync,
    deliver: impl FnMut((usize, usize)) -> Result<(), PoolError>,
) -> Option<Result<(), PoolError>> {
    let model = shared_model(TestModel::Gemma)?;
    let pack = AdapterPack::embedded()
        .expect("a compiled-in pack")
        .expect("it loads");
    let config = pack
        .operating_point(
            exitwise::exit::PolicyKind::TwoDimensional,
            Budget::from_hundredths(100),
        )
        .expect("a setting");
    let options = PoolOptions {
        plan: SessionPlan {
            sessions: jobs,
            threads_per_session: Some(1),
        },
        session: SessionOptions {
            context_tokens: 512,
            ..SessionOptions::default()
        },
        ordered: true,
    };
    let texts: Vec<(usize, String)> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| (index, (*text).to_string()))
        .collect();
    Some(classify_in_parallel(
        model,
        &pack,
        config,
        &options,
        |submitter| {
            for job in texts {
                submitter.submit(job)?;
            }
            Ok(())
        },
        work,
        deliver,
    ))
}

fn label_of(
    classifier: &mut exitwise::classifier::Classifier<'_, '_>,
    (index, text): (usize, String),
) -> (usize, usize) {
    let model = shared_model(TestModel::Gemma).expect("loaded");
    let document = exitwise::text::prepare_document(model, &text, 512).expect("a document");
    (
        index,
        classifier.classify(&document).expect("classified").class,
    )
}

const SHORT_REVIEWS: [&str; 6] = [
    "A delight from start to finish.",
    "Dull and slow.",
    "Great cast, lovely music.",
    "I nearly walked out.",
    "Moving and funny.",
    "A waste of an evening.",
];

#[test]
fn a_panic_on_a_session_thread_is_an_error_with_its_message_not_a_hang_or_a_gap() {
    let mut delivered = Vec::new();
    let Some(outcome) = pool_run(
        2,
        &SHORT_REVIEWS,
        |classifier, (index, text)| {
            assert!(index != 3, "job 3 is poisoned");
            label_of(classifier, (index, text))
        },
        |(index, _)| {
            delivered.push(index);
            Ok(())
        },
    ) else {
        return;
    };
    let error = outcome.expect_err("the panic is not swallowed");
    assert_eq!(
        error.to_string(),
        "a classifying thread panicked: job 3 is poisoned"
    );
    // In order, and nothing past the gap the panic left.
    assert!(
        delivered.iter().copied().eq(0..delivered.len()),
        "{delivered:?}"
    );
    assert!(delivered.len() <= 3, "{delivered:?}");
}

#[test]
fn an_output_that_fails_stops_the_pool_and_its_error_is_returned() {
    let mut delivered = 0;
    let Some(outcome) = pool_run(2, &SHORT_REVIEWS, label_of, |_| {
        delivered += 1;
        if delivered == 2 {
            Err(PoolError::Stopped)
        } else {
            Ok(())
        }
    }) else {
        return;
    };
    assert!(matches!(outcome, Err(PoolError::Stopped)), "{outcome:?}");
    assert_eq!(delivered, 2, "nothing is delivered after the output failed");

    let mut labels = Vec::new();
    let outcome = pool_run(3, &SHORT_REVIEWS, label_of, |(index, class)| {
        labels.push((index, class));
        Ok(())
    });
    assert!(matches!(outcome, Some(Ok(()))), "{outcome:?}");
    assert_eq!(
        labels.iter().map(|(index, _)| *index).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
}
