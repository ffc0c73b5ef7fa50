//! The schemas of the built-in kinds, generated from k8s-openapi's types (its `schemars`
//! feature), so they are the real server's definitions: same names, descriptions and shapes.

use std::sync::LazyLock;

use k8s_openapi::api::{
    apps, authentication, authorization, autoscaling, batch, coordination, core, discovery, events,
    networking, policy, rbac, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;
use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// A top-level kind and the name of its schema.
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub name: String,
}

/// Every built-in kind's schema and the schemas they reference, by definition name
/// (`io.k8s.api.apps.v1.Deployment`), with `$ref`s to `#/components/schemas/…`.
pub struct Builtins {
    pub schemas: Map<String, Value>,
    pub kinds: Vec<Kind>,
}

impl Builtins {
    /// The name of a kind's schema, when it is a built-in one.
    pub fn name_of(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
            .map(|k| k.name.as_str())
    }
}

/// Generated once: a few tens of milliseconds, then shared by every document.
pub fn builtins() -> &'static Builtins {
    static BUILTINS: LazyLock<Builtins> = LazyLock::new(generate);
    &BUILTINS
}

/// The definition name of ObjectMeta, which CRD schemas refer to for their `metadata`.
pub fn object_meta() -> String {
    ObjectMeta::schema_name().into_owned()
}

fn generate() -> Builtins {
    // OpenAPI v3 settings: `$ref`s into `#/components/schemas`, and a `$ref` with a
    // description becomes `allOf: [{$ref}]` beside it, as kube-openapi writes them.
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds = Vec::new();
    macro_rules! kinds {
        ($($t:ty),* $(,)?) => {$(
            generator.subschema_for::<$t>();
            kinds.push(Kind {
                group: <$t as k8s_openapi::Resource>::GROUP,
                version: <$t as k8s_openapi::Resource>::VERSION,
                kind: <$t as k8s_openapi::Resource>::KIND,
                name: <$t as JsonSchema>::schema_name().into_owned(),
            });
        )*};
    }
    // The kinds `registry::BUILTINS` serves (a unit test keeps the two lists in step).
    kinds!(
        core::v1::Namespace,
        core::v1::Pod,
        core::v1::Service,
        core::v1::Endpoints,
        core::v1::Secret,
        core::v1::ConfigMap,
        core::v1::ServiceAccount,
        core::v1::PersistentVolumeClaim,
        core::v1::PersistentVolume,
        core::v1::Event,
        core::v1::Node,
        core::v1::ReplicationController,
        apps::v1::Deployment,
        apps::v1::ReplicaSet,
        apps::v1::StatefulSet,
        apps::v1::DaemonSet,
        batch::v1::Job,
        batch::v1::CronJob,
        networking::v1::Ingress,
        networking::v1::NetworkPolicy,
        discovery::v1::EndpointSlice,
        coordination::v1::Lease,
        policy::v1::PodDisruptionBudget,
        storage::v1::StorageClass,
        events::v1::Event,
        autoscaling::v2::HorizontalPodAutoscaler,
        rbac::v1::ClusterRole,
        rbac::v1::ClusterRoleBinding,
        rbac::v1::Role,
        rbac::v1::RoleBinding,
        authentication::v1::SelfSubjectReview,
        authorization::v1::SelfSubjectAccessReview,
        authorization::v1::SelfSubjectRulesReview,
        apiextensions::v1::CustomResourceDefinition,
        apiregistration::v1::APIService,
    );
    generator.subschema_for::<ObjectMeta>();
    let mut schemas = generator.take_definitions(true);
    for k in &kinds {
        if let Some(Value::Object(schema)) = schemas.get_mut(&k.name) {
            // How kubectl finds the schema of a kind in a document.
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": k.group, "kind": k.kind, "version": k.version}]),
            );
        }
    }
    Builtins { schemas, kinds }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn every_served_builtin_kind_has_its_schema() {
        let builtins = builtins();
        for r in Registry::new().all() {
            let name = builtins.name_of(&r.group, &r.version, &r.kind);
            let name = name.unwrap_or_else(|| panic!("no schema for {}", r.qualified()));
            assert!(builtins.schemas.contains_key(name), "{name}");
        }
    }

    #[test]
    fn schemas_are_named_and_described_as_the_real_server_does() {
        let schemas = &builtins().schemas;
        let deployment = &schemas["io.k8s.api.apps.v1.DeploymentSpec"];
        let replicas = deployment["properties"]["replicas"]["description"].as_str();
        assert!(replicas.unwrap().starts_with("Number of desired pods"));
        let template = &deployment["properties"]["template"];
        assert_eq!(
            template["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"
        );
        assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert_eq!(
            schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
    }
}
