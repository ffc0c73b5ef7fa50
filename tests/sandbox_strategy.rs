//! Fields the server owns cannot be changed by a client: the registry strategies of the
//! sandbox, seen through the real `kubectl`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Kubectl, ServedSandbox};

/// A namespace as `kubectl get namespace shop -o yaml` prints it, trimmed: a file a user
/// keeps and applies again.
const EXPORTED_NAMESPACE: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: a}
spec:
  finalizers: [kubernetes]
status:
  phase: Active
"#;

/// The same namespace as a user writes it.
const NAMESPACE: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: b}
"#;

const CONTENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: held
  namespace: shop
  finalizers: [kipper.run/test]
"#;

/// Polls `check` until it holds or 20 seconds pass.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The names `kubectl get KIND -n NS` lists.
fn names(k: &Kubectl, kind: &str, ns: &str) -> Vec<String> {
    let list = k.json(&["get", kind, "-n", ns]);
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn server_side_apply_keeps_namespace_finalizers_and_deletion_empties_it() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "--server-side", "-f", "-"], EXPORTED_NAMESPACE);
    // Applying it again without the server's fields once dropped `spec.finalizers`: the first
    // apply had taken ownership of them, and what an applier stops sending is pruned.
    k.ok_stdin(&["apply", "--server-side", "-f", "-"], NAMESPACE);
    let ns = k.json(&["get", "namespace", "shop"]);
    assert_eq!(ns["metadata"]["labels"]["team"], "b");
    assert_eq!(ns["spec"]["finalizers"], serde_json::json!(["kubernetes"]));

    k.ok_stdin(&["apply", "--server-side", "-f", "-"], CONTENT);
    eventually("the deployment's pod", || {
        !names(&k, "pods", "shop").is_empty()
    });

    k.ok(&["delete", "namespace", "shop", "--wait=false"]);
    // The finalizer on the ConfigMap keeps the namespace Terminating while the rest goes.
    let ns = k.json(&["get", "namespace", "shop"]);
    assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
    eventually("the namespace's content to go", || {
        ["deployments", "replicasets", "pods", "services"]
            .iter()
            .all(|kind| names(&k, kind, "shop").is_empty())
    });
    assert_eq!(
        k.json(&["get", "namespace", "shop"])["status"]["phase"],
        "Terminating"
    );
    k.ok(&[
        "patch",
        "configmap",
        "held",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually("the namespace to go", || {
        let out = k.run(&[
            "get",
            "namespace",
            "shop",
            "--ignore-not-found",
            "-o",
            "name",
        ]);
        out.status.success() && out.stdout.is_empty()
    });
}

/// A field of the object `kubectl get ARGS` prints.
fn field(k: &Kubectl, args: &[&str], pointer: &str) -> Value {
    k.json(args)
        .pointer(pointer)
        .cloned()
        .unwrap_or(Value::Null)
}

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {k: v}\n";

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
"#;

/// `kubectl patch KIND NAME --type=merge -p PATCH` plus `extra` flags.
fn merge_patch(k: &Kubectl, target: &[&str], patch: &str, extra: &[&str]) -> String {
    let mut args = vec!["patch"];
    args.extend(target);
    args.extend(["--type=merge", "-p", patch]);
    args.extend(extra);
    k.ok(&args)
}

/// A kubectl run that must fail; its stderr.
fn refused(k: &Kubectl, args: &[&str], stdin: Option<&str>) -> String {
    let out = k.run_with_stdin(args, stdin);
    assert!(
        !out.status.success(),
        "kubectl {args:?} should have been refused: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn namespace_finalizers_and_status_change_only_through_their_paths() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["create", "-f", "-"], NAMESPACE);
    let ns = ["namespace", "shop"];
    // A merge patch and a replace of the main resource leave both alone.
    merge_patch(
        &k,
        &ns,
        r#"{"spec":{"finalizers":[]},"status":{"phase":"Terminating"}}"#,
        &[],
    );
    let mut obj = k.json(&["get", "namespace", "shop"]);
    obj["spec"] = serde_json::json!({});
    obj["status"] = serde_json::json!({});
    k.ok_stdin(&["replace", "-f", "-"], &obj.to_string());
    let now = k.json(&["get", "namespace", "shop"]);
    assert_eq!(now["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    assert_eq!(now["status"]["phase"], "Active");
    assert_eq!(
        now["metadata"]["labels"]["kubernetes.io/metadata.name"], "shop",
        "the name label is the server's"
    );
    // `/status` changes the status, never the spec.
    merge_patch(
        &k,
        &ns,
        r#"{"spec":{"finalizers":[]},"status":{"conditions":[{"type":"Checked","status":"True"}]}}"#,
        &["--subresource=status"],
    );
    let now = k.json(&["get", "namespace", "shop"]);
    assert_eq!(now["spec"]["finalizers"], serde_json::json!(["kubernetes"]));
    assert_eq!(now["status"]["conditions"][0]["type"], "Checked");
}

#[test]
fn main_resource_writes_keep_the_status() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let get = ["get", "deployment", "web"];
    merge_patch(
        &k,
        &["deployment", "web"],
        r#"{"status":{"replicas":42}}"#,
        &[],
    );
    assert_eq!(field(&k, &get, "/status/replicas"), 1);
    // Server-side apply: the status in the configuration is neither taken nor owned.
    let with_status = format!("{DEPLOYMENT}status:\n  replicas: 42\n");
    k.ok_stdin(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &with_status,
    );
    let obj = k.json(&["get", "deployment", "web", "--show-managed-fields"]);
    assert_eq!(obj["status"]["replicas"], 1);
    let applied = obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|m| m.iter().find(|e| e["operation"] == "Apply"))
        .cloned()
        .expect("an Apply entry");
    assert!(
        applied["fieldsV1"].get("f:status").is_none(),
        "the applier owns no status: {applied}"
    );
    // A replace with another status changes the spec only (unconditionally: the controller
    // may have written the status since the read).
    let mut obj = obj;
    obj["metadata"]["resourceVersion"].take();
    obj["spec"]["replicas"] = serde_json::json!(2);
    obj["status"]["replicas"] = serde_json::json!(42);
    k.ok_stdin(&["replace", "-f", "-"], &obj.to_string());
    let now = k.json(&get);
    assert_eq!(now["spec"]["replicas"], 2);
    assert_ne!(now["status"]["replicas"], 42);
}

#[test]
fn status_writes_keep_the_spec_and_the_metadata_the_kind_protects() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    merge_patch(
        &k,
        &["deployment", "web"],
        r#"{"metadata":{"labels":{"via":"status"}},"spec":{"replicas":7}}"#,
        &["--subresource=status"],
    );
    let obj = k.json(&["get", "deployment", "web"]);
    assert_eq!(obj["spec"]["replicas"], 1);
    assert!(
        obj["metadata"]["labels"].get("via").is_none(),
        "a Deployment's labels are not the status path's"
    );

    let service =
        "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  ports: [{port: 80}]\n";
    k.ok_stdin(&["apply", "-f", "-"], service);
    merge_patch(
        &k,
        &["service", "api"],
        r#"{"metadata":{"labels":{"via":"status"}},"spec":{"ports":[{"port":81}]},"status":{"conditions":[{"type":"Checked","status":"True","reason":"Test","message":"","lastTransitionTime":"2024-01-01T00:00:00Z"}]}}"#,
        &["--subresource=status"],
    );
    let obj = k.json(&["get", "service", "api"]);
    assert_eq!(obj["spec"]["ports"][0]["port"], 80);
    assert_eq!(obj["status"]["conditions"][0]["type"], "Checked");
    assert_eq!(
        obj["metadata"]["labels"]["via"], "status",
        "a Service's status path may change its metadata"
    );
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {size: 1}
status: {ready: true}
"#;

#[test]
fn custom_resources_with_a_status_subresource_split_like_built_ins() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], CRD);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=30s",
    ]);
    k.ok_stdin(&["apply", "--server-side", "-f", "-"], WIDGET);
    let get = ["get", "widget", "w"];
    let obj = k.json(&get);
    assert!(
        obj.get("status").is_none(),
        "create drops the status: {obj}"
    );
    assert_eq!(obj["metadata"]["generation"], 1);
    merge_patch(
        &k,
        &["widget", "w"],
        r#"{"metadata":{"labels":{"x":"y"}},"spec":{"size":9},"status":{"ready":false}}"#,
        &["--subresource=status"],
    );
    let obj = k.json(&get);
    assert_eq!(obj["status"]["ready"], false);
    assert_eq!(obj["spec"]["size"], 1);
    assert!(obj["metadata"].get("labels").is_none(), "{obj}");
    assert_eq!(obj["metadata"]["generation"], 1);
    k.ok_stdin(
        &["apply", "--server-side", "-f", "-"],
        &WIDGET.replace("size: 1", "size: 2"),
    );
    let obj = k.json(&get);
    assert_eq!(obj["spec"]["size"], 2);
    assert_eq!(obj["status"]["ready"], false);
    assert_eq!(obj["metadata"]["generation"], 2);
}

