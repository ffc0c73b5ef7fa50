//! End-to-end tests of the controllers against an in-memory sandbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{condition_true, pod_ready};
use crate::ops::{self, DeleteOptions, Part, Propagation, WriteKind};
use crate::server::Sandbox;
use crate::store::{ObjKey, State, Store};

mod platform;

const LIMIT: Duration = Duration::from_secs(10);

async fn sandbox() -> Store {
    Sandbox::in_memory().await.expect("sandbox").store
}

fn how() -> WriteKind<'static> {
    WriteKind::Update {
        manager: "test",
        part: Part::Main,
    }
}

async fn create(store: &Store, group: &str, plural: &str, ns: &str, obj: Value) -> Arc<Value> {
    let (group, plural, ns) = (group.to_string(), plural.to_string(), ns.to_string());
    store
        .write(move |tx| {
            let res = tx
                .state()
                .registry
                .find_any_version(&group, &plural)
                .expect("resource");
            let mut obj = obj;
            ops::check_type(&res, &mut obj)?;
            ops::create(tx, &res, &ns, obj, how())
        })
        .await
        .expect("create")
}

/// Read-modify-write of the main resource.
async fn modify(
    store: &Store,
    group: &str,
    plural: &str,
    ns: &str,
    name: &str,
    f: impl FnOnce(&mut Value) + Send + 'static,
) {
    let (group, plural, ns, name) = (
        group.to_string(),
        plural.to_string(),
        ns.to_string(),
        name.to_string(),
    );
    store
        .write(move |tx| {
            let res = tx
                .state()
                .registry
                .find_any_version(&group, &plural)
                .expect("resource");
            let key = ops::key(&res, &ns, &name);
            let old = tx.get(&key).expect("object to modify");
            let mut new = (*old).clone();
            f(&mut new);
            ops::finish_write(tx, &res, key, old, new, how())
        })
        .await
        .expect("modify");
}

async fn delete(
    store: &Store,
    group: &str,
    plural: &str,
    ns: &str,
    name: &str,
    propagation: Propagation,
) {
    let (group, plural, ns, name) = (
        group.to_string(),
        plural.to_string(),
        ns.to_string(),
        name.to_string(),
    );
    store
        .write(move |tx| {
            let res = tx
                .state()
                .registry
                .find_any_version(&group, &plural)
                .expect("resource");
            let opts = DeleteOptions {
                propagation: Some(propagation),
                ..Default::default()
            };
            ops::delete(tx, &res, &ns, &name, &opts)
        })
        .await
        .expect("delete");
}

/// Polls until `check` holds, failing after [`LIMIT`] with `what`.
async fn wait_for(store: &Store, what: &str, check: impl Fn(&State) -> bool) {
    let start = Instant::now();
    loop {
        if check(&store.read()) {
            return;
        }
        if start.elapsed() > LIMIT {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn get(state: &State, res: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
    state.get(&ObjKey::new(res, ns, name))
}

fn list(state: &State, res: &str, ns: &str) -> Vec<Arc<Value>> {
    state.list(res, Some(ns)).map(|(_, v)| v.clone()).collect()
}

fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]},
            },
        },
    })
}

fn deploy_done(state: &State, ns: &str, name: &str, replicas: i64) -> bool {
    let Some(d) = get(state, "apps/deployments", ns, name) else {
        return false;
    };
    let s = &d["status"];
    let n = |f: &str| s[f].as_i64().unwrap_or(0);
    s["observedGeneration"] == d["metadata"]["generation"]
        && n("replicas") == replicas
        && n("updatedReplicas") == replicas
        && n("readyReplicas") == replicas
        && n("availableReplicas") == replicas
        && condition_true(&d, "Available")
        && s["conditions"][1]["reason"] == "NewReplicaSetAvailable"
}

fn owned_by(obj: &Value, owner: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner["metadata"]["uid"]))
}

