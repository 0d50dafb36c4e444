//! The listener's guard: TLS (mutual too), basic auth, certificate rotation, web config reloads,
//! slow clients and the bound on concurrent pushes, against `server::run` on a port-0 listener
//! with certificates made by `openssl`, and Prometheus in agent mode as the real sender.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::pki::{CertFiles, Pki, client_config, https_client, served_certificate};
use common::{Peers, eventually};
use promrelay::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `s3cret` hashed with `htpasswd -nBC 10`'s algorithm (bcrypt, cost 10).
const S3CRET_HASH: &str = "$2b$10$joveH3BUIJBlDDz4EOn3H.u240YQ0m6MIRRwcalmONMAJ/thYZJZS";
/// A storage nobody listens on: whatever the relay queues stays pending there.
const NOWHERE: &str = "http://127.0.0.1:9/api/v1/write";

struct Running {
    address: SocketAddr,
    _data: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), promrelay::server::ServerError>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.done).await;
    }
}

/// Runs the relay with `flags` (after its data dir and storage) on a port-0 listener.
async fn start(storage: &str, flags: &[&str]) -> Running {
    let data = tempfile::tempdir().expect("a data directory");
    let mut args = vec![
        "promrelay".to_owned(),
        "--data-dir".to_owned(),
        data.path().display().to_string(),
        "--remote-write-url".to_owned(),
        storage.to_owned(),
    ];
    args.extend(flags.iter().map(|s| (*s).to_owned()));
    let cfg = Config::from_args(args).expect("valid flags");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("a bound address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(promrelay::server::run(cfg, listener, async move {
        let _ = stopped.await;
    }));
    Running {
        address,
        _data: data,
        stop: Some(stop),
        done,
    }
}

/// The web config for a TLS server with `server` and user `prometheus`/`s3cret`; with
/// `client_ca`, clients need a certificate that CA signed.
fn web_config(server: &CertFiles, client_ca: Option<&CertFiles>) -> String {
    let mut yaml = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        server.cert.display(),
        server.key.display()
    );
    if let Some(ca) = client_ca {
        yaml.push_str(&format!(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            ca.cert.display()
        ));
    }
    yaml.push_str(&format!(
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  prometheus: {S3CRET_HASH}\n"
    ));
    yaml
}

fn write_web_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).expect("write the web config");
    path
}

async fn ready(client: &reqwest::Client, base: &str) {
    eventually("the relay to be ready", Duration::from_secs(20), || async {
        match client
            .get(format!("{base}/-/ready"))
            .basic_auth("prometheus", Some("s3cret"))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => Ok(()),
            Ok(r) => Err(format!("status {}", r.status())),
            Err(e) => Err(format!("{e:?}")),
        }
    })
    .await;
}

