//! Sentence splitting for incremental, sentence-by-sentence classification.
//!
//! A document is cut into sentences so that a language model can be fed one
//! sentence at a time (and stop early once it is confident). The rules are:
//!
//! 1. Sentence boundaries follow Unicode UAX #29, as implemented by
//!    [`UnicodeSegmentation::split_sentence_bound_indices`].
//! 2. Line breaks are always hard boundaries as well: `\n`, `\r\n`, `\r`,
//!    U+0085 (NEL), U+2028 (LINE SEPARATOR) and U+2029 (PARAGRAPH
//!    SEPARATOR). A title line or a mail subject without final punctuation is
//!    therefore its own sentence.
//! 3. UAX #29 boundaries directly after a common English abbreviation
//!    (see [`ABBREVIATIONS`]) or after single-letter initials (`J. R. R.`,
//!    `U.S.`) are ignored, so `"Dr. Smith arrived."` stays one sentence.
//!    Line breaks still always split.
//! 4. Segments that are empty or consist only of whitespace are dropped.
//! 5. Separators travel with the *next* sentence: every [`Sentence`] has a
//!    trimmed [`span`](Sentence::span) and a [`feed_span`](Sentence::feed_span)
//!    that additionally covers the whitespace / line breaks between the
//!    previous sentence and this one. Concatenating the `feed_span`s of all
//!    sentences of a document reproduces the document exactly, except that its
//!    leading and trailing whitespace (as defined by [`char::is_whitespace`],
//!    i.e. exactly what [`str::trim`] removes) is dropped.
//!
//! # Known limitations
//!
//! * The abbreviation rule is purely lexical: an abbreviation (or a single
//!   letter followed by a period) that really ends a sentence is merged with
//!   the following one, e.g. `"...and so on etc. Then we left."` or
//!   `"I live on Main St. It is quiet."` each become a single sentence.
//! * Only English abbreviations are recognised.
//! * Whitespace means Unicode `White_Space`; invisible format characters such
//!   as U+200B ZERO WIDTH SPACE, U+200D ZERO WIDTH JOINER or a byte-order mark
//!   are *not* whitespace, so they are neither trimmed nor cause a segment to
//!   be dropped.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

/// Common English abbreviations that are usually followed by a period without
/// ending the sentence.
///
/// Matching is ASCII case-insensitive against the last "word" before the
/// period (the maximal run of alphanumeric characters and inner periods, so
/// `e.g.` is matched as `e.g`). In addition to this list, single letters and
/// dot-separated runs of single letters (`J.`, `U.S.`, `J.R.R.`) are treated
/// as initials.
#[rustfmt::skip]
pub const ABBREVIATIONS: &[&str] = &[
    // Titles.
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt",
    "gen", "col", "lt", "sgt", "capt", "rev", "gov", "sen", "rep",
    // Latin and other common abbreviations.
    "vs", "etc", "e.g", "i.e", "cf", "approx", "no",
    // Companies.
    "inc", "ltd", "co", "corp",
    // Month short forms.
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
];

/// One sentence of a document, as byte ranges into that document.
///
/// Both ranges always lie on `char` boundaries of the document they were
/// computed from, and `feed_span.end == span.end`,
/// `feed_span.start <= span.start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// Byte range of the sentence content, with surrounding whitespace
    /// trimmed. Never empty.
    pub span: Range<usize>,
    /// Byte range from the end of the previous sentence's content (or from
    /// `span.start` for the first sentence of a document) to the end of this
    /// sentence's content: the leading separator whitespace / line breaks
    /// plus the content. Feeding these ranges one after another reproduces
    /// the document without its leading and trailing whitespace.
    pub feed_span: Range<usize>,
}

