//! `exitwise quantize`: a lower type that loads, and the refusals.

use exitwise::engine::{Model, ModelOptions};

use crate::common::{TestModel, exitwise, model_path, text};

#[test]
fn quantized_files_load_with_their_new_type() {
    let Some(source) = model_path(TestModel::Smol) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let half = dir.path().join("smol-f16.gguf");
    let low = dir.path().join("smol-q8_0.gguf");
    // The catalog file is quantized (Q4_1): F16 needs --allow-requantize.
    let output = exitwise(
        &[
            "quantize",
            "--model",
            source.to_str().expect("utf-8"),
            "--type",
            "F16",
            "--out",
            half.to_str().expect("utf-8"),
            "--allow-requantize",
            "--threads",
            "1",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("cannot be better than the source"));
    // An F16 file is not quantized: no flag needed.
    let output = exitwise(
        &[
            "quantize",
            "--model",
            half.to_str().expect("utf-8"),
            "--type",
            "Q8_0",
            "--out",
            low.to_str().expect("utf-8"),
            "--threads",
            "1",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("wrote"),
        "{}",
        text(&output.stderr)
    );
    for (path, expected) in [(&half, "F16"), (&low, "Q8_0")] {
        let model = Model::load(path, &ModelOptions::default()).expect("the new file loads");
        assert_eq!(model.facts().quantization.as_deref(), Some(expected));
        assert_eq!(model.layers(), 30);
        assert_eq!(model.width(), 576);
        assert!(
            !model
                .tokenize("A short test.")
                .expect("tokenize")
                .is_empty()
        );
    }
    // Nothing but the two models is left in the folder.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn quantize_refuses_requantizing_without_the_flag_its_own_input_and_an_existing_file() {
    let Some(source) = model_path(TestModel::Smol) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.gguf");
    let source = source.to_str().expect("utf-8");
    let run = |extra: &[&str], out: &str| {
        let mut arguments = vec![
            "quantize", "--model", source, "--type", "Q4_0", "--out", out,
        ];
        arguments.extend_from_slice(extra);
        exitwise(&arguments, b"")
    };
    let output = run(&[], out.to_str().expect("utf-8"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("already quantized (Q4_1); --allow-requantize"),
        "{}",
        text(&output.stderr)
    );
    assert!(!out.exists());

    let output = run(&["--allow-requantize"], source);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("onto itself"),
        "{}",
        text(&output.stderr)
    );

    std::fs::write(&out, b"keep me").expect("write");
    let output = run(&["--allow-requantize"], out.to_str().expect("utf-8"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--force"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(std::fs::read(&out).expect("read"), b"keep me");

    let output = exitwise(
        &[
            "quantize", "--model", source, "--type", "Q5_K", "--out", "x.gguf",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("Q2_K"),
        "{}",
        text(&output.stderr)
    );
}
