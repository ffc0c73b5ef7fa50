//! What the tests share: the real `kip-gateway` binary on loopback ports, test backends (hyper
//! servers on loopback that describe what they received), and a small blocking HTTP/1.1 client
//! that writes exactly the bytes a test wants.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const DOMAIN: &str = "kipper.test";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

/// The runtime the test backends run on (the gateway runs in its own process).
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime")
    })
}

/// A running gateway; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// Everything the gateway wrote to stderr so far (it is also passed on to the test's).
    log: Arc<Mutex<String>>,
    _temp: Option<tempfile::TempDir>,
}

/// Which cluster addresses a test gateway accepts.
#[derive(Clone, Copy, PartialEq)]
pub enum Clusters {
    /// `--allow-private-clusters`: the test backends all listen on loopback.
    Private,
    /// The default policy: public addresses only.
    PublicOnly,
}

/// The gateway binary with the test's standard flags for `dir`, loopback clusters allowed.
pub fn command(dir: &Path, extra: &[&str]) -> Command {
    command_for(dir, extra, Clusters::Private)
}

/// The gateway binary with the test's standard flags for `dir` and the given policy; a
/// standard flag that `extra` also has is left to `extra`. The admin token file is created
/// private (mode 0600), as the gateway requires.
pub fn command_for(dir: &Path, extra: &[&str], clusters: Clusters) -> Command {
    let token = dir.join("admin-token");
    if !token.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&token)
            .and_then(|mut file| writeln!(file, "{ADMIN_TOKEN}"))
            .expect("token file");
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kip-gateway"));
    if clusters == Clusters::Private {
        cmd.arg("--allow-private-clusters");
    }
    let registry = dir.join("registry.json");
    for (flag, value) in [
        ("--domain", Path::new(DOMAIN)),
        ("--listen", Path::new("127.0.0.1:0")),
        ("--admin-listen", Path::new("127.0.0.1:0")),
        ("--registry", &registry),
        ("--admin-token-file", &token),
        ("--log", Path::new("warn")),
    ] {
        if !extra.contains(&flag) {
            cmd.arg(flag).arg(value);
        }
    }
    cmd.args(extra)
        .env_remove("RUST_LOG")
        .env_remove("KIP_GATEWAY_ALLOW_PRIVATE_CLUSTERS");
    cmd
}

impl Gateway {
    /// A gateway with a fresh registry (`--init`) in a temporary directory, loopback clusters
    /// allowed.
    pub fn start(extra: &[&str]) -> Gateway {
        Gateway::start_for(extra, Clusters::Private)
    }

    /// A gateway with a fresh registry (`--init`) in a temporary directory.
    pub fn start_for(extra: &[&str], clusters: Clusters) -> Gateway {
        let temp = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["--init"];
        args.extend_from_slice(extra);
        let mut gateway = Gateway::start_in_for(temp.path(), &args, clusters);
        gateway._temp = Some(temp);
        gateway
    }

    /// A gateway on the registry in `dir` (which outlives it), loopback clusters allowed.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Gateway {
        Gateway::start_in_for(dir, extra, Clusters::Private)
    }

    /// A gateway on the registry in `dir` (which outlives it).
    pub fn start_in_for(dir: &Path, extra: &[&str], clusters: Clusters) -> Gateway {
        Gateway::spawn(command_for(dir, extra, clusters))
    }

    /// Runs `command` (from [`command_for`]) and waits until the gateway is ready.
    pub fn spawn(mut command: Command) -> Gateway {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kip-gateway");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut http, mut https, mut admin) = (None, None, None);
        loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => {
                    let status = child.wait().expect("wait");
                    panic!("kip-gateway exited before it was ready: {status}");
                }
            };
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("listening"), Some(kind), Some(addr)) => {
                    let addr: SocketAddr = addr.parse().expect("address");
                    match kind {
                        "http" => http = Some(addr),
                        "https" => https = Some(addr),
                        "admin" => admin = Some(addr),
                        other => panic!("unknown listener {other}"),
                    }
                }
                (Some("ready"), _, _) => break,
                _ => panic!("unexpected line from kip-gateway: {line}"),
            }
        }
        Gateway {
            child,
            http: http.expect("http listener"),
            https,
            admin: admin.expect("admin listener"),
            log,
            _temp: None,
        }
    }

    /// What the gateway logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) until the log has a line containing every one of `needles`, and
    /// returns that line.
    pub fn log_line(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_owned();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no log line with {needles:?} in:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `PUT /v1/clusters/{id}` with `{"address": address}` and `token`; the reply, whatever
    /// it is.
    pub fn put(&self, id: &str, address: &str, token: &str) -> Reply {
        let body = format!(r#"{{"address":"{address}"}}"#);
        admin(
            self.admin,
            "PUT",
            &format!("/v1/clusters/{id}"),
            Some(token),
            body.as_bytes(),
        )
    }

    /// Registers `id` → `address` with the admin token; returns the reply.
    pub fn register(&self, id: &str, address: SocketAddr) -> Reply {
        let body = format!(r#"{{"address":"{address}"}}"#);
        let reply = admin(
            self.admin,
            "PUT",
            &format!("/v1/clusters/{id}"),
            Some(ADMIN_TOKEN),
            body.as_bytes(),
        );
        assert!(
            reply.status == 201 || reply.status == 200,
            "register {id}: {reply:?}"
        );
        reply
    }

    /// A request through the proxy with `Host: host`.
    pub fn get(&self, host: &str, path: &str) -> Reply {
        request(self.http, "GET", host, path, &[], b"")
    }

    /// Stops the process like a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {self:?}"))
    }
}

/// Writes `bytes` and reads until the server closes (or 30 s pass).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

/// Parses one response from the front of `bytes`; returns it and the bytes after it.
pub fn parse(bytes: &[u8]) -> (Reply, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head: {:?}",
                String::from_utf8_lossy(bytes)
            )
        });
    let head = std::str::from_utf8(&bytes[..end]).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = BTreeMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers
                .entry(name.trim().to_ascii_lowercase())
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(value.trim())
                })
                .or_insert_with(|| value.trim().to_owned());
        }
    }
    let mut rest = &bytes[end + 4..];
    let body;
    if headers
        .get("transfer-encoding")
        .is_some_and(|te| te.contains("chunked"))
    {
        let mut out = Vec::new();
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size_text = std::str::from_utf8(&rest[..line_end]).expect("chunk size text");
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("chunk size hex");
            rest = &rest[line_end + 2..];
            if size == 0 {
                let trailer_end = rest
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .expect("chunk end");
                rest = &rest[trailer_end + 2..];
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    } else if let Some(len) = headers.get("content-length") {
        let len: usize = len.parse().expect("content-length");
        body = rest[..len].to_vec();
        rest = &rest[len..];
    } else if status == 101 || status == 204 || status == 304 {
        body = Vec::new();
    } else {
        body = rest.to_vec();
        rest = &[];
    }
    (
        Reply {
            status,
            headers,
            body,
        },
        rest,
    )
}

