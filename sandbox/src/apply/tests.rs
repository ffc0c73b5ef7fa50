use super::*;
use proptest::prelude::*;
use serde_json::json;

const T1: &str = "2024-01-01T00:00:01Z";
const T2: &str = "2024-01-01T00:00:02Z";
const T3: &str = "2024-01-01T00:00:03Z";
const T4: &str = "2024-01-01T00:00:04Z";

fn applied(live: Option<&Value>, config: &Value, manager: &str, now: &str) -> Value {
    match server_side_apply(live, config, manager, false, now) {
        Ok(object) => object,
        Err(error) => panic!("apply by {manager} failed: {error}"),
    }
}

fn conflicts(live: &Value, config: &Value, manager: &str) -> Vec<Conflict> {
    match server_side_apply(Some(live), config, manager, false, T4) {
        Err(ApplyError::Conflict(conflicts)) => conflicts,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn deployment(spec: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": spec
    })
}

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": data})
}

/// The object as stored: what the caller adds after a write.
fn stored(mut object: Value) -> Value {
    object["metadata"]["uid"] = json!("1234");
    object["metadata"]["resourceVersion"] = json!("7");
    object["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    object
}

fn entry<'a>(object: &'a Value, manager: &str, operation: &str) -> &'a Value {
    object["metadata"]["managedFields"]
        .as_array()
        .and_then(|entries| {
            entries
                .iter()
                .find(|e| e["manager"] == manager && e["operation"] == operation)
        })
        .unwrap_or(&Value::Null)
}

fn managers(object: &Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["manager"].as_str().unwrap_or("?"),
                        e["operation"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn without_managed_fields(object: &Value) -> Value {
    managed::strip(object)
}

#[test]
fn apply_creates() {
    let config = deployment(json!({
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}
    }));
    let object = applied(None, &config, "kubectl", T1);
    assert_eq!(without_managed_fields(&object), config);
    let expected = json!([{
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                    ".": {},
                    "f:image": {},
                    "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80}": {".": {}, "f:containerPort": {}}}
                }}}}
            }
        }
    }]);
    assert_eq!(object["metadata"]["managedFields"], expected);
}

