//! A fault proxy on loopback in front of a storage: passes remote-write requests through, or
//! answers slowly, or with 500s, 429s or 503s, as the chaos loop tells it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// What the proxy does with the next requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the storage and return its answer.
    Pass,
    /// Forward after a delay.
    Slow(Duration),
    /// Answer with this status without forwarding (500, 429, 503).
    Status(u16),
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    fault: Arc<Mutex<Fault>>,
    http: reqwest::Client,
}

/// A running proxy; dropping it stops it.
pub struct FaultProxy {
    url: String,
    fault: Arc<Mutex<Fault>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a port-0 listener forwarding `POST /api/v1/write` to `upstream`.
    pub async fn start(upstream: String) -> FaultProxy {
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let shared = Shared {
            upstream,
            fault: Arc::clone(&fault),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        };
        let app = axum::Router::new()
            .route("/api/v1/write", post(forward))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let url = format!(
            "http://{}/api/v1/write",
            listener.local_addr().expect("proxy address")
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { url, fault, task }
    }

    /// The remote-write URL to give the relay.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sets what the next requests get.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = *s.fault.lock().unwrap_or_else(|p| p.into_inner());
    match fault {
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "fault proxy says no").into_response();
        }
        Fault::Slow(delay) => tokio::time::sleep(delay).await,
        Fault::Pass => {}
    }
    let mut request = s.http.post(&s.upstream).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let text = answer.text().await.unwrap_or_default();
            (status, text).into_response()
        }
        // The storage is stopped: a gateway error, retried by the relay like a refused connection.
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
