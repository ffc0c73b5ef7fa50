//! `POST /hooks/gitlab`: GitLab's push and tag push hooks, with the secret token in
//! `X-Gitlab-Token`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State as Shared};
use axum::http::HeaderMap;
use axum::response::Response;

use super::{Delivery, GitRef, Proof, Reply, State};

pub(super) async fn handle(Shared(state): Shared<Arc<State>>, request: Request) -> Response {
    super::limited(request, |headers, body| async move {
        deliver(&state, &headers, &body).await
    })
    .await
}

async fn deliver(state: &State, headers: &HeaderMap, body: &Bytes) -> Reply {
    let Some(token) = super::header_text(headers, "x-gitlab-token").filter(|t| !t.is_empty())
    else {
        return Reply::unauthorized(
            "no X-Gitlab-Token: set the webhook's secret token to the one kip printed",
        );
    };
    let Some(event) = super::header_text(headers, "x-gitlab-event") else {
        return Reply::bad_request("X-Gitlab-Event is missing");
    };
    if event != "Push Hook" && event != "Tag Push Hook" {
        return Reply::ignored(format!(
            "event {event:?} (kip acts on Push Hook and Tag Push Hook)"
        ));
    }
    // GitLab sends the UUID since 15.x; older ones have only the idempotency key.
    let Some(id) = super::header_text(headers, "x-gitlab-event-uuid")
        .or_else(|| super::header_text(headers, "idempotency-key"))
        .filter(|d| !d.is_empty())
    else {
        return Reply::bad_request("X-Gitlab-Event-UUID is missing");
    };
    let payload = match super::json_body(body) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let mut repo_urls = super::urls(
        &payload["project"],
        &["git_http_url", "git_ssh_url", "web_url"],
    );
    repo_urls.extend(super::urls(
        &payload["repository"],
        &["git_http_url", "git_ssh_url", "homepage"],
    ));
    if repo_urls.is_empty() {
        return Reply::bad_request("the payload names no repository (project.git_http_url)");
    }
    let Some(full_ref) = payload["ref"].as_str() else {
        return Reply::bad_request("the push payload has no `ref`");
    };
    let git_ref = match GitRef::parse(full_ref) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // `checkout_sha` is null when a push deletes the ref; `after` is then all zeros.
    let commit = match payload["checkout_sha"].as_str() {
        Some(sha) => sha.to_string(),
        None => super::text_at(&payload, "/after"),
    };
    let head = payload["commits"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"].as_str() == Some(&commit)));
    let author = match head {
        Some(c) => super::author(&c["author"]),
        None => {
            let name = super::text_at(&payload, "/user_name");
            let email = super::text_at(&payload, "/user_email");
            super::author(&serde_json::json!({ "name": name, "email": email }))
        }
    };
    let delivery = Delivery {
        provider: "gitlab",
        id: id.to_string(),
        repo_urls,
        git_ref,
        commit,
        author,
        changed_files: super::changed_files(payload.get("commits")),
    };
    super::accept(state, delivery, Proof::Token(token.as_bytes())).await
}
