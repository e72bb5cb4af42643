//! On-disk cache of extracted features, so re-training or re-calibrating never re-runs the
//! model.
//!
//! One folder per (model sha256, data file sha256, feature settings). Features are appended one
//! document at a time to `features.bin` and synced to the disk, so an interrupted extraction (a
//! kill, a crash, a power loss) loses at most the document in progress; a record cut short is
//! dropped when the cache is opened again. Each record ends with a CRC-32 of its header and
//! values, checked when the cache is opened: a record whose bytes changed on disk is left out and
//! its document extracted again, never read as features. (Records of the first layout, `EWF1`,
//! have no checksum and are still read.) Values are stored as IEEE half floats, which halves the size; hidden states
//! keep about three significant digits, far more than a standardised linear head needs.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use half::f16;
use ndarray::Array3;
use serde::{Deserialize, Serialize};

use super::DocumentFeatures;

/// Version of the cache layout; a change starts a new cache folder.
pub const CACHE_FORMAT: u32 = 1;

/// Environment variable that moves the cache.
pub const CACHE_DIR_VARIABLE: &str = "EXITWISE_CACHE_DIR";

/// A record without a checksum (written before checksums were added; still read).
const RECORD_MAGIC_UNCHECKED: [u8; 4] = *b"EWF1";
/// A record that ends with the CRC-32 of its header and payload.
const RECORD_MAGIC: [u8; 4] = *b"EWF2";
const RECORD_HEADER_BYTES: u64 = 12;
const RECORD_CHECKSUM_BYTES: u64 = 4;

/// What the cached features depend on; every field is part of the cache folder's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// Layout version ([`CACHE_FORMAT`]).
    pub format: u32,
    /// SHA-256 of the GGUF file.
    pub model_sha256: String,
    /// SHA-256 of the data file.
    pub data_sha256: String,
    /// Token limit per document used when reading.
    pub token_limit: usize,
    /// Layers of the model.
    pub layers: usize,
    /// Hidden-state width.
    pub width: usize,
}

impl CacheKey {
    fn folder_name(&self) -> String {
        format!(
            "{}-{}-t{}-v{}",
            &self.model_sha256[..self.model_sha256.len().min(12)],
            &self.data_sha256[..self.data_sha256.len().min(12)],
            self.token_limit,
            self.format
        )
    }

    /// Bytes of one document's payload with `prefixes` sentence prefixes (both kinds).
    fn payload_bytes(&self, prefixes: usize) -> u64 {
        (prefixes * self.layers * self.width * 2 * std::mem::size_of::<f16>()) as u64
    }
}

/// Why the cache cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} the feature cache `{path}`: {cause}")]
pub struct CacheError {
    action: &'static str,
    path: PathBuf,
    cause: std::io::Error,
}

/// Document index → (payload offset, sentence prefixes).
type RecordIndex = BTreeMap<usize, (u64, usize)>;

/// An open feature cache for one key.
#[derive(Debug)]
pub struct FeatureCache {
    folder: PathBuf,
    key: CacheKey,
    index: RecordIndex,
    file: File,
}

/// Where caches live: `$EXITWISE_CACHE_DIR`, else `$XDG_CACHE_HOME/exitwise`, else
/// `~/.cache/exitwise`.
pub fn default_cache_root() -> PathBuf {
    crate::locations::environment_folder(CACHE_DIR_VARIABLE)
        .or_else(crate::locations::user_cache)
        .unwrap_or_else(|| PathBuf::from(".exitwise-cache"))
}

