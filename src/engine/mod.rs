//! The llama.cpp engine: the only module of exitwise that contains `unsafe` code or calls
//! llama.cpp.
//!
//! It wraps `llama-cpp-sys-2` directly (see README, "Design"): a [`Model`] owns a loaded GGUF
//! model, a [`Session`] borrows it and owns a llama.cpp context whose eval callback taps the
//! output of every transformer layer (`l_out-<layer>`). For each decoded batch of tokens the
//! session hands a [`LayerObserver`] every layer's hidden states, in order, and the observer
//! answers [`Flow::Continue`] or [`Flow::Stop`]. Stop ends the graph computation there: deeper
//! layers and the output head are never computed, which is what makes a layer exit save
//! wall-clock time and not just operations on paper.
#![allow(unsafe_code)]

mod backend;
pub mod cpus;
mod model;
mod quantize;
mod session;
mod tap;

pub use backend::{BackendReport, GpuPlugin};
pub use cpus::{SessionPlan, usable_cpus};
pub use model::{Model, ModelFacts, ModelOptions, Token};
pub use quantize::{QuantizationType, QuantizeOptions, quantize};
pub use session::{FeedOutcome, Session, SessionOptions};
pub use tap::{Flow, LayerHidden, LayerObserver};

/// Errors of the engine. Messages name the reason only; callers add the action and the object.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The file is not a GGUF model that llama.cpp can safely be handed.
    #[error(transparent)]
    InvalidModelFile(#[from] crate::gguf::GgufError),
    /// llama.cpp refused the model (unknown architecture, unsupported tensor layout, …).
    #[error("llama.cpp could not load the model{}", llama_reason(.reason))]
    ModelLoad {
        /// The last error llama.cpp logged, if any.
        reason: Option<String>,
    },
    /// llama.cpp could not create a context (usually: not enough memory for the KV cache).
    #[error("llama.cpp could not create a context{}", llama_reason(.reason))]
    ContextCreation {
        /// The last error llama.cpp logged, if any.
        reason: Option<String>,
    },
    /// A portable build found none of its CPU back-end libraries.
    #[error(
        "no CPU back end of llama.cpp was found: this build loads `libggml-cpu-*.so` at start and looked in {} (set {} to the folder that holds them)",
        searched_folders(.searched),
        backend::BACKEND_DIR_VARIABLE
    )]
    NoCpuBackend {
        /// The folders searched.
        searched: Vec<std::path::PathBuf>,
    },
    /// The path cannot be passed to llama.cpp (it contains a NUL byte or is not UTF-8).
    #[error("the path cannot be passed to llama.cpp: {0}")]
    UnusablePath(String),
    /// Tokenization failed.
    #[error("the text could not be tokenized: {0}")]
    Tokenize(String),
    /// A batch is empty or larger than the session allows.
    #[error("{0}")]
    InvalidBatch(String),
    /// The document does not fit in the context any more.
    #[error(
        "the context is full: {used} tokens are in the KV cache, {requested} more requested, the context holds {capacity}"
    )]
    ContextFull {
        /// Tokens already in the cache.
        used: usize,
        /// Tokens of the refused batch.
        requested: usize,
        /// Context size.
        capacity: usize,
    },
    /// `llama_decode` returned an error code.
    #[error("llama.cpp failed to decode the batch (code {code}){}", llama_reason(.reason))]
    Decode {
        /// The return code of `llama_decode`.
        code: i32,
        /// The last error llama.cpp logged, if any.
        reason: Option<String>,
    },
    /// The layer tap saw something it cannot read (unexpected tensor type or shape).
    #[error("the layer tap failed: {0}")]
    Tap(String),
    /// `llama_model_quantize` failed.
    #[error("llama.cpp failed to quantize the model (code {code}){}", llama_reason(.reason))]
    Quantize {
        /// Its return code.
        code: u32,
        /// The last error llama.cpp logged, if any.
        reason: Option<String>,
    },
}

fn llama_reason(reason: &Option<String>) -> String {
    match reason {
        Some(reason) => format!(": {reason}"),
        None => String::new(),
    }
}

/// The llama.cpp back ends this binary was built with: always `cpu`, then each GPU back end
/// whose Cargo feature is on (`cuda`, `metal`, `vulkan`).
pub fn compiled_backends() -> Vec<&'static str> {
    let mut backends = vec!["cpu"];
    if cfg!(feature = "cuda") {
        backends.push("cuda");
    }
    if cfg!(feature = "metal") {
        backends.push("metal");
    }
    if cfg!(feature = "vulkan") {
        backends.push("vulkan");
    }
    backends
}

/// [`compiled_backends`] as one word for reports: `cpu`, `cpu+cuda`, `cpu+cuda+vulkan`.
pub fn build_description() -> String {
    compiled_backends().join("+")
}

/// Whether llama.cpp can offload to a GPU here: a GPU build, or a portable build with a GPU
/// back-end library installed next to its CPU ones.
pub fn has_gpu_backend() -> bool {
    backend::has_gpu_device()
}

/// What runs llama.cpp's graphs in this process (initialises the back ends if needed).
pub fn backend_report() -> Result<BackendReport, EngineError> {
    backend::ensure_initialized().cloned()
}

fn searched_folders(folders: &[std::path::PathBuf]) -> String {
    if folders.is_empty() {
        return "no folder (the binary's own path is unknown)".to_string();
    }
    folders
        .iter()
        .map(|folder| format!("`{}`", folder.display()))
        .collect::<Vec<_>>()
        .join(", ")
}
