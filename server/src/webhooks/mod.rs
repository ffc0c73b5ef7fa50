//! Git push webhooks: `POST /hooks/github`, `/hooks/gitlab` and `/hooks/generic`.
//!
//! Every endpoint reduces its provider's payload to a [`Delivery`] and a [`Proof`]; then one
//! path decides: the Apps whose `spec.source.git.url` names the pushed repository are the
//! candidates, each candidate's Secret `<app>-webhook` (made by `kip app webhook enable`) is
//! tried in constant time, and the delivery counts for the Apps whose secret verifies it.
//! Those whose branch was pushed get `status.buildRequest` (the App controller starts the
//! build of an app built from git: lib/reconcile.rhai) and the push goes to [`crate::push::dispatch`].
//!
//! Replays: a delivery id seen before is refused with 409 Conflict, not answered 200, so a
//! sender (or a person pressing "Redeliver") learns that nothing was done a second time. The
//! ids are kept in a bounded in-memory ring per server, and, because several replicas may sit
//! behind one URL, the last delivery id of each App is also kept in its Secret's annotations
//! (`kipper.run/last-delivery`): a replay of the latest delivery is refused by any replica.
//! Older ids are not kept cluster-side: a replay of an older push re-requests a build of a
//! commit already requested, which is harmless, and a full log would grow without bound.

mod generic;
mod github;
mod gitlab;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use ring::hmac;
use serde_json::{Value, json};

use crate::push::PushEvent;

/// The largest payload accepted. GitHub caps its own at 25 MB but a push of a few commits is
/// a few KiB; 1 MiB leaves room for large pushes without letting anyone fill memory.
pub const MAX_BODY: usize = 1 << 20;

/// How long one delivery may take, reading its body included: GitHub gives up after 10 s.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a delivery waits for the first list of Apps after the server starts.
const APPS_READY: Duration = Duration::from_secs(5);

/// The longest delivery id accepted.
const MAX_ID: usize = 128;

/// How many delivery ids each server remembers.
const RECENT: usize = 4096;

/// The annotations of a webhook Secret that record its last delivery.
const LAST_DELIVERY: &str = "kipper.run/last-delivery";
const LAST_AT: &str = "kipper.run/last-delivery-at";
const LAST_RESULT: &str = "kipper.run/last-delivery-result";

/// What the webhook endpoints share.
pub struct State {
    client: Client,
    /// Every App, as a watch keeps it: a delivery looks its repository up here, not with a
    /// list of all Apps per delivery (BENCHMARKS.md, "Push webhooks").
    apps: Store<DynamicObject>,
    recent: Mutex<Recent>,
    /// Compares tokens in constant time: both sides are MACed with this key, never reused.
    token_key: hmac::Key,
    /// Pushes handed to `dispatch`, for tests and logs.
    pub(crate) dispatched: AtomicU64,
    /// Runs the hooks of the projects a push reached (`None`: hooks are not run).
    pub(crate) hooks: Option<crate::hooks::Runner>,
}

impl State {
    /// The endpoints' state; starts the watch of Apps on the current runtime, for as long as
    /// the runtime runs.
    pub fn new(client: Client, hooks: Option<crate::hooks::Runner>) -> Result<State, String> {
        let rng = ring::rand::SystemRandom::new();
        let token_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| "the OS has no randomness for the webhook key".to_string())?;
        let writer = reflector::store::Writer::new(app_resource());
        let apps = writer.as_reader();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &app_resource());
        // Backoff: a cluster without kip's CRD yet (the controllers install it) is retried.
        let watch = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|event| async move {
                if let Err(e) = event {
                    tracing::debug!("webhooks: watching Apps: {e}");
                }
            });
        tokio::spawn(watch);
        Ok(State {
            client,
            apps,
            recent: Mutex::new(Recent::new(RECENT)),
            token_key,
            dispatched: AtomicU64::new(0),
            hooks,
        })
    }

    /// The App `namespace/name` as the watch last saw it.
    pub(crate) fn app(&self, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        self.apps.get(
            &kube::runtime::reflector::ObjectRef::new_with(name, app_resource()).within(namespace),
        )
    }

    /// Whether `given` equals `expected`, taking the same time wherever they differ.
    fn same_token(&self, given: &[u8], expected: &[u8]) -> bool {
        let tag = hmac::sign(&self.token_key, expected);
        hmac::verify(&self.token_key, given, tag.as_ref()).is_ok()
    }
}

