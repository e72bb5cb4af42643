//! A web page as the text its reader sees. The page's main content is found by
//! [`dom_smoothie`], a port of Mozilla's Readability (Firefox's reader view): navigation,
//! menus, sidebars, footers and scripts are dropped, and the title leads. A page Readability
//! finds no article in (a short note, a form letter) is read as its visible text: the body
//! without scripts, styles, templates and navigation. A mail's HTML part is read as visible
//! text (a mail has no boilerplate to drop). Block elements end lines, so sentences and
//! paragraphs stay apart. Parsing is html5ever's (through `dom_query`), whose tree lives in an
//! arena and is walked with a heap stack: nesting depth costs no call stack.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use dom_query::Document;
use dom_smoothie::{Config, Readability, TextMode};
use html5ever::tokenizer::{
    BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::{LocalName, local_name};

use super::ReadError;
use super::encoding::{self, TextEncoding};

/// Most elements Readability scores; a bigger page is read as visible text (Readability's
/// scoring is far from linear in the number of elements).
const MOST_SCORED_ELEMENTS: usize = 50_000;

/// Deepest nesting of elements read. Building the tree costs time in proportion to elements ×
/// depth, so a page nested ten thousand deep would take minutes; Chrome's parser stops nesting
/// at the same depth. A deeper page is an error record.
pub const MOST_NESTING: usize = 512;

/// Deepest nesting Readability runs on: its scoring walks every element's ancestors, so
/// deeper pages are read as visible text.
const MOST_NESTING_FOR_READABILITY: usize = 128;

/// Elements whose text nobody sees, or that only serve a page's navigation.
const HIDDEN: &str = "script, style, noscript, template, head, svg, math, iframe, object, \
                      canvas, [hidden], [aria-hidden=true]";
const NAVIGATION: &str = "nav, header, footer, aside, form, menu, button, select, \
                          [role=navigation], [role=banner], [role=contentinfo], [role=search]";

/// The main text of a page: its title, then its main content.
pub fn main_text(html: &str) -> Result<String, ReadError> {
    let depth = nested_too_deep(html)?;
    let document = Document::from(html);
    // Navigation Readability would keep when it carries no telling class or id.
    document.select(NAVIGATION).remove();
    let title = document.select("title").text().trim().to_string();
    let article = if depth <= MOST_NESTING_FOR_READABILITY {
        let config = Config {
            max_elements_to_parse: MOST_SCORED_ELEMENTS,
            text_mode: TextMode::Formatted,
            ..Config::default()
        };
        Readability::with_document(document.clone(), None, Some(config))
            .ok()
            .and_then(|mut readability| readability.parse().ok())
            .filter(|article| !article.text_content.trim().is_empty())
    } else {
        None
    };
    let text = match article {
        Some(article) => with_title(article.title.trim(), article.text_content.trim()),
        None => {
            document.select(HIDDEN).remove();
            let body = document.select("body").formatted_text();
            with_title(&title, body.trim())
        }
    };
    if text.trim().is_empty() {
        return Err(ReadError::NoText("page".into()));
    }
    Ok(text)
}

/// The visible text of an HTML fragment or page: everything but scripts, styles, templates and
/// the head.
pub fn visible_text(html: &str) -> Result<String, ReadError> {
    nested_too_deep(html)?;
    let document = Document::from(html);
    document.select(HIDDEN).remove();
    Ok(document.formatted_text().trim().to_string())
}

/// The page's nesting depth, or the error for a page nested deeper than [`MOST_NESTING`].
fn nested_too_deep(html: &str) -> Result<usize, ReadError> {
    let depth = nesting_depth(html);
    if depth > MOST_NESTING {
        return Err(ReadError::Malformed {
            what: "HTML".into(),
            reason: format!(
                "elements nest more than {MOST_NESTING} deep, deeper than exitwise reads"
            ),
        });
    }
    Ok(depth)
}

/// How deep a page's elements nest, found by html5ever's tokenizer alone (linear time): open
/// elements are counted except void elements and those whose end tag may be left out (`p`,
/// `li`, `td`, …, which the tree builder closes itself); an end tag closes the innermost open
/// element of its name and everything opened after it. Counting stops a little past
/// [`MOST_NESTING`].
pub fn nesting_depth(html: &str) -> usize {
    let sink = DepthSink::default();
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(html.into());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.deepest.get()
}

#[derive(Default)]
struct DepthSink {
    open: RefCell<Vec<LocalName>>,
    open_by_name: RefCell<HashMap<LocalName, usize>>,
    deepest: Cell<usize>,
}

impl TokenSink for DepthSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let Token::TagToken(tag) = token else {
            return TokenSinkResult::Continue;
        };
        let mut open = self.open.borrow_mut();
        let mut open_by_name = self.open_by_name.borrow_mut();
        match tag.kind {
            TagKind::StartTag => {
                let raw = match tag.name {
                    local_name!("script") => {
                        Some(html5ever::tokenizer::states::RawKind::ScriptData)
                    }
                    local_name!("style")
                    | local_name!("xmp")
                    | local_name!("iframe")
                    | local_name!("noembed")
                    | local_name!("noframes") => {
                        Some(html5ever::tokenizer::states::RawKind::Rawtext)
                    }
                    local_name!("title") | local_name!("textarea") => {
                        Some(html5ever::tokenizer::states::RawKind::Rcdata)
                    }
                    _ => None,
                };
                if let Some(kind) = raw {
                    return TokenSinkResult::RawData(kind);
                }
                if tag.self_closing || closes_itself(&tag.name) || open.len() > MOST_NESTING {
                    return TokenSinkResult::Continue;
                }
                *open_by_name.entry(tag.name.clone()).or_default() += 1;
                open.push(tag.name);
                self.deepest.set(self.deepest.get().max(open.len()));
            }
            TagKind::EndTag => {
                if open_by_name.get(&tag.name).copied().unwrap_or(0) == 0 {
                    return TokenSinkResult::Continue;
                }
                while let Some(name) = open.pop() {
                    if let Some(count) = open_by_name.get_mut(&name) {
                        *count -= 1;
                    }
                    if name == tag.name {
                        break;
                    }
                }
            }
        }
        TokenSinkResult::Continue
    }
}

