//! CRD structural schemas are enforced, on kip's own CRDs as shipped: wrong types, missing
//! required fields, values outside an enum or a range are refused with a 422 naming each
//! field; unknown fields are refused, warned about or pruned as the client's `fieldValidation`
//! asks; defaults are applied. Through the real `kubectl` and kube-rs.

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;

use crate::common::{Kubectl, ServedSandbox};

const APP_CRD: &str = include_str!("../templates/crds/apps.yaml.j2");
const SERVICE_CRD: &str = include_str!("../templates/crds/services.yaml.j2");

/// An App as a user might write it, `spec` lines in `extra`.
fn app(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: kipper.run/v1alpha1\nkind: App\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}"
    )
}

fn with_crds(sb: &ServedSandbox) -> Kubectl {
    let k = sb.kubectl();
    k.ok_stdin(
        &["apply", "-f", "-"],
        &format!("{APP_CRD}\n---\n{SERVICE_CRD}"),
    );
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/apps.kipper.run",
        "crd/services.kipper.run",
    ]);
    k
}

fn stderr_of(k: &Kubectl, args: &[&str], stdin: &str) -> (bool, String) {
    let out = k.run_with_stdin(args, Some(stdin));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn wrong_values_are_refused_naming_each_field() {
    let sb = ServedSandbox::start();
    let k = with_crds(&sb);
    let bad = app(
        "bad",
        "  image: nginx\n  port: \"80\"\n  replicas: -1\n  source: {kind: svn}\n  bindings: [Db]\n",
    );
    let (ok, err) = stderr_of(&k, &["apply", "-f", "-"], &bad);
    assert!(!ok, "a bad App was stored");
    for part in [
        "The App \"bad\" is invalid:",
        "spec.port: Invalid value: \"string\": spec.port in body must be of type integer: \"string\"",
        "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
        "spec.source.kind: Unsupported value: \"svn\": supported values: \"image\", \"git\"",
        "spec.bindings[0]: Invalid value: \"Db\": spec.bindings[0] in body should match",
    ] {
        assert!(err.contains(part), "missing `{part}` in:\n{err}");
    }
    let missing = app("nothing", "  replicas: 2\n");
    let (ok, err) = stderr_of(&k, &["apply", "-f", "-"], &missing);
    assert!(!ok);
    // An App built from git has no image before its first build: only the port is required.
    assert!(!err.contains("spec.image"), "{err}");
    assert!(err.contains("spec.port: Required value"), "{err}");
    let stored = k.run(&["get", "app", "bad", "-n", "default"]);
    assert!(!stored.status.success(), "nothing half-stored");

    let service = "apiVersion: kipper.run/v1alpha1\nkind: Service\nmetadata: {name: db, namespace: default}\nspec: {type: oracle, port: 70000}\n";
    let (ok, err) = stderr_of(&k, &["apply", "-f", "-"], service);
    assert!(!ok);
    assert!(
        err.contains("spec.type: Unsupported value: \"oracle\""),
        "{err}"
    );
    assert!(
        err.contains("spec.port in body should be less than or equal to 65535"),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_refused_warned_or_pruned_as_asked_and_defaults_applied() {
    let sb = ServedSandbox::start();
    let k = with_crds(&sb);
    let typo = app("web", "  image: nginx\n  port: 80\n  replcas: 3\n");
    // kubectl asks for Strict by default, client-side apply and server-side alike.
    let (ok, err) = stderr_of(&k, &["apply", "-f", "-"], &typo);
    assert!(!ok);
    assert!(
        err.contains("strict decoding error: unknown field \"spec.replcas\""),
        "{err}"
    );
    let (ok, err) = stderr_of(&k, &["apply", "--server-side", "-f", "-"], &typo);
    assert!(!ok);
    assert!(err.contains("unknown field \"spec.replcas\""), "{err}");
    // Warn stores the object without the field and says so.
    let (ok, err) = stderr_of(&k, &["apply", "--validate=warn", "-f", "-"], &typo);
    assert!(ok, "{err}");
    assert!(err.contains("unknown field \"spec.replcas\""), "{err}");
    let stored = k.json(&["get", "app", "web", "-n", "default"]);
    assert_eq!(stored["spec"].get("replcas"), None, "pruned: {stored}");
    assert_eq!(stored["spec"]["replicas"], 1, "defaulted: {stored}");
    assert_eq!(stored["spec"]["project"], "default");
    assert_eq!(stored["spec"]["source"]["kind"], "image");
    // Ignore prunes without a word.
    let more = app("api", "  image: nginx\n  port: 80\n  colour: blue\n");
    let (ok, err) = stderr_of(&k, &["apply", "--validate=false", "-f", "-"], &more);
    assert!(ok && !err.contains("unknown field"), "{err}");
    let stored = k.json(&["get", "app", "api", "-n", "default"]);
    assert_eq!(stored["spec"].get("colour"), None);
    // A merge patch is checked like the object it patches.
    let (ok, err) = stderr_of(
        &k,
        &[
            "patch",
            "app",
            "api",
            "-n",
            "default",
            "--type=merge",
            "-p",
            r#"{"spec":{"port":"x"}}"#,
        ],
        "",
    );
    assert!(!ok);
    assert!(
        err.contains("spec.port in body must be of type integer"),
        "{err}"
    );
}

#[tokio::test]
async fn kube_rs_gets_a_422_with_a_cause_per_field() {
    let sb = ServedSandbox::start();
    with_crds(&sb);
    let ar = ApiResource {
        group: "kipper.run".into(),
        version: "v1alpha1".into(),
        api_version: "kipper.run/v1alpha1".into(),
        kind: "App".into(),
        plural: "apps".into(),
    };
    let apps: Api<DynamicObject> = Api::namespaced_with(sb.client().await, "default", &ar);
    let mut obj = DynamicObject::new("kube", &ar);
    obj.data = json!({"spec": {"image": "", "port": 0, "env": [{"value": "x"}]}});
    let err = apps
        .create(&PostParams::default(), &obj)
        .await
        .expect_err("an invalid App");
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .starts_with("App.kipper.run \"kube\" is invalid: ["),
        "{}",
        status.message
    );
    for field in ["spec.image", "spec.port", "spec.env[0].name"] {
        assert!(
            status.message.contains(&format!("{field}: ")),
            "{field}: {}",
            status.message
        );
    }
    obj.data = json!({"spec": {"image": "nginx", "port": 8080}});
    let made = apps
        .create(&PostParams::default(), &obj)
        .await
        .expect("a valid App");
    assert_eq!(made.data["spec"]["replicas"], 1);
    assert_eq!(
        made.data["spec"]["route"],
        serde_json::Value::Null,
        "no default for route"
    );
}
