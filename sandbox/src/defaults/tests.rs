//! The defaults against what a real API server (v1.33) returns for the same input.

use serde_json::{Value, json};

use super::apply;
use super::pod::pull_policy;

fn defaulted(res: &str, mut obj: Value) -> Value {
    apply(res, &mut obj);
    let once = obj.clone();
    apply(res, &mut obj);
    assert_eq!(obj, once, "defaulting {res} twice changes it");
    obj
}

/// The container of `kubectl create deployment web --image=nginx:1.27 --port=80`, as stored.
fn stored_container() -> Value {
    json!({
        "name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    })
}

fn template_spec() -> Value {
    json!({
        "containers": [stored_container()],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    })
}

fn bare_template() -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
    })
}

#[test]
fn image_pull_policy_follows_the_tag() {
    assert_eq!(pull_policy("nginx"), "Always");
    assert_eq!(pull_policy("nginx:latest"), "Always");
    assert_eq!(pull_policy("registry.local:5000/team/app"), "Always");
    assert_eq!(pull_policy("registry.local:5000/team/app:latest"), "Always");
    assert_eq!(pull_policy("nginx:1.27"), "IfNotPresent");
    assert_eq!(pull_policy("registry.local:5000/app:v2"), "IfNotPresent");
    assert_eq!(pull_policy("nginx@sha256:abcd"), "IfNotPresent");
    assert_eq!(pull_policy("nginx:latest@sha256:abcd"), "Always");
}

#[test]
fn a_deployment_is_defaulted_as_a_real_server_does() {
    let obj = defaulted(
        "apps/deployments",
        json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": bare_template()}}),
    );
    assert_eq!(
        obj["spec"],
        json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": template_spec()},
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        })
    );
    // A template gets no pod-only fields.
    assert!(obj["spec"]["template"]["spec"]["enableServiceLinks"].is_null());
}

#[test]
fn a_recreate_strategy_gets_no_rolling_update_and_given_values_stay() {
    let obj = defaulted(
        "apps/deployments",
        json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}, "template": {"spec": {
            "restartPolicy": "Always", "dnsPolicy": "Default",
            "containers": [{"name": "a", "image": "a", "imagePullPolicy": "Never"}]}}}}),
    );
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(obj["spec"]["strategy"], json!({"type": "Recreate"}));
    let spec = &obj["spec"]["template"]["spec"];
    assert_eq!(spec["dnsPolicy"], "Default");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
    let partial = defaulted(
        "apps/deployments",
        json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
    );
    assert_eq!(
        partial["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}})
    );
}

#[test]
fn a_pod_gets_the_pod_only_fields_and_admission_defaults() {
    let obj = defaulted(
        "/pods",
        json!({"spec": {"containers": [{"name": "app", "image": "busybox",
            "resources": {"limits": {"cpu": "1"}},
            "livenessProbe": {"httpGet": {"port": 8080}},
            "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
            "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}}]}}),
    );
    let spec = &obj["spec"];
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ])
    );
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        c["resources"],
        json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}})
    );
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"],
        json!({"fieldPath": "metadata.name", "apiVersion": "v1"})
    );
    assert_eq!(
        spec["volumes"][0],
        json!({"name": "scratch", "emptyDir": {}})
    );
    assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
}

#[test]
fn the_qos_class_follows_requests_and_limits() {
    use super::pod::qos_class;
    let pod = |resources: Value| {
        defaulted(
            "/pods",
            json!({"spec": {"containers": [{"name": "a", "image": "a", "resources": resources}]}}),
        )["spec"]
            .clone()
    };
    assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
    // Requests default to limits: limits alone are Guaranteed.
    assert_eq!(
        qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
        "Guaranteed"
    );
    assert_eq!(
        qos_class(&pod(json!({"requests": {"cpu": "100m"}}))),
        "Burstable"
    );
    assert_eq!(
        qos_class(&pod(json!({"limits": {"cpu": "1"}}))),
        "Burstable"
    );
}

#[test]
fn a_pod_naming_its_account_the_old_way_keeps_it() {
    let obj = defaulted(
        "/pods",
        json!({"spec": {"containers": [{"name": "a", "image": "a"}], "serviceAccount": "builder"}}),
    );
    assert_eq!(obj["spec"]["serviceAccountName"], "builder");
    assert_eq!(obj["spec"]["serviceAccount"], "builder");
}

#[test]
fn a_pod_that_tolerates_everything_gets_no_extra_tolerations() {
    let obj = defaulted(
        "/pods",
        json!({"spec": {"containers": [{"name": "a", "image": "a"}], "tolerations": [{"operator": "Exists"}]}}),
    );
    assert_eq!(obj["spec"]["tolerations"], json!([{"operator": "Exists"}]));
}

