//! What a YAML config file's values point at, resolved the same way for the relay's `--config`
//! file and the Prometheus scrape config: paths relative to the file's directory (as Prometheus
//! does, so the config works whatever the working directory), the place of a value in the file
//! for error messages, secret files, and files that must exist (CA, certificates, keys).
//!
//! Must not: know which file it serves; the caller wraps a [`FileRefError`] into its own error
//! with the key and place.

use std::fs;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::error::Place;
use super::file::{ReadFileError, read_bounded};
use super::storage::Secret;
use crate::util::one_line;

/// A secret file larger than this is refused: it is not a password or a token.
pub(crate) const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// Why a file a config value names cannot be used. `shown` is the resolved path, escaped.
#[derive(Debug, thiserror::Error)]
pub enum FileRefError {
    /// The file could not be read, is too large or is not UTF-8.
    #[error("cannot read {shown}: {source}")]
    Unreadable {
        shown: String,
        source: ReadFileError,
    },
    /// A secret file holds only white space.
    #[error("{shown} is empty")]
    Empty { shown: String },
    /// The file could not be opened or its metadata read.
    #[error("cannot read {shown}: {source}")]
    CannotOpen {
        shown: String,
        source: std::io::Error,
    },
    /// The path names a directory or another kind of non-regular file.
    #[error("{shown} is not a regular file")]
    NotRegularFile { shown: String },
}

/// The config file whose values are being resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileRefs<'a> {
    pub file: &'a Path,
}

impl FileRefs<'_> {
    /// `p` as written in the file: absolute as is, relative to the file's directory otherwise.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match self.file.parent() {
            Some(dir) => dir.join(p),
            None => p.to_path_buf(),
        }
    }

    /// The file, line and column of a value.
    pub fn place<T>(&self, spanned: &Spanned<T>) -> Place {
        let at = spanned.referenced;
        let line_col = (at.line() > 0).then_some((at.line() as usize, at.column() as usize));
        Place::file(self.file, line_col)
    }

    /// Reads the secret file named at `spanned`: trimmed (as Prometheus does), non-empty,
    /// at most [`MAX_SECRET_FILE_BYTES`].
    pub fn secret(&self, spanned: &Spanned<PathBuf>) -> Result<Secret, FileRefError> {
        let path = self.path(&spanned.value);
        let text = read_bounded(&path, MAX_SECRET_FILE_BYTES).map_err(|source| {
            FileRefError::Unreadable {
                shown: shown(&path),
                source,
            }
        })?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(FileRefError::Empty {
                shown: shown(&path),
            });
        }
        Ok(Secret::new(secret))
    }

    /// Checks that the file named at `spanned` is a regular file that can be opened, and
    /// returns its resolved path.
    pub fn readable(&self, spanned: &Spanned<PathBuf>) -> Result<PathBuf, FileRefError> {
        let path = self.path(&spanned.value);
        check_regular_file(&path)?;
        Ok(path)
    }
}

/// Checks that `path` is a regular file that can be opened.
pub(crate) fn check_regular_file(path: &Path) -> Result<(), FileRefError> {
    match fs::File::open(path).and_then(|f| f.metadata()) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(FileRefError::NotRegularFile { shown: shown(path) }),
        Err(source) => Err(FileRefError::CannotOpen {
            shown: shown(path),
            source,
        }),
    }
}

fn shown(path: &Path) -> String {
    one_line(&path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_relative_to_the_file_directory() {
        let refs = FileRefs {
            file: Path::new("/etc/promrelay/promrelay.yml"),
        };
        assert_eq!(
            refs.path(Path::new("ca.pem")),
            Path::new("/etc/promrelay/ca.pem")
        );
        assert_eq!(
            refs.path(Path::new("/abs/ca.pem")),
            Path::new("/abs/ca.pem")
        );
        let bare = FileRefs {
            file: Path::new("promrelay.yml"),
        };
        assert_eq!(bare.path(Path::new("ca.pem")), Path::new("ca.pem"));
    }

    #[test]
    fn a_directory_is_not_a_readable_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = check_regular_file(dir.path()).expect_err("a directory");
        assert!(matches!(err, FileRefError::NotRegularFile { .. }), "{err}");
        let missing = check_regular_file(&dir.path().join("missing")).expect_err("missing");
        assert!(
            matches!(missing, FileRefError::CannotOpen { .. }),
            "{missing}"
        );
    }
}
