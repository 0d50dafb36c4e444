//! A small real tmpfs for the tests that need a truly full disk (the queue's and the relay's).
//!
//! Include it with `#[path = "common/tmpfs.rs"] mod tmpfs;`. Mounting needs root: without it the
//! test fails, never skips, since a full-disk test must not pass without a full disk.

#![allow(
    dead_code,
    reason = "the queue tests mount holding their spawn lock, the relay test without"
)]

use std::path::Path;
use std::sync::RwLock;

/// A tmpfs mounted on a temporary directory, unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
    spawns: Option<&'static RwLock<()>>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it); panics when it cannot.
    pub fn mount(size: &str) -> Tmpfs {
        Tmpfs::mount_holding(size, None)
    }

    /// As [`Tmpfs::mount`], holding `spawns` exclusively while `mount` and `umount` run: a child
    /// inherits open descriptors (a queue's lock file) between fork and exec, so a test that opens
    /// queues in other threads makes them wait meanwhile.
    pub fn mount_holding(size: &str, spawns: Option<&'static RwLock<()>>) -> Tmpfs {
        let dir = tempfile::tempdir().expect("a directory to mount the tmpfs on");
        let _exclusive = spawns.map(|l| l.write().unwrap_or_else(|p| p.into_inner()));
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs on {} (this test needs root): {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir, spawns }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _exclusive = self
            .spawns
            .map(|l| l.write().unwrap_or_else(|p| p.into_inner()));
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}
