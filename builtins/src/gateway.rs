//! `gateway::…`: Kipper's public hostnames (the one rule, shared with `kip-gateway` itself)
//! and a gateway's registration API (register, unregister, lookup a cluster).
//!
//! The API calls speak HTTP/1.1 over the hyper client kube already brings, with TLS from the
//! system roots for `https://` gateway URLs.

use crate::errors::Kind;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kip_gateway::host as rule;
use rhai::{Dynamic, EvalAltResult, Map, NativeCallContext};

use crate::host;

/// The longest a gateway call may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);

fn invalid(message: String) -> Box<EvalAltResult> {
    host::error(Kind::Invalid, message)
}

fn check_id(cluster_id: &str) -> Result<(), Box<EvalAltResult>> {
    rule::check_cluster_id(cluster_id).map_err(invalid)
}

/// One call to the admin API: the status and the JSON body (`null` when empty).
async fn call(
    method: Method,
    url: &str,
    token: &str,
    path: &str,
    body: Option<String>,
) -> Result<(StatusCode, serde_json::Value), Box<EvalAltResult>> {
    let base = url.trim_end_matches('/');
    let uri: hyper::Uri = format!("{base}{path}").parse().map_err(|_| {
        invalid(format!(
            "gateway URL `{url}` is not a URL; use one like http://gateway.example:9090"
        ))
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid(format!(
            "gateway URL `{url}` must start with http:// or https://"
        )));
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|err| {
            host::error(
                Kind::Refused,
                format!("no TLS roots for the gateway: {err}"),
            )
        })?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|err| invalid(format!("cannot build the request: {err}")))?;
    let unreachable = |err: String| {
        host::error(
            Kind::Unreachable,
            format!("gateway unreachable at {base}: {err}"),
        )
    };
    let response = tokio::time::timeout(TIMEOUT, async {
        let response = client.request(request).await.map_err(|err| {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            unreachable(text)
        })?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|err| unreachable(err.to_string()))?
            .to_bytes();
        Ok::<_, Box<EvalAltResult>>((status, bytes))
    })
    .await
    .map_err(|_| unreachable(format!("no answer within {}s", TIMEOUT.as_secs())))??;
    let (status, bytes) = response;
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(
            |_| serde_json::json!({ "error": String::from_utf8_lossy(&bytes).trim().to_owned() }),
        )
    };
    Ok((status, json))
}

/// The error a non-success answer becomes.
fn refused(status: StatusCode, json: &serde_json::Value) -> Box<EvalAltResult> {
    let message = json["error"]
        .as_str()
        .unwrap_or("no reason given")
        .to_owned();
    let kind = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Kind::Denied,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => Kind::Invalid,
        StatusCode::NOT_FOUND => Kind::NotFound,
        StatusCode::CONFLICT => Kind::Conflict,
        _ => Kind::Refused,
    };
    host::error(kind, format!("the gateway refused ({status}): {message}"))
}

fn to_map(json: serde_json::Value) -> Result<Map, Box<EvalAltResult>> {
    rhai::serde::to_dynamic(json)
        .ok()
        .and_then(|value| value.try_cast::<Map>())
        .ok_or_else(|| {
            host::error(
                Kind::Refused,
                "the gateway answered with something not a map",
            )
        })
}

#[rhai::plugin::export_module]
pub mod gateway_module {
    use super::*;

