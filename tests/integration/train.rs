//! `exitwise train` end to end with the real model on the small fixtures in `tests/fixtures`.

use std::path::{Path, PathBuf};

use exitwise::engine::{Model, ModelOptions, Session, SessionOptions};
use exitwise::features::{FeatureAccumulator, extract_document_features};
use exitwise::pack::AdapterPack;

use crate::common::{TestModel, exitwise, model_path, text};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn train(model: &Path, out: &Path, cache: &Path, dev: &Path) -> std::process::Output {
    exitwise(
        &[
            "train",
            "--model",
            path_text(model),
            "--train",
            path_text(&fixture("reviews-train.jsonl")),
            "--dev",
            path_text(dev),
            "--out",
            path_text(out),
            "--cache-dir",
            path_text(cache),
            "--threads",
            "1",
        ],
        b"",
    )
}

/// Probabilities of the pack's best layer for a whole text.
fn classify_with_best_layer(model: &Model, pack: &AdapterPack, text: &str) -> Vec<f32> {
    let document =
        exitwise::text::prepare_document(model, text, pack.manifest.token_limit).expect("prepare");
    let mut session = Session::new(
        model,
        &SessionOptions {
            context_tokens: 512,
            threads: Some(1),
            poll: None,
            sessions_in_process: 1,
            tap: true,
        },
    )
    .expect("session");
    let mut accumulator = FeatureAccumulator::new(model.layers(), model.width());
    let features =
        extract_document_features(&mut session, &mut accumulator, &document).expect("features");
    let layer = pack.manifest.best_layer;
    let last = features.prefixes() - 1;
    let feature = features
        .of(pack.manifest.feature_kind)
        .slice(ndarray::s![last, layer, ..])
        .to_owned();
    pack.probabilities(layer, feature.view()).to_vec()
}