/// The routes under `/hooks`.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/hooks/github", post(github::handle))
        .route("/hooks/gitlab", post(gitlab::handle))
        .route("/hooks/generic", post(generic::handle))
        .with_state(state)
}

/// The delivery ids a server saw last, oldest first out.
struct Recent {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Recent {
    fn new(capacity: usize) -> Recent {
        Recent {
            ids: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers `id`; false when it was remembered already.
    fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.ids.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }

    /// Forgets `id`, so a delivery that could not be recorded can be retried.
    fn forget(&mut self, id: &str) {
        if self.ids.remove(id) {
            self.order.retain(|o| o != id);
        }
    }
}

/// An answer: a status and one line of words.
pub struct Reply(pub StatusCode, pub String);

impl Reply {
    fn new(code: StatusCode, text: impl Into<String>) -> Reply {
        Reply(code, text.into())
    }
    pub(crate) fn bad_request(text: impl Into<String>) -> Reply {
        Reply::new(StatusCode::BAD_REQUEST, text)
    }
    pub(crate) fn unauthorized(text: impl Into<String>) -> Reply {
        Reply::new(StatusCode::UNAUTHORIZED, text)
    }
    pub(crate) fn ignored(text: impl Into<String>) -> Reply {
        Reply::new(StatusCode::ACCEPTED, format!("ignored: {}", text.into()))
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut text = self.1;
        text.push('\n');
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response()
    }
}

/// Runs `handle` on the request's headers and body, within the size limit and [`TIMEOUT`].
pub(crate) async fn limited<F, Fut>(request: Request, handle: F) -> Response
where
    F: FnOnce(HeaderMap, Bytes) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    limited_for(TIMEOUT, request, handle).await
}

/// A slow sender (a stalled body) cannot hold a connection and its task longer than `timeout`.
async fn limited_for<F, Fut>(timeout: Duration, request: Request, handle: F) -> Response
where
    F: FnOnce(HeaderMap, Bytes) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let work = async move {
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return too_large();
        }
        let body = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(body) => body,
            Err(e) if is_length_limit(&e) => return too_large(),
            Err(e) => return Reply::bad_request(format!("cannot read the request body: {e}")),
        };
        handle(parts.headers, body).await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(reply) => reply.into_response(),
        Err(_) => Reply::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the delivery took longer than {} ms: nothing recorded",
                timeout.as_millis()
            ),
        )
        .into_response(),
    }
}

fn too_large() -> Reply {
    Reply::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the payload is larger than {} KiB", MAX_BODY / 1024),
    )
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains("length limit exceeded") {
            return true;
        }
        source = err.source();
    }
    false
}

/// The value of header `name` as text, if present and text.
pub(crate) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The body as JSON, or the 400 that says where it is broken.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| Reply::bad_request(format!("the payload is not valid JSON: {e}")))
}

/// The ref a push moved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GitRef {
    Branch(String),
    Tag(String),
}

impl GitRef {
    /// `refs/heads/NAME` or `refs/tags/NAME`; anything else (notes, pull refs) is not a push
    /// kip acts on.
    pub(crate) fn parse(full: &str) -> Result<GitRef, Reply> {
        if let Some(branch) = full.strip_prefix("refs/heads/") {
            return Ok(GitRef::Branch(branch.to_string()));
        }
        if let Some(tag) = full.strip_prefix("refs/tags/") {
            return Ok(GitRef::Tag(tag.to_string()));
        }
        Err(Reply::ignored(format!(
            "ref {full:?} is neither a branch nor a tag"
        )))
    }
}

