//! Shared helpers: locating models, loading them once, running the binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use exitwise::engine::{Model, ModelOptions};

/// The catalog models the tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestModel {
    /// gemma3-270m, the default (18 layers, width 640).
    Gemma,
    /// smollm2-135m, the second architecture (llama, 30 layers, width 576).
    Smol,
}

impl TestModel {
    pub fn file_name(self) -> &'static str {
        match self {
            TestModel::Gemma => "gemma3-270m.gguf",
            TestModel::Smol => "smollm2-135m.gguf",
        }
    }
}

pub fn models_dir() -> PathBuf {
    std::env::var_os("EXITWISE_MODELS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        PathBuf::from,
    )
}

/// Path of a test model, or `None` (with a note on stderr) when it was not fetched.
pub fn model_path(model: TestModel) -> Option<PathBuf> {
    let path = models_dir().join(model.file_name());
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "model `{}` not found: run `make test` (or `exitwise models fetch`) to fetch it",
        path.display()
    );
    if std::env::var_os("EXITWISE_REQUIRE_MODELS").is_some_and(|value| value == "1") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// A model loaded once per test binary and shared by the tests (models are read-only).
pub fn shared_model(model: TestModel) -> Option<&'static Model> {
    static GEMMA: OnceLock<Option<Model>> = OnceLock::new();
    static SMOL: OnceLock<Option<Model>> = OnceLock::new();
    let cell = match model {
        TestModel::Gemma => &GEMMA,
        TestModel::Smol => &SMOL,
    };
    cell.get_or_init(|| {
        let path = model_path(model)?;
        Some(Model::load(&path, &ModelOptions::default()).expect("the test model loads"))
    })
    .as_ref()
}

/// Runs the exitwise binary with `arguments` and `stdin`, with a clean environment for the
/// variables that change its output.
pub fn exitwise(arguments: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_exitwise"))
        .args(arguments)
        .env_remove("EXITWISE_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    if let Some(mut input) = child.stdin.take() {
        // The program may exit before reading everything; that is not a test failure.
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("the binary finishes")
}

/// Runs the binary with `arguments` and nobody reading its stdout (closed before any output),
/// feeding `stdin`; for the broken-pipe tests.
pub fn exitwise_with_closed_stdout(arguments: &[&std::ffi::OsStr], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_exitwise"))
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    drop(child.stdout.take());
    if let Some(mut input) = child.stdin.take() {
        // The program may stop reading at any point; a failed write here is expected.
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().expect("the binary finishes")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Cosine similarity of two vectors (the library's, as `bench-engine --compare-cpu` uses it).
pub fn cosine(left: &[f32], right: &[f32]) -> f64 {
    exitwise::evaluation::device_agreement::cosine(Some(left), Some(right))
}

/// A small pack trained once per test binary with `exitwise train` on the fixtures, and the
/// folder holding it (kept for the binary's life).
pub fn tiny_pack() -> Option<&'static (tempfile::TempDir, exitwise::pack::AdapterPack)> {
    static PACK: OnceLock<Option<(tempfile::TempDir, exitwise::pack::AdapterPack)>> =
        OnceLock::new();
    PACK.get_or_init(|| {
        let model = model_path(TestModel::Gemma)?;
        let dir = tempfile::tempdir().expect("tempdir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let out = dir.path().join("tiny-reviews");
        let output = Command::new(env!("CARGO_BIN_EXE_exitwise"))
            .args(["train", "--threads", "1", "--model"])
            .arg(&model)
            .arg("--train")
            .arg(fixtures.join("reviews-train.jsonl"))
            .arg("--dev")
            .arg(fixtures.join("reviews-dev.jsonl"))
            .arg("--out")
            .arg(&out)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .output()
            .expect("train runs");
        assert!(output.status.success(), "{}", text(&output.stderr));
        // 8 dev documents certify no budget (see the train tests); the point estimates of
        // format 1 packs give the classify and serve tests settings that do exit.
        let output = Command::new(env!("CARGO_BIN_EXE_exitwise"))
            .args([
                "calibrate",
                "--threads",
                "1",
                "--method",
                "point",
                "--force",
                "--model",
            ])
            .arg(&model)
            .arg(&out)
            .arg("--dev")
            .arg(fixtures.join("reviews-dev.jsonl"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .output()
            .expect("calibrate runs");
        assert!(output.status.success(), "{}", text(&output.stderr));
        let pack = exitwise::pack::AdapterPack::load_dir(&out).expect("the tiny pack loads");
        Some((dir, pack))
    })
    .as_ref()
}

/// The compiled-in pack's best layer, numbered from 1 as every answer numbers layers: the layer
/// `full` answers with.
pub fn answering_layer() -> u64 {
    let pack = exitwise::pack::AdapterPack::embedded()
        .expect("a compiled-in pack")
        .expect("the compiled-in pack loads");
    pack.manifest.best_layer as u64 + 1
}

/// All kept tokens of `document` in order, as one sequence (what a single whole-document feed
/// decodes).
pub fn all_tokens(document: &exitwise::text::PreparedDocument) -> Vec<exitwise::engine::Token> {
    document
        .sentences
        .iter()
        .flat_map(|sentence| sentence.tokens.iter().copied())
        .collect()
}
