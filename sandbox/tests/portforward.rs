//! `pods/{name}/portforward` at the protocol level: the WebSocket channel protocol kube-rs
//! speaks and the SPDY streams kubectl opens, against a real TCP echo server standing in for
//! the pod's process.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use sandbox::Sandbox;
use sandbox::api::{Api, router};
use sandbox::spdy::{Decoder, Encoder, FLAG_FIN, Frame};
use sandbox::store::ObjKey;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceExt;

/// A test stuck on a lost message fails instead of hanging; never an assertion about speed.
const PATIENCE: Duration = Duration::from_secs(20);

/// A loopback server that echoes what it reads, one task per connection.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let address = listener.local_addr().expect("echo address");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    address
}

/// A loopback address where nothing listens.
async fn refusing_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    address
}

struct Fixture {
    sandbox: Sandbox,
    address: SocketAddr,
}

impl Fixture {
    async fn start() -> Fixture {
        let sandbox = Sandbox::in_memory().await.expect("sandbox");
        let address = sandbox
            .spawn("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("serve");
        Fixture { sandbox, address }
    }

    /// Creates pod `name` with `annotations` and waits until the simulated kubelet runs it
    /// (unless `wait` is false).
    async fn pod(&self, name: &str, annotations: Value, wait: bool) {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"containers": [{"name": "db", "image": "postgres:17", "ports": [{"containerPort": 5432}]}]},
        });
        let request = Request::post("/api/v1/namespaces/default/pods")
            .header("content-type", "application/json")
            .body(Body::from(pod.to_string()))
            .expect("request");
        let response = router(Api::new(self.sandbox.store.clone()))
            .oneshot(request)
            .await
            .expect("answer");
        assert_eq!(response.status(), 201, "pod created");
        if !wait {
            return;
        }
        let key = ObjKey::new("/pods", "default", name);
        tokio::time::timeout(PATIENCE, async {
            loop {
                let running = self
                    .sandbox
                    .store
                    .get(&key)
                    .is_some_and(|p| p["status"]["phase"] == "Running");
                if running {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("pod runs");
    }

    async fn websocket(
        &self,
        pod: &str,
        query: &str,
        protocol: &str,
    ) -> Result<
        (
            tokio_tungstenite::WebSocketStream<TcpStream>,
            axum::http::Response<Option<Vec<u8>>>,
        ),
        tokio_tungstenite::tungstenite::Error,
    > {
        let url = format!(
            "ws://{}/api/v1/namespaces/default/pods/{pod}/portforward?{query}",
            self.address
        );
        let mut request = url.into_client_request().expect("request");
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
        let tcp = TcpStream::connect(self.address).await.expect("connect");
        tokio_tungstenite::client_async(request, tcp).await
    }
}

async fn next_binary(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> Option<Vec<u8>> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => return Some(b.to_vec()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("a message in time")
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_channels_reach_the_backing_server() {
    let fx = Fixture::start().await;
    let echo = echo_server().await;
    fx.pod(
        "db",
        json!({"sandbox.kipper.run/forward": format!("5432={echo},6379={echo}")}),
        true,
    )
    .await;
    let (mut ws, response) = fx
        .websocket(
            "db",
            "ports=5432,6379",
            "v5.channel.k8s.io, v4.channel.k8s.io",
        )
        .await
        .expect("upgrade");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "v4.channel.k8s.io"
    );
    // Each channel first carries its port, little-endian.
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(next_binary(&mut ws).await.expect("initial frame"));
    }
    assert_eq!(
        first,
        vec![
            vec![0, 0x38, 0x15],
            vec![1, 0x38, 0x15],
            vec![2, 0xeb, 0x18],
            vec![3, 0xeb, 0x18]
        ]
    );
    ws.send(Message::binary(b"\x00hello".to_vec()))
        .await
        .expect("send");
    ws.send(Message::binary(b"\x02world".to_vec()))
        .await
        .expect("send");
    let mut got = Vec::new();
    while got.len() < 2 {
        let frame = next_binary(&mut ws).await.expect("echo");
        got.push(frame);
    }
    got.sort();
    assert_eq!(got, vec![b"\x00hello".to_vec(), b"\x02world".to_vec()]);
    ws.close(None).await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_errors_arrive_on_the_error_channel() {
    let fx = Fixture::start().await;
    let refused = refusing_address().await;
    fx.pod(
        "down",
        json!({"sandbox.kipper.run/forward": format!("5432={refused}")}),
        true,
    )
    .await;
    fx.pod(
        "late",
        json!({"sandbox.kipper.run/start-delay-ms": "600000", "sandbox.kipper.run/forward": format!("5432={refused}")}),
        false,
    )
    .await;
    for (pod, port, expected) in [
        ("down", 5432u16, "connection refused"),
        ("down", 80, "port 80 is not forwarded"),
        ("late", 5432, "pod is not running (phase Pending)"),
    ] {
        let (mut ws, _) = fx
            .websocket(pod, &format!("ports={port}"), "v4.channel.k8s.io")
            .await
            .expect("upgrade");
        let mut error = None;
        while let Some(frame) = next_binary(&mut ws).await {
            if frame[0] == 1 && frame.len() > 3 {
                error = Some(String::from_utf8_lossy(&frame[1..]).to_string());
            }
        }
        let error = error.expect("an error message before the server closes");
        assert!(
            error.contains(expected) && error.contains(&format!("error forwarding port {port}")),
            "{pod}:{port}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_before_the_upgrade_are_statuses() {
    let fx = Fixture::start().await;
    fx.pod("db", json!({}), true).await;
    let status = |err: tokio_tungstenite::tungstenite::Error| match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            let body: Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).expect("Status");
            (
                resp.status().as_u16(),
                body["message"].as_str().unwrap_or("").to_string(),
            )
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    };
    let (code, message) = status(
        fx.websocket("nope", "ports=1", "v4.channel.k8s.io")
            .await
            .expect_err("unknown pod"),
    );
    assert_eq!((code, message.as_str()), (404, "pods \"nope\" not found"));
    let (code, message) = status(
        fx.websocket("db", "", "v4.channel.k8s.io")
            .await
            .expect_err("no ports"),
    );
    assert_eq!(code, 400);
    assert!(message.contains("\"ports\""), "{message}");
    let (code, _) = status(
        fx.websocket("db", "ports=99999", "v4.channel.k8s.io")
            .await
            .expect_err("bad port"),
    );
    assert_eq!(code, 400);
    let (code, message) = status(
        fx.websocket("db", "ports=1", "base64.channel.k8s.io")
            .await
            .expect_err("unserved subprotocol"),
    );
    assert_eq!(code, 400);
    assert!(message.contains("v4.channel.k8s.io"), "{message}");
}

/// A SPDY client over a raw upgraded connection, as kubectl's fallback dialer opens it.
struct SpdyClient {
    conn: TcpStream,
    encoder: Encoder,
    decoder: Decoder,
    buf: BytesMut,
}

impl SpdyClient {
    async fn connect(address: SocketAddr, pod: &str) -> SpdyClient {
        let mut conn = TcpStream::connect(address).await.expect("connect");
        let head = format!(
            "POST /api/v1/namespaces/default/pods/{pod}/portforward HTTP/1.1\r\nHost: {address}\r\n\
             Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\
             Content-Length: 0\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.expect("request");
        let mut response = Vec::new();
        while !response.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let n = tokio::time::timeout(PATIENCE, conn.read(&mut byte))
                .await
                .expect("response in time")
                .expect("read");
            assert_eq!(n, 1, "connection closed in the response head: {response:?}");
            response.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 101"), "{text}");
        assert!(
            text.contains("x-stream-protocol-version: portforward.k8s.io"),
            "{text}"
        );
        SpdyClient {
            conn,
            encoder: Encoder::new(),
            decoder: Decoder::new(),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        self.encoder.encode(&frame, &mut out).expect("encode");
        self.conn.write_all(&out).await.expect("write");
    }

    async fn open(&mut self, stream: u32, kind: &str, port: u16, request: u32) {
        let headers = vec![
            ("streamtype".to_string(), kind.to_string()),
            ("port".to_string(), port.to_string()),
            ("requestid".to_string(), request.to_string()),
        ];
        self.send(Frame::SynStream {
            stream,
            associated: 0,
            priority: 0,
            flags: 0,
            headers,
        })
        .await;
    }

    /// The next frame, or None when the server closed the connection.
    async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(frame) = self.decoder.decode(&mut self.buf).expect("decode") {
                    return Some(frame);
                }
                if self.conn.read_buf(&mut self.buf).await.ok()? == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("a frame in time")
    }

    /// Reads frames until both `data` and `error` are finished; returns what each carried.
    async fn drain(&mut self, data: u32, error: u32) -> (Vec<u8>, Vec<u8>) {
        let (mut got, mut errors) = (Vec::new(), Vec::new());
        let (mut data_done, mut error_done) = (false, false);
        while !(data_done && error_done) {
            match self.next().await.expect("frames until both streams end") {
                Frame::Data {
                    stream,
                    flags,
                    data: bytes,
                } => {
                    let fin = flags & FLAG_FIN != 0;
                    if stream == data {
                        got.extend_from_slice(&bytes);
                        data_done |= fin;
                    } else if stream == error {
                        errors.extend_from_slice(&bytes);
                        error_done |= fin;
                    }
                }
                Frame::SynReply { .. } => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
        (got, errors)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spdy_streams_reach_the_backing_server() {
    let fx = Fixture::start().await;
    let echo = echo_server().await;
    fx.pod(
        "db",
        json!({"sandbox.kipper.run/forward": format!("5432={echo}")}),
        true,
    )
    .await;
    let mut client = SpdyClient::connect(fx.address, "db").await;
    // Two connections at once, interleaved, as kubectl multiplexes them.
    client.open(1, "error", 5432, 0).await;
    client.open(3, "data", 5432, 0).await;
    client.open(5, "error", 5432, 1).await;
    client.open(7, "data", 5432, 1).await;
    let mut replies = Vec::new();
    while replies.len() < 4 {
        match client.next().await.expect("replies") {
            Frame::SynReply { stream, .. } => replies.push(stream),
            other => panic!("expected SYN_REPLY, got {other:?}"),
        }
    }
    replies.sort();
    assert_eq!(replies, vec![1, 3, 5, 7]);
    client.send(Frame::Ping { id: 9 }).await;
    assert_eq!(client.next().await, Some(Frame::Ping { id: 9 }));
    for (stream, text) in [(7, &b"second"[..]), (3, &b"first"[..])] {
        client
            .send(Frame::Data {
                stream,
                flags: FLAG_FIN,
                data: Bytes::from_static(text),
            })
            .await;
    }
    // The echo server ends its side after our FIN: each data stream is echoed, then finished,
    // and its error stream finished without a message.
    let mut echoes = std::collections::HashMap::<u32, (Vec<u8>, bool)>::new();
    let mut errors_done = 0;
    while errors_done < 2 || echoes.values().filter(|(_, fin)| *fin).count() < 2 {
        match client.next().await.expect("frames") {
            Frame::Data {
                stream,
                flags,
                data,
            } if stream == 3 || stream == 7 => {
                let entry = echoes.entry(stream).or_default();
                entry.0.extend_from_slice(&data);
                entry.1 |= flags & FLAG_FIN != 0;
            }
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                assert!(data.is_empty(), "error on stream {stream}: {data:?}");
                if flags & FLAG_FIN != 0 {
                    errors_done += 1;
                }
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(echoes[&3].0, b"first");
    assert_eq!(echoes[&7].0, b"second");
}

#[tokio::test(flavor = "multi_thread")]
async fn spdy_errors_arrive_on_the_error_stream_and_the_connection_lives_on() {
    let fx = Fixture::start().await;
    let echo = echo_server().await;
    let refused = refusing_address().await;
    fx.pod(
        "db",
        json!({"sandbox.kipper.run/forward": format!("5432={echo},6379={refused}")}),
        true,
    )
    .await;
    let mut client = SpdyClient::connect(fx.address, "db").await;
    client.open(1, "error", 6379, 0).await;
    client.open(3, "data", 6379, 0).await;
    let (data, error) = client.drain(3, 1).await;
    assert!(data.is_empty());
    let error = String::from_utf8_lossy(&error);
    assert!(
        error.contains("error forwarding port 6379 to pod default/db")
            && error.contains("connection refused"),
        "{error}"
    );
    // A bad stream is reset; the connection still serves the next request.
    client
        .send(Frame::SynStream {
            stream: 5,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: vec![("streamtype".into(), "bogus".into())],
        })
        .await;
    assert!(matches!(
        client.next().await,
        Some(Frame::RstStream { stream: 5, .. })
    ));
    client.open(7, "error", 5432, 1).await;
    client.open(9, "data", 5432, 1).await;
    client
        .send(Frame::Data {
            stream: 9,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"still here"),
        })
        .await;
    let (data, error) = client.drain(9, 7).await;
    assert_eq!(
        (data.as_slice(), error.as_slice()),
        (&b"still here"[..], &b""[..])
    );
}
