//! The admin listener: the registration API, `/healthz` and Prometheus `/metrics`.
//!
//! | method | path | who | what |
//! |---|---|---|---|
//! | GET | `/healthz` | anyone | `ok` |
//! | GET | `/metrics` | anyone | Prometheus text |
//! | GET | `/v1/clusters` | admin | every entry |
//! | GET | `/v1/clusters/{id}` | admin, that cluster | one entry |
//! | PUT | `/v1/clusters/{id}` | admin (create, update), that cluster (update) | `{"address": "ip:port", "tls": false}` |
//! | DELETE | `/v1/clusters/{id}` | admin, that cluster | removes it |
//!
//! Tokens come as `Authorization: Bearer <token>`. A cluster's token is returned once, in the
//! answer that created the entry; the registry keeps only its SHA-256. Every comparison is
//! constant-time, and an unknown cluster with a cluster token gets the same 401 as a wrong
//! token, so the API does not tell outsiders which clusters exist.
//!
//! An address the [`crate::policy::Policy`] refuses (private, loopback, the gateway's own
//! listeners…) gets a 400 naming the reason, from the admin and from the cluster alike. An
//! entry quarantined at load carries `"refused": "<reason>"` in its JSON.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq as _;
use tracing::{info, warn};

use crate::host;
use crate::metrics::Metrics;
use crate::proxy::Body;
use crate::registry::{Backend, Registration, Registry, RegistryError};
use crate::serve::{Handler, Peer};

/// The largest registration body read.
const MAX_BODY: usize = 16 * 1024;

/// The admin API.
pub struct Admin {
    admin_sha256: [u8; 32],
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(bytes))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json_response(status, json!({ "error": message.into() }))
}

fn unauthorized() -> Response<Body> {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "send `Authorization: Bearer <token>` with the admin token or this cluster's token",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"kip-gateway\""),
    );
    response
}

fn entry(backend: &Backend) -> serde_json::Value {
    let mut value =
        json!({ "id": &*backend.id, "address": backend.address.to_string(), "tls": backend.tls });
    if let Some(reason) = &backend.refused {
        value["refused"] = (**reason).into();
    }
    value
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Who presented a token.
#[derive(PartialEq)]
enum Caller {
    Admin,
    Cluster,
    Nobody,
}

impl Admin {
    pub fn new(admin_token: &str, registry: Arc<Registry>, metrics: Arc<Metrics>) -> Admin {
        let digest = ring::digest::digest(&ring::digest::SHA256, admin_token.as_bytes());
        let mut admin_sha256 = [0; 32];
        admin_sha256.copy_from_slice(digest.as_ref());
        Admin {
            admin_sha256,
            registry,
            metrics,
        }
    }

    /// The caller of a request about cluster `id` (`None` for the whole list).
    fn caller(&self, req: &Request<Incoming>, id: Option<&str>) -> Caller {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let Some(token) = token else {
            return Caller::Nobody;
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        if bool::from(digest.as_ref().ct_eq(&self.admin_sha256)) {
            return Caller::Admin;
        }
        match id.and_then(|id| self.registry.get(id)) {
            Some(backend) if backend.token_matches(token) => Caller::Cluster,
            _ => Caller::Nobody,
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".to_owned()),
            (Method::GET, "/metrics") => text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(&self.registry),
            ),
            (Method::GET, "/v1/clusters") => {
                if self.caller(&req, None) != Caller::Admin {
                    return unauthorized();
                }
                let snapshot = self.registry.snapshot();
                let mut all: Vec<_> = snapshot.values().collect();
                all.sort_by(|a, b| a.id.cmp(&b.id));
                let clusters: Vec<_> = all.into_iter().map(|b| entry(b)).collect();
                json_response(StatusCode::OK, json!({ "clusters": clusters }))
            }
            (method, path) if path.starts_with("/v1/clusters/") => {
                let id = &path["/v1/clusters/".len()..];
                self.cluster(method, id, req).await
            }
            _ => error(
                StatusCode::NOT_FOUND,
                "no such endpoint: use /v1/clusters, /v1/clusters/{id}, /healthz or /metrics",
            ),
        }
    }

    async fn cluster(&self, method: Method, id: &str, req: Request<Incoming>) -> Response<Body> {
        if !matches!(method, Method::GET | Method::PUT | Method::DELETE) {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not supported here: use GET, PUT or DELETE"),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, PUT, DELETE"));
            return response;
        }
        if let Err(message) = host::check_cluster_id(id) {
            return error(StatusCode::BAD_REQUEST, message);
        }
        let caller = self.caller(&req, Some(id));
        if caller == Caller::Nobody {
            return unauthorized();
        }
        match method {
            Method::GET => match self.registry.get(id) {
                Some(backend) => json_response(StatusCode::OK, entry(&backend)),
                None => error(
                    StatusCode::NOT_FOUND,
                    format!("cluster {id} is not registered"),
                ),
            },
            Method::DELETE => match self.registry.remove(id).await {
                Ok(true) => {
                    info!(cluster = id, "unregistered");
                    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
                    *response.status_mut() = StatusCode::NO_CONTENT;
                    response
                }
                Ok(false) => error(
                    StatusCode::NOT_FOUND,
                    format!("cluster {id} is not registered"),
                ),
                Err(err) => {
                    warn!("{err}");
                    error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
                }
            },
            _ => self.register(id, req).await,
        }
    }

    async fn register(&self, id: &str, req: Request<Incoming>) -> Response<Body> {
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {MAX_BODY} bytes; a registration is tiny"),
                );
            }
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {err}"),
                );
            }
        };
        let registration = match Registration::parse(&body) {
            Ok(registration) => registration,
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        };
        match self.registry.upsert(id, registration).await {
            Ok(done) => {
                info!(cluster = id, address = %registration.address, "registered");
                let mut value = entry(&done.backend);
                match done.token {
                    Some(token) => {
                        value["token"] = token.into();
                        json_response(StatusCode::CREATED, value)
                    }
                    None => json_response(StatusCode::OK, value),
                }
            }
            Err(RegistryError::Refused(message)) => {
                warn!(cluster = id, address = %registration.address, "registration refused: {message}");
                error(StatusCode::BAD_REQUEST, message)
            }
            Err(err) => {
                warn!("{err}");
                error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
            }
        }
    }
}

impl Handler for Admin {
    async fn call(self: Arc<Self>, req: Request<Incoming>, _peer: Peer) -> Response<Body> {
        self.handle(req).await
    }
}
