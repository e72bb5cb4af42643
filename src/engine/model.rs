//! A loaded GGUF model: an owned `llama_model` handle plus the facts exitwise needs about it.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use llama_cpp_sys_2 as sys;

use super::EngineError;
use super::backend;
use crate::gguf::{self, GgufInfo};

/// A token id of the model's own vocabulary (llama.cpp's `llama_token`).
pub type Token = sys::llama_token;

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// Layers to offload to the GPU. `None`: all of them when a GPU back end (compiled in or
    /// loaded as a plug-in) found a device, none otherwise.
    pub gpu_layers: Option<u32>,
}

/// What exitwise reports and checks about a model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelFacts {
    /// `general.name` from the GGUF metadata, when present.
    pub name: Option<String>,
    /// `general.architecture`, e.g. `gemma3` or `llama`.
    pub architecture: String,
    /// Number of transformer layers (blocks).
    pub layers: usize,
    /// Width of the hidden states (embedding length).
    pub width: usize,
    /// Number of weights, counted from the tensors.
    pub parameters: u64,
    /// Quantization type of the file as a whole (`general.file_type`), e.g. `Q4_K_M`.
    pub quantization: Option<String>,
    /// Tensor count per storage type, most frequent first.
    pub tensor_types: Vec<(String, usize)>,
    /// Size of the file in bytes.
    pub file_size: u64,
    /// Vocabulary size of the model's tokenizer.
    pub vocabulary_size: usize,
    /// Context length the model was trained with.
    pub trained_context: Option<u64>,
}

/// A loaded model. Read-only after loading; sessions borrow it.
pub struct Model {
    handle: NonNull<sys::llama_model>,
    vocabulary: NonNull<sys::llama_vocab>,
    facts: ModelFacts,
    path: PathBuf,
    /// Layers llama.cpp was asked to offload, where a GPU device exists (else 0).
    offloaded_layers: usize,
}

// SAFETY: after `llama_model_load_from_file` returns, llama.cpp never mutates a `llama_model`
// (contexts hold their own state), so sharing `&Model` between threads and moving it across
// threads is sound; llama.cpp's own server shares one model between many contexts.
unsafe impl Send for Model {}
// SAFETY: see `Send` above: all `&self` methods only read the model.
unsafe impl Sync for Model {}

impl Model {
    /// Validates the GGUF file, then loads it with llama.cpp.
    ///
    /// The header check runs first because llama.cpp aborts the whole process on some malformed
    /// files (truncated tensor data, bad dimensions); after it, llama.cpp sees only files whose
    /// header parses and whose tensors fit inside the file.
    pub fn load(path: &Path, options: &ModelOptions) -> Result<Self, EngineError> {
        let info = gguf::read_gguf_info(path)?;
        let facts = facts_from_header(&info)?;
        let path_text = path
            .to_str()
            .ok_or_else(|| EngineError::UnusablePath("it is not valid UTF-8".into()))?;
        let path_c = CString::new(path_text)
            .map_err(|_| EngineError::UnusablePath("it contains a NUL byte".into()))?;

        let backends = backend::ensure_initialized()?;
        if let Some(layers) = options.gpu_layers.filter(|&layers| layers > 0)
            && backends.gpu_devices.is_empty()
        {
            tracing::warn!(
                "{layers} layers were asked to run on a GPU, but there is no GPU device: every layer runs on the CPU ({})",
                backends.why_no_gpu()
            );
        }
        backend::clear_last_problem();
        // SAFETY: returns a plain struct by value; no preconditions.
        let mut params = unsafe { sys::llama_model_default_params() };
        params.n_gpu_layers = match options.gpu_layers {
            Some(layers) => i32::try_from(layers).unwrap_or(i32::MAX),
            None if super::has_gpu_backend() => -1,
            None => 0,
        };
        params.use_mmap = true;
        // No layer offloaded must mean the CPU alone: given the GPU devices, llama.cpp still
        // moves a large batch's matrix products to one (its context's `op_offload`), so
        // `--gpu-layers 0` would use the GPU and `--compare-cpu` would compare the GPU with
        // itself. An empty device list leaves the context the CPU back end only.
        let mut no_devices: [sys::ggml_backend_dev_t; 1] = [std::ptr::null_mut()];
        if params.n_gpu_layers == 0 {
            params.devices = no_devices.as_mut_ptr();
        }
        // SAFETY: `path_c` is a valid NUL-terminated string that outlives the call; `params`
        // comes from `llama_model_default_params` with plain fields changed, and its
        // `devices`, when set, points at `no_devices`, a NULL-terminated list that outlives
        // the call (llama.cpp copies the list). The file passed the GGUF header and bounds
        // check above, which keeps llama.cpp away from the inputs it aborts on.
        let raw = unsafe { sys::llama_model_load_from_file(path_c.as_ptr(), params) };
        let handle = NonNull::new(raw).ok_or_else(|| EngineError::ModelLoad {
            reason: backend::take_last_problem(),
        })?;
        // SAFETY: `handle` is a valid model; the vocabulary it returns is owned by the model and
        // lives as long as it does (we keep both in the same struct and free only the model).
        let vocabulary = unsafe { sys::llama_model_get_vocab(handle.as_ptr()) };
        let Some(vocabulary) = NonNull::new(vocabulary.cast_mut()) else {
            // SAFETY: `handle` is valid and not used after this.
            unsafe { sys::llama_model_free(handle.as_ptr()) };
            return Err(EngineError::ModelLoad {
                reason: Some("the model has no vocabulary".into()),
            });
        };
        let offloaded_layers = if backends.gpu_devices.is_empty() {
            0
        } else {
            usize::try_from(params.n_gpu_layers)
                .map_or(facts.layers, |layers| layers.min(facts.layers))
        };
        let mut model = Model {
            handle,
            vocabulary,
            facts,
            path: path.to_path_buf(),
            offloaded_layers,
        };
        model.reconcile_facts_with_llama()?;
        Ok(model)
    }

