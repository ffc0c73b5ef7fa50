//! RBAC as the API server evaluates it: a request is allowed when a ClusterRoleBinding, or a
//! RoleBinding in the request's namespace, binds one of the user's subjects to a role with a
//! rule covering it. A ClusterRole with an `aggregationRule` has the rules of every ClusterRole
//! its selectors match (how `view`, `edit` and `admin` take in CRDs' roles).
//!
//! Discovery, OpenAPI, health and the self reviews are open to every authenticated user, as
//! `system:discovery` and `system:basic-user` open them on a real cluster.

use serde_json::Value;

use super::{Attributes, User};
use crate::registry::storage_key;
use crate::selector::from_label_selector_json;
use crate::store::{ObjKey, State};

const RBAC: &str = "rbac.authorization.k8s.io";

/// Whether `user` may do what `a` asks.
pub fn allows(state: &State, user: &User, a: &Attributes) -> bool {
    if user.is_admin() || open_to_everyone(a) {
        return true;
    }
    let cluster_bindings = state.list_values(&storage_key(RBAC, "clusterrolebindings"), None);
    for binding in cluster_bindings {
        if binds(&binding, user, "") && role_rules(state, &binding, "").iter().any(|r| covers(r, a))
        {
            return true;
        }
    }
    if a.namespace.is_empty() {
        return false;
    }
    let bindings = state.list_values(&storage_key(RBAC, "rolebindings"), Some(&a.namespace));
    bindings.iter().any(|binding| {
        binds(binding, user, &a.namespace)
            && role_rules(state, binding, &a.namespace)
                .iter()
                .any(|r| covers(r, a))
    })
}

/// The rules `user` has in `namespace` (every namespace's when empty, for cluster bindings
/// only), for a SelfSubjectRulesReview.
pub fn rules_of(state: &State, user: &User, namespace: &str) -> Vec<Value> {
    let mut rules = Vec::new();
    for binding in state.list_values(&storage_key(RBAC, "clusterrolebindings"), None) {
        if binds(&binding, user, "") {
            rules.extend(role_rules(state, &binding, ""));
        }
    }
    if !namespace.is_empty() {
        for binding in state.list_values(&storage_key(RBAC, "rolebindings"), Some(namespace)) {
            if binds(&binding, user, namespace) {
                rules.extend(role_rules(state, &binding, namespace));
            }
        }
    }
    rules
}

/// Requests every authenticated user may make.
fn open_to_everyone(a: &Attributes) -> bool {
    a.group == "authorization.k8s.io"
        && a.verb == "create"
        && matches!(
            a.resource.as_str(),
            "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
        )
        || a.group == "authentication.k8s.io"
            && a.verb == "create"
            && a.resource == "selfsubjectreviews"
}

