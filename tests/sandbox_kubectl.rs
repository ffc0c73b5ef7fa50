//! The sandbox through the real `kubectl`, against the kubeconfig `kip sandbox serve` writes.

use serde_json::Value;

use crate::common::ServedSandbox;

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
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
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  rules:
  - host: web.example.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port: {number: 80}
"#;

fn lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn apply_get_patch_scale_rollout_logs_delete() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();

    let out = k.ok_stdin(&["apply", "-f", "-"], MANIFEST);
    assert_eq!(
        lines(&out),
        [
            "deployment.apps/web created",
            "service/web created",
            "ingress.networking.k8s.io/web created"
        ]
    );
    let again = k.ok_stdin(&["apply", "-f", "-"], MANIFEST);
    assert_eq!(
        lines(&again),
        [
            "deployment.apps/web unchanged",
            "service/web unchanged",
            "ingress.networking.k8s.io/web unchanged"
        ]
    );

    let status = k.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let waited = k.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=30s",
    ]);
    assert!(
        waited.contains("deployment.apps/web condition met"),
        "{waited}"
    );

    // Plain table output prints the columns kubectl users know.
    let table = k.ok(&["get", "deployments"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(
        table.lines().nth(1).unwrap_or("").starts_with("web"),
        "{table}"
    );
    assert!(table.contains("2/2"), "{table}");
    let svc = k.ok(&["get", "svc", "web"]);
    assert!(svc.contains("ClusterIP") && svc.contains("80/TCP"), "{svc}");

    let json = k.json(&["get", "deployment", "web"]);
    assert_eq!(json["spec"]["replicas"], 2);
    assert_eq!(json["status"]["readyReplicas"], 2);
    let ingress = k.json(&["get", "ingress", "web"]);
    assert_eq!(
        ingress["status"]["loadBalancer"]["ingress"][0]["ip"],
        "127.0.0.1"
    );

    let selected = k.ok(&[
        "get",
        "deployments,services",
        "-l",
        "tier=front",
        "-o",
        "name",
    ]);
    assert_eq!(lines(&selected), ["deployment.apps/web"]);

    let merged = k.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"patched":"yes"}}}"#,
    ]);
    assert!(merged.contains("deployment.apps/web patched"), "{merged}");
    let strategic = k.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}"#,
    ]);
    assert!(
        strategic.contains("deployment.apps/web patched"),
        "{strategic}"
    );
    let patched = k.json(&["get", "deployment", "web"]);
    assert_eq!(patched["metadata"]["labels"]["patched"], "yes");
    let containers = patched["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        containers.len(),
        1,
        "the strategic patch merged the container by name"
    );
    assert_eq!(containers[0]["image"], "nginx:1.28");
    assert_eq!(
        containers[0]["ports"][0]["containerPort"], 80,
        "fields not in the patch stay"
    );

    let scaled = k.ok(&["scale", "deployment/web", "--replicas=3"]);
    assert!(scaled.contains("deployment.apps/web scaled"), "{scaled}");
    k.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let pods = k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    assert_eq!(lines(&pods).len(), 3, "{pods}");
    for pod in lines(&pods) {
        let json = k.json(&["get", pod]);
        assert_eq!(
            json["spec"]["containers"][0]["image"], "nginx:1.28",
            "the rollout replaced old pods"
        );
    }

    let pod = lines(&pods)[0].to_string();
    let logs = k.ok(&["logs", &pod]);
    assert!(logs.contains("started container web"), "{logs}");
    assert!(logs.contains("listening on :80/TCP"), "{logs}");

    let deleted = k.ok(&["delete", "deployment", "web"]);
    assert!(
        deleted.contains("deployment.apps \"web\" deleted"),
        "{deleted}"
    );
    let gone = k.fails(&["get", "deployment", "web"]);
    assert!(gone.contains("NotFound"), "{gone}");
}

