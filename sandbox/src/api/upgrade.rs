//! The HTTP side of protocol upgrades that port forwarding and exec share: reading the upgrade
//! headers and answering a WebSocket handshake.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::Req;
use crate::error::{ApiError, ApiResult};

/// The comma-separated tokens of every `name` header, trimmed.
pub fn header_tokens<'a>(req: &'a Req, name: &str) -> impl Iterator<Item = &'a str> {
    req.headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether the client asks to upgrade to `protocol` (`websocket`, `SPDY/3.1`).
pub fn asks_for(req: &Req, protocol: &str) -> bool {
    header_tokens(req, "upgrade").any(|u| u.eq_ignore_ascii_case(protocol))
}

/// A `101 Switching Protocols` answer naming `upgrade`.
pub fn switching(upgrade: &'static str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
    resp
}

/// The answer completing a WebSocket handshake (version 13) with `subprotocol`, or why the
/// request is not a handshake the sandbox can complete.
pub fn websocket_accept(
    headers: &HeaderMap,
    subprotocol: Option<&'static str>,
) -> ApiResult<Response> {
    let key = headers
        .get("sec-websocket-key")
        .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key header"))?;
    let version = headers
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok());
    if version != Some("13") {
        return Err(ApiError::bad_request(
            "unsupported Sec-WebSocket-Version: the sandbox speaks version 13",
        ));
    }
    let accept = derive_accept_key(key.as_bytes());
    let mut resp = switching("websocket");
    let headers = resp.headers_mut();
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(p) = subprotocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    Ok(resp)
}
