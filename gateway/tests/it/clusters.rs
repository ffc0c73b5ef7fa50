//! How the gateway speaks HTTP/1.1 to clusters: response framings (chunked, until close,
//! no body), interim responses, connection reuse, clusters that close connections, request
//! bodies, and malformed responses. The cluster here is a scripted server on a raw socket,
//! so each test decides the exact bytes it answers with.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

/// What the scripted cluster does after one answer.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    KeepOpen,
    Close,
}

/// A request as the cluster received it.
#[derive(Debug, Clone)]
struct Received {
    head: String,
    body: Vec<u8>,
}

/// A cluster answering each request, in order, with the next of its canned answers.
struct Scripted {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Scripted {
    fn start(answers: Vec<(&'static [u8], Then)>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (connections.clone(), received.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let (answers, log) = (answers.clone(), log.clone());
                std::thread::spawn(move || serve(stream, &answers, &log));
            }
        });
        Scripted {
            addr,
            connections,
            received,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    answers: &Mutex<VecDeque<(&'static [u8], Then)>>,
    log: &Mutex<Vec<Received>>,
) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        log.lock().unwrap().push(request);
        let Some((answer, then)) = answers.lock().unwrap().pop_front() else {
            return;
        };
        if writer.write_all(answer).is_err() || then == Then::Close {
            return;
        }
    }
}

/// One request: its head, and its body by `Content-Length` or chunked (decoded).
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Received> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
    {
        body = vec![0u8; len.trim().parse().ok()?];
        reader.read_exact(&mut body).ok()?;
    }
    Some(Received { head: lower, body })
}

/// Sends `requests` on one client connection, reading each reply before the next request.
fn on_one_connection(gw: &Gateway, requests: &[&str]) -> Vec<Reply> {
    let mut stream = TcpStream::connect(gw.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut replies = Vec::new();
    let mut pending = Vec::new();
    for request in requests {
        stream.write_all(request.as_bytes()).unwrap();
        let head_request = request.starts_with("HEAD ");
        replies.push(read_reply(&mut stream, &mut pending, head_request));
    }
    replies
}

/// Reads one whole response (any framing the gateway uses towards clients).
fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Reply {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let no_body = head_request
                || head.starts_with("http/1.1 204")
                || head.starts_with("http/1.1 304");
            if no_body {
                // `parse` would look for the body a Content-Length announces.
                let mut only_head = buf[..end].to_vec();
                only_head.extend_from_slice(b"\r\n\r\n");
                let (mut reply, _) = parse(&[&only_head[..], &vec![0; 1 << 16]].concat());
                reply.body.clear();
                buf.drain(..end + 4);
                return reply;
            }
            let complete = if head.contains("transfer-encoding: chunked") {
                buf.windows(5).any(|w| w == b"0\r\n\r\n")
            } else {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                buf.len() >= end + 4 + length
            };
            if complete {
                let whole = std::mem::take(buf);
                let (reply, rest) = parse(&whole);
                *buf = rest.to_vec();
                return reply;
            }
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "the gateway closed the connection mid-response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: app-127-0-0-1.kipper.test\r\n\r\n")
}

fn gateway_for(cluster: &Scripted) -> Gateway {
    let gw = Gateway::start(&["--response-timeout", "5s"]);
    gw.register("127-0-0-1", cluster.addr);
    gw
}

#[test]
fn chunked_and_close_delimited_bodies_arrive_whole_and_connections_are_reused() {
    let cluster = Scripted::start(vec![
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              6;ext=1\r\nhello \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
            Then::KeepOpen,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the cluster closes",
            Then::Close,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            Then::KeepOpen,
        ),
    ]);
    let gw = gateway_for(&cluster);
    let replies = on_one_connection(&gw, &[&get("/a"), &get("/b"), &get("/c")]);
    assert_eq!(replies[0].status, 200);
    assert_eq!(replies[0].text(), "hello world");
    assert_eq!(replies[1].text(), "until the cluster closes");
    assert_eq!(replies[2].text(), "ok");
    // /a and /b on one cluster connection (a finished chunked body frees it); /b's body
    // ends with its connection, so /c needed a new one.
    assert_eq!(cluster.connections(), 2);
}

