//! The OpenAPI documents: `/openapi/v3` (a root and one document per group/version) and
//! `/openapi/v2`, with the real server's schemas, so `kubectl explain` and `kubectl diff` work.
//!
//! They are built once per registry (the registry drops them when a CRD changes), never per
//! request: the built-in schemas are large and their documents do not change.

mod builtin;
mod crd;
mod v2;
mod v3;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, OnceLock};

use bytes::Bytes;
use serde_json::json;

use crate::registry::Registry;

pub use v2::openapi_v2;
pub use v3::path;

/// One serialized document and the hash the root lists it with.
#[derive(Debug)]
pub struct Document {
    pub hash: u64,
    pub body: Bytes,
}

/// Every OpenAPI document of one registry.
#[derive(Debug)]
pub struct Documents {
    /// By path below `/openapi/v3/` (`api/v1`, `apis/apps/v1`).
    v3: BTreeMap<String, Arc<Document>>,
    root: Bytes,
    /// Built on first request: only kubectl's fallbacks ask for it.
    v2: OnceLock<Bytes>,
}

impl Documents {
    fn build(registry: &Registry) -> Documents {
        let mut v3 = BTreeMap::new();
        for (group, versions) in registry.groups() {
            for version in versions {
                let path = v3::path(&group, &version);
                let resources = registry.in_group_version(&group, &version);
                // A group/version of built-in kinds only is the same in every registry.
                let shared = match resources.iter().any(|r| r.custom) {
                    false => BUILTIN_DOCUMENTS.get(&path).cloned(),
                    true => None,
                };
                let doc = shared.unwrap_or_else(|| Arc::new(v3::document(&resources)));
                v3.insert(path, doc);
            }
        }
        let paths: serde_json::Map<String, serde_json::Value> = v3
            .iter()
            .map(|(path, doc)| {
                let url = format!("/openapi/v3/{path}?hash={:016X}", doc.hash);
                (path.clone(), json!({"serverRelativeURL": url}))
            })
            .collect();
        Documents {
            v3,
            root: serialize(&json!({"paths": paths})),
            v2: OnceLock::new(),
        }
    }

    /// `/openapi/v3`: every group/version with a hash that changes when its document does.
    pub fn root(&self) -> Bytes {
        self.root.clone()
    }

    /// `/openapi/v3/{path}`, when that group/version is served.
    pub fn group_version(&self, path: &str) -> Option<Bytes> {
        self.v3.get(path).map(|d| d.body.clone())
    }

    pub fn v2(&self, registry: &Registry) -> Bytes {
        self.v2.get_or_init(|| v2::document(registry)).clone()
    }
}

/// The documents of the built-in registry, shared by every registry for its built-in groups.
static BUILTIN_DOCUMENTS: LazyLock<BTreeMap<String, Arc<Document>>> = LazyLock::new(|| {
    let registry = Registry::new();
    let mut docs = BTreeMap::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let resources = registry.in_group_version(&group, &version);
            docs.insert(
                v3::path(&group, &version),
                Arc::new(v3::document(&resources)),
            );
        }
    }
    docs
});

/// Builds the built-in documents (once) without the store's lock held: the first request
/// would otherwise keep writers waiting while they are generated.
pub fn warm() {
    LazyLock::force(&BUILTIN_DOCUMENTS);
}

/// The documents of a registry, built on first use and kept with it.
pub fn documents(registry: &Registry) -> Arc<Documents> {
    registry
        .openapi
        .get_or_init(|| Arc::new(Documents::build(registry)))
        .clone()
}

/// A JSON body as the real server's encoder writes it: ending with a newline.
fn serialize(value: &serde_json::Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// A JSON response of an already serialized document.
pub fn json_bytes(body: Bytes) -> axum::response::Response {
    let mut response =
        axum::response::IntoResponse::into_response((axum::http::StatusCode::OK, body));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(description: &str) -> serde_json::Value {
        json!({"spec": {
            "group": "kipper.run", "scope": "Namespaced",
            "names": {"plural": "apps", "kind": "App"},
            "versions": [{"name": "v1", "served": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "description": description}},
            }}}],
        }})
    }

    fn root(registry: &Registry) -> serde_json::Value {
        serde_json::from_slice(&documents(registry).root()).unwrap()
    }

    #[test]
    fn documents_are_built_once_per_registry() {
        let registry = Registry::new();
        assert!(Arc::ptr_eq(&documents(&registry), &documents(&registry)));
    }

    #[test]
    fn a_crd_change_changes_its_documents_hash_and_no_other() {
        let mut registry = Registry::new();
        let before = root(&registry);
        assert!(before["paths"].get("apis/kipper.run/v1").is_none());

        registry.set_crd("apps.kipper.run", Some(&crd("one")));
        let one = root(&registry);
        let url = &one["paths"]["apis/kipper.run/v1"]["serverRelativeURL"];
        assert!(
            url.as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/kipper.run/v1?hash=")
        );
        assert_eq!(
            one["paths"]["apis/apps/v1"],
            before["paths"]["apis/apps/v1"]
        );

        registry.set_crd("apps.kipper.run", Some(&crd("two")));
        let two = root(&registry);
        assert_ne!(
            two["paths"]["apis/kipper.run/v1"],
            one["paths"]["apis/kipper.run/v1"]
        );
        let doc = documents(&registry)
            .group_version("apis/kipper.run/v1")
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        let app = &doc["components"]["schemas"]["run.kipper.v1.App"];
        assert_eq!(app["properties"]["spec"]["description"], "two");
        // What its metadata refers to comes with it.
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        assert!(doc["components"]["schemas"].get(meta).is_some());

        registry.set_crd("apps.kipper.run", None);
        assert_eq!(root(&registry), before);
    }
}
