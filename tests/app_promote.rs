//! `kip app promote` through the real binary against a sandbox, checked with kubectl: only the
//! image moves, the promotion is recorded on the App and its Deployment, the seed's output, and
//! every refusal leaves both environments as they were.

use serde_json::Value;

use crate::common::{ServedSandbox, stderr as err, stdout as out};

fn ok(sb: &ServedSandbox, args: &[&str]) -> String {
    let o = sb.kip(args);
    assert!(o.status.success(), "kip {args:?}: {}", err(&o));
    out(&o)
}

fn app(sb: &ServedSandbox, ns: &str, name: &str) -> Value {
    sb.kubectl().json(&["get", "app", name, "-n", ns])
}

fn deployment(sb: &ServedSandbox, ns: &str, name: &str) -> Value {
    sb.kubectl().json(&["get", "deployment", name, "-n", ns])
}

/// Project `shop` (test, acc, prod) with `api` in test (v1.2.3) and in acc (v1.0.0, two
/// replicas and an env var of its own), and `web` in test only.
fn shop() -> ServedSandbox {
    let sb = ServedSandbox::start();
    ok(
        &sb,
        &[
            "project",
            "create",
            "shop",
            "--environments",
            "test,acc,prod",
        ],
    );
    let deploy = |env: &str, name: &str, image: &str, more: &[&str]| {
        let mut args = vec![
            "app",
            "deploy",
            "--name",
            name,
            "--image",
            image,
            "--port",
            "3000",
            "--project",
            "shop",
            "--environment",
            env,
        ];
        args.extend(more);
        ok(&sb, &args);
    };
    deploy("test", "api", "registry.example.com/api:v1.2.3", &[]);
    deploy(
        "acc",
        "api",
        "registry.example.com/api:v1.0.0",
        &["--replicas", "2", "--env", "MODE=acc"],
    );
    deploy("test", "web", "registry.example.com/web:v7", &[]);
    sb
}

