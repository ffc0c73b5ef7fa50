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
    assert_eq!(container["env"][0]["value"], "acc");
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
