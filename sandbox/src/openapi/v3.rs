//! One `/openapi/v3/{path}` document: the paths kubectl looks at and the schemas of the
//! group/version's kinds with everything they reference.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Document, builtin, crd};
use crate::registry::Resource;

const REF_PREFIX: &str = "#/components/schemas/";

pub fn path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn document(resources: &[Arc<Resource>]) -> Document {
    let builtins = builtin::builtins();
    let object_meta = builtin::object_meta();
    let mut schemas = Map::new();
    let mut wanted = Vec::new();
    for r in resources {
        if r.custom {
            let schema = crd::schema(r, &object_meta);
            references(&schema, &mut wanted);
            schemas.insert(crd::name(r), schema);
        } else if let Some(name) = builtins.name_of(&r.group, &r.version, &r.kind) {
            wanted.push(name.to_string());
        }
    }
    // Everything the kinds reference, transitively, as the real documents carry it.
    while let Some(name) = wanted.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        if let Some(schema) = builtins.schemas.get(&name) {
            references(schema, &mut wanted);
            schemas.insert(name, schema.clone());
        }
    }
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::api::discovery::MINOR)},
        "paths": paths(resources),
        "components": {"schemas": schemas},
    });
    let body = super::serialize(&doc);
    let hash = crate::admission::fnv(&String::from_utf8_lossy(&body));
    Document { hash, body }
}

/// The `PATCH`/`PUT` of each kind with its `fieldValidation` parameter: what tells kubectl
/// the server validates fields itself, so `kubectl apply` leaves validation to it.
///
/// The operations list no request body on purpose: a `PATCH` accepting
/// `application/strategic-merge-patch+json` makes kubectl compute its strategic merge patches
/// from these schemas, and k8s-openapi's carry no `x-kubernetes-patch-merge-key`, so lists
/// such as `containers` would be replaced rather than merged by name. Without it kubectl uses
/// the patch metadata compiled into it, as it did before the schemas were served.
fn paths(resources: &[Arc<Resource>]) -> Map<String, Value> {
    let mut paths = Map::new();
    for r in resources {
        let prefix = format!("/{}", path(&r.group, &r.version));
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
    paths
}

/// The definition names a schema refers to.
fn references(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value.as_str()) {
                    ("$ref", Some(target)) => {
                        if let Some(name) = target.strip_prefix(REF_PREFIX) {
                            out.push(name.to_string());
                        }
                    }
                    _ => references(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn doc(group: &str, version: &str) -> Value {
        let resources = Registry::new().in_group_version(group, version);
        serde_json::from_slice(&document(&resources).body).unwrap()
    }

    #[test]
    fn a_document_carries_its_kinds_and_what_they_reference() {
        let apps = doc("apps", "v1");
        let schemas = &apps["components"]["schemas"];
        for name in [
            "io.k8s.api.apps.v1.Deployment",
            "io.k8s.api.core.v1.PodSpec",
            "io.k8s.api.core.v1.Container",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        ] {
            assert!(schemas.get(name).is_some(), "{name}");
        }
        // Only what apps/v1 needs: no Service, no Job.
        assert!(schemas.get("io.k8s.api.core.v1.Service").is_none());
        assert!(schemas.get("io.k8s.api.batch.v1.Job").is_none());
        let mut refs = Vec::new();
        references(schemas, &mut refs);
        for name in refs {
            assert!(schemas.get(&name).is_some(), "dangling {name}");
        }
    }

    #[test]
    fn the_paths_still_say_the_server_validates_fields() {
        let core = doc("", "v1");
        let put = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["put"];
        assert_eq!(put["parameters"][0]["name"], "fieldValidation");
    }
}
