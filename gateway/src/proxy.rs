//! The proxy: Host → cluster → the same request, streamed to the cluster and back.
//!
//! Bodies are never collected: hyper's `Incoming` goes to the cluster as it arrives and the
//! cluster's body comes back the same way. Connections to clusters are pooled per address.
//! Request smuggling is stopped by hyper's parser (RFC 9112 §6.3: a message with both
//! Transfer-Encoding and Content-Length is read as chunked and its connection closed), and
//! because the cluster gets a request re-framed by us (`upstream::Upload::prepare`), never the
//! client's bytes.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;
use tracing::debug;

use crate::config::Config;
use crate::host::{self, HostError};
use crate::metrics::{Metrics, Refusal};
use crate::pool::{Pool, PoolError};
use crate::registry::{Backend, Map, Registry};
use crate::serve::{Handler, Peer};
use crate::upstream::{ExchangeError, ResponseBody};

/// Every response body: a cluster's streamed body or one of the gateway's own short pages.
pub type Body = Either<ResponseBody, Full<Bytes>>;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1, plus the legacy ones).
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

const PAGE_400: &str = "<!doctype html><title>400 Bad Request</title>\
<h1>Bad Request</h1><p>The request does not name a valid host.</p>\n";
const PAGE_400_CONFLICT: &str = "<!doctype html><title>400 Bad Request</title>\
<h1>Bad Request</h1><p>The request names more than one host.</p>\n";
const PAGE_404: &str = "<!doctype html><title>404 Not Found</title>\
<h1>Not Found</h1><p>Nothing is served at this address.</p>\n";
const PAGE_502: &str = "<!doctype html><title>502 Bad Gateway</title>\
<h1>Bad Gateway</h1><p>The server behind this address is not answering. Try again in a moment.</p>\n";
const PAGE_504: &str = "<!doctype html><title>504 Gateway Timeout</title>\
<h1>Gateway Timeout</h1><p>The server behind this address took too long to answer.</p>\n";

/// A response the gateway writes itself.
pub fn page(status: StatusCode, html: &'static str) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        html.as_bytes(),
    ))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The proxy and everything a request needs.
pub struct Proxy {
    domain: String,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    pool: Arc<Pool>,
    /// This worker's snapshot of the registry and its generation. Routing reads it instead of
    /// the registry's lock, whose counter every worker would otherwise bounce between cores
    /// on every request; a registry change is seen on the next request.
    view: Mutex<(u64, Arc<Map>)>,
    response_timeout: Duration,
}

