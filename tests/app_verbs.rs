//! `kip app deploy|list|delete` through the real binary against a sandbox, checked through
//! kube-rs-free means: kip's own output and `kubectl get -o json`.

use std::process::Output;

use crate::common::{ServedSandbox, stderr as err, stdout as out};

fn kip(sb: &ServedSandbox, args: &[&str]) -> Output {
    sb.kip(args)
}

const DEPLOY: &[&str] = &[
    "app",
    "deploy",
    "--name",
    "api",
    "--image",
    "ghcr.io/acme/api:latest",
    "--port",
    "3000",
    "--replicas",
    "2",
    "--env",
    "LOG_LEVEL=info",
];

#[test]
fn deploy_is_idempotent_and_owned_by_the_app() {
    let sb = ServedSandbox::start();
    let first = kip(&sb, DEPLOY);
    assert!(first.status.success(), "{}", err(&first));
    assert_eq!(
        out(&first),
        "Deploying api...\n✔ Deployment created\n✔ Service created\n✔ Ingress created\n✔ Live at https://api-sandbox.localhost (in the sandbox nothing answers there: no container runs)\n"
    );
    let again = kip(&sb, DEPLOY);
    assert_eq!(
        out(&again),
        "Deploying api...\n✔ Deployment unchanged\n✔ Service unchanged\n✔ Ingress unchanged\n✔ Live at https://api-sandbox.localhost (in the sandbox nothing answers there: no container runs)\n"
    );

    let k = sb.kubectl();
    let app = k.json(&["get", "apps.kipper.run", "api"]);
    let uid = app["metadata"]["uid"]
        .as_str()
        .expect("App uid")
        .to_string();
    for kind in ["deployment", "service", "ingress"] {
        let obj = k.json(&["get", kind, "api"]);
        assert_eq!(
            obj["metadata"]["ownerReferences"][0]["uid"],
            uid.as_str(),
            "{kind} is owned by the App"
        );
        assert_eq!(
            obj["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "kipper"
        );
    }
    let deployment = k.json(&["get", "deployment", "api"]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 3);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/acme/api:latest");
    // Variables reach the pods from the app's ConfigMap, owned by the App like the rest.
    assert_eq!(container["envFrom"][0]["configMapRef"]["name"], "api-env");
    let env = k.json(&["get", "configmap", "api-env"]);
    assert_eq!(env["data"]["LOG_LEVEL"], "info");
    assert_eq!(env["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    let ingress = k.json(&["get", "ingress", "api"]);
    assert_eq!(ingress["spec"]["rules"][0]["host"], "api-sandbox.localhost");

    k.ok(&["rollout", "status", "deployment/api", "--timeout=30s"]);
    let list = kip(&sb, &["app", "list"]);
    let listed = out(&list);
    let lines: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["NAME", "STATUS", "IMAGE", "READY"],
            vec!["api", "running", "ghcr.io/acme/api:latest", "2/2"]
        ]
    );
    let json: serde_json::Value =
        serde_json::from_str(&out(&kip(&sb, &["app", "list", "-o", "json"]))).expect("JSON");
    assert_eq!(json[0]["ready"], 2);

    let refused = kip(&sb, &["app", "delete", "api"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "confirmation-required exits 2"
    );
    assert!(
        err(&refused).contains("pass --yes to confirm"),
        "{}",
        err(&refused)
    );
    k.ok(&["get", "deployment", "api"]);

    let deleted = kip(&sb, &["app", "delete", "api", "--yes"]);
    assert_eq!(out(&deleted), "✔ App api deleted\n", "{}", err(&deleted));
    k.ok(&["wait", "--for=delete", "deployment/api", "--timeout=30s"]);
}

#[test]
fn bad_input_is_refused_before_anything_is_created() {
    let sb = ServedSandbox::start();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "app", "deploy", "--name", "Bad_Name", "--image", "x", "--port", "80",
            ],
            "invalid value 'Bad_Name' for '--name'",
        ),
        (
            &[
                "app", "deploy", "--name", "ok", "--image", "x", "--port", "70000",
            ],
            "invalid value '70000' for '--port': a port is between 1 and 65535",
        ),
        (
            &[
                "app", "deploy", "--name", "ok", "--image", "x", "--port", "80", "--env", "NOVALUE",
            ],
            "expected KEY=VALUE",
        ),
        (
            &[
                "app",
                "deploy",
                "--name",
                "ok",
                "--image",
                "x",
                "--port",
                "80",
                "--project",
                "nope",
            ],
            "no project `nope`",
        ),
        (&["app", "delete", "ghost", "--yes"], "no app `ghost`"),
    ];
    for (args, expected) in cases {
        let o = kip(&sb, args);
        // A value the command line must change exits 2; something missing exits 1.
        let code = if expected.starts_with("no ") { 1 } else { 2 };
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(expected), "{args:?}: {}", err(&o));
        assert!(
            !err(&o).contains("-->"),
            "a refused input needs no script position: {}",
            err(&o)
        );
    }
    let missing = kip(&sb, &["app", "deploy", "--name", "ok", "--port", "80"]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "a missing required flag is a usage error"
    );
    let left = sb.kubectl().json(&[
        "get",
        "deployments,services,ingresses",
        "-A",
        "-l",
        "app.kubernetes.io/managed-by=kipper",
    ]);
    assert_eq!(
        left["items"].as_array().map(Vec::len),
        Some(0),
        "nothing half-created"
    );
}

