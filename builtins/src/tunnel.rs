//! `tunnel::…`: a local port forwarded to a pod's port through the Kubernetes API, the way
//! `kubectl port-forward` does it, so a desktop client reaches a database that is not exposed.
//!
//! `tunnel::open` binds `127.0.0.1:<local port>` (and `[::1]` when it can, so clients that
//! resolve `localhost` to IPv6 connect too) and forwards every accepted connection through its
//! own port-forward stream (a WebSocket to the API server, framed by `kip_portforward`),
//! so many clients work at once and one failing connection never ends the others. A failure of
//! one connection is printed on stderr (each distinct message once per tunnel) and the tunnel
//! goes on serving.
//!
//! Signals: from the first `tunnel::open` on, SIGINT and SIGTERM are kip's. While a tunnel is
//! open they are kept for `tunnel::wait` (a Ctrl+C that comes just before the wait still ends
//! it); with no tunnel open they end the process as before (exit 130 / 143).

use crate::errors::Kind;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kip_portforward::{End, Pump, Role};
use kube::api::{Api, Portforwarder};
use rhai::plugin::*;
use rhai::{EvalAltResult, Map};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::host;
use crate::k8s::{Cluster, kube_error};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// How long a closing tunnel lets a connection's forwarder say goodbye to the API server.
pub(crate) const GOODBYE: Duration = Duration::from_secs(3);

/// A port-forward stream to one port of a pod: the bytes, the forwarder that carries them, and
/// the error the API server may report for the port (`connection refused` inside the pod…).
pub(crate) struct PodStream {
    pub(crate) stream: DuplexStream,
    pub(crate) forwarder: Portforwarder,
    pub(crate) error: PodError,
}

impl PodStream {
    /// Opens a port-forward to `port` of `ns/pod`.
    pub(crate) async fn open(
        client: kube::Client,
        ns: &str,
        pod: &str,
        port: u16,
    ) -> Result<PodStream, kube::Error> {
        let pods: Api<Pod> = Api::namespaced(client, ns);
        let mut forwarder = pods.portforward(pod, &[port]).await?;
        let stream = forwarder.take_stream(port).expect("the port asked for");
        let error = Box::pin(forwarder.take_error(port).expect("the port asked for"));
        Ok(PodStream {
            stream,
            forwarder,
            error,
        })
    }

    /// Ends the forward after the stream is done with: lets the forwarder close its WebSocket
    /// (bounded, so a silent server cannot hold us) and returns the error the server reported
    /// for the port, if any. kube-rs reports `SendAfterClosing` when the server closed first:
    /// that, like any end of the forwarder, is not the port's error.
    pub(crate) async fn finish(forwarder: Portforwarder, error: PodError) -> Option<String> {
        let _ = tokio::time::timeout(GOODBYE, forwarder.join()).await;
        tokio::time::timeout(GOODBYE, error).await.ok().flatten()
    }
}

pub(crate) type PodError = std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// An open tunnel.
struct Tunnel {
    shutdown: watch::Sender<bool>,
    task: Option<std::thread::JoinHandle<()>>,
    /// The signal count when the tunnel opened: a later signal ends its wait.
    signals_at_open: u64,
}

/// The open tunnels of one host ([`Host::tunnels`](host::Host::tunnels)), by id. Dropped with
/// the host: a tunnel still open then stops serving (its shutdown sender is gone).
#[derive(Default)]
pub struct Tunnels {
    open: HashMap<i64, Tunnel>,
    /// The id of the tunnel opened last; ids start at 1.
    last_id: i64,
}

impl Tunnels {
    /// Keeps `tunnel` under a new id, which it returns.
    fn add(&mut self, tunnel: Tunnel) -> i64 {
        self.last_id += 1;
        self.open.insert(self.last_id, tunnel);
        self.last_id
    }
}

/// How many tunnels are open in the process, whichever host opened them: signals are the
/// process's, and with none open they end it. Counts only; the tunnels are their hosts'.
static OPEN: AtomicUsize = AtomicUsize::new(0);

