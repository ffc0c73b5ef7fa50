//! One request: forward it to the app, stream the answer back, stamp `X-Instance-ID` on it.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::upgrade;

/// The header this sidecar exists for.
pub const X_INSTANCE_ID: HeaderName = HeaderName::from_static("x-instance-id");

/// A connect to loopback either succeeds or is refused at once; waiting longer than this
/// means the app's accept backlog is full, and the client is better served by a 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Shorter than the shortest keep-alive timeout common among app servers (Node's 5 s), so
/// the sidecar drops an idle connection before the app does. Otherwise a request can be
/// written onto a connection the app is closing that instant, and come back as a 502.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// The client's request body on its way to the app, with its errors marked as the client's.
type RequestBody =
    http_body_util::combinators::MapErr<Incoming, fn(hyper::Error) -> ClientBodyError>;

/// The request body failed on the client's side: a client that hung up or sent a broken
/// body. Marked so the failed forward is not reported as the app's fault.
#[derive(Debug)]
struct ClientBodyError(hyper::Error);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client's request body: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The most a connection's buffers grow to, on either side. hyper's default (about 400 KiB)
/// lets every streaming response hold that much, and the sidecar lives under a 32 MiB limit:
/// 16 concurrent 1 MiB downloads peaked at 18 MB with the default and 6.4 MB with this, for
/// about 40% more CPU per streamed byte (BENCHMARKS.md). Being killed for memory is worse
/// than being throttled for CPU.
pub const MAX_BUF_SIZE: usize = 64 * 1024;

/// The app's answer streamed through unchanged, or the sidecar's own short one (502, 400).
pub type Body = Either<Incoming, Full<Bytes>>;

/// The reverse proxy in front of one app, shared by every client connection.
pub struct Proxy {
    /// Keeps connections to the app open between requests (a pool, not one per client).
    client: Client<HttpConnector<Loopback>, RequestBody>,
    upstream: Authority,
    instance_id: HeaderValue,
    log_errors: bool,
    /// Held by every upgraded connection's bridge, so shutdown can wait for those too.
    alive: crate::Alive,
}

impl Proxy {
    /// A proxy to `upstream_port` on loopback (127.0.0.1, else `[::1]`) whose answers carry
    /// `instance_id`.
    pub fn new(
        upstream_port: u16,
        instance_id: &str,
        log_errors: bool,
        alive: crate::Alive,
    ) -> Self {
        let mut connector = HttpConnector::new_with_resolver(Loopback);
        // Small writes (headers, SSE events) must leave at once, not wait for Nagle.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http1_max_buf_size(MAX_BUF_SIZE)
            .build(connector);
        Proxy {
            client,
            upstream: Authority::try_from(format!("localhost:{upstream_port}"))
                .unwrap_or_else(|_| Authority::from_static("localhost")),
            instance_id: HeaderValue::from_str(instance_id)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
            log_errors,
            alive,
        }
    }

    /// Forwards `req` and answers with the app's response, or 502 if the app could not be
    /// reached. Never fails: every outcome is an HTTP answer to the client.
    ///
    /// `X-Instance-ID` is set on every response, replacing one the app may have sent: a
    /// header with two values (or the app's value) would defeat the point of telling pods
    /// apart, and an app that wants its own header has the sidecar turned off instead.
    pub async fn handle(&self, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let client_upgrade = is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
        strip_hop_by_hop(req.headers_mut(), client_upgrade.is_some());
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = hyper::http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.upstream.clone());
        parts.path_and_query = Some(path);
        match Uri::from_parts(parts) {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return Ok(self.stamp(plain(StatusCode::BAD_REQUEST, "bad request target\n"))),
        }
        // HTTP/1.1 to the app whatever the client spoke, so the connection can be pooled;
        // hyper answers an HTTP/1.0 client in HTTP/1.0 framing on its own.
        *req.version_mut() = Version::HTTP_11;

