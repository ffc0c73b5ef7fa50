//! `kip cluster add|use|list|remove`: the clusters in config.yaml choose where verbs go, each
//! keeps its own settings (cluster id, domain, org, active project), and a cluster that cannot
//! be reached is named with what to try.

use std::path::Path;
use std::process::Output;

use crate::common::{ServedSandbox, kip_in};

/// kip with a kip home and no KUBECONFIG: only config.yaml decides the cluster.
fn kip(home: &Path, args: &[&str]) -> Output {
    kip_in(home)
        .env("HOME", home)
        .without("KUBECONFIG")
        .run(args)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn config(home: &Path) -> String {
    std::fs::read_to_string(home.join("config.yaml")).unwrap_or_default()
}

#[test]
fn a_configured_cluster_carries_its_id_domain_and_org() {
    let sb = ServedSandbox::start();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let kubeconfig = sb.kubeconfig().display().to_string();
    let add = [
        "cluster",
        "add",
        "edge",
        "--kubeconfig",
        &kubeconfig,
        "--context",
        "kip-sandbox",
        "--cluster-id",
        "203-0-113-10",
        "--domain",
        "kipper.run",
        "--org",
        "acme",
        "--use",
    ];
    let added = kip(h, &add);
    assert!(added.status.success(), "{}", err(&added));
    assert_eq!(
        out(&added),
        "✔ Cluster \"edge\" added\n✔ Current cluster: edge\n"
    );
    let again = kip(h, &add);
    assert_eq!(
        out(&again),
        "✔ Cluster \"edge\" unchanged\n",
        "{}",
        err(&again)
    );

    let created = kip(h, &["project", "create", "shop", "--environments", "test"]);
    assert!(created.status.success(), "{}", err(&created));
    assert!(
        out(&created).contains("✔ acme-shop-test"),
        "{}",
        out(&created)
    );
    let deployed = kip(
        h,
        &[
            "app",
            "deploy",
            "--name",
            "web",
            "--image",
            "nginx:1.27",
            "--port",
            "80",
            "--project",
            "shop",
            "--environment",
            "test",
        ],
    );
    assert!(deployed.status.success(), "{}", err(&deployed));
    assert!(
        out(&deployed).ends_with("✔ Live at https://web-test-203-0-113-10.kipper.run (in the sandbox nothing answers there: no container runs)\n"),
        "{}",
        out(&deployed)
    );
    // The objects really are on the cluster the entry names.
    let k = sb.kubectl();
    let ingress = k.json(&["get", "ingress", "web", "-n", "acme-shop-test"]);
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "web-test-203-0-113-10.kipper.run"
    );

    let listed = kip(h, &["cluster", "list"]);
    let text = out(&listed);
    assert!(text.starts_with("NAME  API"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("edge "))
        .expect("edge listed");
    assert!(
        line.contains(&format!("{kubeconfig} (kip-sandbox)  *")),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&kip(h, &["cluster", "list", "-o", "json"]).stdout).unwrap();
    assert_eq!(json[0]["cluster-id"], "203-0-113-10");
    assert_eq!(json[0]["domain"], "kipper.run");
    assert_eq!(json[0]["current"], true);
}

#[test]
fn each_cluster_keeps_its_active_project() {
    let sb = ServedSandbox::start();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let kubeconfig = sb.kubeconfig().display().to_string();
    for name in ["one", "two"] {
        let added = kip(h, &["cluster", "add", name, "--kubeconfig", &kubeconfig]);
        assert!(added.status.success(), "{}", err(&added));
    }
    assert!(kip(h, &["cluster", "use", "one"]).status.success());
    let created = kip(
        h,
        &["project", "create", "shop", "--environments", "test,prod"],
    );
    assert!(created.status.success(), "{}", err(&created));
    let used = kip(h, &["project", "use", "shop/prod"]);
    assert_eq!(
        out(&used),
        "✔ Active project: shop/prod on cluster \"one\"\n",
        "{}",
        err(&used)
    );

    let switched = kip(h, &["cluster", "use", "two"]);
    assert_eq!(out(&switched), "✔ Current cluster: two\n");
    let listed = kip(h, &["app", "list", "-o", "json"]);
    assert!(listed.status.success(), "{}", err(&listed));
    let back = kip(h, &["cluster", "use", "one"]);
    assert_eq!(
        out(&back),
        "✔ Current cluster: one\n✔ Active project: shop/prod\n"
    );
    let text = config(h);
    assert!(text.contains("current-cluster: one"), "{text}");
    assert_eq!(text.matches("active-project").count(), 1, "{text}");
}

#[test]
fn an_unreachable_cluster_is_named_with_what_to_try() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let added = kip(
        h,
        &[
            "cluster", "add", "gone", "--server", &server, "--token", "t", "--use",
        ],
    );
    assert!(added.status.success(), "{}", err(&added));
    let listed = kip(h, &["app", "list"]);
    assert_eq!(listed.status.code(), Some(1));
    let text = err(&listed);
    assert!(
        text.starts_with(&format!(
            "error: cluster unreachable at {server}: connection refused (check cluster `gone` with `kip cluster list`, or switch with `kip cluster use`)"
        )),
        "{text}"
    );
    assert!(!text.contains("ERROR"), "library logs stay quiet: {text}");
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let kubeconfig = h.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts:\n- name: a\n  context: {cluster: x}\n",
    )
    .unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["cluster", "add", "x"],
            "say how to reach x: --kubeconfig FILE",
        ),
        (
            &[
                "cluster",
                "add",
                "x",
                "--kubeconfig",
                &kubeconfig,
                "--server",
                "https://a:6443",
            ],
            "either --kubeconfig or --server",
        ),
        (
            &[
                "cluster",
                "add",
                "x",
                "--kubeconfig",
                &kubeconfig,
                "--context",
                "b",
            ],
            "has no context `b` (it has: [\"a\"])",
        ),
        (
            &["cluster", "add", "x", "--kubeconfig", "/no/such/file"],
            "cannot read the kubeconfig /no/such/file",
        ),
        (
            &["cluster", "add", "x", "--server", "10.0.0.1:6443"],
            "invalid value '10.0.0.1:6443' for '--server': use a URL like https://",
        ),
        (
            &[
                "cluster",
                "add",
                "x",
                "--kubeconfig",
                &kubeconfig,
                "--token",
                "t",
            ],
            "need --server",
        ),
        (
            &["cluster", "add", "Bad_Name", "--kubeconfig", &kubeconfig],
            "invalid value 'Bad_Name' for '<NAME>'",
        ),
        (
            &[
                "cluster",
                "add",
                "x",
                "--kubeconfig",
                &kubeconfig,
                "--domain",
                "https://x.io",
            ],
            "invalid value 'https://x.io' for '--domain': use a domain name",
        ),
        (&["cluster", "use", "nowhere"], "no cluster `nowhere`"),
        (
            &["cluster", "remove", "nowhere", "--yes"],
            "no cluster `nowhere`",
        ),
    ];
    for (args, expected) in cases {
        let o = kip(h, args);
        // A value the command line must change exits 2; something missing exits 1.
        let code = if expected.starts_with("no ") { 1 } else { 2 };
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(expected), "{args:?}: {}", err(&o));
    }
    assert!(!h.join("config.yaml").exists(), "{}", config(h));

    let added = kip(
        h,
        &[
            "cluster",
            "add",
            "x",
            "--kubeconfig",
            &kubeconfig,
            "--context",
            "a",
        ],
    );
    assert!(added.status.success(), "{}", err(&added));
    let refused = kip(h, &["cluster", "remove", "x"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "confirmation-required exits 2"
    );
    assert!(err(&refused).contains("pass --yes"), "{}", err(&refused));
    assert!(config(h).contains("name: x"), "kept: {}", config(h));
    let removed = kip(h, &["cluster", "remove", "x", "--yes"]);
    assert_eq!(
        out(&removed),
        "✔ Cluster \"x\" removed\n",
        "{}",
        err(&removed)
    );
    assert!(!config(h).contains("name: x"), "{}", config(h));
}