/// How the gateway speaks TLS to clusters that ask for it: certificates verified against
/// the system roots, HTTP/1.1 offered by ALPN. Built once and shared by every worker's pool,
/// since loading the system roots is slow.
pub fn cluster_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Missing or unreadable system roots only make TLS backends fail (502), not the gateway.
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        debug!("system root certificates: {err}");
    }
    roots.add_parsable_certificates(found.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("cannot set up TLS to clusters: {err}"))?;
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Proxy {
    /// A proxy with its own pool of cluster connections (one per worker thread, so a pooled
    /// connection is only ever used by the thread that opened it).
    pub fn new(
        config: &Config,
        cluster_tls: Arc<rustls::ClientConfig>,
        domain: String,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Proxy {
        let pool = Arc::new(Pool::new(
            cluster_tls,
            registry.policy().clone(),
            config.connect_timeout,
            config.pool_idle_timeout,
        ));
        let view = Mutex::new((registry.generation(), registry.snapshot()));
        Proxy {
            domain,
            view,
            registry,
            metrics,
            pool,
            response_timeout: config.response_timeout,
        }
    }

    /// Housekeeping the worker runs every second: forgets closed cluster connections, closes
    /// those idle too long, and lets go of an outdated registry snapshot even without traffic.
    pub fn tick(&self) {
        self.pool.sweep();
        drop(self.view());
    }

    /// The worker's registry snapshot, renewed first if the registry changed.
    fn view(&self) -> std::sync::MutexGuard<'_, (u64, Arc<Map>)> {
        let generation = self.registry.generation();
        // Only this worker's thread locks it: never contended. A panic cannot leave it torn.
        let mut view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        if view.0 != generation {
            *view = (generation, self.registry.snapshot());
        }
        view
    }

    /// The cluster a request is for, or the page to answer with.
    fn route(&self, host: &str) -> Result<Arc<Backend>, (StatusCode, &'static str)> {
        let label = host::label(host, &self.domain).map_err(|err| match err {
            HostError::NotUnderDomain => {
                self.metrics.refuse(Refusal::UnknownHost);
                (StatusCode::NOT_FOUND, PAGE_404)
            }
            HostError::Missing | HostError::Malformed(_) => {
                self.metrics.refuse(Refusal::BadHost);
                (StatusCode::BAD_REQUEST, PAGE_400)
            }
        })?;
        let view = self.view();
        let backend = host::split(&label, |name| view.1.contains_key(name))
            .and_then(|split| view.1.get(split.cluster).cloned())
            .ok_or_else(|| {
                self.metrics.refuse(Refusal::UnknownHost);
                (StatusCode::NOT_FOUND, PAGE_404)
            })?;
        // A cluster quarantined at load keeps its name (so its hosts do not fall through to
        // a cluster with a shorter name) but is never connected to.
        if backend.refused.is_some() {
            self.metrics.refuse(Refusal::BadGateway);
            return Err((StatusCode::BAD_GATEWAY, PAGE_502));
        }
        Ok(backend)
    }

    async fn forward(&self, mut req: Request<Incoming>, peer: Peer) -> Response<Body> {
        let host_value = match request_host(&req) {
            Ok(host_value) => host_value,
            Err(html) => {
                self.metrics.refuse(Refusal::BadHost);
                return page(StatusCode::BAD_REQUEST, html);
            }
        };
        let Ok(host) = std::str::from_utf8(host_value.as_bytes()) else {
            self.metrics.refuse(Refusal::BadHost);
            return page(StatusCode::BAD_REQUEST, PAGE_400);
        };
        let backend = match self.route(host) {
            Ok(backend) => backend,
            Err((status, html)) => return page(status, html),
        };
        backend.requests.fetch_add(1, Relaxed);

        let upgrade = req.version() == Version::HTTP_11 && wants_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        // Clusters get origin-form (`/path?query`), whatever form the client used.
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            let path = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            *req.uri_mut() = Uri::from(path);
        }
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        strip_hop_by_hop(headers, upgrade);
        add_forwarded(headers, &peer);
        headers.insert(X_FORWARDED_HOST, host_value.clone());
        headers.insert(header::HOST, host_value);

        let mut response = match self.pool.send(&backend, req, self.response_timeout).await {
            Ok(response) => response,
            Err(PoolError::Exchange(ExchangeError::TimedOut)) => {
                self.metrics.refuse(Refusal::Timeout);
                return page(StatusCode::GATEWAY_TIMEOUT, PAGE_504);
            }
            Err(err) => {
                debug!(cluster = %backend.id, "backend failed: {err}");
                self.metrics.refuse(Refusal::BadGateway);
                return page(StatusCode::BAD_GATEWAY, PAGE_502);
            }
        };
        match (response.body_mut().take_upgraded(), client_upgrade) {
            (Some((cluster, early)), Some(client_upgrade)) => {
                self.metrics.upgraded();
                tokio::spawn(async move {
                    match client_upgrade.await {
                        Ok(client) => {
                            let mut client = TokioIo::new(client);
                            let mut cluster = cluster;
                            // What the cluster sent right behind its 101 goes first.
                            if client.write_all(&early).await.is_ok() {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut cluster).await;
                            }
                        }
                        Err(err) => debug!("upgrade failed: {err}"),
                    }
                });
                strip_hop_by_hop(response.headers_mut(), true);
            }
            _ => strip_hop_by_hop(response.headers_mut(), false),
        }
        response.map(Either::Left)
    }
}

impl Handler for Proxy {
    async fn call(self: Arc<Self>, req: Request<Incoming>, peer: Peer) -> Response<Body> {
        let started = Instant::now();
        let response = self.forward(req, peer).await;
        self.metrics
            .observe(response.status().as_u16(), started.elapsed());
        response
    }
}

