//! `pods/{name}/exec`: running a command in a pod's container.
//!
//! The request is checked as the API server and the kubelet check it, and any refusal is a
//! `Status` before the upgrade: an unknown pod is a 404; a missing or ambiguous container, no
//! command, a pod that is not running, or `tty=true` (the sandbox has no terminals) a 400; and
//! a pod the sandbox runs no command for a 403 that says how to opt in ([`host`]).
//!
//! Served over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`: kube-rs, and kubectl 1.30
//! and later, [`websocket`]). The SPDY upgrade older kubectl uses is refused with a hint, after
//! the same checks, so kubectl falling back to SPDY after a refused WebSocket still shows the
//! reason.

pub mod host;
mod websocket;

use axum::http::Method;
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::upgrade::{asks_for, header_tokens, websocket_accept};
use super::{Api, Req};
use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::registry::Resource;
use websocket::Streams;

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

/// The query of an exec request.
#[derive(Debug)]
struct ExecParams {
    command: Vec<String>,
    container: Option<String>,
    streams: Streams,
    tty: bool,
}

fn params(raw_query: &str) -> ExecParams {
    let mut p = ExecParams {
        command: Vec::new(),
        container: None,
        streams: Streams {
            stdin: false,
            stdout: false,
            stderr: false,
        },
        tty: false,
    };
    let yes = |v: &str| matches!(v, "true" | "1");
    for (name, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        match &*name {
            "command" => p.command.push(value.into_owned()),
            "container" if !value.is_empty() => p.container = Some(value.into_owned()),
            "stdin" => p.streams.stdin = yes(&value),
            "stdout" => p.streams.stdout = yes(&value),
            "stderr" => p.streams.stderr = yes(&value),
            "tty" => p.tty = yes(&value),
            _ => {}
        }
    }
    p
}

/// The container exec runs in: the named one, or the only one.
fn container<'a>(pod: &'a Value, wanted: Option<&str>) -> ApiResult<&'a Value> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let containers = pod["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match wanted {
        Some(wanted) => containers
            .iter()
            .find(|c| c["name"].as_str() == Some(wanted))
            .ok_or_else(|| {
                ApiError::bad_request(format!("container {wanted} is not valid for pod {name}"))
            }),
        None => match containers {
            [only] => Ok(only),
            _ => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            ))),
        },
    }
}

/// Answers an exec request with an upgrade and runs the command on the upgraded connection.
pub fn serve(api: &Api, res: &Resource, ns: &str, name: &str, req: Req) -> ApiResult<Response> {
    if req.method != Method::GET && req.method != Method::POST {
        return Err(ApiError::method_not_allowed(req.method.as_str()));
    }
    let Some(pod) = api.store.get(&ops::key(res, ns, name)) else {
        return Err(ApiError::not_found(&res.plural, &res.group, name));
    };
    let p = params(&req.raw_query);
    let container = container(&pod, p.container.as_deref())?;
    if p.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    if !(p.streams.stdin || p.streams.stdout || p.streams.stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if p.tty {
        return Err(ApiError::bad_request(
            "the sandbox runs exec commands without a terminal: leave out -t/--tty",
        ));
    }
    match pod["status"]["phase"].as_str().unwrap_or("Pending") {
        "Running" => {}
        done @ ("Succeeded" | "Failed") => {
            return Err(ApiError::bad_request(format!(
                "cannot exec into a container in a completed pod; current phase is {done}"
            )));
        }
        phase => {
            return Err(ApiError::bad_request(format!(
                "pod {name} is not running (phase {phase}): exec needs a running container"
            )));
        }
    }
    let command = match api.running(&pod) {
        Some(running) => host::in_container(api, &running, container, &p.command)?,
        None => host::plan(api.host_exec, &api.store, &pod, container, &p.command)?,
    };

    if !asks_for(&req, "websocket") {
        return Err(ApiError::bad_request(if asks_for(&req, "SPDY/3.1") {
            "the sandbox serves exec over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io), not \
             SPDY: use kubectl 1.30 or later without KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"
        } else {
            "Upgrade request required"
        }));
    }
    let offered: Vec<&str> = header_tokens(&req, "sec-websocket-protocol").collect();
    let Some(protocol) = [V5, V4].into_iter().find(|ours| offered.contains(ours)) else {
        return Err(ApiError::bad_request(format!(
            "none of the WebSocket subprotocols offered ({}) is served; the sandbox serves {V5} \
             and {V4} for exec",
            offered.join(", ")
        )));
    };
    let Some(on_upgrade) = req.upgrade else {
        return Err(ApiError::bad_request(
            "this connection cannot be upgraded (HTTP/1.1 is required)",
        ));
    };
    let resp = websocket_accept(&req.headers, Some(protocol))?;
    let streams = p.streams;
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        websocket::serve(ws, protocol == V5, command, streams).await;
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_repeat_in_the_query() {
        let p =
            params("command=sh&command=-c&command=echo%20a%26b&stdout=true&stderr=1&container=db");
        assert_eq!(p.command, ["sh", "-c", "echo a&b"]);
        assert_eq!(p.container.as_deref(), Some("db"));
        assert!(p.streams.stdout && p.streams.stderr && !p.streams.stdin && !p.tty);
    }

    #[test]
    fn the_container_is_named_or_the_only_one() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container(&one, None).ok(), Some(&json!({"name": "a"})));
        let err = container(&one, Some("b")).expect_err("no b");
        assert_eq!(err.message, "container b is not valid for pod p");
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let err = container(&two, None).expect_err("ambiguous");
        assert!(
            err.message.contains("choose one of: [a b]"),
            "{}",
            err.message
        );
        assert_eq!(container(&two, Some("b")).ok(), Some(&json!({"name": "b"})));
    }
}
