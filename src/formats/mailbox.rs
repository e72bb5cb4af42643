//! An mbox mailbox read as a stream of messages: each message is handed on as soon as the
//! next `From ` separator line (or the end) is read, so a mailbox of a million messages costs
//! the memory of one. A message is kept up to a byte limit and a line up to the same limit; the
//! rest is read and dropped, so neither a huge message nor an endless line grows memory.
//!
//! Written here rather than taken from `mail_parser::mailbox::mbox`, whose iterator holds a
//! whole message and a whole line in memory without bound (docs/design.md). The framing is
//! mboxrd's: a line starting with `From ` opens a message; `>From `, `>>From `, … in a body lose
//! one `>`.

use std::io::BufRead;

/// One message of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxMessage {
    /// Its position in the mailbox, from 1.
    pub number: usize,
    /// Its raw bytes, without the separator line, up to the byte limit.
    pub raw: Vec<u8>,
    /// Whether the byte limit cut it.
    pub cut: bool,
}

/// The messages of an mbox stream, in order.
pub struct Mailbox<R> {
    reader: R,
    message_limit: usize,
    numbered: usize,
    line: Vec<u8>,
    finished: bool,
}

impl<R: BufRead> Mailbox<R> {
    /// Reads `reader` as an mbox mailbox, keeping at most `message_limit` bytes a message.
    pub fn new(reader: R, message_limit: usize) -> Self {
        Mailbox {
            reader,
            message_limit,
            numbered: 0,
            line: Vec::new(),
            finished: false,
        }
    }
}

impl<R: BufRead> Iterator for Mailbox<R> {
    type Item = std::io::Result<MailboxMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let mut raw: Vec<u8> = Vec::new();
        let mut cut = false;
        // `self.line` holds the separator that ended the previous message, if any: this
        // message starts after it.
        let mut opened = !self.line.is_empty();
        loop {
            self.line.clear();
            let (read, line_cut) =
                match read_line_bounded(&mut self.reader, &mut self.line, self.message_limit) {
                    Ok(result) => result,
                    Err(error) => {
                        self.finished = true;
                        return Some(Err(error));
                    }
                };
            if read == 0 {
                self.finished = true;
                break;
            }
            if self.line.starts_with(b"From ") {
                if opened || raw.iter().any(|byte| !byte.is_ascii_whitespace()) {
                    // Keep the separator (non-empty) for the next call.
                    return Some(Ok(self.numbered_message(raw, cut)));
                }
                opened = true;
                continue;
            }
            let unquoted = match self.line.iter().position(|&byte| byte != b'>') {
                Some(start) if start > 0 && self.line[start..].starts_with(b"From ") => {
                    &self.line[1..]
                }
                _ => &self.line[..],
            };
            let room = self.message_limit.saturating_sub(raw.len());
            if unquoted.len() > room || line_cut {
                cut = true;
            }
            raw.extend_from_slice(&unquoted[..unquoted.len().min(room)]);
        }
        self.line.clear();
        if opened || raw.iter().any(|byte| !byte.is_ascii_whitespace()) {
            Some(Ok(self.numbered_message(raw, cut)))
        } else {
            None
        }
    }
}

impl<R> Mailbox<R> {
    fn numbered_message(&mut self, raw: Vec<u8>, cut: bool) -> MailboxMessage {
        self.numbered += 1;
        MailboxMessage {
            number: self.numbered,
            raw,
            cut,
        }
    }
}

/// Reads one line (through its `\n`) into `line`, keeping at most `limit` bytes of it and
/// draining the rest: the bytes consumed (0 at the end of the input) and whether the line was
/// cut.
pub fn read_line_bounded(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(usize, bool)> {
    let (mut consumed, mut cut) = (0usize, false);
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok((consumed, cut));
        }
        let (chunk, ends) = match available.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        let room = limit.saturating_sub(line.len());
        if chunk.len() > room {
            line.extend_from_slice(&chunk[..room]);
            cut = true;
        } else {
            line.extend_from_slice(chunk);
        }
        let used = chunk.len();
        reader.consume(used);
        consumed += used;
        if ends {
            return Ok((consumed, cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(mailbox: &str, limit: usize) -> Vec<MailboxMessage> {
        Mailbox::new(mailbox.as_bytes(), limit)
            .collect::<Result<_, _>>()
            .expect("in memory")
    }

    #[test]
    fn messages_are_split_at_separators_and_unquoted() {
        let mailbox = concat!(
            "From a@example.org Mon Sep 30 13:53:59 2002\n",
            "Subject: one\n\n>From the start, fine.\n>>From here.\n\n",
            "From b@example.org Mon Sep 30 13:54:00 2002\n",
            "Subject: two\n\nSecond.\n",
        );
        let found = messages(mailbox, 1 << 20);
        assert_eq!(found.len(), 2);
        assert_eq!(
            String::from_utf8_lossy(&found[0].raw),
            "Subject: one\n\nFrom the start, fine.\n>From here.\n\n"
        );
        assert_eq!((found[1].number, found[1].cut), (2, false));
        assert_eq!(
            String::from_utf8_lossy(&found[1].raw),
            "Subject: two\n\nSecond.\n"
        );
        assert!(messages("", 100).is_empty());
        assert!(messages("\n\n", 100).is_empty());
        // A separator with nothing after it is still a message (an empty one).
        assert_eq!(messages("From a\n", 100).len(), 1);
    }

    #[test]
    fn big_messages_and_endless_lines_are_cut() {
        let long_line = "x".repeat(1000);
        let mailbox =
            format!("From a\nSubject: big\n\n{long_line}\nmore\nFrom b\nSubject: small\n\nok\n");
        let found = messages(&mailbox, 64);
        assert_eq!(found.len(), 2);
        assert!(found[0].cut);
        assert_eq!(found[0].raw.len(), 64);
        assert!(!found[1].cut);
        assert_eq!(
            String::from_utf8_lossy(&found[1].raw),
            "Subject: small\n\nok\n"
        );
    }
}
