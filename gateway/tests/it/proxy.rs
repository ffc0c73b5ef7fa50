//! Requests through the gateway for every subdomain form, with Host preserved, forwarding
//! headers set, bodies streamed, HTTP/2 clients and WebSocket upgrades.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;

fn seen_by(reply: &Reply) -> (String, serde_json::Value) {
    assert_eq!(reply.status, 200, "{reply:?}");
    let json = reply.json();
    (
        json["backend"].as_str().unwrap().to_owned(),
        json["headers"].clone(),
    )
}

#[test]
fn every_subdomain_form_reaches_its_cluster_with_the_host_preserved() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    gw.register("shop", b.addr);
    gw.register("my-shop", a.addr);

    for (host, backend) in [
        ("127-0-0-1.kipper.test", "a"),
        ("console-127-0-0-1.kipper.test", "a"),
        ("hello-127-0-0-1.kipper.test", "a"),
        ("hello-test-127-0-0-1.kipper.test", "a"),
        ("HELLO-Test-127-0-0-1.Kipper.Test.:8080", "a"),
        ("xn--bcher-127-0-0-1-m6b.kipper.test", "a"),
        ("shop.kipper.test", "b"),
        ("api-shop.kipper.test", "b"),
        ("api-test-shop.kipper.test", "b"),
        ("api-my-shop.kipper.test", "a"),
    ] {
        let reply = gw.get(host, "/some/path?q=1");
        let (name, headers) = seen_by(&reply);
        assert_eq!(name, backend, "{host}");
        assert_eq!(headers["host"], host, "Host is forwarded unchanged");
        assert_eq!(headers["x-forwarded-host"], host);
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(reply.json()["uri"], "/some/path?q=1");
    }
}

#[test]
fn hop_by_hop_headers_are_dropped_and_forwarded_for_is_appended() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    let reply = request(
        gw.http,
        "GET",
        "hello-127-0-0-1.kipper.test",
        "/",
        &[
            ("Connection", "x-private"),
            ("X-Private", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-App", "kept"),
        ],
        b"",
    );
    let (_, headers) = seen_by(&reply);
    for dropped in [
        "x-private",
        "keep-alive",
        "proxy-authorization",
        "connection",
    ] {
        assert!(
            headers.get(dropped).is_none(),
            "{dropped} reached the backend: {headers}"
        );
    }
    assert_eq!(headers["x-app"], "kept");
    assert_eq!(headers["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
}

#[test]
fn unknown_hosts_get_the_same_404_and_malformed_ones_400() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    gw.register("shop", a.addr);
    let mut bodies = Vec::new();
    for host in [
        "hello-127-0-0-2.kipper.test",
        "hello-nope.kipper.test",
        "kipper.test",
        "a.hello-127-0-0-1.kipper.test",
        "hello-127-0-0-1.kipper.test.evil.example",
        "example.com",
    ] {
        let reply = gw.get(host, "/");
        assert_eq!(reply.status, 404, "{host}: {reply:?}");
        bodies.push(reply.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "404 pages differ");
    let page = String::from_utf8_lossy(&bodies[0]).to_string();
    assert!(!page.contains("127") && !page.contains("shop"), "{page}");
    for host in [
        "bad_host-127-0-0-1.kipper.test",
        "-127-0-0-1.kipper.test",
        "x.kipper.test:99999",
    ] {
        assert_eq!(gw.get(host, "/").status, 400, "{host}");
    }
    assert!(
        a.paths().is_empty(),
        "nothing reached the backend: {:?}",
        a.paths()
    );
}

#[test]
fn bodies_stream_both_ways() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    // 3 MiB with a pattern, so a reordered or truncated copy cannot pass.
    let body: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let reply = request(
        gw.http,
        "POST",
        "up-127-0-0-1.kipper.test",
        "/echo",
        &[],
        &body,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), body.len());
    assert!(reply.body == body, "the echoed body differs");
    let big = gw.get("dl-127-0-0-1.kipper.test", "/big?1048576");
    assert_eq!(big.body.len(), 1 << 20);
}

#[test]
fn keep_alive_connections_carry_many_requests() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    let mut stream = TcpStream::connect(gw.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    for i in 0..20 {
        write!(
            stream,
            "GET /n/{i} HTTP/1.1\r\nHost: k-127-0-0-1.kipper.test\r\n\r\n"
        )
        .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let reply = loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed after {i} requests");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap();
                if buf.len() >= end + 4 + len {
                    break parse(&buf).0;
                }
            }
        };
        assert_eq!(reply.json()["uri"], format!("/n/{i}"));
    }
}

#[test]
fn http2_clients_are_proxied_as_http1() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    let addr = gw.http;
    let (status, body) = rt().block_on(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(conn);
        let req = hyper::Request::get("http://h2-127-0-0-1.kipper.test/over-h2")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(req).await.expect("h2 request");
        let status = response.status();
        use http_body_util::BodyExt as _;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["version"], "HTTP/1.1");
    assert_eq!(json["headers"]["host"], "h2-127-0-0-1.kipper.test");
    assert_eq!(json["uri"], "/over-h2");
}

fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let mut payload = vec![0; usize::from(head[1] & 0x7f)];
    stream.read_exact(&mut payload).unwrap();
    (head[0] & 0x0f, payload)
}

#[test]
fn websocket_echo_through_the_gateway() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    let mut stream = TcpStream::connect(gw.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nHost: chat-127-0-0-1.kipper.test\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let (reply, _) = parse(&head);
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(reply.headers["upgrade"], "websocket");
    assert_eq!(
        reply.headers["sec-websocket-accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    for message in ["hello gateway", "a second message", ""] {
        stream.write_all(&ws_frame(1, message.as_bytes())).unwrap();
        assert_eq!(read_frame(&mut stream), (1, message.as_bytes().to_vec()));
    }
    stream.write_all(&ws_frame(8, &[0x03, 0xe8])).unwrap();
    assert_eq!(read_frame(&mut stream).0, 8);
    let seen = a.seen.lock().unwrap().clone();
    assert_eq!(seen[0].headers["upgrade"], "websocket");
    assert_eq!(seen[0].headers["connection"], "upgrade");
}

#[test]
fn metrics_count_requests_per_cluster() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    gw.register("shop", a.addr);
    for _ in 0..3 {
        assert_eq!(gw.get("x-127-0-0-1.kipper.test", "/").status, 200);
    }
    assert_eq!(gw.get("shop.kipper.test", "/").status, 200);
    assert_eq!(gw.get("x-127-0-0-9.kipper.test", "/").status, 404);
    let metrics = admin(gw.admin, "GET", "/metrics", None, b"").text();
    for line in [
        "kip_gateway_cluster_requests_total{cluster=\"127-0-0-1\"} 3",
        "kip_gateway_cluster_requests_total{cluster=\"shop\"} 1",
        "kip_gateway_requests_total{code=\"2xx\"} 4",
        "kip_gateway_refused_total{reason=\"unknown_host\"} 1",
        "kip_gateway_request_duration_seconds_count 5",
        "kip_gateway_clusters 2",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line}:\n{metrics}"
        );
    }
    assert_eq!(admin(gw.admin, "GET", "/healthz", None, b"").text(), "ok\n");
}
