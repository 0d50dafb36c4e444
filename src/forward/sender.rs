//! A storage's sender: reads its queue in order, merges consecutive blocks into one request (up to
//! `max_block_bytes` of protobuf, by concatenating their snappy blocks), POSTs it, retries what is
//! retryable, acknowledges what the storage took, drops (block by block) what it refused for
//! good.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Storage;
use crate::config::StorageConfig;
use crate::outbound::{self, ClientError, ClientOptions, TlsOptions};
use crate::prompb;
use crate::queue::{Block, Queue};
use crate::util::{LogThrottle, error_chain, now_ms, one_line_max};

/// How long a send in progress may finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A storage's refusals are logged at most this often.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Longest wait between attempts to connect to a storage that refused connections.
const CONNECT_PROBE: Duration = Duration::from_secs(1);

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// A storage's answer or error is kept to this many characters in `last_error` and logs.
const ANSWER_CHARS: usize = 300;

/// The HTTP client for one storage, with its timeout and TLS settings.
pub(crate) fn build_client(cfg: &StorageConfig) -> Result<reqwest::Client, ClientError> {
    outbound::build_client(&ClientOptions {
        tls: TlsOptions::from(&cfg.tls),
        timeout: Some(cfg.timeout),
        connect_timeout: Some(cfg.timeout.min(Duration::from_secs(10))),
        pool_idle_timeout: Duration::from_secs(60),
        pool_max_idle_per_host: None,
        follow_redirects: true,
    })
}

/// The request URL (without user info) and the headers every request to this storage carries.
fn request_parts(cfg: &StorageConfig) -> Result<(reqwest::Url, HeaderMap), ClientError> {
    let mut h = HeaderMap::new();
    h.insert("content-encoding", HeaderValue::from_static("snappy"));
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-protobuf"),
    );
    h.insert(
        "x-prometheus-remote-write-version",
        HeaderValue::from_static("0.1.0"),
    );
    for (name, value) in &cfg.headers {
        let value = outbound::sensitive_header(name, value.expose())?;
        h.insert(outbound::header_name(name)?, value);
    }
    if let Some(auth) = cfg.authorization() {
        h.insert(
            reqwest::header::AUTHORIZATION,
            outbound::sensitive_header("authorization", auth.expose())?,
        );
    }
    Ok((cfg.endpoint(), h))
}

/// Starts the storage's sender tasks (its `concurrency`, at least one).
pub(crate) fn spawn(
    storage: Arc<Storage>,
    client: reqwest::Client,
    shutdown: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (url, headers) = match request_parts(&storage.cfg) {
        Ok(p) => p,
        Err(e) => {
            // Config validation should have caught this; keep the queue, report, do not send.
            warn!(storage = %storage.id, error = %e, "cannot send to this storage");
            storage.counters.set_error(e.to_string());
            return Vec::new();
        }
    };
    let shared = Arc::new(tokio::sync::Mutex::new(Batcher::default()));
    let sender = Arc::new(Sender {
        storage,
        client,
        url,
        headers,
        shutdown,
        reject_log: LogThrottle::new(REJECT_LOG_EVERY),
    });
    let n = sender.storage.cfg.concurrency.max(1);
    (0..n)
        .map(|_| {
            let s = Arc::clone(&sender);
            let b = Arc::clone(&shared);
            tokio::spawn(async move { s.run(b).await })
        })
        .collect()
}

struct Sender {
    storage: Arc<Storage>,
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    shutdown: CancellationToken,
    reject_log: LogThrottle,
}

/// Consecutive blocks and the request body made of them.
struct Batch {
    blocks: Vec<Block>,
    body: Bytes,
    samples: u64,
}

/// Builds batches from the queue; shared by a storage's sender tasks so each batch is the next
/// run of blocks in queue order.
#[derive(Default)]
struct Batcher {
    /// Blocks read but not in the previous batch (one that did not fit, usually), in queue order.
    carry: VecDeque<Block>,
}

