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

/// kip's own kinds (the CRDs in `templates/crds/`), known without a request to *read* them:
/// a list of Apps then costs one request, not a discovery first. Only reads use this: a
/// cluster without the CRD answers such a list with 404, which the reader turns into the
/// same "serves no kind" error discovery gives. `has_kind` and writes still discover, so
/// `ensure_crds` sees a missing CRD.
pub fn kipper_own(api_version: &str, kind: &str) -> Option<(ApiResource, ApiCapabilities)> {
    if api_version != "kipper.run/v1alpha1" {
        return None;
    }
    let (plural, scope) = match kind {
        "App" => ("apps", Scope::Namespaced),
        "Project" => ("projects", Scope::Cluster),
        "Service" => ("services", Scope::Namespaced),
        _ => return None,
    };
    let ar = ApiResource {
        group: "kipper.run".into(),
        version: "v1alpha1".into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let caps = ApiCapabilities {
        scope,
        subresources: Vec::new(),
        operations: Vec::new(),
    };
    Some((ar, caps))
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

    /// The table agrees with the CRDs kip applies (plural and scope).
    #[test]
    fn own_kinds_match_the_crds() {
        let crds = concat!(
            include_str!("../../../templates/crds/apps.yaml.j2"),
            include_str!("../../../templates/crds/projects.yaml.j2"),
            include_str!("../../../templates/crds/services.yaml.j2"),
        );
        for kind in ["App", "Project", "Service"] {
            let (ar, caps) = kipper_own("kipper.run/v1alpha1", kind).unwrap();
            let names = format!(
                "plural: {}, singular: {}, kind: {kind}",
                ar.plural,
                kind.to_lowercase()
            );
            let scope = format!("scope: {:?}\n  names: {{{names}", caps.scope);
            assert!(crds.contains(&scope), "{kind}: `{scope}` not in the CRDs");
        }
        assert!(kipper_own("kipper.run/v1", "App").is_none());
        assert!(kipper_own("kipper.run/v1alpha1", "Route").is_none());
    }
}
