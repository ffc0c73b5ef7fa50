//! `fieldValidation` of writes to custom resources: the fields a client sent that the CRD's
//! schema does not know are refused (`Strict`, what kubectl asks for by default), named in
//! `Warning` headers (`Warn`, the server's default) or dropped without a word (`Ignore`).
//! Dropping them is the schema's job ([`crate::schema`]); this decides what the client hears.

use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::Value;

use super::Req;
use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::validation::go_quote;

/// The unknown fields of `sent` (an object, or a merge or apply patch, which have its shape)
/// to warn about; an error instead when the client asked for `Strict`.
pub fn check(req: &Req, res: &Resource, sent: &Value) -> ApiResult<Vec<String>> {
    let Some(schema) = &res.schema else {
        return Ok(Vec::new());
    };
    let mode = req.param("fieldValidation").unwrap_or("Warn");
    if mode == "Ignore" {
        return Ok(Vec::new());
    }
    if !matches!(mode, "Strict" | "Warn") {
        return Err(ApiError::bad_request(format!(
            "fieldValidation must be one of Ignore, Warn or Strict, not {}",
            go_quote(mode)
        )));
    }
    let unknown = crate::schema::unknown_fields(schema, sent);
    if mode == "Strict" && !unknown.is_empty() {
        let listed: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {}", go_quote(f)))
            .collect();
        return Err(ApiError::bad_request(format!(
            "{kind} in version {} cannot be handled as a {kind}: strict decoding error: {}",
            go_quote(&res.version),
            listed.join(", "),
            kind = res.kind,
        )));
    }
    Ok(unknown)
}

/// Adds a `Warning: 299 - "unknown field …"` header per field, as the server does.
pub fn warn(mut response: Response, unknown: &[String]) -> Response {
    for field in unknown {
        let text = format!(
            "299 - {}",
            go_quote(&format!("unknown field {}", go_quote(field)))
        );
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append("warning", value);
        }
    }
    response
}