enum Outcome {
    Sent,
    /// Refused for good (non-retryable 4xx), with the storage's reason.
    Refused(String),
    /// Shutdown came first; the blocks stay in the queue.
    Shutdown,
}

impl Batcher {
    /// The next run of queued blocks whose protobuf adds up to at most `max_raw` bytes (a block
    /// larger than that goes alone), as one request body.
    ///
    /// Several blocks are merged by concatenating their snappy blocks under one header
    /// ([`prompb::concat_blocks_into`]): the protobuf bodies concatenate into one `WriteRequest`,
    /// and nothing is decompressed or recompressed, so a large push costs no more to merge than
    /// a small one. A block whose snappy header is invalid (never from ingest, which validated it)
    /// goes alone, as received, for the storage to refuse.
    fn next_batch(&mut self, q: &Queue, max_raw: usize) -> Option<Batch> {
        let max_raw = max_raw.min(prompb::MAX_BLOCK_LEN);
        let mut blocks: Vec<Block> = Vec::new();
        let mut raw_len = 0usize;
        while raw_len < max_raw {
            let Some(b) = self.next_block(q) else { break };
            match raw_len_of(&b) {
                Some(len) if blocks.is_empty() || raw_len + len <= max_raw => {
                    raw_len += len;
                    blocks.push(b);
                }
                None if blocks.is_empty() => {
                    blocks.push(b);
                    break;
                }
                _ => {
                    self.carry.push_front(b);
                    break;
                }
            }
        }
        if blocks.is_empty() {
            return None;
        }
        if blocks.len() > 1 {
            let mut body = Vec::new();
            match prompb::concat_blocks_into(blocks.iter().map(|b| &b.payload[..]), &mut body) {
                Ok(()) => return Some(Batch::new(blocks, Bytes::from(body))),
                Err(e) => {
                    // Not expected: every header was read above and the sum is bounded. Send
                    // the blocks one at a time rather than lose any.
                    warn!(dir = %q.dir().display(), error = %e, "cannot merge queued blocks; sending them one by one");
                    for b in blocks.drain(1..).rev() {
                        self.carry.push_front(b);
                    }
                }
            }
        }
        // The common case under light load: forward the body exactly as it came.
        let body = blocks[0].payload.clone();
        Some(Batch::new(blocks, body))
    }

    /// The next block in queue order: a carried one first, then the queue's next.
    fn next_block(&mut self, q: &Queue) -> Option<Block> {
        if let Some(b) = self.carry.pop_front() {
            return Some(b);
        }
        match q.read() {
            Ok(b) => b,
            Err(e) => {
                warn!(dir = %q.dir().display(), error = %e, "reading the queue failed");
                None
            }
        }
    }
}

impl Batch {
    fn new(blocks: Vec<Block>, body: Bytes) -> Self {
        let samples = blocks.iter().map(|b| u64::from(b.count)).sum();
        Self {
            blocks,
            body,
            samples,
        }
    }
}

/// The protobuf bytes a queued block declares, or `None` when its snappy header is invalid.
fn raw_len_of(b: &Block) -> Option<usize> {
    prompb::block_len(&b.payload).ok()
}

