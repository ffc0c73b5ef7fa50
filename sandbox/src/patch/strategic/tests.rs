use super::*;
use proptest::prelude::*;
use serde_json::json;

fn patched(original: Value, patch: Value) -> Value {
    match strategic_merge(&original, &patch) {
        Ok(value) => value,
        Err(error) => panic!("patch failed: {error}"),
    }
}

fn rejected(original: Value, patch: Value) -> String {
    match strategic_merge(&original, &patch) {
        Ok(value) => panic!("patch should fail, got {value}"),
        Err(error) => error,
    }
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
}

/// Whether any key of `value`, at any depth, is a patch directive.
fn has_directive(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| is_directive_key(k) || has_directive(v)),
        Value::Array(items) => items.iter().any(has_directive),
        _ => false,
    }
}

/// `value` with every directive key dropped, as a stored object would be.
fn without_directives(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !is_directive_key(k))
                .map(|(k, v)| (k, without_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_directives).collect()),
        scalar => scalar,
    }
}

#[test]
fn maps_merge_recursively_and_null_deletes() {
    let original = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "name": "x"}});
    let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}});
    let expected = json!({"metadata": {"labels": {"b": "2", "c": "3"}, "name": "x"}});
    assert_eq!(patched(original, patch), expected);
}

#[test]
fn scalars_and_type_changes_replace() {
    let original = json!({"spec": {"replicas": 1, "selector": "x"}});
    let patch = json!({"spec": {"replicas": 3, "selector": {"app": "a"}}});
    assert_eq!(
        patched(original, patch),
        json!({"spec": {"replicas": 3, "selector": {"app": "a"}}})
    );
}

#[test]
fn lists_without_merge_key_are_replaced() {
    let original = json!({"args": ["a", "b"], "tolerations": [{"key": "k1"}, {"key": "k2"}]});
    let patch = json!({"args": ["c"], "tolerations": [{"key": "k3"}]});
    assert_eq!(
        patched(original, patch),
        json!({"args": ["c"], "tolerations": [{"key": "k3"}]})
    );
}

#[test]
fn containers_merge_by_name() {
    let original = pod(json!([
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]},
        {"name": "log", "image": "busybox"}
    ]));
    let patch = json!({"spec": {"containers": [
        {"name": "web", "image": "nginx:2"},
        {"name": "new", "image": "redis"}
    ]}});
    let expected = pod(json!([
        {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}]},
        {"name": "log", "image": "busybox"},
        {"name": "new", "image": "redis"}
    ]));
    assert_eq!(patched(original, patch), expected);
}

#[test]
fn delete_a_container_by_directive() {
    let original =
        pod(json!([{"name": "web", "image": "nginx"}, {"name": "log", "image": "busybox"}]));
    let patch = json!({"spec": {"containers": [{"name": "log", "$patch": "delete"}]}});
    assert_eq!(
        patched(original, patch),
        pod(json!([{"name": "web", "image": "nginx"}]))
    );
}

#[test]
fn env_merges_by_name() {
    let original = pod(json!([{"name": "web", "env": [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"}
    ]}]));
    let patch = json!({"spec": {"containers": [{"name": "web", "env": [
        {"name": "B", "value": "20"},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "A", "$patch": "delete"}
    ]}]}});
    let expected = pod(json!([{"name": "web", "env": [
        {"name": "B", "value": "20"},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]}]));
    assert_eq!(patched(original, patch), expected);
}

