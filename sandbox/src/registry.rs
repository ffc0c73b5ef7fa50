//! The kinds the sandbox serves: the built-in table and the ones CRDs add at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::table::{PrinterColumn, printer_columns_from_crd};
use crate::validation::NameRule;

/// One served resource at one group/version.
#[derive(Debug, Clone)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// `status`, `scale`, `log`…
    pub subresources: Vec<String>,
    /// Printer columns of a CRD; built-in kinds are printed by `table.rs` itself.
    pub printer_columns: Vec<PrinterColumn>,
    /// Served from a CustomResourceDefinition.
    pub custom: bool,
    pub name_rule: NameRule,
    /// The structural schema (`openAPIV3Schema`) of a CRD's version, which its objects are
    /// pruned, defaulted and validated against; built-in kinds have their own validation.
    pub schema: Option<Arc<Value>>,
    pub verbs: &'static [&'static str],
    /// The group of the storage this resource is a version of: its own but for Events.
    pub storage_group: String,
}

impl Resource {
    /// The storage key of this resource, the same for every version of it.
    pub fn key(&self) -> String {
        storage_key(&self.storage_group, &self.plural)
    }

    /// Whether this is another group's object shown in another shape (`events.k8s.io`).
    pub fn converted(&self) -> bool {
        self.storage_group != self.group
    }

    /// A review kind: answered on create, never stored.
    pub fn is_review(&self) -> bool {
        self.verbs == CREATE_ONLY
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s == name)
    }

    /// The name used in error messages: `deployments.apps`, `pods`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

pub fn storage_key(group: &str, plural: &str) -> String {
    format!("{group}/{plural}")
}

/// Every verb of a stored kind.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Reviews are answered, never stored: `create` is all they serve.
const CREATE_ONLY: &[&str] = &["create"];

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    sub: &'static [&'static str],
    name_rule: NameRule,
    verbs: &'static [&'static str],
    /// The group whose storage this resource shares, when another version of the same object
    /// is served in another group (`events.k8s.io` Events are core Events).
    stored_in: Option<&'static str>,
}

/// An RBAC kind: its names are path segments (`system:aggregate-to-view`), as the API server
/// checks them.
const fn rbac(plural: &'static str, kind: &'static str, namespaced: bool) -> Builtin {
    Builtin {
        name_rule: NameRule::PathSegment,
        ..b(
            "rbac.authorization.k8s.io",
            "v1",
            plural,
            kind,
            namespaced,
            &[],
            &[],
        )
    }
}

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    sub: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        sub,
        name_rule: NameRule::Subdomain,
        verbs: ALL_VERBS,
        stored_in: None,
    }
}

/// The built-in kinds with the group, version, scope, short names and subresources a
/// v1.33 apiserver lists for them in discovery.
const BUILTINS: &[Builtin] = &[
    Builtin {
        name_rule: NameRule::Label,
        ..b(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            &["status", "finalize"],
        )
    },
    b(
        "",
        "v1",
        "pods",
        "Pod",
        true,
        &["po"],
        &["status", "log", "portforward", "exec"],
    ),
    Builtin {
        name_rule: NameRule::Label,
        ..b("", "v1", "services", "Service", true, &["svc"], &["status"])
    },
    b("", "v1", "endpoints", "Endpoints", true, &["ep"], &[]),
    b("", "v1", "secrets", "Secret", true, &[], &[]),
    b("", "v1", "configmaps", "ConfigMap", true, &["cm"], &[]),
    b(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        &["token"],
    ),
    b(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        &["status"],
    ),
    b(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        false,
        &["pv"],
        &["status"],
    ),
    b("", "v1", "events", "Event", true, &["ev"], &[]),
    b("", "v1", "nodes", "Node", false, &["no"], &["status"]),
    b(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        true,
        &["rc"],
        &["status", "scale"],
    ),
    b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        &["status", "scale"],
    ),
    b(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        &["status", "scale"],
    ),
    b(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        &["status", "scale"],
    ),
    b(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        true,
        &["ds"],
        &["status"],
    ),
    b("batch", "v1", "jobs", "Job", true, &[], &["status"]),
    b(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        true,
        &["cj"],
        &["status"],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        &["status"],
    ),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        &[],
    ),
    b(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
        &[],
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        &[],
    ),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        &["status"],
    ),
    b(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
        &["sc"],
        &[],
    ),
    Builtin {
        stored_in: Some(""),
        ..b("events.k8s.io", "v1", "events", "Event", true, &["ev"], &[])
    },
    b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        &["status"],
    ),
    rbac("clusterroles", "ClusterRole", false),
    rbac("clusterrolebindings", "ClusterRoleBinding", false),
    rbac("roles", "Role", true),
    rbac("rolebindings", "RoleBinding", true),
    Builtin {
        verbs: CREATE_ONLY,
        ..b(
            "authentication.k8s.io",
            "v1",
            "selfsubjectreviews",
            "SelfSubjectReview",
            false,
            &[],
            &[],
        )
    },
    Builtin {
        verbs: CREATE_ONLY,
        ..b(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
            &[],
            &[],
        )
    },
    Builtin {
        verbs: CREATE_ONLY,
        ..b(
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            false,
            &[],
            &[],
        )
    },
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        &["status"],
    ),
    // `v1.` names the core group's: the aggregator checks names its own way.
    Builtin {
        name_rule: NameRule::PathSegment,
        ..b(
            "apiregistration.k8s.io",
            "v1",
            "apiservices",
            "APIService",
            false,
            &[],
            &["status"],
        )
    },
];

