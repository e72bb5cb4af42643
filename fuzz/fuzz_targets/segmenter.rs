//! The sentence segmenter on arbitrary text: its spans lie on character boundaries, are
//! trimmed and non-empty, hold no line break, and their feed spans put the document back
//! together (without its outer whitespace).
#![no_main]

use exitwise::text::split_sentences;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let sentences = split_sentences(text);
    let mut fed = String::new();
    let mut previous_end: Option<usize> = None;
    for sentence in &sentences {
        for bound in [
            sentence.span.start,
            sentence.span.end,
            sentence.feed_span.start,
            sentence.feed_span.end,
        ] {
            assert!(text.is_char_boundary(bound));
        }
        assert!(sentence.span.start < sentence.span.end);
        assert_eq!(sentence.feed_span.end, sentence.span.end);
        match previous_end {
            Some(end) => assert_eq!(sentence.feed_span.start, end),
            None => assert_eq!(sentence.feed_span.start, sentence.span.start),
        }
        previous_end = Some(sentence.span.end);
        let content = sentence.text(text);
        assert_eq!(content, content.trim());
        assert!(!content.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']));
        fed.push_str(sentence.feed_text(text));
    }
    assert_eq!(fed, text.trim());
});
