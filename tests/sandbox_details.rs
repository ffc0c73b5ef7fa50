//! The smaller things a real API server does that clients notice: the count of what a paged
//! list has left, field selectors limited to the fields a kind can be selected by, `dryRun`
//! values checked, and dry runs that answer with the versions stored. Through the real
//! `kubectl`.

use crate::common::{Kubectl, ServedSandbox};

fn stderr_of(k: &Kubectl, args: &[&str]) -> String {
    k.fails(args)
}

#[test]
fn a_page_says_how_many_items_are_left_unless_the_list_is_filtered() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let mut objects = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: paged}\n");
    for i in 0..5 {
        objects.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: paged, labels: {{set: one}}}}\n"
        ));
    }
    k.ok_stdin(&["apply", "-f", "-"], &objects);
    let all = k.json(&["get", "configmaps", "-n", "paged"]);
    let total = all["items"].as_array().unwrap().len();
    let page: serde_json::Value = serde_json::from_str(&k.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/paged/configmaps?limit=2",
    ]))
    .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["metadata"]["remainingItemCount"],
        total - 2,
        "{}",
        page["metadata"]
    );
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let next: serde_json::Value = serde_json::from_str(&k.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/paged/configmaps?limit=2&continue={token}"),
    ]))
    .unwrap();
    assert_eq!(next["metadata"]["remainingItemCount"], total - 4);
    let filtered: serde_json::Value = serde_json::from_str(&k.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/paged/configmaps?limit=2&labelSelector=set%3Done",
    ]))
    .unwrap();
    assert!(filtered["metadata"]["continue"].is_string());
    assert_eq!(
        filtered["metadata"].get("remainingItemCount"),
        None,
        "not counted for a filtered list"
    );
    let last: serde_json::Value = serde_json::from_str(&k.ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/paged/configmaps?limit=100",
    ]))
    .unwrap();
    assert_eq!(
        last["metadata"].get("remainingItemCount"),
        None,
        "nothing left"
    );
}

#[test]
fn a_field_selector_names_a_field_the_kind_can_be_selected_by() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let err = stderr_of(
        &k,
        &["get", "pods", "-A", "--field-selector", "spec.foo=bar"],
    );
    assert!(err.contains("field label not supported: spec.foo"), "{err}");
    let err = stderr_of(&k, &["get", "configmaps", "--field-selector", "data.a=1"]);
    assert!(err.contains("field label not supported: data.a"), "{err}");
    let err = stderr_of(
        &k,
        &["get", "deployments", "--field-selector", "spec.replicas=1"],
    );
    assert!(
        err.contains("field label not supported: spec.replicas"),
        "{err}"
    );
    for (kind, selector) in [
        ("pods", "status.phase=Running,spec.nodeName!=x"),
        ("secrets", "type=Opaque"),
        ("events", "involvedObject.kind=Pod,reason=Scheduled"),
        ("namespaces", "status.phase=Active,metadata.name=default"),
        ("services", "spec.type=ClusterIP"),
        ("deployments", "metadata.name=web"),
    ] {
        k.ok(&["get", kind, "-A", "--field-selector", selector]);
    }
}

