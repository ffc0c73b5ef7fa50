//! Hostile clients and failing clusters: each is contained and other clients carry on.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;

#[test]
fn conflicting_content_length_and_transfer_encoding_smuggle_nothing() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    let host = "s-127-0-0-1.kipper.test";
    // CL.TE: a front end trusting Content-Length would pass the smuggled GET on as a request.
    let attack = format!(
        "POST /first HTTP/1.1\r\nHost: {host}\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n"
    );
    let bytes = raw(gw.http, attack.as_bytes());
    let (first, rest) = parse(&bytes);
    assert_eq!(first.status, 200, "{first:?}");
    assert!(
        rest.is_empty(),
        "a second response came back: {:?}",
        String::from_utf8_lossy(rest)
    );
    // TE.CL: a body whose chunk holds a request line.
    let inner = format!("GET /smuggled2 HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let attack = format!(
        "POST /second HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n\
         {:x}\r\n{inner}\r\n0\r\n\r\n",
        inner.len()
    );
    let bytes = raw(gw.http, attack.as_bytes());
    let (second, rest) = parse(&bytes);
    assert_eq!(second.status, 200, "{second:?}");
    assert!(rest.is_empty());
    // Two different Content-Lengths and an unknown transfer coding are refused outright.
    for bad in [
        format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"
        ),
        format!("POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
    ] {
        assert_eq!(parse(&raw(gw.http, bad.as_bytes())).0.status, 400, "{bad}");
    }
    let paths = a.paths();
    assert_eq!(paths, ["/first", "/second"], "the backend saw {paths:?}");
    let methods: Vec<String> = a
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.method.clone())
        .collect();
    assert_eq!(methods, ["POST", "POST"]);
}

