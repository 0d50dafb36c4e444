//! Client building and bounded body reads, against real loopback sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// The TLS versions (`0x0303` is 1.2, `0x0304` is 1.3) that `client` offers in its
/// ClientHello, read by a TCP server that answers nothing and closes.
async fn offered_tls_versions(client: reqwest::Client) -> Vec<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/metrics", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut header = [0u8; 5];
        socket.read_exact(&mut header).await.unwrap();
        assert_eq!(header[0], 22, "a TLS handshake record");
        let mut hello = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
        socket.read_exact(&mut hello).await.unwrap();
        hello
    });
    let _ = client.get(url).send().await; // fails: the server never answers
    let hello = server.await.unwrap();
    client_hello_versions(&hello)
}

/// The versions of a ClientHello's supported_versions extension (TLS 1.3 clients), or its
/// legacy version field when it has none (a TLS 1.2-only client).
fn client_hello_versions(hello: &[u8]) -> Vec<u16> {
    let u16_at = |i: usize| u16::from_be_bytes([hello[i], hello[i + 1]]);
    assert_eq!(hello[0], 1, "a ClientHello");
    let legacy_version = u16_at(4);
    let mut at = 4 + 2 + 32; // handshake header, legacy version, random
    at += 1 + usize::from(hello[at]); // session id
    at += 2 + usize::from(u16_at(at)); // cipher suites
    at += 1 + usize::from(hello[at]); // compression methods
    let end = at + 2 + usize::from(u16_at(at));
    at += 2;
    while at < end {
        let (kind, len) = (u16_at(at), usize::from(u16_at(at + 2)));
        if kind == 43 {
            let list = &hello[at + 5..at + 4 + len];
            return list
                .chunks(2)
                .map(|v| u16::from_be_bytes([v[0], v[1]]))
                .collect();
        }
        at += 4 + len;
    }
    vec![legacy_version]
}

fn with_versions(min: Option<&str>, max: Option<&str>) -> ClientOptions {
    ClientOptions {
        tls: TlsOptions {
            min_version: min.map(str::to_string),
            max_version: max.map(str::to_string),
            ..TlsOptions::default()
        },
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn tls_min_and_max_version_limit_what_the_client_offers() {
    const TLS12: u16 = 0x0303;
    const TLS13: u16 = 0x0304;
    let offered = |min: Option<&str>, max: Option<&str>| {
        let client = build_client(&with_versions(min, max)).expect("client builds");
        offered_tls_versions(client)
    };
    assert_eq!(offered(None, None).await, [TLS13, TLS12], "by default");
    assert_eq!(offered(Some("TLS12"), None).await, [TLS13, TLS12]);
    // rustls has nothing older than TLS 1.2 to add.
    assert_eq!(offered(Some("TLS10"), None).await, [TLS13, TLS12]);
    assert_eq!(offered(Some("TLS13"), None).await, [TLS13]);
    assert_eq!(offered(None, Some("TLS12")).await, [TLS12]);
    assert_eq!(offered(Some("TLS12"), Some("TLS12")).await, [TLS12]);
}

#[test]
fn unknown_tls_version_is_a_typed_error() {
    let err = build_client(&with_versions(Some("SSL3"), None)).unwrap_err();
    assert!(
        matches!(err, ClientError::TlsVersion(ref v) if v == "SSL3"),
        "{err}"
    );
}

#[test]
fn unreadable_ca_file_names_the_setting_and_the_file() {
    let opts = ClientOptions {
        tls: TlsOptions {
            ca: Some(Pem::File("/nonexistent/ca.pem".into())),
            ..TlsOptions::default()
        },
        ..ClientOptions::default()
    };
    let err = build_client(&opts).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ReadPem {
                what: "ca_file",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("tls ca_file /nonexistent/ca.pem: "),
        "{err}"
    );
}

#[test]
fn credentials_header_is_sensitive_and_a_line_break_is_refused() {
    let v = sensitive_header("authorization", "Bearer tok").unwrap();
    assert_eq!(v, "Bearer tok");
    assert!(v.is_sensitive());
    let err = sensitive_header("authorization", "Bearer a\r\nInjected: 1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "value of header authorization is not valid in a header"
    );
    assert!(matches!(
        header_name("bad name"),
        Err(ClientError::HeaderName(_))
    ));
}

/// A server that answers every connection with a 400 whose chunked body never ends, counting
/// the body bytes it managed to write.
async fn endless_error_body() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/write", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&written);
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 64 << 10, "e".repeat(64 << 10));
        while socket.write_all(chunk.as_bytes()).await.is_ok() {
            counter.fetch_add(64 << 10, Ordering::SeqCst);
        }
    });
    (url, written)
}

#[tokio::test]
async fn endless_error_body_is_read_only_up_to_the_prefix() {
    let (url, written) = endless_error_body().await;
    let client = build_client(&ClientOptions::default()).unwrap();
    let resp = client.post(&url).body("x").send().await.unwrap();
    assert_eq!(resp.status(), 400);

    let prefix = tokio::time::timeout(
        Duration::from_secs(10),
        body_prefix(resp, REPORTED_BODY_BYTES),
    )
    .await
    .expect("returns without waiting for the body's end")
    .unwrap();

    assert_eq!(prefix.len(), REPORTED_BODY_BYTES);
    assert!(prefix.iter().all(|&b| b == b'e'));
    // The server stops being read: what it could write is bounded by socket buffers, far below
    // what an unbounded read would have taken in by now.
    let stalled = written.load(Ordering::SeqCst);
    assert!(stalled < 64 << 20, "{stalled} bytes written");
}

#[tokio::test]
async fn short_error_body_is_read_whole() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/write", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 14\r\n\r\nout of order\r\n";
        let _ = socket.write_all(answer.as_bytes()).await;
    });
    let client = build_client(&ClientOptions::default()).unwrap();
    let resp = client.post(&url).body("x").send().await.unwrap();
    let prefix = body_prefix(resp, REPORTED_BODY_BYTES).await.unwrap();
    assert_eq!(prefix, b"out of order\r\n");
}
