//! Batch jobs that survive being killed and spread over machines: a JSON Lines output file that
//! a rerun continues ([`RecordFile`]) and a stable share of the documents by their id
//! ([`Shard`]).
//!
//! A record is one line written with one `write` call as soon as its document is answered; a
//! `kill -9` can only cut the last line short. Opened again with `resume`, the file loses that
//! partial line and tells which ids it already holds, so the rerun classifies exactly the
//! documents missing: nothing lost, nothing twice. N processes given shards `0/N` … `N-1/N`
//! of the same inputs cover every document exactly once, so their files merge with `cat`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Errors of batch output files.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The file cannot be opened, read, cut or written.
    #[error("cannot {action} `{}`: {cause}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        cause: std::io::Error,
    },
    /// The file holds records and `resume` was not asked for.
    #[error(
        "`{}` already holds records: pass --resume to continue it, or remove it",
        .0.display()
    )]
    NotEmpty(PathBuf),
    /// A complete line of the file is not a record with an id.
    #[error(
        "line {line} of `{}` is not a record with a string `id`: is it the output of another command?",
        path.display()
    )]
    NotARecord {
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
    },
}

/// A JSON Lines file of records, written one whole line at a time and synced to the disk at
/// least every [`RecordFile::SYNC_INTERVAL`], so a power loss takes at most the records of the
/// last seconds (which `resume` computes again).
#[derive(Debug)]
pub struct RecordFile {
    file: File,
    path: PathBuf,
    last_sync: std::time::Instant,
}

/// What [`RecordFile::open`] found in a file it continues.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// Ids of the records already in the file.
    pub ids: HashSet<String>,
    /// Bytes of a partial last line that were cut off (a write killed mid-way).
    pub cut_bytes: u64,
}

impl RecordFile {
    /// Longest time between syncs while records are written.
    pub const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

    /// Opens `path` for records. With `resume`, an existing file is continued: its partial last
    /// line (if any) is cut off and the ids of its records are returned. Without, a file that
    /// already holds anything is refused ([`BatchError::NotEmpty`]) rather than overwritten.
    pub fn open(path: &Path, resume: bool) -> Result<(RecordFile, Resumed), BatchError> {
        let io = |action| {
            move |cause| BatchError::Io {
                action,
                path: path.to_path_buf(),
                cause,
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io("open"))?;
        let length = file.metadata().map_err(io("read"))?.len();
        if length > 0 && !resume {
            return Err(BatchError::NotEmpty(path.to_path_buf()));
        }
        // A new file's name must survive a power loss too.
        crate::durable::sync_folder(crate::durable::folder_of(path))
            .map_err(io("sync the folder of"))?;
        let mut resumed = Resumed::default();
        if length > 0 {
            let complete = read_ids(&file, path, &mut resumed.ids)?;
            resumed.cut_bytes = length - complete;
            if resumed.cut_bytes > 0 {
                file.set_len(complete)
                    .map_err(io("cut the partial last line of"))?;
            }
        }
        file.seek(SeekFrom::End(0)).map_err(io("read"))?;
        Ok((
            RecordFile {
                file,
                path: path.to_path_buf(),
                last_sync: std::time::Instant::now(),
            },
            resumed,
        ))
    }

    /// Appends `line` (one record, ending in a newline) with one write; syncs when the last
    /// sync is [`Self::SYNC_INTERVAL`] old.
    pub fn write_line(&mut self, line: &str) -> Result<(), BatchError> {
        self.file
            .write_all(line.as_bytes())
            .map_err(|cause| BatchError::Io {
                action: "write a record to",
                path: self.path.clone(),
                cause,
            })?;
        if self.last_sync.elapsed() >= Self::SYNC_INTERVAL {
            self.sync()?;
        }
        Ok(())
    }

    /// Syncs the records to the disk (also at the end of a run).
    pub fn sync(&mut self) -> Result<(), BatchError> {
        self.file.sync_data().map_err(|cause| BatchError::Io {
            action: "sync",
            path: self.path.clone(),
            cause,
        })?;
        self.last_sync = std::time::Instant::now();
        Ok(())
    }
}

/// Collects the ids of every complete line of `file` into `ids`; answers the length of the
/// complete lines (where a partial last line starts).
fn read_ids(file: &File, path: &Path, ids: &mut HashSet<String>) -> Result<u64, BatchError> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: String,
    }
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let (mut complete, mut number) = (0u64, 0usize);
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|cause| BatchError::Io {
                action: "read",
                path: path.to_path_buf(),
                cause,
            })?;
        if read == 0 || line.last() != Some(&b'\n') {
            return Ok(complete);
        }
        number += 1;
        complete += read as u64;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: IdOnly = serde_json::from_slice(&line).map_err(|_| BatchError::NotARecord {
            path: path.to_path_buf(),
            line: number,
        })?;
        ids.insert(record.id);
    }
}

