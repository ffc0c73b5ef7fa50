//! The sandbox's ingress controller for real traffic: an HTTP/1.1 reverse proxy that routes by
//! the cluster's `Ingress` objects the way k3s's Traefik does, for what kip creates (host and
//! path rules, Traefik's `stripPrefix` and `redirectRegex` Middlewares), and forwards to the
//! ready addresses of the backend Service's `Endpoints`.
//!
//! Routing reads the store on every request, so an edited Ingress, Middleware or Endpoints
//! takes effect with the next request. The proxy connects only to addresses its `reachable`
//! check approves (the pods that really run), and answers in words when it cannot.

mod backend;
mod body;
mod forward;
mod middleware;
mod routing;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::store::Store;
use middleware::Middleware;

/// Whether an endpoint address may be connected to.
pub type Reachable = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// How long connecting to a pod may take before the client gets a 504.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a pod may take to begin its answer. Traefik has no limit by default; a sandbox
/// request silent this long is stuck, and the client learns so instead of waiting for good.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long open connections get to finish when the proxy stops.
const DRAIN: Duration = Duration::from_secs(1);

/// The ingress proxy; [`IngressProxy::serve`] runs it.
pub struct IngressProxy {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    reachable: Reachable,
    upstream: forward::Upstream,
    turns: backend::RoundRobin,
    connect_timeout: Duration,
    answer_timeout: Duration,
    /// Set when the proxy stops. Connections and upgraded connections (which outlive their
    /// HTTP ones) hold its receivers, so all have ended once it has none.
    stopped: watch::Sender<bool>,
}

impl IngressProxy {
    /// `reachable` says whether an endpoint address may be connected to (the kubelet's live
    /// pod IPs; loopback in tests).
    pub fn new(store: Store, reachable: Reachable) -> Self {
        Self::with_timeouts(store, reachable, CONNECT_TIMEOUT, ANSWER_TIMEOUT)
    }

    /// Like [`IngressProxy::new`] with other limits for connecting to a pod and for the pod
    /// to begin answering (both answered with a 504 when exceeded).
    pub fn with_timeouts(
        store: Store,
        reachable: Reachable,
        connect: Duration,
        answer: Duration,
    ) -> Self {
        let shared = Shared {
            store,
            reachable,
            upstream: forward::client(connect),
            turns: backend::RoundRobin::default(),
            connect_timeout: connect,
            answer_timeout: answer,
            stopped: watch::Sender::new(false),
        };
        IngressProxy {
            shared: Arc::new(shared),
        }
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let local_port = listener.local_addr()?.port();
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors or an aborted handshake: the listener still works.
                        tracing::warn!("ingress proxy: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            let shared = self.shared.clone();
            let stopping = shared.stopped.subscribe();
            tokio::spawn(connection(shared, tcp, peer, local_port, stopping));
        }
        drop(listener);
        self.shared.stopped.send_replace(true);
        let _ = tokio::time::timeout(DRAIN, self.shared.stopped.closed()).await;
        Ok(())
    }
}

/// Serves one client connection, finishing its current request when the proxy stops.
async fn connection(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    local_port: u16,
    mut stopping: watch::Receiver<bool>,
) {
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req, peer, local_port).await) }
    });
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stopping.wait_for(|stop| *stop) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// Everything decided under one read of the store.
struct Plan {
    route: routing::Route,
    middlewares: Result<Vec<Middleware>, String>,
    backend: backend::Backend,
}

/// The request as the Middlewares leave it.
struct Rewritten {
    path: String,
    /// `?…` or empty.
    query: String,
    /// Headers to add (`X-Forwarded-Prefix`).
    extra: HeaderMap,
}

