//! The data directory's privacy: it holds the store and the admin key, so it is created 0700 and the
//! files chathook creates in it 0600 (SQLite gives its WAL and shared-memory files the database
//! file's mode); at start, the directory and every file in it that others may read are named in a
//! warning with the command that fixes it. It never loosens or silently changes what the operator set.

use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

/// Creates `dir` (and its parents) readable by this user only, when it is missing.
pub fn create(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)
}

/// Makes a file chathook just created readable by this user only.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// The directory and the files in it that group or others may read or write, with their modes.
pub fn open_to_others(dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    let mut found = Vec::new();
    #[cfg(unix)]
    {
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        if let Ok(m) = mode(dir) {
            if m & 0o077 != 0 {
                found.push((dir.to_path_buf(), m));
            }
        }
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if let Ok(m) = mode(&path) {
                if m & 0o077 != 0 {
                    found.push((path, m));
                }
            }
        }
    }
    found
}

/// Warns about each path [`open_to_others`] finds.
pub fn warn_if_open(dir: &Path) {
    for (path, mode) in open_to_others(dir) {
        let fix = if path.is_dir() { "700" } else { "600" };
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the data directory holds secrets but others may read this: chmod {fix} {}",
            path.display()
        );
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_dir_is_private_and_looser_paths_are_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        create(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(open_to_others(&dir).is_empty());
        let file = dir.join("chathook.db");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(open_to_others(&dir), vec![(file.clone(), 0o644)]);
        make_private(&file).unwrap();
        assert!(open_to_others(&dir).is_empty());
    }
}