#[test]
fn promote_moves_only_the_image_and_records_it() {
    let sb = shop();
    let before = app(&sb, "shop-acc", "api");
    let printed = ok(
        &sb,
        &[
            "app",
            "promote",
            "api",
            "--from",
            "test",
            "--to",
            "acc",
            "--project",
            "shop",
            "--yes",
        ],
    );
    assert!(
        printed.contains("Promote test → acc (shop)\nApps: api\n"),
        "{printed}"
    );
    assert!(
        printed.contains("✔ api → acc (registry.example.com/api:v1.2.3)"),
        "{printed}"
    );
    let after = app(&sb, "shop-acc", "api");
    assert_eq!(after["spec"]["image"], "registry.example.com/api:v1.2.3");
    // Everything else of acc's app stays acc's.
    assert_eq!(after["spec"]["replicas"], before["spec"]["replicas"]);
    assert_eq!(after["spec"]["env"], before["spec"]["env"]);
    let annotations = &after["metadata"]["annotations"];
    assert_eq!(annotations["kipper.run/promoted-from"], "test");
    assert_eq!(
        annotations["kipper.run/promoted-image"],
        "registry.example.com/api:v1.2.3"
    );
    assert!(
        annotations["kipper.run/promoted-at"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{annotations}"
    );
    let d = deployment(&sb, "shop-acc", "api");
    assert_eq!(d["spec"]["replicas"], 2);
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.com/api:v1.2.3");
    let env = sb
        .kubectl()
        .json(&["get", "configmap", "api-env", "-n", "shop-acc"]);
    assert_eq!(env["data"]["MODE"], "acc", "acc keeps its own variables");
    assert_eq!(
        d["metadata"]["annotations"]["kipper.run/promoted-from"],
        "test"
    );
    assert_eq!(
        d["metadata"]["annotations"]["kipper.run/promoted-image"],
        "registry.example.com/api:v1.2.3"
    );
    // The source is untouched; a second promotion has nothing to do and says so.
    assert_eq!(
        app(&sb, "shop-test", "api")["spec"]["image"],
        "registry.example.com/api:v1.2.3"
    );
    let again = ok(
        &sb,
        &[
            "app",
            "promote",
            "api",
            "--from",
            "test",
            "--to",
            "acc",
            "--project",
            "shop",
            "--yes",
        ],
    );
    assert!(!again.contains("✔ api → acc"), "{again}");
    // The active project is the default project of the verb.
    ok(&sb, &["project", "use", "shop/test"]);
    let o = sb.kip(&[
        "app", "promote", "api", "--from", "acc", "--to", "prod", "--yes",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains(
            "it does not exist in prod: deploy it there first (kip app deploy --name api"
        ),
        "{}",
        err(&o)
    );
}

#[test]
fn promote_all_says_what_it_skips_and_dry_run_changes_nothing() {
    let sb = shop();
    let plan = ok(
        &sb,
        &[
            "app",
            "promote",
            "--all",
            "--from",
            "test",
            "--to",
            "acc",
            "--project",
            "shop",
            "--dry-run",
        ],
    );
    assert!(plan.contains("Apps: api"), "{plan}");
    assert!(
        plan.contains("would promote api: registry.example.com/api:v1.0.0 → registry.example.com/api:v1.2.3 in acc"),
        "{plan}"
    );
    let o = sb.kip(&[
        "app",
        "promote",
        "--all",
        "--from",
        "test",
        "--to",
        "acc",
        "--project",
        "shop",
        "--dry-run",
    ]);
    assert!(
        err(&o).contains("skipped web: it does not exist in acc"),
        "{}",
        err(&o)
    );
    assert_eq!(
        app(&sb, "shop-acc", "api")["spec"]["image"],
        "registry.example.com/api:v1.0.0"
    );
    let done = ok(
        &sb,
        &[
            "app",
            "promote",
            "--all",
            "--from",
            "test",
            "--to",
            "acc",
            "--project",
            "shop",
            "--yes",
        ],
    );
    assert!(
        done.contains("✔ api → acc (registry.example.com/api:v1.2.3)"),
        "{done}"
    );
    assert_eq!(
        app(&sb, "shop-acc", "api")["spec"]["image"],
        "registry.example.com/api:v1.2.3"
    );
    assert!(
        sb.kubectl()
            .run(&["get", "app", "web", "-n", "shop-acc"])
            .status
            .code()
            != Some(0)
    );
}

/// Each bad request is refused with the fix, and neither environment changes.
#[test]
fn bad_promotions_are_refused_and_change_nothing() {
    let sb = shop();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &[
                "app",
                "promote",
                "--from",
                "test",
                "--to",
                "acc",
                "--project",
                "shop",
            ],
            2,
            "name the app to promote, or pass --all",
        ),
        (
            &[
                "app",
                "promote",
                "api",
                "--all",
                "--from",
                "test",
                "--to",
                "acc",
                "--project",
                "shop",
            ],
            2,
            "not both",
        ),
        (
            &[
                "app",
                "promote",
                "api",
                "--from",
                "test",
                "--to",
                "test",
                "--project",
                "shop",
            ],
            2,
            "--from and --to are both test",
        ),
        (
            &[
                "app",
                "promote",
                "api",
                "--from",
                "test",
                "--to",
                "staging",
                "--project",
                "shop",
            ],
            2,
            "invalid value 'staging' for '--to': project shop has environments test, acc, prod",
        ),
        (
            &[
                "app",
                "promote",
                "api",
                "--from",
                "dev",
                "--to",
                "acc",
                "--project",
                "shop",
            ],
            2,
            "invalid value 'dev' for '--from'",
        ),
        (
            &[
                "app",
                "promote",
                "nope",
                "--from",
                "test",
                "--to",
                "acc",
                "--project",
                "shop",
            ],
            1,
            "no app `nope` in test of shop",
        ),
        (
            &[
                "app",
                "promote",
                "api",
                "--from",
                "test",
                "--to",
                "acc",
                "--project",
                "ghost",
            ],
            1,
            "no project `ghost`",
        ),
        (
            &["app", "promote", "api", "--from", "test", "--to", "acc"],
            2,
            "the default project has no environments",
        ),
        (
            &[
                "app",
                "promote",
                "Bad",
                "--from",
                "test",
                "--to",
                "acc",
                "--project",
                "shop",
            ],
            2,
            "invalid value 'Bad' for '<NAME>'",
        ),
        (
            &["app", "promote", "api", "--to", "acc", "--project", "shop"],
            2,
            "--from",
        ),
        // No terminal and no --yes: nothing is promoted.
        (
            &[
                "app",
                "promote",
                "api",
                "--from",
                "test",
                "--to",
                "acc",
                "--project",
                "shop",
            ],
            2,
            "--yes",
        ),
    ];
    for (args, code, says) in cases {
        let o = sb.kip(args);
        assert_eq!(o.status.code(), Some(*code), "kip {args:?}: {}", err(&o));
        assert!(err(&o).contains(says), "kip {args:?}: {}", err(&o));
    }
    assert_eq!(
        app(&sb, "shop-acc", "api")["spec"]["image"],
        "registry.example.com/api:v1.0.0"
    );
    assert!(
        app(&sb, "shop-acc", "api")["metadata"]["annotations"]["kipper.run/promoted-from"]
            .is_null()
    );
}