/// A tiny valid remote-write push: one series, one sample.
fn push_body() -> Vec<u8> {
    use promrelay::prompb::{Label, Sample, TimeSeries, WriteRequest};
    let request = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: "listener_test".into(),
            }],
            samples: vec![Sample {
                value: 1.0,
                timestamp: common::now_ms(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    promrelay::prompb::compress(&prost::Message::encode_to_vec(&request))
}

async fn push(
    client: &reqwest::Client,
    base: &str,
    auth: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = client
        .post(format!("{base}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(push_body());
    if let Some((user, password)) = auth {
        req = req.basic_auth(user, Some(password));
    }
    req.send().await.expect("the relay answers")
}

/// The body of an authorised GET of `path`.
async fn get_text(client: &reqwest::Client, base: &str, path: &str) -> String {
    client
        .get(format!("{base}{path}"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:?}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {path} body: {e:?}"))
}

async fn queued_blocks(client: &reqwest::Client, base: &str) -> u64 {
    let text = get_text(client, base, "/api/v1/queues").await;
    let queues: serde_json::Value = serde_json::from_str(&text).expect("queues JSON");
    queues[0]["pending_blocks"]
        .as_u64()
        .expect("pending_blocks")
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = get_text(client, base, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}"))
}

/// A relay with mutual TLS and basic auth, and the CA, client certificate and PKI behind it.
struct Secured {
    pki: Pki,
    ca: CertFiles,
    client: CertFiles,
    relay: Running,
    base: String,
}

async fn secured(flags: &[&str]) -> Secured {
    let pki = Pki::new();
    let ca = pki.ca("relay-ca");
    let server = pki.leaf(&ca, "relay", 1);
    let client = pki.leaf(&ca, "prometheus", 2);
    let web = write_web_config(pki.dir(), &web_config(&server, Some(&ca)));
    let web = web.display().to_string();
    let mut all = vec!["--web.config.file", web.as_str()];
    all.extend_from_slice(flags);
    let relay = start(NOWHERE, &all).await;
    let base = format!("https://localhost:{}", relay.address.port());
    ready(&https_client(client_config(&ca, Some(&client))), &base).await;
    Secured {
        pki,
        ca,
        client,
        relay,
        base,
    }
}

#[tokio::test]
async fn prometheus_agent_pushes_over_mutual_tls_with_basic_auth_and_every_sample_arrives() {
    let (vm, node_exporter) = tokio::join!(
        Peers::victoria_metrics().start(),
        Peers::node_exporter().start()
    );
    let pki = Pki::new();
    let ca = pki.ca("relay-ca");
    let server = pki.leaf(&ca, "relay", 1);
    let agent_cert = pki.leaf(&ca, "prometheus", 2);
    let web = write_web_config(pki.dir(), &web_config(&server, Some(&ca)));
    let relay = start(
        &vm.remote_write_url(),
        &["--web.config.file", &web.display().to_string()],
    )
    .await;
    let base = format!("https://localhost:{}", relay.address.port());
    let client = https_client(client_config(&ca, Some(&agent_cert)));
    ready(&client, &base).await;
    let settings = format!(
        "    basic_auth:\n      username: prometheus\n      password: s3cret\n    tls_config:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n",
        ca.cert.display(),
        agent_cert.cert.display(),
        agent_cert.key.display()
    );
    let agent = Peers::prometheus_agent_with(
        &[node_exporter.target()],
        &format!("{base}/api/v1/write"),
        &settings,
    )
    .start()
    .await;

    let up = vm.export_at_least(r#"up{job="agent"}"#, 5).await;
    assert!(up[0].values().iter().all(|&v| v == 1.0), "{up:?}");
    let (_, agent_metrics) = agent.get("/metrics").await;
    let sent = |name: &str| {
        agent_metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(sent("prometheus_remote_storage_samples_failed_total"), 0.0);
    assert_eq!(sent("prometheus_remote_storage_samples_dropped_total"), 0.0);
    assert!(sent("prometheus_remote_storage_samples_total") > 0.0);
    assert_eq!(
        metric(&client, &base, "promrelay_unauthorized_requests_total").await,
        0.0
    );
    assert_eq!(
        metric(&client, &base, "promrelay_tls_handshake_failures_total").await,
        0.0
    );
    drop(agent);
    relay.stop().await;
}

#[tokio::test]
async fn a_push_without_credentials_gets_401_with_basic_challenge_and_nothing_is_queued() {
    let s = secured(&[]).await;
    let client = https_client(client_config(&s.ca, Some(&s.client)));
    let r = push(&client, &s.base, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic");
    assert_eq!(queued_blocks(&client, &s.base).await, 0);
    s.relay.stop().await;
}

#[tokio::test]
async fn a_push_with_a_wrong_password_or_unknown_user_gets_401_and_nothing_is_queued() {
    let s = secured(&[]).await;
    let client = https_client(client_config(&s.ca, Some(&s.client)));
    for (user, password) in [("prometheus", "wrong"), ("mallory", "s3cret")] {
        let r = push(&client, &s.base, Some((user, password))).await;
        assert_eq!(r.status(), 401, "{user}:{password}");
    }
    assert_eq!(queued_blocks(&client, &s.base).await, 0);
    assert_eq!(
        metric(&client, &s.base, "promrelay_unauthorized_requests_total").await,
        2.0
    );
    let ok = push(&client, &s.base, Some(("prometheus", "s3cret"))).await;
    assert_eq!(ok.status(), 204, "the right password still gets in");
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    s.relay.stop().await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_fails_the_handshake_and_is_counted() {
    let s = secured(&[]).await;
    let other_ca = s.pki.ca("other-ca");
    let stranger = s.pki.leaf(&other_ca, "stranger", 7);
    let foreign = https_client(client_config(&s.ca, Some(&stranger)));
    let answer = foreign
        .get(format!("{}/-/healthy", s.base))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await;
    assert!(answer.is_err(), "a certificate from another CA: {answer:?}");
    let client = https_client(client_config(&s.ca, Some(&s.client)));
    let no_cert = https_client(client_config(&s.ca, None));
    let refused = no_cert
        .get(format!("{}/-/healthy", s.base))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await;
    assert!(refused.is_err(), "no client certificate: {refused:?}");
    assert_eq!(queued_blocks(&client, &s.base).await, 0);
    assert!(metric(&client, &s.base, "promrelay_tls_handshake_failures_total").await >= 2.0);
    s.relay.stop().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_400_and_nothing_is_queued() {
    let s = secured(&[]).await;
    let plain = reqwest::Client::new();
    let r = plain
        .post(format!(
            "http://127.0.0.1:{}/api/v1/write",
            s.relay.address.port()
        ))
        .basic_auth("prometheus", Some("s3cret"))
        .body(push_body())
        .send()
        .await
        .expect("an answer in the clear");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("HTTPS server"));
    let client = https_client(client_config(&s.ca, Some(&s.client)));
    assert_eq!(queued_blocks(&client, &s.base).await, 0);
    s.relay.stop().await;
}

#[tokio::test]
async fn rotated_certificates_reach_new_connections_while_no_push_fails() {
    let s = secured(&[]).await;
    let client = https_client(client_config(&s.ca, Some(&s.client)));
    let first = served_certificate(s.relay.address, client_config(&s.ca, Some(&s.client))).await;

    let failed = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let pusher = {
        let (client, base) = (client.clone(), s.base.clone());
        let (failed, sent, stop) = (Arc::clone(&failed), Arc::clone(&sent), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let ok = client
                    .post(format!("{base}/api/v1/write"))
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .basic_auth("prometheus", Some("s3cret"))
                    .body(push_body())
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 204);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let next = s.pki.leaf(&s.ca, "relay", 3);
    let current = s.pki.dir().join("relay-1.pem");
    let current_key = s.pki.dir().join("relay-1.key");
    std::fs::rename(&next.key, &current_key).expect("replace the key");
    std::fs::rename(&next.cert, &current).expect("replace the certificate");
    let wanted = CertFiles {
        cert: current,
        key: current_key,
    }
    .der();
    assert_ne!(first, wanted);
    eventually(
        "new connections to see serial 3",
        Duration::from_secs(20),
        || async {
            let seen =
                served_certificate(s.relay.address, client_config(&s.ca, Some(&s.client))).await;
            if seen == wanted {
                Ok(())
            } else {
                Err("still the old certificate".to_owned())
            }
        },
    )
    .await;
    let before = sent.load(Ordering::Relaxed);
    eventually(
        "more pushes after the rotation",
        Duration::from_secs(20),
        || async {
            if sent.load(Ordering::Relaxed) > before + 5 {
                Ok(())
            } else {
                Err("waiting".to_owned())
            }
        },
    )
    .await;
    stop.cancel();
    pusher.await.expect("the pusher ends");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {} pushes",
        sent.load(Ordering::Relaxed)
    );
    assert!(
        metric(
            &client,
            &s.base,
            "promrelay_web_config_reloads_total{result=\"success\"}"
        )
        .await
            >= 1.0
    );
    s.relay.stop().await;
}

#[tokio::test]
async fn a_broken_new_web_config_is_refused_and_the_old_users_keep_working() {
    let s = secured(&[]).await;
    let client = https_client(client_config(&s.ca, Some(&s.client)));
    std::fs::write(
        s.pki.dir().join("web.yml"),
        "basic_auth_users:\n  prometheus: not-a-hash\n",
    )
    .expect("break the web config");
    eventually(
        "the refused reload to be counted",
        Duration::from_secs(20),
        || async {
            let n = metric(
                &client,
                &s.base,
                "promrelay_web_config_reloads_total{result=\"failure\"}",
            )
            .await;
            if n >= 1.0 {
                Ok(())
            } else {
                Err(format!("{n}"))
            }
        },
    )
    .await;
    let r = push(&client, &s.base, Some(("prometheus", "s3cret"))).await;
    assert_eq!(r.status(), 204);
    s.relay.stop().await;
}

#[tokio::test]
async fn a_client_sending_one_byte_a_second_is_cut_off_by_the_header_read_timeout() {
    let relay = start(NOWHERE, &["--http-header-read-timeout", "2s"]).await;
    let mut tcp = tokio::net::TcpStream::connect(relay.address)
        .await
        .expect("connect");
    let request =
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut_off = false;
    for byte in request {
        if tcp.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {
                // Closed (0 bytes) or reset, possibly after a 408: the server hung up.
                cut_off = true;
                break;
            }
            Err(_) => {} // still waiting for us: send the next byte
        }
    }
    assert!(cut_off, "the slow client was never cut off");
    let held = started.elapsed();
    assert!(held < Duration::from_secs(10), "held for {held:?}");
    relay.stop().await;
}

#[tokio::test]
async fn pushes_past_max_concurrent_inserts_get_429_with_retry_after() {
    let relay = start(
        NOWHERE,
        &[
            "--max-concurrent-inserts",
            "1",
            "--insert-max-queue-duration",
            "200ms",
        ],
    )
    .await;
    let base = format!("http://{}", relay.address);
    let client = reqwest::Client::new();
    eventually("ready", Duration::from_secs(20), || async {
        match client.get(format!("{base}/-/ready")).send().await {
            Ok(r) if r.status() == 200 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // A push that takes the only slot and keeps it: its body never finishes.
    let mut holder = tokio::net::TcpStream::connect(relay.address)
        .await
        .expect("connect");
    holder
        .write_all(b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\nab")
        .await
        .expect("send the head");
    let r = eventually(
        "a 429 for the second push",
        Duration::from_secs(10),
        || async {
            let r = push(&client, &base, None).await;
            if r.status() == 429 {
                Ok(r)
            } else {
                Err(format!("{}", r.status()))
            }
        },
    )
    .await;
    assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
    drop(holder);
    eventually(
        "the slot to free again",
        Duration::from_secs(10),
        || async {
            let r = push(&client, &base, None).await;
            if r.status() == 204 {
                Ok(())
            } else {
                Err(format!("{}", r.status()))
            }
        },
    )
    .await;
    relay.stop().await;
}

#[tokio::test]
async fn state_changing_admin_actions_answer_only_post_and_read_endpoints_only_get() {
    let relay = start(NOWHERE, &[]).await;
    let base = format!("http://{}", relay.address);
    let client = reqwest::Client::new();
    let status = |method: reqwest::Method, path: &str| {
        let req = client.request(method, format!("{base}{path}"));
        async move { req.send().await.expect("an answer").status().as_u16() }
    };
    assert_eq!(status(reqwest::Method::GET, "/-/reload").await, 405);
    assert_eq!(status(reqwest::Method::PUT, "/-/reload").await, 405);
    assert_eq!(status(reqwest::Method::POST, "/metrics").await, 405);
    assert_eq!(status(reqwest::Method::DELETE, "/api/v1/queues").await, 405);
    assert_eq!(status(reqwest::Method::HEAD, "/-/healthy").await, 200);
    relay.stop().await;
}

#[tokio::test]
async fn a_rotation_to_an_expired_certificate_is_refused_and_the_old_one_keeps_serving() {
    let s = secured(&[]).await;
    let client = https_client(client_config(&s.ca, Some(&s.client)));
    let serving = served_certificate(s.relay.address, client_config(&s.ca, Some(&s.client))).await;
    let expired = s.pki.leaf_valid_for(&s.ca, "relay", 4, -1);
    // One change: the web config now names the expired pair.
    let next = s.pki.dir().join("web.yml.next");
    std::fs::write(&next, web_config(&expired, Some(&s.ca))).expect("write the new web config");
    std::fs::rename(&next, s.pki.dir().join("web.yml")).expect("replace the web config");
    eventually(
        "the refused reload to be counted",
        Duration::from_secs(20),
        || async {
            let n = metric(
                &client,
                &s.base,
                "promrelay_web_config_reloads_total{result=\"failure\"}",
            )
            .await;
            if n >= 1.0 {
                Ok(())
            } else {
                Err(format!("{n}"))
            }
        },
    )
    .await;
    let still = served_certificate(s.relay.address, client_config(&s.ca, Some(&s.client))).await;
    assert_eq!(still, serving, "the old certificate keeps serving");
    assert_eq!(
        metric(
            &client,
            &s.base,
            "promrelay_web_config_reloads_total{result=\"success\"}"
        )
        .await,
        0.0
    );
    let r = push(&client, &s.base, Some(("prometheus", "s3cret"))).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        queued_blocks(&client, &s.base).await,
        1,
        "only the good push is queued"
    );
    s.relay.stop().await;
}

#[tokio::test]
async fn a_request_head_over_max_header_bytes_gets_431() {
    let relay = start(NOWHERE, &["--http-max-header-bytes", "16KiB"]).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{}/-/healthy", relay.address))
        .header("X-Padding", "a".repeat(32 << 10))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 431);
    relay.stop().await;
}

#[tokio::test]
async fn a_keep_alive_connection_idle_past_the_idle_timeout_is_closed() {
    let relay = start(NOWHERE, &["--http-idle-timeout", "1s"]).await;
    let mut tcp = tokio::net::TcpStream::connect(relay.address)
        .await
        .expect("connect");
    tcp.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send a request");
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the idle connection stayed open");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "the request itself was answered: {answer:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the idle timeout"
    );
    relay.stop().await;
}

#[test]
fn an_expired_server_certificate_stops_start_up_naming_file_and_key() {
    let pki = Pki::new();
    let ca = pki.ca("relay-ca");
    let expired = pki.leaf_valid_for(&ca, "relay", 9, -1);
    let web = write_web_config(pki.dir(), &web_config(&expired, None));
    let err = Config::from_args([
        "promrelay",
        "--remote-write-url",
        NOWHERE,
        "--web.config.file",
        &web.display().to_string(),
    ])
    .expect_err("an expired certificate is refused");
    let text = err.to_string();
    assert!(text.starts_with(&web.display().to_string()), "{text}");
    assert!(
        text.contains("tls_server_config.cert_file") && text.contains("expired at"),
        "{text}"
    );
}