#[test]
fn apply_twice_is_identical() {
    let config = deployment(
        json!({"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}),
    );
    let first = stored(applied(None, &config, "kubectl", T1));
    let second = applied(Some(&first), &config, "kubectl", T2);
    // Equal as values (key order is insertion order and not significant): the store sees no
    // change, so no write and no resourceVersion bump.
    assert_eq!(second, first);
    let third = applied(Some(&second), &config, "kubectl", T3);
    assert_eq!(third, first);
}

#[test]
fn apply_changing_a_value_moves_the_time() {
    let first = stored(applied(
        None,
        &deployment(json!({"replicas": 2})),
        "kubectl",
        T1,
    ));
    let second = applied(
        Some(&first),
        &deployment(json!({"replicas": 3})),
        "kubectl",
        T2,
    );
    assert_eq!(second["spec"]["replicas"], 3);
    assert_eq!(entry(&second, "kubectl", "Apply")["time"], T2);
}

#[test]
fn apply_removes_fields_it_no_longer_sets() {
    let config = deployment(
        json!({"replicas": 2, "paused": true, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx"},
            {"name": "log", "image": "busybox"}
        ]}}}),
    );
    let first = stored(applied(None, &config, "kubectl", T1));
    let mut smaller = deployment(
        json!({"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}),
    );
    smaller["metadata"]["labels"] = Value::Null;
    let second = applied(Some(&first), &smaller, "kubectl", T2);
    assert_eq!(
        second["spec"],
        json!({"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}})
    );
    assert_eq!(second["metadata"].get("labels"), None);
    assert_eq!(second["metadata"]["uid"], "1234");
    let fields = &entry(&second, "kubectl", "Apply")["fieldsV1"];
    assert_eq!(fields.get("f:metadata"), None);
    assert_eq!(fields["f:spec"].get("f:paused"), None);
}

#[test]
fn apply_leaves_unowned_fields_alone() {
    let mut live = stored(applied(
        None,
        &deployment(json!({"replicas": 2})),
        "kubectl",
        T1,
    ));
    // Server defaults belong to nobody and survive applies.
    live["spec"]["revisionHistoryLimit"] = json!(10);
    let second = applied(
        Some(&live),
        &deployment(json!({"replicas": 2})),
        "kubectl",
        T2,
    );
    assert_eq!(second, live);
}

#[test]
fn conflict_with_another_manager_and_force() {
    let live = stored(applied(
        None,
        &deployment(json!({"replicas": 2, "paused": false})),
        "kubectl",
        T1,
    ));
    let scaler = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    let found = conflicts(&live, &scaler, "autoscaler");
    assert_eq!(
        found,
        [Conflict {
            manager: "kubectl".into(),
            field: ".spec.replicas".into()
        }]
    );
    let message = ApplyError::Conflict(found).to_string();
    assert_eq!(
        message,
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );

    let forced = match server_side_apply(Some(&live), &scaler, "autoscaler", true, T2) {
        Ok(object) => object,
        Err(error) => panic!("forced apply failed: {error}"),
    };
    assert_eq!(forced["spec"]["replicas"], 5);
    assert_eq!(
        entry(&forced, "autoscaler", "Apply")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    let kubectl = &entry(&forced, "kubectl", "Apply")["fieldsV1"];
    assert_eq!(kubectl["f:spec"], json!({"f:paused": {}}));
    // The loser keeps its time: only its own writes move it.
    assert_eq!(entry(&forced, "kubectl", "Apply")["time"], T1);

    // Having lost replicas, kubectl reapplying its old config conflicts the other way round.
    let back = conflicts(
        &stored(forced),
        &deployment(json!({"replicas": 2, "paused": false})),
        "kubectl",
    );
    assert_eq!(
        back,
        [Conflict {
            manager: "autoscaler".into(),
            field: ".spec.replicas".into()
        }]
    );
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let live = stored(applied(
        None,
        &deployment(json!({"replicas": 2, "paused": false})),
        "a",
        T1,
    ));
    let config = deployment(json!({"replicas": 3, "paused": true}));
    let found = conflicts(&live, &config, "b");
    assert_eq!(found.len(), 2);
    let message = ApplyError::Conflict(found).to_string();
    assert_eq!(
        message,
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.paused\n- .spec.replicas"
    );
}

#[test]
fn same_value_is_shared_ownership() {
    let live = stored(applied(
        None,
        &config_map(json!({"a": "1", "b": "2"})),
        "one",
        T1,
    ));
    let shared = applied(Some(&live), &config_map(json!({"a": "1"})), "two", T2);
    assert_eq!(
        without_managed_fields(&shared),
        without_managed_fields(&live)
    );
    assert_eq!(
        entry(&shared, "two", "Apply")["fieldsV1"],
        json!({"f:data": {"f:a": {}}})
    );
    assert_eq!(
        entry(&shared, "one", "Apply")["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );

    // "one" stops setting a: "two" still wants it, so it stays.
    let one_left = applied(
        Some(&stored(shared)),
        &config_map(json!({"b": "2"})),
        "one",
        T3,
    );
    assert_eq!(one_left["data"], json!({"a": "1", "b": "2"}));
    // Then "two" stops too, and a goes.
    let empty = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}});
    let both_left = applied(Some(&stored(one_left)), &empty, "two", T4);
    assert_eq!(both_left["data"], json!({"b": "2"}));
    assert_eq!(managers(&both_left), ["one/Apply"]);
}

#[test]
fn record_update_then_apply_conflict() {
    let created = record_update(
        None,
        stored(deployment(json!({"replicas": 1}))),
        "kubectl-create",
        None,
        T1,
    );
    let create_entry = entry(&created, "kubectl-create", "Update");
    assert_eq!(
        create_entry["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}}})
    );
    assert_eq!(create_entry["apiVersion"], "apps/v1");
    assert_eq!(create_entry["time"], T1);

    let mut edited = created.clone();
    edited["spec"]["replicas"] = json!(4);
    let edited = record_update(Some(&created), edited, "kubectl-edit", None, T2);
    assert_eq!(
        entry(&edited, "kubectl-edit", "Update")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        entry(&edited, "kubectl-create", "Update")["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:app": {}}}})
    );

    let found = conflicts(&edited, &deployment(json!({"replicas": 2})), "kubectl");
    assert_eq!(
        found,
        [Conflict {
            manager: "kubectl-edit".into(),
            field: ".spec.replicas".into()
        }]
    );
    // Agreeing with the edit is fine, and shares the fields.
    let agreed = applied(
        Some(&edited),
        &deployment(json!({"replicas": 4})),
        "kubectl",
        T3,
    );
    assert_eq!(
        managers(&agreed),
        [
            "kubectl/Apply",
            "kubectl-create/Update",
            "kubectl-edit/Update"
        ]
    );
}

#[test]
fn record_update_without_changes_is_identity() {
    let created = record_update(
        None,
        stored(config_map(json!({"a": "1"}))),
        "creator",
        None,
        T1,
    );
    let again = record_update(Some(&created), created.clone(), "creator", None, T2);
    assert_eq!(again, created);
    let other = record_update(Some(&created), created.clone(), "someone", None, T2);
    assert_eq!(other, created);
}

#[test]
fn record_update_merges_into_the_managers_entry() {
    let created = record_update(
        None,
        stored(config_map(json!({"a": "1"}))),
        "writer",
        None,
        T1,
    );
    let mut changed = created.clone();
    changed["data"]["b"] = json!("2");
    let updated = record_update(Some(&created), changed, "writer", None, T2);
    let writer = entry(&updated, "writer", "Update");
    assert_eq!(
        writer["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );
    assert_eq!(writer["time"], T2);
    assert_eq!(managers(&updated), ["writer/Update"]);
}

#[test]
fn record_update_drops_removed_fields_and_empty_entries() {
    let created = record_update(
        None,
        stored(config_map(json!({"a": "1"}))),
        "creator",
        None,
        T1,
    );
    let mut changed = created.clone();
    changed["data"] = json!({"b": "2"});
    let updated = record_update(Some(&created), changed, "editor", None, T2);
    assert_eq!(managers(&updated), ["editor/Update"]);
    assert_eq!(
        entry(&updated, "editor", "Update")["fieldsV1"],
        json!({"f:data": {"f:b": {}}})
    );
}

#[test]
fn record_update_of_a_subresource() {
    let created = record_update(
        None,
        stored(deployment(json!({"replicas": 1}))),
        "creator",
        None,
        T1,
    );
    let mut status = created.clone();
    status["status"] =
        json!({"readyReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]});
    // A status write may not rewrite managedFields, whatever it sends.
    status["metadata"]["managedFields"] = json!([]);
    let updated = record_update(Some(&created), status, "controller", Some("status"), T2);
    let controller = entry(&updated, "controller", "Update");
    assert_eq!(controller["subresource"], "status");
    assert_eq!(
        controller["fieldsV1"],
        json!({"f:status": {
            "f:conditions": {"k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}},
            "f:readyReplicas": {}
        }})
    );
    assert_eq!(managers(&updated), ["creator/Update", "controller/Update"]);
}

#[test]
fn record_update_uses_managed_fields_sent_by_the_client() {
    let created = record_update(
        None,
        stored(config_map(json!({"a": "1"}))),
        "creator",
        None,
        T1,
    );
    let mut replaced = created.clone();
    replaced["metadata"]["managedFields"] = json!([{
        "manager": "restored", "operation": "Apply", "apiVersion": "v1", "time": T1,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}
    }]);
    let updated = record_update(Some(&created), replaced, "kubectl-replace", None, T2);
    assert_eq!(managers(&updated), ["restored/Apply"]);
}

#[test]
fn apply_to_an_untracked_object_conflicts_with_before_first_apply() {
    let live = stored(config_map(json!({"a": "1"})));
    let found = conflicts(&live, &config_map(json!({"a": "2"})), "kubectl");
    assert_eq!(
        found,
        [Conflict {
            manager: "before-first-apply".into(),
            field: ".data.a".into()
        }]
    );
    let same = applied(Some(&live), &config_map(json!({"a": "1"})), "kubectl", T1);
    assert_eq!(
        managers(&same),
        ["kubectl/Apply", "before-first-apply/Update"]
    );
}

#[test]
fn keyed_items_owned_by_others_survive() {
    let mine = deployment(
        json!({"template": {"spec": {"containers": [{"name": "web", "image": "nginx"}, {"name": "old", "image": "x"}]}}}),
    );
    let live = stored(applied(None, &mine, "kubectl", T1));
    let sidecar = deployment(
        json!({"template": {"spec": {"containers": [{"name": "mesh", "image": "envoy"}]}}}),
    );
    let live = stored(applied(Some(&live), &sidecar, "injector", T2));
    let containers = &live["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(3));

    let smaller = deployment(
        json!({"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}),
    );
    let after = applied(Some(&live), &smaller, "kubectl", T3);
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "image": "nginx:2"}, {"name": "mesh", "image": "envoy"}])
    );
}

#[test]
fn a_keyed_item_keeps_what_others_own_in_it() {
    let mine = deployment(
        json!({"template": {"spec": {"containers": [{"name": "web", "image": "nginx", "args": ["a"]}]}}}),
    );
    let live = stored(applied(None, &mine, "kubectl", T1));
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": "1"}});
    let live = record_update(Some(&live), edited, "kubectl-edit", None, T2);
    let after = applied(Some(&live), &deployment(json!({})), "kubectl", T3);
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"],
        json!([{"name": "web", "resources": {"limits": {"cpu": "1"}}}])
    );
}

#[test]
fn finalizers_are_owned_one_by_one() {
    let mut config = config_map(json!({}));
    config["metadata"]["finalizers"] = json!(["a.example/x"]);
    let live = stored(applied(None, &config, "one", T1));
    let mut other = config_map(json!({}));
    other["metadata"]["finalizers"] = json!(["b.example/y"]);
    let live = stored(applied(Some(&live), &other, "two", T2));
    assert_eq!(
        live["metadata"]["finalizers"],
        json!(["a.example/x", "b.example/y"])
    );
    assert_eq!(
        entry(&live, "two", "Apply")["fieldsV1"]["f:metadata"],
        json!({"f:finalizers": {"v:\"b.example/y\"": {}}})
    );
    let without = applied(Some(&live), &config_map(json!({})), "one", T3);
    assert_eq!(without["metadata"]["finalizers"], json!(["b.example/y"]));
}

#[test]
fn service_ports_are_keyed_by_port() {
    let service = |ports: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": ports}});
    let live = stored(applied(
        None,
        &service(json!([{"port": 80, "targetPort": 8080}])),
        "one",
        T1,
    ));
    let fields = &entry(&live, "one", "Apply")["fieldsV1"];
    assert_eq!(
        fields["f:spec"]["f:ports"],
        json!({"k:{\"port\":80}": {".": {}, "f:port": {}, "f:targetPort": {}}})
    );
    let both = applied(
        Some(&live),
        &service(json!([{"port": 443, "targetPort": 8443}])),
        "two",
        T2,
    );
    assert_eq!(
        both["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}])
    );
}

#[test]
fn nulls_in_the_configuration_are_ignored() {
    let live = stored(applied(None, &config_map(json!({"a": "1"})), "one", T1));
    let mut config = config_map(json!({"a": "1", "b": null}));
    config["metadata"]["labels"] = Value::Null;
    let again = applied(Some(&live), &config, "one", T2);
    assert_eq!(again, live);
}

#[test]
fn invalid_configurations() {
    let invalid = |config: Value| match server_side_apply(None, &config, "m", false, T1) {
        Err(ApplyError::Invalid(message)) => message,
        other => panic!("expected invalid, got {other:?}"),
    };
    assert!(invalid(json!([])).contains("JSON object"));
    assert!(invalid(json!({"kind": "Pod", "metadata": {"name": "p"}})).contains("apiVersion"));
    assert!(invalid(json!({"apiVersion": "v1", "metadata": {"name": "p"}})).contains("kind"));
    assert!(
        invalid(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}))
            .contains("metadata.name")
    );
    assert!(invalid(json!({"apiVersion": "v1", "kind": "Pod"})).contains("metadata.name"));
    let mut with_managed = config_map(json!({}));
    with_managed["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    assert!(invalid(with_managed).contains("managedFields"));
    let pod = |containers: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}});
    assert!(invalid(pod(json!([{"image": "x"}]))).contains("name"));
    assert!(invalid(pod(json!([{"name": "a"}, {"name": "a"}]))).contains("duplicate"));
    let live = json!("not an object");
    let result = server_side_apply(Some(&live), &config_map(json!({})), "m", false, T1);
    assert!(matches!(result, Err(ApplyError::Invalid(_))));
}

