//! TLS termination with an rcgen certificate, reloaded from disk without dropping connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

use crate::support::*;

pub(crate) type Ca = CertifiedIssuer<'static, KeyPair>;

pub(crate) fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Writes a fresh key and a certificate for `names` signed by `ca`; returns the cert's DER.
pub(crate) fn issue(
    ca: &Ca,
    names: &[&str],
    cert_path: &Path,
    key_path: &Path,
) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    // Key first: a reload between the two writes sees a mismatched pair and must keep the old.
    std::fs::write(key_path, key.serialize_pem()).unwrap();
    std::fs::write(cert_path, cert.pem()).unwrap();
    cert.der().clone()
}

pub(crate) fn client_config(ca: &Ca) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub(crate) type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

pub(crate) fn connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>, host: &str) -> Tls {
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("TLS handshake");
    }
    stream
}

/// One keep-alive request and its response (which carries a Content-Length).
pub(crate) fn get<S: Read + Write>(stream: &mut S, host: &str, path: &str) -> Reply {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).expect("read a response");
        assert!(n > 0, "the connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return parse(&buf).0;
            }
        }
    }
}

fn peer_cert(stream: &Tls) -> CertificateDer<'static> {
    stream.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[test]
fn tls_is_terminated_and_the_certificate_reloads_without_dropping_connections() {
    let a = Backend::start("a");
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = ca();
    let first = issue(&ca, &["*.kipper.test"], &cert_path, &key_path);
    let cert_arg = cert_path.to_str().unwrap();
    let key_arg = key_path.to_str().unwrap();
    let gw = Gateway::start(&[
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        cert_arg,
        "--tls-key",
        key_arg,
        "--tls-reload",
        "100ms",
    ]);
    gw.register("127-0-0-1", a.addr);
    let https = gw.https.expect("https listener");
    let config = client_config(&ca);
    let host = "hello-127-0-0-1.kipper.test";

    let mut old = connect(https, &config, host);
    assert_eq!(peer_cert(&old), first);
    let reply = get(&mut old, host, "/before");
    assert_eq!(reply.status, 200);
    let headers = &reply.json()["headers"];
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["host"], host);

    // A new certificate (new key) on disk: new handshakes get it…
    let second = issue(&ca, &["*.kipper.test"], &cert_path, &key_path);
    assert_ne!(first, second);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut fresh = connect(https, &config, host);
        if peer_cert(&fresh) == second {
            assert_eq!(get(&mut fresh, host, "/fresh").status, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // …and the connection made before the reload still works.
    assert_eq!(get(&mut old, host, "/after").status, 200);

    // A broken pair on disk is refused; the current certificate keeps serving.
    std::fs::write(&key_path, "not a key").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut after_bad = connect(https, &config, host);
    assert_eq!(peer_cert(&after_bad), second);
    assert_eq!(get(&mut after_bad, host, "/still").status, 200);
}

#[test]
fn a_bad_certificate_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = ca();
    issue(&ca, &["*.kipper.test"], &cert_path, &key_path);
    // The key of another certificate.
    issue(
        &ca,
        &["*.kipper.test"],
        &dir.path().join("other.pem"),
        &key_path,
    );
    let out = command(
        dir.path(),
        &[
            "--init",
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not fit the certificate"), "{err}");
}
