//! Finding what a command works on: `--model` (a GGUF path or a catalog name), `--adapters` (a
//! pack folder, a pack name, or the compiled-in pack) and the model file's hash.

use std::path::PathBuf;

use anyhow::Context as _;

use exitwise::catalog::{Catalog, FileState, sha256_file};
use exitwise::engine::Model;
use exitwise::locations::{Environment, Kind, Location, search_path};
use exitwise::pack::{AdapterPack, EMBEDDED_PACK, MANIFEST_FILE};

use super::GlobalOptions;

/// Resolves `--model`: a path to a GGUF file, or the name of a catalog model found in the
/// models search path; without it, the catalog's default model.
pub fn resolve_model_path(
    model: Option<&PathBuf>,
    global: &GlobalOptions,
) -> anyhow::Result<PathBuf> {
    let catalog = Catalog::embedded()?;
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
    let locations = global.model_locations();
    let mut damaged = None;
    for location in &locations {
        match entry.file_state(&location.dir) {
            FileState::Present => return Ok(entry.path_in(&location.dir)),
            FileState::WrongSize(size) => {
                damaged.get_or_insert((entry.path_in(&location.dir), size));
            }
            FileState::Missing => {}
        }
    }
    if let Some((path, size)) = damaged {
        anyhow::bail!(
            "the model file `{}` has {size} bytes instead of {}: fetch it again with `exitwise models fetch {}`",
            path.display(),
            entry.bytes,
            entry.name
        );
    }
    anyhow::bail!(
        "the model `{}` is not in {}: fetch it with `exitwise models fetch {}`, import a copy with `exitwise models import FILE`, or pass `--model PATH`",
        entry.name,
        quoted_folders(&locations),
        entry.name
    )
}

/// SHA-256 of a loaded model's file (pack fingerprints and feature-cache keys).
pub fn model_sha256(model: &Model) -> anyhow::Result<String> {
    sha256_file(model.path(), &|_| {})
        .with_context(|| format!("cannot hash `{}`", model.path().display()))
}

/// Loads the model `--model` names (see [`resolve_model_path`]).
/// Refuses a token limit beyond what `model` was trained on: positions past its trained context
/// are ones its attention never saw.
pub fn check_token_limit(model: &Model, token_limit: usize) -> anyhow::Result<()> {
    if let Some(context) = model.facts().trained_context
        && token_limit as u64 > context
    {
        anyhow::bail!(
            "the token limit {token_limit} is beyond the model's trained context of {context} tokens"
        );
    }
    Ok(())
}

pub fn load_model(model: Option<&PathBuf>, global: &GlobalOptions) -> anyhow::Result<Model> {
    let path = resolve_model_path(model, global)?;
    Model::load(&path, &global.model_options())
        .with_context(|| format!("cannot load the model `{}`", path.display()))
}

/// Loads the model `--model` names for work with `pack`, with its file's SHA-256: prints a
/// warning on stderr for each difference the pack tolerates (another quantization of its
/// model); a model the pack cannot use, or any difference with `strict`, is an error.
pub fn load_model_for_pack(
    pack: &AdapterPack,
    model: Option<&PathBuf>,
    global: &GlobalOptions,
    strict: bool,
) -> anyhow::Result<(Model, String)> {
    let model = load_model(model, global)?;
    let sha256 = model_sha256(&model)?;
    for warning in pack.check_model(model.facts(), Some(&sha256), strict)? {
        eprintln!("warning: {warning}");
    }
    Ok((model, sha256))
}

/// The folders searched for named adapter packs, in order.
pub fn adapter_locations() -> Vec<Location> {
    search_path(Kind::Adapters, &Environment::current(Kind::Adapters, None))
}

/// Resolves `--adapters`: a pack folder, or the name of a pack in the adapters search path (or
/// the pack compiled into the binary); without it, the compiled-in default pack.
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
    let locations = adapter_locations();
    if given.components().count() == 1 {
        for location in &locations {
            let folder = location.dir.join(given);
            if folder.join(MANIFEST_FILE).is_file() {
                return AdapterPack::load_dir(&folder).with_context(|| {
                    format!("cannot load the adapter pack `{}`", folder.display())
                });
            }
        }
    }
    if EMBEDDED_PACK.is_some_and(|pack| pack.name == name)
        && let Some(pack) = embedded()
    {
        return pack;
    }
    let mut known: Vec<String> = locations
        .iter()
        .filter_map(|location| std::fs::read_dir(&location.dir).ok())
        .flat_map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().join(MANIFEST_FILE).is_file())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
        })
        .chain(EMBEDDED_PACK.map(|pack| pack.name.to_string()))
        .collect();
    known.sort();
    known.dedup();
    anyhow::bail!(
        "no adapter pack `{name}`: it is neither a folder nor a pack in {} (packs: {})",
        quoted_folders(&locations),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

/// The folders searched, each in backticks, for error messages.
fn quoted_folders(locations: &[Location]) -> String {
    locations
        .iter()
        .map(|location| format!("`{}`", location.dir.display()))
        .collect::<Vec<_>>()
        .join(", ")
}
