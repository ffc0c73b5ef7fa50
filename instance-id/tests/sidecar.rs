//! The real `kip-instance-id` binary in front of a real HTTP server, driven by a real client,
//! all on loopback.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};

use support::*;

fn request(method: &str, uri: &str, body: TestBody) -> Request<TestBody> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "app.example")
        .body(body)
        .unwrap()
}

/// A body of `len` bytes that is not a repeated byte, so a reordered or dropped chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

async fn ok_upstream() -> u16 {
    upstream(
        |req: Request<Incoming>| async move { Response::new(full(format!("ok {}", req.uri()))) },
    )
    .await
    .port()
}

async fn get_ok(sidecar: &Sidecar, path: &str) -> Response<Bytes> {
    let mut client = connect(sidecar.addr).await;
    let resp = bounded(
        "a request",
        client.send_request(request("GET", path, empty())),
    )
    .await
    .unwrap();
    let (parts, body) = resp.into_parts();
    let body = bounded("a body", body.collect()).await.unwrap().to_bytes();
    Response::from_parts(parts, body)
}

/// Reads an HTTP head byte by byte, so nothing after the blank line is consumed.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        let n = bounded("a response head", stream.read(&mut byte))
            .await
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed inside the head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_is_the_first_8_hex_of_sha256_of_the_pod_name() {
    // FIPS 180-2 B.1: SHA-256("abc") starts ba7816bf; a check on the test's own helper.
    assert_eq!(expected_id("abc"), "ba7816bf");
    let port = ok_upstream().await;
    for pod in ["abc", "web-7d9f8b6c5-x2x9q"] {
        let sidecar = Sidecar::start(port, pod);
        let resp = get_ok(&sidecar, "/").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-instance-id"], expected_id(pod).as_str());
        assert!(
            sidecar.start_line.contains(&expected_id(pod)),
            "{}",
            sidecar.start_line
        );
    }
    // Without POD_NAME (no Downward API), the hostname, which is the pod name too.
    let mut cmd = command();
    cmd.env("HOSTNAME", "web-from-hostname");
    let sidecar = Sidecar::spawn(cmd, port);
    let resp = get_ok(&sidecar, "/").await;
    assert_eq!(
        resp.headers()["x-instance-id"],
        expected_id("web-from-hostname").as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_pass_unchanged_but_for_the_header_and_hop_by_hop() {
    let (seen_tx, mut seen) = mpsc::channel(4);
    let response_body = Bytes::from(pattern(3 << 20));
    let up = {
        let response_body = response_body.clone();
        upstream(move |req: Request<Incoming>| {
            let (seen_tx, response_body) = (seen_tx.clone(), response_body.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                seen_tx.send((parts, body)).await.unwrap();
                Response::builder()
                    .status(201)
                    .header("x-app", "yes")
                    .header("set-cookie", "a=1")
                    .header("set-cookie", "b=2")
                    .header("content-type", "application/octet-stream")
                    .header("x-instance-id", "from-the-app")
                    .header("connection", "x-app-hop")
                    .header("x-app-hop", "for the sidecar only")
                    .body(full(response_body))
                    .unwrap()
            }
        })
        .await
    };
    let sidecar = Sidecar::start(up.port(), "web-1");
    let mut client = connect(sidecar.addr).await;
    let body = Bytes::from(pattern(8 << 20));

    for round in 0..2 {
        // The same client connection twice: keep-alive on the client's side.
        let req = Request::builder()
            .method("POST")
            .uri("/upload/a%20b/?x=1&y=two&x=3")
            .header("host", "app.example:8080")
            .header("x-custom", "v1")
            .header("x-custom", "v2")
            .header("content-type", "application/x-test")
            .header("user-agent", "sidecar-test/1")
            .header("connection", "keep-alive, x-client-hop")
            .header("x-client-hop", "for the sidecar only")
            .body(full(body.clone()))
            .unwrap();
        bounded("the connection to be ready again", client.ready())
            .await
            .unwrap();
        let resp = bounded("the POST", client.send_request(req)).await.unwrap();

        let (parts, got) = bounded("the upstream's view", seen.recv()).await.unwrap();
        assert_eq!(parts.method, "POST");
        assert_eq!(parts.uri, "/upload/a%20b/?x=1&y=two&x=3");
        assert_eq!(parts.headers["host"], "app.example:8080");
        let custom: Vec<_> = parts.headers.get_all("x-custom").iter().collect();
        assert_eq!(custom, ["v1", "v2"]);
        assert_eq!(parts.headers["content-type"], "application/x-test");
        assert_eq!(parts.headers["user-agent"], "sidecar-test/1");
        assert_eq!(
            parts.headers["content-length"],
            (8 << 20).to_string().as_str()
        );
        assert!(
            parts.headers.get("x-client-hop").is_none(),
            "round {round}: {:?}",
            parts.headers
        );
        assert!(
            got == body,
            "round {round}: the request body changed ({} bytes arrived)",
            got.len()
        );

        assert_eq!(resp.status(), StatusCode::CREATED);
        let headers = resp.headers().clone();
        assert_eq!(headers["x-app"], "yes");
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(headers["content-type"], "application/octet-stream");
        let ids: Vec<_> = headers.get_all("x-instance-id").iter().collect();
        assert_eq!(
            ids,
            [expected_id("web-1").as_str()],
            "one value, the sidecar's"
        );
        assert!(headers.get("x-app-hop").is_none(), "{headers:?}");
        let got = bounded("the response body", resp.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        assert!(
            got == response_body,
            "the response body changed ({} bytes arrived)",
            got.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_arrives_chunk_by_chunk() {
    // The upstream hands the test the sender of each response body; the second chunk is
    // only written once the client has read the first, so a sidecar that buffered the
    // response would never deliver the first and the test would time out.
    let (senders_tx, mut senders) = mpsc::channel(1);
    let up = upstream(move |_req: Request<Incoming>| {
        let senders_tx = senders_tx.clone();
        async move {
            let (tx, body) = channel_body();
            senders_tx.send(tx).await.unwrap();
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .unwrap()
        }
    })
    .await;
    let sidecar = Sidecar::start(up.port(), "web-1");
    let mut client = connect(sidecar.addr).await;
    let resp = client.send_request(request("GET", "/events", empty()));
    let chunks = bounded("the body's sender", senders.recv()).await.unwrap();
    chunks
        .send(Bytes::from_static(b"data: one\n\n"))
        .await
        .unwrap();
    let resp = bounded("the response head", resp).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(
        resp.headers()["x-instance-id"],
        expected_id("web-1").as_str()
    );
    let mut body = resp.into_body();
    assert_eq!(next_chunk(&mut body).await.unwrap(), "data: one\n\n");
    chunks
        .send(Bytes::from_static(b"data: two\n\n"))
        .await
        .unwrap();
    assert_eq!(next_chunk(&mut body).await.unwrap(), "data: two\n\n");
    drop(chunks);
    assert_eq!(next_chunk(&mut body).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_request_body_arrives_chunk_by_chunk() {
    // The upstream reports the first chunk of the request body as soon as it has it; the
    // client sends the second only after that report.
    let (first_tx, mut first) = mpsc::channel(1);
    let up = upstream(move |req: Request<Incoming>| {
        let first_tx = first_tx.clone();
        async move {
            let mut body = req.into_body();
            let one = next_chunk(&mut body).await.unwrap();
            first_tx.send(one.clone()).await.unwrap();
            let rest = body.collect().await.unwrap().to_bytes();
            Response::new(full([one, rest].concat()))
        }
    })
    .await;
    let sidecar = Sidecar::start(up.port(), "web-1");
    let mut client = connect(sidecar.addr).await;
    let (chunks, body) = channel_body();
    let resp = tokio::spawn(client.send_request(request("POST", "/upload", body)));
    chunks.send(Bytes::from_static(b"part one;")).await.unwrap();
    assert_eq!(
        bounded("the first chunk upstream", first.recv())
            .await
            .unwrap(),
        "part one;"
    );
    chunks.send(Bytes::from_static(b"part two")).await.unwrap();
    drop(chunks);
    let resp = bounded("the response", resp).await.unwrap().unwrap();
    let got = bounded("the body", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(got, "part one;part two");
}

/// An upstream that accepts WebSocket handshakes (checking the headers arrived), greets the
/// client after the 101 and then echoes every read back with an `echo:` prefix until EOF.
async fn websocket_upstream() -> u16 {
    upstream(|mut req: Request<Incoming>| async move {
        let headers = req.headers();
        let asked = headers.get("upgrade").is_some_and(|v| v == "websocket")
            && headers
                .get("connection")
                .is_some_and(|v| v.to_str().unwrap().to_ascii_lowercase().contains("upgrade"))
            && headers
                .get("sec-websocket-key")
                .is_some_and(|v| v == "dGhlIHNhbXBsZSBub25jZQ==");
        if !asked {
            return Response::builder()
                .status(400)
                .body(full(format!("{headers:?}")))
                .unwrap();
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(on_upgrade.await.unwrap());
            io.write_all(b"hello from the app\n").await.unwrap();
            let mut buf = [0u8; 1024];
            loop {
                let n = io.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                let reply = [b"echo:".as_slice(), &buf[..n]].concat();
                io.write_all(&reply).await.unwrap();
            }
            io.shutdown().await.unwrap();
        });
        Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(empty())
            .unwrap()
    })
    .await
    .port()
}

/// Opens a connection through the sidecar and completes the WebSocket handshake; returns the
/// connection (past the 101) and the 101's head, lowercased.
async fn websocket(sidecar: &Sidecar) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(sidecar.addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    let mut buf = vec![0u8; 19];
    bounded("the app's greeting", stream.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(buf, b"hello from the app\n");
    (stream, head)
}

async fn echo(stream: &mut TcpStream, text: &str) {
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 5 + text.len()];
    bounded("the echo", stream.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&buf), format!("echo:{text}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_passes_and_bytes_flow_both_ways() {
    let sidecar = Sidecar::start(websocket_upstream().await, "web-1");
    // The greeting (app → client) is read inside `websocket`.
    let (mut stream, head) = websocket(&sidecar).await;
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(
        head.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\nx-instance-id: {}\r\n", expected_id("web-1"))),
        "{head}"
    );
    echo(&mut stream, "ping").await;
    echo(&mut stream, "and again").await;
    // A half-close travels through too: the app sees the end and closes its side.
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    bounded("the app's close", stream.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_an_open_websocket() {
    let mut sidecar = Sidecar::start(websocket_upstream().await, "web-1");
    let (mut stream, _) = websocket(&sidecar).await;
    sidecar.terminate();
    bounded("the listener to close", async {
        while TcpStream::connect(sidecar.addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // Still bridged after SIGTERM, and the sidecar stays until the connection ends.
    echo(&mut stream, "after SIGTERM").await;
    sidecar.assert_running();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    bounded("the app's close", stream.read_to_end(&mut rest))
        .await
        .unwrap();
    let (code, stderr) = tokio::task::block_in_place(|| sidecar.wait_exit());
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let up = upstream(|req: Request<Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(format!("got {} bytes", body.len())))
    })
    .await;
    let sidecar = Sidecar::start(up.port(), "web-1");
    let mut stream = TcpStream::connect(sidecar.addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    // The client waits for the interim answer before sending the body, as curl does.
    let interim = read_head(&mut stream).await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim}"
    );
    stream.write_all(b"12345").await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let mut body = vec![0u8; "got 5 bytes".len()];
    bounded("the body", stream.read_exact(&mut body))
        .await
        .unwrap();
    assert_eq!(body, b"got 5 bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_a_502_with_the_header() {
    let mut sidecar = Sidecar::start(closed_port(), "web-1");
    for _ in 0..2 {
        let resp = get_ok(&sidecar, "/").await;
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            resp.headers()["x-instance-id"],
            expected_id("web-1").as_str()
        );
        assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(resp.body(), "the app did not answer\n");
    }
    sidecar.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_listening_on_ipv6_loopback_only_is_reached() {
    // As an app told to listen on "localhost" may (Node resolves it to ::1).
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        eprintln!("no IPv6 loopback here: nothing to test");
        return;
    };
    let up = upstream_on(listener, |_req: Request<Incoming>| async {
        Response::new(full("from ::1"))
    });
    let sidecar = Sidecar::start(up.port(), "web-1");
    for _ in 0..2 {
        let resp = get_ok(&sidecar, "/").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.body(), "from ::1");
    }
}

/// A raw upstream that answers its n-th connection with `scripts[n]`, then closes it.
async fn scripted_upstream(scripts: Vec<&'static [u8]>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for script in scripts {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            stream.write_all(script).await.unwrap();
            // Dropping the stream closes the connection mid-response.
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_mid_response_is_an_error_for_the_client_not_a_hang() {
    let port = scripted_upstream(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly a little",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfine",
    ])
    .await;
    let mut cmd = command();
    cmd.env("POD_NAME", "web-1").arg("--log-errors");
    let mut sidecar = Sidecar::spawn(cmd, port);
    for (case, first) in [("content-length", "only a little"), ("chunked", "hello")] {
        let mut client = connect(sidecar.addr).await;
        let resp = bounded(
            "the head",
            client.send_request(request("GET", "/", empty())),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{case}");
        let mut body = resp.into_body();
        let mut got = Vec::new();
        let err = loop {
            match bounded("the cut body", body.frame()).await {
                Some(Ok(frame)) => got.extend_from_slice(&frame.into_data().unwrap_or_default()),
                Some(Err(err)) => break err,
                None => panic!(
                    "{case}: the body ended cleanly after {got:?}; the client cannot tell it was cut"
                ),
            }
        };
        assert_eq!(String::from_utf8_lossy(&got), first, "{case}: {err}");
    }
    let resp = get_ok(&sidecar, "/").await;
    assert_eq!(resp.body(), "fine");
    sidecar.assert_running();
    // With --log-errors, the operator hears of both: they are the app's doing.
    sidecar.terminate();
    let (code, stderr) = tokio::task::block_in_place(|| sidecar.wait_exit());
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stderr.matches("the app's response was cut short").count(),
        2,
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cancels_are_silent_and_harmless() {
    let chunks: Arc<Mutex<Vec<mpsc::Sender<Bytes>>>> = Arc::default();
    let up = {
        let chunks = chunks.clone();
        upstream(move |req: Request<Incoming>| {
            let chunks = chunks.clone();
            async move {
                match req.uri().path() {
                    "/stream" => {
                        let (tx, body) = channel_body();
                        tx.send(Bytes::from_static(b"first")).await.unwrap();
                        chunks.lock().await.push(tx);
                        Response::new(body)
                    }
                    "/upload" => {
                        let got = req.into_body().collect().await.map(|b| b.to_bytes().len());
                        Response::new(full(format!("{got:?}")))
                    }
                    _ => Response::new(full("ok")),
                }
            }
        })
        .await
    };
    // With error logging on, to show a cancel is not taken for an error.
    let mut cmd = command();
    cmd.env("POD_NAME", "web-1").arg("--log-errors");
    let mut sidecar = Sidecar::spawn(cmd, up.port());

    // Mid-response: the client reads the head and the first chunk, then hangs up.
    let mut stream = TcpStream::connect(sidecar.addr).await.unwrap();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(stream);
    // Mid-request: a body shorter than announced, then a hang-up.
    let mut stream = TcpStream::connect(sidecar.addr).await.unwrap();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nonly a little",
        )
        .await
        .unwrap();
    drop(stream);
    // Before any answer: a hang-up while the app is still thinking.
    let mut stream = TcpStream::connect(sidecar.addr).await.unwrap();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    drop(stream);

    let resp = get_ok(&sidecar, "/next").await;
    assert_eq!(resp.body(), "ok");
    // The app's side of the cancelled stream is closed too, so its writes fail rather than
    // pile up: the sender sees the body dropped.
    let first = chunks.lock().await.remove(0);
    bounded("the app's stream to be closed", first.closed()).await;
    sidecar.assert_running();
    sidecar.terminate();
    let (code, stderr) = sidecar.wait_exit();
    assert_eq!(code, Some(0));
    assert_eq!(stderr, "", "client cancels are not errors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests() {
    let port = ok_upstream().await;
    let sidecar = Sidecar::start(port, "web-1");
    let addr = sidecar.addr;
    let mut tasks = Vec::new();
    for conn in 0..32 {
        tasks.push(tokio::spawn(async move {
            let mut client = connect(addr).await;
            for n in 0..25 {
                let path = format!("/c{conn}/r{n}");
                client.ready().await.unwrap();
                let resp = client
                    .send_request(request("GET", &path, empty()))
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(
                    resp.headers()["x-instance-id"],
                    expected_id("web-1").as_str()
                );
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, format!("ok {path}"));
            }
        }));
    }
    for task in tasks {
        bounded("800 requests on 32 connections", task)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_response_finish_and_refuses_new_connections() {
    let (senders_tx, mut senders) = mpsc::channel(1);
    let up = upstream(move |_req: Request<Incoming>| {
        let senders_tx = senders_tx.clone();
        async move {
            let (tx, body) = channel_body();
            senders_tx.send(tx).await.unwrap();
            Response::new(body)
        }
    })
    .await;
    let mut sidecar = Sidecar::start(up.port(), "web-1");
    let mut client = connect(sidecar.addr).await;
    let resp = client.send_request(request("GET", "/long", empty()));
    let chunks = bounded("the body's sender", senders.recv()).await.unwrap();
    chunks.send(Bytes::from_static(b"before")).await.unwrap();
    let mut body = bounded("the head", resp).await.unwrap().into_body();
    assert_eq!(next_chunk(&mut body).await.unwrap(), "before");

    sidecar.terminate();
    bounded("the listener to close", async {
        while TcpStream::connect(sidecar.addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    sidecar.assert_running();
    chunks
        .send(Bytes::from_static(b"after SIGTERM"))
        .await
        .unwrap();
    assert_eq!(next_chunk(&mut body).await.unwrap(), "after SIGTERM");
    drop(chunks);
    assert_eq!(next_chunk(&mut body).await, None);
    let (code, stderr) = tokio::task::block_in_place(|| sidecar.wait_exit());
    assert_eq!(code, Some(0), "{stderr}");
}