#[tokio::test]
async fn deployment_creates_replicaset_and_ready_pods() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 3, "nginx:1"),
    )
    .await;
    wait_for(&store, "deployment available", |s| {
        deploy_done(s, "default", "web", 3)
    })
    .await;
    let state = store.read();
    let d = get(&state, "apps/deployments", "default", "web").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert!(d["status"].get("unavailableReplicas").is_none());
    let rss = list(&state, "apps/replicasets", "default");
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
        true
    );
    assert_eq!(rs["status"]["readyReplicas"], 3);
    let pods = list(&state, "/pods", "default");
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert!(owned_by(pod, rs));
        assert!(
            pod["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
        assert_eq!(pod["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(pod["spec"]["nodeName"], "sandbox");
        assert_eq!(pod["status"]["phase"], "Running");
        assert!(
            pod["status"]["podIP"]
                .as_str()
                .unwrap()
                .starts_with("10.42.")
        );
        assert_eq!(pod["status"]["hostIP"], "127.0.0.1");
        let c = &pod["status"]["containerStatuses"][0];
        assert_eq!(c["ready"], true);
        assert_eq!(c["imageID"], "sandbox://nginx:1");
        assert!(c["state"]["running"]["startedAt"].is_string());
        assert!(pod_ready(pod));
    }
}

#[tokio::test]
async fn template_change_rolls_out_a_new_replicaset() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 2, "nginx:1"),
    )
    .await;
    wait_for(&store, "first rollout", |s| {
        deploy_done(s, "default", "web", 2)
    })
    .await;
    modify(&store, "apps", "deployments", "default", "web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    })
    .await;
    wait_for(&store, "second rollout", |s| {
        deploy_done(s, "default", "web", 2)
            && list(s, "/pods", "default").len() == 2
            && list(s, "apps/replicasets", "default").len() == 2
    })
    .await;
    {
        let state = store.read();
        let d = get(&state, "apps/deployments", "default", "web").unwrap();
        assert_eq!(d["metadata"]["generation"], 2);
        assert_eq!(
            d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "2"
        );
        let rss = list(&state, "apps/replicasets", "default");
        let image = |rs: &Value| rs["spec"]["template"]["spec"]["containers"][0]["image"].clone();
        let new = rss.iter().find(|rs| image(rs) == "nginx:2").unwrap();
        let old = rss.iter().find(|rs| image(rs) == "nginx:1").unwrap();
        assert_eq!(
            new["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "2"
        );
        assert_eq!(
            old["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
        assert_eq!(new["spec"]["replicas"], 2);
        assert_eq!(old["spec"]["replicas"], 0);
        assert_eq!(old["status"]["replicas"], 0);
        for pod in list(&state, "/pods", "default") {
            assert!(owned_by(&pod, new));
        }
    }
    // Going back to the first template reuses its ReplicaSet with a new revision.
    modify(&store, "apps", "deployments", "default", "web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1");
    })
    .await;
    wait_for(&store, "rollback", |s| {
        deploy_done(s, "default", "web", 2)
            && get(s, "apps/deployments", "default", "web").unwrap()["metadata"]["annotations"]
                ["deployment.kubernetes.io/revision"]
                == "3"
            && list(s, "/pods", "default").len() == 2
    })
    .await;
    assert_eq!(list(&store.read(), "apps/replicasets", "default").len(), 2);
}

#[tokio::test]
async fn recreate_and_revision_history_limit() {
    let store = sandbox().await;
    let mut d = deployment("app", 1, "v0");
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    d["spec"]["revisionHistoryLimit"] = json!(1);
    create(&store, "apps", "deployments", "default", d).await;
    for v in 1..=3 {
        wait_for(&store, "rollout", |s| deploy_done(s, "default", "app", 1)).await;
        modify(&store, "apps", "deployments", "default", "app", move |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(format!("v{v}"));
        })
        .await;
    }
    wait_for(&store, "last rollout and cleanup", |s| {
        deploy_done(s, "default", "app", 1) && list(s, "apps/replicasets", "default").len() == 2
    })
    .await;
    let state = store.read();
    let mut revisions: Vec<String> = list(&state, "apps/replicasets", "default")
        .iter()
        .map(|rs| {
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    revisions.sort();
    assert_eq!(revisions, ["3", "4"]);
}

#[tokio::test]
async fn scale_to_zero_and_back() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 2, "nginx"),
    )
    .await;
    wait_for(&store, "rollout", |s| deploy_done(s, "default", "web", 2)).await;
    modify(&store, "apps", "deployments", "default", "web", |d| {
        d["spec"]["replicas"] = json!(0)
    })
    .await;
    wait_for(&store, "scaled to zero", |s| {
        list(s, "/pods", "default").is_empty() && deploy_done(s, "default", "web", 0)
    })
    .await;
    let d = get(&store.read(), "apps/deployments", "default", "web").unwrap();
    assert!(
        d["status"].get("replicas").is_none(),
        "zero fields are omitted: {}",
        d["status"]
    );
    modify(&store, "apps", "deployments", "default", "web", |d| {
        d["spec"]["replicas"] = json!(1)
    })
    .await;
    wait_for(&store, "scaled to one", |s| {
        deploy_done(s, "default", "web", 1)
    })
    .await;
    assert_eq!(list(&store.read(), "apps/replicasets", "default").len(), 1);
}

#[tokio::test]
async fn paused_deployment_does_not_roll_out() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 1, "a"),
    )
    .await;
    wait_for(&store, "rollout", |s| deploy_done(s, "default", "web", 1)).await;
    modify(&store, "apps", "deployments", "default", "web", |d| {
        d["spec"]["paused"] = json!(true);
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
    })
    .await;
    wait_for(&store, "paused condition", |s| {
        let d = get(s, "apps/deployments", "default", "web").unwrap();
        d["status"]["conditions"][1]["reason"] == "DeploymentPaused"
    })
    .await;
    assert_eq!(list(&store.read(), "apps/replicasets", "default").len(), 1);
    modify(&store, "apps", "deployments", "default", "web", |d| {
        d["spec"]["paused"] = json!(false)
    })
    .await;
    wait_for(&store, "resumed rollout", |s| {
        deploy_done(s, "default", "web", 1) && list(s, "apps/replicasets", "default").len() == 2
    })
    .await;
}

