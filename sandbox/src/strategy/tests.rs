//! The strategies as functions: what each path keeps, resets and refuses.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::registry::{Registry, Resource, resources_of_crd};

fn res(group: &str, plural: &str) -> Arc<Resource> {
    Registry::new()
        .find_any_version(group, plural)
        .expect("a built-in resource")
}

fn custom(status: bool) -> Arc<Resource> {
    let mut version = json!({"name": "v1", "served": true, "storage": true});
    if status {
        version["subresources"] = json!({"status": {}});
    }
    let crd = json!({"spec": {
        "group": "kipper.run", "scope": "Namespaced",
        "names": {"plural": "apps", "kind": "App"},
        "versions": [version],
    }});
    resources_of_crd(&crd).remove(0)
}

fn stored(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "X",
        "metadata": {"name": "x", "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z",
                     "resourceVersion": "7", "generation": 3, "labels": {"a": "1"}},
        "spec": spec,
        "status": status,
    })
}

#[test]
fn namespace_create_appends_the_kubernetes_finalizer() {
    let ns = res("", "namespaces");
    let mut obj = json!({"metadata": {"name": "n"}});
    prepare_for_create(&ns, &mut obj);
    assert_eq!(obj["spec"]["finalizers"], json!(["kubernetes"]));
    let mut obj = json!({"metadata": {"name": "n"}, "spec": {"finalizers": ["example.com/x"]}});
    prepare_for_create(&ns, &mut obj);
    assert_eq!(
        obj["spec"]["finalizers"],
        json!(["example.com/x", "kubernetes"])
    );
}

#[test]
fn namespace_main_update_keeps_finalizers_and_status() {
    let ns = res("", "namespaces");
    let old = stored(
        json!({"finalizers": ["kubernetes"]}),
        json!({"phase": "Active"}),
    );
    let new = json!({"metadata": {"name": "x", "labels": {"b": "2"}}});
    let new = prepare_for_update(&ns, Part::Main, &old, new);
    assert_eq!(new["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(new["status"]["phase"], "Active");
    assert_eq!(new["metadata"]["labels"], json!({"b": "2"}));
}

#[test]
fn namespace_finalize_changes_only_the_finalizers() {
    let ns = res("", "namespaces");
    let old = stored(
        json!({"finalizers": ["kubernetes"]}),
        json!({"phase": "Terminating"}),
    );
    let new = json!({"metadata": {"name": "x", "labels": {}}, "spec": {"finalizers": []},
                     "status": {"phase": "Active"}});
    let new = prepare_for_update(&ns, Part::Finalize, &old, new);
    assert_eq!(new["spec"]["finalizers"], json!([]));
    assert_eq!(new["status"]["phase"], "Terminating");
    assert_eq!(new["metadata"]["labels"], json!({"a": "1"}));
}

#[test]
fn status_write_resets_spec_and_per_kind_metadata() {
    let old = stored(json!({"replicas": 1}), json!({"replicas": 0}));
    let new = json!({"metadata": {"name": "x", "labels": {"b": "2"}, "annotations": {"n": "1"},
                                  "ownerReferences": [{"uid": "o"}]},
                     "spec": {"replicas": 5}, "status": {"replicas": 1}});
    let deployment =
        prepare_for_update(&res("apps", "deployments"), Part::Status, &old, new.clone());
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["status"]["replicas"], 1);
    assert_eq!(deployment["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(deployment["metadata"]["annotations"], json!({"n": "1"}));

    let pod = prepare_for_update(&res("", "pods"), Part::Status, &old, new.clone());
    assert_eq!(pod["metadata"]["labels"], json!({"b": "2"}));
    assert!(pod["metadata"].get("ownerReferences").is_none());

    let cr = prepare_for_update(&custom(true), Part::Status, &old, new);
    assert_eq!(cr["metadata"]["labels"], json!({"a": "1"}));
    assert!(cr["metadata"].get("annotations").is_none());
    assert_eq!(cr["status"]["replicas"], 1);
    assert_eq!(cr["spec"]["replicas"], 1);
}

#[test]
fn main_write_keeps_status_only_where_there_is_a_status_path() {
    let old = stored(json!({"x": 1}), json!({"ready": true}));
    let new = json!({"metadata": {"name": "x"}, "spec": {"x": 2}, "status": {"ready": false}});
    let kept = prepare_for_update(&res("apps", "deployments"), Part::Main, &old, new.clone());
    assert_eq!(kept["status"]["ready"], true);
    assert_eq!(kept["spec"]["x"], 2);
    let plain = prepare_for_update(&custom(false), Part::Main, &old, new);
    assert_eq!(plain["status"]["ready"], false);
}

#[test]
fn create_clears_status_but_a_node_registers_with_one() {
    let mut deployment = json!({"metadata": {"name": "d"}, "status": {"replicas": 9}});
    prepare_for_create(&res("apps", "deployments"), &mut deployment);
    assert!(deployment.get("status").is_none());
    let mut node = json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "2"}}});
    prepare_for_create(&res("", "nodes"), &mut node);
    assert_eq!(node["status"]["capacity"]["cpu"], "2");
}

