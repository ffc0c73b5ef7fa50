//! The HTTP face of the sandbox: routing, body decoding and content negotiation.

mod body;
pub(crate) mod discovery;
mod encoded;
pub(crate) mod exec;
mod field_labels;
mod field_validation;
mod logs;
mod objects;
pub mod portforward;
mod protobuf;
mod review;
pub mod route;
mod token_request;
mod upgrade;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::error::{ApiError, ApiResult};
use crate::http::json_response;
use crate::store::Store;
use route::Route;

/// The largest request body accepted, as on a real API server.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct Api {
    pub store: Store,
    address: Arc<OnceLock<String>>,
    /// Whether exec may run commands on this machine for pods that ask for it (off unless the
    /// sandbox was started with `--allow-host-exec`: it runs host commands as our user).
    pub host_exec: bool,
    /// Listed objects as JSON, kept while unchanged.
    encoded: Arc<encoded::EncodedObjects>,
    /// What runs pods for real, if anything: logs, exec and port-forward reach its containers.
    pub runtime: Option<Arc<crate::runtime::Runtime>>,
    /// Signs and checks ServiceAccount tokens.
    pub token_key: crate::auth::tokens::Key,
}

impl Api {
    pub fn new(store: Store) -> Self {
        Api {
            store,
            address: Arc::new(OnceLock::new()),
            host_exec: false,
            encoded: Arc::default(),
            runtime: None,
            token_key: crate::auth::tokens::Key::random(),
        }
    }

    /// Signs ServiceAccount tokens with `key` (kept beside the store, so they outlive a restart).
    pub fn with_token_key(mut self, key: crate::auth::tokens::Key) -> Self {
        self.token_key = key;
        self
    }

    /// Serves logs, exec and port-forward of pods that `runtime` runs from their containers.
    pub fn with_runtime(mut self, runtime: Option<Arc<crate::runtime::Runtime>>) -> Self {
        self.runtime = runtime;
        self
    }

    /// The pod `pod` as the runtime runs it, if it does.
    pub fn running(&self, pod: &serde_json::Value) -> Option<crate::runtime::Running> {
        let uid = pod["metadata"]["uid"].as_str()?;
        self.runtime.as_ref()?.running(uid)
    }

    /// Lets exec run host commands for pods annotated `sandbox.kipper.run/exec: host`.
    pub fn with_host_exec(mut self, allowed: bool) -> Self {
        self.host_exec = allowed;
        self
    }

    /// Records the address clients reach us at, for `/api`'s serverAddressByClientCIDRs.
    pub fn set_address(&self, address: String) {
        let _ = self.address.set(address);
    }
}

/// The router serving the whole API.
pub fn router(api: Api) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

/// One decoded request, as the handlers see it.
pub struct Req {
    pub method: Method,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The query as sent, for parameters that may repeat (`ports`).
    pub raw_query: String,
    /// Present when the connection can switch protocols (port forwarding).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// Who sent it.
    pub user: crate::auth::User,
}

impl Req {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1"))
    }

    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The media type of the body, without parameters.
    pub fn content_type(&self) -> String {
        self.header(header::CONTENT_TYPE)
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    pub fn wants_table(&self) -> bool {
        self.header(header::ACCEPT)
            .split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    }

    /// The field manager of a write: the query's, or the client's name as a real server does.
    pub fn manager(&self) -> String {
        if let Some(m) = self.param("fieldManager") {
            return m.to_string();
        }
        let agent = self.header(header::USER_AGENT);
        let name = agent.split('/').next().unwrap_or("").trim();
        if name.is_empty() {
            "unknown".to_string()
        } else {
            name.to_string()
        }
    }

    /// Whether the write is a dry run (`dryRun=All` in the query, or in a delete's body). Any
    /// other value is refused as the real
    /// server refuses it, before anything is written: a client that misspells it must not
    /// have its "trial" stored.
    pub fn dry_run(&self) -> ApiResult<bool> {
        let mut given: Vec<String> = form_urlencoded::parse(self.raw_query.as_bytes())
            .filter(|(k, _)| k == "dryRun")
            .map(|(_, v)| v.into_owned())
            .collect();
        // A delete may say it in its DeleteOptions body instead, as kubectl does.
        if self.method == Method::DELETE
            && let Ok(options) = serde_json::from_slice::<serde_json::Value>(&self.body)
            && let Some(values) = options["dryRun"].as_array()
        {
            given.extend(values.iter().map(|v| v.as_str().unwrap_or("").to_string()));
        }
        if given.is_empty() {
            return Ok(false);
        }
        if given.iter().all(|v| v == "All") {
            return Ok(true);
        }
        let given: Vec<String> = given
            .iter()
            .map(|v| crate::validation::go_quote(v))
            .collect();
        let options = match self.method {
            Method::POST => "CreateOptions",
            Method::PUT => "UpdateOptions",
            Method::PATCH => "PatchOptions",
            _ => "DeleteOptions",
        };
        Err(crate::error::ApiError::invalid_causes(
            options,
            "meta.k8s.io",
            "",
            &[crate::validation::Cause {
                field: "dryRun".into(),
                message: format!(
                    "Unsupported value: []string{{{}}}: supported values: \"All\"",
                    given.join(", ")
                ),
                reason: "FieldValueNotSupported".into(),
            }],
        ))
    }
}