#[tokio::test]
async fn statefulset_pods_and_bound_claims() {
    let store = sandbox().await;
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "pg", "image": "postgres"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    });
    create(&store, "apps", "statefulsets", "default", sts).await;
    let ready = |s: &State, n: i64| {
        let sts = get(s, "apps/statefulsets", "default", "db").unwrap();
        let st = &sts["status"];
        st["readyReplicas"] == n
            && st["replicas"] == n
            && st["updatedReplicas"] == n
            && st["currentRevision"] == st["updateRevision"]
            && st["observedGeneration"] == sts["metadata"]["generation"]
    };
    wait_for(&store, "statefulset ready", |s| ready(s, 3)).await;
    {
        let state = store.read();
        let sts = get(&state, "apps/statefulsets", "default", "db").unwrap();
        for i in 0..3 {
            let pod = get(&state, "/pods", "default", &format!("db-{i}")).expect("ordinal pod");
            assert_eq!(
                pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
                format!("db-{i}")
            );
            assert_eq!(
                pod["metadata"]["labels"]["controller-revision-hash"],
                sts["status"]["updateRevision"]
            );
            assert_eq!(pod["spec"]["hostname"], format!("db-{i}"));
            assert_eq!(
                pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
                format!("data-db-{i}")
            );
            let pvc = get(
                &state,
                "/persistentvolumeclaims",
                "default",
                &format!("data-db-{i}"),
            )
            .expect("claim");
            assert_eq!(pvc["status"]["phase"], "Bound");
            assert_eq!(pvc["status"]["capacity"]["storage"], "1Gi");
            assert_eq!(pvc["spec"]["storageClassName"], "local-path");
            assert_eq!(
                pvc["spec"]["volumeName"],
                format!("pvc-{}", pvc["metadata"]["uid"].as_str().unwrap())
            );
            assert!(
                pvc["metadata"].get("ownerReferences").is_none(),
                "Retain: no owner"
            );
        }
    }
    // A template change replaces the pods; then scaling down removes the highest ordinals.
    modify(&store, "apps", "statefulsets", "default", "db", |s| {
        s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:17");
    })
    .await;
    wait_for(&store, "rolling update", |s| {
        ready(s, 3)
            && (0..3).all(|i| {
                get(s, "/pods", "default", &format!("db-{i}"))
                    .is_some_and(|p| p["spec"]["containers"][0]["image"] == "postgres:17")
            })
    })
    .await;
    modify(&store, "apps", "statefulsets", "default", "db", |s| {
        s["spec"]["replicas"] = json!(1)
    })
    .await;
    wait_for(&store, "scale down", |s| ready(s, 1)).await;
    let state = store.read();
    assert!(get(&state, "/pods", "default", "db-0").is_some());
    assert!(get(&state, "/pods", "default", "db-1").is_none());
    assert_eq!(
        list(&state, "/persistentvolumeclaims", "default").len(),
        3,
        "claims are retained"
    );
}

fn job(name: &str, completions: i64, fail: bool) -> Value {
    let mut j = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completions": completions,
            "backoffLimit": 1,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": "busybox"}]}},
        },
    });
    if fail {
        j["spec"]["template"]["metadata"]["annotations"][super::FAIL_ANNOTATION] = json!("true");
    }
    j
}

#[tokio::test]
async fn job_runs_to_completion() {
    let store = sandbox().await;
    create(&store, "batch", "jobs", "default", job("once", 2, false)).await;
    wait_for(&store, "job complete", |s| {
        get(s, "batch/jobs", "default", "once").is_some_and(|j| condition_true(&j, "Complete"))
    })
    .await;
    let state = store.read();
    let j = get(&state, "batch/jobs", "default", "once").unwrap();
    assert_eq!(j["status"]["succeeded"], 2);
    assert!(j["status"].get("active").is_none());
    assert!(j["status"]["startTime"].is_string() && j["status"]["completionTime"].is_string());
    assert!(condition_true(&j, "SuccessCriteriaMet"));
    let pods = list(&state, "/pods", "default");
    assert_eq!(pods.len(), 2);
    for pod in pods {
        assert_eq!(pod["status"]["phase"], "Succeeded");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(pod["metadata"]["labels"]["job-name"], "once");
    }
}

#[tokio::test]
async fn failing_job_hits_its_backoff_limit() {
    let store = sandbox().await;
    create(&store, "batch", "jobs", "default", job("doomed", 1, true)).await;
    wait_for(&store, "job failed", |s| {
        get(s, "batch/jobs", "default", "doomed").is_some_and(|j| condition_true(&j, "Failed"))
    })
    .await;
    let state = store.read();
    let j = get(&state, "batch/jobs", "default", "doomed").unwrap();
    assert_eq!(j["status"]["failed"], 2);
    let failed = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap()
        .clone();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert!(!condition_true(&j, "Complete"));
    for pod in list(&state, "/pods", "default") {
        assert_eq!(pod["status"]["phase"], "Failed");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            1
        );
    }
}

