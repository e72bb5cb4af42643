//! Fragile readers run in a child process. A PDF library that panics on a malformed file,
//! recurses through a cyclic page tree or inflates a stream without a bound would take the
//! classifying process (or the server) down with it; in a child, a crash or a runaway is one
//! error record. The child is this same program re-run with a hidden subcommand: it reads the
//! document's bytes from stdin, limits its own address space and CPU time
//! ([`rlimit`]), reads, and answers on stdout with one JSON value. The parent enforces a wall-clock
//! limit and kills a child that overstays. This is what Apache Tika's forked parser does for
//! the same reason.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Format, ReadError, read_container};

/// Memory and time a child reader may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildLimits {
    /// Most address space, in bytes.
    pub memory_bytes: u64,
    /// Most wall-clock time, in seconds (the CPU time limit is twice it, a backstop for a
    /// child whose parent is gone).
    pub seconds: u64,
}

impl Default for ChildLimits {
    /// 2 GiB and 30 s: enough for a PDF of the largest size read (128 MiB) with room for its
    /// decoded streams, and for hundreds of pages of text.
    fn default() -> Self {
        ChildLimits {
            memory_bytes: 2 << 30,
            seconds: 30,
        }
    }
}

/// Where container formats (PDF, DOCX, ODT) are read.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// In this process: for tests and fuzzing, where a crash is the finding.
    InProcess,
    /// In a child process: `program` run with `arguments` (which select the child mode), under
    /// `limits`.
    ChildProcess {
        /// The program (this executable).
        program: PathBuf,
        /// Arguments that make it a child reader; the format, text limit and limits follow.
        arguments: Vec<OsString>,
        /// What the child may use.
        limits: ChildLimits,
    },
}

/// A child's answer on stdout.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Text(String),
    Failed(ReadError),
}

impl Isolation {
    /// Reads a container document (`format`: PDF, DOCX or ODT) where this isolation says.
    pub fn read(
        &self,
        bytes: &[u8],
        format: Format,
        text_limit: usize,
    ) -> Result<String, ReadError> {
        match self {
            Isolation::InProcess => read_container(bytes, format, text_limit),
            Isolation::ChildProcess {
                program,
                arguments,
                limits,
            } => read_in_child(program, arguments, *limits, bytes, format, text_limit),
        }
    }
}

fn read_in_child(
    program: &PathBuf,
    arguments: &[OsString],
    limits: ChildLimits,
    bytes: &[u8],
    format: Format,
    text_limit: usize,
) -> Result<String, ReadError> {
    let failed = |reason: String| ReadError::ReaderFailed { format, reason };
    let mut child = Command::new(program)
        .args(arguments)
        .arg(format.name())
        .arg(text_limit.to_string())
        .arg(limits.memory_bytes.to_string())
        .arg(limits.seconds.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed(format!("cannot start `{}`: {error}", program.display())))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // JSON escapes a text into at most 6 bytes a byte (control characters as \u00XX).
    let answer_limit = (text_limit as u64).saturating_mul(6).saturating_add(4096);
    let deadline = Instant::now() + Duration::from_secs(limits.seconds);
    let (status, answer, complaint) = std::thread::scope(|scope| {
        // A child that stops reading early (it crashed) is found by its status below.
        scope.spawn(move || {
            let _ = stdin.write_all(bytes);
        });
        let answer = scope.spawn(move || read_bounded(stdout, answer_limit));
        let complaint = scope.spawn(move || read_bounded(stderr, 4096));
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(ReadError::TimedOut {
                        format,
                        seconds: limits.seconds,
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(error) => break Err(failed(format!("cannot wait for the reader: {error}"))),
            }
        };
        // Scoped threads' panics reach this thread when the scope ends; these only read pipes.
        let answer = answer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let complaint = complaint
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (status, answer, complaint)
    });
    let status = status?;
    let complaint = String::from_utf8_lossy(&complaint);
    let complaint = complaint
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
        .trim();
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => {
                use std::os::unix::process::ExitStatusExt as _;
                format!("signal {}", status.signal().unwrap_or(0))
            }
        };
        let mut reason = format!(
            "it stopped with {how} (a malformed file, or one needing more than its {} MiB of memory)",
            limits.memory_bytes >> 20
        );
        if !complaint.is_empty() {
            reason.push_str(": ");
            reason.push_str(complaint);
        }
        return Err(failed(reason));
    }
    match serde_json::from_slice::<Answer>(&answer) {
        Ok(Answer::Text(text)) => Ok(text),
        Ok(Answer::Failed(error)) => Err(error),
        Err(error) => Err(failed(format!("its answer is not readable: {error}"))),
    }
}

fn read_bounded(reader: impl Read, limit: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut reader = reader;
    let _ = (&mut reader).take(limit).read_to_end(&mut bytes);
    // Drain the rest so the child never blocks on a full pipe.
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
    bytes
}

/// The child's side: parses the arguments the parent appended (format, text limit, memory
/// bytes, seconds), limits itself, reads the document from `input` and writes the answer to
/// `output`. Returns the process's exit status: 0 when an answer was written (a document that
/// cannot be read is an answer too), 2 for arguments that make no sense.
pub fn run_child(arguments: &[String], input: impl Read, mut output: impl Write) -> u8 {
    let parsed = match arguments {
        [format, text_limit, memory, seconds] => Format::from_name(format).zip(
            text_limit
                .parse::<usize>()
                .ok()
                .zip(memory.parse::<u64>().ok().zip(seconds.parse::<u64>().ok())),
        ),
        _ => None,
    };
    let Some((format, (text_limit, (memory_bytes, seconds)))) = parsed else {
        eprintln!("usage: FORMAT TEXT_LIMIT MEMORY_BYTES SECONDS, the document on stdin");
        return 2;
    };
    // The limits come first: nothing of the document is read without them.
    if let Err(error) = rlimit::setrlimit(rlimit::Resource::AS, memory_bytes, memory_bytes)
        .and_then(|()| rlimit::setrlimit(rlimit::Resource::CPU, seconds * 2, seconds * 2))
    {
        eprintln!("cannot limit the reader's memory and time: {error}");
        return 2;
    }
    let mut bytes = Vec::new();
    let limit = format.raw_limit(text_limit) as u64;
    let answer = match input.take(limit + 1).read_to_end(&mut bytes) {
        Err(error) => Answer::Failed(ReadError::ReaderFailed {
            format,
            reason: format!("cannot read the document: {error}"),
        }),
        Ok(_) if bytes.len() as u64 > limit => Answer::Failed(ReadError::TooLarge {
            what: format!("{} file", format.noun()),
            limit: (limit >> 20) as usize,
        }),
        Ok(_) => match read_container(&bytes, format, text_limit) {
            Ok(text) => Answer::Text(text),
            Err(error) => Answer::Failed(error),
        },
    };
    let written = serde_json::to_writer(&mut output, &answer)
        .map_err(std::io::Error::from)
        .and_then(|()| output.flush());
    match written {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("cannot write the answer: {error}");
            2
        }
    }
}
