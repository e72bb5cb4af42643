//! llama.cpp's own quantizer (`llama_model_quantize`), which writes a GGUF file of another
//! quantization type from a model file.

use std::ffi::CString;
use std::path::Path;

use llama_cpp_sys_2 as sys;

use super::{EngineError, backend};
use crate::gguf;

/// The quantization types `exitwise quantize` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantizationType {
    /// 16-bit floats: no quantization loss beyond the source's.
    F16,
    /// 8-bit blocks.
    Q8_0,
    /// 4-bit blocks, the simplest 4-bit type.
    Q4_0,
    /// 4-bit k-quants, medium mix (the catalog models' type).
    Q4KM,
    /// 3-bit k-quants, small mix.
    Q3KS,
    /// 2-bit k-quants.
    Q2K,
}

impl QuantizationType {
    /// Every type, from the largest files to the smallest.
    pub const ALL: [QuantizationType; 6] = [
        QuantizationType::F16,
        QuantizationType::Q8_0,
        QuantizationType::Q4KM,
        QuantizationType::Q4_0,
        QuantizationType::Q3KS,
        QuantizationType::Q2K,
    ];

    /// The name llama.cpp and GGUF files use.
    pub fn name(self) -> &'static str {
        match self {
            QuantizationType::F16 => "F16",
            QuantizationType::Q8_0 => "Q8_0",
            QuantizationType::Q4_0 => "Q4_0",
            QuantizationType::Q4KM => "Q4_K_M",
            QuantizationType::Q3KS => "Q3_K_S",
            QuantizationType::Q2K => "Q2_K",
        }
    }

    fn file_type(self) -> sys::llama_ftype {
        match self {
            QuantizationType::F16 => sys::LLAMA_FTYPE_MOSTLY_F16,
            QuantizationType::Q8_0 => sys::LLAMA_FTYPE_MOSTLY_Q8_0,
            QuantizationType::Q4_0 => sys::LLAMA_FTYPE_MOSTLY_Q4_0,
            QuantizationType::Q4KM => sys::LLAMA_FTYPE_MOSTLY_Q4_K_M,
            QuantizationType::Q3KS => sys::LLAMA_FTYPE_MOSTLY_Q3_K_S,
            QuantizationType::Q2K => sys::LLAMA_FTYPE_MOSTLY_Q2_K,
        }
    }
}

/// How to quantize.
#[derive(Debug, Clone, Default)]
pub struct QuantizeOptions {
    /// CPU threads (`None`: all cores).
    pub threads: Option<usize>,
    /// Accept a source whose tensors are already quantized (they are dequantized first, so the
    /// result cannot be better than the source).
    pub allow_requantize: bool,
}

fn c_path(path: &Path) -> Result<CString, EngineError> {
    let text = path
        .to_str()
        .ok_or_else(|| EngineError::UnusablePath("it is not valid UTF-8".into()))?;
    CString::new(text).map_err(|_| EngineError::UnusablePath("it contains a NUL byte".into()))
}

/// Writes `output` as `kind` from the model file `input` with llama.cpp's quantizer. Blocks
/// until done (seconds to minutes); llama.cpp logs each tensor at debug level.
pub fn quantize(
    input: &Path,
    output: &Path,
    kind: QuantizationType,
    options: &QuantizeOptions,
) -> Result<(), EngineError> {
    // The same header check as loading: llama.cpp aborts on some malformed files.
    gguf::read_gguf_info(input)?;
    let input_c = c_path(input)?;
    let output_c = c_path(output)?;
    backend::ensure_initialized()?;
    backend::clear_last_problem();
    // SAFETY: returns a plain struct by value; no preconditions.
    let mut params = unsafe { sys::llama_model_quantize_default_params() };
    params.nthread = options
        .threads
        .and_then(|threads| i32::try_from(threads).ok())
        .unwrap_or(0);
    params.ftype = kind.file_type();
    params.allow_requantize = options.allow_requantize;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; `params` comes
    // from `llama_model_quantize_default_params` with plain fields changed (its pointer fields
    // stay null: no importance matrix, overrides or pruning). The input passed the GGUF header
    // and bounds check.
    let code = unsafe { sys::llama_model_quantize(input_c.as_ptr(), output_c.as_ptr(), &params) };
    if code == 0 {
        Ok(())
    } else {
        Err(EngineError::Quantize {
            code,
            reason: backend::take_last_problem(),
        })
    }
}
