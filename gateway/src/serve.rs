//! Accepting connections: the hardening every listener shares (header-read and handshake
//! timeouts, header size limits, an idle timeout), HTTP/1.1 and HTTP/2 on the same port, and
//! the start-up that wires configuration, registry, listeners and certificate reloading.
//!
//! The header timeout runs from accept to the first complete request head, TLS handshake
//! included. hyper's own header-read timer cannot cover that alone: it starts only once the
//! connection's protocol is known, and the auto builder learns that from the first bytes, so
//! a client that sent nothing (or half an HTTP/2 preface) used to wait for the idle timeout.
//! hyper's timer still bounds every later head on a kept-alive HTTP/1.1 connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::policy::Policy;
use crate::proxy::{Body, Proxy};
use crate::{admin, host, metrics, proxy, registry, tls, workers};

/// Who is at the other end of a client connection, worked out once per connection.
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub secure: bool,
    /// `addr`'s IP as a header value, for `X-Forwarded-For`.
    pub ip: HeaderValue,
}

impl Peer {
    pub fn new(addr: SocketAddr, secure: bool) -> Peer {
        let ip = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Peer { addr, secure, ip }
    }
}

/// Something that answers requests on a listener (the proxy, the admin API).
pub trait Handler: Send + Sync + 'static {
    /// Answers one request from `peer`. Never fails: errors are responses.
    fn call(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Peer,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// Limits every client connection gets.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
}

