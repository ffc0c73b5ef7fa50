//! `kip sandbox up|status|kubeconfig|down|reset` as a user runs them.

use std::process::{Command, Output};

use crate::common::{Kubectl, kip_bin, text};

fn kip(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(kip_bin())
        .args(args)
        .env("KIP_HOME", home)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run kip")
}

#[test]
fn up_status_down_reset() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    let out = kip(h, &["sandbox", "kubeconfig"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("kip sandbox up"), "{}", text(&out));

    let out = kip(h, &["sandbox", "up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("✔ Sandbox running at http://127.0.0.1:"),
        "{}",
        text(&out)
    );
    let out = kip(h, &["sandbox", "up"]);
    assert!(
        text(&out).contains("already running"),
        "up is idempotent: {}",
        text(&out)
    );

    let out = kip(h, &["sandbox", "status"]);
    assert!(
        out.status.success() && text(&out).contains("Sandbox running"),
        "{}",
        text(&out)
    );
    let path = String::from_utf8_lossy(&kip(h, &["sandbox", "kubeconfig"]).stdout)
        .trim()
        .to_string();
    let kubeconfig = std::fs::read_to_string(&path).expect("kubeconfig exists");
    assert!(kubeconfig.contains("current-context: kip-sandbox"));

    let k = Kubectl::new(std::path::Path::new(&path), h);
    k.ok_stdin(
        &["create", "-f", "-"],
        "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"keep\"}}",
    );
    assert!(
        k.ok(&["get", "configmap", "keep", "-o", "name"])
            .contains("configmap/keep")
    );

    let out = kip(h, &["sandbox", "reset"]);
    assert!(
        !out.status.success(),
        "reset without --yes and without a terminal refuses"
    );
    assert!(text(&out).contains("--yes"), "{}", text(&out));
    assert!(
        k.ok(&["get", "configmap", "keep", "-o", "name"])
            .contains("configmap/keep"),
        "nothing was lost"
    );

    let out = kip(h, &["sandbox", "reset", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = k.fails(&["get", "configmap", "keep"]);
    assert!(
        err.contains("NotFound"),
        "reset deleted the objects and restarted on the same port: {err}"
    );

    let out = kip(h, &["sandbox", "down"]);
    assert!(text(&out).contains("✔ Sandbox stopped"), "{}", text(&out));
    let out = kip(h, &["sandbox", "status"]);
    assert!(
        !out.status.success() && text(&out).contains("not running"),
        "{}",
        text(&out)
    );
}
