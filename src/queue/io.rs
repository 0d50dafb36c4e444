//! The one layer every queue file operation goes through (directory creation and listing, open,
//! create, lock, stat, read, write, fsync of files and of the directory, rename, `set_len`,
//! remove), so tests can make any of them fail (disk full, EIO, a torn write) without a special
//! filesystem.
//!
//! # Guarantees
//! Without faults (production: `Options::faults` is `None`) each operation is the plain `std`
//! call behind one branch. With faults, [`Faults::check`] is asked before every operation and
//! [`Faults::before_write`] before every write; an injected error is returned instead of doing
//! the operation (a torn write does its first bytes, then fails).
//!
//! # Must not
//! Know the queue's format or state: it sees operations and paths, nothing else.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A kind of file operation the queue makes, as [`Faults::check`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Creating the queue directory (and its parents).
    CreateDir,
    /// Listing the queue directory (recovery finds chunk files this way).
    List,
    /// Opening an existing file (chunk files for reading or appending, the lock file).
    Open,
    /// Creating a file (a new chunk file, the position file's temporary).
    Create,
    /// Taking the lock on the lock file.
    Lock,
    /// Asking a file's length or whether it exists.
    Stat,
    /// Reading from a file.
    Read,
    /// Writing to a file (also see [`Faults::before_write`] for torn writes).
    Write,
    /// fsync of a file.
    Sync,
    /// fsync of the queue directory (after creating, renaming or removing files in it).
    SyncDir,
    /// Renaming a file (the position file's temporary into place, a damaged chunk aside).
    Rename,
    /// Cutting a file to a length (a torn tail, a failed write).
    SetLen,
    /// Removing a file (an acknowledged chunk, a half-made one, a temporary).
    Remove,
}

impl Op {
    /// Every operation, for tests that walk them all.
    pub const ALL: [Op; 13] = [
        Op::CreateDir,
        Op::List,
        Op::Open,
        Op::Create,
        Op::Lock,
        Op::Stat,
        Op::Read,
        Op::Write,
        Op::Sync,
        Op::SyncDir,
        Op::Rename,
        Op::SetLen,
        Op::Remove,
    ];
}

/// Hooks that let a test fail queue I/O. Production code runs with none.
pub trait Faults: Send + Sync + 'static {
    /// Called before every operation on `path` (for [`Op::Rename`], the source). `Some(e)` makes
    /// the operation fail with `e` without doing it.
    fn check(&self, op: Op, path: &Path) -> Option<io::Error> {
        let _ = (op, path);
        None
    }

    /// Called before `len` bytes are written to `path`, after [`Faults::check`] let the write
    /// through. `None` lets the write happen; `Some((n, e))` writes only the first `n` bytes (a
    /// torn write) and then fails with `e`.
    fn before_write(&self, path: &Path, len: usize) -> Option<(usize, io::Error)> {
        let _ = (path, len);
        None
    }
}

/// File operations, with optional injected faults.
#[derive(Clone, Default)]
pub(crate) struct Io {
    faults: Option<Arc<dyn Faults>>,
}

impl Io {
    pub(crate) fn new(faults: Option<Arc<dyn Faults>>) -> Self {
        Io { faults }
    }

    fn check(&self, op: Op, path: &Path) -> io::Result<()> {
        match &self.faults {
            Some(f) => f.check(op, path).map_or(Ok(()), Err),
            None => Ok(()),
        }
    }

