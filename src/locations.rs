//! Where exitwise looks for models and adapter packs, in order, so that an installed binary
//! works wherever it is copied:
//!
//! 1. the folder given on the command line (`--models-dir`), which is then the only one;
//! 2. the environment (`EXITWISE_MODELS_DIR`, `EXITWISE_ADAPTERS_DIR`);
//! 3. the user's data folder: `$XDG_DATA_HOME/exitwise/…`, else `~/.local/share/exitwise/…`;
//! 4. the system's: `/var/lib/exitwise/…` (services, `exitwise models import` as root), then,
//!    in a release build, the installation's `../share/exitwise/…` beside the binary (an
//!    unpacked release tarball; for the Debian package it is `/usr/share/exitwise/…`), then
//!    `/usr/share/exitwise/…`;
//! 5. in a development build only, the source tree the binary was built from (`models/`,
//!    `adapters/`), which `make run` fills. Release builds (`EXITWISE_RELEASE_BUILD=1` at build
//!    time, as `make dist` does) leave it out.
//!
//! New files (`models fetch`, `models import`) go to the first writable folder among the
//! command line's, the environment's, the source tree's in a development build, and the user
//! data folder.

use std::path::{Path, PathBuf};

/// The name of the file `path` points at, for reports and messages; the whole path when it
/// has no file name (`/`, `..`).
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// What is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GGUF model files.
    Models,
    /// Adapter packs.
    Adapters,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::Models => "models",
            Kind::Adapters => "adapters",
        }
    }

    fn variable(self) -> &'static str {
        match self {
            Kind::Models => "EXITWISE_MODELS_DIR",
            Kind::Adapters => "EXITWISE_ADAPTERS_DIR",
        }
    }
}

/// One folder of a search path, and why it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The folder.
    pub dir: PathBuf,
    /// Where it comes from: `--models-dir`, `EXITWISE_MODELS_DIR`, `user data`, `system`,
    /// `installation`, `source tree`.
    pub origin: &'static str,
}

/// Whether this binary was built as a release for other machines (no source-tree lookups).
pub const RELEASE_BUILD: bool = option_env!("EXITWISE_RELEASE_BUILD").is_some();

/// What the search path depends on, gathered once (tests pass their own).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Environment {
    /// The command line's folder.
    pub flag: Option<PathBuf>,
    /// `EXITWISE_MODELS_DIR` / `EXITWISE_ADAPTERS_DIR`.
    pub variable: Option<PathBuf>,
    /// `XDG_DATA_HOME`.
    pub xdg_data_home: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// The installation's data folder, `../share/exitwise` beside the binary (release builds).
    pub installation: Option<PathBuf>,
    /// The source tree, in a development build.
    pub source_tree: Option<PathBuf>,
}

impl Environment {
    /// This process's environment, with the command line's folder.
    pub fn current(kind: Kind, flag: Option<&Path>) -> Self {
        let nonempty = environment_folder;
        let source_tree = Path::new(env!("CARGO_MANIFEST_DIR"));
        Environment {
            flag: flag.map(Path::to_path_buf),
            variable: nonempty(kind.variable()),
            xdg_data_home: nonempty("XDG_DATA_HOME"),
            home: nonempty("HOME"),
            // A development binary sits in `target/release`, where `../share` means nothing.
            installation: RELEASE_BUILD
                .then(|| std::env::current_exe().ok())
                .flatten()
                .and_then(|binary| Some(binary.parent()?.parent()?.join("share").join("exitwise"))),
            source_tree: (!RELEASE_BUILD && source_tree.join("Cargo.toml").is_file())
                .then(|| source_tree.to_path_buf()),
        }
    }

    /// The user data folder of exitwise, if a home is known.
    fn user_data(&self) -> Option<PathBuf> {
        user_folder(
            self.xdg_data_home.as_deref(),
            self.home.as_deref(),
            ".local/share",
        )
    }
}

/// The folder an environment variable names, when it is set and not empty.
pub fn environment_folder(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// exitwise's folder under an XDG base directory: `BASE/exitwise` from the base's variable
/// (`xdg_base`), else `HOME/fallback/exitwise` (the specification's default), else none.
pub fn user_folder(
    xdg_base: Option<&Path>,
    home: Option<&Path>,
    fallback: &str,
) -> Option<PathBuf> {
    xdg_base
        .map(Path::to_path_buf)
        .or_else(|| home.map(|home| home.join(fallback)))
        .map(|base| base.join("exitwise"))
}

/// The user's cache folder of exitwise: `$XDG_CACHE_HOME/exitwise`, else `~/.cache/exitwise`.
pub fn user_cache() -> Option<PathBuf> {
    user_folder(
        environment_folder("XDG_CACHE_HOME").as_deref(),
        environment_folder("HOME").as_deref(),
        ".cache",
    )
}

/// The folders searched for `kind`, in order (see the module docs).
pub fn search_path(kind: Kind, environment: &Environment) -> Vec<Location> {
    if let Some(dir) = &environment.flag {
        // A folder named on the command line is the one to use, and the only one.
        return vec![Location {
            dir: dir.clone(),
            origin: match kind {
                Kind::Models => "--models-dir",
                Kind::Adapters => "--adapters",
            },
        }];
    }
    let mut locations = Vec::new();
    let mut push = |dir: PathBuf, origin: &'static str| {
        if !locations
            .iter()
            .any(|location: &Location| location.dir == dir)
        {
            locations.push(Location { dir, origin });
        }
    };
    let folder = kind.folder();
    if let Some(dir) = &environment.variable {
        push(dir.clone(), kind.variable());
    }
    if let Some(data) = environment.user_data() {
        push(data.join(folder), "user data");
    }
    push(Path::new("/var/lib/exitwise").join(folder), "system");
    if let Some(installation) = &environment.installation {
        push(installation.join(folder), "installation");
    }
    push(Path::new("/usr/share/exitwise").join(folder), "system");
    if let Some(tree) = &environment.source_tree {
        push(tree.join(folder), "source tree");
    }
    locations
}