impl Tunnel {
    fn new(
        shutdown: watch::Sender<bool>,
        task: Option<std::thread::JoinHandle<()>>,
        signals_at_open: u64,
    ) -> Tunnel {
        OPEN.fetch_add(1, Ordering::SeqCst);
        Tunnel {
            shutdown,
            task,
            signals_at_open,
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::SeqCst);
    }
}

fn with_tunnels<T>(host: &host::Host, f: impl FnOnce(&mut Tunnels) -> T) -> T {
    let mut guard = host.tunnels.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut guard)
}

fn open_tunnels() -> usize {
    OPEN.load(Ordering::SeqCst)
}

/// SIGINT and SIGTERM, counted. Watched on a thread of its own (with its own small runtime), so
/// it outlives any one command's runtime.
fn signals() -> watch::Receiver<u64> {
    static SIGNALS: OnceLock<watch::Receiver<u64>> = OnceLock::new();
    SIGNALS
        .get_or_init(|| {
            let (tx, rx) = watch::channel(0u64);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("kip-signals".into())
                .spawn(move || watch_signals(tx, ready_tx))
                .expect("spawn the signal thread");
            // Registered before `open` returns, so no signal slips past between the two.
            let _ = ready_rx.recv();
            rx
        })
        .clone()
}

fn watch_signals(tx: watch::Sender<u64>, ready: std::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        let _ = ready.send(());
        return;
    };
    runtime.block_on(async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            let _ = ready.send(());
            return;
        };
        let _ = ready.send(());
        loop {
            let code = tokio::select! {
                _ = interrupt.recv() => 130,
                _ = terminate.recv() => 143,
            };
            if open_tunnels() == 0 {
                // What the signal would have done had kip not taken it.
                std::process::exit(code);
            }
            tx.send_modify(|count| *count += 1);
        }
    });
}

fn port_of(value: i64, what: &str, allow_zero: bool) -> RhaiResult<u16> {
    match u16::try_from(value) {
        Ok(port) if port > 0 || allow_zero => Ok(port),
        _ => Err(host::error(
            Kind::Invalid,
            format!("invalid {what} {value}: a port is between 1 and 65535"),
        )),
    }
}

fn id_of(handle: &Map) -> RhaiResult<i64> {
    handle
        .get("id")
        .and_then(|id| id.as_int().ok())
        .ok_or_else(|| {
            host::error(
                Kind::Invalid,
                "not a tunnel handle: no `id` (use what tunnel::open returned)",
            )
        })
}

/// The error for a local port another program holds.
fn in_use(port: u16) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("kind".into(), Kind::Conflict.name().into());
    map.insert("reason".into(), "in-use".into());
    map.insert("port".into(), Dynamic::from_int(port.into()));
    map.insert(
        "message".into(),
        format!("localhost:{port} is already in use on this machine: pick another local port")
            .into(),
    );
    host::error_map(map)
}

/// Binds the local side: `127.0.0.1:port` must be free, and so must `[::1]:port` where the
/// machine has IPv6 (a client that resolves `localhost` to `::1` must not reach another
/// program's server).
async fn bind(port: u16) -> RhaiResult<Vec<TcpListener>> {
    let v4 = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => in_use(port),
            _ => host::error(Kind::Io, format!("cannot listen on localhost:{port}: {e}")),
        })?;
    let any_port = port == 0;
    let port = v4.local_addr().map(|a| a.port()).unwrap_or(port);
    let mut listeners = vec![v4];
    match TcpListener::bind(("::1", port)).await {
        Ok(v6) => listeners.push(v6),
        // A port the caller named; one the OS picked for IPv4 only is still a free port.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && !any_port => {
            return Err(in_use(port));
        }
        // No IPv6 loopback here: IPv4 alone is what `localhost` means then.
        Err(_) => {}
    }
    Ok(listeners)
}

/// Where a tunnel forwards to.
#[derive(Clone)]
struct Target {
    client: kube::Client,
    namespace: String,
    pod: String,
    port: u16,
    /// The messages already printed, so a client retrying in a loop does not flood stderr.
    reported: Arc<Mutex<HashSet<String>>>,
}

impl Target {
    fn report(&self, message: &str) {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if reported.insert(message.to_string()) {
            eprintln!(
                "warning: tunnel to {}/{} port {}: {message}",
                self.namespace, self.pod, self.port
            );
        }
    }
}