/// Categories kubectl uses: `kubectl get all`, `kubectl get api-extensions`.
fn builtin_categories(plural: &str) -> Vec<String> {
    match plural {
        "pods"
        | "services"
        | "replicationcontrollers"
        | "deployments"
        | "replicasets"
        | "statefulsets"
        | "daemonsets"
        | "jobs"
        | "cronjobs"
        | "horizontalpodautoscalers" => vec!["all".to_string()],
        "customresourcedefinitions" | "apiservices" => vec!["api-extensions".to_string()],
        _ => Vec::new(),
    }
}

/// Every resource the sandbox serves right now.
#[derive(Debug, Clone)]
pub struct Registry {
    builtin: Vec<Arc<Resource>>,
    /// Custom resources by the name of the CRD that declared them.
    custom: BTreeMap<String, Vec<Arc<Resource>>>,
    /// The OpenAPI documents of these kinds, built on first request: a CRD change drops them.
    pub openapi: std::sync::OnceLock<Arc<crate::openapi::Documents>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        let builtin = BUILTINS
            .iter()
            .map(|b| {
                Arc::new(Resource {
                    group: b.group.into(),
                    version: b.version.into(),
                    plural: b.plural.into(),
                    singular: b.kind.to_lowercase(),
                    kind: b.kind.into(),
                    namespaced: b.namespaced,
                    short_names: b.short.iter().map(|s| s.to_string()).collect(),
                    categories: builtin_categories(b.plural),
                    subresources: b.sub.iter().map(|s| s.to_string()).collect(),
                    printer_columns: Vec::new(),
                    custom: false,
                    name_rule: b.name_rule,
                    schema: None,
                    verbs: b.verbs,
                    storage_group: b.stored_in.unwrap_or(b.group).into(),
                })
            })
            .collect();
        Registry {
            builtin,
            custom: BTreeMap::new(),
            openapi: std::sync::OnceLock::new(),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.builtin.iter().chain(self.custom.values().flatten())
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.all()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Any served version of a resource, for controllers that only know group and plural.
    pub fn find_any_version(&self, group: &str, plural: &str) -> Option<Arc<Resource>> {
        self.all()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
    }

    /// Whether `group/version` is served at all.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.all().any(|r| r.group == group && r.version == version)
    }

    /// Groups with their served versions, in discovery order (built-in groups first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in self.all() {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => groups.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        groups
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<Resource>> {
        self.all()
            .filter(|r| r.group == group && r.version == version)
            .cloned()
            .collect()
    }

    /// Serves (or stops serving) what a CRD declares; called for every stored CRD.
    pub fn set_crd(&mut self, crd_name: &str, crd: Option<&Value>) {
        self.openapi = std::sync::OnceLock::new();
        match crd.map(resources_of_crd) {
            Some(resources) if !resources.is_empty() => {
                self.custom.insert(crd_name.to_string(), resources);
            }
            _ => {
                self.custom.remove(crd_name);
            }
        }
    }
}

/// The resources a CRD object declares, one per served version.
pub fn resources_of_crd(crd: &Value) -> Vec<Arc<Resource>> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let (Some(group), Some(plural), Some(kind)) = (
        spec["group"].as_str(),
        names["plural"].as_str(),
        names["kind"].as_str(),
    ) else {
        return Vec::new();
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            let mut subresources = Vec::new();
            if v["subresources"]["status"].is_object() {
                subresources.push("status".to_string());
            }
            if v["subresources"]["scale"].is_object() {
                subresources.push("scale".to_string());
            }
            Some(Arc::new(Resource {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
                singular: names["singular"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| kind.to_lowercase()),
                kind: kind.into(),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                subresources,
                printer_columns: printer_columns_from_crd(&v["additionalPrinterColumns"]),
                custom: true,
                name_rule: NameRule::Subdomain,
                schema: v["schema"]
                    .get("openAPIV3Schema")
                    .filter(|s| s.is_object())
                    .map(|s| Arc::new(s.clone())),
                verbs: ALL_VERBS,
                storage_group: group.into(),
            }))
        })
        .collect()
}