/// The HTTP/1.1 + HTTP/2 server settings shared by all connections of a listener.
pub fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // hyper refuses anything below 8 KiB; a larger header gets 431.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Accepts connections forever. A failed accept (out of file descriptors…) is logged and
/// retried after a pause, so a burst cannot kill the listener.
pub async fn accept_loop<H: Handler>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    metrics: Arc<metrics::Metrics>,
    handler: Arc<H>,
) {
    let builder = Arc::new(builder(&limits));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        metrics.connected();
        let head_deadline = Instant::now() + limits.header_timeout;
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let handler = handler.clone();
        let tls = tls.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    serve_io(
                        Idle::new(stream, limits.idle_timeout),
                        &builder,
                        handler,
                        Peer::new(peer, false),
                        head_deadline,
                    )
                    .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout_at(head_deadline, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_io(
                                Idle::new(stream, limits.idle_timeout),
                                &builder,
                                handler,
                                Peer::new(peer, true),
                                head_deadline,
                            )
                            .await
                        }
                        Ok(Err(err)) => debug!(%peer, "TLS handshake failed: {err}"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Set by the first request of a connection to reach the handler, whose head is then
/// complete; the connection's task waits for it until the header deadline.
#[derive(Default)]
struct FirstHead {
    seen: AtomicBool,
    notify: Notify,
}

impl FirstHead {
    fn arrived(&self) {
        // Every request passes here: after the first, one relaxed load.
        if !self.seen.load(Ordering::Relaxed) && !self.seen.swap(true, Ordering::Relaxed) {
            // Stores a permit if the task is not waiting yet.
            self.notify.notify_one();
        }
    }
}

/// Serves one connection; closes it at `head_deadline` unless a complete request head has
/// arrived by then.
async fn serve_io<I, H>(
    io: I,
    builder: &auto::Builder<TokioExecutor>,
    handler: Arc<H>,
    client: Peer,
    head_deadline: Instant,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let peer = client.addr;
    let first = Arc::new(FirstHead::default());
    let seen = first.clone();
    let service = hyper::service::service_fn(move |req| {
        seen.arrived();
        let handler = handler.clone();
        let client = client.clone();
        async move { Ok::<_, Infallible>(handler.call(req, client).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    // Biased, so a connection whose first request arrives at the deadline keeps it.
    let ended = tokio::select! {
        biased;
        ended = conn.as_mut() => Some(ended),
        () = first.notify.notified() => None,
        () = tokio::time::sleep_until(head_deadline) => {
            // Dropping the connection closes it: there is no request to answer.
            debug!(%peer, "no complete request head within the header timeout");
            return;
        }
    };
    let ended = match ended {
        Some(ended) => ended,
        None => conn.await,
    };
    if let Err(err) = ended {
        debug!(%peer, "connection ended: {err}");
    }
}

/// A client stream that fails with `TimedOut` once no byte has moved either way for
/// `timeout`. The timer is re-armed lazily (only when it fires), so busy connections pay one
/// clock read per I/O call, not a timer update.
pub struct Idle<T> {
    inner: T,
    timeout: Duration,
    last: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        let now = Instant::now();
        Idle {
            inner,
            timeout,
            last: now,
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last + self.timeout;
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection was idle too long",
                ));
            }
            self.sleep.as_mut().reset(deadline);
        }
    }

    fn touched<R>(&mut self, ready: Poll<R>, cx: &mut Context<'_>) -> Poll<io::Result<R>>
    where
        R: Sized,
    {
        match ready {
            Poll::Ready(value) => {
                self.last = Instant::now();
                Poll::Ready(Ok(value))
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(())) => this.touched(Poll::Ready(()), cx),
            Poll::Pending => this.touched(Poll::<()>::Pending, cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(n)) => this.touched(Poll::Ready(n), cx),
            Poll::Pending => this.touched(Poll::<usize>::Pending, cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(n)) => this.touched(Poll::Ready(n), cx),
            Poll::Pending => this.touched(Poll::<usize>::Pending, cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Reads the admin token, refusing a file that group or others may read or write: whoever
/// reads it may register clusters anywhere the policy allows and delete every entry, so a
/// world-readable token is an outage waiting for a local user. Refused rather than warned
/// about, since a warning in a log is read after the fact.
fn read_admin_token(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read as _;
    let cannot_read = |err: io::Error| {
        format!(
            "cannot read the admin token file {}: {err}; create it with a long random secret \
             only the gateway's user can read, for example \
             `(umask 077; openssl rand -hex 32 > {})`",
            path.display(),
            path.display()
        )
    };
    // The mode of the file opened, not of whatever the path names a moment later.
    let mut file = std::fs::File::open(path).map_err(cannot_read)?;
    let mode = file.metadata().map_err(cannot_read)?.permissions().mode() & 0o7777;
    if mode & 0o066 != 0 {
        return Err(format!(
            "the admin token file {} has mode {mode:04o}: group or others may read or change \
             it, and the token may do everything; make it private with `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(cannot_read)?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(format!(
            "the admin token in {} is shorter than 16 characters; put a long random secret \
             there, for example `openssl rand -hex 32`",
            path.display()
        ));
    }
    Ok(token.to_owned())
}

async fn bind(what: &str, address: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(address)
        .await
        .map_err(|err| format!("cannot listen for {what} on {address}: {err}"))
}

/// Where a started gateway listens.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
}

/// How many proxy worker threads to run: `--threads`, else one per CPU.
fn worker_count(config: &Config) -> usize {
    config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Loads everything, binds the listeners, starts the proxy worker threads (see
/// [`workers`]) and spawns the admin API and certificate reloading on the current runtime;
/// returns once the gateway is serving.
pub async fn start(config: Config) -> Result<Started, String> {
    let domain = host::normalize_domain(&config.domain)?;
    let admin_token = read_admin_token(&config.admin_token_file)?;
    let count = worker_count(&config);
    // Shard 0 for this thread (admin API), one per worker.
    let metrics = Arc::new(metrics::Metrics::new(count + 1));
    let limits = Limits {
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        max_header_bytes: config.max_header_bytes,
    };
    let cluster_tls = proxy::cluster_tls()?;

    let tls = match (&config.listen_tls, &config.tls_cert, &config.tls_key) {
        (Some(address), Some(cert), Some(key)) => {
            let store = Arc::new(tls::CertStore::load(cert, key)?);
            Some((*address, store))
        }
        _ => None,
    };

    let http = workers::bind_shared("HTTP", config.listen, count)?;
    let admin_listener = bind("the admin API", config.admin_listen).await?;
    let mut started = Started {
        http: std_local(&http)?,
        https: None,
        admin: local(&admin_listener)?,
    };
    // Per worker: its HTTPS listener and the acceptor all workers share (one certificate
    // store, reloaded once for all).
    let mut https: Vec<Option<(std::net::TcpListener, tokio_rustls::TlsAcceptor)>> =
        (0..count).map(|_| None).collect();
    if let Some((address, store)) = tls {
        let listeners = workers::bind_shared("HTTPS", address, count)?;
        started.https = Some(std_local(&listeners)?);
        let acceptor = tls::acceptor(store.clone())?;
        for (slot, listener) in https.iter_mut().zip(listeners) {
            *slot = Some((listener, acceptor.clone()));
        }
        tokio::spawn(tls::watch(store, config.tls_reload));
    }
    // The registry is read once the listeners are bound: the policy it checks entries
    // against needs their real addresses (port 0 picks one at bind time).
    let mut own = vec![("proxy", started.http), ("admin", started.admin)];
    own.extend(started.https.map(|https| ("TLS proxy", https)));
    let policy = Arc::new(Policy::new(config.allow_private_clusters, own));
    let registry = Arc::new(registry::Registry::open(
        &config.registry,
        config.init,
        policy,
    )?);
    let admin = Arc::new(admin::Admin::new(
        &admin_token,
        registry.clone(),
        metrics.clone(),
    ));
    for (index, (http, https)) in http.into_iter().zip(https).enumerate() {
        let proxy = Proxy::new(
            &config,
            cluster_tls.clone(),
            domain.clone(),
            registry.clone(),
            metrics.clone(),
        );
        // Waits (briefly, at start only) until the worker's runtime runs.
        workers::spawn(
            index,
            workers::Worker {
                http,
                https,
                proxy,
                limits: limits.clone(),
                metrics: metrics.clone(),
            },
        )?;
    }
    tokio::spawn(accept_loop(admin_listener, None, limits, metrics, admin));
    info!(
        domain,
        clusters = registry.len(),
        workers = count,
        allow_private_clusters = config.allow_private_clusters,
        "kip-gateway started"
    );
    Ok(started)
}

/// Runs the gateway until SIGINT or SIGTERM. Bound addresses are printed to stdout as
/// `listening <http|https|admin> <address>` (then `ready`), so a supervisor or a test can use
/// port 0.
pub async fn run(config: Config) -> Result<(), String> {
    let started = start(config).await?;
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening http {}", started.http);
        if let Some(https) = started.https {
            let _ = writeln!(out, "listening https {https}");
        }
        let _ = writeln!(out, "listening admin {}", started.admin);
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    shutdown_signal().await;
    info!("kip-gateway stopping");
    Ok(())
}

fn local(listener: &TcpListener) -> Result<SocketAddr, String> {
    listener
        .local_addr()
        .map_err(|err| format!("cannot read the listening address: {err}"))
}

/// The address of the first of a worker listener set (all share it).
fn std_local(listeners: &[std::net::TcpListener]) -> Result<SocketAddr, String> {
    listeners
        .first()
        .ok_or_else(|| "no listener was bound".to_owned())?
        .local_addr()
        .map_err(|err| format!("cannot read the listening address: {err}"))
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            warn!("cannot watch SIGTERM: {err}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
