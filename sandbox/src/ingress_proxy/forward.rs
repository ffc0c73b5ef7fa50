//! Sending a request on to a pod and its answer back: bodies streamed both ways, hop-by-hop
//! headers dropped, Traefik's `X-Forwarded-*` added, upgrades (WebSocket) spliced.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{oneshot, watch};

use super::body::Tracked;

/// The pooled client every forwarded request goes through.
pub(super) type Upstream = Client<HttpConnector, Tracked>;

/// A client whose connections give up after `connect_timeout`.
pub(super) fn client(connect_timeout: Duration) -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector)
}

/// What a forwarded request carries besides the client's own.
pub(super) struct Forward<'a> {
    pub address: SocketAddr,
    /// The path (after Middlewares) and query to ask for.
    pub path_and_query: &'a str,
    pub client: SocketAddr,
    pub local_port: u16,
    /// `<namespace>/<service>:<port>`, for messages.
    pub backend: &'a str,
    pub connect_timeout: Duration,
    pub answer_timeout: Duration,
    /// Headers a Middleware added (`X-Forwarded-Prefix`).
    pub extra: HeaderMap,
    /// Turns true when the proxy stops: upgraded connections end then.
    pub stopping: watch::Receiver<bool>,
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Forwards `req` to `to.address` and answers with the pod's response, or with a 502/504 that
/// says what failed.
pub(super) async fn forward(
    upstream: &Upstream,
    mut req: Request<Incoming>,
    to: Forward<'_>,
) -> Response<Body> {
    let upgrade = upgrade_protocol(req.headers());
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let uri = format!("http://{}{}", to.address, to.path_and_query);
    parts.uri = match uri.parse::<Uri>() {
        Ok(uri) => uri,
        Err(e) => {
            return super::text(
                StatusCode::BAD_REQUEST,
                format!("cannot forward to {uri}: {e}"),
            );
        }
    };
    parts.version = hyper::Version::HTTP_11;
    prepare_headers(&mut parts.headers, upgrade.as_ref(), &to);
    let (body, sent) = Tracked::new(body);
    let answer = upstream.request(Request::from_parts(parts, body));
    let mut res = match answer_within(answer, sent, to.answer_timeout).await {
        Some(Ok(res)) => res,
        Some(Err(e)) => return failure(&e, &to),
        None => {
            let message = format!(
                "{} (service {}) did not answer within {:?} of receiving the request",
                to.address, to.backend, to.answer_timeout
            );
            return super::text(StatusCode::GATEWAY_TIMEOUT, message);
        }
    };
    if res.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        splice(client_upgrade, hyper::upgrade::on(&mut res), to.stopping);
        return res.map(|_| Body::empty());
    }
    strip_hop_by_hop(res.headers_mut());
    res.map(Body::new)
}

/// The pod's answer, if it begins within `limit` of the request (body included) being sent.
async fn answer_within<F: Future>(
    answer: F,
    sent: oneshot::Receiver<()>,
    limit: Duration,
) -> Option<F::Output> {
    tokio::pin!(answer);
    tokio::select! {
        res = &mut answer => return Some(res),
        _ = sent => {}
    }
    tokio::time::timeout(limit, answer).await.ok()
}

/// The protocol an upgrade request asks for (`Connection: upgrade` with `Upgrade: …`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Drops the connection's headers and those `Connection` lists (and `Upgrade`).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// The request's headers as the pod sees them: the client's Host kept, Traefik's forwarding
/// headers set (the client's own `X-Forwarded-*` are not trusted, as Traefik's default).
fn prepare_headers(headers: &mut HeaderMap, upgrade: Option<&HeaderValue>, to: &Forward<'_>) {
    strip_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    let host = headers.get(header::HOST).cloned();
    for name in [
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-proto",
        "x-real-ip",
    ] {
        headers.remove(name);
    }
    let ip = to.client.ip().to_string();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set(headers, "x-forwarded-for", &ip);
    set(headers, "x-real-ip", &ip);
    set(headers, "x-forwarded-proto", "http");
    set(headers, "x-forwarded-port", &to.local_port.to_string());
    if let Some(host) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    for (name, value) in &to.extra {
        headers.append(name, value.clone());
    }
}

/// Copies bytes both ways between the client's and the pod's upgraded connections, until
/// either side closes or the proxy stops.
fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    mut stopping: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!("ingress upgrade failed: {e}");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
            _ = stopping.wait_for(|stop| *stop) => {}
        }
    });
}

/// A 502 (or 504 when connecting timed out) naming the pod address and what went wrong.
fn failure(e: &hyper_util::client::legacy::Error, to: &Forward<'_>) -> Response<Body> {
    let cause = root_cause(e);
    if e.is_connect() {
        if timed_out(e) {
            let message = format!(
                "timed out connecting to {} (service {}) after {:?}",
                to.address, to.backend, to.connect_timeout
            );
            return super::text(StatusCode::GATEWAY_TIMEOUT, message);
        }
        let message = format!(
            "cannot connect to {} (service {}): {cause}",
            to.address, to.backend
        );
        return super::text(StatusCode::BAD_GATEWAY, message);
    }
    let message = format!(
        "{} (service {}) failed to answer: {cause}",
        to.address, to.backend
    );
    super::text(StatusCode::BAD_GATEWAY, message)
}

fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

fn root_cause(e: &hyper_util::client::legacy::Error) -> String {
    sources(e)
        .last()
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn timed_out(e: &hyper_util::client::legacy::Error) -> bool {
    sources(e).any(|s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}
