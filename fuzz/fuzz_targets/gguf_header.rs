//! The GGUF header parser on arbitrary bytes: an error or a header, never a panic, and a
//! header only when every tensor lies inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(info) = exitwise::gguf::parse_gguf_bytes(bytes, bytes.len() as u64) {
        // Whatever parsed must answer its own questions without panicking.
        let _ = (info.architecture(), info.block_count(), info.embedding_length());
        let _ = (info.parameter_count(), info.tensor_types(), info.file_type_name());
    }
});
