//! `/openapi/v2`: the same definitions in a Swagger 2.0 document (JSON), and, when kubectl
//! asks for protobuf, a document with no definitions.

use bytes::Bytes;
use serde_json::{Map, json};

use super::{builtin, crd};
use crate::registry::Registry;

/// Every served kind's definition, built-in and custom, with `$ref`s into `#/definitions/`.
pub fn document(registry: &Registry) -> Bytes {
    let object_meta = builtin::object_meta();
    let mut definitions: Map<String, serde_json::Value> = builtin::builtins().schemas.clone();
    for r in registry.all().filter(|r| r.custom) {
        definitions.insert(crd::name(r), crd::schema(r, &object_meta));
    }
    let mut definitions = serde_json::Value::Object(definitions);
    plain_refs(&mut definitions);
    let doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version()},
        "paths": {},
        "definitions": definitions,
    });
    // The schemas are written for v3; in v2 the same names live under `definitions`.
    let text = serde_json::to_string(&doc)
        .unwrap_or_default()
        .replace("\"#/components/schemas/", "\"#/definitions/");
    Bytes::from(text + "\n")
}

/// `allOf: [{$ref}]` beside a description is how v3 documents describe a reference; v2 ones
/// write the `$ref` itself beside it (its siblings ignored), as the real `/openapi/v2` does.
fn plain_refs(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let single_ref = match map.get("allOf").and_then(|a| a.as_array()) {
                Some(all) if all.len() == 1 => all[0]
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.get("$ref"))
                    .cloned(),
                _ => None,
            };
            if let Some(target) = single_ref {
                map.remove("allOf");
                map.insert("$ref".into(), target);
            }
            map.values_mut().for_each(plain_refs);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(plain_refs),
        _ => {}
    }
}

fn version() -> String {
    format!("v1.{}.0", crate::api::discovery::MINOR)
}

/// `/openapi/v2`. kubectl asks for it (as protobuf) when its OpenAPI v3 check does not know a
/// kind, to validate on the client side; finding no schema in the protobuf document, it leaves
/// the kind alone and reports what a real server lets it report ("no matches for kind …
/// ensure CRDs are installed first"). The protobuf document stays empty on purpose: kubectl
/// also computes `apply`'s strategic merge patches from a v2 schema it finds there, and
/// k8s-openapi's schemas carry no `x-kubernetes-patch-merge-key`, so lists such as
/// `containers` would be replaced rather than merged by name.
pub fn openapi_v2(req: &crate::api::Req, registry: &Registry) -> axum::response::Response {
    let wants_protobuf = req
        .headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("protobuf"));
    if !wants_protobuf {
        return super::json_bytes(super::documents(registry).v2(registry));
    }
    // gnostic's openapi_v2.Document: swagger (1), info (2: title 1, version 2).
    let info = [proto_string(1, "Kubernetes"), proto_string(2, &version())].concat();
    let mut body = proto_string(1, "2.0");
    body.push(0x12);
    body.extend(proto_varint(info.len() as u64));
    body.extend(info);
    let mut response =
        axum::response::IntoResponse::into_response((axum::http::StatusCode::OK, body));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        // As kube-openapi answers a protobuf request (the `@` of the media type asked for is
        // not something Go's MIME parser accepts back).
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// A length-delimited protobuf field.
fn proto_string(field: u8, text: &str) -> Vec<u8> {
    let mut out = vec![(field << 3) | 2];
    out.extend(proto_varint(text.len() as u64));
    out.extend_from_slice(text.as_bytes());
    out
}

fn proto_varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_definitions_refer_to_definitions() {
        let doc: serde_json::Value = serde_json::from_slice(&document(&Registry::new())).unwrap();
        let spec = &doc["definitions"]["io.k8s.api.apps.v1.DeploymentSpec"];
        let template = &spec["properties"]["template"];
        assert_eq!(
            template["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"
        );
        assert!(template["description"].is_string());
        assert!(template.get("allOf").is_none());
    }
}