#[test]
fn server_set_metadata_is_never_the_clients() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["create", "-f", "-"], CONFIGMAP);
    let get = ["get", "configmap", "conf"];
    let before = k.json(&get);
    assert!(
        before["metadata"].get("generation").is_none(),
        "a ConfigMap tracks no generation: {before}"
    );
    // What a replace sends for creationTimestamp and generation is ignored...
    let mut edited = before.clone();
    edited["metadata"]["creationTimestamp"] = serde_json::json!("2001-01-01T00:00:00Z");
    edited["metadata"]["generation"] = serde_json::json!(5);
    edited["data"]["k"] = serde_json::json!("w");
    k.ok_stdin(&["replace", "-f", "-"], &edited.to_string());
    let after = k.json(&get);
    assert_eq!(after["data"]["k"], "w");
    assert_eq!(
        after["metadata"]["creationTimestamp"],
        before["metadata"]["creationTimestamp"]
    );
    assert!(after["metadata"].get("generation").is_none());
    // ...another uid is a failed precondition...
    let mut other = after.clone();
    other["metadata"]["uid"] = serde_json::json!("00000000-0000-0000-0000-000000000000");
    let err = refused(&k, &["replace", "-f", "-"], Some(&other.to_string()));
    assert!(err.contains("Precondition failed: UID"), "{err}");
    // ...a patch of it or of the deletion fields is invalid.
    let err = refused(
        &k,
        &[
            "patch",
            "configmap",
            "conf",
            "--type=merge",
            "-p",
            r#"{"metadata":{"uid":"x","deletionTimestamp":"2030-01-01T00:00:00Z"}}"#,
        ],
        None,
    );
    assert!(
        err.contains("metadata.uid") && err.contains("metadata.deletionTimestamp"),
        "{err}"
    );
    assert!(field(&k, &get, "/metadata/deletionTimestamp").is_null());

    // A create takes none of them either.
    let mut copy = after.clone();
    copy["metadata"]["name"] = serde_json::json!("copy");
    k.ok_stdin(&["create", "-f", "-"], &copy.to_string());
    let created = k.json(&["get", "configmap", "copy"]);
    assert_ne!(created["metadata"]["uid"], after["metadata"]["uid"]);
    assert!(created["metadata"].get("generation").is_none());
}

