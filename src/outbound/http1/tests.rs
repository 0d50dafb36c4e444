//! The client against canned servers on real loopback sockets.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What the canned server does with one request on a connection.
#[derive(Clone)]
enum Reply {
    /// Writes these bytes, keeps the connection open for the next request.
    Send(Vec<u8>),
    /// Writes these bytes and closes the connection.
    SendAndClose(Vec<u8>),
    /// Writes these bytes and never anything more (holds the connection open).
    SendAndStall(Vec<u8>),
    /// Writes each piece with its own write, a moment apart (so they arrive in separate reads).
    SendInPieces(Vec<Vec<u8>>),
}

/// An in-process server: connection `i` answers its requests with `script[i]`, in order,
/// then closes. Counts accepted connections and keeps every request it read.
struct Canned {
    url: Url,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Canned {
    async fn start(script: Vec<Vec<Reply>>) -> Canned {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!(
            "http://{}/metrics?x=1",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (acc, reqs) = (Arc::clone(&accepted), Arc::clone(&requests));
        tokio::spawn(async move {
            for replies in script {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                acc.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(conn, replies, Arc::clone(&reqs)));
            }
        });
        Canned {
            url,
            accepted,
            requests,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn client(&self) -> Client {
        client_for(&self.url, Duration::from_secs(5), 0)
    }
}

fn client_for(url: &Url, timeout: Duration, limit: u64) -> Client {
    let headers: [(&str, &[u8]); 2] = [("Accept", b"text/plain"), ("Authorization", b"Bearer t")];
    Client::new(url, &headers, timeout, limit).unwrap()
}

async fn serve(mut conn: TcpStream, replies: Vec<Reply>, requests: Arc<Mutex<Vec<Vec<u8>>>>) {
    for reply in replies {
        let mut req = Vec::new();
        while memchr::memmem::find(&req, b"\r\n\r\n").is_none() {
            match conn.read_buf(&mut req).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        requests.lock().unwrap().push(req);
        match reply {
            Reply::Send(bytes) => {
                let _ = conn.write_all(&bytes).await;
            }
            Reply::SendAndClose(bytes) => {
                let _ = conn.write_all(&bytes).await;
                return;
            }
            Reply::SendAndStall(bytes) => {
                let _ = conn.write_all(&bytes).await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Reply::SendInPieces(pieces) => {
                for piece in pieces {
                    let _ = conn.write_all(&piece).await;
                    let _ = conn.flush().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

fn ok(head: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\n{head}\r\n").into_bytes();
    r.extend_from_slice(body);
    r
}

fn with_length(body: &str) -> Vec<u8> {
    ok(
        &format!(
            "Content-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n",
            body.len()
        ),
        body.as_bytes(),
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn fetch_one(reply: Reply) -> (Result<Response, Error>, Vec<u8>) {
    let server = Canned::start(vec![vec![reply]]).await;
    let mut body = Vec::new();
    let r = server.client().fetch(&mut body).await;
    (r, body)
}

const EXPOSITION: &str = "up 1\nnode_load1 0.5\n";

#[tokio::test]
async fn request_is_one_get_with_host_agent_encoding_and_the_given_headers() {
    let server = Canned::start(vec![vec![Reply::Send(with_length(EXPOSITION))]]).await;
    server.client().fetch(&mut Vec::new()).await.unwrap();
    let req = String::from_utf8(server.requests.lock().unwrap()[0].clone()).unwrap();
    let host = server.url.host_str().unwrap();
    let port = server.url.port().unwrap();
    assert_eq!(
        req,
        format!(
            "GET /metrics?x=1 HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\n\
             Accept-Encoding: gzip\r\nAccept: text/plain\r\nAuthorization: Bearer t\r\n\r\n"
        )
    );
}

#[tokio::test]
async fn content_length_body_is_read_whole_with_its_content_type() {
    let (r, body) = fetch_one(Reply::Send(with_length(EXPOSITION))).await;
    assert_eq!(
        r.unwrap(),
        Response::Body {
            content_type: Some("text/plain; version=0.0.4".to_owned())
        }
    );
    assert_eq!(body, EXPOSITION.as_bytes());
}

#[tokio::test]
async fn chunked_body_is_decoded_ignoring_extensions_and_trailers() {
    let raw = ok(
        "Transfer-Encoding: chunked\r\n",
        b"5\r\nup 1\n\r\n3;name=value\r\nnod\r\nA ; x\r\ne_load1 0.\r\n2\r\n5\n\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    let server = Canned::start(vec![vec![Reply::Send(raw.clone()), Reply::Send(raw)]]).await;
    let mut client = server.client();
    for _ in 0..2 {
        let mut body = Vec::new();
        client.fetch(&mut body).await.unwrap();
        assert_eq!(body, EXPOSITION.as_bytes());
    }
    // Read exactly to its end: the connection carried the second answer.
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn gzip_body_is_inflated() {
    let (r, body) = fetch_one(Reply::Send(ok(
        &format!(
            "Content-Encoding: gzip\r\nContent-Length: {}\r\n",
            gzip(EXPOSITION.as_bytes()).len()
        ),
        &gzip(EXPOSITION.as_bytes()),
    )))
    .await;
    r.unwrap();
    assert_eq!(body, EXPOSITION.as_bytes());
}

#[tokio::test]
async fn body_without_length_is_read_to_eof_and_the_connection_dropped() {
    let server = Canned::start(vec![
        vec![Reply::SendAndClose(ok("", EXPOSITION.as_bytes()))],
        vec![Reply::SendAndClose(ok("", EXPOSITION.as_bytes()))],
    ])
    .await;
    let mut client = server.client();
    for _ in 0..2 {
        let mut body = Vec::new();
        client.fetch(&mut body).await.unwrap();
        assert_eq!(body, EXPOSITION.as_bytes());
    }
    assert_eq!(server.accepted(), 2);
}

const EARLY_HINTS: &[u8] =
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n";
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn after(interim: &[&[u8]], answer: Vec<u8>) -> Vec<u8> {
    let mut out = interim.concat();
    out.extend(answer);
    out
}

// Before: the 103's status line was taken as the final answer, so every scrape of a target
// sending Early Hints failed.
#[tokio::test]
async fn early_hints_before_the_answer_are_skipped() {
    let answer = after(&[EARLY_HINTS], with_length(EXPOSITION));
    let server = Canned::start(vec![vec![Reply::Send(answer.clone()), Reply::Send(answer)]]).await;
    let mut client = server.client();
    for _ in 0..2 {
        let mut body = Vec::new();
        let r = client.fetch(&mut body).await.unwrap();
        assert_eq!(
            r,
            Response::Body {
                content_type: Some("text/plain; version=0.0.4".to_owned())
            }
        );
        assert_eq!(body, EXPOSITION.as_bytes());
    }
    assert_eq!(
        server.accepted(),
        1,
        "the connection outlives interim answers"
    );
}

#[tokio::test]
async fn continue_arriving_on_its_own_before_the_answer_is_skipped() {
    let (r, body) = fetch_one(Reply::SendInPieces(vec![
        CONTINUE.to_vec(),
        with_length(EXPOSITION),
    ]))
    .await;
    r.unwrap();
    assert_eq!(body, EXPOSITION.as_bytes());
}

#[tokio::test]
async fn several_interim_answers_before_a_chunked_answer_are_skipped() {
    let chunked_answer = ok(
        "Transfer-Encoding: chunked\r\n",
        b"5\r\nup 1\n\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    let (r, body) = fetch_one(Reply::SendInPieces(vec![
        CONTINUE.to_vec(),
        after(&[EARLY_HINTS, EARLY_HINTS], chunked_answer),
    ]))
    .await;
    r.unwrap();
    assert_eq!(body, b"up 1\n");
}

#[tokio::test]
async fn connection_closed_after_an_interim_answer_is_a_cut_answer_not_retried() {
    // The first answer leaves a kept connection; on it the server says 103, then closes. That
    // is not an idle connection closed before the request: it answered, so no retry.
    let server = Canned::start(vec![
        vec![
            Reply::Send(with_length(EXPOSITION)),
            Reply::SendAndClose(EARLY_HINTS.to_vec()),
        ],
        vec![Reply::Send(with_length(EXPOSITION))],
    ])
    .await;
    let mut client = server.client();
    client.fetch(&mut Vec::new()).await.unwrap();
    let err = client.fetch(&mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, Error::Truncated), "{err}");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn switching_protocols_is_an_error() {
    let (r, _) = fetch_one(Reply::SendAndClose(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec(),
    ))
    .await;
    let err = r.unwrap_err().to_string();
    assert!(err.contains("101 Switching Protocols"), "{err}");
}

#[tokio::test]
async fn connection_closed_mid_body_is_an_error_never_a_shorter_body() {
    let packed = gzip(EXPOSITION.as_bytes());
    let cut_gzip = &packed[..packed.len() / 2];
    for (name, raw) in [
        (
            "Content-Length",
            ok("Content-Length: 40\r\n", b"up 1\nnode_load1 0.5\n"),
        ),
        (
            "chunked, inside a chunk",
            ok("Transfer-Encoding: chunked\r\n", b"20\r\nup 1\nnode_"),
        ),
        (
            "chunked, before the last chunk",
            ok("Transfer-Encoding: chunked\r\n", b"5\r\nup 1\n\r\n"),
        ),
        (
            "chunked, in the trailers",
            ok(
                "Transfer-Encoding: chunked\r\n",
                b"5\r\nup 1\n\r\n0\r\nX-T: 1\r\n",
            ),
        ),
        (
            "gzip with Content-Length",
            ok(
                &format!(
                    "Content-Encoding: gzip\r\nContent-Length: {}\r\n",
                    packed.len()
                ),
                cut_gzip,
            ),
        ),
        (
            "gzip until close",
            ok("Content-Encoding: gzip\r\n", cut_gzip),
        ),
    ] {
        let (r, _) = fetch_one(Reply::SendAndClose(raw)).await;
        let err = r.expect_err(name);
        assert!(
            matches!(err, Error::Truncated | Error::Gzip(_)),
            "{name}: {err}"
        );
    }
}

#[tokio::test]
async fn keep_alive_connection_is_reused() {
    let server = Canned::start(vec![vec![
        Reply::Send(with_length(EXPOSITION)),
        Reply::Send(with_length("up 2\n")),
    ]])
    .await;
    let mut client = server.client();
    let mut body = Vec::new();
    client.fetch(&mut body).await.unwrap();
    client.fetch(&mut body).await.unwrap();
    assert_eq!(body, b"up 2\n");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn idle_connection_closed_by_the_server_is_retried_on_a_new_one() {
    let server = Canned::start(vec![
        vec![Reply::SendAndClose(with_length(EXPOSITION))],
        vec![Reply::Send(with_length("up 2\n"))],
    ])
    .await;
    let mut client = server.client();
    let mut body = Vec::new();
    client.fetch(&mut body).await.unwrap();
    // The client kept the connection (HTTP/1.1, no `Connection: close`); the server closed it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.fetch(&mut body).await.unwrap();
    assert_eq!(body, b"up 2\n");
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn connection_close_from_the_server_is_honoured() {
    let close = ok(
        &format!(
            "Connection: close\r\nContent-Length: {}\r\n",
            EXPOSITION.len()
        ),
        EXPOSITION.as_bytes(),
    );
    // The server would answer again on the same connection: the client must not ask it to.
    let server = Canned::start(vec![
        vec![Reply::Send(close.clone()), Reply::Send(close.clone())],
        vec![Reply::Send(close)],
    ])
    .await;
    let mut client = server.client();
    client.fetch(&mut Vec::new()).await.unwrap();
    client.fetch(&mut Vec::new()).await.unwrap();
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn http_1_0_answer_closes_unless_it_says_keep_alive() {
    let answer = |extra: &str| {
        format!("HTTP/1.0 200 OK\r\n{extra}Content-Length: 5\r\n\r\nup 1\n").into_bytes()
    };
    let server = Canned::start(vec![
        vec![Reply::Send(answer("")), Reply::Send(answer(""))],
        vec![
            Reply::Send(answer("Connection: keep-alive\r\n")),
            Reply::Send(answer("")),
        ],
    ])
    .await;
    let mut client = server.client();
    for _ in 0..3 {
        client.fetch(&mut Vec::new()).await.unwrap();
    }
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn not_found_is_an_error_with_the_status_text() {
    let (r, _) = fetch_one(Reply::Send(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_vec(),
    ))
    .await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "server returned HTTP status 404 Not Found"
    );
}

#[tokio::test]
async fn redirect_is_handed_back_not_followed() {
    let (r, _) = fetch_one(Reply::Send(
        b"HTTP/1.1 301 Moved Permanently\r\nLocation: /other\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ))
    .await;
    assert_eq!(
        r.unwrap(),
        Response::Redirect(StatusCode::MOVED_PERMANENTLY)
    );
}

#[tokio::test]
async fn body_over_the_limit_is_refused() {
    let big = "x".repeat(1000);
    for reply in [
        with_length(&big),
        ok(
            "Transfer-Encoding: chunked\r\n",
            format!("3e8\r\n{big}\r\n0\r\n\r\n").as_bytes(),
        ),
        ok("", big.as_bytes()),
    ] {
        let server = Canned::start(vec![vec![Reply::SendAndClose(reply)]]).await;
        let mut client = client_for(&server.url, Duration::from_secs(5), 999);
        let err = client.fetch(&mut Vec::new()).await.unwrap_err();
        assert_eq!(err.to_string(), "body size limit exceeded (999 bytes)");
    }
}

#[tokio::test]
async fn gzip_body_inflating_over_the_limit_is_refused() {
    let packed = gzip("x".repeat(100_000).as_bytes());
    assert!(packed.len() < 1000);
    let server = Canned::start(vec![vec![Reply::Send(ok(
        &format!(
            "Content-Encoding: gzip\r\nContent-Length: {}\r\n",
            packed.len()
        ),
        &packed,
    ))]])
    .await;
    let mut client = client_for(&server.url, Duration::from_secs(5), 1000);
    let err = client.fetch(&mut Vec::new()).await.unwrap_err();
    assert_eq!(err.to_string(), "body size limit exceeded (1000 bytes)");
}

#[tokio::test]
async fn slow_server_times_out() {
    // The head arrives, the body never does.
    let server = Canned::start(vec![vec![Reply::SendAndStall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nup".to_vec(),
    )]])
    .await;
    let mut client = client_for(&server.url, Duration::from_millis(200), 0);
    let started = std::time::Instant::now();
    let err = client.fetch(&mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn malformed_heads_are_errors() {
    let many_headers = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X-A: 1\r\n".repeat(101));
    let long_head = format!("HTTP/1.1 200 OK\r\nX-A: {}\r\n\r\n", "a".repeat(70_000));
    for (raw, want) in [
        ("HTTP/1.1 abc OK\r\n\r\n", "malformed response head"),
        ("\u{0}\u{1}garbage\r\n\r\n", "malformed response head"),
        ("SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed response head"),
        (&many_headers, "more than 100 headers"),
        (&long_head, "longer than 64 KiB"),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nup 1\n",
            "invalid Content-Length",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "invalid Content-Length",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "unsupported Transfer-Encoding",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 0\r\n\r\n",
            "unsupported Content-Encoding",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "malformed chunked body",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nup",
            "before the response ended",
        ),
        ("HTTP/1.1 200", "before the response ended"),
    ] {
        let (r, _) = fetch_one(Reply::SendAndClose(raw.as_bytes().to_vec())).await;
        let err = r.unwrap_err().to_string();
        assert!(err.contains(want), "{raw:?}: {err}");
    }
}

#[tokio::test]
async fn no_content_answer_is_an_empty_body_on_a_kept_connection() {
    let server = Canned::start(vec![vec![
        Reply::Send(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        Reply::Send(with_length(EXPOSITION)),
    ]])
    .await;
    let mut client = server.client();
    let mut body = b"old".to_vec();
    client.fetch(&mut body).await.unwrap();
    assert!(body.is_empty());
    client.fetch(&mut body).await.unwrap();
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn refused_connection_is_an_error_naming_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = Url::parse(&format!("http://{addr}/metrics")).unwrap();
    let err = client_for(&url, Duration::from_secs(5), 0)
        .fetch(&mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("connecting to {addr}: ")),
        "{err}"
    );
}

#[test]
fn only_plain_http_urls_get_a_client() {
    let headers: [(&str, &[u8]); 0] = [];
    let new = |u: &str| Client::new(&Url::parse(u).unwrap(), &headers, Duration::from_secs(1), 0);
    assert!(new("http://localhost:9100/metrics").is_some());
    assert!(new("http://[::1]:9100/metrics").is_some());
    assert!(new("https://localhost:9100/metrics").is_none());
    assert!(new("http://user:pw@localhost:9100/metrics").is_none());
    let bad: [(&str, &[u8]); 1] = [("X", b"a\r\nInjected: 1")];
    let url = Url::parse("http://localhost:9100/metrics").unwrap();
    assert!(Client::new(&url, &bad, Duration::from_secs(1), 0).is_none());
}

/// `data` as a chunked body cut into chunks of the sizes in `cuts` (cycled), with extensions
/// on some chunk-size lines and a trailer.
fn chunked(data: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = cuts[i % cuts.len()].clamp(1, rest.len());
        let ext = if i % 3 == 1 { ";ext=\"v\"" } else { "" };
        out.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
    out
}

proptest! {
    #[test]
    fn dechunking_any_body_read_in_any_pieces_gives_the_body(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(1usize..300, 1..8),
        reads in proptest::collection::vec(1usize..500, 1..8),
    ) {
        let raw = chunked(&data, &cuts);
        let mut buf = Vec::new();
        let mut chunks = Dechunker::default();
        let mut fed = 0;
        let mut i = 0;
        loop {
            let after = chunks.decode(&mut buf, 0).unwrap();
            if chunks.done() {
                prop_assert_eq!(after, Some(0));
                break;
            }
            prop_assert!(fed < raw.len(), "wants more after the whole body");
            let n = reads[i % reads.len()].min(raw.len() - fed);
            buf.extend_from_slice(&raw[fed..fed + n]);
            fed += n;
            i += 1;
        }
        prop_assert_eq!(buf, data);
    }

    #[test]
    fn dechunking_arbitrary_bytes_never_panics(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..8),
    ) {
        let mut buf = Vec::new();
        let mut chunks = Dechunker::default();
        for piece in pieces {
            buf.extend_from_slice(&piece);
            if chunks.decode(&mut buf, 100).is_err() || chunks.done() {
                break;
            }
        }
    }

    #[test]
    fn parsing_arbitrary_heads_never_panics(head in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = resp.parse(&head) {
            let _ = head_of(&resp, len);
        }
    }
}
