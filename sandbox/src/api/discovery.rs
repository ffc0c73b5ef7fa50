//! Discovery documents and the minimal OpenAPI v3 that lets `kubectl apply` validate on the server.

use serde_json::{Value, json};

use crate::registry::{Registry, Resource};

/// The version we report; kubectl's dispatcher on our machines runs the client of this minor.
pub const MINOR: &str = "33";

pub fn git_version() -> String {
    format!("v1.{MINOR}.0-kip-sandbox")
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": MINOR,
        "gitVersion": git_version(),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn groups(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_doc(&g, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let (_, versions) = registry.groups().into_iter().find(|(g, _)| g == name)?;
    let mut doc = group_doc(name, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = registry.in_group_version(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in &resources {
        list.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for sub in &r.subresources {
            list.push(subresource_doc(r, sub));
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": list,
    }))
}

fn subresource_doc(r: &Resource, sub: &str) -> Value {
    let name = format!("{}/{sub}", r.plural);
    match sub {
        "scale" => json!({
            "name": name, "singularName": "", "namespaced": r.namespaced,
            "group": "autoscaling", "version": "v1", "kind": "Scale",
            "verbs": ["get", "patch", "update"],
        }),
        "log" => json!({
            "name": name, "singularName": "", "namespaced": r.namespaced,
            "kind": "Pod", "verbs": ["get"],
        }),
        "portforward" => json!({
            "name": name, "singularName": "", "namespaced": r.namespaced,
            "kind": "PodPortForwardOptions", "verbs": ["create", "get"],
        }),
        "exec" => json!({
            "name": name, "singularName": "", "namespaced": r.namespaced,
            "kind": "PodExecOptions", "verbs": ["create", "get"],
        }),
        _ => json!({
            "name": name, "singularName": "", "namespaced": r.namespaced,
            "kind": r.kind, "verbs": ["get", "patch", "update"],
        }),
    }
}

fn openapi_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per group/version, with a hash that changes when its kinds do.
pub fn openapi_root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let doc = openapi_group_version(registry, &group, &version);
            let hash = crate::admission::fnv(&doc.to_string());
            let path = openapi_path(&group, &version);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash:016X}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// A group/version document with no schemas: it only tells kubectl that the server validates
/// fields itself (`fieldValidation`), so `kubectl apply` works with its default validation.
pub fn openapi_group_version(registry: &Registry, group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for r in registry.in_group_version(group, version) {
        let prefix = format!("/{}", openapi_path(group, version));
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let param =
            json!([{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]);
        paths.insert(
            item,
            json!({
                "patch": {"x-kubernetes-group-version-kind": gvk, "parameters": param, "responses": {}},
                "put": {"x-kubernetes-group-version-kind": gvk, "parameters": param, "responses": {}},
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kip sandbox)", "version": format!("v1.{MINOR}.0")},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

/// `/openapi/v2` without schemas. kubectl asks for it (as protobuf) when its OpenAPI v3 check
/// does not know a kind, to validate on the client side; finding no schema there, it leaves the
/// kind alone and reports what a real server lets it report ("no matches for kind … ensure
/// CRDs are installed first"), where a 404 made it fail with "could not find the requested
/// resource".
pub fn openapi_v2(req: &super::Req) -> axum::response::Response {
    let title = "Kubernetes (kip sandbox)";
    let version = format!("v1.{MINOR}.0");
    let wants_protobuf = req
        .headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("protobuf"));
    if !wants_protobuf {
        let doc = json!({"swagger": "2.0", "info": {"title": title, "version": version}, "paths": {}, "definitions": {}});
        return crate::http::json_response(axum::http::StatusCode::OK, &doc);
    }
    // gnostic's openapi_v2.Document: swagger (1), info (2: title 1, version 2).
    let info = [proto_string(1, title), proto_string(2, &version)].concat();
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