#[test]
fn entries_are_ordered_apply_first_then_by_time() {
    let live = record_update(
        None,
        stored(config_map(json!({"a": "1"}))),
        "creator",
        None,
        T1,
    );
    let live = stored(applied(
        Some(&live),
        &config_map(json!({"b": "2"})),
        "late",
        T3,
    ));
    let live = stored(applied(
        Some(&live),
        &config_map(json!({"c": "3"})),
        "early",
        T2,
    ));
    assert_eq!(
        managers(&live),
        ["early/Apply", "late/Apply", "creator/Update"]
    );
}

#[test]
fn a_manager_does_not_conflict_with_itself() {
    let live = record_update(
        None,
        stored(config_map(json!({"a": "1"}))),
        "kubectl",
        None,
        T1,
    );
    let applied = applied(Some(&live), &config_map(json!({"a": "2"})), "kubectl", T2);
    assert_eq!(applied["data"]["a"], "2");
    assert_eq!(managers(&applied), ["kubectl/Apply"]);
}

/// A configuration with the required identity, so property tests reach past validation.
fn with_identity(mut config: Value) -> Value {
    if let Some(fields) = config.as_object_mut() {
        fields.insert("apiVersion".into(), json!("v1"));
        fields.insert("kind".into(), json!("ConfigMap"));
        let metadata = fields.entry("metadata").or_insert_with(|| json!({}));
        if !metadata.is_object() {
            *metadata = json!({});
        }
        metadata["name"] = json!("x");
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.remove("managedFields");
        }
    }
    config
}