#[test]
fn example_pipeline_scripts_run() {
    let sb = ServedSandbox::start();
    let root = env!("CARGO_MANIFEST_DIR");
    let deployed = kip(&sb, &["run", &format!("{root}/scripts/deploy-set.rhai")]);
    assert!(deployed.status.success(), "{}", err(&deployed));
    for app in ["frontend", "api", "worker"] {
        assert!(
            out(&deployed).contains(&format!("✔ {app} rolled out")),
            "{}",
            out(&deployed)
        );
    }
    // PROJECT/ENVIRONMENT: deployed and waited for in that environment's namespace.
    assert!(
        kip(
            &sb,
            &["project", "create", "shop", "--environments", "test"]
        )
        .status
        .success()
    );
    let in_env = kip(
        &sb,
        &[
            "run",
            &format!("{root}/scripts/deploy-set.rhai"),
            "shop/test",
        ],
    );
    assert!(in_env.status.success(), "{}", err(&in_env));
    assert!(
        out(&in_env).contains("✔ worker rolled out in shop-test"),
        "{}",
        out(&in_env)
    );
    let report = kip(
        &sb,
        &["run", &format!("{root}/scripts/report.rhai"), "json"],
    );
    assert!(report.status.success(), "{}", err(&report));
    let report: serde_json::Value = serde_json::from_str(&out(&report)).expect("JSON report");
    let items = &report["apps"];
    let frontend = items
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|i| i["name"] == "frontend" && i["namespace"] == "default")
        })
        .expect("frontend listed");
    assert_eq!(frontend["ready"], 2);
    assert_eq!(
        items.as_array().map(Vec::len),
        Some(6),
        "three apps in default, three in shop-test"
    );
}