/// Shard `index` of `count`: the documents whose id hashes to it.
///
/// The hash is the first eight bytes of the id's SHA-256, read as a big-endian number, modulo
/// `count`: stable across versions, machines and runs, and reproducible with any SHA-256 tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0 (as Slurm's `SLURM_ARRAY_TASK_ID` and Kubernetes'
    /// `JOB_COMPLETION_INDEX` count).
    pub index: u64,
    /// Shards in all.
    pub count: u64,
}

impl Shard {
    /// The shard document `id` belongs to.
    pub fn of(id: &str, count: u64) -> u64 {
        let digest = Sha256::digest(id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % count.max(1)
    }

    /// Whether document `id` is this shard's.
    pub fn contains(&self, id: &str) -> bool {
        Shard::of(id, self.count) == self.index
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = || format!("expected K/N with 0 ≤ K < N (e.g. 0/4), not `{text}`");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: u64 = index.trim().parse().map_err(|_| usage())?;
        let count: u64 = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_cover_every_id_once() {
        assert_eq!("2/8".parse(), Ok(Shard { index: 2, count: 8 }));
        for bad in ["8/8", "1/0", "1", "a/2", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        let mut sizes = [0usize; 4];
        for number in 0..4000 {
            let id = format!("reviews/{number}.txt");
            let owners: Vec<usize> = (0..4).filter(|&s| shards[s].contains(&id)).collect();
            assert_eq!(owners.len(), 1, "{id} is in exactly one shard");
            sizes[owners[0]] += 1;
        }
        // Even shares: each within 10 % of 1000.
        assert!(
            sizes.iter().all(|&size| (900..=1100).contains(&size)),
            "{sizes:?}"
        );
        // Stable: the first eight bytes of sha256("a") are ca978112ca1bbdca.
        assert_eq!(Shard::of("a", 1000), 0xca97_8112_ca1b_bdca % 1000);
        assert_eq!(Shard::of("anything", 1), 0);
    }

    #[test]
    fn a_partial_last_line_is_cut_and_ids_are_read_back() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("out.jsonl");
        let (mut file, resumed) = RecordFile::open(&path, false).unwrap();
        assert_eq!(resumed, Resumed::default());
        file.write_line("{\"id\":\"a\",\"label\":\"pos\"}\n")
            .unwrap();
        file.write_line("{\"id\":\"b\",\"error\":\"empty\"}\n")
            .unwrap();
        file.write_line("{\"id\":\"c\",\"lab").unwrap();
        drop(file);

        let refused = RecordFile::open(&path, false).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("already holds records: pass --resume"),
            "{refused}"
        );
        let (mut file, resumed) = RecordFile::open(&path, true).unwrap();
        assert_eq!(resumed.cut_bytes, 14);
        let mut ids: Vec<&str> = resumed.ids.iter().map(String::as_str).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a", "b"]);
        file.write_line("{\"id\":\"c\"}\n").unwrap();
        file.sync().unwrap();
        drop(file);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":\"a\",\"label\":\"pos\"}\n{\"id\":\"b\",\"error\":\"empty\"}\n{\"id\":\"c\"}\n"
        );
    }

    #[test]
    fn a_file_of_something_else_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("notes.txt");
        std::fs::write(&path, "{\"id\":\"a\"}\nshopping list\n").unwrap();
        let error = RecordFile::open(&path, true).unwrap_err();
        assert!(error.to_string().starts_with("line 2 of `"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap().len(), 25, "left as it was");
    }
}
