//! The controllers of the platform kinds against an in-memory sandbox: DaemonSets,
//! ReplicationControllers, EndpointSlices, provisioned volumes, disruption budgets and
//! APIServices. CronJobs are tested on a driven clock beside their controller.

use serde_json::{Value, json};

use super::{create, delete, get, list, modify, sandbox, wait_for};
use crate::controllers::common::pod_ready;
use crate::ops::Propagation;
use crate::store::State;

fn template(app: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]},
    })
}

fn live_pods(s: &State, app: &str) -> Vec<Value> {
    list(s, "/pods", "default")
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["app"] == app && p["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|p| (*p).clone())
        .collect()
}

#[tokio::test]
async fn a_daemon_set_runs_one_pod_on_the_node_and_rolls_out() {
    let store = sandbox().await;
    let ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent", "a:1")},
    });
    create(&store, "apps", "daemonsets", "default", ds).await;
    let rolled_out = |s: &State, image: &str| {
        let ds = get(s, "apps/daemonsets", "default", "agent").unwrap();
        let st = &ds["status"];
        let pods = live_pods(s, "agent");
        st["desiredNumberScheduled"] == 1
            && st["updatedNumberScheduled"] == 1
            && st["numberAvailable"] == 1
            && st["observedGeneration"] == ds["metadata"]["generation"]
            && pods.len() == 1
            && pods[0]["spec"]["containers"][0]["image"] == image
            && pod_ready(&pods[0])
    };
    wait_for(&store, "the daemon pod", |s| rolled_out(s, "a:1")).await;
    {
        let s = store.read();
        let pod = &live_pods(&s, "agent")[0];
        assert_eq!(pod["spec"]["nodeName"], "sandbox");
        assert_eq!(
            pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0],
            "sandbox"
        );
        assert!(pod["metadata"]["labels"]["controller-revision-hash"].is_string());
    }
    modify(&store, "apps", "daemonsets", "default", "agent", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("a:2");
    })
    .await;
    wait_for(&store, "the new template rolled out", |s| {
        rolled_out(s, "a:2")
    })
    .await;
    // A node selector no node matches: no pod wanted.
    modify(&store, "apps", "daemonsets", "default", "agent", |d| {
        d["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    })
    .await;
    wait_for(&store, "the pod gone", |s| {
        let ds = get(s, "apps/daemonsets", "default", "agent").unwrap();
        live_pods(s, "agent").is_empty() && ds["status"]["desiredNumberScheduled"] == 0
    })
    .await;
}

#[tokio::test]
async fn a_replication_controller_keeps_its_replicas_and_slices_follow_endpoints() {
    let store = sandbox().await;
    let rc = json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "template": template("web", "nginx")},
    });
    create(&store, "", "replicationcontrollers", "default", rc).await;
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
    });
    create(&store, "", "services", "default", svc).await;
    let slice = |s: &State| {
        list(s, "discovery.k8s.io/endpointslices", "default")
            .into_iter()
            .find(|e| e["metadata"]["labels"]["kubernetes.io/service-name"] == "web")
    };
    let ready_endpoints = |s: &State, n: usize| {
        slice(s).is_some_and(|e| {
            let endpoints = e["endpoints"].as_array().cloned().unwrap_or_default();
            endpoints.len() == n && endpoints.iter().all(|e| e["conditions"]["ready"] == true)
        })
    };
    wait_for(&store, "two replicas behind the slice", |s| {
        let rc = get(s, "/replicationcontrollers", "default", "web").unwrap();
        rc["status"]["readyReplicas"] == 2 && ready_endpoints(s, 2)
    })
    .await;
    {
        let s = store.read();
        let e = slice(&s).unwrap();
        assert_eq!(e["addressType"], "IPv4");
        assert_eq!(
            e["ports"],
            json!([{"name": "web", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(e["metadata"]["labels"]["tier"], "front");
        assert_eq!(
            e["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(e["metadata"]["ownerReferences"][0]["name"], "web");
        assert!(
            e["metadata"]["generation"].as_i64() >= Some(1),
            "slices track generation"
        );
    }
    modify(
        &store,
        "",
        "replicationcontrollers",
        "default",
        "web",
        |rc| {
            rc["spec"]["replicas"] = json!(3);
        },
    )
    .await;
    wait_for(&store, "three endpoints", |s| ready_endpoints(s, 3)).await;
    delete(
        &store,
        "",
        "services",
        "default",
        "web",
        Propagation::Background,
    )
    .await;
    wait_for(&store, "the slice gone with its service", |s| {
        slice(s).is_none()
    })
    .await;
}

#[tokio::test]
async fn claims_get_volumes_that_follow_their_reclaim_policy() {
    let store = sandbox().await;
    let claim = |name: &str, class: Option<&str>| {
        let mut c = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        });
        if let Some(class) = class {
            c["spec"]["storageClassName"] = json!(class);
        }
        c
    };
    create(
        &store,
        "",
        "persistentvolumeclaims",
        "default",
        claim("data", None),
    )
    .await;
    create(
        &store,
        "",
        "persistentvolumeclaims",
        "default",
        claim("kept", Some("keep")),
    )
    .await;
    let bound = |s: &State, name: &str| {
        get(s, "/persistentvolumeclaims", "default", name)
            .is_some_and(|c| c["status"]["phase"] == "Bound")
    };
    wait_for(&store, "the default class's claim bound", |s| {
        bound(s, "data")
    })
    .await;
    let volume = {
        let s = store.read();
        let c = get(&s, "/persistentvolumeclaims", "default", "data").unwrap();
        assert_eq!(
            c["spec"]["storageClassName"], "local-path",
            "the default class is admitted"
        );
        let name = c["spec"]["volumeName"].as_str().unwrap().to_string();
        let pv = get(&s, "/persistentvolumes", "", &name).unwrap();
        assert_eq!(pv["status"]["phase"], "Bound");
        assert_eq!(pv["spec"]["claimRef"]["uid"], c["metadata"]["uid"]);
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert!(!bound(&s, "kept"), "no class keep yet");
        name
    };
    let class = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "keep"}, "provisioner": "example.com/keep", "reclaimPolicy": "Retain",
    });
    create(&store, "storage.k8s.io", "storageclasses", "", class).await;
    wait_for(&store, "the claim bound once its class exists", |s| {
        bound(s, "kept")
    })
    .await;
    let kept = store
        .read()
        .get(&crate::store::ObjKey::new(
            "/persistentvolumeclaims",
            "default",
            "kept",
        ))
        .unwrap()["spec"]["volumeName"]
        .as_str()
        .unwrap()
        .to_string();
    delete(
        &store,
        "",
        "persistentvolumeclaims",
        "default",
        "data",
        Propagation::Background,
    )
    .await;
    delete(
        &store,
        "",
        "persistentvolumeclaims",
        "default",
        "kept",
        Propagation::Background,
    )
    .await;
    wait_for(&store, "Delete removes, Retain releases", |s| {
        get(s, "/persistentvolumes", "", &volume).is_none()
            && get(s, "/persistentvolumes", "", &kept)
                .is_some_and(|v| v["status"]["phase"] == "Released")
    })
    .await;
}

