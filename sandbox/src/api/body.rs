//! Decoding request bodies by their content type.

use serde_json::Value;

use super::Req;
use crate::error::{ApiError, ApiResult};

/// The four ways to patch an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

pub fn patch_kind(req: &Req) -> ApiResult<PatchKind> {
    match req.content_type().as_str() {
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
        "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// The body of a create or an update: JSON, YAML or protobuf.
pub fn object(req: &Req) -> ApiResult<Value> {
    match req.content_type().as_str() {
        "" | "application/json" => json(&req.body),
        "application/yaml" => yaml(&req.body),
        super::protobuf::CONTENT_TYPE => super::protobuf::object(&req.body, None),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

pub fn json(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// YAML, of which JSON is a subset (kubectl sends apply bodies as JSON).
pub fn yaml(bytes: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    serde_saphyr::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
}

/// A patch body, decoded as its kind requires.
pub fn patch(req: &Req, kind: PatchKind) -> ApiResult<Value> {
    let value = match kind {
        PatchKind::Apply => yaml(&req.body)?,
        _ => json(&req.body)?,
    };
    let shape_ok = match kind {
        PatchKind::Json => value.is_array(),
        _ => value.is_object(),
    };
    if !shape_ok {
        return Err(ApiError::bad_request(match kind {
            PatchKind::Json => "a JSON patch must be a JSON array of operations",
            _ => "the patch must be a JSON object",
        }));
    }
    Ok(value)
}