#[test]
fn env_value_can_be_removed_with_null() {
    let original = pod(json!([{"name": "web", "env": [{"name": "A", "value": "1"}]}]));
    let patch = json!({"spec": {"containers": [{"name": "web", "env": [
        {"name": "A", "value": null, "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    ]}]}});
    let expected = pod(json!([{"name": "web", "env": [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    ]}]));
    assert_eq!(patched(original, patch), expected);
}

#[test]
fn service_ports_merge_by_port() {
    let original = json!({"spec": {"ports": [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "https", "port": 443, "targetPort": 8443}
    ]}});
    let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 53, "protocol": "UDP"}]}});
    let expected = json!({"spec": {"ports": [
        {"name": "http", "port": 80, "targetPort": 9090},
        {"name": "https", "port": 443, "targetPort": 8443},
        {"port": 53, "protocol": "UDP"}
    ]}});
    assert_eq!(patched(original, patch), expected);
}

#[test]
fn container_ports_merge_by_container_port() {
    let original = pod(json!([{"name": "web", "ports": [{"containerPort": 80, "name": "http"}]}]));
    let patch = json!({"spec": {"containers": [{"name": "web", "ports": [
        {"containerPort": 80, "protocol": "TCP"},
        {"containerPort": 9090, "name": "metrics"}
    ]}]}});
    let expected = pod(json!([{"name": "web", "ports": [
        {"containerPort": 80, "name": "http", "protocol": "TCP"},
        {"containerPort": 9090, "name": "metrics"}
    ]}]));
    assert_eq!(patched(original, patch), expected);
}

#[test]
fn other_merge_keys() {
    let original = json!({
        "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Scheduled", "status": "True"}]},
        "spec": {"volumes": [{"name": "v", "emptyDir": {}}], "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a"]}]}
    });
    let patch = json!({
        "metadata": {"ownerReferences": [{"uid": "2", "name": "c"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        "spec": {"volumes": [{"name": "w", "configMap": {"name": "cm"}}], "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["b"]}]}
    });
    let expected = json!({
        "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "c"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Scheduled", "status": "True"}]},
        "spec": {
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "configMap": {"name": "cm"}}],
            "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["b"]}]
        }
    });
    assert_eq!(patched(original, patch), expected);
}

/// What `kubectl apply` (client-side) sends after the manifest reordered the containers, changed
/// one image, dropped one env var and removed a container.
#[test]
fn kubectl_three_way_patch_with_set_element_order() {
    let original = pod(json!([
        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
        {"name": "b", "image": "b:1"},
        {"name": "c", "image": "c:1"}
    ]));
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [
                {
                    "$setElementOrder/env": [{"name": "Y"}],
                    "name": "a",
                    "image": "a:2",
                    "env": [{"$patch": "delete", "name": "X"}]
                },
                {"$patch": "delete", "name": "c"}
            ]
        }
    });
    let mut expected = pod(json!([
        {"name": "b", "image": "b:1"},
        {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]}
    ]));
    expected["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"});
    let result = patched(original, patch);
    assert_eq!(result, expected);
    assert!(!has_directive(&result));
}

#[test]
fn set_element_order_alone_reorders() {
    let original = pod(json!([{"name": "a"}, {"name": "b"}]));
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}});
    assert_eq!(
        patched(original, patch),
        pod(json!([{"name": "b"}, {"name": "a"}]))
    );
}

#[test]
fn set_element_order_keeps_server_only_items() {
    let original = pod(json!([{"name": "a"}, {"name": "injected"}, {"name": "b"}]));
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "containers": [{"name": "c", "image": "c"}]
    }});
    let expected = pod(
        json!([{"name": "a"}, {"name": "injected"}, {"name": "b"}, {"name": "c", "image": "c"}]),
    );
    assert_eq!(patched(original, patch), expected);
}

#[test]
fn set_element_order_for_an_absent_list_is_harmless() {
    let original = json!({"spec": {}});
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}]}});
    assert_eq!(patched(original, patch), json!({"spec": {}}));
}

#[test]
fn replace_directive_on_a_map() {
    let original = json!({"spec": {"selector": {"a": "1", "b": "2"}, "replicas": 1}});
    let patch = json!({"spec": {"selector": {"$patch": "replace", "c": "3", "d": null}}});
    assert_eq!(
        patched(original, patch),
        json!({"spec": {"selector": {"c": "3"}, "replicas": 1}})
    );
}

#[test]
fn replace_directive_on_a_list() {
    let original = pod(json!([{"name": "a", "image": "a"}, {"name": "b"}]));
    let patch =
        json!({"spec": {"containers": [{"name": "c", "image": "c"}, {"$patch": "replace"}]}});
    assert_eq!(
        patched(original, patch),
        pod(json!([{"name": "c", "image": "c"}]))
    );
}

#[test]
fn delete_directive_on_a_map() {
    let original =
        json!({"spec": {"template": {"metadata": {"labels": {"a": "1"}}}, "replicas": 2}});
    let patch = json!({"spec": {"template": {"$patch": "delete"}}});
    assert_eq!(
        patched(original, patch),
        json!({"spec": {"template": {}, "replicas": 2}})
    );
}