impl Sentence {
    /// The trimmed sentence text.
    ///
    /// `document` must be the string this sentence was split from; if the
    /// span does not fit `document` (a different string was passed), an
    /// empty string is returned instead of panicking.
    #[must_use]
    pub fn text<'a>(&self, document: &'a str) -> &'a str {
        document.get(self.span.clone()).unwrap_or_default()
    }

    /// The text to feed to the model: leading separators plus the sentence.
    ///
    /// `document` must be the string this sentence was split from; if the
    /// span does not fit `document`, an empty string is returned instead of
    /// panicking.
    #[must_use]
    pub fn feed_text<'a>(&self, document: &'a str) -> &'a str {
        document.get(self.feed_span.clone()).unwrap_or_default()
    }
}

/// Splits `document` into sentences (see the [module docs](self) for the
/// rules), in document order.
///
/// Returns an empty `Vec` for an empty or whitespace-only document. A
/// document's leading whitespace is not part of any `feed_span`, nor is its
/// trailing whitespace. Never panics.
#[must_use]
pub fn split_sentences(document: &str) -> Vec<Sentence> {
    let mut sentences: Vec<Sentence> = Vec::new();
    let mut contents: Vec<Range<usize>> = Vec::new();
    for line in hard_lines(document) {
        contents.clear();
        sentence_contents_in_line(document, line, &mut contents);
        for span in contents.drain(..) {
            let feed_start = sentences.last().map_or(span.start, |prev| prev.span.end);
            sentences.push(Sentence {
                feed_span: feed_start..span.end,
                span,
            });
        }
    }
    sentences
}

/// Whether `c` is a hard line break (the first char of `\r\n` is `\r`).
fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Byte ranges of the lines of `document`, excluding the line-break
/// characters themselves. `\r\n` yields an extra empty line between `\r` and
/// `\n`, which is harmless because empty segments are dropped.
fn hard_lines(document: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let breaks = document
        .char_indices()
        .filter(|&(_, c)| is_line_break(c))
        .map(|(i, c)| (i, i + c.len_utf8()));
    let mut start = 0;
    breaks
        .map(Some)
        .chain(std::iter::once(None))
        .map(move |brk| match brk {
            Some((break_start, break_end)) => {
                let line = start..break_start;
                start = break_end;
                line
            }
            None => start..document.len(),
        })
}

/// Pushes the trimmed, non-empty sentence content ranges of one line
/// (absolute byte ranges into `document`) to `out`, merging UAX #29 segments
/// that end in an abbreviation with the following segment.
fn sentence_contents_in_line(document: &str, line: Range<usize>, out: &mut Vec<Range<usize>>) {
    let Some(line_text) = document.get(line.clone()) else {
        return;
    };
    let mut pending: Option<Range<usize>> = None;
    for (offset, segment) in line_text.split_sentence_bound_indices() {
        let Some(content) = trimmed_range(segment) else {
            continue;
        };
        let content = line.start + offset + content.start..line.start + offset + content.end;
        pending = Some(match pending.take() {
            Some(prev) => prev.start..content.end,
            None => content,
        });
        if let Some(current) = &pending {
            let text = document.get(current.clone()).unwrap_or_default();
            if !ends_with_abbreviation(text) {
                out.extend(pending.take());
            }
        }
    }
    out.extend(pending);
}

/// The range of `segment` without leading and trailing whitespace, or `None`
/// if nothing but whitespace remains.
fn trimmed_range(segment: &str) -> Option<Range<usize>> {
    let start = segment.len() - segment.trim_start().len();
    let end = segment.trim_end().len();
    (start < end).then_some(start..end)
}

/// Whether `text` ends with a period directly preceded by an abbreviation
/// from [`ABBREVIATIONS`] or by single-letter initials.
fn ends_with_abbreviation(text: &str) -> bool {
    let Some(before) = text.strip_suffix('.') else {
        return false;
    };
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| c.is_alphanumeric() || c == '.')
        .last()
        .map_or(before.len(), |(i, _)| i);
    let word = &before[word_start..];
    if word.is_empty() || word.starts_with('.') || word.ends_with('.') || word.contains("..") {
        // Nothing before the period, or an ellipsis / "?." style run.
        return false;
    }
    ABBREVIATIONS
        .iter()
        .any(|abbreviation| abbreviation.eq_ignore_ascii_case(word))
        || is_initials(word)
}