#[test]
fn a_stateful_set_daemon_set_and_replica_set_are_defaulted() {
    let sts = defaulted(
        "apps/statefulsets",
        json!({"spec": {"serviceName": "db", "template": bare_template(),
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}}),
    );
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        spec["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["template"]["spec"], template_spec());
    assert_eq!(
        spec["volumeClaimTemplates"][0],
        json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"},
            "status": {"phase": "Pending"}})
    );
    let explicit = defaulted(
        "apps/statefulsets",
        json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}}),
    );
    assert_eq!(
        explicit["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate"})
    );

    let ds = defaulted(
        "apps/daemonsets",
        json!({"spec": {"template": bare_template()}}),
    );
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(ds["spec"]["template"]["spec"], template_spec());

    let rs = defaulted(
        "apps/replicasets",
        json!({"spec": {"template": bare_template()}}),
    );
    assert_eq!(rs["spec"]["replicas"], 1);
    assert_eq!(rs["spec"]["template"]["spec"], template_spec());
}

#[test]
fn a_job_and_a_cron_job_are_defaulted() {
    let template = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "busybox:1.36"}]}});
    let job = defaulted(
        "batch/jobs",
        json!({"spec": {"template": template.clone()}}),
    );
    let spec = &job["spec"];
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["manualSelector"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    // A parallel job keeps `completions` unset; per-index back-off lifts the global limit.
    let parallel = defaulted(
        "batch/jobs",
        json!({"spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "template": template.clone()}}),
    );
    assert!(parallel["spec"]["completions"].is_null());
    assert_eq!(parallel["spec"]["backoffLimit"], i32::MAX);

    let cron = defaulted(
        "batch/cronjobs",
        json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
    );
    let spec = &cron["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    // The job template gets pod defaults, not a Job's.
    let job_spec = &spec["jobTemplate"]["spec"];
    assert!(job_spec["backoffLimit"].is_null());
    assert_eq!(
        job_spec["template"]["spec"]["schedulerName"],
        "default-scheduler"
    );
}

#[test]
fn services_are_defaulted_by_type() {
    let svc = defaulted(
        "/services",
        json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}),
    );
    assert_eq!(
        svc["spec"],
        json!({
            "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"],
        })
    );
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));

    let lb = defaulted(
        "/services",
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
    );
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        lb["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );

    let alias = defaulted(
        "/services",
        json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    for absent in ["ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"] {
        assert!(alias["spec"][absent].is_null(), "{absent}: {alias}");
    }

    let headless = defaulted(
        "/services",
        json!({"spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}),
    );
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
}

mod writes {
    //! Through the write path, where node ports are allocated and the checks that go with the
    //! defaults are made.

    use serde_json::{Value, json};

    use crate::error::ApiError;
    use crate::ops::{self, DeleteOptions, Part, WriteKind};
    use crate::server::Sandbox;
    use crate::store::Store;

    async fn store() -> Store {
        Sandbox::in_memory().await.expect("sandbox").store
    }

    fn service(name: &str, kind: &str, ports: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": name}, "ports": ports}})
    }

    async fn create(store: &Store, obj: Value) -> Result<Value, ApiError> {
        store
            .write(move |tx| {
                let res = tx
                    .state()
                    .registry
                    .find("", "v1", "services")
                    .expect("services");
                let how = WriteKind::Update {
                    manager: "test",
                    part: Part::Main,
                };
                ops::create(tx, &res, "default", obj, how)
            })
            .await
            .map(|o| (*o).clone())
    }

    async fn update(store: &Store, obj: Value) -> Result<Value, ApiError> {
        store
            .write(move |tx| {
                let res = tx
                    .state()
                    .registry
                    .find("", "v1", "services")
                    .expect("services");
                let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                let how = WriteKind::Update {
                    manager: "test",
                    part: Part::Main,
                };
                ops::update(tx, &res, "default", &name, obj, how)
            })
            .await
            .map(|o| (*o).clone())
    }

    async fn delete(store: &Store, name: &str) {
        let name = name.to_string();
        store
            .write(move |tx| {
                let res = tx
                    .state()
                    .registry
                    .find("", "v1", "services")
                    .expect("services");
                ops::delete(tx, &res, "default", &name, &DeleteOptions::default())
            })
            .await
            .expect("deleted");
    }

    fn node_ports(svc: &Value) -> Vec<u64> {
        svc["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .filter_map(|p| p["nodePort"].as_u64())
            .collect()
    }

    fn cause(err: &ApiError) -> (String, String) {
        assert_eq!(err.code, 422, "{}", err.message);
        let cause = &err.details.as_ref().expect("details")["causes"][0];
        (
            cause["field"].as_str().unwrap_or("").to_string(),
            cause["message"].as_str().unwrap_or("").to_string(),
        )
    }

    #[tokio::test]
    async fn node_ports_are_unique_in_the_range_and_kept_on_update() {
        let store = store().await;
        let mut seen = std::collections::HashSet::new();
        // Same port numbers everywhere: what used to give every service the same node port.
        for name in ["a", "b", "c", "d"] {
            let svc = create(
                &store,
                service(name, "NodePort", json!([{"port": 80}, {"port": 443}])),
            )
            .await
            .expect("created");
            for port in node_ports(&svc) {
                assert!((30000..=32767).contains(&port), "{port}");
                assert!(seen.insert(port), "{port} given twice");
            }
            assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        }
        let lb = create(&store, service("lb", "LoadBalancer", json!([{"port": 80}])))
            .await
            .expect("created");
        assert_eq!(node_ports(&lb).len(), 1);
        assert!(seen.insert(node_ports(&lb)[0]));

        // A PUT without the node ports keeps them, as on a real server.
        let stored = store
            .read()
            .get(&crate::store::ObjKey::new("/services", "default", "a"))
            .expect("a");
        let mut again = service("a", "NodePort", json!([{"port": 80}, {"port": 443}]));
        again["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
        let updated = update(&store, again).await.expect("updated");
        assert_eq!(node_ports(&updated), node_ports(&stored));

        // Back to ClusterIP, as `kubectl edit` sends it (the rest unchanged): the node ports
        // and the external traffic policy go.
        let mut edited = updated.clone();
        edited["spec"]["type"] = json!("ClusterIP");
        let back = update(&store, edited).await.expect("to ClusterIP");
        assert!(node_ports(&back).is_empty(), "{back}");
        assert!(back["spec"]["externalTrafficPolicy"].is_null(), "{back}");
        assert_eq!(back["spec"]["clusterIP"], updated["spec"]["clusterIP"]);
    }

    #[tokio::test]
    async fn a_taken_or_out_of_range_node_port_is_invalid_and_deleting_frees_it() {
        let store = store().await;
        create(
            &store,
            service(
                "first",
                "NodePort",
                json!([{"port": 80, "nodePort": 30080}]),
            ),
        )
        .await
        .expect("created");
        let err = create(
            &store,
            service(
                "second",
                "NodePort",
                json!([{"port": 8080}, {"port": 80, "nodePort": 30080}]),
            ),
        )
        .await
        .expect_err("taken");
        assert_eq!(
            cause(&err),
            (
                "spec.ports[1].nodePort".into(),
                "Invalid value: 30080: provided port is already allocated".into()
            )
        );
        assert_eq!(
            err.message,
            "Service \"second\" is invalid: spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        let err = create(
            &store,
            service("third", "NodePort", json!([{"port": 80, "nodePort": 80}])),
        )
        .await
        .expect_err("out of range");
        assert_eq!(
            cause(&err),
            (
                "spec.ports[0].nodePort".into(),
                "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767".into()
            )
        );
        let err = create(
            &store,
            service(
                "plain",
                "ClusterIP",
                json!([{"port": 80, "nodePort": 30081}]),
            ),
        )
        .await
        .expect_err("not for ClusterIP");
        assert_eq!(cause(&err).0, "spec.ports[0].nodePort");
        assert!(cause(&err).1.starts_with("Forbidden"), "{}", err.message);

        delete(&store, "first").await;
        let reused = create(
            &store,
            service(
                "second",
                "NodePort",
                json!([{"port": 80, "nodePort": 30080}]),
            ),
        )
        .await
        .expect("the port is free again");
        assert_eq!(node_ports(&reused), [30080]);
    }

    #[tokio::test]
    async fn switching_a_deployment_to_recreate_needs_its_rolling_update_dropped() {
        let store = store().await;
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        let write = |obj: Value, create: bool| {
            store.write(move |tx| {
                let res = tx
                    .state()
                    .registry
                    .find("apps", "v1", "deployments")
                    .expect("deployments");
                let how = WriteKind::Update {
                    manager: "test",
                    part: Part::Main,
                };
                if create {
                    ops::create(tx, &res, "default", obj, how)
                } else {
                    ops::update(tx, &res, "default", "web", obj, how)
                }
            })
        };
        let stored = write(deployment, true).await.expect("created");
        // What `kubectl apply` of `strategy: {type: Recreate}` merges into the stored object.
        let mut switched = (*stored).clone();
        switched["spec"]["strategy"]["type"] = json!("Recreate");
        // Unconditional updates: the controllers write the status meanwhile.
        switched["metadata"]["resourceVersion"].take();
        let err = write(switched.clone(), false).await.expect_err("refused");
        assert_eq!(
            cause(&err),
            (
                "spec.strategy.rollingUpdate".into(),
                "Forbidden: may not be specified when strategy `type` is 'Recreate'".into()
            )
        );
        switched["spec"]["strategy"] = json!({"type": "Recreate"});
        let updated = write(switched, false).await.expect("accepted");
        assert_eq!(updated["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[tokio::test]
    async fn an_external_name_service_gets_no_address() {
        let store = store().await;
        let alias = create(
            &store,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alias"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        )
        .await
        .expect("created");
        assert!(alias["spec"]["clusterIP"].is_null(), "{alias}");
        assert!(alias["spec"]["clusterIPs"].is_null(), "{alias}");
    }
}