#[test]
fn no_new_finalizers_on_an_object_being_deleted() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [a.example/x]}\n",
    );
    k.ok(&["delete", "configmap", "held", "--wait=false"]);
    let err = refused(
        &k,
        &[
            "patch",
            "configmap",
            "held",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":["a.example/x","b.example/y"]}}"#,
        ],
        None,
    );
    assert!(err.contains("no new finalizers"), "{err}");
    merge_patch(
        &k,
        &["configmap", "held"],
        r#"{"metadata":{"finalizers":null}}"#,
        &[],
    );
}

#[test]
fn generation_moves_with_the_spec_of_kinds_that_track_it() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let get = ["get", "deployment", "web"];
    assert_eq!(
        field(&k, &get, "/metadata/generation"),
        1,
        "the controller's revision annotation goes through /status"
    );
    merge_patch(
        &k,
        &["deployment", "web"],
        r#"{"metadata":{"labels":{"x":"y"}}}"#,
        &[],
    );
    assert_eq!(field(&k, &get, "/metadata/generation"), 1);
    merge_patch(
        &k,
        &["deployment", "web"],
        r#"{"metadata":{"annotations":{"note":"1"}}}"#,
        &[],
    );
    assert_eq!(
        field(&k, &get, "/metadata/generation"),
        2,
        "a Deployment's annotations are part of what it asks for"
    );
    merge_patch(
        &k,
        &["deployment", "web"],
        r#"{"spec":{"replicas":2}}"#,
        &[],
    );
    assert_eq!(field(&k, &get, "/metadata/generation"), 3);
    merge_patch(
        &k,
        &["deployment", "web"],
        r#"{"metadata":{"generation":1}}"#,
        &[],
    );
    assert_eq!(field(&k, &get, "/metadata/generation"), 3);
}

#[test]
fn managed_fields_are_cleared_only_by_one_empty_entry() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["create", "-f", "-"], CONFIGMAP);
    let get = ["get", "configmap", "conf", "--show-managed-fields"];
    merge_patch(
        &k,
        &["configmap", "conf"],
        r#"{"metadata":{"managedFields":[]}}"#,
        &[],
    );
    assert!(field(&k, &get, "/metadata/managedFields").is_array());
    merge_patch(
        &k,
        &["configmap", "conf"],
        r#"{"metadata":{"managedFields":[{}]}}"#,
        &[],
    );
    assert!(field(&k, &get, "/metadata/managedFields").is_null());
    // A reset with a change leaves the writer owning just that change.
    merge_patch(
        &k,
        &["configmap", "conf"],
        r#"{"metadata":{"managedFields":[{}]},"data":{"k2":"v2"}}"#,
        &[],
    );
    let managed = field(&k, &get, "/metadata/managedFields");
    assert_eq!(managed.as_array().map(Vec::len), Some(1), "{managed}");
    assert_eq!(
        managed[0]["fieldsV1"],
        serde_json::json!({"f:data": {"f:k2": {}}})
    );
}

