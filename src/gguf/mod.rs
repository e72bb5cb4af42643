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

/// Parses and validates a GGUF header held in memory (the whole file, or its start with the
/// file's true size in `file_size`).
pub fn parse_gguf_bytes(bytes: &[u8], file_size: u64) -> Result<GgufInfo, GgufError> {
    parse(std::io::Cursor::new(bytes), file_size)
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
mod tests;
