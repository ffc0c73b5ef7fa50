//! The roles every cluster starts with, as the API server bootstraps them: `cluster-admin`
//! (bound to `system:masters`), and the user-facing `admin`, `edit` and `view`, each
//! aggregating the ClusterRoles labelled for it, so a CRD's own roles join them.

use serde_json::{Value, json};

const AGGREGATE: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn cluster_role(name: &str, labels: Value, body: Value) -> Value {
    let mut labels = labels;
    labels["kubernetes.io/bootstrapping"] = json!("rbac-defaults");
    let mut role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
    });
    if let (Some(role), Some(body)) = (role.as_object_mut(), body.as_object()) {
        role.extend(body.clone());
    }
    role
}

/// A role `name` made of the roles labelled `aggregate-to-<name>`.
fn aggregated(name: &str) -> Value {
    cluster_role(
        name,
        json!({}),
        json!({
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {format!("{AGGREGATE}{name}"): "true"}}]},
            "rules": [],
        }),
    )
}

/// Labels that put a role's rules into each of `into`.
fn into(roles: &[&str]) -> Value {
    let mut labels = json!({});
    for role in roles {
        labels[format!("{AGGREGATE}{role}")] = json!("true");
    }
    labels
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// The bootstrap roles and bindings.
pub fn defaults() -> Vec<Value> {
    let workloads = &[
        "deployments",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
        "daemonsets",
    ][..];
    let core_readable = &[
        "pods",
        "pods/log",
        "pods/status",
        "services",
        "services/status",
        "endpoints",
        "configmaps",
        "persistentvolumeclaims",
        "persistentvolumeclaims/status",
        "replicationcontrollers",
        "replicationcontrollers/scale",
        "serviceaccounts",
        "events",
        "limitranges",
        "resourcequotas",
        "bindings",
    ][..];
    let view_rules = json!([
        rule(&[""], core_readable, READ),
        rule(&[""], &["namespaces", "namespaces/status"], READ),
        rule(
            &["apps"],
            &[
                workloads,
                &[
                    "controllerrevisions",
                    "deployments/status",
                    "replicasets/status",
                    "statefulsets/status",
                    "daemonsets/status"
                ]
            ]
            .concat(),
            READ
        ),
        rule(
            &["batch"],
            &["jobs", "jobs/status", "cronjobs", "cronjobs/status"],
            READ
        ),
        rule(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status"
            ],
            READ
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            READ
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ
        ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&["events.k8s.io"], &["events"], READ),
    ]);
    let edit_rules = json!([
        rule(
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "pods/eviction"
            ],
            WRITE
        ),
        rule(
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy"
            ],
            READ
        ),
        rule(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy"
            ],
            WRITE
        ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        rule(
            &["apps"],
            &[workloads, &["deployments/rollback"]].concat(),
            WRITE
        ),
        rule(&["batch"], &["jobs", "cronjobs"], WRITE),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            WRITE
        ),
        rule(&["policy"], &["poddisruptionbudgets"], WRITE),
    ]);
    let admin_rules = json!([
        rule(
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
            &[READ, WRITE].concat()
        ),
        rule(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
            &["create"]
        ),
    ]);
    vec![
        cluster_role(
            "cluster-admin",
            json!({}),
            json!({"rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]}),
        ),
        aggregated("admin"),
        aggregated("edit"),
        aggregated("view"),
        cluster_role(
            "system:aggregate-to-admin",
            into(&["admin"]),
            json!({"rules": admin_rules}),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            into(&["admin", "edit"]),
            json!({"rules": edit_rules}),
        ),
        cluster_role(
            "system:aggregate-to-view",
            into(&["admin", "edit", "view"]),
            json!({"rules": view_rules}),
        ),
        // What the sandbox says of itself (`server::ANNOUNCED`) is for every client to read,
        // as `kube-public/cluster-info` is on a real cluster.
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "kip-sandbox-facts", "namespace": "kube-system"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [crate::server::ANNOUNCED], "verbs": ["get"]}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "kip-sandbox-facts", "namespace": "kube-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kip-sandbox-facts"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {
                "name": "cluster-admin",
                "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
            },
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}],
        }),
    ]
}