#[test]
fn immutable_fields_are_refused_on_update() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    let err = refused(
        &k,
        &[
            "patch",
            "deployment",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"selector":{"matchLabels":{"app":"web","v":"2"}},"template":{"metadata":{"labels":{"app":"web","v":"2"}}}}}"#,
        ],
        None,
    );
    assert!(
        err.contains("spec.selector") && err.contains("field is immutable"),
        "{err}"
    );

    let service =
        "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  ports: [{port: 80}]\n";
    k.ok_stdin(&["apply", "-f", "-"], service);
    let err = refused(
        &k,
        &[
            "patch",
            "service",
            "api",
            "--type=merge",
            "-p",
            r#"{"spec":{"clusterIP":"10.43.99.99","clusterIPs":["10.43.99.99"]}}"#,
        ],
        None,
    );
    assert!(err.contains("may not change once set"), "{err}");
    // A replace that leaves clusterIP out keeps the allocated one.
    let ip = field(&k, &["get", "service", "api"], "/spec/clusterIP");
    k.ok_stdin(&["replace", "-f", "-"], service);
    assert_eq!(field(&k, &["get", "service", "api"], "/spec/clusterIP"), ip);

    k.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: solo}\nspec:\n  restartPolicy: Never\n  containers: [{name: solo, image: nginx:1.27}]\n",
    );
    // A new image is the one change a pod takes (a strategic patch merges containers by name).
    k.ok(&[
        "patch",
        "pod",
        "solo",
        "-p",
        r#"{"spec":{"containers":[{"name":"solo","image":"nginx:1.28"}]}}"#,
    ]);
    assert_eq!(
        field(&k, &["get", "pod", "solo"], "/spec/containers/0/image"),
        "nginx:1.28"
    );
    let err = refused(
        &k,
        &[
            "patch",
            "pod",
            "solo",
            "--type=merge",
            "-p",
            r#"{"spec":{"hostname":"elsewhere"}}"#,
        ],
        None,
    );
    assert!(err.contains("pod updates may not change fields"), "{err}");

    k.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: once, image: busybox}]\n",
    );
    let err = refused(
        &k,
        &[
            "patch",
            "job",
            "once",
            "--type=merge",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"once","image":"alpine"}]}}}}"#,
        ],
        None,
    );
    assert!(
        err.contains("spec.template") && err.contains("field is immutable"),
        "{err}"
    );
}

/// The same split through kube-rs's status calls.
#[tokio::test(flavor = "multi_thread")]
async fn kube_status_calls_change_only_the_status() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use kube::api::{Api, Patch, PatchParams, PostParams};

    let sb = crate::common::LocalSandbox::start().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(sb.client(), "default");
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Lost"},
    }))
    .unwrap();
    let created = claims.create(&PostParams::default(), &claim).await.unwrap();
    let phase = |c: &PersistentVolumeClaim| c.status.as_ref().and_then(|s| s.phase.clone());
    assert_ne!(
        phase(&created).as_deref(),
        Some("Lost"),
        "create sets the status"
    );

    let bound = crate::common::eventually(Duration::from_secs(15), "the claim bound", || {
        let claims = claims.clone();
        async move {
            let c = claims.get("data").await.ok()?;
            (phase(&c).as_deref() == Some("Bound")).then_some(c)
        }
    })
    .await;
    let condition = |c: &PersistentVolumeClaim| {
        c.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.first())
            .map(|c| c.type_.clone())
    };

    let mut edited = bound;
    edited.spec.as_mut().unwrap().access_modes = Some(vec!["ReadWriteMany".into()]);
    edited.status.as_mut().unwrap().conditions = Some(vec![
        serde_json::from_value(serde_json::json!({"type": "Resizing", "status": "True"})).unwrap(),
    ]);
    let replaced = claims
        .replace_status("data", &PostParams::default(), &edited)
        .await
        .unwrap();
    assert_eq!(condition(&replaced).as_deref(), Some("Resizing"));
    let modes = |c: &PersistentVolumeClaim| c.spec.as_ref().unwrap().access_modes.clone();
    assert_eq!(modes(&replaced), Some(vec!["ReadWriteOnce".to_string()]));

    let patched = claims
        .patch_status(
            "data",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "spec": {"accessModes": ["ReadOnlyMany"]},
                "status": {"conditions": [{"type": "FileSystemResizePending", "status": "True"}]},
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        condition(&patched).as_deref(),
        Some("FileSystemResizePending")
    );
    assert_eq!(modes(&patched), Some(vec!["ReadWriteOnce".to_string()]));

    // And the main resource the other way round, its immutable spec refused.
    let err = claims
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"accessModes": ["ReadWriteMany"]}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    let kept = claims
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"conditions": null}})),
        )
        .await
        .unwrap();
    assert_eq!(condition(&kept).as_deref(), Some("FileSystemResizePending"));
}