/// Void elements and elements whose end tag may be left out.
fn closes_itself(name: &LocalName) -> bool {
    matches!(
        *name,
        local_name!("area")
            | local_name!("base")
            | local_name!("br")
            | local_name!("col")
            | local_name!("embed")
            | local_name!("hr")
            | local_name!("img")
            | local_name!("input")
            | local_name!("link")
            | local_name!("meta")
            | local_name!("source")
            | local_name!("track")
            | local_name!("wbr")
            | local_name!("param")
            | local_name!("p")
            | local_name!("li")
            | local_name!("dt")
            | local_name!("dd")
            | local_name!("tr")
            | local_name!("td")
            | local_name!("th")
            | local_name!("option")
            | local_name!("optgroup")
            | local_name!("thead")
            | local_name!("tbody")
            | local_name!("tfoot")
            | local_name!("colgroup")
            | local_name!("caption")
            | local_name!("rb")
            | local_name!("rt")
            | local_name!("rp")
            | local_name!("html")
            | local_name!("head")
            | local_name!("body")
    )
}

fn with_title(title: &str, content: &str) -> String {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() || content.starts_with(&title) {
        content.to_string()
    } else {
        format!("{title}\n{content}")
    }
}

/// Decodes a page's bytes: `forced` when given, else its byte-order mark, else the charset
/// its `<meta>` declares in the first 1024 bytes, else UTF-8 when valid, else the detected
/// legacy encoding. `cut` says the bytes were cut at a size limit.
pub fn decode(
    bytes: &[u8],
    forced: Option<TextEncoding>,
    cut: bool,
) -> Result<encoding::DecodedText, ReadError> {
    if forced.is_some() || encoding::byte_order_mark(bytes).is_some() {
        return encoding::decode(bytes, forced, cut);
    }
    if let Some(declared) = declared_charset(bytes)
        && !declared.is_utf8()
    {
        // A page that says its charset is read in it, malformed bytes replaced, as browsers
        // read it; UTF-32, which no browser reads, is read strictly.
        if !matches!(declared, TextEncoding::Whatwg(_)) {
            return encoding::decode(bytes, Some(declared), cut);
        }
        return Ok(encoding::DecodedText {
            text: declared.decode_lossy(bytes),
            encoding: declared,
        });
    }
    encoding::decode(bytes, None, cut)
}