#[tokio::test]
async fn suspended_job_creates_no_pods() {
    let store = sandbox().await;
    let mut j = job("later", 1, false);
    j["spec"]["suspend"] = json!(true);
    create(&store, "batch", "jobs", "default", j).await;
    wait_for(&store, "suspended condition", |s| {
        get(s, "batch/jobs", "default", "later").is_some_and(|j| condition_true(&j, "Suspended"))
    })
    .await;
    assert!(list(&store.read(), "/pods", "default").is_empty());
    modify(&store, "batch", "jobs", "default", "later", |j| {
        j["spec"]["suspend"] = json!(false)
    })
    .await;
    wait_for(&store, "job complete", |s| {
        get(s, "batch/jobs", "default", "later").is_some_and(|j| condition_true(&j, "Complete"))
    })
    .await;
}

#[tokio::test]
async fn crash_looping_and_delayed_pods() {
    let store = sandbox().await;
    let pod = |name: &str, annotations: Value| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "app"}]},
        })
    };
    create(
        &store,
        "",
        "pods",
        "default",
        pod("crash", json!({super::FAIL_ANNOTATION: "true"})),
    )
    .await;
    let started = Instant::now();
    create(
        &store,
        "",
        "pods",
        "default",
        pod("slow", json!({super::START_DELAY_ANNOTATION: "300"})),
    )
    .await;
    wait_for(&store, "crash loop", |s| {
        get(s, "/pods", "default", "crash").is_some_and(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
    })
    .await;
    let crash = get(&store.read(), "/pods", "default", "crash").unwrap();
    assert_eq!(crash["status"]["phase"], "Running");
    assert!(!pod_ready(&crash));
    assert_eq!(
        crash["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    let slow = get(&store.read(), "/pods", "default", "slow").unwrap();
    if started.elapsed() < Duration::from_millis(250) {
        assert_eq!(slow["status"]["phase"], "Pending");
    }
    wait_for(&store, "slow pod running", |s| {
        get(s, "/pods", "default", "slow").is_some_and(|p| pod_ready(&p))
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn service_endpoints_follow_ready_pods() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 2, "nginx"),
    )
    .await;
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    });
    create(&store, "", "services", "default", svc).await;
    wait_for(&store, "endpoints", |s| {
        get(s, "/endpoints", "default", "web").is_some_and(|ep| {
            ep["subsets"][0]["addresses"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        })
    })
    .await;
    {
        let state = store.read();
        let ep = get(&state, "/endpoints", "default", "web").unwrap();
        assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080);
        assert_eq!(ep["subsets"][0]["addresses"][0]["targetRef"]["kind"], "Pod");
        let svc = get(&state, "/services", "default", "web").unwrap();
        assert_eq!(
            svc["status"]["loadBalancer"]["ingress"][0]["ip"],
            "127.0.0.1"
        );
    }
    delete(
        &store,
        "",
        "services",
        "default",
        "web",
        Propagation::Background,
    )
    .await;
    wait_for(&store, "endpoints removed", |s| {
        get(s, "/endpoints", "default", "web").is_none()
    })
    .await;
}

#[tokio::test]
async fn ingress_gets_an_address() {
    let store = sandbox().await;
    let ing = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "site"},
        "spec": {"rules": [{"host": "example.test"}]},
    });
    create(&store, "networking.k8s.io", "ingresses", "default", ing).await;
    wait_for(&store, "ingress address", |s| {
        get(s, "networking.k8s.io/ingresses", "default", "site")
            .is_some_and(|i| i["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1")
    })
    .await;
}