/// A push as a provider's payload describes it.
pub(crate) struct Delivery {
    pub provider: &'static str,
    pub id: String,
    /// Every URL the payload gives for the repository (clone, SSH, web); the first is shown.
    pub repo_urls: Vec<String>,
    pub git_ref: GitRef,
    pub commit: String,
    pub author: String,
    pub changed_files: Vec<String>,
}

/// How a delivery proves it comes from someone who knows an App's webhook secret.
pub(crate) enum Proof<'a> {
    /// An HMAC-SHA256 of the raw body keyed with the secret (GitHub).
    Hmac { tag: Vec<u8>, body: &'a [u8] },
    /// The secret itself (GitLab's token, a bearer token).
    Token(&'a [u8]),
}

impl Proof<'_> {
    fn verifies(&self, state: &State, secret: &[u8]) -> bool {
        match self {
            Proof::Hmac { tag, body } => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
                hmac::verify(&key, body, tag).is_ok()
            }
            Proof::Token(given) => state.same_token(given, secret),
        }
    }
}

/// An App that names the pushed repository and has a webhook secret.
struct Candidate {
    namespace: String,
    name: String,
    branch: String,
    secret: Vec<u8>,
    last_delivery: Option<String>,
}

/// A repository URL in one form whatever its spelling: `host/path`, lowercase, without scheme,
/// user, port, trailing `/` or `.git`. `git@github.com:Acme/Shop.git`,
/// `ssh://git@github.com:22/acme/shop` and `https://github.com/acme/shop/` are all
/// `github.com/acme/shop`.
pub fn normalize_repo(url: &str) -> String {
    let url = url.trim();
    let (rest, scp) = match url.split_once("://") {
        Some((_, rest)) => (rest, false),
        None => (url, true),
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    // scp-like `host:path`, as git reads it: a colon before any slash.
    let scp = scp
        && match (rest.find(':'), rest.find('/')) {
            (Some(colon), Some(slash)) => colon < slash,
            (Some(_), None) => true,
            _ => false,
        };
    let (host, path) = if scp {
        rest.split_once(':').unwrap_or((rest, ""))
    } else {
        rest.split_once('/').unwrap_or((rest, ""))
    };
    let host = host.split(':').next().unwrap_or(host);
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{host}/{path}").to_lowercase()
}

/// The Apps naming the delivery's repository whose secret verifies it, or the refusal: 404
/// when no App with a webhook names the repository, 401 when none of their secrets verifies.
async fn verify(
    state: &State,
    delivery: &Delivery,
    proof: &Proof<'_>,
) -> Result<Vec<Candidate>, Reply> {
    let candidates = candidates(state, &delivery.repo_urls).await?;
    let shown = delivery.repo_urls.first().cloned().unwrap_or_default();
    if candidates.is_empty() {
        return Err(Reply::new(
            StatusCode::NOT_FOUND,
            format!(
                "no app with a webhook takes pushes from {shown} (kip app webhook enable APP --repo {shown})"
            ),
        ));
    }
    let verified: Vec<Candidate> = candidates
        .into_iter()
        .filter(|c| proof.verifies(state, &c.secret))
        .collect();
    if verified.is_empty() {
        return Err(Reply::unauthorized(match proof {
            Proof::Hmac { .. } => "the signature does not match the webhook secret",
            Proof::Token(_) => "the token does not match the webhook secret",
        }));
    }
    Ok(verified)
}

/// 200 when some App's secret verifies the delivery, else the refusal; nothing recorded.
pub(crate) async fn verify_only(state: &State, delivery: &Delivery, proof: &Proof<'_>) -> Reply {
    match verify(state, delivery, proof).await {
        Ok(_) => Reply::new(StatusCode::OK, "verified"),
        Err(reply) => reply,
    }
}

/// Decides what a delivery does: the common path of every endpoint.
pub(crate) async fn accept(state: &State, delivery: Delivery, proof: Proof<'_>) -> Reply {
    // Ids are remembered: a sender's id is a UUID, not a place to store megabytes.
    if delivery.id.len() > MAX_ID {
        return Reply::bad_request(format!(
            "the delivery id is longer than {MAX_ID} characters"
        ));
    }
    let verified = match verify(state, &delivery, &proof).await {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let shown = delivery.repo_urls.first().cloned().unwrap_or_default();
    let key = format!("{}:{}", delivery.provider, delivery.id);
    let replayed = verified
        .iter()
        .any(|c| c.last_delivery.as_deref() == Some(&delivery.id));
    let fresh = lock(&state.recent).insert(&key);
    if !fresh || replayed {
        return Reply::new(
            StatusCode::CONFLICT,
            format!(
                "delivery {} was already received: nothing done again",
                delivery.id
            ),
        );
    }
    let outcome = decide(state, &delivery, &verified).await;
    let (reply, apps) = match outcome {
        Ok(done) => done,
        Err(reply) => {
            lock(&state.recent).forget(&key);
            return reply;
        }
    };
    let result = format!("{} {}", reply.0.as_u16(), reply.1);
    for c in &verified {
        record_delivery(state, c, &delivery.id, &result).await;
    }
    if reply.0.is_success() && reply.0 != StatusCode::ACCEPTED {
        let (branch, tag) = match &delivery.git_ref {
            GitRef::Branch(b) => (b.clone(), None),
            GitRef::Tag(t) => (String::new(), Some(t.clone())),
        };
        let event = PushEvent {
            provider: delivery.provider,
            delivery: delivery.id.clone(),
            repo_url: shown,
            branch,
            tag,
            commit: delivery.commit.clone(),
            author: delivery.author.clone(),
            changed_files: delivery.changed_files.clone(),
            apps,
        };
        crate::push::dispatch(state, &event).await;
    }
    reply
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a verified delivery does; the answer and the Apps the push is dispatched for.
async fn decide(
    state: &State,
    delivery: &Delivery,
    verified: &[Candidate],
) -> Result<(Reply, Vec<(String, String)>), Reply> {
    let all = |cs: &[Candidate]| {
        cs.iter()
            .map(|c| (c.namespace.clone(), c.name.clone()))
            .collect::<Vec<_>>()
    };
    let branch = match &delivery.git_ref {
        GitRef::Tag(tag) => {
            let short = short(&delivery.commit);
            return Ok((
                Reply::new(
                    StatusCode::OK,
                    format!(
                        "accepted: tag {tag} at {short} (apps build branches: no build requested)"
                    ),
                ),
                all(verified),
            ));
        }
        GitRef::Branch(b) => b,
    };
    if delivery.commit.is_empty() || delivery.commit.bytes().all(|b| b == b'0') {
        return Ok((
            Reply::ignored(format!("branch {branch} was deleted")),
            Vec::new(),
        ));
    }
    let building: Vec<&Candidate> = verified.iter().filter(|c| &c.branch == branch).collect();
    if building.is_empty() {
        let builds = verified
            .iter()
            .map(|c| format!("{}/{} builds {}", c.namespace, c.name, c.branch))
            .collect::<Vec<_>>()
            .join(", ");
        return Ok((
            Reply::ignored(format!("push to branch {branch}; {builds}")),
            Vec::new(),
        ));
    }
    let at = now();
    let build = json!({
        "requested": delivery.commit,
        "branch": branch,
        "at": at,
        "delivery": delivery.id,
        "provider": delivery.provider,
    });
    let mut apps = Vec::new();
    for c in &building {
        let api: Api<DynamicObject> =
            Api::namespaced_with(state.client.clone(), &c.namespace, &app_resource());
        api.patch_status(
            &c.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "buildRequest": build } })),
        )
        .await
        .map_err(|e| {
            Reply::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "cannot record the build request of {}/{}: {e}",
                    c.namespace, c.name
                ),
            )
        })?;
        apps.push((c.namespace.clone(), c.name.clone()));
    }
    let names = apps
        .iter()
        .map(|(ns, n)| format!("{ns}/{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((
        Reply::new(
            StatusCode::OK,
            format!(
                "accepted: build of {} ({branch}) requested for {names}",
                short(&delivery.commit)
            ),
        ),
        apps,
    ))
}

fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// Notes the delivery on the App's webhook Secret, for `kip app webhook status` and for the
/// replay check of other replicas. A failure to note it is logged, not answered: the push
/// itself was recorded.
async fn record_delivery(state: &State, c: &Candidate, id: &str, result: &str) {
    let api: Api<Secret> = Api::namespaced(state.client.clone(), &c.namespace);
    let patch = json!({ "metadata": { "annotations": {
        LAST_DELIVERY: id, LAST_AT: now(), LAST_RESULT: result,
    } } });
    if let Err(e) = api
        .patch(
            &secret_name(&c.name),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        tracing::warn!(
            "cannot note delivery {id} on {}/{}: {e}",
            c.namespace,
            c.name
        );
    }
}

fn secret_name(app: &str) -> String {
    format!("{app}-webhook")
}

fn app_resource() -> ApiResource {
    crate::controllers::APP.resource()
}

/// The Apps whose git source is one of `urls`, with their webhook secrets; Apps without a
/// secret (webhook not enabled) are left out.
async fn candidates(state: &State, urls: &[String]) -> Result<Vec<Candidate>, Reply> {
    let wanted: HashSet<String> = urls.iter().map(|u| normalize_repo(u)).collect();
    let ready = tokio::time::timeout(APPS_READY, state.apps.wait_until_ready()).await;
    if !matches!(ready, Ok(Ok(()))) {
        return Err(Reply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server has not read the apps yet: try again shortly",
        ));
    }
    let apps = state.apps.state_filter(|app| {
        app.data["spec"]["source"]["git"]["url"]
            .as_str()
            .is_some_and(|url| wanted.contains(&normalize_repo(url)))
    });
    let mut found = Vec::new();
    for app in apps {
        let app = DynamicObject::clone(&app);
        let git = &app.data["spec"]["source"]["git"];
        let (Some(namespace), Some(name)) = (app.metadata.namespace, app.metadata.name) else {
            continue;
        };
        let secrets: Api<Secret> = Api::namespaced(state.client.clone(), &namespace);
        let secret = secrets.get_opt(&secret_name(&name)).await.map_err(|e| {
            Reply::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read a webhook secret: {e}"),
            )
        })?;
        let Some(secret) = secret else { continue };
        let Some(token) = secret.data.as_ref().and_then(|d| d.get("token")) else {
            continue;
        };
        let last_delivery = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LAST_DELIVERY))
            .cloned();
        found.push(Candidate {
            namespace,
            name,
            branch: git["branch"].as_str().unwrap_or("main").to_string(),
            secret: token.0.clone(),
            last_delivery,
        });
    }
    Ok(found)
}