/// The resource of one of [`defaults`]' objects.
pub fn plural(obj: &Value) -> &'static str {
    match obj["kind"].as_str() {
        Some("ClusterRole") => "clusterroles",
        Some("ClusterRoleBinding") => "clusterrolebindings",
        Some("Role") => "roles",
        _ => "rolebindings",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::{Attributes, User, rbac};
    use crate::registry::storage_key;
    use crate::store::{ObjKey, State};

    fn state() -> State {
        let mut state = State::new();
        for obj in defaults() {
            let plural = plural(&obj);
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            state.set(
                ObjKey::new(storage_key("rbac.authorization.k8s.io", plural), ns, name),
                Some(Arc::new(obj)),
            );
        }
        state
    }

    fn bind(state: &mut State, ns: &str, role: &str, account: &str) {
        let binding = json!({
            "metadata": {"name": format!("{account}-{role}"), "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
        });
        state.set(
            ObjKey::new(
                storage_key("rbac.authorization.k8s.io", "rolebindings"),
                ns,
                format!("{account}-{role}"),
            ),
            Some(Arc::new(binding)),
        );
    }

    fn can(state: &State, user: &User, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
        let a = Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: String::new(),
        };
        rbac::allows(state, user, &a)
    }

    #[test]
    fn view_reads_edit_writes_and_neither_reaches_another_namespace() {
        let mut state = state();
        let viewer = User::service_account("shop", "viewer", "u1");
        let dev = User::service_account("shop", "dev", "u2");
        bind(&mut state, "shop", "view", "viewer");
        bind(&mut state, "shop", "edit", "dev");
        assert!(can(&state, &viewer, "list", "apps", "deployments", "shop"));
        assert!(can(&state, &viewer, "get", "", "pods/log", "shop"));
        assert!(
            !can(&state, &viewer, "get", "", "secrets", "shop"),
            "view reads no secrets"
        );
        assert!(!can(
            &state,
            &viewer,
            "patch",
            "apps",
            "deployments/scale",
            "shop"
        ));
        assert!(can(
            &state,
            &dev,
            "patch",
            "apps",
            "deployments/scale",
            "shop"
        ));
        assert!(can(&state, &dev, "get", "", "secrets", "shop"));
        assert!(can(&state, &dev, "create", "", "pods/exec", "shop"));
        assert!(
            !can(
                &state,
                &dev,
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                "shop"
            ),
            "edit is not admin"
        );
        assert!(!can(&state, &dev, "list", "apps", "deployments", "other"));
        assert!(!can(&state, &dev, "list", "", "namespaces", ""));
        assert!(can(&state, &User::admin(), "delete", "", "namespaces", ""));
        let facts = Attributes {
            verb: "get".into(),
            group: String::new(),
            resource: "configmaps".into(),
            namespace: "kube-system".into(),
            name: crate::server::ANNOUNCED.into(),
        };
        assert!(
            rbac::allows(&state, &viewer, &facts),
            "the sandbox's facts are for all"
        );
        let other = Attributes {
            name: "secret-config".into(),
            ..facts
        };
        assert!(!rbac::allows(&state, &viewer, &other));
    }

    #[test]
    fn a_role_labelled_for_edit_joins_it() {
        let mut state = state();
        let dev = User::service_account("shop", "dev", "u2");
        bind(&mut state, "shop", "edit", "dev");
        assert!(!can(&state, &dev, "patch", "kipper.run", "apps", "shop"));
        let extra = cluster_role(
            "kipper-edit",
            into(&["edit", "admin"]),
            json!({"rules": [rule(&["kipper.run"], &["apps"], &[READ, WRITE].concat())]}),
        );
        state.set(
            ObjKey::new(
                storage_key("rbac.authorization.k8s.io", "clusterroles"),
                "",
                "kipper-edit",
            ),
            Some(Arc::new(extra)),
        );
        assert!(can(&state, &dev, "patch", "kipper.run", "apps", "shop"));
    }
}
