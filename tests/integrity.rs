//! What careless scripts and parallel runs do to kip's objects: writers that race, re-runs that
//! must not remove, failures that must not leave half-made objects, values nothing could run,
//! hosts two apps would share, and confirmations that are declined.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::common::{ServedSandbox, stderr as err, stdout as out};

fn deploy(name: &str, image: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "app", "deploy", "--name", name, "--image", image, "--port", "80",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn kip(sb: &ServedSandbox, args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.kip(&args)
}

/// A refusal: exit 2 when the command line must change (`invalid`, `confirmation-required`),
/// 1 for the rest (`exit_codes_follow_the_error_kind` checks which is which).
fn refused(o: &Output, expected: &str) {
    assert!(
        matches!(o.status.code(), Some(1 | 2)),
        "{}{}",
        out(o),
        err(o)
    );
    assert!(err(o).contains(expected), "want {expected:?}: {}", err(o));
}

/// Ten writers of one app at once: every one says ✔, and once all are done the Deployment
/// runs exactly what the App says (the App version that won), round after round.
#[test]
fn parallel_deploys_leave_the_app_and_its_deployment_in_agreement() {
    let sb = ServedSandbox::start();
    for round in 0..3 {
        let children: Vec<_> = (1..=10)
            .map(|i| {
                let image = format!("nginx:1.{i}");
                let replicas = i.to_string();
                let args = deploy("same", &image, &["--replicas", &replicas]);
                sb.kip_command(&args.iter().map(String::as_str).collect::<Vec<_>>())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start kip")
            })
            .collect();
        for child in children {
            let o = child.wait_with_output().expect("kip ran");
            assert!(o.status.success(), "round {round}: {}", err(&o));
        }
        let k = sb.kubectl();
        let app = k.json(&["get", "apps.kipper.run", "same"]);
        let d = k.json(&["get", "deployment", "same"]);
        assert_eq!(
            (
                &d["spec"]["template"]["spec"]["containers"][0]["image"],
                &d["spec"]["replicas"]
            ),
            (&app["spec"]["image"], &app["spec"]["replicas"]),
            "round {round}: the Deployment runs what the App says"
        );
    }
}

/// `scale` and `update` change the App, then derive the Deployment from it, so a later
/// `deploy` with the same values finds nothing to change.
#[test]
fn scale_and_update_change_the_app_first_and_derive_the_rest() {
    let sb = ServedSandbox::start();
    assert!(kip(&sb, &deploy("web", "nginx:1.27", &[])).status.success());
    let scaled = sb.kip(&["app", "scale", "web", "--replicas", "3"]);
    assert!(scaled.status.success(), "{}", err(&scaled));
    let updated = sb.kip(&["app", "update", "web", "--image", "nginx:1.28"]);
    assert!(updated.status.success(), "{}", err(&updated));
    let k = sb.kubectl();
    let app = k.json(&["get", "apps.kipper.run", "web"]);
    assert_eq!(
        (&app["spec"]["replicas"], &app["spec"]["image"]),
        (&3.into(), &"nginx:1.28".into())
    );
    let d = k.json(&["get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    // A redeploy with the App's own values changes nothing the later verbs set.
    let again = kip(&sb, &deploy("web", "nginx:1.28", &["--replicas", "3"]));
    assert!(
        out(&again).contains("✔ Deployment unchanged"),
        "{}",
        out(&again)
    );

    refused(
        &sb.kip(&["app", "scale", "web", "--replicas", "5000"]),
        "--allow-many-replicas",
    );
    refused(
        &sb.kip(&["app", "update", "web", "--image", "nginx latest"]),
        "contains whitespace",
    );
    assert_eq!(k.json(&["get", "deployment", "web"])["spec"]["replicas"], 3);
}

/// Re-running `project create` with fewer environments removes nothing and says how to.
#[test]
fn re_running_project_create_never_removes_an_environment() {
    let sb = ServedSandbox::start();
    let args = |envs: &str| {
        ["project", "create", "shop2", "--environments", envs]
            .map(String::from)
            .to_vec()
    };
    assert!(kip(&sb, &args("test,prod")).status.success());
    assert!(
        kip(
            &sb,
            &deploy(
                "web",
                "nginx:1.27",
                &["--project", "shop2", "--environment", "prod"]
            )
        )
        .status
        .success()
    );

    refused(
        &kip(&sb, &args("test")),
        "kip project remove-env shop2 prod",
    );
    refused(
        &kip(&sb, &args("test,acc,prod")),
        "kip project add-env shop2 acc",
    );
    refused(&kip(&sb, &args("prod,test")), "does not reorder");
    let again = kip(&sb, &args("test,prod"));
    assert!(
        again.status.success(),
        "the same create changes nothing: {}",
        err(&again)
    );

    let k = sb.kubectl();
    let project = k.json(&["get", "projects.kipper.run", "shop2"]);
    assert_eq!(
        project["spec"]["environments"],
        serde_json::json!(["test", "prod"])
    );
    k.ok(&["get", "namespace", "shop2-prod"]);
    k.ok(&["get", "deployment", "web", "-n", "shop2-prod"]);
    let removed = sb.kip(&["project", "remove-env", "shop2", "prod", "--yes"]);
    assert!(removed.status.success(), "{}", err(&removed));
}

/// A verb that fails on a name the server refuses, its own or one it derives, has written
/// nothing: the server checks every object before the first write.
#[test]
fn failed_verbs_leave_nothing_behind() {
    let sb = ServedSandbox::start();
    let long = "r".repeat(63);
    let added = sb.kip(&["service", "add", "redis", "--name", &long]);
    refused(&added, &format!("cannot create Service {long}-headless"));
    let project = "p".repeat(40);
    let env = "e".repeat(30);
    let created = sb.kip(&["project", "create", &project, "--environments", &env]);
    refused(&created, "at most 63 characters");
    let app = "a".repeat(60);
    let deployed = kip(&sb, &deploy(&app, "nginx:1.27", &[]));
    refused(&deployed, "so shorten the app or environment name");
    assert!(!err(&deployed).contains("-->"), "{}", err(&deployed));

    let k = sb.kubectl();
    for kind in [
        "services.kipper.run",
        "secrets",
        "statefulsets",
        "projects.kipper.run",
        "apps.kipper.run",
        "deployments",
    ] {
        let left = k.json(&[
            "get",
            kind,
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=kipper",
        ]);
        let names: Vec<_> = left["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].clone())
            .collect();
        assert!(names.is_empty(), "{kind} left behind: {names:?}");
    }
    let namespaces = k.ok(&["get", "namespaces", "-o", "name"]);
    assert!(!namespaces.contains(&project), "{namespaces}");
}

/// Values no registry, kubelet or scheduler would take are refused with the rule and an
/// example, before anything is written.
#[test]
fn invalid_values_are_refused_as_kubernetes_would() {
    let sb = ServedSandbox::start();
    let cases: &[(&[&str], &str)] = &[
        (&["--image", "nginx latest"], "contains whitespace"),
        (&["--image", "nginx;$(id)"], "is not an image reference"),
        (&["--image", "NGINX:1.27"], "must be lowercase"),
        (&["--image", "nginx:"], "is not an image reference"),
        (
            &["--image", ""],
            "give --image IMAGE to run an image, or --git URL",
        ),
        (
            &["--env", "BAD KEY;$(id)=1"],
            "invalid value 'BAD KEY;$(id)=1' for '--env': a variable name has letters",
        ),
        (&["--env", "1X=1"], "not starting with a digit"),
        (&["--env", "A=1", "--env", "A=2"], "--env A is given twice"),
        (
            &["--port", "-1"],
            "invalid value '-1' for '--port': a port is between 1 and 65535",
        ),
        (&["--replicas", "-2"], "invalid value '-2' for '--replicas'"),
        (&["--replicas", "100000"], "pass --allow-many-replicas"),
        (
            &["--domain", "Bad Domain"],
            "invalid value 'Bad Domain' for '--domain'",
        ),
        (
            &["--project", "A B/../x"],
            "invalid value 'A B/../x' for '--project'",
        ),
        (
            &["--project", "default/x"],
            "invalid value 'default/x' for '--project'",
        ),
        (
            &["--environment", "a_b"],
            "invalid value 'a_b' for '--environment'",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = deploy("ok", "nginx:1.27", &[]);
        for pair in extra.chunks(2) {
            // --image and --port replace the base value; every other flag is added.
            let base = ["--image", "--port"].contains(&pair[0]);
            match args.iter().position(|a| base && a == pair[0]) {
                Some(at) => args[at + 1] = pair[1].to_string(),
                None => args.extend(pair.iter().map(|a| a.to_string())),
            }
        }
        let o = kip(&sb, &args);
        refused(&o, expected);
        assert!(
            !err(&o).contains("-->"),
            "no script position for bad input: {}",
            err(&o)
        );
    }
    let many = kip(
        &sb,
        &deploy(
            "many",
            "nginx:1.27",
            &["--replicas", "101", "--allow-many-replicas"],
        ),
    );
    assert!(
        many.status.success(),
        "insisting is allowed: {}",
        err(&many)
    );
    let left = sb
        .kubectl()
        .json(&["get", "apps.kipper.run,deployments", "-o", "json"]);
    let names: Vec<_> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, ["many", "many"], "only the insisted app exists");
}

/// Where a verb is pointed at a project or environment that is not there, the error names
/// what exists and the command that makes the missing one.
#[test]
fn wrong_places_get_errors_that_say_what_exists() {
    let sb = ServedSandbox::start();
    assert!(
        sb.kip(&["project", "create", "shop", "--environments", "test,prod"])
            .status
            .success()
    );
    let app = |extra: &[&str]| kip(&sb, &deploy("web", "nginx:1.27", extra));
    refused(
        &app(&["--project", "shop"]),
        "project `shop` has environments test, prod: pass --environment",
    );
    refused(
        &app(&["--project", "shop", "--environment", "acc"]),
        "kip project add-env shop acc",
    );
    refused(
        &app(&["--environment", "nope"]),
        "the default project has no environment `nope`",
    );
    refused(
        &app(&["--project", "nope"]),
        "no project `nope` (see `kip project list`",
    );
    for e in [app(&["--project", "shop"]), app(&["--environment", "nope"])] {
        assert!(
            !err(&e).contains("kip project create default"),
            "{}",
            err(&e)
        );
    }
}

/// Two apps never share a host: the second is refused naming the first and the flag that
/// picks another host.
#[test]
fn a_host_is_served_by_one_app() {
    let sb = ServedSandbox::start();
    for project in ["shop-a", "shop-b"] {
        assert!(
            sb.kip(&["project", "create", project, "--environments", "test"])
                .status
                .success()
        );
    }
    // `frontend` deployed to `project`'s test environment, with `extra` flags.
    let frontend = |project: &str, extra: &[&str]| {
        let mut flags = vec!["--project", project, "--environment", "test"];
        flags.extend_from_slice(extra);
        kip(&sb, &deploy("frontend", "nginx:1.27", &flags))
    };
    let first = frontend("shop-a", &[]);
    assert!(first.status.success(), "{}", err(&first));
    let second = frontend("shop-b", &[]);
    refused(
        &second,
        "host frontend-test-sandbox.localhost is already served by app `frontend` in shop-a-test",
    );
    assert!(err(&second).contains("--domain"), "{}", err(&second));
    sb.kubectl()
        .fails(&["get", "apps.kipper.run", "frontend", "-n", "shop-b-test"]);

    let own = frontend("shop-b", &["--domain", "b.example.com"]);
    assert!(own.status.success(), "{}", err(&own));
    assert!(
        out(&own).contains("Live at https://b.example.com"),
        "{}",
        out(&own)
    );
    let ingress = sb
        .kubectl()
        .json(&["get", "ingress", "frontend", "-n", "shop-b-test"]);
    assert_eq!(ingress["spec"]["rules"][0]["host"], "b.example.com");
    // Re-deploying the first app keeps its host: an app does not collide with itself.
    let again = frontend("shop-a", &[]);
    assert!(again.status.success(), "{}", err(&again));
}

/// `kip ARGS` on a pseudo-terminal (`script`), answering `answer` to its question.
fn on_terminal(sb: &ServedSandbox, args: &str, answer: &str) -> Output {
    let mut child = sb.kip_on_terminal(args).spawn().expect("run script");
    let mut stdin = child.stdin.take().expect("stdin");
    // The question is asked once the verb has looked the app up; the answer waits in the pty.
    stdin.write_all(answer.as_bytes()).expect("answer");
    let o = child.wait_with_output().expect("script ran");
    drop(stdin);
    o
}

/// One convention for consent: `--yes`/`-y` skips every question, data-destroying flags stay
/// explicit, a declined question exits non-zero, and without a terminal or `--yes` a
/// destructive verb refuses.
#[test]
fn confirmations_follow_one_convention() {
    let sb = ServedSandbox::start();
    assert!(kip(&sb, &deploy("web", "nginx:1.27", &[])).status.success());
    let declined = on_terminal(&sb, "app delete web", "n\n");
    assert_eq!(declined.status.code(), Some(1), "{}", out(&declined));
    assert!(
        out(&declined).contains("not confirmed: nothing deleted"),
        "{}",
        out(&declined)
    );
    sb.kubectl().ok(&["get", "apps.kipper.run", "web"]);

    let added = sb.kip(&["service", "add", "redis", "--name", "cache"]);
    assert!(added.status.success(), "{}", err(&added));
    assert!(
        !out(&added).contains("********"),
        "shown once, when made: {}",
        out(&added)
    );
    let again = sb.kip(&["service", "add", "redis", "--name", "cache"]);
    assert!(
        out(&again).contains("Password: ******** (kip service info --show-password shows it)"),
        "{}",
        out(&again)
    );
    let no_terminal = sb.kip(&["service", "delete", "cache", "--delete-data"]);
    refused(
        &no_terminal,
        "refusing without a terminal; pass --yes to confirm",
    );
    refused(
        &sb.kip(&["service", "delete", "cache", "--yes"]),
        "pass --delete-data",
    );
    sb.kubectl().ok(&["get", "services.kipper.run", "cache"]);
    let deleted = sb.kip(&["service", "delete", "cache", "--delete-data", "-y"]);
    assert!(deleted.status.success(), "{}", err(&deleted));
}

/// In the sandbox no database runs: `service bind` still binds (Secret, env on the app) and
/// says in one line that it skipped the database; where a forward is set but refused, the
/// error names that connection, not an unreachable cluster.
#[test]
fn bind_works_in_the_sandbox_and_names_the_true_cause() {
    let sb = ServedSandbox::start();
    let added = sb.kip(&["service", "add", "postgres", "--name", "db"]);
    assert!(added.status.success(), "{}", err(&added));
    for app in ["web", "api"] {
        assert!(kip(&sb, &deploy(app, "nginx:1.27", &[])).status.success());
    }
    let bound = sb.kip(&["service", "bind", "db", "web"]);
    assert!(bound.status.success(), "{}", err(&bound));
    assert!(
        err(&bound)
            .contains("database web not created: in the sandbox no postgres runs in pod db-0"),
        "{}",
        err(&bound)
    );
    let k = sb.kubectl();
    k.ok(&["get", "secret", "web-db-binding"]);
    let d = k.json(&["get", "deployment", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["envFrom"][1]["secretRef"]["name"],
        "web-db-binding"
    );

    let port = crate::common::free_port();
    k.ok(&[
        "annotate",
        "pod",
        "db-0",
        &format!("sandbox.kipper.run/forward=5432=127.0.0.1:{port}"),
    ]);
    let refused_bind = sb.kip(&["service", "bind", "db", "api"]);
    assert_eq!(
        refused_bind.status.code(),
        Some(1),
        "{}",
        err(&refused_bind)
    );
    let why = err(&refused_bind);
    assert!(why.contains(&format!("127.0.0.1:{port}")), "{why}");
    assert!(why.contains("connection refused"), "{why}");
    assert!(!why.contains("cluster unreachable"), "{why}");
}

/// `kip ARGS` with a bound: a verb that has not ended after `secs` is killed and the test fails,
/// so a silent wait shows up as a failure, not as a slow suite.
fn kip_within(sb: &ServedSandbox, args: &[&str], secs: u64) -> Output {
    let mut child = sb
        .kip_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kip");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().expect("poll kip").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().expect("kip ended");
            panic!("`kip {args:?}` still waiting after {secs}s: {}", err(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.wait_with_output().expect("kip ended")
}

/// A rollout whose pods cannot start is reported in words as soon as their status shows it:
/// the pod, the kubelet's reason and message, the last exit, and the command to run next.
/// A long wait without a terminal says what it waits for.
#[test]
fn a_failing_rollout_is_reported_in_words_within_seconds() {
    let sb = ServedSandbox::start();
    assert!(kip(&sb, &deploy("api", "nginx:1.27", &[])).status.success());
    let k = sb.kubectl();
    let fail =
        r#"{"spec":{"template":{"metadata":{"annotations":{"sandbox.kipper.run/fail":"true"}}}}}"#;
    k.ok(&["patch", "deployment", "api", "--type", "merge", "-p", fail]);
    let updated = kip_within(&sb, &["app", "update", "api", "--image", "nginx:1.29"], 60);
    assert_eq!(updated.status.code(), Some(1), "{}", err(&updated));
    let why = err(&updated);
    assert!(
        why.starts_with("error: the rollout of deployment `api` in `default` is failing: pod api-"),
        "{why}"
    );
    for part in [
        "container `api` is waiting: CrashLoopBackOff (back-off",
        "last exit code 1 (Error)",
        "\nnext: kip app logs api shows its output",
    ] {
        assert!(why.contains(part), "want {part:?}: {why}");
    }
    assert!(!why.contains("-->") && !why.contains("\"status\""), "{why}");

    let slow = r#"{"spec":{"template":{"metadata":{"annotations":{"sandbox.kipper.run/fail":null,"sandbox.kipper.run/start-delay-ms":"4000"}}}}}"#;
    k.ok(&["patch", "deployment", "api", "--type", "merge", "-p", slow]);
    let restarted = kip_within(&sb, &["app", "restart", "api"], 60);
    assert!(restarted.status.success(), "{}", err(&restarted));
    assert_eq!(
        err(&restarted),
        "Waiting for the rollout of deployment `api` in `default`…\n"
    );
}

/// `-v` shows each API call, one line with method, URL and status; logs are not coloured
/// into a pipe.
#[test]
fn verbose_shows_api_calls_and_logs_are_plain_in_a_pipe() {
    let sb = ServedSandbox::start();
    // An app first: on a cluster without kip's CRDs the list's request is a 404.
    let deployed = kip(&sb, &deploy("web", "nginx:1.27", &[]));
    assert!(deployed.status.success(), "{}", err(&deployed));
    let quiet = sb.kip(&["app", "list"]);
    assert_eq!(err(&quiet), "", "no log lines by default");
    let verbose = sb.kip(&["app", "list", "-v"]);
    assert!(verbose.status.success(), "{}", err(&verbose));
    let logged_calls = err(&verbose);
    let calls: Vec<&str> = logged_calls.lines().collect();
    assert!(
        calls.iter().any(|l| l.contains("http.method=GET")
            && l.contains("/apis/kipper.run/v1alpha1/namespaces/default/apps")
            && l.contains("http.status_code=200")),
        "{calls:?}"
    );
    let logged = sb
        .kip_command(&["app", "list"])
        .env("RUST_LOG", "debug")
        .output()
        .expect("kip ran");
    assert!(!err(&logged).is_empty(), "RUST_LOG=debug logs something");
    assert!(
        !err(&logged).contains('\u{1b}'),
        "no colour codes into a pipe"
    );
}

/// One exit code per error kind, whoever raised it (clap, a builtin, the stdlib, a script):
/// 2 when the command line must change, 1 when something failed or is missing.
#[test]
fn exit_codes_follow_the_error_kind() {
    let sb = ServedSandbox::start();
    let deployed = kip(&sb, &deploy("web", "nginx:1.27", &[]));
    assert!(deployed.status.success(), "{}", err(&deployed));
    let made = sb.kip(&["project", "create", "shop", "--environments", "test"]);
    assert!(made.status.success(), "{}", err(&made));
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &[
                "app",
                "deploy",
                "--name",
                "web",
                "--image",
                "nginx:1.27",
                "--port",
                "abc",
            ],
            2,
            "invalid value 'abc' for '--port <N>'",
        ),
        (
            &[
                "app",
                "deploy",
                "--name",
                "web",
                "--image",
                "nginx:1.27",
                "--port",
                "0",
            ],
            2,
            "invalid value '0' for '--port'",
        ),
        (&["no-such-verb"], 2, "unrecognized subcommand"),
        (&["app", "delete", "web"], 2, "pass --yes to confirm"),
        (&["app", "logs", "nope"], 1, "no app `nope`"),
        (
            &["project", "create", "shop", "--environments", "test,prod"],
            1,
            "already exists",
        ),
        (&["doc", "nope"], 1, "no topic `nope`"),
        (
            &["eval", r#"throw kip::error("invalid", "a bad value")"#],
            2,
            "a bad value",
        ),
        (
            &["eval", r#"throw kip::error("failed", "a step failed")"#],
            1,
            "a step failed",
        ),
        (
            &["eval", r#"throw kip::error("interrupted", "stopped")"#],
            130,
            "stopped",
        ),
        (
            &["eval", r#"throw kip::error("not-a-kind", "x")"#],
            2,
            "no error kind `not-a-kind`",
        ),
    ];
    for (args, code, expected) in cases {
        let o = sb.kip(args);
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(expected), "{args:?}: {}", err(&o));
    }
}
