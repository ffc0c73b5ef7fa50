//! Connections to clusters, pooled per worker thread (each [`crate::proxy::Proxy`] owns one
//! [`Pool`]), and the exchange of one request on them (see [`crate::upstream`]).
//!
//! A connection leaves the idle list for one request and comes back when its response body
//! was read to the end (or at once for a response without a body). The most recently used
//! connection goes out first: it is the one least likely to have been closed by its cluster.
//! A request that got no answer on a reused connection (the cluster closed it while idle) is
//! sent once more on a new one when that is safe (see [`upstream::may_retry`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::policy::Policy;
use crate::registry::Backend;
use crate::upstream::{self, Answer, Conn, ExchangeError, Release, ResponseBody, Stream, Upload};

/// Why a cluster could not be asked.
#[derive(Debug)]
pub enum PoolError {
    Connect(String),
    Exchange(ExchangeError),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Connect(msg) => write!(f, "cannot connect: {msg}"),
            PoolError::Exchange(err) => write!(f, "{err}"),
        }
    }
}

struct Idle {
    conn: Box<Conn>,
    /// When the connection last went back to the pool.
    since: Instant,
}

type Key = (SocketAddr, bool);

/// One worker's connections to clusters, by address and TLS.
pub struct Pool {
    tls: TlsConnector,
    /// Checked again before every new connection: which addresses are this machine's own can
    /// change after a cluster registered.
    policy: Arc<Policy>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    // Only the owning worker thread locks it, so it is never contended; a Mutex (not a
    // RefCell) because response bodies hand connections back through `Release`, which
    // must be `Sync`.
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
}

impl Release for Pool {
    fn release(&self, conn: Box<Conn>) {
        self.lock().entry(conn.key).or_default().push(Idle {
            conn,
            since: Instant::now(),
        });
    }
}

impl Pool {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        policy: Arc<Policy>,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Pool {
        Pool {
            tls: TlsConnector::from(tls),
            policy,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `req` to `backend` on a pooled connection, or a new one, and returns the
    /// response with its body still to be read from the cluster. The response head must
    /// arrive within `timeout` of sending; connecting has its own timeout.
    pub async fn send(
        self: &Arc<Self>,
        backend: &Backend,
        req: Request<Incoming>,
        timeout: Duration,
    ) -> Result<Response<ResponseBody>, PoolError> {
        let key = (backend.address, backend.tls);
        let (mut parts, body) = req.into_parts();
        let upload = Upload::prepare(body, &mut parts.headers);
        let retry = upstream::may_retry(&parts.method, upload.is_some());
        let head_request = parts.method == Method::HEAD;
        let mut pooled = self.checkout(key);
        let mut head = pooled
            .as_mut()
            .map(|conn| conn.take_head_buffer())
            .unwrap_or_default();
        upstream::encode_head(&parts, &mut head);
        // The request's header values share hyper's read buffer: let go of them now, so
        // hyper can reuse that buffer instead of allocating a new one per request.
        drop(parts);
        let mut upload = upload;
        if let Some(conn) = pooled {
            match upstream::exchange(conn, &head, upload.take(), head_request, timeout).await {
                Ok(answer) => return Ok(self.respond(answer, head)),
                Err(ExchangeError::Unanswered(_)) if retry => {}
                Err(err) => return Err(PoolError::Exchange(err)),
            }
        }
        let conn = self.connect(backend).await?;
        let answer = upstream::exchange(conn, &head, upload, head_request, timeout)
            .await
            .map_err(PoolError::Exchange)?;
        Ok(self.respond(answer, head))
    }

    fn respond(self: &Arc<Self>, answer: Answer, head: BytesMut) -> Response<ResponseBody> {
        let Answer {
            response,
            framing,
            mut conn,
            upload,
        } = answer;
        conn.keep_head_buffer(head);
        let release: Arc<dyn Release> = self.clone();
        response.map(|()| ResponseBody::new(conn, framing, upload, release))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Idle>>> {
        // A panic while holding it cannot leave the map inconsistent (single operations).
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used connection that is still open; expired ones are dropped.
    fn checkout(&self, key: Key) -> Option<Box<Conn>> {
        let mut idle = self.lock();
        let list = idle.get_mut(&key)?;
        let now = Instant::now();
        while let Some(Idle { conn, since }) = list.pop() {
            if now.duration_since(since) > self.idle_timeout {
                // The rest went back earlier still.
                list.clear();
                return None;
            }
            if conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    /// Closes connections idle longer than the idle timeout and those the cluster closed.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut idle = self.lock();
        idle.retain(|_, list| {
            list.retain(|i| {
                now.duration_since(i.since) <= self.idle_timeout && i.conn.is_reusable()
            });
            !list.is_empty()
        });
    }

    async fn connect(&self, backend: &Backend) -> Result<Box<Conn>, PoolError> {
        if let Err(reason) = self.policy.check(backend.address) {
            tracing::warn!(cluster = %backend.id, "not connecting: {reason}");
            return Err(PoolError::Connect(reason));
        }
        let connect = async {
            let tcp = TcpStream::connect(backend.address)
                .await
                .map_err(|err| err.to_string())?;
            let _ = tcp.set_nodelay(true);
            if !backend.tls {
                return Ok(Stream::Plain(tcp));
            }
            let name = ServerName::IpAddress(backend.address.ip().into());
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|err| format!("TLS: {err}"))?;
            Ok(Stream::Tls(Box::new(tls)))
        };
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(stream)) => Ok(Conn::new((backend.address, backend.tls), stream)),
            Ok(Err(msg)) => Err(PoolError::Connect(msg)),
            Err(_) => Err(PoolError::Connect(format!(
                "no connection within {:?}",
                self.connect_timeout
            ))),
        }
    }
}
