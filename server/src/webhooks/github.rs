//! `POST /hooks/github`: GitHub's push webhooks, signed with `X-Hub-Signature-256`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{Delivery, GitRef, Proof, Reply, State};

pub(super) async fn handle(Shared(state): Shared<Arc<State>>, request: Request) -> Response {
    super::limited(request, |headers, body| async move {
        deliver(&state, &headers, &body).await
    })
    .await
}

async fn deliver(state: &State, headers: &HeaderMap, body: &Bytes) -> Reply {
    let Some(signature) = super::header_text(headers, "x-hub-signature-256") else {
        return Reply::unauthorized(
            "unsigned delivery: X-Hub-Signature-256 is missing (set the webhook's secret)",
        );
    };
    let tag = match parse_signature(signature) {
        Ok(tag) => tag,
        Err(why) => return Reply::unauthorized(format!("bad X-Hub-Signature-256: {why}")),
    };
    let Some(event) = super::header_text(headers, "x-github-event") else {
        return Reply::bad_request("X-GitHub-Event is missing");
    };
    if event != "push" && event != "ping" {
        return Reply::ignored(format!("event {event:?} (kip acts on push)"));
    }
    let Some(id) = super::header_text(headers, "x-github-delivery").filter(|d| !d.is_empty())
    else {
        return Reply::bad_request("X-GitHub-Delivery is missing");
    };
    let form = super::header_text(headers, "content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        return Reply::bad_request(
            "the webhook sends a form: set its content type to application/json",
        );
    }
    let payload = match super::json_body(body) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let repo_urls = super::urls(
        &payload["repository"],
        &["clone_url", "html_url", "ssh_url", "git_url", "url"],
    );
    if repo_urls.is_empty() {
        return Reply::bad_request("the payload names no repository (repository.clone_url)");
    }
    let proof = Proof::Hmac { tag, body };
    if event == "ping" {
        return ping(state, id, repo_urls, proof).await;
    }
    let Some(full_ref) = payload["ref"].as_str() else {
        return Reply::bad_request("the push payload has no `ref`");
    };
    let git_ref = match GitRef::parse(full_ref) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let delivery = Delivery {
        provider: "github",
        id: id.to_string(),
        repo_urls,
        git_ref,
        commit: super::text_at(&payload, "/after"),
        author: super::author(&payload["head_commit"]["author"]),
        changed_files: super::changed_files(payload.get("commits")),
    };
    super::accept(state, delivery, proof).await
}

/// GitHub sends a ping when a webhook is made: answered "pong" once the signature verifies
/// against an App of the repository, so a green tick on GitHub means the secret is right.
async fn ping(state: &State, id: &str, repo_urls: Vec<String>, proof: Proof<'_>) -> Reply {
    // A ping is a delivery like any other, but it must not count as a build request: it goes
    // through the same lookup and verification, with a ref no App builds.
    let delivery = Delivery {
        provider: "github",
        id: id.to_string(),
        repo_urls,
        git_ref: GitRef::Tag(String::new()),
        commit: String::new(),
        author: String::new(),
        changed_files: Vec::new(),
    };
    let reply = super::verify_only(state, &delivery, &proof).await;
    if reply.0 == StatusCode::OK {
        Reply(StatusCode::OK, "pong".into())
    } else {
        reply
    }
}

/// The MAC in `sha256=<64 hex digits>`.
pub fn parse_signature(header: &str) -> Result<Vec<u8>, &'static str> {
    let hex = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or("expected sha256=<hex>")?;
    if hex.len() != 64 {
        return Err("expected 64 hex digits after sha256=");
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or("expected 64 hex digits after sha256=")
}

#[cfg(test)]
mod tests {
    use super::parse_signature;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn signatures_parse() {
        let mac = [0xab_u8; 32];
        assert_eq!(
            parse_signature(&format!("sha256={}", hex(&mac))).unwrap(),
            mac
        );
        assert!(parse_signature(&format!("sha1={}", hex(&mac[..20]))).is_err());
        assert!(parse_signature("sha256=").is_err());
        assert!(parse_signature(&format!("sha256={}", "zz".repeat(32))).is_err());
        // A multi-byte character where a digit should be is an error, not a panic.
        assert!(parse_signature(&format!("sha256={}é", "a".repeat(62))).is_err());
    }

    proptest! {
        #[test]
        fn any_header_parses_or_is_refused(header in ".{0,80}") {
            let _ = parse_signature(&header);
        }

        #[test]
        fn any_mac_round_trips(mac in proptest::collection::vec(any::<u8>(), 32), upper in any::<bool>()) {
            let text = if upper { hex(&mac).to_uppercase() } else { hex(&mac) };
            prop_assert_eq!(parse_signature(&format!("sha256={text}")).unwrap(), mac);
        }

        #[test]
        fn hex_of_another_length_is_refused(mac in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assume!(mac.len() != 32);
            let header = format!("sha256={}", hex(&mac));
            prop_assert!(parse_signature(&header).is_err());
        }
    }
}