async fn handle(State(api): State<Api>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return ApiError::too_large().into_response();
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::too_large().into_response(),
    };
    let user = match crate::auth::authenticate(&api.store.read(), &api.token_key, &parts.headers) {
        Ok(user) => user,
        Err(err) => return err.into_response(),
    };
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let req = Req {
        method: parts.method,
        query,
        headers: parts.headers,
        body,
        raw_query: parts.uri.query().unwrap_or("").to_string(),
        upgrade: parts.extensions.remove::<hyper::upgrade::OnUpgrade>(),
        user,
    };
    let path = parts.uri.path().to_string();
    match dispatch(&api, &path, req).await {
        Ok(resp) => resp,
        Err(err) => err.into_response(),
    }
}

async fn dispatch(api: &Api, path: &str, req: Req) -> ApiResult<Response> {
    let Some(route) = route::parse(path) else {
        return Err(ApiError::no_route(path));
    };
    if !matches!(route, Route::Resource(_)) && req.method != Method::GET {
        return Err(ApiError::method_not_allowed(req.method.as_str()));
    }
    let ok = |v: serde_json::Value| Ok(json_response(StatusCode::OK, &v));
    if matches!(
        route,
        Route::OpenApiV2 | Route::OpenApiV3Root | Route::OpenApiV3 { .. }
    ) {
        crate::openapi::warm();
    }
    match route {
        Route::Version => ok(discovery::version()),
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::CoreVersions => {
            let address = api.address.get().cloned().unwrap_or_default();
            ok(discovery::core_versions(&address))
        }
        Route::Groups => ok(discovery::groups(&api.store.read().registry)),
        Route::Group(name) => match discovery::group(&api.store.read().registry, &name) {
            Some(doc) => ok(doc),
            None => Err(ApiError::no_route(path)),
        },
        Route::GroupVersion { group, version } => {
            match discovery::resource_list(&api.store.read().registry, &group, &version) {
                Some(doc) => ok(doc),
                None => Err(ApiError::no_route(path)),
            }
        }
        Route::OpenApiV2 => Ok(crate::openapi::openapi_v2(&req, &api.store.read().registry)),
        Route::OpenApiV3Root => {
            let docs = crate::openapi::documents(&api.store.read().registry);
            Ok(crate::openapi::json_bytes(docs.root()))
        }
        Route::OpenApiV3 { group, version } => {
            let docs = crate::openapi::documents(&api.store.read().registry);
            match docs.group_version(&crate::openapi::path(&group, &version)) {
                Some(body) => Ok(crate::openapi::json_bytes(body)),
                None => Err(ApiError::no_route(path)),
            }
        }
        Route::Resource(target) => objects::handle(api, path, target, req).await,
    }
}

/// A body that streams what a background task sends, until the task drops its sender.
pub fn channel_body(chunks: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    let stream = futures_util::stream::unfold(chunks, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    Body::from_stream(stream)
}

/// A response whose body is produced over time (watches, followed logs).
pub fn streaming(content_type: &'static str, body: Body) -> Response {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}
