//! Connections to clusters: HTTP/1.1 over hyper's connection-level client, pooled per worker
//! thread (each [`crate::proxy::Proxy`] owns one [`Pool`]).
//!
//! Why not hyper-util's pooled `Client`: per request it clones the connector, hashes
//! (scheme, authority) under a lock, and for every response with a body spawns one more task
//! that puts the connection back once the body has been read. Here a connection goes back to
//! the idle list as soon as the response headers arrive, and a checkout takes the first one
//! that is ready again (its previous response fully read, which hyper tracks), so a request
//! costs no extra task. A request that could not be sent on a pooled connection (it closed
//! meanwhile) is retried once on a new one, as hyper-util does.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Request, Response, Uri};
use tower_service::Service as _;
use tracing::debug;

use crate::proxy::Connector;
use crate::registry::Backend;

/// A connection to check ready connections of, at most, before opening a new one: bounds the
/// work of a checkout when many pooled connections are busy streaming long bodies.
const SCAN: usize = 16;

/// Why a cluster could not be asked.
#[derive(Debug)]
pub enum PoolError {
    Connect(String),
    Http(hyper::Error),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Connect(msg) => write!(f, "cannot connect: {msg}"),
            PoolError::Http(err) => write!(f, "{err}"),
        }
    }
}

struct Pooled {
    sender: http1::SendRequest<Incoming>,
    /// When the connection last went back to the pool.
    since: Instant,
}

type Key = (SocketAddr, bool);

/// One worker's connections to clusters, by address and TLS.
pub struct Pool {
    connector: Connector,
    idle_timeout: Duration,
    max_buf_size: usize,
    // Only the owning worker thread locks it, so it is never contended; a Mutex (not a
    // RefCell) because the proxy is shared through `Arc` and must be `Sync`.
    idle: Mutex<HashMap<Key, VecDeque<Pooled>>>,
}

impl Pool {
    pub fn new(connector: Connector, idle_timeout: Duration, max_buf_size: usize) -> Pool {
        Pool {
            connector,
            idle_timeout,
            max_buf_size,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `req` to `backend` on a pooled connection, or a new one.
    pub async fn send(
        &self,
        backend: &Backend,
        req: Request<Incoming>,
    ) -> Result<Response<Incoming>, PoolError> {
        let key = (backend.address, backend.tls);
        let mut req = req;
        if let Some(mut sender) = self.checkout(key) {
            match sender.try_send_request(req).await {
                Ok(response) => {
                    self.checkin(key, sender);
                    return Ok(response);
                }
                Err(mut err) => match err.take_message() {
                    // Never written: the connection closed under us. Retry on a new one.
                    Some(unsent) => req = unsent,
                    None => return Err(PoolError::Http(err.into_error())),
                },
            }
        }
        let mut sender = self.connect(backend).await?;
        let response = sender.send_request(req).await.map_err(PoolError::Http)?;
        self.checkin(key, sender);
        Ok(response)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Pooled>>> {
        // A panic while holding it cannot leave the map inconsistent (single operations).
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first ready connection; closed and expired ones are dropped on the way, busy ones
    /// (still reading a response) go to the back.
    fn checkout(&self, key: Key) -> Option<http1::SendRequest<Incoming>> {
        let mut idle = self.lock();
        let list = idle.get_mut(&key)?;
        let now = Instant::now();
        for _ in 0..list.len().min(SCAN) {
            let pooled = list.pop_front()?;
            if pooled.sender.is_closed() || now.duration_since(pooled.since) > self.idle_timeout {
                continue;
            }
            if pooled.sender.is_ready() {
                return Some(pooled.sender);
            }
            list.push_back(pooled);
        }
        None
    }

    fn checkin(&self, key: Key, sender: http1::SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        self.lock().entry(key).or_default().push_back(Pooled {
            sender,
            since: Instant::now(),
        });
    }

    /// Closes connections idle longer than the idle timeout and forgets closed ones.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut idle = self.lock();
        idle.retain(|_, list| {
            list.retain(|p| {
                !p.sender.is_closed() && now.duration_since(p.since) <= self.idle_timeout
            });
            !list.is_empty()
        });
    }

    async fn connect(&self, backend: &Backend) -> Result<http1::SendRequest<Incoming>, PoolError> {
        let scheme = if backend.tls { "https" } else { "http" };
        let uri: Uri = format!("{scheme}://{}/", backend.authority)
            .parse()
            .map_err(|err| PoolError::Connect(format!("{err}")))?;
        let io = self
            .connector
            .clone()
            .call(uri)
            .await
            .map_err(|err| PoolError::Connect(err.to_string()))?;
        let (sender, connection) = http1::Builder::new()
            // Bounds the read buffer per cluster connection (hyper's default grows to
            // ~400 KiB); large bodies stream through in 64 KiB pieces instead.
            .max_buf_size(self.max_buf_size)
            .handshake(io)
            .await
            .map_err(PoolError::Http)?;
        let address = backend.address;
        tokio::spawn(async move {
            // With upgrades, so a 101 hands the connection over to the WebSocket relay.
            if let Err(err) = connection.with_upgrades().await {
                debug!(%address, "cluster connection ended: {err}");
            }
        });
        Ok(sender)
    }
}
