//! The listener: accepts connections, speaks TLS and HTTP/1.1 or HTTP/2, and turns away clients
//! that do not belong before any endpoint sees their request.
//!
//! # Owns
//! - The accept loop and each connection's task (hyper-util's connection builder), and graceful
//!   shutdown: stop accepting, let requests in flight finish, then return.
//! - `--web.config.file` at run time: TLS (`tls.rs`), basic auth (`auth.rs`), response headers,
//!   `rate_limit` (`limits.rs`). The file and the files it names are polled every
//!   [`RELOAD_POLL`]; a change is loaded and checked as at start-up and swapped in for new
//!   connections (TLS) and new requests (users, headers, rate limit). Connections in flight keep
//!   going. A broken new file is refused and logged; the old settings stay.
//! - Slow and hostile clients: a TLS handshake and a request's headers must arrive within
//!   `--http-header-read-timeout`, a connection idle for `--http-idle-timeout` is closed, a request
//!   head over `--http-max-header-bytes` gets 431. [`limit_inserts`] bounds concurrent ingest
//!   requests (`--max-concurrent-inserts`, 429 with `Retry-After` past it).
//!
//! # Guarantees
//! - With `basic_auth_users`, every endpoint needs credentials, admin pages and health checks
//!   included, as in Prometheus: nothing is exempt (a probe sends the header too). Missing or wrong
//!   credentials get 401 with `WWW-Authenticate: Basic`.
//! - A failed TLS handshake is counted (`promrelay_tls_handshake_failures_total`) and logged at
//!   most once per [`HANDSHAKE_LOG_EVERY`]; it never stops the accept loop. Plain HTTP sent to the
//!   TLS port gets Go's answer, 400 "Client sent an HTTP request to an HTTPS server."
//! - TLS on or off, and HTTP/2, are fixed at start-up (as in exporter-toolkit); a reload that
//!   would change TLS on or off is refused.
//!
//! # Must not
//! Know what the routes do: it gets one `Router` and wraps it. It reads the web config only
//! through the configuration module's loader.

mod auth;
mod limits;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, error, info, warn};

use crate::config::{ListenerSettings, WebConfig, load_web_config};
use crate::stats::ListenerMetrics;
use crate::util::{LogThrottle, error_chain, now_ms};

pub use limits::limit_inserts;
pub use tls::TlsBuildError;

/// How often the web config and its files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);
/// Failed TLS handshakes are logged at most this often (each is counted).
pub const HANDSHAKE_LOG_EVERY: Duration = Duration::from_secs(5);

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The web config's TLS settings could not be turned into a TLS server.
    #[error("{}: {source}", path.display())]
    Tls {
        /// The `--web.config.file`.
        path: std::path::PathBuf,
        /// What rustls refused.
        source: TlsBuildError,
    },
    /// No randomness for the credential cache's key.
    #[error("no system randomness for the basic-auth cache key")]
    Random,
}

/// The settings that a web config reload swaps.
struct Active {
    tls: Option<TlsAcceptor>,
    users: Option<auth::Users>,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate: Option<limits::RateLimiter>,
}

impl Active {
    fn build(web: Option<&WebConfig>, bcrypt: &Arc<Semaphore>) -> Result<Active, ListenerError> {
        let Some(web) = web else {
            return Ok(Active {
                tls: None,
                users: None,
                headers: Vec::new(),
                rate: None,
            });
        };
        let tls = match &web.tls {
            Some(t) => Some(TlsAcceptor::from(
                tls::server_config(t, web.http2).map_err(|source| ListenerError::Tls {
                    path: web.path.clone(),
                    source,
                })?,
            )),
            None => None,
        };
        let users = if web.users.is_empty() {
            None
        } else {
            Some(
                auth::Users::new(web.users.clone(), Arc::clone(bcrypt))
                    .map_err(|_| ListenerError::Random)?,
            )
        };
        let headers = web
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().ok()?)))
            .collect();
        let rate = web
            .rate_limit
            .map(|r| limits::RateLimiter::new(r.interval, r.burst));
        Ok(Active {
            tls,
            users,
            headers,
            rate,
        })
    }
}

