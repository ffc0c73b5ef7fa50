//! The built-in kinds every cluster of the Kubernetes version we speak serves, known from
//! k8s-openapi without asking the server: a verb then spends no discovery request on them.
//! Anything else (CRDs, other versions) is discovered.

use std::any::TypeId;

use kube::discovery::{ApiCapabilities, ApiResource, Scope};

fn entry<K>() -> (ApiResource, ApiCapabilities)
where
    K: k8s_openapi::Resource + kube::Resource<DynamicType = ()>,
    <K as k8s_openapi::Resource>::Scope: 'static,
{
    let scope = if TypeId::of::<<K as k8s_openapi::Resource>::Scope>()
        == TypeId::of::<k8s_openapi::ClusterResourceScope>()
    {
        Scope::Cluster
    } else {
        Scope::Namespaced
    };
    let caps = ApiCapabilities {
        scope,
        subresources: Vec::new(),
        operations: Vec::new(),
    };
    (ApiResource::erase::<K>(&()), caps)
}

/// The resource and scope of a built-in `kind` in `api_version`, if it is one we know.
pub fn builtin(api_version: &str, kind: &str) -> Option<(ApiResource, ApiCapabilities)> {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch, core::v1 as core,
        networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
    let found = match (api_version, kind) {
        ("v1", "ConfigMap") => entry::<core::ConfigMap>(),
        ("v1", "Endpoints") => entry::<core::Endpoints>(),
        ("v1", "Event") => entry::<core::Event>(),
        ("v1", "Namespace") => entry::<core::Namespace>(),
        ("v1", "Node") => entry::<core::Node>(),
        ("v1", "PersistentVolumeClaim") => entry::<core::PersistentVolumeClaim>(),
        ("v1", "Pod") => entry::<core::Pod>(),
        ("v1", "Secret") => entry::<core::Secret>(),
        ("v1", "Service") => entry::<core::Service>(),
        ("v1", "ServiceAccount") => entry::<core::ServiceAccount>(),
        ("apps/v1", "DaemonSet") => entry::<apps::DaemonSet>(),
        ("apps/v1", "Deployment") => entry::<apps::Deployment>(),
        ("apps/v1", "ReplicaSet") => entry::<apps::ReplicaSet>(),
        ("apps/v1", "StatefulSet") => entry::<apps::StatefulSet>(),
        ("batch/v1", "CronJob") => entry::<batch::CronJob>(),
        ("batch/v1", "Job") => entry::<batch::Job>(),
        ("networking.k8s.io/v1", "Ingress") => entry::<networking::Ingress>(),
        ("networking.k8s.io/v1", "NetworkPolicy") => entry::<networking::NetworkPolicy>(),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            entry::<autoscaling::HorizontalPodAutoscaler>()
        }
        ("policy/v1", "PodDisruptionBudget") => entry::<policy::PodDisruptionBudget>(),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => entry::<rbac::ClusterRole>(),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            entry::<rbac::ClusterRoleBinding>()
        }
        ("rbac.authorization.k8s.io/v1", "Role") => entry::<rbac::Role>(),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => entry::<rbac::RoleBinding>(),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            entry::<apiextensions::CustomResourceDefinition>()
        }
        _ => return None,
    };
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scopes() {
        let (ar, caps) = builtin("apps/v1", "Deployment").unwrap();
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("apps", "v1", "deployments")
        );
        assert_eq!(caps.scope, Scope::Namespaced);
        let (ar, caps) = builtin("v1", "Namespace").unwrap();
        assert_eq!(
            (ar.api_version.as_str(), ar.plural.as_str()),
            ("v1", "namespaces")
        );
        assert_eq!(caps.scope, Scope::Cluster);
        let (ar, caps) = builtin("apiextensions.k8s.io/v1", "CustomResourceDefinition").unwrap();
        assert_eq!(ar.plural, "customresourcedefinitions");
        assert_eq!(caps.scope, Scope::Cluster);
        assert!(builtin("kipper.run/v1alpha1", "App").is_none());
        assert!(builtin("apps/v1beta1", "Deployment").is_none());
    }
}