        let req =
            req.map(|body| body.map_err(ClientBodyError as fn(hyper::Error) -> ClientBodyError));
        let mut resp = match self.client.request(req).await {
            Ok(resp) => resp,
            Err(err) if caused_by_client(&err) => {
                // Usually nobody is left to read this; if the client is, its body was broken.
                return Ok(self.stamp(plain(
                    StatusCode::BAD_REQUEST,
                    "the request body was cut short\n",
                )));
            }
            Err(err) => {
                if self.log_errors {
                    eprintln!(
                        "kip-instance-id: 502, the app on {} did not answer: {}",
                        self.upstream,
                        chain(&err)
                    );
                }
                return Ok(self.stamp(plain(StatusCode::BAD_GATEWAY, "the app did not answer\n")));
            }
        };

        match client_upgrade {
            Some(client_upgrade) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                upgrade::bridge(
                    client_upgrade,
                    upstream_upgrade,
                    self.alive.clone(),
                    self.log_errors,
                );
            }
            _ => strip_hop_by_hop(resp.headers_mut(), false),
        }
        // The client hears HTTP/1.1 from the sidecar even when the app speaks HTTP/1.0 (the
        // framing is hyper's own on each side); hyper still answers a 1.0 client in 1.0.
        *resp.version_mut() = Version::HTTP_11;
        Ok(self.stamp(resp.map(Either::Left)))
    }

    fn stamp(&self, mut resp: Response<Body>) -> Response<Body> {
        resp.headers_mut()
            .insert(X_INSTANCE_ID, self.instance_id.clone());
        resp
    }
}

/// Where "localhost" is: 127.0.0.1, and `[::1]` when nothing answers there. Most apps listen
/// on all interfaces, which includes 127.0.0.1, but one told to listen on "localhost" may have
/// got `::1` only (Node resolves it so). hyper-util's connector tries the second address as
/// soon as the first is refused. A fixed answer rather than /etc/hosts: the image has none.
#[derive(Clone, Copy)]
pub struct Loopback;

impl tower_service::Service<Name> for Loopback {
    type Response = std::array::IntoIter<std::net::SocketAddr, 2>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
        // Port 0 is replaced by the request's port.
        std::future::ready(Ok([
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
        ]
        .into_iter()))
    }
}

/// The sidecar's own answer, when there is no answer from the app to pass on.
fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn caused_by_client(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if err.is::<ClientBodyError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// An error with its causes, because hyper's outermost message ("client error (Connect)")
/// does not say what went wrong.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A request that asks to switch protocols (WebSocket): `Connection: upgrade` and an
/// `Upgrade` header naming the protocol.
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Removes the headers that describe this hop's connection rather than the message
/// (RFC 9110 §7.6.1): the fixed list and whatever `Connection` names. hyper frames bodies
/// and manages keep-alive on each side on its own; forwarding these would let the client
/// steer the sidecar's pooled connection to the app, or the app steer the client's.
///
/// With `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay: switching protocols has to
/// be agreed end to end, so the sidecar passes the handshake through and bridges after.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            if !(keep_upgrade && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
        headers.remove(header::CONNECTION);
    }
    for name in [header::TE, header::TRANSFER_ENCODING] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        names.sort();
        names
    }

    #[test]
    fn hop_by_hop_and_nominated_headers_go() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("close", "odd but nominated"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("trailer", "x-checksum"),
            ("host", "app.example"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut map, false);
        assert_eq!(names(&map), ["host", "trailer", "x-kept"]);
    }

    #[test]
    fn upgrade_handshake_keeps_its_two_headers() {
        let mut map = headers(&[
            ("connection", "Upgrade, keep-alive"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert!(is_upgrade(&map));
        strip_hop_by_hop(&mut map, true);
        assert_eq!(names(&map), ["connection", "sec-websocket-key", "upgrade"]);
        assert_eq!(map[header::CONNECTION], "upgrade");
        assert_eq!(map[header::UPGRADE], "websocket");
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&headers(&[("connection", "upgrade")])));
        assert!(is_upgrade(&headers(&[
            ("connection", "keep-alive"),
            ("connection", "UPGRADE"),
            ("upgrade", "x")
        ])));
    }
}