/// Serves a tunnel on a thread of its own, with a single-threaded runtime and a cluster client
/// made in it, so the sockets of its connections (local and API server) are polled by the
/// thread that carries their bytes. On kip's shared two-worker runtime each event went
/// through the worker polling for I/O, which often woke the other worker for nothing: a
/// fifth more CPU per small request, and fewer requests per second under load. Without a
/// client of its own (the factory failing) the tunnel uses the command's.
fn spawn_serving(
    host: &Arc<host::Host>,
    listeners: Vec<TcpListener>,
    mut target: Target,
    shutdown: watch::Receiver<bool>,
) -> RhaiResult<std::thread::JoinHandle<()>> {
    let listeners = listeners
        .into_iter()
        .map(|l| l.into_std())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| host::error(Kind::Io, format!("cannot hand the listener over: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| host::error(Kind::Io, format!("cannot start the tunnel's runtime: {e}")))?;
    // Making a client spawns its connection task: inside the tunnel's runtime.
    if let Ok(own) = {
        let _inside = runtime.enter();
        (host.choice().client)()
    } {
        target.client = own.client;
    }
    std::thread::Builder::new()
        .name("kip-tunnel".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listeners = listeners
                    .into_iter()
                    .filter_map(|l| TcpListener::from_std(l).ok())
                    .collect();
                serve(listeners, target, shutdown).await;
            });
        })
        .map_err(|e| host::error(Kind::Io, format!("cannot start the tunnel's thread: {e}")))
}

/// Accepts connections until told to stop, then ends the ones still open and waits for them.
async fn serve(listeners: Vec<TcpListener>, target: Target, mut shutdown: watch::Receiver<bool>) {
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel::<TcpStream>(16);
    let mut acceptors = JoinSet::new();
    for listener in listeners {
        let conn_tx = conn_tx.clone();
        let target = target.clone();
        acceptors.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((conn, _)) => {
                        if conn_tx.send(conn).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: say so, breathe, go on.
                        target.report(&format!("cannot accept a connection: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    drop(conn_tx);
    let for_connections = shutdown.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            conn = conn_rx.recv() => match conn {
                Some(conn) => {
                    connections.spawn(forward(conn, target.clone(), for_connections.clone()));
                }
                None => break,
            },
            // Reap finished connections so the set does not grow with the tunnel's age.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    acceptors.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// The upgraded connection of a port-forward WebSocket to the API server.
type PortForwardSocket = TokioIo<hyper::upgrade::Upgraded>;

/// The WebSocket subprotocols offered, preferred first: v5 adds only a close signal (a channel
/// of its own, which the pump ignores), v4 is what every API server speaks.
const SUBPROTOCOLS: &str = "v5.channel.k8s.io, v4.channel.k8s.io";

/// Opens a port-forward WebSocket to `port` of `ns/pod`, for one connection: kube's
/// `Client::connect` does the same handshake, but hands back tungstenite's stream, and the
/// pump frames the raw connection itself.
async fn open_socket(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    port: u16,
) -> Result<PortForwardSocket, kube::Error> {
    use hyper::header::{self, HeaderValue};
    use kube::client::UpgradeConnectionError as Upgrade;
    let request = kube::core::Request::new(<Pod as kube::Resource>::url_path(&(), Some(ns)))
        .portforward(pod, &[port])
        .map_err(kube::Error::BuildRequest)?;
    let (mut parts, body) = request.into_parts();
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let headers = &mut parts.headers;
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOLS),
    );
    if let Ok(value) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, value);
    }
    let request = hyper::Request::from_parts(parts, kube::client::Body::from(body));
    let response = client.send(request).await?;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let status = serde_json::from_slice::<kube::core::Status>(&body).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&body);
            kube::core::Status::failure(text.trim(), "Failed to parse error data")
                .with_code(status.as_u16())
        });
        return Err(kube::Error::Api(status.boxed()));
    }
    if status != hyper::StatusCode::SWITCHING_PROTOCOLS {
        return Err(kube::Error::UpgradeConnection(Upgrade::ProtocolSwitch(
            status,
        )));
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if response
        .headers()
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .is_none_or(|h| h != accept.as_str())
    {
        return Err(kube::Error::UpgradeConnection(
            Upgrade::SecWebSocketAcceptKeyMismatch,
        ));
    }
    let chosen = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|h| h.to_str().ok());
    if !matches!(chosen, Some("v4.channel.k8s.io" | "v5.channel.k8s.io")) {
        return Err(kube::Error::UpgradeConnection(
            Upgrade::SecWebSocketProtocolMismatch,
        ));
    }
    match hyper::upgrade::on(response).await {
        Ok(upgraded) => Ok(TokioIo::new(upgraded)),
        Err(e) => Err(kube::Error::UpgradeConnection(Upgrade::GetPendingUpgrade(
            e,
        ))),
    }
}

