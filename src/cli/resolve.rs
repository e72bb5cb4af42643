//! Finding what a command works on: `--model` (a GGUF path or a catalog name), `--adapters` (a
//! pack folder, a pack name, or the compiled-in pack) and the model file's hash.

use std::path::PathBuf;

use anyhow::Context as _;

use exitwise::catalog::{Catalog, FileState, sha256_file};
use exitwise::engine::Model;
use exitwise::pack::{AdapterPack, EMBEDDED_PACK, MANIFEST_FILE};

use super::GlobalOptions;

/// Resolves `--model`: a path to a GGUF file, or the name of a catalog model in the models
/// folder; without it, the catalog's default model.
pub fn resolve_model_path(
    model: Option<&PathBuf>,
    global: &GlobalOptions,
) -> anyhow::Result<PathBuf> {
    let catalog = Catalog::embedded()?;
    let dir = global.models_dir();
    let entry = match model {
        Some(path) => {
            let as_name = path.to_str().and_then(|name| catalog.get(name).ok());
            match as_name {
                Some(entry) if !path.exists() => entry,
                _ => return Ok(path.clone()),
            }
        }
        None => catalog.default_model(),
    };
    let path = entry.path_in(&dir);
    match entry.file_state(&dir) {
        FileState::Present => Ok(path),
        FileState::Missing => anyhow::bail!(
            "the model `{}` is not in `{}`: fetch it with `exitwise models fetch {}` (or `make run` in the source tree), or pass `--model PATH`",
            entry.name,
            dir.display(),
            entry.name
        ),
        FileState::WrongSize(size) => anyhow::bail!(
            "the model file `{}` has {size} bytes instead of {}: fetch it again with `exitwise models fetch {}`",
            path.display(),
            entry.bytes,
            entry.name
        ),
    }
}

/// SHA-256 of a loaded model's file (pack fingerprints and feature-cache keys).
pub fn model_sha256(model: &Model) -> anyhow::Result<String> {
    sha256_file(model.path(), &|_| {})
        .with_context(|| format!("cannot hash `{}`", model.path().display()))
}

/// Loads the model `--model` names (see [`resolve_model_path`]).
pub fn load_model(model: Option<&PathBuf>, global: &GlobalOptions) -> anyhow::Result<Model> {
    let path = resolve_model_path(model, global)?;
    Model::load(&path, &global.model_options())
        .with_context(|| format!("cannot load the model `{}`", path.display()))
}

/// Folder of adapter packs: `$EXITWISE_ADAPTERS_DIR`, else the source tree's `adapters/`.
pub fn adapters_dir() -> PathBuf {
    match std::env::var_os("EXITWISE_ADAPTERS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters"),
    }
}

/// Resolves `--adapters`: a pack folder, or the name of a pack in the adapters folder (or the
/// pack compiled into the binary); without it, the compiled-in default pack.
pub fn load_pack(adapters: Option<&PathBuf>) -> anyhow::Result<AdapterPack> {
    let embedded = || {
        AdapterPack::embedded().map(|pack| pack.context("cannot load the compiled-in default pack"))
    };
    let Some(given) = adapters else {
        return embedded().unwrap_or_else(|| {
            anyhow::bail!(
                "this build has no compiled-in default adapter pack: pass --adapters NAME|DIR"
            )
        });
    };
    if given.is_dir() {
        return AdapterPack::load_dir(given)
            .with_context(|| format!("cannot load the adapter pack `{}`", given.display()));
    }
    let name = given.to_string_lossy();
    let in_folder = adapters_dir().join(given);
    if given.components().count() == 1 && in_folder.is_dir() {
        return AdapterPack::load_dir(&in_folder)
            .with_context(|| format!("cannot load the adapter pack `{}`", in_folder.display()));
    }
    if EMBEDDED_PACK.is_some_and(|pack| pack.name == name)
        && let Some(pack) = embedded()
    {
        return pack;
    }
    let known: Vec<String> = std::fs::read_dir(adapters_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().join(MANIFEST_FILE).is_file())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    anyhow::bail!(
        "no adapter pack `{name}`: it is neither a folder nor a pack in `{}` (packs there: {})",
        adapters_dir().display(),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}
