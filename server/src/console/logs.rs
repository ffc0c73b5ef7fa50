//! Live logs of an app's pod over a WebSocket: `lib/apps.rhai`'s `log_sources` says which pods
//! and container (the same function `kip app logs` uses); this streams the chosen pod's log
//! from the API server, one message per line, until the browser leaves or the pod goes.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{AsyncBufReadExt, SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Console, Runner, auth};

/// Lines of history sent before the live ones.
const TAIL: i64 = 100;

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// The pods `log_sources` gives for the app, and the one to stream (`pod=` when it is one of
/// them, else the first).
pub async fn sources(
    runner: &Runner,
    project: &str,
    env: &str,
    app: &str,
) -> Result<Value, String> {
    runner
        .call(
            "lib/apps",
            "log_sources",
            json!({ "project": project, "environment": env, "name": app }),
        )
        .await
}

pub async fn stream(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((project, env, app)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    mut request: Request,
) -> Response {
    let Some(session) = auth::session_cookie(&headers).and_then(|id| console.sessions.get(&id))
    else {
        return refuse(StatusCode::UNAUTHORIZED, "sign in to the console first");
    };
    // What this session may read: its cluster user's logs, or the console's.
    let runner = console.runner_for(&session);
    // A page of another site may open a WebSocket with the user's cookies: only the
    // console's own pages may.
    if !auth::same_origin(&headers) || headers.get(header::ORIGIN).is_none() {
        return refuse(
            StatusCode::FORBIDDEN,
            "logs stream only to the console's own pages",
        );
    }
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers.get("sec-websocket-key").cloned() else {
        return refuse(StatusCode::BAD_REQUEST, "this is a WebSocket endpoint");
    };
    if !is_upgrade {
        return refuse(StatusCode::BAD_REQUEST, "this is a WebSocket endpoint");
    }
    let from = match sources(&runner, &project, &env, &app).await {
        Ok(from) => from,
        Err(why) => return refuse(StatusCode::NOT_FOUND, &why),
    };
    let wanted: Option<String> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "pod")
        .map(|(_, v)| v.into_owned());
    let pods: Vec<String> = from["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    let pod = match wanted {
        Some(pod) if pods.contains(&pod) => pod,
        Some(pod) => {
            return refuse(
                StatusCode::NOT_FOUND,
                &format!("{pod} is not a pod of {app}"),
            );
        }
        None => match pods.first() {
            Some(pod) => pod.clone(),
            None => return refuse(StatusCode::NOT_FOUND, &format!("{app} has no pods")),
        },
    };
    let namespace = from["namespace"].as_str().unwrap_or_default().to_string();
    let container = from["container"].as_str().map(str::to_string);
    let client = match (runner.cluster.client)() {
        Ok(client) => client.client,
        Err(why) => return refuse(StatusCode::BAD_GATEWAY, &why),
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let socket =
            tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        follow(socket, client, &namespace, &pod, container).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let accept = derive_accept_key(key.as_bytes());
    let out = response.headers_mut();
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        out.insert("sec-websocket-accept", accept);
    }
    response
}

/// Sends the log of `pod` line by line until it ends or the browser goes.
async fn follow<S>(
    socket: tokio_tungstenite::WebSocketStream<S>,
    client: kube::Client,
    namespace: &str,
    pod: &str,
    container: Option<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = socket.split();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, namespace);
    let params = LogParams {
        container,
        follow: true,
        tail_lines: Some(TAIL),
        ..LogParams::default()
    };
    let _ = tx
        .send(Message::text(format!(
            "── {pod}: last {TAIL} lines, then live ──"
        )))
        .await;
    let log = match pods.log_stream(pod, &params).await {
        Ok(log) => log,
        Err(e) => {
            let _ = tx
                .send(Message::text(format!(
                    "── cannot read the log of {pod}: {e} ──"
                )))
                .await;
            let _ = tx.close().await;
            return;
        }
    };
    let mut lines = log.lines();
    loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    if tx.send(Message::text(line)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Message::text(format!("── the log stopped: {e} ──"))).await;
                    break;
                }
                None => {
                    let _ = tx.send(Message::text(format!("── {pod} ended its log ──"))).await;
                    break;
                }
            },
            message = rx.next() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
    let _ = tx.close().await;
}