/// Where new files of `kind` go: the command line's folder, else the environment's, else the
/// source tree's in a development build, else the user data folder.
pub fn write_location(kind: Kind, environment: &Environment) -> Option<Location> {
    let folder = kind.folder();
    environment
        .flag
        .clone()
        .map(|dir| Location {
            dir,
            origin: "--models-dir",
        })
        .or_else(|| {
            environment.variable.clone().map(|dir| Location {
                dir,
                origin: kind.variable(),
            })
        })
        .or_else(|| {
            environment.source_tree.as_ref().map(|tree| Location {
                dir: tree.join(folder),
                origin: "source tree",
            })
        })
        .or_else(|| {
            environment.user_data().map(|data| Location {
                dir: data.join(folder),
                origin: "user data",
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_runs_from_the_environment_to_the_system_and_a_flag_is_alone() {
        let environment = Environment {
            flag: Some("/flag".into()),
            variable: Some("/variable".into()),
            xdg_data_home: None,
            home: Some("/home/ada".into()),
            installation: Some("/opt/exitwise/share/exitwise".into()),
            source_tree: None,
        };
        let only = search_path(Kind::Models, &environment);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].dir, PathBuf::from("/flag"));
        assert_eq!(only[0].origin, "--models-dir");
        let environment_only = Environment {
            flag: None,
            ..environment.clone()
        };
        let dirs: Vec<(String, &str)> = search_path(Kind::Models, &environment_only)
            .into_iter()
            .map(|location| (location.dir.display().to_string(), location.origin))
            .collect();
        assert_eq!(
            dirs,
            [
                ("/variable".to_string(), "EXITWISE_MODELS_DIR"),
                (
                    "/home/ada/.local/share/exitwise/models".to_string(),
                    "user data"
                ),
                ("/var/lib/exitwise/models".to_string(), "system"),
                (
                    "/opt/exitwise/share/exitwise/models".to_string(),
                    "installation"
                ),
                ("/usr/share/exitwise/models".to_string(), "system"),
            ]
        );
        let packaged = Environment {
            installation: Some("/usr/share/exitwise".into()),
            ..environment_only
        };
        assert_eq!(
            search_path(Kind::Models, &packaged)
                .iter()
                .filter(|location| location.dir == Path::new("/usr/share/exitwise/models"))
                .count(),
            1,
            "the Debian package's installation folder is the system folder, listed once"
        );
        assert_eq!(
            write_location(Kind::Models, &environment).map(|location| location.dir),
            Some(PathBuf::from("/flag"))
        );
    }

    #[test]
    fn an_xdg_base_wins_over_home_and_without_either_there_is_no_folder() {
        let (base, home) = (Path::new("/cache"), Path::new("/home/user"));
        assert_eq!(
            user_folder(Some(base), Some(home), ".cache"),
            Some(PathBuf::from("/cache/exitwise"))
        );
        assert_eq!(
            user_folder(None, Some(home), ".cache"),
            Some(PathBuf::from("/home/user/.cache/exitwise"))
        );
        assert_eq!(user_folder(None, None, ".cache"), None);
    }

    #[test]
    fn xdg_data_home_wins_over_home_and_the_source_tree_comes_last() {
        let environment = Environment {
            xdg_data_home: Some("/data".into()),
            home: Some("/home/ada".into()),
            source_tree: Some("/src/exitwise".into()),
            ..Environment::default()
        };
        let path = search_path(Kind::Adapters, &environment);
        assert_eq!(path[0].dir, PathBuf::from("/data/exitwise/adapters"));
        assert_eq!(
            path.last().map(|location| location.origin),
            Some("source tree")
        );
        assert_eq!(
            write_location(Kind::Adapters, &environment).map(|location| location.dir),
            Some(PathBuf::from("/src/exitwise/adapters")),
            "a development build keeps writing where `make run` reads"
        );
        let installed = Environment {
            source_tree: None,
            ..environment
        };
        assert_eq!(
            write_location(Kind::Models, &installed).map(|location| location.dir),
            Some(PathBuf::from("/data/exitwise/models"))
        );
        assert_eq!(write_location(Kind::Models, &Environment::default()), None);
    }
}