/// The host a request is for: its URI authority (HTTP/2's `:authority`, an absolute-form
/// request target) or its Host header; the page to answer with when it names none, or more
/// than one: two Host headers, an empty one, or one that differs from the URI authority.
/// The gateway would route by one and the cluster might read another, so such a request is
/// refused rather than guessed at (RFC 9112 §3.2, RFC 9113 §8.3.1). The two agree when they
/// are equal but for ASCII case, as host names are.
fn request_host(req: &Request<Incoming>) -> Result<HeaderValue, &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(PAGE_400_CONFLICT);
    }
    if host.is_some_and(HeaderValue::is_empty) {
        return Err(PAGE_400);
    }
    match (req.uri().authority(), host) {
        (Some(authority), Some(host)) => {
            if authority
                .as_str()
                .as_bytes()
                .eq_ignore_ascii_case(host.as_bytes())
            {
                Ok(host.clone())
            } else {
                Err(PAGE_400_CONFLICT)
            }
        }
        (Some(authority), None) => HeaderValue::from_str(authority.as_str()).map_err(|_| PAGE_400),
        (None, Some(host)) => Ok(host.clone()),
        (None, None) => Err(PAGE_400),
    }
}

/// `Connection: upgrade` plus an `Upgrade` header.
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers and those `Connection` names. For an upgrade, `Upgrade` stays
/// and `Connection: upgrade` is re-set, since the next hop needs exactly those.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none of them: one pass over the names is cheaper than a hashed
    // removal per hop-by-hop name.
    if headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        let mut options = headers.get_all(header::CONNECTION).iter();
        match (options.next().cloned(), options.next().is_some()) {
            (Some(only), false) => remove_named(headers, &only),
            (Some(_), true) => {
                let all: Vec<HeaderValue> = headers
                    .get_all(header::CONNECTION)
                    .iter()
                    .cloned()
                    .collect();
                for value in &all {
                    remove_named(headers, value);
                }
            }
            (None, _) => {}
        }
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if headers.contains_key(header::UPGRADE) {
        headers.remove(header::UPGRADE);
    }
}

/// Removes the headers a `Connection` value names (RFC 9110 §7.6.1), except those routing
/// and framing depend on, which a client must not be able to strip.
fn remove_named(headers: &mut HeaderMap, connection: &HeaderValue) {
    let Ok(text) = connection.to_str() else {
        return;
    };
    for token in text.split(',').map(str::trim) {
        let kept = ["host", "content-length", "upgrade"];
        if !token.is_empty() && !kept.iter().any(|k| token.eq_ignore_ascii_case(k)) {
            // By `&str`: no header name is built (nor allocated); an invalid one matches
            // nothing.
            headers.remove(token);
        }
    }
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto`.
fn add_forwarded(headers: &mut HeaderMap, peer: &Peer) {
    let mut prior = headers.get_all(&X_FORWARDED_FOR).iter();
    let value = match prior.next() {
        // The common case: the connection's own value, shared, not rebuilt per request.
        None => Some(peer.ip.clone()),
        Some(first) => {
            let mut joined = first.as_bytes().to_vec();
            for more in prior {
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(more.as_bytes());
            }
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer.ip.as_bytes());
            HeaderValue::from_bytes(&joined).ok()
        }
    };
    if let Some(value) = value {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if peer.secure { "https" } else { "http" }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret, host"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::HOST, HeaderValue::from_static("a.kipper.run"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        let mut upgrade = headers.clone();
        strip_hop_by_hop(&mut headers, false);
        let mut names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["host", "x-kept"]);
        strip_hop_by_hop(&mut upgrade, true);
        assert_eq!(upgrade["upgrade"], "websocket");
        assert_eq!(upgrade["connection"], "upgrade");
        assert!(!upgrade.contains_key("x-secret"));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut headers = HeaderMap::new();
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        headers.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        add_forwarded(
            &mut headers,
            &Peer::new("192.0.2.7:5555".parse().unwrap(), true),
        );
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2, 192.0.2.7");
        assert_eq!(headers[&X_FORWARDED_PROTO], "https");
    }
}
