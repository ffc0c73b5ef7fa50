//! `pods/{name}/portforward`: tunnels to what stands for a pod's ports.
//!
//! No process runs in a sandbox pod; the annotation `sandbox.kipper.run/forward` names the
//! loopback server that stands for each port (see [`backend`]). Three ways in, as on a real
//! cluster:
//!
//! - WebSocket with subprotocol `v4.channel.k8s.io` (or `channel.k8s.io`): kube-rs and other
//!   WebSocket clients, ports in the query (`?ports=5432` or `?ports=5432,6379`), one TCP
//!   connection per port for the life of the WebSocket ([`websocket`]).
//! - WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`: kubectl 1.31 and later, SPDY
//!   tunnelled in binary messages ([`spdy`] over [`websocket::tunnel`]).
//! - An HTTP upgrade to `SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`: older
//!   kubectl, and newer kubectl when WebSockets are turned off.
//!
//! An unknown pod is a 404 before any upgrade; a pod that is not running, or a port nothing
//! stands for, is reported on the port's error channel (stream) like the kubelet does.

pub mod backend;
mod spdy;
mod websocket;

use axum::http::{HeaderValue, Method};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::upgrade::{asks_for, header_tokens, switching, websocket_accept};
use super::{Api, Req};
use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::registry::Resource;
use backend::Target;

/// WebSocket subprotocols served, most preferred first.
const CHANNEL_V4: &str = "v4.channel.k8s.io";
const CHANNEL: &str = "channel.k8s.io";
const SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// The SPDY upgrade and the stream protocol kubectl asks for over it.
const SPDY_UPGRADE: &str = "SPDY/3.1";
const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// How the client wants to talk, from its upgrade headers.
enum Protocol {
    /// A WebSocket with this subprotocol (`None`: the client offered none).
    Channels(Option<&'static str>),
    SpdyTunnel,
    Spdy,
}

fn protocol(req: &Req) -> ApiResult<Protocol> {
    if asks_for(req, "websocket") {
        let offered: Vec<&str> = header_tokens(req, "sec-websocket-protocol").collect();
        if offered.is_empty() {
            return Ok(Protocol::Channels(None));
        }
        // Our preference decides, as the API server's does.
        if offered.contains(&SPDY_TUNNEL) {
            return Ok(Protocol::SpdyTunnel);
        }
        for ours in [CHANNEL_V4, CHANNEL] {
            if offered.contains(&ours) {
                return Ok(Protocol::Channels(Some(ours)));
            }
        }
        return Err(ApiError::bad_request(format!(
            "none of the WebSocket subprotocols offered ({}) is served; the sandbox serves \
             {CHANNEL_V4}, {CHANNEL} and {SPDY_TUNNEL} for port forwarding",
            offered.join(", ")
        )));
    }
    if asks_for(req, SPDY_UPGRADE) {
        let streams: Vec<&str> = header_tokens(req, STREAM_PROTOCOL_HEADER).collect();
        if !streams.is_empty() && !streams.contains(&PORT_FORWARD_PROTOCOL) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "unable to upgrade: no common stream protocol: offered {}, served {PORT_FORWARD_PROTOCOL}",
                    streams.join(", ")
                ),
            ));
        }
        return Ok(Protocol::Spdy);
    }
    Err(ApiError::bad_request("Upgrade request required"))
}

/// The ports of a WebSocket forward: every `ports` parameter, each a number or a comma list.
fn ports(raw_query: &str) -> ApiResult<Vec<u16>> {
    let mut ports = Vec::new();
    for (name, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        if name != "ports" {
            continue;
        }
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let port = item
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid port {item:?}: ports must be numbers from 1 to 65535"
                    ))
                })?;
            if ports.contains(&port) {
                return Err(ApiError::bad_request(format!(
                    "port {port} is listed twice"
                )));
            }
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request(
            "query parameter \"ports\" is required for a WebSocket port forward",
        ));
    }
    // Channel numbers are one byte: two per port.
    if ports.len() > 128 {
        return Err(ApiError::bad_request(
            "at most 128 ports can be forwarded at once",
        ));
    }
    Ok(ports)
}

/// Answers a port-forward request with an upgrade, and serves the upgraded connection.
pub fn serve(api: &Api, res: &Resource, ns: &str, name: &str, req: Req) -> ApiResult<Response> {
    if req.method != Method::GET && req.method != Method::POST {
        return Err(ApiError::method_not_allowed(req.method.as_str()));
    }
    let key = ops::key(res, ns, name);
    if api.store.get(&key).is_none() {
        return Err(ApiError::not_found(&res.plural, &res.group, name));
    }
    let target = Target {
        store: api.store.clone(),
        runtime: api.runtime.clone(),
        key,
    };
    let protocol = protocol(&req)?;
    let Some(on_upgrade) = req.upgrade else {
        return Err(ApiError::bad_request(
            "this connection cannot be upgraded (HTTP/1.1 is required)",
        ));
    };
    match protocol {
        Protocol::Spdy => {
            let mut resp = switching(SPDY_UPGRADE);
            resp.headers_mut().insert(
                STREAM_PROTOCOL_HEADER,
                HeaderValue::from_static(PORT_FORWARD_PROTOCOL),
            );
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    spdy::serve(TokioIo::new(upgraded), target).await;
                }
            });
            Ok(resp)
        }
        Protocol::SpdyTunnel | Protocol::Channels(_) => {
            let ports = match protocol {
                Protocol::Channels(_) => ports(&req.raw_query)?,
                _ => Vec::new(),
            };
            let subprotocol = match protocol {
                Protocol::SpdyTunnel => Some(SPDY_TUNNEL),
                Protocol::Channels(p) => p,
                Protocol::Spdy => None,
            };
            let resp = websocket_accept(&req.headers, subprotocol)?;
            let tunnelled = matches!(protocol, Protocol::SpdyTunnel);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                if let (false, [port]) = (tunnelled, &ports[..]) {
                    // One port: the shared pump on the upgraded connection (hyper-util's
                    // server wraps the TCP stream in a private type: no downcast to it).
                    websocket::serve_one(TokioIo::new(upgraded), *port, target).await;
                    return;
                }
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                if tunnelled {
                    spdy::serve(websocket::tunnel(ws), target).await;
                } else {
                    websocket::serve(ws, ports, target).await;
                }
            });
            Ok(resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_repeated_or_comma_separated() {
        assert_eq!(ports("ports=5432").ok(), Some(vec![5432]));
        assert_eq!(ports("ports=80%2C443").ok(), Some(vec![80, 443]));
        assert_eq!(
            ports("ports=80&x=1&ports=443,8080").ok(),
            Some(vec![80, 443, 8080])
        );
        for bad in [
            "",
            "x=1",
            "ports=0",
            "ports=65536",
            "ports=http",
            "ports=80,80",
        ] {
            assert_eq!(ports(bad).map_err(|e| e.code), Err(400), "{bad}");
        }
        let many: Vec<String> = (1..=129).map(|p| p.to_string()).collect();
        assert!(ports(&format!("ports={}", many.join(","))).is_err());
    }
}