impl FeatureCache {
    /// Opens (or creates) the cache for `key` under `root`, dropping a record that an
    /// interruption cut short.
    pub fn open(root: &Path, key: CacheKey) -> Result<Self, CacheError> {
        let folder = root.join("features").join(key.folder_name());
        let error = |action, path: &Path| {
            let path = path.to_path_buf();
            move |cause| CacheError {
                action,
                path,
                cause,
            }
        };
        std::fs::create_dir_all(&folder).map_err(error("create", &folder))?;
        let key_path = folder.join("key.json");
        let data_path = folder.join("features.bin");
        let stored_key = std::fs::read(&key_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CacheKey>(&bytes).ok());
        if stored_key.as_ref() != Some(&key) {
            // A new cache, or one whose key file is damaged: start over.
            let text = serde_json::to_string_pretty(&key).unwrap_or_default();
            crate::durable::write(&key_path, text.as_bytes()).map_err(error("write", &key_path))?;
            let _ = std::fs::remove_file(&data_path);
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&data_path)
            .map_err(error("open", &data_path))?;
        let (index, valid_length) =
            scan_records(&mut file, &key).map_err(error("read", &data_path))?;
        let length = file.metadata().map_err(error("read", &data_path))?.len();
        if valid_length < length {
            file.set_len(valid_length)
                .map_err(error("repair", &data_path))?;
        }
        Ok(FeatureCache {
            folder,
            key,
            index,
            file,
        })
    }

    /// The cache's folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Whether document `index` is cached.
    pub fn contains(&self, index: usize) -> bool {
        self.index.contains_key(&index)
    }

    /// Sentence prefixes cached for document `index`, known from the index without reading.
    pub fn prefixes(&self, index: usize) -> Option<usize> {
        self.index.get(&index).map(|&(_, prefixes)| prefixes)
    }

    /// Number of cached documents.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The cached features of document `index`, if any.
    pub fn get(&mut self, index: usize) -> Result<Option<DocumentFeatures>, CacheError> {
        let Some(&(offset, prefixes)) = self.index.get(&index) else {
            return Ok(None);
        };
        let path = self.folder.join("features.bin");
        let io = |cause| CacheError {
            action: "read",
            path: path.clone(),
            cause,
        };
        let mut bytes = vec![0u8; self.key.payload_bytes(prefixes) as usize];
        self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        self.file.read_exact(&mut bytes).map_err(io)?;
        let shape = (prefixes, self.key.layers, self.key.width);
        let values: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|pair| f16::from_le_bytes([pair[0], pair[1]]).to_f32())
            .collect();
        let half_length = values.len() / 2;
        let mut values = values;
        let mean_values = values.split_off(half_length);
        let to_array = |values: Vec<f32>| {
            Array3::from_shape_vec(shape, values).map_err(|error| CacheError {
                action: "decode",
                path: path.clone(),
                cause: std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()),
            })
        };
        Ok(Some(DocumentFeatures {
            last_token: to_array(values)?,
            mean_tokens: to_array(mean_values)?,
        }))
    }

    /// Appends the features of document `index` and syncs them to the disk.
    pub fn put(&mut self, index: usize, features: &DocumentFeatures) -> Result<(), CacheError> {
        let path = self.folder.join("features.bin");
        let io = |cause| CacheError {
            action: "write",
            path: path.clone(),
            cause,
        };
        let prefixes = features.prefixes();
        let expected = [prefixes, self.key.layers, self.key.width];
        if features.last_token.shape() != expected || features.mean_tokens.shape() != expected {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "features of shape {:?} do not match the cache's {expected:?}",
                    features.last_token.shape()
                ),
            )));
        }
        let index_u32 = u32::try_from(index)
            .map_err(|_| io(std::io::Error::other("document index too large")))?;
        let prefixes_u32 =
            u32::try_from(prefixes).map_err(|_| io(std::io::Error::other("too many sentences")))?;
        let mut record = Vec::with_capacity(
            (RECORD_HEADER_BYTES + self.key.payload_bytes(prefixes) + RECORD_CHECKSUM_BYTES)
                as usize,
        );
        record.extend_from_slice(&RECORD_MAGIC);
        record.extend_from_slice(&index_u32.to_le_bytes());
        record.extend_from_slice(&prefixes_u32.to_le_bytes());
        for array in [&features.last_token, &features.mean_tokens] {
            for value in array {
                record.extend_from_slice(&f16::from_f32(*value).to_le_bytes());
            }
        }
        let checksum = crc32fast::hash(&record);
        record.extend_from_slice(&checksum.to_le_bytes());
        let start = self.file.seek(SeekFrom::End(0)).map_err(io)?;
        self.file.write_all(&record).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.index
            .insert(index, (start + RECORD_HEADER_BYTES, prefixes));
        Ok(())
    }
}