#[test]
fn delete_directive_at_the_top() {
    let original = json!({"a": 1});
    assert_eq!(patched(original, json!({"$patch": "delete"})), json!({}));
}

#[test]
fn merge_directive_is_the_default() {
    let original = json!({"spec": {"a": 1}});
    let patch = json!({"spec": {"$patch": "merge", "b": 2}});
    assert_eq!(patched(original, patch), json!({"spec": {"a": 1, "b": 2}}));
}

#[test]
fn retain_keys_switches_a_one_of() {
    let original = json!({"spec": {"strategy": {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1}
    }}});
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    assert_eq!(
        patched(original, patch),
        json!({"spec": {"strategy": {"type": "Recreate"}}})
    );
}

#[test]
fn retain_keys_must_list_the_patched_keys() {
    let original = json!({"spec": {"strategy": {}}});
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
    assert!(rejected(original, patch).contains("retainKeys"));
    let not_a_list = json!({"spec": {"$retainKeys": "type"}});
    assert!(rejected(json!({}), not_a_list).contains("retainKeys"));
}

#[test]
fn finalizers_merge_as_a_set() {
    let original = json!({"metadata": {"finalizers": ["a", "b"]}});
    let patch = json!({"metadata": {"finalizers": ["b", "c"]}});
    assert_eq!(
        patched(original, patch),
        json!({"metadata": {"finalizers": ["a", "b", "c"]}})
    );
}

#[test]
fn delete_from_primitive_list() {
    let original = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"]}});
    assert_eq!(
        patched(original, patch),
        json!({"metadata": {"finalizers": ["a", "c"]}})
    );
}

#[test]
fn delete_from_primitive_list_with_additions_and_order() {
    let original = json!({"metadata": {"finalizers": ["a", "b"]}});
    let patch = json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["a"],
        "$setElementOrder/finalizers": ["c", "b"],
        "finalizers": ["c"]
    }});
    assert_eq!(
        patched(original, patch),
        json!({"metadata": {"finalizers": ["c", "b"]}})
    );
}

#[test]
fn new_values_lose_their_directives() {
    let original = json!({"spec": {}});
    let patch = json!({"spec": {
        "template": {"spec": {"containers": [
            {"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}], "args": null}
        ]}},
        "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
        "selector": {"$patch": "replace", "matchLabels": {"a": "b"}}
    }});
    let result = patched(original, patch);
    assert!(!has_directive(&result), "{result}");
    let expected = json!({"spec": {
        "template": {"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]}},
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": {"a": "b"}}
    }});
    assert_eq!(result, expected);
}

#[test]
fn malformed_patches_are_rejected() {
    assert!(rejected(json!({}), json!([1])).contains("JSON object"));
    assert!(rejected(json!([]), json!({})).contains("JSON object"));
    assert!(rejected(json!({}), json!({"$patch": "explode"})).contains("unknown patch type"));
    let no_key = json!({"spec": {"containers": [{"image": "nginx"}]}});
    assert!(rejected(pod(json!([])), no_key).contains("merge key: name"));
    let delete_without_key = json!({"spec": {"containers": [{"$patch": "delete"}]}});
    assert!(rejected(pod(json!([])), delete_without_key).contains("merge key"));
    let bad_item_directive = json!({"spec": {"containers": [{"name": "a", "$patch": 1}]}});
    assert!(rejected(pod(json!([])), bad_item_directive).contains("unknown patch type"));
    let bad_delete_list = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}});
    assert!(rejected(json!({}), bad_delete_list).contains("must be a list"));
}

#[test]
fn the_original_is_left_alone() {
    let original = pod(json!([{"name": "a"}]));
    let copy = original.clone();
    patched(
        original.clone(),
        json!({"spec": {"containers": [{"name": "b"}]}}),
    );
    assert_eq!(original, copy);
}

proptest! {
    #[test]
    fn never_panics(original in crate::patch::arbitrary::json(4), patch in crate::patch::arbitrary::json(4)) {
        let _ = strategic_merge(&original, &patch);
    }

    #[test]
    fn successful_results_hold_no_directives(
        original in crate::patch::arbitrary::object(3),
        patch in crate::patch::arbitrary::object(3),
    ) {
        let original = without_directives(original);
        if let Ok(result) = strategic_merge(&original, &patch) {
            prop_assert!(!has_directive(&result), "{}", result);
        }
    }
}