#[test]
fn tokens_stay_out_of_listings() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let added = kip(
        h,
        &[
            "cluster",
            "add",
            "prod",
            "--server",
            "https://203.0.113.10:6443",
            "--token",
            "s3cret",
        ],
    );
    assert!(added.status.success(), "{}", err(&added));
    assert_eq!(
        out(&added),
        "✔ Cluster \"prod\" added\nUse it with: kip cluster use prod\n"
    );
    // `kip install` keeps the cluster's own gateway token in its entry.
    let with_gateway = config(h).replace(
        "- name: prod\n",
        "- name: prod\n  gateway-token: gw-s3cret\n",
    );
    assert!(with_gateway.contains("gw-s3cret"), "{with_gateway}");
    std::fs::write(h.join("config.yaml"), with_gateway).unwrap();
    for format in ["json", "yaml"] {
        let listed = kip(h, &["cluster", "list", "-o", format]);
        assert!(listed.status.success(), "{}", err(&listed));
        assert!(!out(&listed).contains("s3cret"), "{}", out(&listed));
        assert!(out(&listed).contains("gateway-token"), "{}", out(&listed));
        assert!(out(&listed).contains("https://203.0.113.10:6443"));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&kip(h, &["cluster", "list", "-o", "json"]).stdout).unwrap();
    let names: Vec<_> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, ["prod", "sandbox"], "the sandbox is in use: {json}");
    assert_eq!(json[1]["current"], true);
}