#[test]
fn head_204_and_304_answers_have_no_body_and_keep_the_connection() {
    let cluster = Scripted::start(vec![
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
            Then::KeepOpen,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", Then::KeepOpen),
        (
            b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
            Then::KeepOpen,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast",
            Then::KeepOpen,
        ),
    ]);
    let gw = gateway_for(&cluster);
    let head = "HEAD /h HTTP/1.1\r\nHost: app-127-0-0-1.kipper.test\r\n\r\n";
    let replies = on_one_connection(&gw, &[head, &get("/204"), &get("/304"), &get("/last")]);
    assert_eq!(replies[0].status, 200);
    assert_eq!(replies[0].headers["content-length"], "1234");
    assert_eq!(replies[1].status, 204);
    assert_eq!(replies[2].status, 304);
    assert_eq!(replies[2].headers["etag"], "\"x\"");
    assert_eq!(replies[3].text(), "last");
    assert_eq!(
        cluster.connections(),
        1,
        "every answer left the connection usable"
    );
}

#[test]
fn interim_responses_are_skipped() {
    let cluster = Scripted::start(vec![(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
          HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\ncreated",
        Then::KeepOpen,
    )]);
    let gw = gateway_for(&cluster);
    let reply = gw.get("app-127-0-0-1.kipper.test", "/");
    assert_eq!(reply.status, 201);
    assert_eq!(reply.text(), "created");
}

#[test]
fn a_cluster_closing_idle_connections_unannounced_costs_no_request() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let cluster = Scripted::start(vec![(ok, Then::Close); 4]);
    let gw = gateway_for(&cluster);
    for path in ["/1", "/2", "/3"] {
        let reply = gw.get("app-127-0-0-1.kipper.test", path);
        assert_eq!((reply.status, reply.text().as_str()), (200, "ok"), "{path}");
    }
    // A request that may not be repeated (a POST with a body) must not meet a dead
    // connection either.
    std::thread::sleep(Duration::from_millis(50));
    let post = request(
        gw.http,
        "POST",
        "app-127-0-0-1.kipper.test",
        "/post",
        &[],
        b"payload",
    );
    assert_eq!(post.status, 200);
    assert_eq!(cluster.connections(), 4);
    assert_eq!(cluster.received()[3].body, b"payload");
}

#[test]
fn request_bodies_keep_their_length_or_go_chunked_never_both() {
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let cluster = Scripted::start(vec![(ok, Then::KeepOpen); 2]);
    let gw = gateway_for(&cluster);
    let chunked = "POST /chunked HTTP/1.1\r\nHost: app-127-0-0-1.kipper.test\r\n\
                   Transfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
    let sized = "POST /sized HTTP/1.1\r\nHost: app-127-0-0-1.kipper.test\r\n\
                 Content-Length: 5\r\n\r\nhello";
    let replies = on_one_connection(&gw, &[chunked, sized]);
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    let received = cluster.received();
    assert_eq!(received[0].body, b"hello world");
    assert!(received[0].head.contains("transfer-encoding: chunked"));
    assert!(!received[0].head.contains("content-length"));
    assert_eq!(received[1].body, b"hello");
    assert!(received[1].head.contains("content-length: 5"));
    assert!(!received[1].head.contains("transfer-encoding"));
}

#[test]
fn malformed_cluster_responses_give_502() {
    let cluster = Scripted::start(vec![
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            Then::Close,
        ),
        (b"this is not HTTP\r\n\r\n", Then::Close),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut short",
            Then::Close,
        ),
    ]);
    let gw = gateway_for(&cluster);
    assert_eq!(
        gw.get("app-127-0-0-1.kipper.test", "/two-lengths").status,
        502
    );
    assert_eq!(gw.get("app-127-0-0-1.kipper.test", "/garbage").status, 502);
    // A body cut short is never passed on as a whole response: the client's connection
    // ends before the 100 announced bytes (hyper may not even flush the head first).
    let raw_reply = raw(
        gw.http,
        b"GET /short HTTP/1.1\r\nHost: app-127-0-0-1.kipper.test\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw_reply);
    let body = text.find("\r\n\r\n").map_or("", |end| &text[end + 4..]);
    assert!(body.len() < 100, "{text}");
    assert_eq!(
        cluster.received().len(),
        3,
        "all three requests reached the cluster"
    );
}
