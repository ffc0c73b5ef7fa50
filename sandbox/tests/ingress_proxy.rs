//! The ingress proxy with real traffic over loopback: Services without selectors and
//! hand-written Endpoints point at small HTTP servers the tests start, Ingresses and Traefik
//! Middlewares written through the sandbox's API route to them, and real HTTP requests go
//! through the proxy.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sandbox::Sandbox;
use sandbox::api::{Api, router};
use sandbox::ingress_proxy::IngressProxy;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tower::ServiceExt;

/// A test stuck on a lost message fails instead of hanging; never an assertion about speed.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Upstream servers

/// Serves what a request looked like when it arrived, as JSON, tagged with `name`; `/stream`
/// answers in two chunks, the second only once the test sends on the server's `release`; an
/// upgrade request gets a WebSocket that echoes.
struct Upstream {
    address: SocketAddr,
    release: mpsc::UnboundedSender<()>,
}

async fn upstream(name: &'static str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let address = listener.local_addr().expect("upstream address");
    let (release, released) = mpsc::unbounded_channel::<()>();
    let released = Arc::new(tokio::sync::Mutex::new(released));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let released = released.clone();
            let service = hyper::service::service_fn(move |req| {
                let released = released.clone();
                async move { Ok::<_, Infallible>(answer(name, req, released).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades(),
            );
        }
    });
    Upstream { address, release }
}

type Released = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>>;

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
    released: Released,
) -> Response<Body> {
    if req.headers().contains_key("sec-websocket-key") {
        return websocket_echo(&mut req);
    }
    if req.uri().path() == "/stream" {
        return streamed(released);
    }
    let header = |h: &str| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut seen = json!({
        "server": name,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()),
        "host": header("host"),
        "prefix": header("x-forwarded-prefix"),
        "forwarded_for": header("x-forwarded-for"),
        "forwarded_host": header("x-forwarded-host"),
        "forwarded_proto": header("x-forwarded-proto"),
        "real_ip": header("x-real-ip"),
    });
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    seen["body"] = json!(String::from_utf8_lossy(&body));
    Response::new(Body::from(seen.to_string()))
}

/// Two chunks with a pause the test controls in between: the first can only reach the client
/// before the second exists if nothing on the way buffers the whole body.
fn streamed(released: Released) -> Response<Body> {
    let chunks = futures_util::stream::unfold(0, move |step| {
        let released = released.clone();
        async move {
            match step {
                0 => Some((Ok::<_, Infallible>(Frame::data(Bytes::from("first;"))), 1)),
                1 => {
                    released.lock().await.recv().await?;
                    Some((Ok(Frame::data(Bytes::from("second"))), 2))
                }
                _ => None,
            }
        }
    });
    Response::new(Body::new(StreamBody::new(chunks)))
}

fn websocket_echo(req: &mut Request<Incoming>) -> Response<Body> {
    let key = req.headers()["sec-websocket-key"].as_bytes().to_vec();
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_text() && ws.send(message).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(&key))
        .body(Body::empty())
        .expect("101")
}

/// A loopback address where nothing listens.
async fn refusing_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    address
}

/// A loopback server that accepts connections and never answers; they stay open until the
/// returned sender is dropped.
async fn silent_server() -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind silent");
    let address = listener.local_addr().expect("silent address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut held = Vec::new();
        tokio::select! {
            _ = async { while let Ok((tcp, _)) = listener.accept().await { held.push(tcp) } } => {}
            _ = stopped => {}
        }
    });
    (address, stop)
}

/// A loopback address whose accept queue is full, so the kernel drops new connections' SYNs
/// and connecting hangs; the returned listener and connections keep it so.
async fn unanswered_address() -> (SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let listener = socket.listen(1).expect("listen");
    let address = listener.local_addr().expect("address");
    let mut queued = Vec::new();
    // Linux queues backlog + 1 connections; a few more attempts than that, each bounded.
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => queued.push(tcp),
            _ => break,
        }
    }
    (address, listener, queued)
}

// ---------------------------------------------------------------------------------------------
// The cluster and the proxy

struct Fixture {
    sandbox: Sandbox,
    proxy: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Dropping it stops the proxy.
    stop: oneshot::Sender<()>,
}

impl Fixture {
    async fn start() -> Fixture {
        Self::with_proxy(IngressProxy::new).await
    }