proptest! {
    #[test]
    fn apply_never_panics(
        live in crate::patch::arbitrary::json(4),
        config in crate::patch::arbitrary::json(4),
        force in any::<bool>(),
    ) {
        let _ = server_side_apply(Some(&live), &config, "m", force, T1);
        let _ = server_side_apply(None, &config, "m", force, T1);
        let _ = server_side_apply(Some(&live), &with_identity(config.clone()), "m", force, T1);
        let _ = record_update(Some(&live), config.clone(), "m", None, T1);
        let _ = record_update(None, live, "m", Some("status"), T1);
    }

    #[test]
    fn apply_is_idempotent(
        live in crate::patch::arbitrary::object(3),
        config in crate::patch::arbitrary::object(3),
    ) {
        let config = with_identity(config);
        if let Ok(first) = server_side_apply(Some(&live), &config, "m", true, T1) {
            let second = server_side_apply(Some(&first), &config, "m", false, T2);
            prop_assert_eq!(second, Ok(first));
        }
    }

    #[test]
    fn record_update_is_idempotent(
        old in crate::patch::arbitrary::object(3),
        new in crate::patch::arbitrary::object(3),
    ) {
        let first = record_update(Some(&old), new, "m", None, T1);
        let second = record_update(Some(&first), first.clone(), "m", None, T2);
        prop_assert_eq!(second, first);
    }
}
