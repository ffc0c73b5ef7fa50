//! kip-instance-id: a sidecar in an app's pod that forwards HTTP from `app port + 10000` to
//! the app on `127.0.0.1:PORT` (or `[::1]:PORT` if the app listens there only) and adds `X-Instance-ID` (the first 8 hex characters of
//! SHA-256 of the pod name) to every response, so users can tell which replica answered.
//!
//! Client → Traefik → Service:PORT → sidecar :PORT+10000 → app 127.0.0.1:PORT.
//!
//! Settings (flags win over the environment; `--help` lists them):
//!
//! | flag | environment | default |
//! |---|---|---|
//! | `--upstream-port PORT` | `KIP_UPSTREAM_PORT` | required: the app's container port |
//! | `--listen-port PORT` | `KIP_LISTEN_PORT` | the upstream port + 10000 (an app port above 55535 is refused unless this is set) |
//! | `--listen-addr IP` | `KIP_LISTEN_ADDR` | `[::]` (IPv4 too), `0.0.0.0` where the pod has no IPv6 |
//! | `--pod-name NAME` | `POD_NAME`, then `HOSTNAME` | required: set `POD_NAME` from the Downward API (`fieldRef: metadata.name`) |
//! | `--log-errors` | `KIP_LOG_ERRORS=1` (or `true`, `yes`) | off; on, the app's failures go to stderr (why a 502, a response the app cut short), never client cancels |
//!
//! In the Deployment: the container's `ports` is `PORT + 10000`, the Service's `targetPort`
//! points at it, resources 10m/16Mi requested and 50m/32Mi limits. The image is built with
//! `instance-id/image/build TAG [REGISTRY]` (buildah, no base image; runs as uid 65532;
//! entrypoint `/usr/local/bin/kip-instance-id`: settings in `env`, or flags in `args`).
//!
//! Costs (BENCHMARKS.md, "Instance-ID sidecar"): 3 MB resident idle; about 31 KB per open
//! keep-alive client connection (it holds one to the app too) and 50–60 KB per busy one, so
//! the 32 Mi limit holds roughly 450 busy connections; about 15 µs of CPU per request, so the
//! 50m limit carries roughly 3,000 small requests/s.
//!
//! Behaviour: one start line on stdout, nothing per request; a bad setting is one line on
//! stderr and exit code 2. Bodies stream both ways; WebSocket (any `Connection: upgrade`)
//! is passed through and bridged after the 101. The app unreachable → 502 with a short text
//! body. SIGTERM: stop accepting, let in-flight requests and upgraded connections finish
//! (at most 25 s), exit 0. The pod's other containers get SIGTERM at the same moment, and
//! Service endpoints take a moment to drop the pod, so a `preStop` sleep on the pod's
//! containers is what keeps late requests from being refused.

mod config;
mod instance;
mod proxy;
mod upgrade;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use config::{Command, Config};
use proxy::Proxy;

/// How long in-flight requests and upgraded connections may take to finish after SIGTERM.
/// Below Kubernetes' default 30 s grace period, so the sidecar leaves on its own terms
/// rather than being killed mid-answer.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Probes for client connections that went quiet: a client that vanished without closing
/// (its node died) would otherwise keep its connection, and the memory behind it, forever,
/// since an idle keep-alive connection has no timeout of its own. Dead after about 2 minutes.
const TCP_KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10))
    .with_retries(6);

/// A token held by everything shutdown must wait for (client connections, upgraded bridges).
/// Nothing is ever sent: the channel closing, when the last token is dropped, is the signal.
pub type Alive = mpsc::Sender<()>;

fn main() -> ExitCode {
    let config = match config::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            println!("{}", config::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("kip-instance-id {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("kip-instance-id: {err}");
            return ExitCode::from(2);
        }
    };
    // One thread: the sidecar's CPU limit is a twentieth of a core, so more workers would
    // only add memory and cross-thread wake-ups.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kip-instance-id: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kip-instance-id: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let listener = listen(config.listen_addr, config.listen_port).await?;
    let local = listener
        .local_addr()
        .map_err(|err| format!("cannot read the listen address: {err}"))?;
    let id = instance::instance_id(&config.pod_name);
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let proxy = Arc::new(Proxy::new(
        config.upstream_port,
        &id,
        config.log_errors,
        alive,
    ));
    let (stop, stopping) = watch::channel(false);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|err| format!("cannot watch for SIGTERM: {err}"))?;
    println!(
        "kip-instance-id: listening on {local}, upstream localhost:{} (127.0.0.1, else [::1]), X-Instance-ID {id} (pod {})",
        config.upstream_port, config.pod_name
    );

    let mut server = http1::Builder::new();
    // The timer lets hyper enforce its header read timeout (30 s) on clients that send a
    // request head slowly; it does not close idle keep-alive connections.
    server
        .timer(TokioTimer::new())
        .max_buf_size(proxy::MAX_BUF_SIZE);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, most likely: back off rather than spin.
                    if config.log_errors {
                        eprintln!("kip-instance-id: accept failed: {err}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = sigterm.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&TCP_KEEPALIVE);
        let proxy = proxy.clone();
        let log_errors = config.log_errors;
        let mut stopping = stopping.clone();
        let conn = server
            .serve_connection(
                TokioIo::new(stream),
                service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { proxy.handle(req).await }
                }),
            )
            .with_upgrades();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = async { stopping.wait_for(|stop| *stop).await.map(drop) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            // Most errors are the client going away (a cancel, a reset, a timeout): nothing
            // the app's operators can act on, so never reported. A "user" error is the
            // response body failing, and that body is the app's.
            if let Err(err) = result
                && log_errors
                && err.is_user()
            {
                eprintln!(
                    "kip-instance-id: the app's response was cut short: {}",
                    proxy::chain(&err)
                );
            }
        });
    }

    // Stop taking connections, let open ones finish what they are doing, then leave.
    drop(listener);
    let _ = stop.send(true);
    drop(proxy);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv()).await;
    Ok(())
}

/// Binds all interfaces by default: `[::]`, which takes IPv4 too, or `0.0.0.0` in a pod
/// without IPv6.
async fn listen(addr: Option<IpAddr>, port: u16) -> Result<TcpListener, String> {
    let bind = |ip: IpAddr| async move {
        let addr = SocketAddr::new(ip, port);
        TcpListener::bind(addr)
            .await
            .map_err(|err| format!("cannot listen on {addr}: {err}"))
    };
    match addr {
        Some(ip) => bind(ip).await,
        None => match bind(IpAddr::V6(Ipv6Addr::UNSPECIFIED)).await {
            Ok(listener) => Ok(listener),
            Err(_) => bind(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await,
        },
    }
}
