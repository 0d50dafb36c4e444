//! The queue's error type: what failed, on which file, and how a caller should answer.

use std::path::{Path, PathBuf};

use super::io;

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Another process, or another handle in this one, has the directory open.
    #[error("queue directory {dir} is in use by another promrelay (lock {lock} is held)")]
    Locked { dir: PathBuf, lock: PathBuf },
    /// A file operation failed (disk full, EIO, permissions...). Nothing half-written is visible.
    #[error("queue {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The queue is at its cap and its policy is [`FullPolicy::Reject`](super::FullPolicy::Reject).
    #[error("queue is full: {pending_bytes} bytes pending, cap is {max_bytes} bytes")]
    Full { pending_bytes: u64, max_bytes: u64 },
    /// The block is larger than `Options::max_block_bytes`.
    #[error("block of {len} bytes is larger than the queue's limit of {max} bytes")]
    BlockTooLarge { len: usize, max: u32 },
}

impl QueueError {
    /// True when the caller should answer "try again later" (cap reached, disk full, I/O trouble)
    /// rather than "your data is bad".
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            QueueError::BlockTooLarge { .. } | QueueError::Locked { .. }
        )
    }

    /// True for [`QueueError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, QueueError::Full { .. })
    }

    /// True when the underlying error is "no space left" or "quota exceeded".
    pub fn is_disk_full(&self) -> bool {
        match self {
            QueueError::Io { source, .. } => io::is_no_space(source),
            _ => false,
        }
    }
}

pub(super) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> QueueError + 'a {
    move |source| QueueError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
