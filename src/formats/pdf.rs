//! A PDF's text layer. [`pdf_extract`] (on `lopdf`) interprets the pages' content streams,
//! fonts and encodings and hands over positioned characters; what is written here puts them
//! back into lines and paragraphs: a line that wraps inside a paragraph joins the next one
//! (a line break would otherwise read as a sentence end), a larger vertical gap, a change of
//! font size or a short line ends a paragraph. Reading stops once the text limit is reached, so
//! a thousand-page PDF costs the pages that fill it.
//!
//! `pdf_extract` panics and recurses on malformed files and decompresses streams without a
//! bound: this reader runs in a child process with memory and time limits
//! ([`super::isolation`]), never in the classifying process.

use pdf_extract::{MediaBox, OutputDev, OutputError, Transform};

use super::ReadError;

/// The text of a PDF, up to about `text_limit` bytes.
pub fn read(bytes: &[u8], text_limit: usize) -> Result<String, ReadError> {
    let malformed = |reason: String| ReadError::Malformed {
        what: "PDF".into(),
        reason,
    };
    let mut document =
        pdf_extract::Document::load_mem(bytes).map_err(|error| malformed(error.to_string()))?;
    if document.is_encrypted() && document.decrypt("").is_err() {
        return Err(ReadError::Encrypted);
    }
    let mut layout = Layout::new(text_limit);
    match pdf_extract::output_doc(&document, &mut layout) {
        Ok(()) => {}
        // The layout stops the interpreter once it holds enough text.
        Err(_) if layout.full() => {}
        Err(error) => {
            if layout.lines.is_empty() {
                return Err(malformed(error.to_string()));
            }
            // Keep the pages read before the damage.
        }
    }
    let text = layout.paragraphs();
    if text.trim().is_empty() {
        return Err(ReadError::NoTextLayer);
    }
    Ok(text)
}

/// One line of text as laid out on a page (y grows downwards).
#[derive(Debug, Clone)]
struct Line {
    page: u32,
    y: f64,
    x_start: f64,
    x_end: f64,
    font_size: f64,
    text: String,
}

/// Collects positioned characters into lines.
struct Layout {
    lines: Vec<Line>,
    page: u32,
    page_height: f64,
    word_start: bool,
    bytes: usize,
    text_limit: usize,
}

impl Layout {
    fn new(text_limit: usize) -> Self {
        Layout {
            lines: Vec::new(),
            page: 0,
            page_height: 0.0,
            word_start: false,
            bytes: 0,
            text_limit,
        }
    }

    fn full(&self) -> bool {
        self.bytes >= self.text_limit
    }

    /// The lines as paragraphs, one per line of text.
    fn paragraphs(&self) -> String {
        // A page's edges of text: where its lines start and the furthest any reaches.
        let mut edges = std::collections::HashMap::<u32, (f64, f64)>::new();
        for line in &self.lines {
            let (left, right) = edges.entry(line.page).or_insert((f64::MAX, f64::MIN));
            *left = left.min(line.x_start);
            *right = right.max(line.x_end);
        }
        let mut text = String::new();
        for (index, line) in self.lines.iter().enumerate() {
            let content = line.text.trim();
            if content.is_empty() {
                continue;
            }
            if index > 0 && !text.is_empty() {
                let previous = &self.lines[index - 1];
                let (left, right) = edges[&previous.page];
                if continues_paragraph(previous, line, left, right) {
                    if text.ends_with('-')
                        && text[..text.len() - 1].ends_with(char::is_alphabetic)
                        && content.starts_with(char::is_lowercase)
                    {
                        // A word hyphenated at the line's end.
                        text.pop();
                    } else {
                        text.push(' ');
                    }
                } else {
                    text.push('\n');
                }
            }
            text.push_str(content);
        }
        text
    }
}

/// Whether `line` goes on the paragraph `previous` is in: the previous line reaches close to
/// the right edge of the page's text (`left`..`right`: it wrapped), the font size is the same,
/// and the step down is a line's, not a paragraph gap. A new page or column continues a
/// paragraph whose last line was full.
fn continues_paragraph(previous: &Line, line: &Line, left: f64, right: f64) -> bool {
    let size = previous.font_size.max(line.font_size).max(1.0);
    let full = previous.x_end >= right - 0.12 * (right - left);
    if !full {
        return false;
    }
    if (previous.font_size - line.font_size).abs() > 0.15 * size {
        return false;
    }
    if line.page != previous.page {
        return true;
    }
    let step = line.y - previous.y;
    // Moving up: the next column.
    step < 0.0 || step <= 1.6 * size
}