#[test]
fn training_on_a_tiny_set_makes_a_pack_that_loads_and_predicts() {
    let Some(model_file) = model_path(TestModel::Gemma) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, cache) = (dir.path().join("tiny-reviews"), dir.path().join("cache"));
    let output = train(&model_file, &out, &cache, &fixture("reviews-dev.jsonl"));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with("pack tiny-reviews: 2 classes (neg, pos), 16 training documents ("),
        "{stdout}"
    );
    // One row per layer in the accuracy table: right-aligned layer numbers.
    let layer_rows = stdout
        .lines()
        .filter(|line| {
            line.starts_with(' ') && line.trim_start().starts_with(|c: char| c.is_ascii_digit())
        })
        .count();
    assert_eq!(layer_rows, 18, "{stdout}");
    assert!(
        stdout.contains("exit calibration on 8 documents of `"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fixed-sequence testing at risk δ = 0.1: with probability at least 90%"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|line| line.starts_with("2d "))
            .count(),
        5,
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("train: 16 documents decoded"), "{stderr}");
    assert!(stderr.contains("dev: 8 documents decoded"), "{stderr}");

    let pack = AdapterPack::load_dir(&out).expect("the pack loads");
    assert_eq!(pack.manifest.labels, ["neg", "pos"]);
    assert_eq!(pack.heads.len(), 18);
    assert_eq!(pack.manifest.training.train_documents, 16);
    assert_eq!(pack.manifest.training.cross_fitting_folds, Some(2));
    // A learned exit model for each policy and target, and the sequences calibration tests:
    // three policies, two losses, two rule sets.
    assert_eq!(pack.manifest.exit_models.len(), 6);
    assert_eq!(pack.manifest.exit_sequences.len(), 12);
    let calibration = pack.manifest.calibration.as_ref().expect("calibrated");
    assert_eq!(calibration.delta, Some(0.1));
    // 8 dev documents cannot certify a budget of 4 points (no loss at all still bounds the
    // rate at 1 - 0.1^(1/8) = 0.25): every policy falls back to full's setting.
    assert!(
        calibration
            .operating_points
            .iter()
            .all(|point| point.config.kind == exitwise::exit::PolicyKind::Full),
        "{:?}",
        calibration.operating_points
    );
    let model = Model::load(&model_file, &ModelOptions::default()).expect("model");
    assert!(
        pack.check_model(model.facts(), None, true)
            .expect("fits")
            .is_empty()
    );
    // Even 16 training reviews separate these on the best layer.
    assert!(pack.manifest.layers[pack.manifest.best_layer].dev_accuracy_full >= 0.75);
    let positive = classify_with_best_layer(
        &model,
        &pack,
        "A wonderful film with a brilliant cast. I loved it.",
    );
    let negative = classify_with_best_layer(
        &model,
        &pack,
        "An awful, boring film with terrible acting. I hated it.",
    );
    assert!(positive[1] > 0.5, "positive review: {positive:?}");
    assert!(negative[0] > 0.5, "negative review: {negative:?}");
    for probabilities in [positive, negative] {
        assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    // A second run with the same inputs reads every feature from the cache.
    let again = dir.path().join("again");
    let output = train(&model_file, &again, &cache, &fixture("reviews-dev.jsonl"));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("train: 0 documents decoded") && stderr.contains("16 from the cache"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dev: 0 documents decoded") && stderr.contains("8 from the cache"),
        "{stderr}"
    );
    let second = AdapterPack::load_dir(&again).expect("second pack");
    assert_eq!(second.heads, pack.heads, "training is deterministic");

    // `accuracy` on the dev file reproduces the dev accuracies recorded in the pack.
    let output = exitwise(
        &[
            "accuracy",
            "--model",
            path_text(&model_file),
            "--adapters",
            path_text(&out),
            "--data",
            path_text(&fixture("reviews-dev.jsonl")),
            "--cache-dir",
            path_text(&cache),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let best = pack.manifest.best_layer;
    // Layers are numbered from 1 for users: index 17 is layer 18.
    let expected = format!(
        "whole documents: the pack's best layer (chosen by cross-fitting on the training data) {}: {:.4}; last layer 18: {:.4}\n",
        best + 1,
        pack.manifest.layers[best].dev_accuracy_full,
        pack.manifest.layers[17].dev_accuracy_full
    );
    assert!(stdout.ends_with(&expected), "{stdout}");
}

#[test]
fn an_unknown_pack_name_lists_the_packs_there_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_exitwise"))
        .args([
            "accuracy",
            "--adapters",
            "no-such-pack",
            "--data",
            path_text(&fixture("reviews-dev.jsonl")),
        ])
        .env("EXITWISE_ADAPTERS_DIR", dir.path())
        .env("HOME", dir.path())
        .env_remove("XDG_DATA_HOME")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    // The folders searched, in order, then every pack there is (the compiled-in one included).
    assert!(
        stderr.starts_with(&format!(
            "error: no adapter pack `no-such-pack`: it is neither a folder nor a pack in `{}`, `{}`, `/var/lib/exitwise/adapters`, `/usr/share/exitwise/adapters`",
            dir.path().display(),
            dir.path().join(".local/share/exitwise/adapters").display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("gemma3-270m-imdb"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_dev_label_unknown_to_training_is_named() {
    let Some(model_file) = model_path(TestModel::Gemma) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = dir.path().join("dev.jsonl");
    std::fs::write(&dev, "{\"id\": \"d1\", \"text\": \"Fine.\", \"label\": \"pos\"}\n{\"id\": \"d2\", \"text\": \"Meh.\", \"label\": \"meh\"}\n").expect("write");
    let output = train(
        &model_file,
        &dir.path().join("pack"),
        &dir.path().join("cache"),
        &dev,
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: label `meh` of `{}` (first at d2) does not occur in the training data (labels: neg, pos)\n",
            dev.display()
        )
    );
}

#[test]
fn training_refuses_one_class_and_a_folder_that_is_not_a_pack() {
    let Some(model_file) = model_path(TestModel::Gemma) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let single = dir.path().join("single.jsonl");
    std::fs::write(&single, "{\"text\": \"Fine.\", \"label\": \"pos\"}\n").expect("write");
    let output = exitwise(
        &[
            "train",
            "--model",
            path_text(&model_file),
            "--train",
            path_text(&single),
            "--dev",
            path_text(&single),
            "--out",
            path_text(&dir.path().join("p")),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).ends_with(
            "has 1 documents with 1 distinct labels; training needs at least 2 labels\n"
        ),
        "{}",
        text(&output.stderr)
    );

    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).expect("dir");
    std::fs::write(occupied.join("notes.txt"), "mine").expect("write");
    let output = train(
        &model_file,
        &occupied,
        &dir.path().join("cache"),
        &fixture("reviews-dev.jsonl"),
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: refusing to write the pack into `{}`: the folder exists and is not a pack\n",
            occupied.display()
        )
    );
}

#[test]
fn recalibration_on_unlabelled_text_writes_a_new_pack_and_never_overwrites() {
    let Some(model_file) = model_path(TestModel::Gemma) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (pack, cache) = (dir.path().join("tiny"), dir.path().join("cache"));
    let output = train(&model_file, &pack, &cache, &fixture("reviews-dev.jsonl"));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // A user's own text: no labels at all.
    let texts = dir.path().join("texts.jsonl");
    let lines: String = std::fs::read_to_string(fixture("reviews-dev.jsonl"))
        .expect("fixture")
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("json");
            serde_json::json!({"text": record["text"]}).to_string() + "\n"
        })
        .collect();
    std::fs::write(&texts, lines).expect("write");
    let recalibrated = dir.path().join("tiny-mine");
    let calibrate = |extra: &[&str]| {
        let mut arguments = vec![
            "calibrate",
            path_text(&pack),
            "--dev",
            path_text(&texts),
            "--unlabelled",
            "--model",
            path_text(&model_file),
            "--cache-dir",
            path_text(&cache),
            "--threads",
            "1",
        ];
        arguments.extend_from_slice(extra);
        exitwise(&arguments, b"")
    };
    let output = calibrate(&["--out", path_text(&recalibrated), "--delta", "0.2"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("(without labels)"), "{stdout}");
    assert!(
        stdout.contains("bounded by its disagreement with `full`"),
        "{stdout}"
    );
    let new = AdapterPack::load_dir(&recalibrated).expect("the new pack loads");
    assert_eq!(new.manifest.name, "tiny-mine");
    let calibration = new.manifest.calibration.as_ref().expect("calibrated");
    assert_eq!(calibration.delta, Some(0.2));
    assert_eq!(
        calibration.loss,
        Some(exitwise::exit::calibration::LossKind::Disagreement)
    );
    let data = calibration.data.as_ref().expect("the data's fingerprint");
    assert!(!data.labelled);
    assert_eq!(data.documents, 8);
    assert_eq!(data.sha256.len(), 64);
    assert!(
        calibration
            .operating_points
            .iter()
            .all(|point| point.dev_accuracy.is_none())
    );
    // The original is untouched, and nothing is replaced without --force.
    let original = AdapterPack::load_dir(&pack).expect("the original loads");
    assert_ne!(original.manifest.calibration, new.manifest.calibration);
    for extra in [vec!["--out", path_text(&recalibrated)], vec![]] {
        let output = calibrate(&extra);
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        assert!(
            text(&output.stderr).starts_with("error: refusing to replace the pack `"),
            "{}",
            text(&output.stderr)
        );
    }
    let output = calibrate(&["--out", path_text(&recalibrated), "--force"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}