    /// Where the layers run, for reports: `CPU`, or `12 of 18 layers on Vulkan0: …`.
    pub fn placement(&self) -> String {
        if self.offloaded_layers == 0 {
            "CPU".to_string()
        } else {
            format!(
                "{} of {} layers on {}",
                self.offloaded_layers,
                self.facts.layers,
                // The back ends were initialised before the model was loaded.
                backend::ensure_initialized()
                    .map(|backends| backends.gpu_devices.join(", "))
                    .unwrap_or_default()
            )
        }
    }

    /// Cross-checks the header facts against what llama.cpp loaded: the engine's tap relies on
    /// llama.cpp's layer count and width, and a disagreement means the header lied.
    fn reconcile_facts_with_llama(&mut self) -> Result<(), EngineError> {
        // SAFETY: `self.handle` is a valid model for the lifetime of `self`.
        let (layers, width) = unsafe {
            (
                sys::llama_model_n_layer(self.handle.as_ptr()),
                sys::llama_model_n_embd(self.handle.as_ptr()),
            )
        };
        // SAFETY: `self.vocabulary` is valid while the model lives.
        let vocabulary_size = unsafe { sys::llama_vocab_n_tokens(self.vocabulary.as_ptr()) };
        let layers = usize::try_from(layers).unwrap_or(0);
        let width = usize::try_from(width).unwrap_or(0);
        if layers == 0 || width == 0 {
            return Err(EngineError::ModelLoad {
                reason: Some(format!(
                    "llama.cpp reports {layers} layers of width {width}"
                )),
            });
        }
        self.facts.layers = layers;
        self.facts.width = width;
        self.facts.vocabulary_size = usize::try_from(vocabulary_size).unwrap_or(0);
        Ok(())
    }

    /// Facts about the model (architecture, layers, width, …).
    pub fn facts(&self) -> &ModelFacts {
        &self.facts
    }

    /// Number of transformer layers.
    pub fn layers(&self) -> usize {
        self.facts.layers
    }

    /// Width of a layer's hidden state.
    pub fn width(&self) -> usize {
        self.facts.width
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tokenizes `text` with the model's own vocabulary, as plain text: no BOS/EOS added, and
    /// control-token spellings such as `<start_of_turn>` inside the text stay ordinary text
    /// (a document must not be able to inject control tokens).
    pub fn tokenize(&self, text: &str) -> Result<Vec<Token>, EngineError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let text_length = i32::try_from(text.len())
            .map_err(|_| EngineError::Tokenize("the text is longer than 2 GiB".into()))?;
        // Most vocabularies produce fewer tokens than bytes; grow once if not.
        let mut tokens: Vec<Token> = vec![0; text.len() / 2 + 8];
        for _attempt in 0..2 {
            let capacity = i32::try_from(tokens.len()).unwrap_or(i32::MAX);
            // SAFETY: `self.vocabulary` is valid while `self` lives; `text` points to
            // `text_length` readable bytes (llama.cpp takes the length and needs no NUL);
            // `tokens` has room for `capacity` tokens.
            let written = unsafe {
                sys::llama_tokenize(
                    self.vocabulary.as_ptr(),
                    text.as_ptr().cast(),
                    text_length,
                    tokens.as_mut_ptr(),
                    capacity,
                    false,
                    false,
                )
            };
            if written == i32::MIN {
                return Err(EngineError::Tokenize("too many tokens".into()));
            }
            if written >= 0 {
                tokens.truncate(usize::try_from(written).unwrap_or(0));
                return Ok(tokens);
            }
            tokens.resize(usize::try_from(-written).unwrap_or(0), 0);
        }
        Err(EngineError::Tokenize(
            "llama.cpp kept asking for a larger buffer".into(),
        ))
    }

    /// The tokens that start every document: BOS when the model's tokenizer adds one.
    pub fn document_start_tokens(&self) -> Vec<Token> {
        // SAFETY: `self.vocabulary` is valid while `self` lives; both calls only read it.
        let (adds_bos, bos) = unsafe {
            (
                sys::llama_vocab_get_add_bos(self.vocabulary.as_ptr()),
                sys::llama_vocab_bos(self.vocabulary.as_ptr()),
            )
        };
        if adds_bos && bos >= 0 {
            vec![bos]
        } else {
            Vec::new()
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::llama_model {
        self.handle.as_ptr()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: `handle` came from `llama_model_load_from_file`, is freed exactly once here,
        // and no session can outlive the model (sessions borrow it).
        unsafe { sys::llama_model_free(self.handle.as_ptr()) };
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Model")
            .field("path", &self.path)
            .field("facts", &self.facts)
            .finish()
    }
}

fn facts_from_header(info: &GgufInfo) -> Result<ModelFacts, EngineError> {
    let architecture = info
        .architecture()
        .ok_or_else(|| EngineError::ModelLoad {
            reason: Some("the GGUF metadata has no `general.architecture`".into()),
        })?
        .to_string();
    Ok(ModelFacts {
        name: info.model_name().map(str::to_string),
        architecture,
        layers: info
            .block_count()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0),
        width: info
            .embedding_length()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0),
        parameters: info.parameter_count(),
        quantization: info.file_type_name().map(str::to_string),
        tensor_types: info
            .tensor_types()
            .into_iter()
            .map(|(name, count)| (name.to_string(), count))
            .collect(),
        file_size: info.file_size,
        vocabulary_size: 0,
        trained_context: info.context_length(),
    })
}