/// One client connection, forwarded through its own port-forward stream.
async fn forward(conn: TcpStream, target: Target, mut shutdown: watch::Receiver<bool>) {
    let _ = conn.set_nodelay(true);
    let opened = tokio::select! {
        _ = shutdown.wait_for(|stop| *stop) => return,
        opened = open_socket(&target.client, &target.namespace, &target.pod, target.port) => opened,
    };
    let socket = match opened {
        Ok(socket) => socket,
        Err(e) => {
            target.report(&crate::host::message_of(&kube_error(e)));
            return;
        }
    };
    pump(conn, socket, shutdown, |message| target.report(message)).await;
}

/// Carries bytes between a client connection and its port-forward WebSocket in this one task
/// (the shared pump: no channels or extra tasks between the two sockets, frames built and read
/// in place), then closes the WebSocket. The error the server reported for the port
/// (`connection refused` inside the pod…) goes to `report` before the client's connection is
/// closed, so a client that sees its connection end can already read why. Either side ending
/// ends the connection: a port-forward has no half-close.
async fn pump<S>(
    conn: TcpStream,
    socket: S,
    mut shutdown: watch::Receiver<bool>,
    report: impl FnOnce(&str),
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut pump = Pump::new(conn, socket, Role::Client, mask_seed());
    let end = tokio::select! {
        end = pump.run() => end,
        _ = shutdown.wait_for(|stop| *stop) => End::Local,
    };
    if let End::PortError(message) = &end {
        report(message);
    }
    let _ = pump.local_mut().shutdown().await;
    // Say goodbye to the API server (or answer its close), bounded so a silent server cannot
    // hold us.
    pump.close(&end, GOODBYE).await;
}

/// A random seed for a connection's WebSocket masking keys.
fn mask_seed() -> u64 {
    let mut seed = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
    u64::from_ne_bytes(seed)
}

/// Tunnels from local ports to pods, registered as the `tunnel` namespace.
#[export_module]
pub mod tunnel_module {
    use super::*;

