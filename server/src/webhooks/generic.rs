//! `POST /hooks/generic`: for any other CI. `Authorization: Bearer <secret>` and a JSON body
//! `{"repo": URL, "branch": NAME, "commit": SHA}`, with optional `"tag"` (instead of
//! `branch`), `"delivery"` (an id, for replay protection), `"author"` and `"changed_files"`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State as Shared};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::{Delivery, GitRef, Proof, Reply, State};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    repo: String,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    commit: String,
    #[serde(default)]
    delivery: Option<String>,
    #[serde(default)]
    author: String,
    #[serde(default)]
    changed_files: Vec<String>,
}

pub(super) async fn handle(Shared(state): Shared<Arc<State>>, request: Request) -> Response {
    super::limited(request, |headers, body| async move {
        deliver(&state, &headers, &body).await
    })
    .await
}

async fn deliver(state: &State, headers: &HeaderMap, body: &Bytes) -> Reply {
    let token = super::header_text(headers, "authorization").and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    });
    let Some(token) = token else {
        return Reply::unauthorized("no Authorization: Bearer <webhook secret>");
    };
    let body: Body = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return Reply::bad_request(format!(
                "the body is not {{\"repo\", \"branch\", \"commit\"}} JSON: {e}"
            ));
        }
    };
    let git_ref = match (body.branch, body.tag) {
        (Some(branch), None) if !branch.is_empty() => GitRef::Branch(branch),
        (None, Some(tag)) if !tag.is_empty() => GitRef::Tag(tag),
        _ => return Reply::bad_request("give one of `branch` and `tag`"),
    };
    let commit = body.commit.trim();
    if commit.is_empty() || commit.len() > 64 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Reply::bad_request("`commit` is not a commit id (hex digits)");
    }
    // Without an id from the sender, each delivery is new.
    let id = body.delivery.filter(|d| !d.is_empty()).unwrap_or_else(|| {
        let rng = ring::rand::SystemRandom::new();
        let bytes: [u8; 16] = ring::rand::generate(&rng)
            .map(|r| r.expose())
            .unwrap_or_default();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    let delivery = Delivery {
        provider: "generic",
        id,
        repo_urls: vec![body.repo],
        git_ref,
        commit: commit.to_string(),
        author: body.author,
        changed_files: body.changed_files,
    };
    super::accept(state, delivery, Proof::Token(token.as_bytes())).await
}