#[test]
fn a_user_script_wraps_app_deploy() {
    let sb = ServedSandbox::start();
    let scripts = sb.kip_home().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        scripts.join("audit.rhai"),
        r#"
fn verbs() {[ #{
    verb: "app deploy", about: "Deploy an app (audited)",
    flags: [
        #{ name: "name", required: true }, #{ name: "image", required: true },
        #{ name: "port", type: "int", required: true }, #{ name: "replicas", type: "int", default_value: 1 },
        #{ name: "project", default_value: "default" }, #{ name: "environment", default_value: "" },
        #{ name: "env", repeatable: true },
    ],
    run: "deploy",
} ]}
fn deploy(opts) {
    print(`audit: deploying ${opts.image}`);
    kip::next(opts);
}
"#,
    )
    .unwrap();
    let help = kip(&sb, &["app", "deploy", "--help"]);
    assert!(
        out(&help).contains("Deploy an app (audited)"),
        "{}",
        out(&help)
    );
    let o = kip(
        &sb,
        &[
            "app", "deploy", "--name", "web", "--image", "nginx:1", "--port", "80",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).starts_with("audit: deploying nginx:1\nDeploying web...\n✔ Deployment created"),
        "{}",
        out(&o)
    );

    // A user template replaces the stdlib's Deployment template.
    let templates = sb.kip_home().join("templates/app");
    std::fs::create_dir_all(&templates).unwrap();
    let stock = kip(
        &sb,
        &[
            "eval",
            "tmpl::render(\"app/service.yaml.j2\", #{name: \"x\", namespace: \"default\", port: 1, labels: #{}, app_uid: \"u\"})",
        ],
    );
    assert!(stock.status.success(), "{}", err(&stock));
    std::fs::write(
        templates.join("service.yaml.j2"),
        out(&stock).replace("name: http", "name: custom"),
    )
    .unwrap();
    let custom = kip(&sb, &["eval", "tmpl::render(\"app/service.yaml.j2\", #{})"]);
    assert!(
        out(&custom).contains("name: custom"),
        "the user's template wins: {}",
        out(&custom)
    );
}

#[test]
fn scale_update_restart_and_logs() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let deployed = kip(
        &sb,
        &[
            "app", "deploy", "--name", "api", "--image", "nginx:1", "--port", "8080",
        ],
    );
    assert!(deployed.status.success(), "{}", err(&deployed));

    let scaled = kip(&sb, &["app", "scale", "api", "--replicas", "3"]);
    assert_eq!(out(&scaled), "✔ api scaled to 3\n", "{}", err(&scaled));
    assert_eq!(
        k.json(&["get", "deployment", "api"])["status"]["readyReplicas"],
        3
    );

    let updated = kip(&sb, &["app", "update", "api", "--image", "nginx:2"]);
    assert_eq!(
        out(&updated),
        "✔ api updated to nginx:2\n",
        "{}",
        err(&updated)
    );
    let deployment = k.json(&["get", "deployment", "api"]);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:2");
    assert_eq!(
        container["ports"][0]["containerPort"], 8080,
        "the update keeps the rest of the container"
    );
    assert_eq!(
        k.json(&["get", "apps.kipper.run", "api"])["spec"]["image"],
        "nginx:2",
        "the App says the same"
    );

    let before = k.json(&["get", "deployment", "api"])["metadata"]["generation"].as_i64();
    let restarted = kip(&sb, &["app", "restart", "api"]);
    assert_eq!(out(&restarted), "✔ api restarted\n", "{}", err(&restarted));
    let after = k.json(&["get", "deployment", "api"])["metadata"]["generation"].as_i64();
    assert!(
        after > before,
        "a restart rolls the pods: generation {before:?} → {after:?}"
    );

    let logs = kip(&sb, &["app", "logs", "api", "--tail", "1"]);
    assert_eq!(
        out(&logs),
        "[sandbox] listening on :8080/TCP\n",
        "{}",
        err(&logs)
    );

    let stopped = kip(&sb, &["app", "scale", "api", "--replicas", "0"]);
    assert_eq!(out(&stopped), "✔ api stopped\n", "{}", err(&stopped));
    let listed = out(&kip(&sb, &["app", "list"]));
    assert!(
        listed.contains("stopped") && listed.contains("0/0"),
        "{listed}"
    );
    let no_logs = kip(&sb, &["app", "logs", "api"]);
    assert_eq!(no_logs.status.code(), Some(1));
    assert!(
        err(&no_logs).contains("has no running pod"),
        "{}",
        err(&no_logs)
    );
}