/// Reads the records' headers (and checks the checksums of those that have one); returns the
/// index and the length of the file's part made of whole records. A record whose checksum does
/// not match is left out of the index (its document is extracted again); the first record that
/// is cut short or not a record at all ends the valid part.
fn scan_records(file: &mut File, key: &CacheKey) -> std::io::Result<(RecordIndex, u64)> {
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&mut *file);
    let mut index = BTreeMap::new();
    let mut position = 0u64;
    let mut record = vec![0u8; RECORD_HEADER_BYTES as usize];
    while position + RECORD_HEADER_BYTES <= length {
        record.resize(RECORD_HEADER_BYTES as usize, 0);
        reader.read_exact(&mut record)?;
        let checked = record[..4] == RECORD_MAGIC;
        let valid_magic = checked || record[..4] == RECORD_MAGIC_UNCHECKED;
        let document = u32::from_le_bytes([record[4], record[5], record[6], record[7]]) as usize;
        let prefixes = u32::from_le_bytes([record[8], record[9], record[10], record[11]]) as usize;
        let payload = key.payload_bytes(prefixes);
        let end = position
            + RECORD_HEADER_BYTES
            + payload
            + if checked { RECORD_CHECKSUM_BYTES } else { 0 };
        if !valid_magic || prefixes == 0 || end > length {
            break;
        }
        let intact = if checked {
            record.resize((RECORD_HEADER_BYTES + payload) as usize, 0);
            reader.read_exact(&mut record[RECORD_HEADER_BYTES as usize..])?;
            let mut stored = [0u8; RECORD_CHECKSUM_BYTES as usize];
            reader.read_exact(&mut stored)?;
            crc32fast::hash(&record) == u32::from_le_bytes(stored)
        } else {
            reader.seek_relative(payload as i64)?;
            true
        };
        if intact {
            index.insert(document, (position + RECORD_HEADER_BYTES, prefixes));
        } else {
            tracing::warn!(
                "a cached record of document {document} is corrupt: its features are extracted again"
            );
        }
        position = end;
    }
    Ok((index, position))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey {
            format: CACHE_FORMAT,
            model_sha256: "a".repeat(64),
            data_sha256: "b".repeat(64),
            token_limit: 2048,
            layers: 3,
            width: 4,
        }
    }

    fn features(prefixes: usize, seed: f32) -> DocumentFeatures {
        let shape = (prefixes, 3, 4);
        DocumentFeatures {
            last_token: Array3::from_shape_fn(shape, |(k, l, w)| {
                seed + (k * 12 + l * 4 + w) as f32 * 0.25
            }),
            mean_tokens: Array3::from_shape_fn(shape, |(k, l, w)| -seed - (k + l + w) as f32 * 0.5),
        }
    }

    #[test]
    fn round_trip_survives_reopening() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut cache = FeatureCache::open(root.path(), key()).expect("open");
        assert!(cache.is_empty());
        cache.put(0, &features(2, 1.0)).expect("put");
        cache.put(5, &features(1, 2.0)).expect("put");
        drop(cache);
        let mut cache = FeatureCache::open(root.path(), key()).expect("reopen");
        assert_eq!(cache.len(), 2);
        assert!(cache.contains(5) && !cache.contains(1));
        // These values are exact in half precision.
        assert_eq!(cache.get(0).expect("get"), Some(features(2, 1.0)));
        assert_eq!(cache.get(5).expect("get"), Some(features(1, 2.0)));
        assert_eq!(cache.get(1).expect("get"), None);
    }

    #[test]
    fn an_interrupted_write_loses_only_that_document() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut cache = FeatureCache::open(root.path(), key()).expect("open");
        cache.put(0, &features(2, 1.0)).expect("put");
        cache.put(1, &features(3, 1.0)).expect("put");
        let data = cache.folder().join("features.bin");
        drop(cache);
        let length = std::fs::metadata(&data).expect("metadata").len();
        let file = OpenOptions::new().write(true).open(&data).expect("open");
        file.set_len(length - 10).expect("cut");
        drop(file);
        let mut cache = FeatureCache::open(root.path(), key()).expect("reopen");
        assert_eq!(cache.len(), 1);
        cache.put(1, &features(3, 1.0)).expect("write again");
        drop(cache);
        let mut cache = FeatureCache::open(root.path(), key()).expect("reopen");
        assert_eq!(cache.get(1).expect("get"), Some(features(3, 1.0)));
    }

    #[test]
    fn a_corrupt_record_is_left_out_and_computed_again_never_read() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut cache = FeatureCache::open(root.path(), key()).expect("open");
        cache.put(0, &features(2, 1.0)).expect("put");
        cache.put(1, &features(3, 1.0)).expect("put");
        cache.put(2, &features(1, 3.0)).expect("put");
        let data = cache.folder().join("features.bin");
        drop(cache);
        // One flipped bit in the middle record's values (bit rot, a bad sector).
        let mut bytes = std::fs::read(&data).expect("read");
        let first_record =
            (RECORD_HEADER_BYTES + key().payload_bytes(2) + RECORD_CHECKSUM_BYTES) as usize;
        bytes[first_record + RECORD_HEADER_BYTES as usize + 5] ^= 0x10;
        std::fs::write(&data, &bytes).expect("write");
        let mut cache = FeatureCache::open(root.path(), key()).expect("reopen");
        assert!(cache.contains(0) && !cache.contains(1) && cache.contains(2));
        assert_eq!(cache.get(1).expect("get"), None, "never read as features");
        assert_eq!(cache.get(2).expect("get"), Some(features(1, 3.0)));
        cache.put(1, &features(3, 1.0)).expect("computed again");
        drop(cache);
        let mut cache = FeatureCache::open(root.path(), key()).expect("reopen");
        assert_eq!(cache.get(1).expect("get"), Some(features(3, 1.0)));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn records_of_the_first_layout_without_a_checksum_are_still_read() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut cache = FeatureCache::open(root.path(), key()).expect("open");
        cache.put(4, &features(2, 1.0)).expect("put");
        let data = cache.folder().join("features.bin");
        drop(cache);
        // The same record as the first layout wrote it: other magic, no checksum.
        let mut bytes = std::fs::read(&data).expect("read");
        bytes[..4].copy_from_slice(&RECORD_MAGIC_UNCHECKED);
        bytes.truncate(bytes.len() - RECORD_CHECKSUM_BYTES as usize);
        std::fs::write(&data, &bytes).expect("write");
        let mut cache = FeatureCache::open(root.path(), key()).expect("reopen");
        assert_eq!(cache.get(4).expect("get"), Some(features(2, 1.0)));
        cache.put(5, &features(1, 2.0)).expect("put");
        drop(cache);
        let mut cache = FeatureCache::open(root.path(), key()).expect("reopen");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(5).expect("get"), Some(features(1, 2.0)));
    }

    #[test]
    fn another_key_is_another_cache_and_shapes_are_checked() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut cache = FeatureCache::open(root.path(), key()).expect("open");
        cache.put(0, &features(1, 1.0)).expect("put");
        let other = CacheKey {
            token_limit: 512,
            ..key()
        };
        let mut other_cache = FeatureCache::open(root.path(), other).expect("open");
        assert!(other_cache.is_empty());
        let wrong = DocumentFeatures {
            last_token: Array3::zeros((1, 2, 4)),
            mean_tokens: Array3::zeros((1, 2, 4)),
        };
        assert!(other_cache.put(0, &wrong).is_err());
    }
}