/// Whether `binding` (in `namespace`, empty for a ClusterRoleBinding) names `user`, one of
/// its groups, or its ServiceAccount.
fn binds(binding: &Value, user: &User, namespace: &str) -> bool {
    let Some(subjects) = binding["subjects"].as_array() else {
        return false;
    };
    subjects.iter().any(|s| {
        let name = s["name"].as_str().unwrap_or_default();
        match s["kind"].as_str() {
            Some("User") => name == user.name,
            Some("Group") => user.groups.iter().any(|g| g == name),
            Some("ServiceAccount") => {
                let ns = s["namespace"]
                    .as_str()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(namespace);
                user.name == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

/// The rules of the role `binding` refers to: a ClusterRole, or a Role in `namespace`.
fn role_rules(state: &State, binding: &Value, namespace: &str) -> Vec<Value> {
    let role = &binding["roleRef"];
    let name = role["name"].as_str().unwrap_or_default();
    match role["kind"].as_str() {
        Some("ClusterRole") => cluster_role_rules(state, name),
        Some("Role") if !namespace.is_empty() => state
            .get(&ObjKey::new(storage_key(RBAC, "roles"), namespace, name))
            .map(|r| rules(&r))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A ClusterRole's rules, with those its aggregation rule takes in.
fn cluster_role_rules(state: &State, name: &str) -> Vec<Value> {
    let key = storage_key(RBAC, "clusterroles");
    let Some(role) = state.get(&ObjKey::new(key.clone(), "", name)) else {
        return Vec::new();
    };
    let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() else {
        return rules(&role);
    };
    let selectors: Vec<_> = selectors
        .iter()
        .filter_map(|s| from_label_selector_json(s).ok())
        .filter(|s| !s.is_empty())
        .collect();
    let mut all = Vec::new();
    for other in state.list_values(&key, None) {
        let labels = other["metadata"]["labels"].as_object();
        // An aggregated role's own rules are what it takes in: not taken in again.
        if other["aggregationRule"].is_null() && selectors.iter().any(|s| s.matches(labels)) {
            all.extend(rules(&other));
        }
    }
    all
}

fn rules(role: &Value) -> Vec<Value> {
    role["rules"].as_array().cloned().unwrap_or_default()
}

/// Whether `rule` covers `a`: its verb, group, resource and (when the rule names some) name.
fn covers(rule: &Value, a: &Attributes) -> bool {
    let has = |field: &str, wanted: &str| {
        rule[field]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i == "*" || i == wanted))
    };
    if !has("verbs", &a.verb) || !has("apiGroups", &a.group) {
        return false;
    }
    let resource = rule["resources"].as_array().is_some_and(|items| {
        items.iter().filter_map(Value::as_str).any(|r| {
            r == "*"
                || r == a.resource
                || match a.resource.split_once('/') {
                    // `*/scale` covers every kind's scale; `deployments/*` every subresource.
                    Some((plural, sub)) => {
                        r.strip_prefix("*/") == Some(sub) || r.strip_suffix("/*") == Some(plural)
                    }
                    None => false,
                }
        })
    });
    if !resource {
        return false;
    }
    match rule["resourceNames"].as_array() {
        Some(names) if !names.is_empty() => {
            !a.name.is_empty() && names.iter().any(|n| n == a.name.as_str())
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attributes(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn rules_cover_verbs_groups_resources_and_names() {
        let rule = json!({"verbs": ["get", "list"], "apiGroups": ["apps"],
                          "resources": ["deployments", "deployments/scale"]});
        assert!(covers(
            &rule,
            &attributes("get", "apps", "deployments", "a", "web")
        ));
        assert!(covers(
            &rule,
            &attributes("get", "apps", "deployments/scale", "a", "web")
        ));
        assert!(!covers(
            &rule,
            &attributes("patch", "apps", "deployments", "a", "web")
        ));
        assert!(!covers(
            &rule,
            &attributes("get", "", "deployments", "a", "web")
        ));
        assert!(!covers(
            &rule,
            &attributes("get", "apps", "deployments/status", "a", "web")
        ));
        let wild = json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/scale"]});
        assert!(covers(
            &wild,
            &attributes("patch", "apps", "statefulsets/scale", "a", "x")
        ));
        assert!(!covers(
            &wild,
            &attributes("patch", "apps", "statefulsets", "a", "x")
        ));
        let named = json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"],
                           "resourceNames": ["one"]});
        assert!(covers(
            &named,
            &attributes("get", "", "secrets", "a", "one")
        ));
        assert!(!covers(
            &named,
            &attributes("get", "", "secrets", "a", "two")
        ));
        assert!(!covers(&named, &attributes("list", "", "secrets", "a", "")));
        assert!(!covers(&json!({}), &attributes("get", "", "pods", "a", "")));
    }

    #[test]
    fn subjects_are_users_groups_and_service_accounts() {
        let dev = User::service_account("shop", "dev", "u");
        let binding = |subject: Value| json!({"subjects": [subject]});
        assert!(binds(
            &binding(json!({"kind": "ServiceAccount", "name": "dev"})),
            &dev,
            "shop"
        ));
        assert!(!binds(
            &binding(json!({"kind": "ServiceAccount", "name": "dev"})),
            &dev,
            "other"
        ));
        assert!(binds(
            &binding(json!({"kind": "ServiceAccount", "name": "dev", "namespace": "shop"})),
            &dev,
            ""
        ));
        assert!(binds(
            &binding(json!({"kind": "Group", "name": "system:serviceaccounts:shop"})),
            &dev,
            ""
        ));
        assert!(binds(
            &binding(json!({"kind": "User", "name": "system:serviceaccount:shop:dev"})),
            &dev,
            ""
        ));
        assert!(!binds(
            &binding(json!({"kind": "User", "name": "dev"})),
            &dev,
            ""
        ));
        assert!(!binds(&json!({}), &dev, ""));
    }
}