/// State shared by the accept loop, every connection and the reload watcher.
struct Shared {
    active: RwLock<Arc<Active>>,
    settings: ListenerSettings,
    metrics: Arc<ListenerMetrics>,
    /// Bounds bcrypt work across reloads.
    bcrypt: Arc<Semaphore>,
    /// Failed handshakes are logged at most once per [`HANDSHAKE_LOG_EVERY`].
    handshake_log: LogThrottle,
}

impl Shared {
    fn current(&self) -> Arc<Active> {
        Arc::clone(&self.active.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn handshake_failed(&self, peer: SocketAddr, why: &str) {
        let total = self.metrics.tls_handshake_failed();
        if self.handshake_log.due() {
            warn!(%peer, error = why, failures_total = total, "TLS handshake failed (logged at most every 5s; all are counted in promrelay_tls_handshake_failures_total)");
        }
    }
}

/// A listener ready to serve: the web config's TLS and users are built.
pub struct Listener {
    shared: Arc<Shared>,
}

impl Listener {
    /// Builds the TLS server and users from `settings.web`; fails on what rustls refuses.
    pub fn new(
        settings: ListenerSettings,
        metrics: Arc<ListenerMetrics>,
    ) -> Result<Listener, ListenerError> {
        let bcrypt = Arc::new(Semaphore::new(auth::MAX_BCRYPT_AT_ONCE));
        let active = Active::build(settings.web.as_ref(), &bcrypt)?;
        if let Some(web) = &settings.web {
            info!(
                web_config = %web.path.display(),
                tls = web.tls.is_some(),
                http2 = web.http2 && web.tls.is_some(),
                basic_auth_users = web.users.len(),
                "web config loaded"
            );
        }
        Ok(Listener {
            shared: Arc::new(Shared {
                active: RwLock::new(Arc::new(active)),
                settings,
                metrics,
                bcrypt,
                handshake_log: LogThrottle::new(HANDSHAKE_LOG_EVERY),
            }),
        })
    }

    /// Serves `router` on `tcp` until `stop`, then waits for requests in flight to finish.
    pub async fn serve(self, tcp: TcpListener, router: Router, stop: CancellationToken) {
        let shared = self.shared;
        if let Some(web) = shared.settings.web.clone() {
            tokio::spawn(watch(Arc::clone(&shared), web, stop.clone()));
        }
        let tracker = TaskTracker::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                accepted = tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tracker.spawn(connection(
                            Arc::clone(&shared),
                            router.clone(),
                            stream,
                            peer,
                            stop.clone(),
                        ));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(tcp);
        tracker.close();
        tracker.wait().await;
    }
}

/// Answer to plain HTTP on the TLS port, as Go's `net/http` gives it.
const HTTP_TO_HTTPS: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

async fn connection(
    shared: Arc<Shared>,
    router: Router,
    mut stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let active = shared.current();
    let deadline = shared.settings.header_read_timeout;
    let activity = Arc::new(Activity::starting_now());
    let Some(acceptor) = active.tls.clone() else {
        drop(active);
        return serve_connection(shared, router, stream, activity, false, stop).await;
    };
    drop(active);
    // A TLS record starts with 0x16; a letter is an HTTP method sent in the clear.
    let mut first = [0u8; 1];
    match tokio::time::timeout(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0].is_ascii_alphabetic() => {
            shared.handshake_failed(peer, "plain HTTP sent to the TLS port");
            let _ = stream.write_all(HTTP_TO_HTTPS).await;
            let _ = stream.shutdown().await;
            return;
        }
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return,
        Err(_) => {
            shared.handshake_failed(peer, "no TLS handshake within --http-header-read-timeout");
            return;
        }
    }
    let tls = match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.handshake_failed(peer, &error_chain(&e));
            return;
        }
        Err(_) => {
            shared.handshake_failed(
                peer,
                "TLS handshake not finished within --http-header-read-timeout",
            );
            return;
        }
    };
    let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_connection(shared, router, tls, activity, !http2, stop).await;
}