#[test]
fn oversized_and_malformed_headers_are_refused() {
    let a = Backend::start("a");
    let gw = Gateway::start(&["--max-header-bytes", "16384"]);
    gw.register("127-0-0-1", a.addr);
    let big = "x".repeat(64 * 1024);
    let reply = request(
        gw.http,
        "GET",
        "h-127-0-0-1.kipper.test",
        "/",
        &[("X-Big", &big)],
        b"",
    );
    assert_eq!(reply.status, 431, "{reply:?}");
    let long_host = format!("{}-127-0-0-1.kipper.test", "a".repeat(300));
    assert_eq!(gw.get(&long_host, "/").status, 400);
    let garbage = raw(
        gw.http,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    );
    assert!(
        garbage.is_empty() || parse(&garbage).0.status == 400,
        "{garbage:?}"
    );
    let no_host = raw(gw.http, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(parse(&no_host).0.status, 400);
    assert_eq!(gw.get("h-127-0-0-1.kipper.test", "/").status, 200);
    assert_eq!(
        a.paths(),
        ["/"],
        "only the good request reached the backend"
    );
}

#[test]
fn a_slow_loris_client_is_cut_off_while_others_are_served() {
    let a = Backend::start("a");
    let gw = Gateway::start(&["--header-timeout", "1s"]);
    gw.register("127-0-0-1", a.addr);
    let mut slow = TcpStream::connect(gw.http).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let header = b"GET / HTTP/1.1\r\nHost: slow-127-0-0-1.kipper.test\r\nX-Drip: ";
    let mut closed = false;
    // Drip one byte every 200 ms for up to 60 s; the gateway must hang up long before.
    for i in 0..300 {
        if slow.write_all(&[header[i.min(header.len() - 1)]]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                // hyper may answer 408 before it closes.
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(text.starts_with("HTTP/1.1 408"), "{text}");
                closed = true;
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        if i == 2 {
            assert_eq!(gw.get("fast-127-0-0-1.kipper.test", "/").status, 200);
        }
    }
    assert!(closed, "the slow client was never cut off");
    assert_eq!(
        a.paths(),
        ["/"],
        "the slow request never reached the backend"
    );
}

#[test]
fn idle_client_connections_are_closed() {
    let gw = Gateway::start(&["--idle-timeout", "1s"]);
    let mut idle = TcpStream::connect(gw.http).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the gateway to close an idle connection");
}

#[test]
fn dead_hanging_and_resetting_clusters_give_502_and_504() {
    let a = Backend::start("a");
    let gw = Gateway::start(&["--response-timeout", "1s", "--connect-timeout", "1s"]);
    gw.register("127-0-0-1", a.addr);
    gw.register("dead", closed_port());

    // A cluster that accepts and never answers.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    gw.register("hang", hang.local_addr().unwrap());
    let hung: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>> = Default::default();
    let keep = hung.clone();
    std::thread::spawn(move || {
        for stream in hang.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    // A cluster that resets every connection once the request arrives.
    let reset = tokio_reset_server();
    gw.register("reset", reset);

    let down = gw.get("app-dead.kipper.test", "/");
    assert_eq!(down.status, 502);
    assert!(down.text().contains("not answering"), "{}", down.text());
    assert_eq!(gw.get("app-hang.kipper.test", "/").status, 504);
    assert_eq!(gw.get("app-reset.kipper.test", "/").status, 502);
    assert_eq!(gw.get("app-127-0-0-1.kipper.test", "/").status, 200);
    let metrics = admin(gw.admin, "GET", "/metrics", None, b"").text();
    assert!(
        metrics.contains("kip_gateway_refused_total{reason=\"bad_gateway\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kip_gateway_refused_total{reason=\"timeout\"} 1"),
        "{metrics}"
    );
}

/// Reads a request, then closes with SO_LINGER 0 so the peer gets a TCP reset.
fn tokio_reset_server() -> std::net::SocketAddr {
    let listener = rt()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt().spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            use tokio::io::AsyncReadExt as _;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
        }
    });
    addr
}

#[test]
fn a_missing_or_corrupt_registry_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let out = command(dir.path(), extra).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("does not exist") && err.contains("--init"),
        "{err}"
    );

    let registry = dir.path().join("registry.json");
    std::fs::write(&registry, b"{\"version\":1,\"clusters\":[{\"id\":\"shop\"").unwrap();
    let (code, err) = run(&["--init"]);
    assert_eq!(code, Some(2), "--init must not paper over a corrupt file");
    assert!(
        err.contains("registry.json is not valid") && err.contains("EOF"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&registry).unwrap(),
        b"{\"version\":1,\"clusters\":[{\"id\":\"shop\"",
        "the corrupt file is left for the operator"
    );

    std::fs::remove_file(&registry).unwrap();
    std::fs::write(dir.path().join("admin-token"), "short\n").unwrap();
    let (code, err) = run(&["--init"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("shorter than 16 characters"), "{err}");

    let (code, err) = run(&["--header-timeout", "soon"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not a duration"), "{err}");
}

/// One HTTP/2 request (prior knowledge) to `uri`, with `host` as a `host` header if given;
/// its status.
fn h2_status(addr: std::net::SocketAddr, uri: &'static str, host: Option<&'static str>) -> u16 {
    rt().block_on(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(conn);
        let mut req = hyper::Request::get(uri);
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(req).await.expect("h2 request");
        response.status().as_u16()
    })
}

#[test]
fn a_request_naming_two_hosts_or_an_empty_one_gets_400() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let gw = Gateway::start(&[]);
    gw.register("127-0-0-1", a.addr);
    gw.register("shop", b.addr);
    for bad in [
        // The case: routed by the first Host, the cluster may read the second.
        "GET /two HTTP/1.1\r\nHost: x-127-0-0-1.kipper.test\r\nHost: shop.kipper.test\r\n",
        "GET /two-same HTTP/1.1\r\nHost: shop.kipper.test\r\nHost: shop.kipper.test\r\n",
        "GET http://shop.kipper.test/absolute HTTP/1.1\r\nHost: x-127-0-0-1.kipper.test\r\n",
        "GET http://shop.kipper.test/port HTTP/1.1\r\nHost: shop.kipper.test:8080\r\n",
        "GET http://shop.kipper.test/empty-host HTTP/1.1\r\nHost: \r\n",
        "GET /empty HTTP/1.1\r\nHost: \r\n",
        "GET http://shop.kipper.test/both HTTP/1.1\r\nHost: shop.kipper.test\r\nHost: x-127-0-0-1.kipper.test\r\n",
    ] {
        let reply = parse(&raw(
            gw.http,
            format!("{bad}Connection: close\r\n\r\n").as_bytes(),
        ))
        .0;
        assert_eq!(reply.status, 400, "{bad:?}: {reply:?}");
    }
    // HTTP/2: `:authority` and a `host` header that disagree.
    assert_eq!(
        h2_status(
            gw.http,
            "http://shop.kipper.test/h2-conflict",
            Some("x-127-0-0-1.kipper.test")
        ),
        400
    );
    // Hosts that agree (ASCII case aside) are served.
    let same = "GET http://Shop.Kipper.Test/agree HTTP/1.1\r\nHost: shop.kipper.test\r\n\
                Connection: close\r\n\r\n";
    assert_eq!(parse(&raw(gw.http, same.as_bytes())).0.status, 200);
    assert_eq!(
        h2_status(
            gw.http,
            "http://shop.kipper.test/h2-agree",
            Some("shop.kipper.test")
        ),
        200
    );
    assert_eq!(
        h2_status(gw.http, "http://shop.kipper.test/h2-plain", None),
        200
    );
    assert!(a.paths().is_empty(), "cluster a saw {:?}", a.paths());
    assert_eq!(b.paths(), ["/agree", "/h2-agree", "/h2-plain"]);
    let metrics = admin(gw.admin, "GET", "/metrics", None, b"").text();
    assert!(
        metrics.contains("kip_gateway_refused_total{reason=\"bad_host\"} 8"),
        "{metrics}"
    );
}
