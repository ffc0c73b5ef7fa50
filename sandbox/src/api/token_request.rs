//! `POST …/serviceaccounts/{name}/token` (the TokenRequest subresource, `kubectl create
//! token`): a signed token for the ServiceAccount, lasting what the request asks within the
//! API server's limits.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Api, Req, body};
use crate::auth::tokens::{self, DEFAULT_SECONDS, MAX_SECONDS, MIN_SECONDS};
use crate::error::{ApiError, ApiResult};
use crate::http::json_response;
use crate::ops;
use crate::registry::Resource;

pub fn serve(api: &Api, res: &Resource, ns: &str, name: &str, req: &Req) -> ApiResult<Response> {
    if req.method != Method::POST {
        return Err(ApiError::method_not_allowed(req.method.as_str()));
    }
    let asked = if req.body.is_empty() {
        json!({})
    } else {
        body::object(req)?
    };
    let spec = &asked["spec"];
    let seconds = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            ApiError::bad_request("spec.expirationSeconds must be a whole number of seconds")
        })?,
    };
    if seconds < MIN_SECONDS {
        return Err(ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            "",
            &[(
                "spec.expirationSeconds".into(),
                format!(
                    "Invalid value: {seconds}: may not specify a duration less than 10 minutes"
                ),
            )],
        ));
    }
    // Longer asks get the longest allowed, as the API server caps them.
    let seconds = seconds.min(MAX_SECONDS);
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let account = api
        .store
        .get(&ops::key(res, ns, name))
        .ok_or_else(|| ApiError::not_found(&res.plural, &res.group, name))?;
    let (token, expires) = tokens::issue(&api.token_key, &account, seconds, &audiences);
    let expires = jiff::Timestamp::from_second(expires)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let audiences = if audiences.is_empty() {
        json!([tokens::ISSUER])
    } else {
        json!(audiences)
    };
    let answer = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": spec["boundObjectRef"]},
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(json_response(StatusCode::CREATED, &answer))
}