    async fn with_proxy(
        make: impl FnOnce(sandbox::store::Store, sandbox::ingress_proxy::Reachable) -> IngressProxy,
    ) -> Fixture {
        let sandbox = Sandbox::in_memory().await.expect("sandbox");
        let reachable: sandbox::ingress_proxy::Reachable = Arc::new(|ip: IpAddr| ip.is_loopback());
        let proxy = make(sandbox.store.clone(), reachable);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(proxy.serve(listener, async {
            let _ = stopped.await;
        }));
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Fixture {
            sandbox,
            proxy: address,
            client,
            stop,
        }
    }

    /// Sends `method` with `body` to `path` of the sandbox's API; the status must be `expected`.
    async fn api(&self, method: &str, path: &str, content_type: &str, body: Value, expected: u16) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        let response = router(Api::new(self.sandbox.store.clone()))
            .oneshot(request)
            .await
            .expect("answer");
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(
            status,
            expected,
            "{method} {path}: {}",
            String::from_utf8_lossy(&text)
        );
    }

    async fn create(&self, collection: &str, object: Value) {
        self.api("POST", collection, "application/json", object, 201)
            .await;
    }

    async fn namespace(&self, name: &str) {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        self.create("/api/v1/namespaces", ns).await;
    }

    /// A Service without selector on port 80 (named `http`), and its Endpoints: `ready` and
    /// `not_ready` addresses, the target port each address's own.
    async fn service(&self, ns: &str, name: &str, ready: &[SocketAddr], not_ready: &[SocketAddr]) {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        });
        self.create(&format!("/api/v1/namespaces/{ns}/services"), svc)
            .await;
        let subset = |address: &SocketAddr, ready: bool| {
            let addresses = json!([{"ip": address.ip().to_string()}]);
            let mut subset =
                json!({"ports": [{"name": "http", "port": address.port(), "protocol": "TCP"}]});
            subset[if ready {
                "addresses"
            } else {
                "notReadyAddresses"
            }] = addresses;
            subset
        };
        let subsets: Vec<Value> = ready
            .iter()
            .map(|a| subset(a, true))
            .chain(not_ready.iter().map(|a| subset(a, false)))
            .collect();
        let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name}, "subsets": subsets});
        self.create(&format!("/api/v1/namespaces/{ns}/endpoints"), endpoints)
            .await;
    }

    async fn ingress(&self, ns: &str, name: &str, middlewares: Option<&str>, spec: Value) {
        let mut ingress = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name}, "spec": spec,
        });
        if let Some(middlewares) = middlewares {
            ingress["metadata"]["annotations"] =
                json!({"traefik.ingress.kubernetes.io/router.middlewares": middlewares});
        }
        self.create(
            &format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses"),
            ingress,
        )
        .await;
    }

    async fn middleware(&self, ns: &str, name: &str, spec: Value) {
        let middleware = json!({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": name}, "spec": spec});
        self.create(
            &format!("/apis/traefik.io/v1alpha1/namespaces/{ns}/middlewares"),
            middleware,
        )
        .await;
    }

    /// Sends a request through the proxy, with forwarding headers the proxy must not trust.
    async fn send(&self, method: &str, host: &str, path: &str, body: &str) -> Response<Incoming> {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.proxy))
            .header("host", host)
            .header("x-forwarded-for", "203.0.113.7")
            .header("x-forwarded-prefix", "/spoofed")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        tokio::time::timeout(PATIENCE, self.client.request(request))
            .await
            .expect("an answer in time")
            .expect("the proxy answers")
    }

    /// The status and body of a GET through the proxy.
    async fn get(&self, host: &str, path: &str) -> (StatusCode, String) {
        text(self.send("GET", host, path, "").await).await
    }

    /// What the upstream server saw of a GET through the proxy (which must succeed).
    async fn seen(&self, host: &str, path: &str) -> Value {
        let (status, body) = self.get(host, path).await;
        assert_eq!(status, StatusCode::OK, "GET {host}{path}: {body}");
        serde_json::from_str(&body).expect("the upstream's JSON")
    }
}

async fn text(response: Response<Incoming>) -> (StatusCode, String) {
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A rule for `host` with `paths`, each `(path, pathType, service)` on port 80.
fn rule(host: Option<&str>, paths: &[(&str, &str, &str)]) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|(path, kind, service)| {
            json!({"path": path, "pathType": kind, "backend": {"service": {"name": service, "port": {"number": 80}}}})
        })
        .collect();
    let mut rule = json!({"http": {"paths": paths}});
    if let Some(host) = host {
        rule["host"] = json!(host);
    }
    rule
}