#[test]
fn server_metadata_is_set_on_create_whatever_the_client_sent() {
    let mut obj = json!({"metadata": {"name": "c", "uid": "mine", "creationTimestamp": "1999-01-01T00:00:00Z",
        "resourceVersion": "5", "generation": 9, "deletionTimestamp": "2000-01-01T00:00:00Z",
        "deletionGracePeriodSeconds": 3, "selfLink": "/x"}});
    prepare_for_create(&res("", "configmaps"), &mut obj);
    let meta = obj["metadata"].as_object().unwrap();
    assert_ne!(meta["uid"], "mine");
    assert_ne!(meta["creationTimestamp"], "1999-01-01T00:00:00Z");
    for gone in [
        "resourceVersion",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        assert!(!meta.contains_key(gone), "{gone} kept");
    }
    let mut deployment = json!({"metadata": {"name": "d", "generation": 9}});
    prepare_for_create(&res("apps", "deployments"), &mut deployment);
    assert_eq!(deployment["metadata"]["generation"], 1);
}

#[test]
fn metadata_update_keeps_server_fields_and_refuses_changes() {
    let old = stored(json!({}), json!({}));
    let mut new = json!({"metadata": {"name": "x", "creationTimestamp": "1999-01-01T00:00:00Z", "selfLink": "/x"}});
    metadata::on_update(&old, &mut new).expect("leaving them out is fine");
    assert_eq!(new["metadata"]["uid"], "u1");
    assert_eq!(new["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
    assert!(new["metadata"].get("selfLink").is_none());

    let mut other = json!({"metadata": {"name": "x", "uid": "u2", "deletionTimestamp": "2024-01-01T00:00:00Z"}});
    let refused = metadata::on_update(&old, &mut other).unwrap_err();
    let fields: Vec<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["metadata.uid", "metadata.deletionTimestamp"]);

    let mut deleting = old.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2024-01-02T00:00:00Z");
    let mut more = deleting.clone();
    more["metadata"]["finalizers"] = json!(["late"]);
    let refused = metadata::on_update(&deleting, &mut more).unwrap_err();
    assert_eq!(refused[0].0, "metadata.finalizers");
}

#[test]
fn generation_moves_on_tracked_spec_changes_only() {
    let deployments = res("apps", "deployments");
    let old = stored(json!({"replicas": 1}), json!({}));
    let mut same = old.clone();
    same["metadata"]["generation"] = json!(99);
    same["metadata"]["labels"] = json!({"b": "2"});
    update_generation(&deployments, Part::Main, &old, &mut same);
    assert_eq!(
        same["metadata"]["generation"], 3,
        "a client value is ignored"
    );
    let mut annotated = old.clone();
    annotated["metadata"]["annotations"] = json!({"n": "1"});
    update_generation(&deployments, Part::Main, &old, &mut annotated);
    assert_eq!(annotated["metadata"]["generation"], 4);
    let mut through_status = old.clone();
    through_status["metadata"]["annotations"] = json!({"n": "1"});
    update_generation(&deployments, Part::Status, &old, &mut through_status);
    assert_eq!(through_status["metadata"]["generation"], 3);
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(2);
    update_generation(&res("apps", "replicasets"), Part::Main, &old, &mut scaled);
    assert_eq!(scaled["metadata"]["generation"], 4);

    let mut untracked = old.clone();
    untracked["metadata"]["generation"] = json!(99);
    untracked["data"] = json!({"k": "v"});
    let mut cm_old = old.clone();
    cm_old["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("generation");
    update_generation(&res("", "configmaps"), Part::Main, &cm_old, &mut untracked);
    assert!(untracked["metadata"].get("generation").is_none());
}

#[test]
fn apply_neither_merges_nor_owns_reset_fields() {
    let mut config =
        json!({"metadata": {"name": "n"}, "spec": {"finalizers": []}, "status": {"phase": "x"}});
    strip_reset_fields(&res("", "namespaces"), Part::Main, &mut config);
    assert_eq!(config, json!({"metadata": {"name": "n"}, "spec": {}}));
    let mut config =
        json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}, "status": {"replicas": 1}});
    strip_reset_fields(&res("apps", "deployments"), Part::Status, &mut config);
    assert_eq!(
        config,
        json!({"metadata": {"name": "d"}, "status": {"replicas": 1}})
    );
}