#[tokio::test]
async fn budgets_count_healthy_pods_and_api_services_follow_crds() {
    let store = sandbox().await;
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "api"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}}, "template": template("api", "nginx")},
    });
    create(&store, "apps", "replicasets", "default", rs).await;
    let pdb = json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "api"},
        "spec": {"maxUnavailable": "25%", "selector": {"matchLabels": {"app": "api"}}},
    });
    create(&store, "policy", "poddisruptionbudgets", "default", pdb).await;
    wait_for(&store, "the budget's status", |s| {
        let st = get(s, "policy/poddisruptionbudgets", "default", "api").unwrap()["status"].clone();
        st["expectedPods"] == 4
            && st["currentHealthy"] == 4
            && st["desiredHealthy"] == 3
            && st["disruptionsAllowed"] == 1
    })
    .await;

    assert!(
        store
            .read()
            .get(&crate::store::ObjKey::new(
                "apiregistration.k8s.io/apiservices",
                "",
                "v1.apps"
            ))
            .is_some()
    );
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]},
    });
    create(
        &store,
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        crd,
    )
    .await;
    let service = |s: &State| {
        get(
            s,
            "apiregistration.k8s.io/apiservices",
            "",
            "v1.example.com",
        )
    };
    wait_for(&store, "the CRD's APIService", |s| {
        service(s).is_some_and(|a| a["status"]["conditions"][0]["type"] == "Available")
    })
    .await;
    delete(
        &store,
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        "widgets.example.com",
        Propagation::Background,
    )
    .await;
    wait_for(&store, "the APIService gone with its CRD", |s| {
        service(s).is_none()
    })
    .await;
}
