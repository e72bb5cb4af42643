//! Files that survive a crash and a power loss. A file exitwise promises to keep (a pack, a
//! model, a quantized model) is written under a temporary name in its own folder, synced, renamed
//! over the final name, and then the folder is synced so that the rename itself is on disk.
//! At every moment the final name holds either the previous file or the complete new one, never
//! a part; a crash leaves at most a hidden `.NAME.…partial` file, which the next write ignores.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;

/// Syncs a folder, so that the names created, renamed or removed in it are on disk.
pub fn sync_folder(folder: &Path) -> std::io::Result<()> {
    File::open(folder)?.sync_all()
}

/// The folder of `path` (`.` for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A temporary file beside `path`, named `.NAME.XXXXXX.partial`, to be [`persist`]ed there.
pub fn temporary_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |name| name.to_string_lossy());
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(folder_of(path))
}

/// Makes the finished `temporary` the file at `path`: syncs it, makes it readable like any
/// other output (temporary files are private), renames it over `path` and syncs the folder.
pub fn persist(temporary: tempfile::NamedTempFile, path: &Path) -> std::io::Result<File> {
    temporary.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        temporary
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    let file = temporary.persist(path).map_err(|error| error.error)?;
    sync_folder(folder_of(path))?;
    Ok(file)
}

/// Writes `bytes` as the file at `path`, durably (see the module's documentation).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary = temporary_beside(path)?;
    // Through the plain file: the wrapper's errors name the temporary path, the caller names
    // the final one.
    temporary.as_file_mut().write_all(bytes)?;
    persist(temporary, path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_whole_file_and_leaves_nothing_beside_it() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("adapter.toml");
        write(&path, b"first").unwrap();
        write(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<String> = std::fs::read_dir(folder.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["adapter.toml"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn a_failed_write_leaves_the_previous_file_intact() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("heads.safetensors");
        write(&path, b"previous").unwrap();
        // A write that cannot finish (its temporary file was never persisted) changes nothing.
        let mut unfinished = temporary_beside(&path).unwrap();
        unfinished.write_all(b"half").unwrap();
        drop(unfinished);
        assert_eq!(std::fs::read(&path).unwrap(), b"previous");
        // A folder that is not there is an error, not a panic.
        assert!(write(&folder.path().join("missing/file"), b"x").is_err());
    }
}