/// Routes, applies Middlewares, picks a pod and forwards.
async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    peer: SocketAddr,
    local_port: u16,
) -> Response<Body> {
    let raw_host = request_host(&req);
    let host = routing::normalize_host(&raw_host);
    let path = req.uri().path().to_string();
    let Some(plan) = plan(shared, &host, &path) else {
        let message = format!("no Ingress routes host {host:?} path {path:?}");
        return text(StatusCode::NOT_FOUND, message);
    };
    let mut rewritten = Rewritten {
        path,
        query: req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default(),
        extra: HeaderMap::new(),
    };
    if let Some(answer) = run_middlewares(&plan, &req, &raw_host, &mut rewritten) {
        return answer;
    }
    let address = match pick(shared, &plan.backend) {
        Ok(address) => address,
        Err(why) => return text(StatusCode::SERVICE_UNAVAILABLE, why),
    };
    let path_and_query = format!("{}{}", rewritten.path, rewritten.query);
    let to = forward::Forward {
        address,
        path_and_query: &path_and_query,
        client: peer,
        local_port,
        backend: &plan.backend.name,
        connect_timeout: shared.connect_timeout,
        answer_timeout: shared.answer_timeout,
        extra: rewritten.extra,
        stopping: shared.stopped.subscribe(),
    };
    forward::forward(&shared.upstream, req, to).await
}

/// Applies the route's Middlewares in order; an answer when one answers itself (a redirect)
/// or cannot be used.
fn run_middlewares(
    plan: &Plan,
    req: &Request<Incoming>,
    raw_host: &str,
    rewritten: &mut Rewritten,
) -> Option<Response<Body>> {
    let middlewares = match &plan.middlewares {
        Ok(middlewares) => middlewares,
        Err(why) => {
            let ingress = format!("{}/{}", plan.route.namespace, plan.route.ingress);
            let message = format!(
                "Ingress {ingress} routes host {raw_host:?} path {:?}, but Traefik would not serve it: {why}",
                rewritten.path
            );
            return Some(text(StatusCode::NOT_FOUND, message));
        }
    };
    middlewares
        .iter()
        .find_map(|middleware| apply(middleware, req, raw_host, rewritten))
}

/// The backend's next address in turn, or why there is none.
fn pick(shared: &Shared, backend: &backend::Backend) -> Result<SocketAddr, String> {
    let addresses = backend.addresses.as_ref().map_err(Clone::clone)?;
    shared
        .turns
        .pick(&backend.name, addresses)
        .ok_or_else(|| format!("no address for {}", backend.name))
}

/// The route, its Middlewares and its backend's addresses, read from the store at once.
fn plan(shared: &Shared, host: &str, path: &str) -> Option<Plan> {
    let state = shared.store.read();
    let route = routing::route(&state, host, path)?;
    let middlewares = middleware::resolve(&state, &route.namespace, &route.middlewares);
    let backend = backend::resolve(&state, &route, shared.reachable.as_ref());
    Some(Plan {
        route,
        middlewares,
        backend,
    })
}

/// Applies one Middleware to the request on its way: an answer when it redirects.
fn apply(
    middleware: &Middleware,
    req: &Request<Incoming>,
    raw_host: &str,
    rewritten: &mut Rewritten,
) -> Option<Response<Body>> {
    match middleware {
        Middleware::StripPrefix(prefixes) => {
            if let Some((stripped, prefix)) = middleware::strip_prefix(prefixes, &rewritten.path)
                && let Ok(value) = HeaderValue::from_str(&prefix)
            {
                rewritten.path = stripped;
                rewritten.extra.append("x-forwarded-prefix", value);
            }
            None
        }
        Middleware::RedirectRegex {
            regex,
            replacement,
            permanent,
        } => {
            // Traefik matches the whole URL as it was asked for, scheme and host included.
            let url = format!("http://{raw_host}{}{}", rewritten.path, rewritten.query);
            let (status, location) =
                middleware::redirect(regex, replacement, *permanent, req.method(), &url)?;
            Some(redirect_response(status, &location))
        }
        Middleware::Other => None,
    }
}

fn redirect_response(status: StatusCode, location: &str) -> Response<Body> {
    let mut response = text(
        status,
        status.canonical_reason().unwrap_or("Redirect").to_string(),
    );
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("redirectRegex made an invalid Location: {location:?}"),
        ),
    }
}

/// The host the client asked for: the Host header, or the authority of an absolute URI.
fn request_host(req: &Request<Incoming>) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(ToString::to_string))
        .unwrap_or_default()
}

/// A plain-text answer; the proxy explains every answer of its own in words.
fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