impl OutputDev for Layout {
    fn begin_page(
        &mut self,
        page_number: u32,
        media_box: &MediaBox,
        _: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        if self.full() {
            return Err(OutputError::FormatError(std::fmt::Error));
        }
        self.page = page_number;
        self.page_height = media_box.ury - media_box.lly;
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        transform: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        character: &str,
    ) -> Result<(), OutputError> {
        if self.full() {
            return Err(OutputError::FormatError(std::fmt::Error));
        }
        // The text-rendering matrix maps text space to the page; y is flipped so that it grows
        // down the page. The font's size on the page is the side of the square with the area
        // its transformed em square has.
        let (x, y) = (transform.m31, self.page_height - transform.m32);
        let horizontal = font_size * (transform.m11 + transform.m21);
        let vertical = font_size * (transform.m12 + transform.m22);
        let size = (horizontal * vertical).abs().sqrt().max(0.1);
        let x_end = x + width * size;
        let continues_line = self.lines.last().is_some_and(|line| {
            line.page == self.page && (y - line.y).abs() <= 0.5 * size.max(line.font_size)
        });
        if continues_line && let Some(line) = self.lines.last_mut() {
            // A gap wider than a tenth of the font's size between words is a space; justified
            // text has wide gaps and space characters too, so spaces never double.
            let blank = character.chars().all(char::is_whitespace);
            let gap = self.word_start && x > line.x_end + 0.1 * size;
            if (gap || blank) && !line.text.ends_with(' ') {
                line.text.push(' ');
                self.bytes += 1;
            }
            if !blank {
                line.text.push_str(character);
                self.bytes += character.len();
            }
            line.x_end = line.x_end.max(x_end);
        } else {
            self.lines.push(Line {
                page: self.page,
                y,
                x_start: x,
                x_end,
                font_size: size,
                text: character.to_string(),
            });
            self.bytes += 1 + character.len();
        }
        self.word_start = false;
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.word_start = true;
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pdf_extract::{Dictionary, Object, Stream, dictionary};

    /// A PDF with one page per entry of `pages`, each a list of (font size, y from the top,
    /// text) lines in Helvetica at x = 72, written with `lopdf`.
    pub(crate) fn pdf(pages: &[&[(f64, f64, &str)]]) -> Vec<u8> {
        let mut document = pdf_extract::Document::with_version("1.5");
        let pages_id = document.new_object_id();
        let font_id = document.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => "Helvetica",
            "Encoding" => "WinAnsiEncoding",
        });
        let resources_id = document.add_object(dictionary! {
            "Font" => dictionary! { "F1" => font_id },
        });
        let mut kids = Vec::new();
        for lines in pages {
            let mut content = String::new();
            for (size, y, text) in *lines {
                let escaped = text
                    .replace('\\', "\\\\")
                    .replace('(', "\\(")
                    .replace(')', "\\)");
                content.push_str(&format!(
                    "BT /F1 {size} Tf 72 {} Td ({escaped}) Tj ET\n",
                    792.0 - y
                ));
            }
            let content_id =
                document.add_object(Stream::new(Dictionary::new(), content.into_bytes()));
            let page_id = document.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
            });
            kids.push(Object::Reference(page_id));
        }
        let count = kids.len() as i64;
        document.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => kids,
                "Count" => count,
                "Resources" => resources_id,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            }),
        );
        let catalog_id = document.add_object(dictionary! {
            "Type" => "Catalog",
            "Pages" => pages_id,
        });
        document.trailer.set("Root", catalog_id);
        let mut bytes = Vec::new();
        document.save_to(&mut bytes).expect("a PDF");
        bytes
    }

    #[test]
    fn wrapped_lines_join_and_paragraphs_stay_apart() {
        let bytes = pdf(&[
            &[
                (18.0, 72.0, "A quiet triumph"),
                (
                    11.0,
                    110.0,
                    "This film is a quiet triumph. The lead gives the performance of her",
                ),
                (
                    11.0,
                    124.0,
                    "career, and the script never puts a foot wrong. I left the cinema",
                ),
                (11.0, 138.0, "moved."),
                (
                    11.0,
                    166.0,
                    "See it on the biggest screen you can find: it is the best film of the",
                ),
                (11.0, 180.0, "year, and I will see it again."),
            ],
            &[(11.0, 72.0, "Second page.")],
        ]);
        let text = read(&bytes, 1 << 20).expect("a PDF");
        assert_eq!(
            text,
            "A quiet triumph\n\
             This film is a quiet triumph. The lead gives the performance of her career, and the script never puts a foot wrong. I left the cinema moved.\n\
             See it on the biggest screen you can find: it is the best film of the year, and I will see it again.\n\
             Second page."
        );
    }

    #[test]
    fn reading_stops_at_the_text_limit() {
        let line = "Another line of a very long document that goes on and on and on.";
        let page: Vec<(f64, f64, &str)> = (0..40)
            .map(|row| (11.0, 72.0 + 14.0 * f64::from(row), line))
            .collect();
        let pages: Vec<&[(f64, f64, &str)]> = (0..50).map(|_| page.as_slice()).collect();
        let bytes = pdf(&pages);
        let text = read(&bytes, 4096).expect("a PDF");
        assert!(text.len() < 4096 + 2 * line.len(), "{}", text.len());
    }

    #[test]
    fn no_text_layer_and_malformed_files_say_so() {
        let blank = pdf(&[&[]]);
        assert_eq!(
            read(&blank, 1 << 20).unwrap_err().to_string(),
            "the PDF has no text layer (a scanned image?): run OCR on it first"
        );
        assert!(
            read(b"%PDF-1.4\nnonsense", 1 << 20)
                .unwrap_err()
                .to_string()
                .starts_with("malformed PDF: ")
        );
    }
}
