//! Overload protection: the bound on concurrent ingest requests (vmagent's
//! `-maxConcurrentInserts`) and the web config's `rate_limit` token bucket.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use tokio::sync::Semaphore;

use crate::stats::ListenerMetrics;

/// What a client told to come back later is told to wait, in seconds.
const RETRY_AFTER_SECONDS: &str = "1";

struct InsertLimit {
    slots: Arc<Semaphore>,
    wait: Duration,
    metrics: Arc<ListenerMetrics>,
}

/// Wraps the ingest routes so that at most `max` requests are handled at once. A request past it
/// waits up to `wait` for a slot (its body not yet read), then gets 429 with `Retry-After`: a push
/// storm turns into retries instead of buffered bodies.
pub fn limit_inserts(
    router: Router,
    max: usize,
    wait: Duration,
    metrics: Arc<ListenerMetrics>,
) -> Router {
    let state = Arc::new(InsertLimit {
        slots: Arc::new(Semaphore::new(max.max(1))),
        wait,
        metrics,
    });
    router.layer(axum::middleware::from_fn_with_state(state, insert_slot))
}

async fn insert_slot(State(limit): State<Arc<InsertLimit>>, req: Request, next: Next) -> Response {
    let permit = match limit.slots.try_acquire() {
        Ok(p) => p,
        Err(_) => match tokio::time::timeout(limit.wait, limit.slots.acquire()).await {
            Ok(Ok(p)) => p,
            _ => {
                limit.metrics.throttled();
                return too_many_requests(
                    "too many concurrent pushes (--max-concurrent-inserts); retry later\n",
                );
            }
        },
    };
    let response = next.run(req).await;
    drop(permit);
    response
}

/// 429 with `Retry-After`.
pub(super) fn too_many_requests(body: &'static str) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
        body,
    )
        .into_response()
}

/// A token bucket: `burst` tokens, one more every `interval` (golang.org/x/time/rate, as
/// exporter-toolkit uses).
pub(super) struct RateLimiter {
    interval: Duration,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub(super) fn new(interval: Duration, burst: u32) -> RateLimiter {
        let burst = f64::from(burst);
        RateLimiter {
            interval,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub(super) fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = *state;
        let refill =
            now.saturating_duration_since(last).as_secs_f64() / self.interval.as_secs_f64();
        let tokens = (tokens + refill).min(self.burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_lets_a_burst_through_then_one_per_interval() {
        let limiter = RateLimiter::new(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        assert!(limiter.allow_at(t0));
        assert!(limiter.allow_at(t0));
        assert!(!limiter.allow_at(t0), "the burst is spent");
        assert!(!limiter.allow_at(t0 + Duration::from_millis(500)));
        assert!(limiter.allow_at(t0 + Duration::from_millis(1000)));
        assert!(!limiter.allow_at(t0 + Duration::from_millis(1100)));
    }

    #[test]
    fn a_zero_burst_lets_nothing_through() {
        let limiter = RateLimiter::new(Duration::from_secs(1), 0);
        let t0 = Instant::now();
        assert!(!limiter.allow_at(t0 + Duration::from_secs(10)));
    }
}