/// The charset a page declares in a `<meta charset=…>` or `<meta http-equiv=… content="…;
/// charset=…">` within its first 1024 bytes (the HTML standard's prescan, simplified to the
/// first `charset=`), when it names a known encoding.
fn declared_charset(bytes: &[u8]) -> Option<TextEncoding> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    let mut rest = head.as_str();
    while let Some(meta) = rest.find("<meta") {
        rest = &rest[meta + 5..];
        let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
        if let Some(position) = tag.find("charset") {
            let value = tag[position + 7..].trim_start();
            let Some(value) = value.strip_prefix('=') else {
                continue;
            };
            let label: String = value
                .trim_start()
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| !matches!(c, '"' | '\'' | ';' | ' ' | '/' | '>'))
                .collect();
            // The standard reads a declared UTF-16 as UTF-8: the bytes got this far as ASCII.
            return match TextEncoding::from_label(&label)? {
                TextEncoding::Whatwg(whatwg)
                    if whatwg == encoding_rs::UTF_16LE || whatwg == encoding_rs::UTF_16BE =>
                {
                    Some(TextEncoding::UTF_8)
                }
                other => Some(other),
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>A quiet triumph</title>
<script>var ads = "terrible deals, worst prices, awful offers";</script>
<style>body { color: red }</style></head>
<body>
<header><nav><a href="/">Home</a> | <a href="/deals">Terrible deals</a> | <a href="/worst">Worst prices</a></nav></header>
<article>
<h1>A quiet triumph</h1>
<p>This film is a quiet triumph. The lead gives the performance of her career, and the
script never puts a foot wrong.</p>
<p>I left the cinema moved and grateful. The photography is gorgeous, the music is
haunting, and every scene earns its place in the story.</p>
<p>See it on the biggest screen you can find; it is the best film of the year, and I
will watch it again next week with my whole family.</p>
</article>
<aside>Related: the worst films of the decade, awful sequels, terrible remakes</aside>
<footer>Copyright, terms, privacy, cookie settings</footer>
<script>document.write("dreadful");</script>
</body></html>"#;

    #[test]
    fn the_main_content_leads_and_boilerplate_is_dropped() {
        let text = main_text(PAGE).expect("a page");
        assert!(text.starts_with("A quiet triumph\n"), "{text}");
        assert!(text.contains("This film is a quiet triumph."), "{text}");
        assert!(text.contains("with my whole family."), "{text}");
        for boilerplate in [
            "terrible",
            "Worst",
            "awful",
            "Copyright",
            "dreadful",
            "color",
        ] {
            assert!(!text.contains(boilerplate), "{boilerplate} in {text}");
        }
        // Paragraphs stay apart.
        assert!(text.contains("career, and the script"), "{text}");
        assert!(text.contains("story.\n"), "{text}");
    }

    #[test]
    fn a_short_page_is_read_as_its_visible_text() {
        let text = main_text(
            "<html><head><title>Note</title><script>bad()</script></head>\
             <body><nav>Menu</nav><p>Loved it.</p><p>Truly.</p></body></html>",
        )
        .expect("a page");
        assert_eq!(text, "Note\nLoved it.\n\nTruly.");
        assert_eq!(
            main_text("<html><body><script>x()</script></body></html>")
                .unwrap_err()
                .to_string(),
            "the page holds no text"
        );
    }

    #[test]
    fn visible_text_keeps_all_but_hidden_elements() {
        assert_eq!(
            visible_text(
                "<style>p{}</style><p>One <b>bold</b> line</p><script>x()</script><div>Two</div>"
            )
            .expect("shallow"),
            "One bold line\n\nTwo"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| {
            format!(
                "<html><body>{}<p>Deep text.{}</p>{}</body></html>",
                "<div>".repeat(depth),
                "<br><img src=x><p>unclosed".repeat(50),
                "</div>".repeat(depth)
            )
        };
        assert_eq!(nesting_depth(&nested(40)), 40);
        assert_eq!(
            nesting_depth("<script>if (a<b) { x('<div><div>') }</script><div></div>"),
            1
        );
        assert_eq!(nesting_depth("</div></span><b><i></b>"), 2);
        assert!(
            main_text(&nested(MOST_NESTING))
                .expect("a page")
                .contains("Deep text.")
        );
        let started = std::time::Instant::now();
        for depth in [MOST_NESTING + 1, 20_000] {
            assert_eq!(
                main_text(&nested(depth)).unwrap_err().to_string(),
                "malformed HTML: elements nest more than 512 deep, deeper than exitwise reads"
            );
            assert!(visible_text(&nested(depth)).is_err());
        }
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    }

    #[test]
    fn pages_are_decoded_by_their_declared_charset() {
        let (bytes, _, _) = encoding_rs::WINDOWS_1252
            .encode("<html><head><meta charset=\"iso-8859-1\"></head><body><p>Très émouvant.</p></body></html>");
        let decoded = decode(&bytes, None, false).expect("decoded");
        assert_eq!(decoded.encoding.name(), "windows-1252");
        assert!(decoded.text.contains("Très émouvant."));
        let declared =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=Shift_JIS\">";
        assert_eq!(
            declared_charset(declared).map(TextEncoding::name),
            Some("Shift_JIS")
        );
        assert_eq!(
            declared_charset(b"<meta charset=utf-16>"),
            Some(TextEncoding::UTF_8)
        );
        assert_eq!(declared_charset(b"<p>charset=latin1</p>"), None);
    }
}
