//! The PDF reader in process, on arbitrary bytes. `pdf_extract` (and `lopdf` under it) panic
//! on malformed files, which is why `classify` and `serve` run this reader in a child process
//! with memory and time limits; here panics are caught and counted (a stack overflow, a hang or
//! an allocation failure still ends the run as a finding), and the reader's own promises are
//! checked: text within the limit (plus one line's overshoot) and never empty.
#![no_main]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use exitwise::formats::pdf;
use libfuzzer_sys::fuzz_target;

const TEXT_LIMIT: usize = 4096;

static CAUGHT: AtomicU64 = AtomicU64::new(0);
static QUIET: Once = Once::new();

fuzz_target!(|bytes: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    match catch_unwind(AssertUnwindSafe(|| pdf::read(bytes, TEXT_LIMIT))) {
        Ok(Ok(text)) => {
            assert!(!text.trim().is_empty());
            assert!(text.len() <= TEXT_LIMIT + bytes.len());
        }
        Ok(Err(_)) => {}
        Err(_) => {
            let caught = CAUGHT.fetch_add(1, Ordering::Relaxed) + 1;
            if caught.is_power_of_two() {
                eprintln!("pdf_reader: {caught} panics of the PDF crates caught so far");
            }
        }
    }
});