/// Every image change is a revision (deploy, update, promote, rollback); `app history` lists
/// them, `app rollback` goes back to the one before or to `--revision N`, and only the image
/// changes.
#[test]
fn history_records_image_changes_and_rollback_goes_back() {
    let sb = shop();
    let at = ["--project", "shop", "--environment", "acc"];
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(at);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: &[&str]| {
        let all = with(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        sb.kip(&refs)
    };
    let o = run(&[
        "app",
        "update",
        "api",
        "--image",
        "registry.example.com/api:v1.1.0",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let o = sb.kip(&[
        "app",
        "promote",
        "api",
        "--from",
        "test",
        "--to",
        "acc",
        "--project",
        "shop",
        "--yes",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let listed = run(&["app", "history", "api", "-o", "json"]);
    let entries: Value = serde_json::from_str(&out(&listed)).expect("JSON");
    let triggers: Vec<(i64, &str, &str)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["revision"].as_i64().unwrap(),
                e["image"].as_str().unwrap(),
                e["trigger"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        triggers,
        [
            (1, "registry.example.com/api:v1.0.0", "deploy"),
            (2, "registry.example.com/api:v1.1.0", "update"),
            (3, "registry.example.com/api:v1.2.3", "promote from test"),
        ]
    );
    let table = out(&run(&["app", "history", "api"]));
    assert!(table.contains("3 *"), "{table}");
    // Back one: v1.1.0, as revision 4; replicas and env stay acc's.
    let o = run(&["app", "rollback", "api"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("✔ api rolled back to revision 2 (registry.example.com/api:v1.1.0)"),
        "{}",
        out(&o)
    );
    let a = app(&sb, "shop-acc", "api");
    assert_eq!(a["spec"]["image"], "registry.example.com/api:v1.1.0");
    assert_eq!(a["spec"]["replicas"], 2);
    let d = deployment(&sb, "shop-acc", "api");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/api:v1.1.0"
    );
    let o = run(&["app", "rollback", "api", "--revision", "1"]);
    assert!(
        out(&o).contains("rolled back to revision 1 (registry.example.com/api:v1.0.0)"),
        "{}",
        err(&o)
    );
    let entries: Value =
        serde_json::from_str(&out(&run(&["app", "history", "api", "-o", "json"]))).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 5);
    assert_eq!(entries[4]["trigger"], "rollback to 1");
    // Refused: a revision that is not there.
    let o = run(&["app", "rollback", "api", "--revision", "9"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("invalid value '9' for '--revision': api has revisions 1, 2, 3, 4, 5"),
        "{}",
        err(&o)
    );
    // At most ten are kept.
    for i in 0..8 {
        let image = format!("registry.example.com/api:v2.{i}");
        let o = run(&["app", "update", "api", "--image", &image]);
        assert!(o.status.success(), "{}", err(&o));
    }
    let entries: Value =
        serde_json::from_str(&out(&run(&["app", "history", "api", "-o", "json"]))).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 10);
    assert_eq!(entries[0]["revision"], 4);
    assert_eq!(entries[9]["revision"], 13);
    // An app with one revision has nothing to go back to.
    let o = sb.kip(&[
        "app",
        "rollback",
        "web",
        "--project",
        "shop",
        "--environment",
        "test",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("web has no earlier recorded image"),
        "{}",
        err(&o)
    );
}