/// Text at `pointer` in `v`, or "".
pub(crate) fn text_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The files the commits of a push touched, each once, in order.
pub(crate) fn changed_files(commits: Option<&Value>) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for commit in commits.and_then(Value::as_array).into_iter().flatten() {
        for list in ["added", "modified", "removed"] {
            for file in commit[list].as_array().into_iter().flatten() {
                if let Some(f) = file.as_str()
                    && seen.insert(f.to_string())
                {
                    files.push(f.to_string());
                }
            }
        }
    }
    files
}

/// `Name <email>` from a payload's author object.
pub(crate) fn author(v: &Value) -> String {
    let name = v["name"].as_str().unwrap_or_default();
    match v["email"].as_str() {
        Some(email) if !email.is_empty() => format!("{name} <{email}>"),
        _ => name.to_string(),
    }
}

/// The repository URLs of a payload's repository object under `keys`, non-empty ones only.
pub(crate) fn urls(repo: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| repo[*k].as_str())
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_normalize_to_one_form() {
        for url in [
            "https://github.com/acme/shop",
            "https://github.com/acme/shop.git",
            "https://github.com/Acme/Shop/",
            "http://user:pw@github.com/acme/shop.git",
            "git@github.com:acme/shop.git",
            "ssh://git@github.com:22/acme/shop.git",
            "git://github.com/acme/shop.git",
            "github.com/acme/shop",
        ] {
            assert_eq!(normalize_repo(url), "github.com/acme/shop", "{url}");
        }
        assert_ne!(
            normalize_repo("https://github.com/acme/shop2"),
            "github.com/acme/shop"
        );
        assert_eq!(
            normalize_repo("git@gitlab.example.com:group/sub/proj.git"),
            "gitlab.example.com/group/sub/proj"
        );
    }

    async fn answer(request: Request, timeout: Duration) -> (StatusCode, String) {
        let response = limited_for(timeout, request, |_, body| async move {
            Reply::new(StatusCode::OK, format!("{} bytes", body.len()))
        })
        .await;
        let code = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap_or_default();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    /// A body sent in `chunks` of `size` bytes, without a Content-Length, then stalled for
    /// ever when `stall`.
    fn streamed(chunks: usize, size: usize, stall: bool) -> Request {
        let parts = futures_util::stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size]))),
        );
        let body = if stall {
            axum::body::Body::from_stream(futures_util::StreamExt::chain(
                parts,
                futures_util::stream::pending(),
            ))
        } else {
            axum::body::Body::from_stream(parts)
        };
        Request::builder()
            .method("POST")
            .uri("/hooks/github")
            .body(body)
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn bodies_are_limited_in_size_and_time() {
        let second = Duration::from_secs(1);
        assert_eq!(
            answer(streamed(16, 1024, false), second).await,
            (StatusCode::OK, "16384 bytes\n".into())
        );
        // Chunked, so only counting can tell it is too large.
        let (code, text) = answer(streamed(17, 64 * 1024, false), second).await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
        let declared = Request::builder()
            .method("POST")
            .header("content-length", "2000000")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        assert_eq!(
            answer(declared, second).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let (code, text) = answer(streamed(1, 10, true), Duration::from_millis(50)).await;
        assert_eq!(code, StatusCode::REQUEST_TIMEOUT, "{text}");
        assert_eq!(
            text,
            "the delivery took longer than 50 ms: nothing recorded\n"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_url_normalizes_without_panic_and_twice_is_once(url in "\\PC{0,60}") {
            let once = normalize_repo(&url);
            proptest::prop_assert_eq!(normalize_repo(&format!("https://{once}")), once);
        }
    }

    #[test]
    fn the_ring_forgets_the_oldest_id() {
        let mut r = Recent::new(2);
        assert!(r.insert("a"));
        assert!(!r.insert("a"));
        assert!(r.insert("b"));
        assert!(r.insert("c"));
        assert!(r.insert("a"), "a was the oldest and is forgotten");
        r.forget("a");
        assert!(r.insert("a"));
    }

    #[test]
    fn refs_are_branches_or_tags() {
        assert_eq!(
            GitRef::parse("refs/heads/feature/x").ok(),
            Some(GitRef::Branch("feature/x".into()))
        );
        assert_eq!(
            GitRef::parse("refs/tags/v1.0").ok(),
            Some(GitRef::Tag("v1.0".into()))
        );
        assert!(GitRef::parse("refs/pull/1/head").is_err());
    }
}
