//! A custom kind's schema, from its CRD's `openAPIV3Schema`, completed as the real server's
//! CRD OpenAPI builder does: standard `apiVersion`, `kind` and an ObjectMeta `metadata`.

use serde_json::{Value, json};

use crate::registry::Resource;

/// The definition name the real server gives a custom kind: its group reversed, version, kind
/// (`kipper.run`/`v1`/`App` → `run.kipper.v1.App`).
pub fn name(r: &Resource) -> String {
    let group: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{}.{}", group.join("."), r.version, r.kind)
}

/// The component schema of a custom kind; one with no schema in its CRD still gets the
/// standard fields, as the real server lists them.
pub fn schema(r: &Resource, object_meta: &str) -> Value {
    let mut schema = r.schema.as_deref().cloned().unwrap_or_else(|| json!({}));
    if !schema.is_object() {
        schema = json!({});
    }
    if schema.get("type").is_none() {
        schema["type"] = json!("object");
    }
    let properties = &mut schema["properties"];
    if !properties.is_object() {
        *properties = json!({});
    }
    properties["apiVersion"] = json!({
        "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
        "type": "string",
    });
    properties["kind"] = json!({
        "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        "type": "string",
    });
    properties["metadata"] = json!({
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        "allOf": [{"$ref": format!("#/components/schemas/{object_meta}")}],
    });
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": r.group, "kind": r.kind, "version": r.version}]);
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::resources_of_crd;

    #[test]
    fn a_crd_schema_gets_the_standard_fields_and_its_kind() {
        let crd = json!({"spec": {
            "group": "kipper.run", "scope": "Namespaced",
            "names": {"plural": "apps", "kind": "App"},
            "versions": [{"name": "v1", "served": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "description": "The app."}},
            }}}],
        }});
        let r = &resources_of_crd(&crd)[0];
        assert_eq!(name(r), "run.kipper.v1.App");
        let schema = schema(r, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        assert_eq!(schema["properties"]["spec"]["description"], "The app.");
        assert_eq!(
            schema["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            json!("App")
        );
    }
}