#[test]
fn server_side_apply_and_namespaces() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let created = k.ok_stdin(
        &["create", "-f", "-"],
        "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"shop\"}}",
    );
    assert!(created.contains("namespace/shop created"), "{created}");
    let out = k.ok_stdin(
        &["apply", "--server-side", "-n", "shop", "-f", "-"],
        MANIFEST,
    );
    assert_eq!(
        lines(&out),
        [
            "deployment.apps/web serverside-applied",
            "service/web serverside-applied",
            "ingress.networking.k8s.io/web serverside-applied",
        ]
    );
    let dep = k.json(&[
        "get",
        "deployment",
        "web",
        "-n",
        "shop",
        "--show-managed-fields",
    ]);
    let managers: Vec<&str> = dep["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|e| e["manager"].as_str()).collect())
        .unwrap_or_default();
    assert!(managers.contains(&"kubectl"), "{managers:?}");

    let deleted = k.ok(&["delete", "namespace", "shop", "--timeout=30s"]);
    assert!(deleted.contains("namespace \"shop\" deleted"), "{deleted}");
    let err = k.fails(&["get", "namespace", "shop"]);
    assert!(err.contains("NotFound"), "{err}");
    let left: Value = k.json(&["get", "deployments", "-A"]);
    assert_eq!(
        left["items"].as_array().map(Vec::len),
        Some(0),
        "the namespace's content went with it"
    );
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: apps.kipper.run
spec:
  group: kipper.run
  scope: Namespaced
  names: {plural: apps, singular: app, kind: App, shortNames: [kapp]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    additionalPrinterColumns:
    - {name: Image, type: string, jsonPath: .spec.image}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
"#;

const CUSTOM: &str = r#"
apiVersion: kipper.run/v1alpha1
kind: App
metadata: {name: api}
spec: {image: "ghcr.io/acme/api:1", replicas: 2}
"#;

#[test]
fn crd_then_custom_resources() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let out = k.ok_stdin(&["apply", "-f", "-"], CRD);
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/apps.kipper.run created"),
        "{out}"
    );
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/apps.kipper.run",
        "--timeout=30s",
    ]);
    let out = k.ok_stdin(&["apply", "-f", "-"], CUSTOM);
    assert!(out.contains("app.kipper.run/api created"), "{out}");
    let table = k.ok(&["get", "apps.kipper.run"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "IMAGE", "REPLICAS"], "{table}");
    assert!(table.contains("ghcr.io/acme/api:1"), "{table}");
    let short = k.ok(&["get", "kapp", "api", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(short, "2");
}

#[test]
fn errors_read_like_a_real_server() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let err = k.fails(&["get", "pod", "nope"]);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );
    let err = k.fails(&["get", "widgets"]);
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\""),
        "{err}"
    );
    let bad = MANIFEST.replace(
        "name: web\n  labels: {app: web, tier: front}",
        "name: Web_Bad\n  labels: {app: web}",
    );
    let out = k.run_with_stdin(&["apply", "-f", "-"], Some(&bad));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Invalid") && stderr.contains("Web_Bad"),
        "{stderr}"
    );
}

/// The node takes 110 pods, as a kubelet does by default; kubectl shows the rest Pending with
/// the scheduler's reason, and schedules one when room is made.
#[test]
fn a_full_node_leaves_pods_pending() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let capacity = k.ok(&[
        "get",
        "node",
        "sandbox",
        "-o",
        "jsonpath={.status.capacity.pods} {.status.allocatable.pods}",
    ]);
    assert_eq!(capacity, "110 110");
    let many = MANIFEST
        .split("---")
        .next()
        .expect("the Deployment")
        .replace("replicas: 2", "replicas: 111");
    k.ok_stdin(&["apply", "-f", "-"], &many);
    // Pending and unscheduled: no node, and the scheduler's condition says why.
    let pending = |k: &crate::common::Kubectl| -> Vec<String> {
        let pods = k.json(&["get", "pods", "--field-selector=status.phase=Pending"]);
        pods["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|p| {
                p["spec"]["nodeName"].is_null()
                    && p["status"]["conditions"][0]["reason"] == "Unschedulable"
            })
            .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let waiting = loop {
        let running = k.ok(&[
            "get",
            "pods",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ]);
        let waiting = pending(&k);
        if lines(&running).len() == 110 && waiting.len() == 1 {
            break waiting[0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not 110 running and 1 pending: {running}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let described = k.ok(&["describe", "pod", &waiting]);
    assert!(described.contains("FailedScheduling"), "{described}");
    assert!(
        described.contains("0/1 nodes are available: 1 Too many pods."),
        "{described}"
    );

    // Deleting a running pod makes room: the pending one runs, its replacement waits.
    let running = k.ok(&[
        "get",
        "pods",
        "--field-selector=status.phase=Running",
        "-o",
        "name",
    ]);
    let victim = lines(&running)[0].to_string();
    k.ok(&["delete", &victim, "--wait=false"]);
    k.ok(&[
        "wait",
        &format!("pod/{waiting}"),
        "--for=condition=Ready",
        "--timeout=60s",
    ]);
}
