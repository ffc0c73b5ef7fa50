//! The real sidecar binary, a real HTTP server behind it and a client in front, all on
//! loopback. Every wait is bounded so a broken proxy fails a test instead of hanging it.

#![allow(dead_code)] // each test file uses a different part

use std::convert::Infallible;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestBody = BoxBody<Bytes, BoxError>;

/// The longest any single step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(20);

/// Fails the test if `fut` takes longer than [`STEP`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// The header value computed here, not by the sidecar: SHA-256 in hex, first 8 characters.
pub fn expected_id(pod_name: &str) -> String {
    Sha256::digest(pod_name.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The running `kip-instance-id`, killed when dropped.
pub struct Sidecar {
    pub child: Child,
    pub addr: SocketAddr,
    pub start_line: String,
}

impl Sidecar {
    /// Starts the binary in front of `upstream_port` with `POD_NAME=pod_name`, on a free
    /// loopback port, and waits for its start line.
    pub fn start(upstream_port: u16, pod_name: &str) -> Sidecar {
        let mut cmd = command();
        cmd.env("POD_NAME", pod_name);
        Sidecar::spawn(cmd, upstream_port)
    }

    pub fn spawn(mut cmd: Command, upstream_port: u16) -> Sidecar {
        cmd.args([
            "--listen-addr",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--upstream-port",
        ])
        .arg(upstream_port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start kip-instance-id");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep reading so the sidecar never blocks on a full pipe.
            for _ in lines {}
        });
        let start_line = rx
            .recv_timeout(STEP)
            .expect("the sidecar printed no start line");
        let addr = start_line
            .split_whitespace()
            .skip_while(|word| *word != "on")
            .nth(1)
            .and_then(|word| word.trim_end_matches(',').parse().ok())
            .unwrap_or_else(|| panic!("no address in {start_line:?}"));
        Sidecar {
            child,
            addr,
            start_line,
        }
    }

    pub fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the sidecar exited"
        );
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Waits (bounded) for the process to exit; returns its exit code and what it wrote to stderr.
    pub fn wait_exit(&mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                return (status.code(), stderr);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the sidecar did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with a clean environment for its settings.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kip-instance-id"));
    for var in [
        "POD_NAME",
        "HOSTNAME",
        "KIP_UPSTREAM_PORT",
        "KIP_LISTEN_PORT",
        "KIP_LISTEN_ADDR",
        "KIP_LOG_ERRORS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A hyper HTTP/1.1 server on 127.0.0.1 answering every request with `handler`, upgrades on.
pub async fn upstream<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    upstream_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), handler)
}

/// [`upstream`] on a listener of the test's choosing.
pub fn upstream_on<F, Fut>(listener: TcpListener, handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// An HTTP/1.1 client connection to `addr`.
pub async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<TestBody> {
    let stream = bounded("connect", TcpStream::connect(addr)).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender
}

pub fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub fn empty() -> TestBody {
    full(Bytes::new())
}

/// A body whose chunks are handed over one by one through the returned sender, so a test
/// decides when each is sent; the body ends when the sender is dropped.
pub fn channel_body() -> (mpsc::Sender<Bytes>, TestBody) {
    let (tx, rx) = mpsc::channel(1);
    (tx, ChannelBody(rx).boxed())
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Reads the next data frame of `body` (skipping trailers), bounded.
pub async fn next_chunk(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = bounded("next body frame", body.frame())
            .await?
            .expect("body error");
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}