#[test]
fn dry_run_values_are_checked_and_a_dry_run_answers_with_the_stored_version() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"trial"},"data":{"a":"1"}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cm.json");
    std::fs::write(&file, body).unwrap();
    let file = file.display().to_string();
    let err = stderr_of(
        &k,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps?dryRun=Al",
            "-f",
            &file,
        ],
    );
    assert!(
        err.contains("dryRun: Unsupported value: []string{\"Al\"}: supported values: \"All\""),
        "{err}"
    );
    let stored = k.run(&["get", "configmap", "trial"]);
    assert!(!stored.status.success(), "a refused dry run stored nothing");

    k.ok(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        &file,
    ]);
    let before = k.json(&["get", "configmap", "trial"]);
    let rv = before["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let list_rv = k.json(&["get", "configmaps"])["metadata"]["resourceVersion"].clone();
    let trial: serde_json::Value = serde_json::from_str(&k.ok(&[
        "patch",
        "configmap",
        "trial",
        "--dry-run=server",
        "-p",
        r#"{"data":{"a":"2"}}"#,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(trial["data"]["a"], "2", "the answer shows the change");
    assert_eq!(
        trial["metadata"]["resourceVersion"],
        rv.as_str(),
        "but not a new version"
    );
    let after = k.json(&["get", "configmap", "trial"]);
    assert_eq!(after["data"]["a"], "1");
    assert_eq!(after["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(
        k.json(&["get", "configmaps"])["metadata"]["resourceVersion"],
        list_rv,
        "the store's version did not move"
    );
    let created: serde_json::Value = serde_json::from_str(&k.ok_stdin(
        &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: never, namespace: default}\n",
    ))
    .unwrap();
    assert_eq!(
        created["metadata"].get("resourceVersion"),
        None,
        "{created}"
    );
    let deleted = k.ok(&["delete", "configmap", "trial", "--dry-run=server"]);
    assert!(deleted.contains("deleted (server dry run)"), "{deleted}");
    k.ok(&["get", "configmap", "trial"]);
    // kubectl says a delete is a dry run in its DeleteOptions body; a collection too.
    k.ok(&["delete", "configmaps", "--all", "--dry-run=server"]);
    k.ok(&["get", "configmap", "trial"]);
}

/// A watch that asked for bookmarks gets one just before it times out, at the store's newest
/// version, as the real watch cache sends it; a quiet watch would otherwise end without one.
#[test]
fn a_watch_gets_a_bookmark_just_before_it_times_out() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    // Quiet means set up: the namespace's root CA is written just after the start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !k
        .run(&["get", "configmap", "kube-root-ca.crt"])
        .status
        .success()
    {
        assert!(std::time::Instant::now() < deadline, "no kube-root-ca.crt");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The list's own version (kubectl's `get -o json` prints a List without one).
    let list = k.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("a list");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let started = std::time::Instant::now();
    let stream = k.ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=3"
        ),
    ]);
    let events: Vec<serde_json::Value> = stream
        .lines()
        .map(|l| serde_json::from_str(l).expect("one event per line"))
        .collect();
    assert_eq!(events.len(), 1, "one bookmark and nothing else: {stream}");
    assert_eq!(events[0]["type"], "BOOKMARK");
    assert!(
        events[0]["object"]["metadata"]["resourceVersion"].is_string(),
        "{stream}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "the watch lasted until its timeout"
    );
}

/// An error is the real server's `Status` byte for byte: its fields in the same order,
/// `details` before `code`, and the newline every JSON body ends with.
#[test]
fn a_status_body_reads_as_the_real_servers() {
    let sb = ServedSandbox::start();
    let (code, body) = crate::common::raw_request(
        &sb.address,
        "GET",
        "/api/v1/namespaces/default/configmaps/nope",
        None,
        b"",
    )
    .unwrap();
    assert_eq!(code, 404);
    assert_eq!(
        body,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"configmaps \\\"nope\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"nope\",\"kind\":\"configmaps\"},\"code\":404}\n"
    );
    let (_, list) =
        crate::common::raw_request(&sb.address, "GET", "/api/v1/namespaces", None, b"").unwrap();
    assert!(list.ends_with("]}\n"), "{list}");
}

/// Applying an object of a kind the cluster does not serve (a CRD not yet applied) fails as on
/// a real cluster, with kubectl's own advice, not a 404 from the OpenAPI endpoint.
#[test]
fn an_unknown_kind_gets_kubectls_advice_to_install_its_crd() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let out = k.run_with_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: kipper.run/v1alpha1\nkind: Service\nmetadata: {name: x, namespace: default}\nspec: {type: postgres}\n"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no matches for kind \"Service\" in version \"kipper.run/v1alpha1\"")
            && err.contains("ensure CRDs are installed first"),
        "{err}"
    );
}

/// A bare pod that runs to completion (`restartPolicy: Never`) is seen Running, its container
/// started, before it is Succeeded: a client watching it sees it run, as on a kubelet.
#[tokio::test]
async fn a_run_once_pod_is_seen_running_before_it_succeeds() {
    use futures_util::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, PostParams, WatchEvent, WatchParams};

    let sb = ServedSandbox::start();
    let pods: Api<Pod> = Api::namespaced(sb.client().await, "default");
    let rv = pods
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = pods
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "once"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["echo", "hi"]}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let mut phases: Vec<String> = Vec::new();
    while let Some(Ok(event)) = events.next().await {
        let (WatchEvent::Added(p) | WatchEvent::Modified(p)) = event else {
            continue;
        };
        let status = p.status.unwrap_or_default();
        let phase = status.phase.unwrap_or_default();
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        if phase == "Succeeded" {
            let state = status.container_statuses.unwrap()[0].state.clone().unwrap();
            let done = state.terminated.expect("terminated");
            assert_eq!(done.exit_code, 0);
            assert!(done.started_at.is_some() && done.finished_at.is_some());
            break;
        }
    }
    assert_eq!(phases, ["Pending", "Running", "Succeeded"]);
}