impl Sender {
    async fn run(self: Arc<Self>, batcher: Arc<tokio::sync::Mutex<Batcher>>) {
        let q = self.storage.queue();
        let notify = q.notifier();
        let max_raw = usize::try_from(self.storage.cfg.max_block_bytes).unwrap_or(usize::MAX);
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let batch = {
                let mut b = batcher.lock().await;
                b.next_batch(q, max_raw)
            };
            let Some(batch) = batch else {
                tokio::select! {
                    _ = notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = self.shutdown.cancelled() => return,
                }
                continue;
            };
            match self.send(batch.body.clone()).await {
                Outcome::Sent => self.acknowledge(&batch.blocks, batch.body.len(), batch.samples),
                Outcome::Shutdown => return,
                Outcome::Refused(reason) if batch.blocks.len() == 1 => {
                    self.drop_refused(&batch.blocks[0], &reason)
                }
                Outcome::Refused(_) => {
                    // Find the refused pushes: send the batch's blocks one by one, as they came.
                    for b in &batch.blocks {
                        match self.send(b.payload.clone()).await {
                            Outcome::Sent => self.acknowledge(
                                std::slice::from_ref(b),
                                b.payload.len(),
                                u64::from(b.count),
                            ),
                            Outcome::Refused(reason) => self.drop_refused(b, &reason),
                            Outcome::Shutdown => return,
                        }
                    }
                }
            }
        }
    }

    fn acknowledge(&self, blocks: &[Block], bytes: usize, samples: u64) {
        let c = &self.storage.counters;
        for b in blocks {
            self.storage.queue().ack(b.id);
        }
        c.sent_blocks
            .fetch_add(blocks.len() as u64, Ordering::Relaxed);
        c.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        c.sent_samples.fetch_add(samples, Ordering::Relaxed);
        c.last_success_ms.store(now_ms(), Ordering::Relaxed);
    }

    fn drop_refused(&self, b: &Block, reason: &str) {
        let c = &self.storage.counters;
        self.storage.queue().ack(b.id);
        c.rejected_blocks.fetch_add(1, Ordering::Relaxed);
        c.rejected_samples
            .fetch_add(u64::from(b.count), Ordering::Relaxed);
        c.last_drop_ms.store(now_ms(), Ordering::Relaxed);
        c.set_error(reason.to_string());
        if self.reject_log.due() {
            warn!(storage = %self.storage.id, samples = b.count, reason, "storage refused a block; dropped it (logged at most every 10s)");
        }
    }

    /// Sends one body until the storage takes it, refuses it for good, or shutdown comes.
    async fn send(&self, body: Bytes) -> Outcome {
        let cfg = &self.storage.cfg;
        let c = &self.storage.counters;
        let mut backoff = cfg.min_backoff;
        let mut retrying = false;
        let outcome = loop {
            c.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = std::pin::pin!(
                self.client
                    .post(self.url.clone())
                    .headers(self.headers.clone())
                    .body(body.clone())
                    .send()
            );
            let res = tokio::select! {
                r = &mut req => r,
                _ = self.shutdown.cancelled() => {
                    // Let the request in flight finish briefly, so a clean stop sends no
                    // duplicates; if it does not, its blocks stay queued for the next start.
                    match tokio::time::timeout(SHUTDOWN_GRACE, &mut req).await {
                        Ok(r) => r,
                        Err(_) => break Outcome::Shutdown,
                    }
                }
            };
            let (error, retry_after, connect_failed) = match res {
                Ok(resp) if resp.status().is_success() => break Outcome::Sent,
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = parse_retry_after(resp.headers());
                    // Only reported: a few KiB say why, and a storage may send far more.
                    let text = outbound::body_prefix(resp, outbound::REPORTED_BODY_BYTES)
                        .await
                        .unwrap_or_default();
                    let text = String::from_utf8_lossy(&text);
                    let reason = one_line_max(
                        &format!("HTTP {}: {}", status.as_u16(), text.trim()),
                        ANSWER_CHARS,
                    );
                    if status.as_u16() == 429 || status.is_server_error() {
                        (reason, retry_after, false)
                    } else {
                        break Outcome::Refused(reason);
                    }
                }
                Err(e) => (
                    one_line_max(&error_chain(&e), ANSWER_CHARS),
                    None,
                    e.is_connect(),
                ),
            };
            c.retries.fetch_add(1, Ordering::Relaxed);
            if !retrying {
                retrying = true;
                c.retrying.fetch_add(1, Ordering::Relaxed);
                warn!(storage = %self.storage.id, url = %self.storage.redacted_url, error = %error, "sending failed; retrying with backoff");
            }
            c.set_error(error);
            let wait = retry_wait(backoff, retry_after, connect_failed);
            backoff = (backoff * 2).min(cfg.max_backoff);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.shutdown.cancelled() => break Outcome::Shutdown,
            }
        };
        if retrying {
            c.retrying.fetch_sub(1, Ordering::Relaxed);
            if matches!(outcome, Outcome::Sent) {
                info!(storage = %self.storage.id, "storage accepts data again");
            }
        }
        outcome
    }
}

