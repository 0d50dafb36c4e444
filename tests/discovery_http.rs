//! `http_sd_configs` against a port-0 HTTP server: the request Prometheus' HTTP SD sends, the
//! groups and labels it yields, refreshes that pick up changes, answers that are refused
//! (status, content type, JSON) keeping the previous targets, and credentials and TLS reaching
//! the server through the one outbound client.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use common::pki::{CertFiles, Pki};
use common::{EVENTUALLY_TIMEOUT, eventually, serve_until_stopped};
use promrelay::scrape::config::{JobConfig, load};
use promrelay::scrape::discovery::http::HttpSd;
use promrelay::scrape::discovery::{
    Discovery, DiscoveryOptions, JobGroups, ProviderContext, TargetGroup,
};
use promrelay::stats::DiscoveryMetrics;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

/// What the fake discovery server answers, and what it was asked.
#[derive(Clone)]
struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

#[derive(Default)]
struct Seen {
    requests: usize,
    headers: Option<HeaderMap>,
}

#[derive(Clone)]
struct Server {
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Seen>>,
}

impl Server {
    fn new(body: &str) -> Server {
        Server {
            answer: Arc::new(Mutex::new(Answer {
                status: StatusCode::OK,
                content_type: "application/json",
                body: body.to_owned(),
            })),
            seen: Arc::new(Mutex::new(Seen::default())),
        }
    }

    fn answer(&self, status: StatusCode, content_type: &'static str, body: &str) {
        *self.answer.lock().expect("the fake server lock") = Answer {
            status,
            content_type,
            body: body.to_owned(),
        };
    }

    fn requests(&self) -> usize {
        self.seen.lock().expect("the fake server lock").requests
    }

    fn last_headers(&self) -> HeaderMap {
        self.seen
            .lock()
            .expect("the fake server lock")
            .headers
            .clone()
            .expect("a request was made")
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/targets", get(serve))
            .with_state(self.clone())
    }

    /// Serves plain HTTP on a port-0 listener; returns the URL of `/targets`.
    async fn start(&self) -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, _) = serve_until_stopped(listener, self.router(), "http_sd server");
        (format!("http://{addr}/targets"), stop)
    }

    /// Serves HTTPS with `cert` on a port-0 listener; returns the URL of `/targets`.
    async fn start_tls(&self, cert: &CertFiles) -> String {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert)
            .expect("read the certificate")
            .collect::<Result<_, _>>()
            .expect("PEM certificates");
        let key = PrivateKeyDer::from_pem_file(&cert.key).expect("a PEM key");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a matching certificate and key");
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("address");
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let router = self.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("https://localhost:{}/targets", addr.port())
    }
}

async fn serve(
    State(server): State<Server>,
    headers: HeaderMap,
) -> (StatusCode, HeaderMap, String) {
    {
        let mut seen = server.seen.lock().expect("the fake server lock");
        seen.requests += 1;
        seen.headers = Some(headers);
    }
    let answer = server.answer.lock().expect("the fake server lock").clone();
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        answer.content_type.parse().expect("a header value"),
    );
    (answer.status, out, answer.body)
}

/// A TLS listener for `axum::serve`: handshakes that fail are skipped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The one job of a scrape config whose `http_sd_configs` entry is `entry` (YAML lines at
/// the entry's indentation), written in `dir`.
fn job_with(dir: &Path, entry: &str) -> JobConfig {
    let path = dir.join("prometheus.yml");
    let yaml =
        format!("scrape_configs:\n  - job_name: sd\n    http_sd_configs:\n      - {entry}\n");
    std::fs::write(&path, yaml).expect("write the config");
    let config = load(&path).unwrap_or_else(|e| panic!("config loads: {e}"));
    config.jobs.into_iter().next().expect("one job")
}

fn fast() -> DiscoveryOptions {
    DiscoveryOptions {
        poll_interval: Duration::from_secs(3600),
        min_publish_interval: Duration::from_millis(10),
    }
}