    /// The public host of an app: `<app>[-<environment>]-<cluster_id>.<domain>` (no environment
    /// part when `environment` is ""). This is the rule `kip-gateway` parses.
    ///
    /// Raises `invalid` when a part cannot be in a hostname (uppercase, dots, a
    /// leading or trailing dash) or the label would exceed 63 characters.
    ///
    /// `gateway::app_host("hello", "test", "203-0-113-10", "kipper.run") == "hello-test-203-0-113-10.kipper.run"`
    #[rhai_fn(return_raw)]
    pub fn app_host(
        ctx: NativeCallContext,
        app: &str,
        environment: &str,
        cluster_id: &str,
        domain: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            rule::app_host(app, environment, cluster_id, domain).map_err(invalid)
        })
    }

    /// The public URL of an app: `https://` and [`app_host`].
    ///
    /// `gateway::app_url("hello", "", "203-0-113-10", "kipper.run") == "https://hello-203-0-113-10.kipper.run"`
    #[rhai_fn(return_raw)]
    pub fn app_url(
        ctx: NativeCallContext,
        app: &str,
        environment: &str,
        cluster_id: &str,
        domain: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            Ok(format!(
                "https://{}",
                rule::app_host(app, environment, cluster_id, domain).map_err(invalid)?
            ))
        })
    }

    /// The cluster id of a server reached at `address` (an IP address or a host name, which
    /// is resolved): its IPv4 address with dashes, `203.0.113.10` → `203-0-113-10`.
    ///
    /// Raises `invalid` when the name does not resolve to an IPv4 address (an
    /// IPv6-only server needs a cluster name instead).
    ///
    /// `gateway::cluster_id("203.0.113.10") == "203-0-113-10"`
    #[rhai_fn(return_raw)]
    pub fn cluster_id(ctx: NativeCallContext, address: &str) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let bare = address.trim().trim_start_matches('[').trim_end_matches(']');
            let ips: Vec<std::net::IpAddr> = match bare.parse() {
                Ok(ip) => vec![ip],
                Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(bare, 0))
                    .map_err(|err| invalid(format!("cannot resolve `{bare}`: {err}")))?
                    .map(|a| a.ip())
                    .collect(),
            };
            ips.into_iter()
                .find_map(rule::cluster_id_for_ip)
                .ok_or_else(|| {
                    invalid(format!(
                        "`{bare}` has no IPv4 address to derive a cluster id from; give the cluster a name"
                    ))
                })
        })
    }

    /// The host of the cluster itself: `<cluster_id>.<domain>`.
    ///
    /// `gateway::cluster_host("203-0-113-10", "kipper.run") == "203-0-113-10.kipper.run"`
    #[rhai_fn(return_raw)]
    pub fn cluster_host(
        ctx: NativeCallContext,
        cluster_id: &str,
        domain: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            rule::cluster_host(cluster_id, domain).map_err(invalid)
        })
    }

    /// The host of the cluster's console: `console-<cluster_id>.<domain>`.
    ///
    /// `gateway::console_host("203-0-113-10", "kipper.run") == "console-203-0-113-10.kipper.run"`
    #[rhai_fn(return_raw)]
    pub fn console_host(
        ctx: NativeCallContext,
        cluster_id: &str,
        domain: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            rule::console_host(cluster_id, domain).map_err(invalid)
        })
    }

    /// Registers (or moves) cluster `cluster_id` at `address` (`ip:port`) with the gateway whose
    /// admin API is at `url`, using `token` (the admin token, or the cluster's own token to
    /// update it). Returns `#{ id, address, tls }`, plus `token` — the cluster's own token,
    /// shown only this once — when the entry is new.
    ///
    /// Raises `invalid` (bad id or address), `denied`, `unreachable`.
    ///
    /// `let entry = gateway::register("http://127.0.0.1:9090", admin_token, "203-0-113-10", "203.0.113.10:443");`
    #[rhai_fn(return_raw)]
    pub fn register(
        ctx: NativeCallContext,
        url: &str,
        token: &str,
        cluster_id: &str,
        address: &str,
    ) -> Result<Map, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            host::host(&ctx)?.reach.everything("gateway::register")?;
            check_id(cluster_id)?;
            let body = serde_json::json!({ "address": address }).to_string();
            let path = format!("/v1/clusters/{cluster_id}");
            let (status, json) = host::host(&ctx)?.block_on_interruptible(call(
                Method::PUT,
                url,
                token,
                &path,
                Some(body),
            ))?;
            if !status.is_success() {
                return Err(refused(status, &json));
            }
            to_map(json)
        })
    }

    /// Removes cluster `cluster_id` from the gateway; `true` if it was registered, `false` if
    /// the gateway did not know it.
    ///
    /// `gateway::unregister("http://127.0.0.1:9090", token, "203-0-113-10")`
    #[rhai_fn(return_raw)]
    pub fn unregister(
        ctx: NativeCallContext,
        url: &str,
        token: &str,
        cluster_id: &str,
    ) -> Result<bool, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            host::host(&ctx)?.reach.everything("gateway::unregister")?;
            check_id(cluster_id)?;
            let path = format!("/v1/clusters/{cluster_id}");
            let (status, json) = host::host(&ctx)?.block_on_interruptible(call(
                Method::DELETE,
                url,
                token,
                &path,
                None,
            ))?;
            match status {
                StatusCode::NO_CONTENT | StatusCode::OK => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(refused(status, &json)),
            }
        })
    }

    /// The gateway's entry for `cluster_id` (`#{ id, address, tls }`), or `()` when it is not
    /// registered.
    ///
    /// `let entry = gateway::lookup("http://127.0.0.1:9090", token, "203-0-113-10");`
    #[rhai_fn(return_raw)]
    pub fn lookup(
        ctx: NativeCallContext,
        url: &str,
        token: &str,
        cluster_id: &str,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            host::host(&ctx)?.reach.everything("gateway::lookup")?;
            check_id(cluster_id)?;
            let path = format!("/v1/clusters/{cluster_id}");
            let (status, json) = host::host(&ctx)?.block_on_interruptible(call(
                Method::GET,
                url,
                token,
                &path,
                None,
            ))?;
            match status {
                StatusCode::OK => Ok(Dynamic::from_map(to_map(json)?)),
                StatusCode::NOT_FOUND => Ok(Dynamic::UNIT),
                _ => Err(refused(status, &json)),
            }
        })
    }
}
