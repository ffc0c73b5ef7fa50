//! The header timeout: from accept to a complete first request head (TLS handshake
//! included), and from the end of a response to the next complete head on a kept-alive
//! connection, for HTTP/1.1, HTTP/2 and TLS clients. The idle timeout is set far above, so a
//! connection closed within [`BOUND`] was closed by the header timeout; nothing here measures
//! how fast.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::tls::{ca, client_config, connect, get, issue};

const FLAGS: [&str; 4] = ["--header-timeout", "1s", "--idle-timeout", "600s"];
/// Far more than the 1 s header timeout, far less than the 600 s idle timeout.
const BOUND: Duration = Duration::from_secs(30);
/// The HTTP/2 connection preface and an empty SETTINGS frame: a client that opened HTTP/2
/// (prior knowledge) and never sends a request.
const H2_PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// Reads until the gateway closes the connection and returns what it sent before; fails if
/// it is still open after [`BOUND`]. The socket's read timeout must be [`BOUND`] or less.
fn assert_closed<R: Read>(stream: &mut R, what: &str) -> Vec<u8> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "{what}: still open after {:?} (header timeout 1s, idle timeout 600s)",
                    started.elapsed()
                )
            }
            // A reset, or TLS without close_notify: closed all the same.
            Err(_) => return got,
        }
        assert!(started.elapsed() < BOUND, "{what}: still open");
    }
}

/// What hyper may answer a stalled HTTP/1.1 head with before it closes: nothing or a 408.
fn nothing_or_408(got: &[u8], what: &str) {
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "{what}: {:?}",
        String::from_utf8_lossy(got)
    );
}

fn tcp(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream
}

#[test]
fn a_client_without_a_complete_first_request_head_is_closed_at_the_header_timeout() {
    let a = Backend::start("a");
    let gw = Gateway::start(&FLAGS);
    gw.register("127-0-0-1", a.addr);
    let cases: [(&str, &[u8]); 4] = [
        ("a client that sends nothing", b""),
        ("half a request line", b"GET / HT"),
        ("half an HTTP/2 preface", b"PRI * HTTP/2.0\r\n"),
        ("HTTP/2 without a request", H2_PREFACE_AND_SETTINGS),
    ];
    // All open at once, so they wait out their timeouts together.
    let streams: Vec<_> = cases
        .iter()
        .map(|(what, bytes)| {
            let mut stream = tcp(gw.http);
            stream.write_all(bytes).unwrap();
            (*what, stream)
        })
        .collect();
    for (what, mut stream) in streams {
        let got = assert_closed(&mut stream, what);
        if !what.contains("HTTP/2") {
            nothing_or_408(&got, what);
        }
    }
    // A client that sends its request is served, at once and on a connection it opened
    // before the others were cut off.
    assert_eq!(gw.get("x-127-0-0-1.kipper.test", "/").status, 200);
    assert_eq!(a.paths(), ["/"], "no stalled request reached the cluster");
}

#[test]
fn a_kept_alive_client_stalling_in_its_next_head_is_closed_at_the_header_timeout() {
    let a = Backend::start("a");
    let gw = Gateway::start(&FLAGS);
    gw.register("127-0-0-1", a.addr);
    let host = "x-127-0-0-1.kipper.test";
    let mut stream = tcp(gw.http);
    assert_eq!(get(&mut stream, host, "/first").status, 200);
    write!(stream, "GET /second HTTP/1.1\r\nHost: {host}\r\nX-Half: ").unwrap();
    let got = assert_closed(&mut stream, "a stalled second head");
    nothing_or_408(&got, "a stalled second head");
    assert_eq!(a.paths(), ["/first"]);
}

#[test]
fn tls_clients_have_the_same_header_timeout_handshake_included() {
    let a = Backend::start("a");
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = ca();
    issue(&ca, &["*.kipper.test"], &cert_path, &key_path);
    let mut flags = FLAGS.to_vec();
    flags.extend([
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let gw = Gateway::start(&flags);
    gw.register("127-0-0-1", a.addr);
    let https = gw.https.expect("https listener");
    let config = client_config(&ca);
    let host = "x-127-0-0-1.kipper.test";

    let mut no_hello = tcp(https);
    let mut partial_hello = tcp(https);
    partial_hello
        .write_all(b"\x16\x03\x01\x02\x00\x01")
        .unwrap();
    let mut silent = connect(https, &config, host);
    let mut stalled = connect(https, &config, host);
    assert_eq!(get(&mut stalled, host, "/first").status, 200);
    write!(stalled, "GET /second HTTP/1.1\r\nHost: ").unwrap();

    assert_closed(&mut no_hello, "TLS without a ClientHello");
    assert_closed(&mut partial_hello, "half a ClientHello");
    assert_closed(&mut silent, "TLS without a request");
    let got = assert_closed(&mut stalled, "TLS with a stalled second head");
    nothing_or_408(&got, "TLS with a stalled second head");
    assert_eq!(a.paths(), ["/first"]);
}

#[test]
fn a_request_whose_head_arrived_is_not_cut_off_by_the_header_timeout() {
    // A cluster that answers 2.5 s after the request, well past the 1 s header timeout.
    let slow = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_addr = slow.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in slow.incoming().flatten() {
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                std::thread::sleep(Duration::from_millis(2500));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
            });
        }
    });
    let gw = Gateway::start(&FLAGS);
    gw.register("127-0-0-1", slow_addr);
    let mut stream = tcp(gw.http);
    let reply = get(&mut stream, "x-127-0-0-1.kipper.test", "/");
    assert_eq!((reply.status, reply.text().as_str()), (200, "slow"));
    // And the connection carries another request after the deadline of the first passed.
    let again = get(&mut stream, "x-127-0-0-1.kipper.test", "/again");
    assert_eq!(again.text(), "slow");
}
