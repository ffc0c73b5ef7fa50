//! What the sandbox stores is what a real API server would: defaults filled in, node ports
//! allocated and checked, every namespace set up, a complete Node. Through the real `kubectl`
//! and through kube-rs's typed objects (which fail to read an object missing a required field).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::common::{Kubectl, LocalSandbox, ServedSandbox, eventually};

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: postgres:17
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {storage: 1Gi}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: once
        image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
"#;

/// The template spec a v1.33 API server stores for the Deployment above.
fn web_template_spec() -> Value {
    json!({
        "containers": [
            {"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
             "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {},
             "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"},
            {"name": "sidecar", "image": "busybox", "imagePullPolicy": "Always", "resources": {},
             "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"},
        ],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    })
}

#[test]
fn kubectl_reads_back_what_a_real_server_defaults() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], WORKLOADS);

    let deploy = k.json(&["get", "deployment", "web"]);
    let spec = &deploy["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(spec["template"]["spec"], web_template_spec());

    // The pods get the same, plus what only pods get.
    let pods = eventually_kubectl(&k, &["get", "pods", "-l", "app=web"], |pods| {
        pods["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    });
    let pod = &pods["items"][0]["spec"];
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["containers"][1]["imagePullPolicy"], "Always");
    assert_eq!(pod["enableServiceLinks"], true);
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["serviceAccountName"], "default");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"], json!({}));

    let sts = k.json(&["get", "statefulset", "db"])["spec"].clone();
    assert_eq!(sts["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(sts["revisionHistoryLimit"], 10);
    assert_eq!(
        sts["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        sts["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(
        sts["volumeClaimTemplates"][0]["status"],
        json!({"phase": "Pending"})
    );
    assert_eq!(sts["template"]["spec"]["dnsPolicy"], "ClusterFirst");

    let job = k.json(&["get", "job", "once"]);
    let spec = &job["spec"];
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["manualSelector"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        spec["template"]["spec"]["terminationGracePeriodSeconds"],
        30
    );
    // A Job without labels shows its template's, the generated ones included.
    assert_eq!(
        job["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "once"
    );

    let svc = k.json(&["get", "service", "web"])["spec"].clone();
    assert_eq!(svc["type"], "ClusterIP");
    assert_eq!(svc["sessionAffinity"], "None");
    assert_eq!(svc["ipFamilies"], json!(["IPv4"]));
    assert_eq!(svc["ipFamilyPolicy"], "SingleStack");
    assert_eq!(svc["internalTrafficPolicy"], "Cluster");
    assert_eq!(
        svc["ports"],
        json!([{"port": 80, "protocol": "TCP", "targetPort": 80}])
    );

    // Defaults are not changes: applying the same manifests again changes nothing. Except
    // that kubectl, as against a real server, patches a StatefulSet's claim templates each
    // time (an atomic list the server adds `volumeMode` and `status` to), to no effect.
    let again = k.ok_stdin(&["apply", "-f", "-"], WORKLOADS);
    assert_eq!(
        again.lines().collect::<Vec<_>>(),
        [
            "deployment.apps/web unchanged",
            "statefulset.apps/db configured",
            "job.batch/once unchanged",
            "service/web unchanged",
        ]
    );
    let sts = k.json(&["get", "statefulset", "db"]);
    assert_eq!(sts["metadata"]["generation"], 1, "{sts}");
    // Server-side apply, as kip writes: the second apply of the same manifests is a no-op, the
    // defaults it leaves out notwithstanding.
    k.ok_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        WORKLOADS,
    );
    // (The controllers may still be writing statuses: compare what an apply writes.)
    let applied = |k: &Kubectl| -> Vec<Value> {
        [
            "deployment/web",
            "statefulset/db",
            "job/once",
            "service/web",
        ]
        .iter()
        .map(|o| {
            let obj = k.json(&["get", o]);
            let meta = &obj["metadata"];
            json!([meta["managedFields"], meta["generation"], obj["spec"]])
        })
        .collect()
    };
    let before = applied(&k);
    // managedFields times have whole seconds: a new one would show.
    std::thread::sleep(Duration::from_millis(1100));
    k.ok_stdin(&["apply", "--server-side", "-f", "-"], WORKLOADS);
    assert_eq!(applied(&k), before);
    // A Job without a restart policy gets `Always`, which a Job cannot use: worded as a real
    // server words it.
    let bad = WORKLOADS
        .split("---")
        .find(|doc| doc.contains("kind: Job"))
        .expect("job")
        .replace("name: once", "name: twice")
        .replace("      restartPolicy: Never\n", "");
    let out = k.run_with_stdin(&["apply", "-f", "-"], Some(&bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#),
        "{err}"
    );
}

fn eventually_kubectl(k: &Kubectl, args: &[&str], ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = k.json(args);
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {args:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kubectl create service nodeport` writes the Service on the client (the sandbox does not
/// speak the protobuf it would send), then `kubectl create -f` sends it.
fn create_node_port(k: &Kubectl, name: &str, node_port: Option<u16>) -> std::process::Output {
    let mut args = vec![
        "create".to_string(),
        "service".into(),
        "nodeport".into(),
        name.into(),
        "--tcp=80:8080".into(),
        "--dry-run=client".into(),
        "-o".into(),
        "yaml".into(),
    ];
    if let Some(port) = node_port {
        args.push(format!("--node-port={port}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manifest = k.ok(&args);
    k.run_with_stdin(&["create", "-f", "-"], Some(&manifest))
}

fn node_port_of(k: &Kubectl, name: &str) -> u64 {
    let svc = k.json(&["get", "service", name]);
    svc["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port")
}

#[test]
fn node_ports_are_allocated_once_and_checked_like_a_real_server() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    for name in ["one", "two", "three"] {
        let out = create_node_port(&k, name, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ports: Vec<u64> = ["one", "two", "three"]
        .iter()
        .map(|n| node_port_of(&k, n))
        .collect();
    for p in &ports {
        assert!((30000..=32767).contains(p), "{ports:?}");
    }
    let unique: std::collections::HashSet<_> = ports.iter().collect();
    assert_eq!(unique.len(), 3, "{ports:?}");
    let svc = k.json(&["get", "service", "one"])["spec"].clone();
    assert_eq!(svc["externalTrafficPolicy"], "Cluster");
    assert_eq!(svc["ports"][0]["targetPort"], 8080);

    let taken = u16::try_from(ports[0]).expect("port");
    let out = create_node_port(&k, "four", Some(taken));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "The Service \"four\" is invalid: spec.ports[0].nodePort: Invalid value: {taken}: provided port is already allocated"
        )),
        "{err}"
    );
    let out = create_node_port(&k, "five", Some(80));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{err}"
    );
    // Deleting a service frees its port.
    k.ok(&["delete", "service", "one"]);
    let out = create_node_port(&k, "four", Some(taken));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node_port_of(&k, "four"), ports[0]);
}

fn root_ca(k: &Kubectl, ns: &str) -> Option<String> {
    let out = k.run(&[
        "get",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        ns,
        "-o",
        "json",
    ]);
    if !out.status.success() {
        return None;
    }
    let cm: Value = serde_json::from_slice(&out.stdout).ok()?;
    cm["data"]["ca.crt"].as_str().map(String::from)
}

/// `kubectl create namespace` would send protobuf, which the sandbox does not speak.
fn create_namespace(k: &Kubectl, name: &str) {
    let manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
    k.ok_stdin(&["create", "-f", "-"], &manifest);
}

/// Polls `check` for a while: kubectl alone takes a good part of a second on a busy machine,
/// so how soon the sandbox acts is read off its timestamps instead.
fn soon<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "no {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn created_at(k: &Kubectl, args: &[&str]) -> k8s_openapi::jiff::Timestamp {
    let obj = k.json(args);
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a creationTimestamp")
}

#[test]
fn every_namespace_has_its_service_account_and_root_ca() {
    let mut sb = ServedSandbox::start();
    let k = sb.kubectl();
    let ca = soon("the CA in default", || root_ca(&k, "default"));
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    for ns in ["kube-system", "kube-public", "kube-node-lease"] {
        assert_eq!(soon(ns, || root_ca(&k, ns)), ca, "{ns}");
        k.ok(&["get", "serviceaccount", "default", "-n", ns]);
    }
    create_namespace(&k, "team");
    let fresh = soon("root CA in a new namespace", || root_ca(&k, "team"));
    assert_eq!(fresh, ca);
    soon("service account in a new namespace", || {
        let out = k.run(&["get", "serviceaccount", "default", "-n", "team"]);
        out.status.success().then_some(())
    });
    // Within a second of the namespace (timestamps have whole seconds).
    let namespace = created_at(&k, &["get", "namespace", "team"]);
    for what in [
        ["get", "configmap", "kube-root-ca.crt", "-n", "team"],
        ["get", "serviceaccount", "default", "-n", "team"],
    ] {
        let made = created_at(&k, &what);
        assert!(
            made.duration_since(namespace) <= k8s_openapi::jiff::SignedDuration::from_secs(1),
            "{what:?}: {namespace} then {made}"
        );
    }

    // Deleted, recreated: in a namespace made again, and the objects themselves.
    k.ok(&["delete", "namespace", "team", "--wait=true"]);
    create_namespace(&k, "team");
    soon("root CA in a namespace made again", || root_ca(&k, "team"));
    k.ok(&["delete", "configmap", "kube-root-ca.crt", "-n", "team"]);
    k.ok(&["delete", "serviceaccount", "default", "-n", "team"]);
    soon("root CA after deletion", || root_ca(&k, "team"));
    soon("service account after deletion", || {
        k.run(&["get", "serviceaccount", "default", "-n", "team"])
            .status
            .success()
            .then_some(())
    });

    // One CA per home: the same after a restart.
    sb.kill9();
    sb.restart();
    let k = sb.kubectl();
    assert_eq!(root_ca(&k, "default").as_deref(), Some(ca.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_clients_read_a_complete_node_and_defaulted_objects() {
    let sb = LocalSandbox::start().await;
    let client = sb.client();
    let nodes: Api<Node> = Api::all(client.clone());
    // k8s-openapi requires every nodeInfo field: a missing one fails the read.
    let node = nodes
        .get("sandbox")
        .await
        .expect("the node reads as a typed Node");
    let status = node.status.expect("status");
    let info = status.node_info.expect("nodeInfo");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(info.architecture, arch);
    assert_eq!(info.operating_system, "linux");
    for field in [
        &info.machine_id,
        &info.system_uuid,
        &info.boot_id,
        &info.kernel_version,
        &info.os_image,
        &info.container_runtime_version,
        &info.kubelet_version,
    ] {
        assert!(!field.is_empty(), "{info:?}");
    }
    let capacity = status.capacity.expect("capacity");
    let allocatable = status.allocatable.expect("allocatable");
    for resource in ["cpu", "memory", "pods", "ephemeral-storage"] {
        assert!(capacity.contains_key(resource), "{capacity:?}");
        assert!(allocatable.contains_key(resource), "{allocatable:?}");
    }
    let addresses = status.addresses.expect("addresses");
    assert!(addresses.iter().any(|a| a.type_ == "InternalIP"));
    let conditions = status.conditions.expect("conditions");
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    let labels = node.metadata.labels.expect("labels");
    assert_eq!(
        labels.get("kubernetes.io/arch").map(String::as_str),
        Some(arch)
    );
    assert!(
        nodes
            .list(&Default::default())
            .await
            .expect("nodes list")
            .items
            .len()
            == 1
    );

    // A new namespace gets its account and CA.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "typed"}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "typed");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "typed");
    eventually(
        Duration::from_secs(5),
        "the default service account",
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
    let ca = eventually(Duration::from_secs(5), "kube-root-ca.crt", || async {
        maps.get_opt("kube-root-ca.crt").await.ok().flatten()
    })
    .await;
    assert!(ca.data.expect("data")["ca.crt"].contains("BEGIN CERTIFICATE"));

    // Typed objects come back with the server's defaults.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "typed");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]}},
        },
    }))
    .expect("deployment");
    let stored = deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("created");
    let spec = stored.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let pod_spec = spec.template.spec.expect("pod spec");
    assert_eq!(
        pod_spec.containers[0].image_pull_policy.as_deref(),
        Some("Always")
    );
    assert_eq!(pod_spec.dns_policy.as_deref(), Some("ClusterFirst"));

    let services: Api<Service> = Api::namespaced(client, "typed");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }))
    .expect("service");
    let stored = services
        .create(&PostParams::default(), &svc)
        .await
        .expect("created");
    let spec = stored.spec.expect("spec");
    let node_port = spec.ports.expect("ports")[0]
        .node_port
        .expect("a node port");
    assert!((30000..=32767).contains(&node_port));
    assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
}

#[test]
fn kubectl_shows_what_the_node_reports() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let wide = k.ok(&["get", "nodes", "-o", "wide"]);
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    let row = lines.next().expect("the node");
    assert!(row.starts_with("sandbox "), "{row}");
    assert!(
        row.contains(" Ready ") && row.contains(" 127.0.0.1 ") && row.contains(" <none> "),
        "{row}"
    );
    assert!(
        row.trim_end()
            .ends_with(&format!("kip-sandbox://{}", env!("CARGO_PKG_VERSION"))),
        "{row}"
    );
    let node = k.json(&["get", "node", "sandbox"]);
    assert_eq!(
        node["status"]["nodeInfo"]["architecture"],
        node["metadata"]["labels"]["kubernetes.io/arch"]
    );
}
