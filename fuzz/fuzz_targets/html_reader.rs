//! The page reader on arbitrary bytes: decoding (byte-order mark, declared charset,
//! detection), the nesting bound, Readability and the visible-text fallback never panic; a page
//! within the nesting bound gives text or says it has none.
#![no_main]

use exitwise::formats::{ReadError, html};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(decoded) = html::decode(bytes, None, bytes.len() % 2 == 1) else {
        return;
    };
    let depth = html::nesting_depth(&decoded.text);
    match html::main_text(&decoded.text) {
        Ok(text) => assert!(!text.trim().is_empty()),
        Err(ReadError::NoText(_)) => {}
        Err(ReadError::Malformed { .. }) => assert!(depth > html::MOST_NESTING),
        Err(other) => panic!("unexpected error: {other}"),
    }
    let _ = html::visible_text(&decoded.text);
});