/// Whether `word` is a dot-separated run of single cased letters, like `J`,
/// `U.S` or `J.R.R` (the final period has already been stripped).
fn is_initials(word: &str) -> bool {
    word.split('.').all(|part| {
        let mut chars = part.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => c.is_alphabetic() && (c.is_uppercase() || c.is_lowercase()),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `document`, checks every structural invariant, and returns the
    /// sentence texts.
    fn split_checked(document: &str) -> Vec<&str> {
        let sentences = split_sentences(document);
        check_invariants(document, &sentences);
        sentences.iter().map(|s| s.text(document)).collect()
    }

    fn check_invariants(document: &str, sentences: &[Sentence]) {
        let mut fed = String::new();
        let mut previous_end: Option<usize> = None;
        for sentence in sentences {
            let Sentence { span, feed_span } = sentence;
            for bound in [span.start, span.end, feed_span.start, feed_span.end] {
                assert!(
                    document.is_char_boundary(bound),
                    "{bound} not a char boundary in {document:?}"
                );
            }
            assert!(span.start < span.end, "empty span in {document:?}");
            assert_eq!(feed_span.end, span.end);
            assert!(feed_span.start <= span.start);
            match previous_end {
                Some(end) => assert_eq!(feed_span.start, end, "gap in {document:?}"),
                None => assert_eq!(feed_span.start, span.start),
            }
            previous_end = Some(span.end);

            let text = sentence.text(document);
            assert_eq!(text, text.trim(), "untrimmed sentence in {document:?}");
            assert!(
                !text.chars().any(is_line_break),
                "line break inside sentence {text:?} of {document:?}"
            );
            let fed_piece = sentence.feed_text(document);
            assert!(fed_piece.ends_with(text));
            assert!(
                fed_piece[..fed_piece.len() - text.len()]
                    .chars()
                    .all(char::is_whitespace),
                "non-whitespace separator in {fed_piece:?}"
            );
            fed.push_str(fed_piece);
        }
        assert_eq!(fed, document.trim(), "feed concatenation of {document:?}");
    }

    #[test]
    fn plain_multi_sentence_text() {
        assert_eq!(
            split_checked("The film was long. The acting was good. I liked it."),
            ["The film was long.", "The acting was good.", "I liked it."]
        );
    }

    #[test]
    fn question_and_exclamation_marks() {
        assert_eq!(
            split_checked("Did you see it? Yes! It was great!! Really?!"),
            ["Did you see it?", "Yes!", "It was great!!", "Really?!"]
        );
    }

    #[test]
    fn title_abbreviation_does_not_split() {
        assert_eq!(
            split_checked("Dr. Smith arrived. He sat."),
            ["Dr. Smith arrived.", "He sat."]
        );
        assert_eq!(
            split_checked("MR. Jones and Mrs. Brown met Prof. White."),
            ["MR. Jones and Mrs. Brown met Prof. White."]
        );
    }

    #[test]
    fn initials_do_not_split() {
        assert_eq!(
            split_checked("J. R. R. Tolkien wrote it."),
            ["J. R. R. Tolkien wrote it."]
        );
        assert_eq!(
            split_checked("The U.S. Army arrived. Then rain."),
            ["The U.S. Army arrived.", "Then rain."]
        );
    }

    #[test]
    fn other_abbreviations_do_not_split() {
        assert_eq!(
            split_checked("It costs approx. 5 dollars."),
            ["It costs approx. 5 dollars."]
        );
        assert_eq!(
            split_checked("Apples vs. oranges."),
            ["Apples vs. oranges."]
        );
        assert_eq!(
            split_checked("Fruit, e.g. Apples. Also Acme Inc. Sells them."),
            ["Fruit, e.g. Apples.", "Also Acme Inc. Sells them."]
        );
        assert_eq!(
            split_checked("It opened on Sept. 5. It closed in Dec. Sad."),
            ["It opened on Sept. 5.", "It closed in Dec. Sad."]
        );
    }

    #[test]
    fn abbreviation_ending_a_sentence_is_merged_known_limitation() {
        assert_eq!(
            split_checked("We bought apples, pears etc. Then we left."),
            ["We bought apples, pears etc. Then we left."]
        );
    }

    #[test]
    fn ellipsis_is_not_an_abbreviation() {
        assert_eq!(
            split_checked("Wait... Then it happened."),
            ["Wait...", "Then it happened."]
        );
    }

    #[test]
    fn abbreviation_does_not_merge_across_line_break() {
        assert_eq!(
            split_checked("Regards,\nDr.\nSmith"),
            ["Regards,", "Dr.", "Smith"]
        );
    }

    #[test]
    fn title_line_without_punctuation_then_body() {
        let document = "Great value for money\nI bought this last week. It works.";
        assert_eq!(
            split_checked(document),
            [
                "Great value for money",
                "I bought this last week.",
                "It works."
            ]
        );
        let sentences = split_sentences(document);
        assert_eq!(
            sentences[1].feed_text(document),
            "\nI bought this last week."
        );
        assert_eq!(sentences[2].feed_text(document), " It works.");
    }

    #[test]
    fn crlf_line_breaks() {
        let document = "Subject: hello\r\nBody text here\r\nBye.";
        assert_eq!(
            split_checked(document),
            ["Subject: hello", "Body text here", "Bye."]
        );
        assert_eq!(
            split_sentences(document)[1].feed_text(document),
            "\r\nBody text here"
        );
    }

    #[test]
    fn lone_carriage_return_and_other_breaks() {
        assert_eq!(
            split_checked("one\rtwo\u{85}three"),
            ["one", "two", "three"]
        );
        assert_eq!(
            split_checked("first line\u{2028}second line\u{2029}third"),
            ["first line", "second line", "third"]
        );
    }

    #[test]
    fn blank_lines_produce_no_sentences() {
        let document = "Para one.\n\n\n  \nPara two.";
        assert_eq!(split_checked(document), ["Para one.", "Para two."]);
        assert_eq!(
            split_sentences(document)[1].feed_text(document),
            "\n\n\n  \nPara two."
        );
        assert!(split_sentences("\n\n").is_empty());
    }

    #[test]
    fn no_terminal_punctuation() {
        assert_eq!(
            split_checked("just some words without any end"),
            ["just some words without any end"]
        );
    }

    #[test]
    fn emoji() {
        assert_eq!(
            split_checked("Great movie 😍😍! Loved it."),
            ["Great movie 😍😍!", "Loved it."]
        );
        assert_eq!(split_checked("😍😍👍🏽"), ["😍😍👍🏽"]);
        assert_eq!(split_checked("👨‍👩‍👧 family"), ["👨‍👩‍👧 family"]);
    }

    #[test]
    fn chinese_and_japanese() {
        assert_eq!(
            split_checked("今天天气很好。我们去公园吧！"),
            ["今天天气很好。", "我们去公园吧！"]
        );
        assert_eq!(
            split_checked("今日は晴れです。散歩に行きましょう。楽しいですね？"),
            ["今日は晴れです。", "散歩に行きましょう。", "楽しいですね？"]
        );
    }

    #[test]
    fn empty_and_whitespace_only_documents() {
        for document in [
            "",
            " ",
            "\n",
            "\n\n",
            "\r\n",
            " \t \u{3000}\u{a0}",
            "\u{2028}\u{2029}\u{85}",
        ] {
            assert_eq!(
                split_sentences(document),
                Vec::<Sentence>::new(),
                "{document:?}"
            );
        }
    }

    #[test]
    fn leading_and_trailing_whitespace() {
        let document = "  \n  Hello there.  World!  \n\n ";
        assert_eq!(split_checked(document), ["Hello there.", "World!"]);
        let sentences = split_sentences(document);
        assert_eq!(
            sentences,
            [
                Sentence {
                    span: 5..17,
                    feed_span: 5..17
                },
                Sentence {
                    span: 19..25,
                    feed_span: 17..25
                },
            ]
        );
        assert_eq!(sentences[0].feed_text(document), "Hello there.");
        assert_eq!(sentences[1].feed_text(document), "  World!");
    }

    #[test]
    fn quotes_after_period() {
        assert_eq!(
            split_checked("He said \"Stop.\" Then left."),
            ["He said \"Stop.\"", "Then left."]
        );
    }

    #[test]
    fn accessors_do_not_panic_on_a_different_document() {
        let sentence = Sentence {
            span: 3..10,
            feed_span: 0..10,
        };
        assert_eq!(sentence.text("short"), "");
        assert_eq!(sentence.feed_text("ééé"), "");
    }

    const TRICKY: &[&str] = &[
        "",
        " ",
        ".",
        "...",
        ". . .",
        "?!",
        "a",
        "Dr.",
        "Dr. ",
        " Dr. X",
        "etc.",
        "e.g.",
        "e.g. .",
        "..e.",
        ".Dr. A",
        "\r",
        "\r\r\n\n\r",
        "a\rb",
        "a\r\nb",
        "\u{85}",
        "x\u{2028}\u{2029}y",
        "e\u{301}te\u{301}. Cafe\u{301}! Ok",
        "\u{301}\u{301}. \u{301}",
        "a\u{200d}b. c\u{200d}. D",
        "\u{200d}",
        "\u{200b} \u{200b}",
        "\u{feff}Hello. World.",
        "👨‍👩‍👧‍👦. 👍🏽! 🇩🇪🇫🇷?",
        "Mr. 😍 Smith.",
        "\"Hi.\" (Yes.) [No.] 'Ok.'",
        "Mr.\"Smith\" went.",
        "1. First. 2. Second.",
        "v1.2.3 released. Great",
        "St. St. St. Louis.",
        "ﾃｽﾄ｡ﾃｽﾄ｡",
        "مرحبا. كيف حالك؟ جيد",
        "שלום. עולם",
        "Привет. Мир! Т. Е. ок",
        "नमस्ते। दुनिया।",
        "ok.\t\tNext\u{a0}one.\u{3000}Done",
        "a .b. c..d ...e",
        "I.",
        "A. B.",
        "\t\n Leading. Trailing. \n\t",
        "Ends with abbreviation Dr.",
        "J.R.R. Tolkien. U.S. Army",
        "x\u{0}y. \u{7f}z",
    ];

    #[test]
    fn feed_span_concatenation_on_tricky_strings() {
        for document in TRICKY {
            split_checked(document);
        }
    }

    #[test]
    fn feed_span_concatenation_on_generated_strings() {
        const PIECES: &[&str] = &[
            "a", "Dr", "St", "e.g", "J", "Word", "ok", "5", ".", ".", ".", "!", "?", "\"", ")",
            " ", " ", " ", "\t", "\n", "\r", "\r\n", "\u{85}", "\u{2028}", "\u{2029}", "\u{a0}",
            "\u{301}", "\u{200d}", "\u{200b}", "😍", "👍🏽", "。", "！", "天", "é", "И",
        ];
        // Small deterministic LCG so the test needs no extra dependency.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for _ in 0..3000 {
            let len = next() % 24;
            let document: String = (0..len).map(|_| PIECES[next() % PIECES.len()]).collect();
            split_checked(&document);
        }
    }
}