#[tokio::test]
async fn background_deletion_cascades() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 2, "nginx"),
    )
    .await;
    wait_for(&store, "rollout", |s| deploy_done(s, "default", "web", 2)).await;
    delete(
        &store,
        "apps",
        "deployments",
        "default",
        "web",
        Propagation::Background,
    )
    .await;
    wait_for(&store, "replica sets and pods gone", |s| {
        list(s, "apps/replicasets", "default").is_empty() && list(s, "/pods", "default").is_empty()
    })
    .await;
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 1, "nginx"),
    )
    .await;
    wait_for(&store, "rollout", |s| deploy_done(s, "default", "web", 1)).await;
    let pod_name = list(&store.read(), "/pods", "default")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    modify(&store, "", "pods", "default", &pod_name, |p| {
        p["metadata"]["finalizers"] = json!(["test/hold"])
    })
    .await;
    delete(
        &store,
        "apps",
        "deployments",
        "default",
        "web",
        Propagation::Foreground,
    )
    .await;
    // Marked for deletion by the garbage collector, then reported not ready by the kubelet.
    wait_for(&store, "pod terminating", |s| {
        get(s, "/pods", "default", &pod_name)
            .is_some_and(|p| p["metadata"]["deletionTimestamp"].is_string() && !pod_ready(&p))
    })
    .await;
    {
        let state = store.read();
        let d = get(&state, "apps/deployments", "default", "web")
            .expect("owner stays while dependents remain");
        assert!(d["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(d["metadata"]["finalizers"], json!([ops::FOREGROUND]));
        let rs = &list(&state, "apps/replicasets", "default")[0];
        assert!(rs["metadata"]["deletionTimestamp"].is_string());
        let pod = get(&state, "/pods", "default", &pod_name).unwrap();
        assert!(!pod_ready(&pod), "a terminating pod is not ready");
    }
    let name = pod_name.clone();
    store
        .write(move |tx| {
            let res = tx.state().registry.find_any_version("", "pods").unwrap();
            ops::remove_finalizer(
                tx,
                &res,
                &ObjKey::new("/pods", "default", name),
                "test/hold",
                "test",
            )
        })
        .await
        .expect("release the pod");
    wait_for(&store, "everything gone", |s| {
        get(s, "apps/deployments", "default", "web").is_none()
            && list(s, "apps/replicasets", "default").is_empty()
            && list(s, "/pods", "default").is_empty()
    })
    .await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 2, "nginx"),
    )
    .await;
    wait_for(&store, "rollout", |s| deploy_done(s, "default", "web", 2)).await;
    delete(
        &store,
        "apps",
        "deployments",
        "default",
        "web",
        Propagation::Orphan,
    )
    .await;
    wait_for(&store, "deployment gone", |s| {
        get(s, "apps/deployments", "default", "web").is_none()
    })
    .await;
    // Give the garbage collector a chance to do something wrong.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let state = store.read();
    let rss = list(&state, "apps/replicasets", "default");
    assert_eq!(rss.len(), 1);
    assert!(rss[0]["metadata"].get("ownerReferences").is_none());
    let pods = list(&state, "/pods", "default");
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| owned_by(p, &rss[0]) && pod_ready(p)));
}

#[tokio::test]
async fn dangling_owner_references_are_collected() {
    let store = sandbox().await;
    let cm = create(
        &store,
        "",
        "configmaps",
        "default",
        json!({"metadata": {"name": "owner"}}),
    )
    .await;
    let owned = |name: &str, uid: &Value| json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}});
    create(
        &store,
        "",
        "configmaps",
        "default",
        owned("child", &cm["metadata"]["uid"]),
    )
    .await;
    create(
        &store,
        "",
        "configmaps",
        "default",
        owned("stale", &json!("not-the-uid")),
    )
    .await;
    wait_for(&store, "stale dependent collected", |s| {
        get(s, "/configmaps", "default", "stale").is_none()
    })
    .await;
    assert!(get(&store.read(), "/configmaps", "default", "child").is_some());
    delete(
        &store,
        "",
        "configmaps",
        "default",
        "owner",
        Propagation::Background,
    )
    .await;
    wait_for(&store, "child collected", |s| {
        get(s, "/configmaps", "default", "child").is_none()
    })
    .await;
}

#[tokio::test]
async fn namespace_deletion_removes_everything() {
    let store = sandbox().await;
    create(
        &store,
        "",
        "namespaces",
        "",
        json!({"metadata": {"name": "doomed"}}),
    )
    .await;
    create(
        &store,
        "apps",
        "deployments",
        "doomed",
        deployment("web", 2, "nginx"),
    )
    .await;
    create(
        &store,
        "",
        "configmaps",
        "doomed",
        json!({"metadata": {"name": "cfg", "finalizers": ["test/hold"]}}),
    )
    .await;
    wait_for(&store, "rollout", |s| deploy_done(s, "doomed", "web", 2)).await;
    delete(
        &store,
        "",
        "namespaces",
        "",
        "doomed",
        Propagation::Background,
    )
    .await;
    wait_for(&store, "content removed but a finalizer", |s| {
        s.iter().filter(|(k, _)| k.ns == "doomed").count() == 1
            && get(s, "/namespaces", "", "doomed").is_some_and(|ns| {
                ns["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["type"] == "NamespaceFinalizersRemaining" && c["status"] == "True"
                    })
                })
            })
    })
    .await;
    assert_eq!(
        get(&store.read(), "/namespaces", "", "doomed").unwrap()["status"]["phase"],
        "Terminating"
    );
    store
        .write(|tx| {
            let res = tx
                .state()
                .registry
                .find_any_version("", "configmaps")
                .unwrap();
            ops::remove_finalizer(
                tx,
                &res,
                &ObjKey::new("/configmaps", "doomed", "cfg"),
                "test/hold",
                "test",
            )
        })
        .await
        .expect("release the config map");
    wait_for(&store, "namespace gone", |s| {
        get(s, "/namespaces", "", "doomed").is_none() && s.iter().all(|(k, _)| k.ns != "doomed")
    })
    .await;
}

