//! What a storage's sender and queue look like from outside: the snapshot `/api/v1/queues`,
//! `/metrics` and the status page are made from.

use serde::Serialize;

/// The sender's state, as design.md names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderState {
    /// The last send succeeded (or there was nothing to send).
    Ok,
    /// The storage is failing with retryable errors; the queue does not advance.
    Retrying,
    /// Data was dropped in the last minute: refused by the storage (4xx) or over the queue's cap.
    Dropping,
}

impl SenderState {
    pub fn as_str(self) -> &'static str {
        match self {
            SenderState::Ok => "ok",
            SenderState::Retrying => "retrying",
            SenderState::Dropping => "dropping",
        }
    }
}

/// One storage's figures at one moment. Counters are totals since the process started, except the
/// queue's own `pending_*` (which survive restarts, being on disk).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageStatus {
    /// Stable id, also the queue directory name; the tenant queues of a multitenant storage share
    /// their storage's id and differ by `tenant` (their directories are named in queue-format.md).
    pub id: String,
    /// The optional name from the config file.
    pub name: Option<String>,
    /// For one tenant's queue of a multitenant storage (vminsert cluster), the tenant as
    /// `accountID:projectID`; `None` for an ordinary storage.
    pub tenant: Option<String>,
    /// The remote-write URL with any password replaced by `xxxxx` (a tenant queue's own URL).
    pub url: String,
    pub state: SenderState,
    pub pending_bytes: u64,
    pub pending_blocks: u64,
    /// Age of the oldest block not yet acknowledged by the storage; 0 when the queue is empty.
    pub oldest_pending_age_seconds: f64,
    /// Blocks (pushes as received) the storage acknowledged with 2xx.
    pub sent_blocks_total: u64,
    /// Compressed bytes of the requests the storage acknowledged.
    pub sent_bytes_total: u64,
    pub sent_samples_total: u64,
    /// HTTP requests made (merged blocks make one request), successful or not.
    pub requests_total: u64,
    /// Blocks dropped for any reason: refused by the storage (4xx) or over the queue's size cap.
    pub dropped_blocks_total: u64,
    pub dropped_samples_total: u64,
    /// Of `dropped_blocks_total`: refused by the storage with a non-retryable 4xx.
    pub rejected_blocks_total: u64,
    /// Of `dropped_blocks_total`: dropped by the queue's size cap (oldest first).
    pub cap_dropped_blocks_total: u64,
    pub cap_dropped_bytes_total: u64,
    /// Damaged regions of the queue files skipped while reading.
    pub corrupt_blocks_skipped_total: u64,
    /// Send attempts that failed with a retryable error (429, 5xx, timeout, connection).
    pub retries_total: u64,
    /// Appends to this storage's queue that failed (disk full, I/O errors).
    pub queue_write_errors_total: u64,
    pub last_error: Option<String>,
    /// When `last_error` happened, Unix milliseconds.
    pub last_error_unix_ms: Option<u64>,
    /// When the storage last acknowledged a request, Unix milliseconds.
    pub last_success_unix_ms: Option<u64>,
}

impl StorageStatus {
    /// What tells one queue from another: the id, followed by `/` and the tenant for one tenant's
    /// queue of a multitenant storage.
    pub fn key(&self) -> String {
        match &self.tenant {
            Some(t) => format!("{}/{t}", self.id),
            None => self.id.clone(),
        }
    }
}