/// One request on its own connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    parse(&raw(addr, &bytes)).0
}

/// A request to the admin API with an optional bearer token.
pub fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(addr, method, "admin", path, &headers, body)
}

/// What a test backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
}

/// A hyper HTTP/1.1 server on loopback that answers:
/// `/echo` with the request body streamed back, `/big?<n>` with n bytes, `/ws` with a
/// WebSocket echo, anything else with JSON describing the request.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

type TestBody = BoxBody<Bytes, hyper::Error>;

fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

impl Backend {
    pub fn start(name: &'static str) -> Backend {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let log = seen.clone();
        rt().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| answer(name, log.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Backend { addr, seen }
    }

    pub fn paths(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.path.clone())
            .collect()
    }
}

async fn answer(
    name: &'static str,
    log: Arc<Mutex<Vec<Seen>>>,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let mut headers = BTreeMap::new();
    for (key, value) in req.headers() {
        headers
            .entry(key.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(value.to_str().unwrap_or("?"))
            })
            .or_insert_with(|| value.to_str().unwrap_or("?").to_owned());
    }
    let path = req.uri().path().to_owned();
    log.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: req.uri().to_string(),
        headers: headers.clone(),
    });
    let response = match path.as_str() {
        "/echo" => Response::new(req.into_body().boxed()),
        "/big" => {
            let n: usize = req
                .uri()
                .query()
                .and_then(|q| q.parse().ok())
                .unwrap_or(1 << 20);
            Response::new(full(vec![b'x'; n]))
        }
        "/ws" => {
            let key = headers
                .get("sec-websocket-key")
                .cloned()
                .unwrap_or_default();
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    let _ = websocket_echo(TokioIo::new(upgraded)).await;
                }
            });
            let mut response = Response::new(full(Bytes::new()));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = response.headers_mut();
            h.insert("upgrade", "websocket".parse().unwrap());
            h.insert("connection", "Upgrade".parse().unwrap());
            h.insert(
                "sec-websocket-accept",
                websocket_accept(&key).parse().unwrap(),
            );
            response
        }
        _ => {
            let body = serde_json::json!({
                "backend": name,
                "method": req.method().as_str(),
                "uri": req.uri().to_string(),
                "version": format!("{:?}", req.version()),
                "headers": headers,
            });
            Response::new(full(body.to_string()))
        }
    };
    Ok(response)
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &str) -> String {
    use base64::Engine as _;
    let text = format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Echoes WebSocket frames (short ones, as the test sends) until a close frame.
async fn websocket_echo<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut io: T,
) -> std::io::Result<()> {
    loop {
        let mut head = [0u8; 2];
        io.read_exact(&mut head).await?;
        let opcode = head[0] & 0x0f;
        let len = usize::from(head[1] & 0x7f);
        let mut mask = [0u8; 4];
        if head[1] & 0x80 != 0 {
            io.read_exact(&mut mask).await?;
        }
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await?;
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        let mut frame = vec![0x80 | opcode, len as u8];
        frame.extend_from_slice(&payload);
        io.write_all(&frame).await?;
        if opcode == 8 {
            return Ok(());
        }
    }
}

/// A port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