#[tokio::test]
async fn hpa_clamps_replicas() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 1, "nginx"),
    )
    .await;
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 4},
    });
    create(
        &store,
        "autoscaling",
        "horizontalpodautoscalers",
        "default",
        hpa,
    )
    .await;
    wait_for(&store, "scaled up to the minimum", |s| {
        deploy_done(s, "default", "web", 2)
    })
    .await;
    let h = get(
        &store.read(),
        "autoscaling/horizontalpodautoscalers",
        "default",
        "web",
    )
    .unwrap();
    assert_eq!(h["status"]["desiredReplicas"], 2);
    assert!(h["status"]["lastScaleTime"].is_string());
    let active = h["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ScalingActive")
        .unwrap()
        .clone();
    assert_eq!(active["status"], "False");
    assert_eq!(active["reason"], "FailedGetResourceMetric");
    modify(&store, "apps", "deployments", "default", "web", |d| {
        d["spec"]["replicas"] = json!(10)
    })
    .await;
    wait_for(&store, "scaled down to the maximum", |s| {
        deploy_done(s, "default", "web", 4)
    })
    .await;
}

#[tokio::test]
async fn work_resumes_after_a_restart() {
    // Objects written before the controllers run (as after a restart) are reconciled at start.
    let store = Store::in_memory();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    create(&store, "", "namespaces", "", ns).await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 1, "nginx"),
    )
    .await;
    // The node is in the store too: without one no pod would be scheduled.
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": super::NODE}});
    create(&store, "", "nodes", "", node).await;
    super::start(store.clone(), String::new(), false);
    wait_for(&store, "rollout", |s| deploy_done(s, "default", "web", 1)).await;
}

#[tokio::test]
async fn converged_state_emits_no_events() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 2, "nginx"),
    )
    .await;
    let svc = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    create(&store, "", "services", "default", svc).await;
    wait_for(&store, "rollout", |s| {
        deploy_done(s, "default", "web", 2) && get(s, "/endpoints", "default", "web").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rv = store.read().resource_version();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.read().resource_version(),
        rv,
        "controllers keep writing after converging"
    );
}

#[tokio::test]
async fn recreated_deployment_adopts_orphans() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 2, "nginx"),
    )
    .await;
    wait_for(&store, "rollout", |s| deploy_done(s, "default", "web", 2)).await;
    let pods_before: Vec<Value> = list(&store.read(), "/pods", "default")
        .iter()
        .map(|p| p["metadata"]["uid"].clone())
        .collect();
    delete(
        &store,
        "apps",
        "deployments",
        "default",
        "web",
        Propagation::Orphan,
    )
    .await;
    wait_for(&store, "orphaned", |s| {
        get(s, "apps/deployments", "default", "web").is_none()
            && list(s, "apps/replicasets", "default")
                .iter()
                .all(|rs| rs["metadata"].get("ownerReferences").is_none())
    })
    .await;
    let d = create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 2, "nginx"),
    )
    .await;
    wait_for(&store, "adopted", |s| {
        deploy_done(s, "default", "web", 2)
            && list(s, "apps/replicasets", "default")
                .iter()
                .all(|rs| owned_by(rs, &d))
    })
    .await;
    let state = store.read();
    assert_eq!(list(&state, "apps/replicasets", "default").len(), 1);
    let pods_after: Vec<Value> = list(&state, "/pods", "default")
        .iter()
        .map(|p| p["metadata"]["uid"].clone())
        .collect();
    assert_eq!(pods_before, pods_after, "the same pods keep running");
}

#[tokio::test]
async fn malformed_objects_do_not_stop_the_store() {
    let store = sandbox().await;
    // Stored as is, past admission: a template that is not an object.
    store
        .write(|tx| {
            let bad = json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "bad", "namespace": "default", "uid": "bad-uid", "generation": 1},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "bad"}}, "template": [1, 2]},
            });
            tx.put(ObjKey::new("apps/deployments", "default", "bad"), bad);
            Ok(())
        })
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(100)).await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 1, "nginx"),
    )
    .await;
    wait_for(&store, "a healthy deployment still rolls out", |s| {
        deploy_done(s, "default", "web", 1)
    })
    .await;
}

#[tokio::test]
async fn events_are_recorded_and_bounded() {
    let store = sandbox().await;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("web", 1, "nginx"),
    )
    .await;
    wait_for(&store, "rollout", |s| deploy_done(s, "default", "web", 1)).await;
    wait_for(&store, "events", |s| {
        let events = list(s, "/events", "default");
        let has = |kind: &str, reason: &str| {
            events
                .iter()
                .any(|e| e["involvedObject"]["kind"] == kind && e["reason"] == reason)
        };
        has("Pod", "Scheduled")
            && has("Pod", "Started")
            && has("ReplicaSet", "SuccessfulCreate")
            && has("Deployment", "ScalingReplicaSet")
    })
    .await;
    let pod = list(&store.read(), "/pods", "default")[0].clone();
    let repeated = pod.clone();
    store
        .write(move |tx| {
            for _ in 0..3 {
                super::events::record(
                    tx,
                    &repeated,
                    super::events::normal("test", "Again", "same".into()),
                );
            }
            for i in 0..super::events::MAX_PER_NAMESPACE + 50 {
                super::events::record(
                    tx,
                    &repeated,
                    super::events::normal("test", "Many", format!("event {i}")),
                );
            }
            Ok(())
        })
        .await
        .expect("record");
    let state = store.read();
    let events = list(&state, "/events", "default");
    assert!(
        events.len() <= super::events::MAX_PER_NAMESPACE,
        "{} events kept",
        events.len()
    );
    assert!(
        events
            .iter()
            .any(|e| e["message"] == format!("event {}", super::events::MAX_PER_NAMESPACE + 49))
    );
    let again: Vec<&Arc<Value>> = events.iter().filter(|e| e["reason"] == "Again").collect();
    assert!(again.len() <= 1, "repeated events are aggregated");
    if let Some(e) = again.first() {
        assert_eq!(e["count"], 3);
    }
}

