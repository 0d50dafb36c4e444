//! The fan-out as ingest sees it while the process starts: absent until every queue is open
//! (opening recovers each queue's newest chunk, which can take a while on a large backlog), then
//! set once for good. A push that arrives meanwhile waits for it, up to a bound.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::forward::Fanout;

/// How long a push that arrives while the queues are being opened waits for them before it is
/// answered 503. Long enough for a typical recovery, short enough to stay under the 30 s request
/// timeout Prometheus' remote write uses by default.
pub const OPEN_WAIT: Duration = Duration::from_secs(10);

/// The fan-out once the queues are open.
#[derive(Default)]
pub struct FanoutSlot {
    fanout: OnceLock<Arc<Fanout>>,
    /// Woken once, when `fanout` is set.
    opened: Notify,
}

impl FanoutSlot {
    /// The fan-out, if the queues are open.
    pub fn get(&self) -> Option<&Arc<Fanout>> {
        self.fanout.get()
    }

    /// Sets the fan-out (the first call wins) and wakes every push waiting for it.
    pub fn set(&self, fanout: Arc<Fanout>) {
        if self.fanout.set(fanout).is_ok() {
            self.opened.notify_waiters();
        }
    }

    /// The fan-out, waiting up to `bound` for the queues to open; `None` if they still are not.
    pub async fn wait(&self, bound: Duration) -> Option<&Arc<Fanout>> {
        if let Some(f) = self.fanout.get() {
            return Some(f);
        }
        let deadline = Instant::now() + bound;
        loop {
            let notified = self.opened.notified();
            tokio::pin!(notified);
            // Registered before the check below, so a `set` between the check and the wait
            // still wakes this one.
            notified.as_mut().enable();
            if let Some(f) = self.fanout.get() {
                return Some(f);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.fanout.get();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::*;
    use crate::config::Config;
    use crate::ingest::{IngestState, router};
    use crate::prompb;
    use crate::stats::IngestMetrics;

    fn state(open_wait: Duration) -> Arc<IngestState> {
        Arc::new(IngestState {
            fanout: Arc::new(FanoutSlot::default()),
            open_wait,
            metrics: Arc::new(IngestMetrics::default()),
            max_request_bytes: 1 << 20,
            otlp: crate::otlp::Settings::default(),
        })
    }

    fn push_request() -> Request<Body> {
        let req = prompb::example_write_request(3, 2, 1_700_000_000_000);
        let body = prompb::compress(&prost::Message::encode_to_vec(&req));
        Request::post("/api/v1/write")
            .header(header::CONTENT_ENCODING, "snappy")
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .body(Body::from(body))
            .expect("a valid request")
    }

    fn open_fanout(data_dir: &std::path::Path) -> Arc<Fanout> {
        let data_dir = data_dir.to_str().expect("a UTF-8 temporary path");
        let cfg = Config::from_args([
            "promrelay",
            "--data-dir",
            data_dir,
            "--remote-write-url",
            "http://127.0.0.1:9/api/v1/write",
        ])
        .expect("valid flags");
        Arc::new(Fanout::open(&cfg).expect("open the queues"))
    }

    #[tokio::test]
    async fn push_that_arrives_while_queues_open_waits_and_is_queued() {
        let st = state(Duration::from_secs(30));
        let mut push = tokio::spawn(router(Arc::clone(&st)).oneshot(push_request()));
        // Still waiting for the queues (the bug answered 503 "starting" at once).
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut push)
                .await
                .is_err(),
            "the push was answered before the queues were open"
        );

        let dir = tempfile::tempdir().expect("a temporary directory");
        let fanout = open_fanout(dir.path());
        st.fanout.set(Arc::clone(&fanout));
        let response = tokio::time::timeout(Duration::from_secs(10), push)
            .await
            .expect("answered once the queues are open")
            .expect("the push task ran")
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(fanout.storages()[0].queue().stats().pending_blocks, 1);
    }

    #[tokio::test]
    async fn push_gets_503_with_retry_after_when_queues_are_not_open_by_the_bound() {
        let st = state(Duration::from_millis(50));
        let response = router(st)
            .oneshot(push_request())
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .expect("a Retry-After header");
        assert!(
            retry_after
                .to_str()
                .is_ok_and(|s| s.parse::<u32>().is_ok_and(|n| n > 0)),
            "{retry_after:?}"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("a body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("still being opened"), "{text}");
    }

    #[tokio::test]
    async fn wait_returns_at_once_when_the_queues_are_open() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let slot = FanoutSlot::default();
        slot.set(open_fanout(dir.path()));
        let waited =
            tokio::time::timeout(Duration::from_secs(1), slot.wait(Duration::from_secs(3600)))
                .await
                .expect("no wait");
        assert!(waited.is_some());
    }
}
