//! kubectl's generators (`kubectl create …`, `kubectl run`) send protobuf bodies: the sandbox
//! reads them for the built-in kinds.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::common::ServedSandbox;

#[test]
fn kubectl_generators_create_built_in_kinds() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();

    k.ok(&["create", "namespace", "x"]);
    assert_eq!(k.json(&["get", "namespace", "x"])["metadata"]["name"], "x");

    k.ok(&["create", "configmap", "c", "--from-literal=a=1"]);
    assert_eq!(k.json(&["get", "configmap", "c"])["data"]["a"], "1");

    // []byte is base64 in JSON, as the real server writes it.
    k.ok(&["create", "secret", "generic", "s", "--from-literal=p=q"]);
    let secret = k.json(&["get", "secret", "s"]);
    assert_eq!(secret["data"]["p"], "cQ==");
    assert_eq!(secret["type"], "Opaque");

    k.ok(&["create", "service", "clusterip", "s", "--tcp=80:8080"]);
    let port = &k.json(&["get", "service", "s"])["spec"]["ports"][0];
    assert_eq!(port["port"], 80);
    assert_eq!(port["targetPort"], 8080, "an IntOrString int: {port}");

    k.ok(&["create", "pdb", "p", "--selector=a=b", "--min-available=1"]);
    let pdb = k.json(&["get", "pdb", "p"]);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"]["a"], "b");
    k.ok(&[
        "create",
        "pdb",
        "q",
        "--selector=a=b",
        "--max-unavailable=50%",
    ]);
    assert_eq!(
        k.json(&["get", "pdb", "q"])["spec"]["maxUnavailable"],
        "50%"
    );
}

#[test]
fn kubectl_generators_create_networking_rbac_and_autoscaling() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();

    // An IngressRule's `http` is inlined in JSON, nested in protobuf.
    k.ok(&["create", "ingress", "i", "--rule=foo.com/bar=svc1:8080"]);
    let rule = &k.json(&["get", "ingress", "i"])["spec"]["rules"][0];
    assert_eq!(rule["host"], "foo.com");
    let path = &rule["http"]["paths"][0];
    assert_eq!(path["path"], "/bar", "{rule}");
    assert_eq!(path["backend"]["service"]["port"]["number"], 8080);

    k.ok(&[
        "create",
        "clusterrole",
        "r",
        "--verb=get,list",
        "--resource=pods",
    ]);
    let role = k.json(&["get", "clusterrole", "r"]);
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "list"])
    );
    k.ok(&["create", "rolebinding", "rb", "--clusterrole=r", "--user=u"]);
    let binding = k.json(&["get", "rolebinding", "rb"]);
    assert_eq!(binding["roleRef"]["name"], "r");
    assert_eq!(binding["subjects"][0]["name"], "u");
    k.ok(&["create", "serviceaccount", "sa"]);

    k.ok(&["create", "deployment", "d", "--image=nginx"]);
    k.ok(&[
        "expose",
        "deployment",
        "d",
        "--port=80",
        "--target-port=8080",
    ]);
    assert_eq!(
        k.json(&["get", "service", "d"])["spec"]["ports"][0]["targetPort"],
        8080
    );
    // A port without a target gets the port as its target, as the real server defaults it.
    k.ok(&["create", "service", "nodeport", "n", "--tcp=5678"]);
    let port = &k.json(&["get", "service", "n"])["spec"]["ports"][0];
    assert_eq!(port["targetPort"], 5678, "{port}");
    assert!(port["nodePort"].as_u64().is_some(), "{port}");
    k.ok(&[
        "autoscale",
        "deployment",
        "d",
        "--min=1",
        "--max=3",
        "--cpu-percent=80",
    ]);
    let hpa = k.json(&["get", "hpa", "d"]);
    assert_eq!(hpa["spec"]["maxReplicas"], 3);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "d");
}

#[test]
fn kubectl_generators_create_workloads_that_run() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();

    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
    ]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let deploy = k.json(&["get", "deployment", "web"]);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );

    // Quantities: `set resources` patches, but the limits must read back as strings.
    k.ok(&[
        "set",
        "resources",
        "deployment/web",
        "--limits=cpu=200m,memory=512Mi",
    ]);
    let deploy = k.json(&["get", "deployment", "web"]);
    let limits = &deploy["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"];
    assert_eq!(limits["cpu"], "200m", "{limits}");
    assert_eq!(limits["memory"], "512Mi", "{limits}");

    k.ok(&[
        "create",
        "deployment",
        "idle",
        "--image=nginx",
        "--replicas=0",
    ]);
    assert_eq!(
        k.json(&["get", "deployment", "idle"])["spec"]["replicas"],
        0
    );

    k.ok(&["create", "job", "j", "--image=busybox"]);
    k.ok(&["wait", "--for=condition=Complete", "job/j", "--timeout=30s"]);

    k.ok(&[
        "create",
        "cronjob",
        "c",
        "--image=busybox",
        "--schedule=*/5 * * * *",
    ]);
    let cj = k.json(&["get", "cronjob", "c"]);
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *");
    // A Job made by hand from the CronJob: kubectl copies its job template into the body.
    k.ok(&["create", "job", "now", "--from=cronjob/c"]);
    let job = k.json(&["get", "job", "now"]);
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");

    k.ok(&[
        "run",
        "p",
        "--image=nginx",
        "--port=80",
        "--restart=Never",
        "--labels=a=b",
    ]);
    let pod = k.json(&["get", "pod", "p"]);
    assert_eq!(pod["metadata"]["labels"]["a"], "b");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(
        pod["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    // A run-once pod runs, then succeeds.
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/p",
        "--timeout=30s",
    ]);
}

#[test]
fn a_garbled_protobuf_body_is_a_bad_request() {
    let sb = ServedSandbox::start();
    let (status, body) = post(
        &sb.address,
        "/api/v1/namespaces/default/configmaps",
        b"k8s\0\x12\xff\xff\xff",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("protobuf request body"), "{body}");
    let (status, body) = post(&sb.address, "/api/v1/namespaces/default/configmaps", b"{}");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("magic"), "{body}");
}

/// A protobuf POST over plain HTTP/1.1: its status and body.
fn post(address: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(address).expect("connect to the sandbox");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/vnd.kubernetes.protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).expect("write");
    conn.write_all(body).expect("write");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}