#[tokio::test]
async fn failing_rollout_exceeds_its_progress_deadline() {
    let store = sandbox().await;
    let mut d = deployment("web", 1, "nginx");
    d["spec"]["progressDeadlineSeconds"] = json!(1);
    d["spec"]["template"]["metadata"]["annotations"] = json!({super::FAIL_ANNOTATION: "true"});
    create(&store, "apps", "deployments", "default", d).await;
    wait_for(&store, "progress deadline exceeded", |s| {
        get(s, "apps/deployments", "default", "web").is_some_and(|d| {
            let p = &d["status"]["conditions"][1];
            p["type"] == "Progressing"
                && p["status"] == "False"
                && p["reason"] == "ProgressDeadlineExceeded"
        })
    })
    .await;
    let d = get(&store.read(), "apps/deployments", "default", "web").unwrap();
    assert_eq!(
        d["status"]["conditions"][0]["status"], "False",
        "not available"
    );
    assert_eq!(d["status"]["unavailableReplicas"], 1);
}

#[tokio::test]
async fn the_sandbox_has_one_ready_node() {
    let store = sandbox().await;
    let state = store.read();
    let nodes: Vec<Arc<Value>> = state.list("/nodes", None).map(|(_, v)| v.clone()).collect();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["metadata"]["name"], super::NODE);
    assert!(condition_true(&nodes[0], "Ready"), "{}", nodes[0]);
}

#[tokio::test]
async fn helm_charts_get_an_install_job_like_on_k3s() {
    let store = sandbox().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "helmcharts.helm.cattle.io"},
        "spec": {
            "group": "helm.cattle.io", "scope": "Namespaced",
            "names": {"kind": "HelmChart", "plural": "helmcharts", "singular": "helmchart", "listKind": "HelmChartList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    });
    create(
        &store,
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        crd,
    )
    .await;
    wait_for(&store, "HelmChart served", |s| {
        s.registry
            .find_any_version("helm.cattle.io", "helmcharts")
            .is_some()
    })
    .await;
    let chart = json!({
        "apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
        "metadata": {"name": "cert-manager"},
        "spec": {"repo": "https://charts.jetstack.io", "chart": "cert-manager", "version": "v1.18.2"},
    });
    create(&store, "helm.cattle.io", "helmcharts", "kube-system", chart).await;
    let complete = |s: &State| {
        get(s, "batch/jobs", "kube-system", "helm-install-cert-manager")
            .filter(|j| condition_true(j, "Complete"))
    };
    wait_for(&store, "install job complete", |s| complete(s).is_some()).await;
    let first = complete(&store.read()).unwrap();
    {
        let state = store.read();
        let chart = get(
            &state,
            "helm.cattle.io/helmcharts",
            "kube-system",
            "cert-manager",
        )
        .unwrap();
        assert_eq!(chart["status"]["jobName"], "helm-install-cert-manager");
        assert_eq!(
            first["metadata"]["ownerReferences"][0]["uid"],
            chart["metadata"]["uid"]
        );
        assert!(
            first["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "VERSION" && e["value"] == "v1.18.2")
        );
    }

    // A changed chart gets a fresh install job, as k3s replaces it.
    modify(
        &store,
        "helm.cattle.io",
        "helmcharts",
        "kube-system",
        "cert-manager",
        |c| {
            c["spec"]["version"] = json!("v1.19.0");
        },
    )
    .await;
    wait_for(&store, "a new install job", |s| {
        complete(s).is_some_and(|j| j["metadata"]["uid"] != first["metadata"]["uid"])
    })
    .await;
}

/// Sets the node's `status.allocatable.pods`, as a kubelet started with `--max-pods` reports.
async fn set_max_pods(store: &Store, pods: &str) {
    let pods = pods.to_string();
    store
        .write(move |tx| {
            let res = super::common::resource(tx, "", "nodes")?;
            let key = ops::key(&res, "", super::NODE);
            let old = tx.get(&key).expect("the node");
            let mut new = (*old).clone();
            new["status"]["allocatable"]["pods"] = json!(pods);
            let how = WriteKind::Update {
                manager: "test",
                part: Part::Status,
            };
            ops::finish_write(tx, &res, key, old, new, how)
        })
        .await
        .expect("set max pods");
}

fn bare_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "app"}]},
    })
}

fn running(state: &State, name: &str) -> bool {
    get(state, "/pods", "default", name)
        .is_some_and(|p| p["status"]["phase"] == "Running" && p["spec"]["nodeName"] == super::NODE)
}

