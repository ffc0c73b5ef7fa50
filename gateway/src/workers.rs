//! Thread per core: the proxy runs on N worker threads, each a single-threaded tokio runtime
//! with its own `SO_REUSEPORT` listener and its own pool of connections to clusters.
//!
//! Why not one work-stealing runtime: a proxied request wakes two tasks (the client
//! connection's and the pooled cluster connection's). On a shared scheduler those often run
//! on different threads, so every request pays cross-thread wake-ups (futex) and cache misses.
//! Here the kernel spreads connections over the workers' listeners, and everything one client
//! connection causes (its cluster connections included) stays on the thread that accepted it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::serve::{Limits, accept_loop};

/// The accept backlog, the same as `tokio::net::TcpListener::bind` uses.
const BACKLOG: i32 = 1024;

/// `count` listening sockets on one address, sharing it with `SO_REUSEPORT` so the kernel
/// balances new connections between them. With port 0 the first socket picks the port and
/// the others join it.
pub fn bind_shared(
    what: &str,
    address: SocketAddr,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, String> {
    let fail = |err: std::io::Error| format!("cannot listen for {what} on {address}: {err}");
    let mut listeners = Vec::with_capacity(count);
    let mut address = address;
    for _ in 0..count.max(1) {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(fail)?;
        // SO_REUSEADDR as tokio and std set it: a restart is not refused by TIME_WAIT sockets.
        socket.set_reuse_address(true).map_err(fail)?;
        socket.set_reuse_port(true).map_err(fail)?;
        socket.set_nonblocking(true).map_err(fail)?;
        socket.bind(&address.into()).map_err(fail)?;
        socket.listen(BACKLOG).map_err(fail)?;
        let listener = std::net::TcpListener::from(socket);
        if address.port() == 0 {
            address = listener.local_addr().map_err(fail)?;
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Keeps a timer due within a second on the worker's runtime, so its timer driver always
/// plans to wake up soon.
///
/// Why: tokio writes to the runtime's eventfd (a syscall) whenever a timer is registered that
/// is due before the driver's planned wake-up, even from the runtime's own thread. Every
/// request registers timers (hyper's header-read timeout when a keep-alive connection waits
/// for its next request, the response timeout), and without a near timer most of them landed
/// before the planned wake-up: ~0.2 extra `write` syscalls per request (measured with strace).
/// With this tick, timers of a second or more never do. The cost is one wake-up per second,
/// which also sweeps the worker's cluster pool.
async fn heartbeat(proxy: Arc<Proxy>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        proxy.tick();
    }
}

/// What one worker serves: its share of the listeners and its own proxy (own cluster pool).
pub struct Worker {
    pub http: std::net::TcpListener,
    pub https: Option<(std::net::TcpListener, tokio_rustls::TlsAcceptor)>,
    pub proxy: Proxy,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
}

/// Starts `worker` on a new thread named `kip-gateway-<index>`. Returns once its runtime runs
/// and its listeners are registered, or with the reason it could not start.
pub fn spawn(index: usize, worker: Worker) -> Result<(), String> {
    let (ready, started) = mpsc::sync_channel::<Result<(), String>>(1);
    std::thread::Builder::new()
        .name(format!("kip-gateway-{index}"))
        .spawn(move || run(index, worker, ready))
        .map_err(|err| format!("cannot start worker thread {index}: {err}"))?;
    started
        .recv()
        .map_err(|_| format!("worker thread {index} ended while starting"))?
}

fn run(index: usize, worker: Worker, ready: mpsc::SyncSender<Result<(), String>>) {
    // Shard 0 is the main thread's.
    crate::metrics::use_shard(index + 1);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = ready.send(Err(format!("cannot start a worker runtime: {err}")));
            return;
        }
    };
    runtime.block_on(async move {
        // Registering with the reactor needs the runtime's context, so it happens here.
        let register = |listener: std::net::TcpListener| {
            TcpListener::from_std(listener)
                .map_err(|err| format!("cannot register a listener with the runtime: {err}"))
        };
        let http = match register(worker.http) {
            Ok(listener) => listener,
            Err(err) => {
                let _ = ready.send(Err(err));
                return;
            }
        };
        let https = match worker
            .https
            .map(|(l, acceptor)| register(l).map(|l| (l, acceptor)))
        {
            Some(Err(err)) => {
                let _ = ready.send(Err(err));
                return;
            }
            Some(Ok(https)) => Some(https),
            None => None,
        };
        let proxy = Arc::new(worker.proxy);
        if let Some((listener, acceptor)) = https {
            tokio::spawn(accept_loop(
                listener,
                Some(acceptor),
                worker.limits.clone(),
                worker.metrics.clone(),
                proxy.clone(),
            ));
        }
        tokio::spawn(heartbeat(proxy.clone()));
        let _ = ready.send(Ok(()));
        accept_loop(http, None, worker.limits, worker.metrics, proxy).await;
    });
}