async fn serve_connection<I>(
    shared: Arc<Shared>,
    router: Router,
    io: I,
    activity: Arc<Activity>,
    http1_only: bool,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let settings = &shared.settings;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    if http1_only {
        builder = builder.http1_only();
    }
    let idle_timeout = settings.idle_timeout;
    let svc_shared = Arc::clone(&shared);
    let svc_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = Arc::clone(&svc_shared);
        let router = router.clone();
        let busy = svc_activity.busy();
        async move {
            let response = handle(&shared, router, req).await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let io = TokioIo::new(Tracked {
        inner: io,
        activity: Arc::clone(&activity),
    });
    let mut conn = pin!(builder.serve_connection_with_upgrades(io, service));
    let period = (idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut closing = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tick.tick(), if !closing => {
                if activity.idle_for() >= idle_timeout {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// Rate limit, authentication, then the routes; the configured headers on every answer.
async fn handle(shared: &Shared, mut router: Router, req: Request<Incoming>) -> Response {
    let active = shared.current();
    let mut response = 'answer: {
        if let Some(rate) = &active.rate
            && !rate.allow()
        {
            shared.metrics.rate_limited();
            break 'answer limits::too_many_requests("Too Many Requests\n");
        }
        if let Some(users) = &active.users {
            match users.check(req.headers()).await {
                auth::Verdict::Allowed => {}
                auth::Verdict::Denied => {
                    shared.metrics.unauthorized();
                    break 'answer (
                        StatusCode::UNAUTHORIZED,
                        [(header::WWW_AUTHENTICATE, "Basic")],
                        "Unauthorized\n",
                    )
                        .into_response();
                }
                auth::Verdict::Busy => {
                    break 'answer limits::too_many_requests(
                        "too many password checks in progress; retry later\n",
                    );
                }
            }
        }
        match router.call(req.map(Body::new)).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    };
    for (name, value) in &active.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// A connection's traffic and requests in progress, for the idle timeout.
struct Activity {
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    /// A connection just accepted counts as active now.
    fn starting_now() -> Activity {
        Activity {
            last_ms: AtomicU64::new(now_ms()),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }

    fn busy(self: &Arc<Self>) -> BusyGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        BusyGuard(Arc::clone(self))
    }

    /// Zero while a request is in progress; else the time since the last byte either way.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = self.last_ms.load(Ordering::Relaxed);
        Duration::from_millis(now_ms().saturating_sub(last))
    }
}

struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An IO stream that notes when bytes move.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What identifies a version of a watched file: a rename over it or a rewrite changes it.
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

fn stamp(paths: &[std::path::PathBuf]) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len(), m.ino()))
        })
        .collect()
}

/// Polls the web config and the files it names; loads, checks and swaps in a changed one.
async fn watch(shared: Arc<Shared>, mut web: WebConfig, stop: CancellationToken) {
    let mut seen = stamp(&web.watched);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RELOAD_POLL) => {}
        }
        let now = stamp(&web.watched);
        if now == seen {
            continue;
        }
        seen = now;
        let path = web.path.clone();
        let loaded = tokio::task::spawn_blocking(move || load_web_config(&path)).await;
        let new = match loaded {
            Ok(Ok(new)) => new,
            Ok(Err(e)) => {
                shared.metrics.reloaded(false);
                error!(error = %e, "web config changed but is refused; the old settings stay");
                continue;
            }
            Err(e) => {
                shared.metrics.reloaded(false);
                error!(error = %e, "web config reload failed; the old settings stay");
                continue;
            }
        };
        if new.tls.is_some() != web.tls.is_some() {
            shared.metrics.reloaded(false);
            error!(web_config = %web.path.display(), "web config reload would turn TLS on or off, which needs a restart; the old settings stay");
            continue;
        }
        // The new file may name other files: watch those from now on.
        seen = stamp(&new.watched);
        match Active::build(Some(&new), &shared.bcrypt) {
            Ok(active) => {
                *shared
                    .active
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(active);
                shared.metrics.reloaded(true);
                info!(web_config = %new.path.display(), basic_auth_users = new.users.len(), "web config reloaded");
                web = new;
            }
            Err(e) => {
                shared.metrics.reloaded(false);
                error!(error = %e, "web config changed but is refused; the old settings stay");
            }
        }
    }
}