/// How long to wait before retrying: `Retry-After` when the storage sent one (capped), else the
/// jittered backoff. A storage that refused the connection was not reached, so it is probed at
/// least every [`CONNECT_PROBE`] whatever the backoff: after an outage the backlog starts
/// draining within a second of the storage coming back, not up to `max_backoff` later.
fn retry_wait(backoff: Duration, retry_after: Option<Duration>, connect_failed: bool) -> Duration {
    if let Some(d) = retry_after {
        return d.min(MAX_RETRY_AFTER);
    }
    let wait = jitter(backoff);
    if connect_failed {
        wait.min(jitter(CONNECT_PROBE))
    } else {
        wait
    }
}

/// Half the backoff plus a random part of the other half, so many relays do not retry in step.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(fastrand::f64())
}

/// `Retry-After` in seconds (the HTTP-date form is rare from storages and is ignored).
fn parse_retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_become_a_decoded_basic_authorization_not_part_of_the_url() {
        let url = "http://us%40er:p%3Ass@127.0.0.1:8428/api/v1/write";
        let cfg = StorageConfig::with_defaults(url.parse().unwrap(), 0);
        let (url, headers) = request_parts(&cfg).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8428/api/v1/write");
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        let auth = &headers[reqwest::header::AUTHORIZATION];
        assert_eq!(auth, &format!("Basic {token}")[..]);
        assert!(auth.is_sensitive());
    }

    fn push(q: &Queue, series: usize) -> Vec<u8> {
        let req = prompb::example_write_request(series, 1, 1_700_000_000_000);
        let body = prompb::compress(&prost::Message::encode_to_vec(&req));
        q.append(&body, series as u32).unwrap();
        body
    }

    fn protobuf(blocks: &[&[u8]]) -> Vec<u8> {
        blocks
            .iter()
            .flat_map(|b| prompb::decompress_bounded(b, usize::MAX).unwrap())
            .collect()
    }

    #[test]
    fn consecutive_pushes_merge_into_one_request_of_their_protobuf_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), Default::default()).unwrap();
        let small = push(&q, 50);
        let large = push(&q, 20_000);
        let after = push(&q, 50);
        assert!(snap::raw::decompress_len(&large).unwrap() > 1 << 20);
        let mut b = Batcher::default();

        let merged = b.next_batch(&q, 8 << 20).unwrap();

        assert_eq!(merged.blocks.len(), 3, "a large push merges too");
        assert_eq!(merged.samples, 50 + 20_000 + 50);
        assert_eq!(
            prompb::decompress_bounded(&merged.body, usize::MAX).unwrap(),
            protobuf(&[&small, &large, &after])
        );
        assert!(b.next_batch(&q, 8 << 20).is_none());
    }

    #[test]
    fn merged_request_is_the_blocks_compressed_bytes_not_a_recompression() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), Default::default()).unwrap();
        let blocks: Vec<Vec<u8>> = (0..3).map(|_| push(&q, 50)).collect();

        let merged = Batcher::default().next_batch(&q, 8 << 20).unwrap();

        let elements: Vec<u8> = blocks.iter().flat_map(|b| b[2..].to_vec()).collect();
        assert!(
            blocks.iter().all(|b| b[0] >= 0x80 && b[1] < 0x80),
            "two-byte headers"
        );
        assert_eq!(
            merged.body[merged.body.len() - elements.len()..],
            elements[..]
        );
    }

    #[test]
    fn a_push_that_would_overflow_the_request_starts_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), Default::default()).unwrap();
        let pushes: Vec<Vec<u8>> = (0..5).map(|_| push(&q, 50)).collect();
        let one = snap::raw::decompress_len(&pushes[0]).unwrap();
        let mut b = Batcher::default();

        let (mut sent, mut sizes) = (0, Vec::new());
        while let Some(batch) = b.next_batch(&q, 2 * one + one / 2) {
            let n = batch.blocks.len();
            let want: Vec<&[u8]> = pushes[sent..sent + n].iter().map(Vec::as_slice).collect();
            assert_eq!(
                prompb::decompress_bounded(&batch.body, usize::MAX).unwrap(),
                protobuf(&want),
                "pushes {sent}..{}",
                sent + n
            );
            sent += n;
            sizes.push(n);
        }

        assert_eq!(sizes, [2, 2, 1]);
    }

    #[test]
    fn a_push_above_the_request_limit_is_sent_alone_as_received() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), Default::default()).unwrap();
        let small = push(&q, 50);
        let large = push(&q, 2_000);
        let limit = snap::raw::decompress_len(&large).unwrap() - 1;
        let mut b = Batcher::default();

        assert_eq!(&b.next_batch(&q, limit).unwrap().body[..], &small[..]);
        let alone = b.next_batch(&q, limit).unwrap();
        assert_eq!(alone.blocks.len(), 1);
        assert_eq!(&alone.body[..], &large[..], "sent exactly as received");
    }

    #[test]
    fn a_block_with_an_invalid_snappy_header_is_sent_alone_as_received() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path(), Default::default()).unwrap();
        let before = push(&q, 50);
        q.append(&[0xff, 0xff], 1).unwrap();
        let after: Vec<Vec<u8>> = (0..2).map(|_| push(&q, 50)).collect();
        let mut b = Batcher::default();

        assert_eq!(&b.next_batch(&q, 8 << 20).unwrap().body[..], &before[..]);
        assert_eq!(&b.next_batch(&q, 8 << 20).unwrap().body[..], [0xff, 0xff]);
        let rest = b.next_batch(&q, 8 << 20).unwrap();
        assert_eq!(rest.blocks.len(), 2);
        assert_eq!(
            prompb::decompress_bounded(&rest.body, usize::MAX).unwrap(),
            protobuf(&[&after[0], &after[1]])
        );
    }

    #[test]
    fn retry_after_seconds_are_parsed() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn a_refused_connection_is_retried_within_a_second_whatever_the_backoff() {
        for _ in 0..100 {
            let wait = retry_wait(Duration::from_secs(5), None, true);
            assert!(wait <= CONNECT_PROBE, "{wait:?}");
        }
    }

    #[test]
    fn a_server_error_waits_the_jittered_backoff() {
        for _ in 0..100 {
            let wait = retry_wait(Duration::from_secs(4), None, false);
            assert!(wait >= Duration::from_secs(2) && wait <= Duration::from_secs(4));
        }
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let seven = Duration::from_secs(7);
        assert_eq!(retry_wait(Duration::from_secs(1), Some(seven), true), seven);
        assert_eq!(
            retry_wait(Duration::ZERO, Some(Duration::from_secs(1 << 20)), false),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn jitter_stays_between_half_and_full_backoff() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(50) && j <= Duration::from_millis(100));
        }
    }

    #[test]
    fn url_credentials_become_basic_auth_and_leave_the_url() {
        let url = reqwest::Url::parse("http://user:secret@127.0.0.1:8428/api/v1/write").unwrap();
        let cfg = StorageConfig::with_defaults(url, 0);
        let (url, headers) = request_parts(&cfg).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8428/api/v1/write");
        assert_eq!(
            headers.get("authorization").unwrap(),
            "Basic dXNlcjpzZWNyZXQ="
        );
        assert!(headers.get("authorization").unwrap().is_sensitive());
        assert_eq!(headers.get("content-encoding").unwrap(), "snappy");
        assert_eq!(
            headers.get("x-prometheus-remote-write-version").unwrap(),
            "0.1.0"
        );
    }
}