// ---------------------------------------------------------------------------------------------
// Routing

#[tokio::test]
async fn hosts_route_exactly_then_by_wildcard_and_a_miss_is_404() {
    let f = Fixture::start().await;
    let (shop, any) = (upstream("shop").await, upstream("any").await);
    f.service("default", "shop", &[shop.address], &[]).await;
    f.service("default", "any", &[any.address], &[]).await;
    f.ingress(
        "default",
        "shop",
        None,
        json!({"rules": [rule(Some("shop.example.com"), &[("/", "Prefix", "shop")])]}),
    )
    .await;
    f.ingress(
        "default",
        "any",
        None,
        json!({"rules": [rule(Some("*.example.com"), &[("/", "Prefix", "any")])]}),
    )
    .await;

    let seen = f.seen("Shop.Example.COM:8080", "/cart?x=1").await;
    assert_eq!(
        seen["server"], "shop",
        "the exact host wins over the wildcard, port and case aside"
    );
    assert_eq!(seen["path"], "/cart?x=1");
    assert_eq!(
        seen["host"], "Shop.Example.COM:8080",
        "the client's Host is kept"
    );
    assert_eq!(seen["forwarded_host"], "Shop.Example.COM:8080");
    assert_eq!(seen["forwarded_proto"], "http");
    assert_eq!(
        seen["forwarded_for"], "127.0.0.1",
        "the client's own is not trusted"
    );
    assert_eq!(seen["prefix"], Value::Null, "nor its X-Forwarded-Prefix");
    assert_eq!(seen["real_ip"], "127.0.0.1");
    assert_eq!(f.seen("blog.example.com", "/").await["server"], "any");

    let (status, body) = f.get("a.b.example.com", "/deep").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a wildcard covers one label only"
    );
    assert!(
        body.contains("a.b.example.com") && body.contains("/deep"),
        "{body}"
    );
    let (status, body) = f.get("example.com", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn the_longest_matching_path_wins_element_by_element() {
    let f = Fixture::start().await;
    for name in ["root", "api", "v2", "exact"] {
        let server = upstream(name).await;
        f.service("default", name, &[server.address], &[]).await;
    }
    let paths = [
        ("/", "Prefix", "root"),
        ("/api", "Prefix", "api"),
        ("/api/v2", "ImplementationSpecific", "v2"),
        ("/api/exact", "Exact", "exact"),
    ];
    f.ingress(
        "default",
        "site",
        None,
        json!({"rules": [rule(Some("site.test"), &paths)]}),
    )
    .await;
    let server = async |path: &str| f.seen("site.test", path).await["server"].clone();
    assert_eq!(server("/api").await, "api");
    assert_eq!(server("/api/").await, "api");
    assert_eq!(server("/api/v1/items").await, "api");
    assert_eq!(server("/apix").await, "root", "/api does not cover /apix");
    assert_eq!(server("/api/v2/x").await, "v2", "the longer prefix wins");
    assert_eq!(server("/api/v2x").await, "api");
    assert_eq!(server("/api/exact").await, "exact");
    assert_eq!(
        server("/api/exact/more").await,
        "api",
        "Exact covers its path only"
    );
    assert_eq!(server("/").await, "root");
}

#[tokio::test]
async fn rules_without_host_and_the_default_backend_catch_the_rest() {
    let f = Fixture::start().await;
    let (any, fallback) = (upstream("any").await, upstream("fallback").await);
    f.service("default", "any", &[any.address], &[]).await;
    f.service("default", "fallback", &[fallback.address], &[])
        .await;
    let spec = json!({
        "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
        "rules": [rule(None, &[("/docs", "Prefix", "any")])],
    });
    f.ingress("default", "catchall", None, spec).await;
    assert_eq!(f.seen("whatever.test", "/docs/x").await["server"], "any");
    assert_eq!(
        f.seen("whatever.test", "/other").await["server"],
        "fallback",
        "port by name"
    );
}

#[tokio::test]
async fn an_edited_ingress_takes_effect_with_the_next_request() {
    let f = Fixture::start().await;
    let (blue, green) = (upstream("blue").await, upstream("green").await);
    f.service("default", "blue", &[blue.address], &[]).await;
    f.service("default", "green", &[green.address], &[]).await;
    f.ingress(
        "default",
        "app",
        None,
        json!({"rules": [rule(Some("app.test"), &[("/", "Prefix", "blue")])]}),
    )
    .await;
    assert_eq!(f.seen("app.test", "/").await["server"], "blue");

    let patch = json!({"spec": {"rules": [rule(Some("app.test"), &[("/", "Prefix", "green")])]}});
    let path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses/app";
    f.api("PATCH", path, "application/merge-patch+json", patch, 200)
        .await;
    assert_eq!(f.seen("app.test", "/").await["server"], "green");

    f.api("DELETE", path, "application/json", json!({}), 200)
        .await;
    assert_eq!(f.get("app.test", "/").await.0, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------
// Traefik's Middlewares, as kip's templates make them

#[tokio::test]
async fn strip_prefix_takes_the_route_groups_path_off() {
    let f = Fixture::start().await;
    f.namespace("shop-test").await;
    let api = upstream("domains-api").await;
    f.service("shop-test", "domains-api", &[api.address], &[])
        .await;
    f.middleware(
        "shop-test",
        "domains-api-strip",
        json!({"stripPrefix": {"prefixes": ["/domains-api"]}}),
    )
    .await;
    let spec =
        json!({"rules": [rule(Some("shop.test"), &[("/domains-api", "Prefix", "domains-api")])]});
    // Namespace and name both have dashes: `shop-test` + `domains-api-strip`.
    f.ingress(
        "shop-test",
        "domains-api",
        Some("shop-test-domains-api-strip@kubernetescrd"),
        spec,
    )
    .await;

    let seen = f.seen("shop.test", "/domains-api/v1/x?page=2").await;
    assert_eq!(seen["path"], "/v1/x?page=2");
    assert_eq!(seen["prefix"], "/domains-api");
    let seen = f.seen("shop.test", "/domains-api").await;
    assert_eq!(seen["path"], "/");
    assert_eq!(
        f.get("shop.test", "/domains-apix").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_missing_middleware_is_named() {
    let f = Fixture::start().await;
    let web = upstream("web").await;
    f.service("default", "web", &[web.address], &[]).await;
    let spec = json!({"rules": [rule(Some("web.test"), &[("/", "Prefix", "web")])]});
    f.ingress(
        "default",
        "web",
        Some("default-nothing@kubernetescrd"),
        spec,
    )
    .await;
    let (status, body) = f.get("web.test", "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("default-nothing@kubernetescrd") && body.contains("does not exist"),
        "{body}"
    );
}

#[tokio::test]
async fn redirect_regex_answers_before_the_backend() {
    let f = Fixture::start().await;
    // The redirects' backend has no endpoints at all: the Middleware answers first.
    f.service("default", "web", &[], &[]).await;
    let spec = json!({"redirectRegex": {"regex": "^https?://[^/]+(.*)", "replacement": "https://new.example.com${1}", "permanent": true}});
    f.middleware("default", "web-redirect", spec).await;
    let rules = [
        rule(Some("old.example.com"), &[("/", "Prefix", "web")]),
        rule(Some("www.example.com"), &[("/", "Prefix", "web")]),
    ];
    f.ingress(
        "default",
        "web-redirects",
        Some("default-web-redirect@kubernetescrd"),
        json!({"rules": rules}),
    )
    .await;

    let response = f.send("GET", "old.example.com", "/a/b?c=1", "").await;
    assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        response.headers()["location"],
        "https://new.example.com/a/b?c=1"
    );
    let response = f.send("POST", "www.example.com", "/form", "x=1").await;
    assert_eq!(
        response.status(),
        StatusCode::PERMANENT_REDIRECT,
        "a permanent redirect keeps the method"
    );
    assert_eq!(
        response.headers()["location"],
        "https://new.example.com/form"
    );

    let temporary = json!({"spec": {"redirectRegex": {"permanent": false}}});
    let path = "/apis/traefik.io/v1alpha1/namespaces/default/middlewares/web-redirect";
    f.api(
        "PATCH",
        path,
        "application/merge-patch+json",
        temporary,
        200,
    )
    .await;
    assert_eq!(
        f.send("GET", "old.example.com", "/", "").await.status(),
        StatusCode::FOUND
    );
    assert_eq!(
        f.send("PUT", "old.example.com", "/", "").await.status(),
        StatusCode::TEMPORARY_REDIRECT
    );
}

// ---------------------------------------------------------------------------------------------
// Endpoints

#[tokio::test]
async fn ready_endpoints_take_turns_and_unready_ones_get_nothing() {
    let f = Fixture::start().await;
    let (a, b, unready) = (
        upstream("a").await,
        upstream("b").await,
        upstream("unready").await,
    );
    f.service(
        "default",
        "web",
        &[a.address, b.address],
        &[unready.address],
    )
    .await;
    f.ingress(
        "default",
        "web",
        None,
        json!({"rules": [rule(Some("web.test"), &[("/", "Prefix", "web")])]}),
    )
    .await;
    let mut servers = Vec::new();
    for _ in 0..6 {
        servers.push(
            f.seen("web.test", "/").await["server"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    let first = servers[0].clone();
    let other = if first == "a" { "b" } else { "a" };
    let expected: Vec<&str> = (0..6)
        .map(|i| if i % 2 == 0 { first.as_str() } else { other })
        .collect();
    assert_eq!(
        servers, expected,
        "round robin across the ready addresses only"
    );
}

#[tokio::test]
async fn addresses_the_proxy_may_not_reach_are_refused_in_words() {
    let f = Fixture::start().await;
    // A simulated pod's address: ready in its Endpoints, but no container runs there.
    let simulated: SocketAddr = "10.42.0.9:8080".parse().expect("address");
    f.namespace("shop-test").await;
    f.service("shop-test", "web", &[simulated], &[]).await;
    f.ingress(
        "shop-test",
        "web",
        None,
        json!({"rules": [rule(Some("shop.test"), &[("/", "Prefix", "web")])]}),
    )
    .await;
    let (status, body) = f.get("shop.test", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("no ready pod behind service shop-test/web") && body.contains("simulated"),
        "{body}"
    );

    // Beside a running pod, a simulated one is passed over.
    let running = upstream("running").await;
    f.service("shop-test", "mixed", &[simulated, running.address], &[])
        .await;
    let spec = json!({"rules": [rule(Some("mixed.test"), &[("/", "Prefix", "mixed")])]});
    f.ingress("shop-test", "mixed", None, spec).await;
    for _ in 0..3 {
        assert_eq!(f.seen("mixed.test", "/").await["server"], "running");
    }

    let starting = upstream("starting").await;
    f.service("default", "starting", &[], &[starting.address])
        .await;
    f.ingress(
        "default",
        "starting",
        None,
        json!({"rules": [rule(Some("starting.test"), &[("/", "Prefix", "starting")])]}),
    )
    .await;
    let (status, body) = f.get("starting.test", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("no ready endpoints for service default/starting port 80 (1 not ready)"),
        "{body}"
    );
}

#[tokio::test]
async fn a_missing_service_is_named() {
    let f = Fixture::start().await;
    f.ingress(
        "default",
        "ghost",
        None,
        json!({"rules": [rule(Some("ghost.test"), &[("/", "Prefix", "ghost")])]}),
    )
    .await;
    let (status, body) = f.get("ghost.test", "/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("service default/ghost does not exist"),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------------
// Upstream failures

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502_saying_so() {
    let f = Fixture::start().await;
    let down = refusing_address().await;
    f.service("default", "down", &[down], &[]).await;
    f.ingress(
        "default",
        "down",
        None,
        json!({"rules": [rule(Some("down.test"), &[("/", "Prefix", "down")])]}),
    )
    .await;
    let (status, body) = f.get("down.test", "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        body.contains(&format!("cannot connect to {down}")) && body.contains("default/down"),
        "{body}"
    );
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_a_504() {
    let f = Fixture::with_proxy(|store, reachable| {
        IngressProxy::with_timeouts(
            store,
            reachable,
            Duration::from_secs(3),
            Duration::from_millis(300),
        )
    })
    .await;
    let (silent, _keep) = silent_server().await;
    f.service("default", "stuck", &[silent], &[]).await;
    f.ingress(
        "default",
        "stuck",
        None,
        json!({"rules": [rule(Some("stuck.test"), &[("/", "Prefix", "stuck")])]}),
    )
    .await;
    let (status, body) = f.get("stuck.test", "/").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("did not answer within"), "{body}");
}

#[tokio::test]
async fn an_upstream_that_cannot_be_connected_to_in_time_is_a_504() {
    let f = Fixture::with_proxy(|store, reachable| {
        IngressProxy::with_timeouts(store, reachable, Duration::from_millis(300), PATIENCE)
    })
    .await;
    let (address, _listener, _queued) = unanswered_address().await;
    f.service("default", "full", &[address], &[]).await;
    let spec = json!({"rules": [rule(Some("full.test"), &[("/", "Prefix", "full")])]});
    f.ingress("default", "full", None, spec).await;
    let (status, body) = f.get("full.test", "/").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        body.contains(&format!("timed out connecting to {address}")),
        "{body}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bodies and upgrades

#[tokio::test]
async fn bodies_stream_both_ways() {
    let f = Fixture::start().await;
    let web = upstream("web").await;
    f.service("default", "web", &[web.address], &[]).await;
    f.ingress(
        "default",
        "web",
        None,
        json!({"rules": [rule(Some("web.test"), &[("/", "Prefix", "web")])]}),
    )
    .await;

    let (status, body) = text(
        f.send("POST", "web.test", "/upload", "a request body")
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body"], "a request body");

    let mut body = f.send("GET", "web.test", "/stream", "").await.into_body();
    let first = tokio::time::timeout(PATIENCE, body.frame())
        .await
        .expect("the first chunk before the second exists")
        .expect("a frame")
        .expect("data");
    assert_eq!(first.into_data().expect("data"), "first;");
    web.release.send(()).expect("release the second chunk");
    let rest = tokio::time::timeout(PATIENCE, body.collect())
        .await
        .expect("the rest")
        .expect("body");
    assert_eq!(rest.to_bytes(), "second");
}

#[tokio::test]
async fn websockets_pass_through() {
    let f = Fixture::start().await;
    let web = upstream("web").await;
    f.service("default", "web", &[web.address], &[]).await;
    f.ingress(
        "default",
        "web",
        None,
        json!({"rules": [rule(Some("ws.test"), &[("/", "Prefix", "web")])]}),
    )
    .await;

    let mut request = format!("ws://{}/socket", f.proxy)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("host", "ws.test".parse().expect("host"));
    let tcp = TcpStream::connect(f.proxy).await.expect("connect");
    let (mut ws, response) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(request, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for word in ["hello", "again"] {
        ws.send(Message::text(word)).await.expect("send");
        let echoed = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("echo in time");
        assert_eq!(echoed.expect("a message").expect("ok"), Message::text(word));
    }
    drop(f.stop);
    let after = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("ended in time");
    assert!(
        matches!(after, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
        "a stopped proxy ends upgraded connections too: {after:?}"
    );
}

#[tokio::test]
async fn the_time_to_answer_counts_from_the_end_of_the_upload() {
    let answer_timeout = Duration::from_millis(200);
    let f = Fixture::with_proxy(|store, reachable| {
        IngressProxy::with_timeouts(store, reachable, Duration::from_secs(3), answer_timeout)
    })
    .await;
    let web = upstream("web").await;
    f.service("default", "web", &[web.address], &[]).await;
    let spec = json!({"rules": [rule(Some("up.test"), &[("/", "Prefix", "web")])]});
    f.ingress("default", "web", None, spec).await;

    let mut tcp = TcpStream::connect(f.proxy).await.expect("connect");
    let head =
        "POST /upload HTTP/1.1\r\nHost: up.test\r\nContent-Length: 10\r\nConnection: close\r\n\r\n";
    tcp.write_all(format!("{head}hello").as_bytes())
        .await
        .expect("first half");
    // The upload takes longer than the pod may take to answer once it has it all.
    tokio::time::sleep(answer_timeout * 2).await;
    tcp.write_all(b"world").await.expect("second half");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""body":"helloworld""#), "{response}");
}

#[tokio::test]
async fn serving_ends_when_shutdown_resolves() {
    let sandbox = Sandbox::in_memory().await.expect("sandbox");
    let proxy = IngressProxy::new(
        sandbox.store.clone(),
        Arc::new(|ip: IpAddr| ip.is_loopback()),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let address = listener.local_addr().expect("proxy address");
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(proxy.serve(listener, async {
        let _ = stopped.await;
    }));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = Request::get(format!("http://{address}/"))
        .body(Full::default())
        .expect("request");
    let response = client.request(request).await.expect("an answer");
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "serving, with no Ingress yet"
    );

    stop.send(()).expect("signal shutdown");
    let served = tokio::time::timeout(PATIENCE, serving)
        .await
        .expect("serve returns");
    served.expect("task").expect("serve ends without error");
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the listener is closed"
    );
}