    pub(crate) fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::CreateDir, dir)?;
        std::fs::create_dir_all(dir)
    }

    /// The names of the entries of `dir`.
    pub(crate) fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.check(Op::List, dir)?;
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    /// Opens an existing file for reading, and for writing too when `write`.
    pub(crate) fn open(&self, path: &Path, write: bool) -> io::Result<File> {
        self.check(Op::Open, path)?;
        OpenOptions::new().read(true).write(write).open(path)
    }

    /// Opens the lock file, creating it when missing (it has no content).
    pub(crate) fn open_lock_file(&self, path: &Path) -> io::Result<File> {
        self.check(Op::Open, path)?;
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    }

    /// Creates a new file for reading and writing; fails when it exists.
    pub(crate) fn create_new(&self, path: &Path) -> io::Result<File> {
        self.check(Op::Create, path)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    pub(crate) fn try_lock(&self, file: &File, path: &Path) -> Result<(), std::fs::TryLockError> {
        self.check(Op::Lock, path)
            .map_err(std::fs::TryLockError::Error)?;
        file.try_lock()
    }

    pub(crate) fn len(&self, file: &File, path: &Path) -> io::Result<u64> {
        self.check(Op::Stat, path)?;
        Ok(file.metadata()?.len())
    }

    /// Whether `path` exists; `Ok(false)` when it does not, an error when that cannot be told.
    pub(crate) fn exists(&self, path: &Path) -> io::Result<bool> {
        self.check(Op::Stat, path)?;
        path.try_exists()
    }

    pub(crate) fn read_exact_at(
        &self,
        file: &File,
        path: &Path,
        buf: &mut [u8],
        offset: u64,
    ) -> io::Result<()> {
        self.check(Op::Read, path)?;
        file.read_exact_at(buf, offset)
    }

    /// `len` bytes from `offset` on, into a new `Vec` that is not zero-filled first (the file's
    /// own cursor is moved: only for a handle no one else reads through). A file that ends
    /// before is an `UnexpectedEof` error.
    pub(crate) fn read_vec_at(
        &self,
        file: &File,
        path: &Path,
        len: usize,
        offset: u64,
    ) -> io::Result<Vec<u8>> {
        self.check(Op::Read, path)?;
        let mut reader = file;
        reader.seek(io::SeekFrom::Start(offset))?;
        let mut out = Vec::with_capacity(len);
        reader.take(len as u64).read_to_end(&mut out)?;
        if out.len() < len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(out)
    }

    /// The whole content of a small file.
    pub(crate) fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check(Op::Open, path)?;
        self.check(Op::Read, path)?;
        std::fs::read(path)
    }

    /// Writes `parts` one after another from `offset` on. A torn write injected here does the
    /// first bytes of the whole, across the parts.
    pub(crate) fn write_all_at(
        &self,
        file: &File,
        path: &Path,
        offset: u64,
        parts: &[&[u8]],
    ) -> io::Result<()> {
        if let Some(f) = &self.faults {
            if let Some(err) = f.check(Op::Write, path) {
                return Err(err);
            }
            let len = parts.iter().map(|p| p.len()).sum();
            if let Some((n, err)) = f.before_write(path, len) {
                let mut left = n.min(len);
                let mut at = offset;
                for part in parts {
                    let k = left.min(part.len());
                    file.write_all_at(&part[..k], at)?;
                    at += k as u64;
                    left -= k;
                }
                return Err(err);
            }
        }
        let mut at = offset;
        for part in parts {
            file.write_all_at(part, at)?;
            at += part.len() as u64;
        }
        Ok(())
    }

    pub(crate) fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.check(Op::SetLen, path)?;
        file.set_len(len)
    }

    pub(crate) fn sync(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(Op::Sync, path)?;
        file.sync_data()
    }

    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::SyncDir, dir)?;
        File::open(dir)?.sync_all()
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename, from)?;
        std::fs::rename(from, to)
    }

    pub(crate) fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove, path)?;
        std::fs::remove_file(path)
    }

    /// Replaces `path` with `data` atomically: temp file, fsync, rename, directory fsync
    /// (the fsyncs only when `durable`).
    ///
    /// On a full disk the temp file cannot be written, and without a new position no acknowledged
    /// chunk can be deleted to free space. Then the existing file (same small size) is overwritten
    /// in place, which needs no new blocks; a torn overwrite fails its CRC on the next open and
    /// falls back to a scan (at-least-once, nothing lost).
    pub(crate) fn replace_file(
        &self,
        dir: &Path,
        path: &Path,
        data: &[u8],
        durable: bool,
    ) -> io::Result<()> {
        match self.replace_via_temp(dir, path, data, durable) {
            Err(e) if is_no_space(&e) && self.exists(path).unwrap_or(false) => {
                let _ = self.remove_file(&path.with_extension("tmp"));
                let file = self.open(path, true)?;
                self.write_all_at(&file, path, 0, &[data])?;
                if durable {
                    self.sync(&file, path)?;
                }
                Ok(())
            }
            other => other,
        }
    }

    fn replace_via_temp(
        &self,
        dir: &Path,
        path: &Path,
        data: &[u8],
        durable: bool,
    ) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        self.check(Op::Create, &tmp)?;
        let file = File::create(&tmp)?;
        self.write_all_at(&file, &tmp, 0, &[data])?;
        if durable {
            self.sync(&file, &tmp)?;
        }
        drop(file);
        self.rename(&tmp, path)?;
        if durable {
            self.sync_dir(dir)?;
        }
        Ok(())
    }
}

/// The path is no chunk file to read: it is gone, or it is a directory. Any other error (EIO,
/// EMFILE, permissions) may pass, so what the file holds must not be given up on.
pub(crate) fn is_not_a_file(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
    )
}

/// "No space left on device" or "quota exceeded".
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28) | Some(122))
}