/// Pending and reported unschedulable, as kube-scheduler reports a pod no node has room for.
fn unschedulable(state: &State, name: &str) -> bool {
    get(state, "/pods", "default", name).is_some_and(|p| {
        let cond = &p["status"]["conditions"][0];
        p["status"]["phase"] == "Pending"
            && p["spec"]["nodeName"].is_null()
            && cond["type"] == "PodScheduled"
            && cond["status"] == "False"
            && cond["reason"] == "Unschedulable"
            && cond["message"] == "0/1 nodes are available: 1 Too many pods."
    })
}

#[tokio::test]
async fn the_node_takes_110_pods_like_a_kubelet() {
    let store = sandbox().await;
    let node = get(&store.read(), "/nodes", "", super::NODE).expect("the node");
    assert_eq!(node["status"]["capacity"]["pods"], "110", "{node}");
    assert_eq!(node["status"]["allocatable"]["pods"], "110", "{node}");
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("big", 112, "nginx"),
    )
    .await;
    wait_for(&store, "110 pods running and 2 unschedulable", |s| {
        let pods = list(s, "/pods", "default");
        let name = |p: &Arc<Value>| p["metadata"]["name"].as_str().unwrap_or("").to_string();
        pods.len() == 112
            && pods.iter().filter(|p| running(s, &name(p))).count() == 110
            && pods.iter().filter(|p| unschedulable(s, &name(p))).count() == 2
    })
    .await;
    wait_for(&store, "the Deployment counting 2 unavailable", |s| {
        get(s, "apps/deployments", "default", "big").is_some_and(|d| {
            d["status"]["readyReplicas"] == 110 && d["status"]["unavailableReplicas"] == 2
        })
    })
    .await;
}

#[tokio::test]
async fn pods_wait_for_room_on_the_node_and_get_it_when_pods_go() {
    let store = sandbox().await;
    set_max_pods(&store, "2").await;
    for name in ["a", "b"] {
        create(&store, "", "pods", "default", bare_pod(name)).await;
    }
    wait_for(&store, "a and b running", |s| {
        running(s, "a") && running(s, "b")
    })
    .await;
    create(&store, "", "pods", "default", bare_pod("c")).await;
    wait_for(&store, "c unschedulable", |s| unschedulable(s, "c")).await;
    wait_for(&store, "a FailedScheduling event for c", |s| {
        list(s, "/events", "default").iter().any(|e| {
            e["involvedObject"]["name"] == "c"
                && e["reason"] == "FailedScheduling"
                && e["type"] == "Warning"
                && e["source"]["component"] == "default-scheduler"
                && e["message"] == "0/1 nodes are available: 1 Too many pods."
        })
    })
    .await;

    delete(&store, "", "pods", "default", "a", Propagation::Background).await;
    wait_for(&store, "c scheduled once a is gone", |s| running(s, "c")).await;

    create(&store, "", "pods", "default", bare_pod("d")).await;
    wait_for(&store, "d unschedulable", |s| unschedulable(s, "d")).await;
    set_max_pods(&store, "3").await;
    wait_for(&store, "d scheduled once the node takes more", |s| {
        running(s, "d")
    })
    .await;

    // A pod that finished leaves its room, as kube-scheduler counts only pods that run.
    let mut job_pod = bare_pod("e");
    job_pod["spec"]["restartPolicy"] = json!("Never");
    create(&store, "", "pods", "default", job_pod).await;
    wait_for(&store, "e unschedulable", |s| unschedulable(s, "e")).await;
    delete(&store, "", "pods", "default", "b", Propagation::Background).await;
    wait_for(&store, "e ran to completion", |s| {
        get(s, "/pods", "default", "e").is_some_and(|p| p["status"]["phase"] == "Succeeded")
    })
    .await;
    create(&store, "", "pods", "default", bare_pod("f")).await;
    wait_for(&store, "f runs in the room e left", |s| running(s, "f")).await;
}

#[tokio::test]
async fn a_replicaset_creates_its_pods_a_burst_at_a_time() {
    let store = sandbox().await;
    let want = super::BURST + 100;
    create(
        &store,
        "apps",
        "deployments",
        "default",
        deployment("many", want as i64, "nginx"),
    )
    .await;
    wait_for(&store, "every pod created", |s| {
        list(s, "/pods", "default").len() == want
    })
    .await;
    // A write that waits its turn: the writes before it are in the history by then.
    store.write(|_| Ok(())).await.expect("barrier");
    // One reconcile is one write: its pods are created, then the ReplicaSet's status written.
    // The history holds every event so far, in order.
    let history = store.read().history_since(0).expect("the whole history");
    let mut run = 0;
    let mut longest = 0;
    let mut writes = 0;
    for event in &history {
        match (event.key.res.as_str(), event.kind) {
            ("/pods", crate::store::EventType::Added) => {
                run += 1;
                longest = longest.max(run);
            }
            ("apps/replicasets", crate::store::EventType::Modified) if run > 0 => {
                run = 0;
                writes += 1;
            }
            _ => {}
        }
    }
    assert_eq!(longest, super::BURST, "pods created in one write");
    assert!(writes >= 2, "{writes} writes created the pods");
}