#[test]
fn immutable_fields_are_refused() {
    let check = |group: &str, plural: &str, old: Value, new: Value| {
        let fields: Vec<String> = immutable::check(
            &res(group, plural),
            &json!({"spec": old}),
            &json!({"spec": new}),
        )
        .into_iter()
        .map(|(f, _)| f)
        .collect();
        fields
    };
    let sel = |app: &str| json!({"selector": {"matchLabels": {"app": app}}, "replicas": 1});
    assert_eq!(
        check("apps", "deployments", sel("a"), sel("b")),
        ["spec.selector"]
    );
    let mut scaled = sel("a");
    scaled["replicas"] = json!(3);
    assert!(check("apps", "deployments", sel("a"), scaled).is_empty());
    assert_eq!(
        check(
            "",
            "services",
            json!({"clusterIP": "10.43.0.10"}),
            json!({"clusterIP": "10.43.0.11"})
        ),
        ["spec.clusterIPs[0]"]
    );
    let pod = |image: &str, policy: &str| json!({"containers": [{"name": "c", "image": image}], "restartPolicy": policy});
    assert!(check("", "pods", pod("a:1", "Always"), pod("a:2", "Always")).is_empty());
    assert_eq!(
        check("", "pods", pod("a:1", "Always"), pod("a:1", "Never")),
        ["spec"]
    );
    assert_eq!(
        check(
            "batch",
            "jobs",
            json!({"template": {"spec": {"restartPolicy": "Never"}}}),
            json!({"template": {"spec": {"restartPolicy": "OnFailure"}}})
        ),
        ["spec.template"]
    );
    let claim = |size: &str, mode: &str| json!({"accessModes": [mode], "resources": {"requests": {"storage": size}}});
    assert!(
        check(
            "",
            "persistentvolumeclaims",
            claim("1Gi", "ReadWriteOnce"),
            claim("2Gi", "ReadWriteOnce")
        )
        .is_empty()
    );
    assert_eq!(
        check(
            "",
            "persistentvolumeclaims",
            claim("1Gi", "ReadWriteOnce"),
            claim("1Gi", "ReadWriteMany")
        ),
        ["spec"]
    );
}
