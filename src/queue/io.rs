//! The one layer all queue file writes, fsyncs and renames go through, so tests can make any of
//! them fail (disk full, EIO, a torn write) without a special filesystem.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Hooks that let a test fail queue I/O. Production code runs with none.
pub trait Faults: Send + Sync + 'static {
    /// Called before `len` bytes are written to `path`. `None` lets the write happen; `Some((n, e))`
    /// writes only the first `n` bytes (a torn write) and then fails with `e`.
    fn before_write(&self, path: &Path, len: usize) -> Option<(usize, io::Error)>;
    /// Called before an fsync of `path`; an error is returned instead of syncing.
    fn before_sync(&self, path: &Path) -> Option<io::Error> {
        let _ = path;
        None
    }
}

/// Writes, syncs and renames, with optional injected faults.
#[derive(Clone, Default)]
pub(crate) struct Io {
    faults: Option<Arc<dyn Faults>>,
}

impl Io {
    pub(crate) fn new(faults: Option<Arc<dyn Faults>>) -> Self {
        Io { faults }
    }

    pub(crate) fn write_all_at(
        &self,
        file: &File,
        path: &Path,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        if let Some(f) = &self.faults
            && let Some((n, err)) = f.before_write(path, data.len())
        {
            let n = n.min(data.len());
            file.write_all_at(&data[..n], offset)?;
            return Err(err);
        }
        file.write_all_at(data, offset)
    }

    pub(crate) fn sync(&self, file: &File, path: &Path) -> io::Result<()> {
        if let Some(f) = &self.faults
            && let Some(err) = f.before_sync(path)
        {
            return Err(err);
        }
        file.sync_data()
    }

    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if let Some(f) = &self.faults
            && let Some(err) = f.before_sync(dir)
        {
            return Err(err);
        }
        File::open(dir)?.sync_all()
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
            Err(e) if is_no_space(&e) && path.exists() => {
                let _ = std::fs::remove_file(path.with_extension("tmp"));
                let file = std::fs::OpenOptions::new().write(true).open(path)?;
                self.write_all_at(&file, path, 0, data)?;
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
        let file = File::create(&tmp)?;
        self.write_all_at(&file, &tmp, 0, data)?;
        if durable {
            self.sync(&file, &tmp)?;
        }
        drop(file);
        std::fs::rename(&tmp, path)?;
        if durable {
            self.sync_dir(dir)?;
        }
        Ok(())
    }
}

/// "No space left on device" or "quota exceeded".
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28) | Some(122))
}