/// The job's `(address, labels)` pairs in the current snapshot.
fn targets_of(snapshot: &[JobGroups]) -> Vec<(String, Vec<(String, String)>)> {
    snapshot
        .iter()
        .flat_map(JobGroups::all)
        .flat_map(|g: &TargetGroup| {
            let labels: Vec<(String, String)> = g
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            g.targets.iter().map(move |t| (t.clone(), labels.clone()))
        })
        .collect()
}

/// Waits until the discovered addresses are `want`.
async fn wait_for_addresses(discovery: &Discovery, want: &[&str]) {
    eventually(&format!("targets {want:?}"), EVENTUALLY_TIMEOUT, || async {
        let seen: Vec<String> = targets_of(&discovery.current())
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        if seen == want {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn the_request_carries_prometheus_headers() {
    let server = Server::new("[]");
    let (url, _stop) = server.start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let job = job_with(
        dir.path(),
        &format!("url: {url}\n        refresh_interval: 90s"),
    );
    HttpSd::new(&job.http_sd_configs[0])
        .expect("client builds")
        .fetch()
        .await
        .expect("fetch succeeds");
    let headers = server.last_headers();
    assert_eq!(headers[header::ACCEPT], "application/json");
    assert_eq!(headers["x-prometheus-refresh-interval-seconds"], "90");
    assert!(
        headers[header::USER_AGENT]
            .to_str()
            .expect("the fake server lock")
            .starts_with("promrelay/"),
        "{headers:?}"
    );
}

#[tokio::test]
async fn groups_carry_their_labels_meta_url_and_source() {
    let server = Server::new(
        r#"[{"targets": ["10.0.0.1:9100", "10.0.0.2:9100"], "labels": {"env": "prod"}},
            {"targets": ["10.0.0.3:9100"]}]"#,
    );
    let (url, _stop) = server.start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let job = job_with(dir.path(), &format!("url: {url}"));
    let groups = HttpSd::new(&job.http_sd_configs[0])
        .expect("client builds")
        .fetch()
        .await
        .expect("fetch succeeds");
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].source, format!("{url}:0"));
    assert_eq!(groups[1].source, format!("{url}:1"));
    assert_eq!(groups[0].targets, ["10.0.0.1:9100", "10.0.0.2:9100"]);
    assert_eq!(groups[0].labels["env"], "prod");
    assert_eq!(groups[0].labels["__meta_url"], url);
    assert_eq!(groups[1].labels["__meta_url"], url);
}

#[tokio::test]
async fn a_refresh_picks_up_changed_targets() {
    let server = Server::new(r#"[{"targets": ["a:1"]}]"#);
    let (url, _stop) = server.start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let job = job_with(
        dir.path(),
        &format!("url: {url}\n        refresh_interval: 100ms"),
    );
    let discovery = Discovery::start_with_context(&[job], fast(), &ProviderContext::default());
    wait_for_addresses(&discovery, &["a:1"]).await;
    server.answer(
        StatusCode::OK,
        "application/json",
        r#"[{"targets": ["b:2", "c:3"]}]"#,
    );
    wait_for_addresses(&discovery, &["b:2", "c:3"]).await;
}

/// Each refused answer keeps the targets of the last good one, and counts a failure.
#[tokio::test]
async fn refused_answers_keep_the_previous_targets_and_are_counted() {
    let server = Server::new(r#"[{"targets": ["a:1"]}]"#);
    let (url, _stop) = server.start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let job = job_with(
        dir.path(),
        &format!("url: {url}\n        refresh_interval: 50ms"),
    );
    let metrics = Arc::new(DiscoveryMetrics::default());
    let context = ProviderContext {
        metrics: Arc::clone(&metrics),
        dns_server: None,
    };
    let discovery = Discovery::start_with_context(&[job], fast(), &context);
    wait_for_addresses(&discovery, &["a:1"]).await;

    let refusals: [(StatusCode, &'static str, &str); 3] = [
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            r#"[{"targets": ["x:1"]}]"#,
        ),
        (StatusCode::OK, "text/plain", r#"[{"targets": ["x:1"]}]"#),
        (
            StatusCode::OK,
            "application/json",
            r#"[{"targets": ["x:1"]"#,
        ),
    ];
    for (status, content_type, body) in refusals {
        let failures_before = metrics.snapshot().http_failures;
        let requests_before = server.requests();
        server.answer(status, content_type, body);
        eventually("two more refreshes", EVENTUALLY_TIMEOUT, || async {
            let failures = metrics.snapshot().http_failures;
            if server.requests() >= requests_before + 2 && failures >= failures_before + 2 {
                Ok(())
            } else {
                Err(format!(
                    "{} requests, {failures} failures",
                    server.requests()
                ))
            }
        })
        .await;
        let seen: Vec<String> = targets_of(&discovery.current())
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        assert_eq!(seen, ["a:1"], "after {status} {content_type} {body}");
    }
    server.answer(
        StatusCode::OK,
        "application/json",
        r#"[{"targets": ["b:2"]}]"#,
    );
    wait_for_addresses(&discovery, &["b:2"]).await;
}

#[tokio::test]
async fn basic_auth_reaches_the_server() {
    let server = Server::new("[]");
    let (url, _stop) = server.start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("password"), "s3cret\n").expect("write password");
    let job = job_with(
        dir.path(),
        &format!("url: {url}\n        basic_auth: {{username: alice, password_file: password}}"),
    );
    HttpSd::new(&job.http_sd_configs[0])
        .expect("client builds")
        .fetch()
        .await
        .expect("fetch succeeds");
    // base64("alice:s3cret")
    assert_eq!(
        server.last_headers()[header::AUTHORIZATION],
        "Basic YWxpY2U6czNjcmV0"
    );
}

#[tokio::test]
async fn https_with_the_configured_ca_reaches_the_server_and_without_it_fails() {
    let pki = Pki::new();
    let ca = pki.ca("sd-ca");
    let cert = pki.leaf(&ca, "sd-server", 1);
    let server = Server::new(r#"[{"targets": ["a:1"]}]"#);
    let url = server.start_tls(&cert).await;
    let dir = tempfile::tempdir().expect("temp dir");

    let trusted = job_with(
        dir.path(),
        &format!(
            "url: {url}\n        authorization: {{credentials: tok}}\n        tls_config: {{ca_file: {}}}",
            ca.cert.display()
        ),
    );
    let groups = HttpSd::new(&trusted.http_sd_configs[0])
        .expect("client builds")
        .fetch()
        .await
        .expect("fetch over TLS succeeds");
    assert_eq!(groups[0].targets, ["a:1"]);
    assert_eq!(server.last_headers()[header::AUTHORIZATION], "Bearer tok");

    let untrusted = job_with(dir.path(), &format!("url: {url}"));
    let err = HttpSd::new(&untrusted.http_sd_configs[0])
        .expect("client builds")
        .fetch()
        .await
        .expect_err("an unknown CA is refused");
    assert!(err.to_string().contains("request failed"), "{err}");
}

#[tokio::test]
async fn a_redirect_is_followed_unless_follow_redirects_is_false() {
    let server = Server::new(r#"[{"targets": ["a:1"]}]"#);
    let (target_url, _stop) = server.start().await;
    let redirect = Router::new().route(
        "/old",
        get(move || {
            let to = target_url.clone();
            async move { (StatusCode::FOUND, [(header::LOCATION, to)]) }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let old = format!("http://{}/old", listener.local_addr().expect("address"));
    let (_stop_redirect, _) = serve_until_stopped(listener, redirect, "redirecting server");
    let dir = tempfile::tempdir().expect("temp dir");

    let follows = job_with(dir.path(), &format!("url: {old}"));
    let groups = HttpSd::new(&follows.http_sd_configs[0])
        .expect("client builds")
        .fetch()
        .await
        .expect("the redirect is followed");
    assert_eq!(groups[0].targets, ["a:1"]);
    assert_eq!(
        groups[0].labels["__meta_url"], old,
        "the configured URL, not the final one"
    );

    let stays = job_with(
        dir.path(),
        &format!("url: {old}\n        follow_redirects: false"),
    );
    let err = HttpSd::new(&stays.http_sd_configs[0])
        .expect("client builds")
        .fetch()
        .await
        .expect_err("a 302 is not 200");
    assert!(err.to_string().contains("302"), "{err}");
}