    /// Listens on `localhost:local_port` and forwards every connection to `remote_port` of pod
    /// `pod` in namespace `ns` through the Kubernetes API (each connection its own port-forward
    /// stream, many at once). `local_port` 0 picks a free port. Returns the handle
    /// `#{id, local_port, namespace, pod, remote_port}`; the tunnel serves in the background
    /// until `tunnel::wait` or `tunnel::close`.
    ///
    /// Errors: `invalid` with reason `in-use` (and `port`) when the local port is taken,
    /// `invalid` for a bad port, `not-found` when the pod does not exist,
    /// `unreachable` when the cluster cannot be reached.
    ///
    /// Example: `let t = tunnel::open("shop-prod", "db-0", 5432, 15432); print(t.local_port);`
    #[rhai_fn(return_raw)]
    pub fn open(
        ctx: NativeCallContext,
        ns: &str,
        pod: &str,
        remote_port: i64,
        local_port: i64,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let remote = port_of(remote_port, "remote port", false)?;
            let local = port_of(local_port, "local port", true)?;
            let k = Cluster::of(&ctx)?;
            k.host.reach.everything("tunnel::open")?;
            let client = k.client.clone();
            let listeners = k.run(async {
                let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
                pods.get(pod).await.map_err(kube_error)?;
                bind(local).await
            })?;
            let bound = listeners[0].local_addr().map(|a| a.port()).unwrap_or(local);
            let signals_at_open = *signals().borrow();
            let (shutdown, shutdown_rx) = watch::channel(false);
            let target = Target {
                client,
                namespace: ns.to_string(),
                pod: pod.to_string(),
                port: remote,
                reported: Arc::default(),
            };
            let task = spawn_serving(&k.host, listeners, target, shutdown_rx)?;
            let tunnel = Tunnel::new(shutdown, Some(task), signals_at_open);
            let id = with_tunnels(&k.host, |t| t.add(tunnel));
            let mut handle = Map::new();
            handle.insert("id".into(), Dynamic::from_int(id));
            handle.insert("local_port".into(), Dynamic::from_int(bound.into()));
            handle.insert("namespace".into(), ns.into());
            handle.insert("pod".into(), pod.into());
            handle.insert("remote_port".into(), Dynamic::from_int(remote.into()));
            Ok(handle)
        })
    }

    /// Serves the tunnel until Ctrl+C (SIGINT) or SIGTERM, then closes it (as `tunnel::close`)
    /// and returns. A signal that arrived after `tunnel::open` counts, so a Ctrl+C just before
    /// the wait is not lost. Returns at once for a closed tunnel.
    ///
    /// Example: `let t = tunnel::open(ns, "db-0", 5432, 5432); tunnel::wait(t); ui::step("Tunnel closed");`
    #[rhai_fn(return_raw)]
    pub fn wait(ctx: rhai::NativeCallContext, handle: Map) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let id = id_of(&handle)?;
            let host = host::host(&ctx)?;
            let Some(seen) = with_tunnels(&host, |t| t.open.get(&id).map(|t| t.signals_at_open))
            else {
                return Ok(());
            };
            let mut signals = signals();
            // What the script printed before waiting (`Press Ctrl+C…`) must be seen now.
            let _ = std::io::Write::flush(&mut std::io::stdout());
            host.block_on(async {
                let _ = signals.wait_for(|count| *count > seen).await;
            });
            close_tunnel(&host, id);
            Ok(())
        })
    }

    /// Stops accepting connections, ends the ones still open and waits until they are gone.
    /// Closing a closed tunnel does nothing.
    ///
    /// Example: `let t = tunnel::open(ns, "db-0", 5432, 0); /* … */ tunnel::close(t);`
    #[rhai_fn(return_raw)]
    pub fn close(ctx: rhai::NativeCallContext, handle: Map) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let id = id_of(&handle)?;
            let host = host::host(&ctx)?;
            close_tunnel(&host, id);
            Ok(())
        })
    }
}

fn close_tunnel(host: &host::Host, id: i64) {
    let task = with_tunnels(host, |t| {
        t.open.get_mut(&id).and_then(|tunnel| {
            let _ = tunnel.shutdown.send(true);
            tunnel.task.take()
        })
    });
    if let Some(task) = task {
        // Scripts run on a blocking thread: waiting here holds no runtime worker.
        let _ = task.join();
    }
    // Deregistered only now: a signal during the close is still the tunnel's, not the end of
    // the process.
    with_tunnels(host, |t| t.open.remove(&id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::testing;

    #[test]
    fn two_hosts_keep_separate_tunnels() {
        let runtime = testing::runtime();
        let a = testing::host(&runtime, "a", Arc::default());
        let b = testing::host(&runtime, "b", Arc::default());
        let before = open_tunnels();
        let (shutdown, told) = watch::channel(false);
        let id = with_tunnels(&a, |t| t.add(Tunnel::new(shutdown, None, 0)));
        assert_eq!(id, 1);
        assert_eq!(open_tunnels(), before + 1);
        // b has no tunnel 1 to close; its first tunnel is its own 1.
        close_tunnel(&b, id);
        assert!(with_tunnels(&a, |t| t.open.contains_key(&id)));
        let (other, _told_other) = watch::channel(false);
        assert_eq!(with_tunnels(&b, |t| t.add(Tunnel::new(other, None, 0))), 1);
        assert_eq!(open_tunnels(), before + 2);
        // A host's tunnels end with it.
        drop(a);
        assert!(
            told.has_changed().is_err(),
            "a dropped host's tunnel is told to stop"
        );
        assert_eq!(open_tunnels(), before + 1);
        close_tunnel(&b, 1);
        assert_eq!(open_tunnels(), before);
    }
}