#[test]
fn projects_with_environments() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let created = kip(
        &sb,
        &[
            "project",
            "create",
            "yourr-name",
            "--environments",
            "test,acc,prod",
            "--display-name",
            "yourr.name Platform",
        ],
    );
    assert_eq!(
        out(&created),
        "Creating project \"yourr-name\"...\n✔ yourr-name-test\n✔ yourr-name-acc\n✔ yourr-name-prod\nPromotion pipeline: test → acc → prod\n",
        "{}",
        err(&created)
    );
    let plain = kip(&sb, &["project", "create", "myapp"]);
    assert_eq!(
        out(&plain),
        "Creating project \"myapp\"...\n✔ myapp\n",
        "{}",
        err(&plain)
    );
    let ns = k.json(&["get", "namespace", "yourr-name-acc"]);
    assert_eq!(ns["metadata"]["labels"]["kipper.run/project"], "yourr-name");
    assert_eq!(ns["metadata"]["labels"]["kipper.run/environment"], "acc");
    assert_eq!(
        k.json(&["get", "projects.kipper.run", "yourr-name"])["spec"]["displayName"],
        "yourr.name Platform"
    );

    let listed = out(&kip(&sb, &["project", "list"]));
    assert_eq!(
        listed,
        "PROJECT     ENVIRONMENTS\nmyapp       default\nyourr-name  test, acc, prod\n"
    );

    let deployed = kip(
        &sb,
        &[
            "app",
            "deploy",
            "--name",
            "api",
            "--image",
            "nginx:1",
            "--port",
            "80",
            "--project",
            "yourr-name",
            "--environment",
            "test",
        ],
    );
    assert!(
        out(&deployed).contains("✔ Live at https://api-test-sandbox.localhost"),
        "{}",
        err(&deployed)
    );
    k.ok(&["get", "deployment", "api", "-n", "yourr-name-test"]);

    let bad = kip(
        &sb,
        &["project", "create", "two", "--environments", "test,test"],
    );
    assert!(err(&bad).contains("listed twice"), "{}", err(&bad));
    let refused = kip(&sb, &["project", "delete", "yourr-name"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "confirmation-required exits 2"
    );
    assert!(
        err(&refused).contains("pass --yes to confirm"),
        "{}",
        err(&refused)
    );
    let deleted = kip(&sb, &["project", "delete", "yourr-name", "--yes"]);
    assert!(
        out(&deleted).ends_with("✔ Project yourr-name deleted\n"),
        "{}",
        err(&deleted)
    );
    k.ok(&[
        "wait",
        "--for=delete",
        "namespace/yourr-name-test",
        "--timeout=30s",
    ]);
    k.ok(&["get", "namespace", "myapp"]);
}

/// On a terminal, a wait shows a spinner with what it waits for and the time so far; without
/// one (every other test) nothing of it appears.
#[test]
fn waits_show_a_spinner_on_a_terminal() {
    let sb = ServedSandbox::start();
    assert!(kip(&sb, DEPLOY).status.success());
    let slow = r#"{"spec":{"template":{"metadata":{"annotations":{"sandbox.kipper.run/start-delay-ms":"1500"}}}}}"#;
    sb.kubectl()
        .ok(&["patch", "deployment", "api", "--type", "merge", "-p", slow]);
    // Without a terminal: no spinner, only (after a while) one plain line of what it waits for.
    let restarted = kip(&sb, &["app", "restart", "api"]);
    assert!(!err(&restarted).contains('\r'), "{:?}", err(&restarted));
    assert!(
        err(&restarted).is_empty()
            || err(&restarted) == "Waiting for the rollout of deployment `api` in `default`…\n",
        "{:?}",
        err(&restarted)
    );

    let on_terminal = sb
        .kip_on_terminal("app restart api")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script");
    let drawn = out(&on_terminal);
    assert!(on_terminal.status.success(), "{drawn}");
    assert!(
        drawn.contains("Waiting for the rollout of deployment `api` in `default`"),
        "{drawn}"
    );
    assert!(drawn.contains("✔ api restarted"), "{drawn}");
}
