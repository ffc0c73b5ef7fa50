//! How the list fields of the built-in kinds merge, shared by strategic merge patch and
//! server-side apply.
//!
//! The real apiserver reads this from Go struct tags (`patchMergeKey`, `listType=map`); the sandbox
//! has no schema, so it goes by field name alone. That is exact for the common fields and only
//! ambiguous for `ports` and `addresses`, which are decided from the list items.

use serde_json::Value;

/// The merge key of list field `field` (e.g. "containers" -> "name"), deciding ambiguous ones
/// ("ports": containerPort for container ports, port for Service ports) from the list items.
///
/// `items` should hold every item known for the list (the original's and the patch's), so the
/// decision is the same for both sides. Returns `None` for lists that are replaced as a whole,
/// including a keyed field whose items are not all objects: such a list cannot be merged by key.
pub fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    if !items.iter().all(Value::is_object) {
        return None;
    }
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates"
        | "secrets"
        | "resourceClaimStatuses" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" | "podIPs" | "hostIPs" => Some("ip"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "ports" => ports_key(items),
        // Node status addresses merge by type; Endpoints addresses carry no type and are atomic.
        "addresses" if all_have(items, "type") => Some("type"),
        _ => None,
    }
}

/// Whether list field `field` is a set of primitives that merges as a union (e.g. `finalizers`).
pub fn is_primitive_set(field: &str) -> bool {
    matches!(field, "finalizers" | "podCIDRs")
}

fn ports_key(items: &[Value]) -> Option<&'static str> {
    // Both keys are optional in some kinds (NetworkPolicy ports may omit port), so a key is only
    // used when every item carries it; otherwise the list is atomic rather than an error.
    if all_have(items, "containerPort") {
        Some("containerPort")
    } else if all_have(items, "port") {
        Some("port")
    } else {
        None
    }
}

/// Whether every item that is more than a bare `{"$patch": ...}` directive has `key`; a list with
/// no such item passes, since any key will do for it.
fn all_have(items: &[Value], key: &str) -> bool {
    items
        .iter()
        .filter(|item| {
            item.as_object()
                .is_some_and(|m| m.keys().any(|k| k != "$patch"))
        })
        .all(|item| item.get(key).is_some())
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_lists_merge_by_name() {
        for field in [
            "containers",
            "initContainers",
            "env",
            "volumes",
            "imagePullSecrets",
        ] {
            assert_eq!(merge_key(field, &[]), Some("name"), "{field}");
        }
    }

    #[test]
    fn other_keys() {
        assert_eq!(merge_key("volumeMounts", &[]), Some("mountPath"));
        assert_eq!(merge_key("ownerReferences", &[]), Some("uid"));
        assert_eq!(merge_key("conditions", &[]), Some("type"));
        assert_eq!(merge_key("hostAliases", &[]), Some("ip"));
        assert_eq!(
            merge_key("topologySpreadConstraints", &[]),
            Some("topologyKey")
        );
        assert_eq!(merge_key("tolerations", &[]), None);
        assert_eq!(merge_key("args", &[]), None);
    }

    #[test]
    fn ports_are_decided_by_items() {
        let container = [json!({"containerPort": 80, "protocol": "TCP"})];
        let service = [json!({"port": 80, "targetPort": 8080})];
        assert_eq!(merge_key("ports", &container), Some("containerPort"));
        assert_eq!(merge_key("ports", &service), Some("port"));
        let network_policy = [json!({"port": 80}), json!({"protocol": "UDP"})];
        assert_eq!(merge_key("ports", &network_policy), None);
        assert_eq!(
            merge_key("ports", &[json!({"$patch": "replace"})]),
            Some("containerPort")
        );
    }

    #[test]
    fn addresses_need_a_type() {
        assert_eq!(
            merge_key(
                "addresses",
                &[json!({"type": "InternalIP", "address": "10.0.0.1"})]
            ),
            Some("type")
        );
        assert_eq!(merge_key("addresses", &[json!({"ip": "10.0.0.1"})]), None);
    }

    #[test]
    fn primitive_items_make_a_list_atomic() {
        assert_eq!(merge_key("env", &[json!("A=1")]), None);
    }

    #[test]
    fn finalizers_are_a_set() {
        assert!(is_primitive_set("finalizers"));
        assert!(!is_primitive_set("args"));
    }
}
