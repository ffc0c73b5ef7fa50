//! Overrides that inherit: a user script that wraps a stdlib verb states only what it adds or
//! changes, and `--help`, `kip verbs` and the verb itself see the merged declaration.

use std::path::Path;

use crate::common::{ServedSandbox, stderr as err, stdout as out};

/// The README's five-line example (`app deploy` with a `--team` label), read from the README
/// so the documentation and the product cannot drift apart.
fn team_example() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("the README");
    let section = readme
        .split("## Overriding a verb")
        .nth(1)
        .expect("the README has a section on overriding a verb");
    let block = section
        .split("```rhai\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the section starts with a rhai example");
    block.to_string()
}

/// `kip app deploy --name NAME --image nginx:1.27 --port 80` and `extra`.
fn deploy(sb: &ServedSandbox, name: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "app",
        "deploy",
        "--name",
        name,
        "--image",
        "nginx:1.27",
        "--port",
        "80",
    ];
    args.extend(extra);
    sb.kip(&args)
}

/// A field of the Deployment `name` in `ns`, as the real kubectl reads it.
fn deployment_field(sb: &ServedSandbox, name: &str, ns: &str, jsonpath: &str) -> String {
    sb.kubectl().ok(&[
        "get",
        "deployment",
        name,
        "-n",
        ns,
        "-o",
        &format!("jsonpath={{{jsonpath}}}"),
    ])
}

fn write_script(home: &Path, name: &str, source: &str) {
    let scripts = home.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join(name), source).unwrap();
}

#[test]
fn a_five_line_override_adds_a_flag_and_labels_the_deployment() {
    let team = team_example();
    assert_eq!(team.lines().count(), 5, "{team}");
    let sb = ServedSandbox::start();
    write_script(sb.kip_home(), "team.rhai", &team);

    let help = out(&sb.kip(&["app", "deploy", "--help"]));
    for flag in [
        "--team",
        "--name",
        "--image",
        "--port",
        "--replicas",
        "--project",
        "--env",
    ] {
        assert!(help.contains(flag), "{flag} in the merged help:\n{help}");
    }
    assert!(help.contains("Team that owns the app"), "{help}");
    assert!(
        help.contains("Creates (or updates) an App resource"),
        "the help text is inherited: {help}"
    );

    let missing = deploy(&sb, "web", &[]);
    assert_eq!(missing.status.code(), Some(2), "{}", err(&missing));
    assert!(err(&missing).contains("--team"), "{}", err(&missing));

    let deployed = deploy(&sb, "web", &["--team", "payments"]);
    assert!(deployed.status.success(), "{}", err(&deployed));
    assert!(
        out(&deployed).contains("Deploying web"),
        "the stdlib ran: {}",
        out(&deployed)
    );
    let label = deployment_field(&sb, "web", "default", ".metadata.labels.team");
    assert_eq!(label, "payments");

    // After `project use`, the wrapped verb still deploys where the user is (the old README
    // example, which copied the declaration, defaulted --project to `default`).
    let made = sb.kip(&["project", "create", "shop", "--environments", "test"]);
    assert!(made.status.success(), "{}", err(&made));
    let used = sb.kip(&["project", "use", "shop/test"]);
    assert!(used.status.success(), "{}", err(&used));
    let deployed = deploy(&sb, "cart", &["--team", "shop"]);
    assert!(deployed.status.success(), "{}", err(&deployed));
    let label = deployment_field(&sb, "cart", "shop-test", ".metadata.labels.team");
    assert_eq!(label, "shop");
}

#[test]
fn a_wrapper_changes_a_default_and_hides_a_flag() {
    let sb = ServedSandbox::start();
    write_script(
        sb.kip_home(),
        "two.rhai",
        r#"fn verbs() {[ #{ verb: "app deploy", run: "deploy", flags: [
    #{ name: "replicas", default_value: 2 },
    #{ name: "allow-many-replicas", hidden: true },
] } ]}
fn deploy(opts) { kip::next(opts) }
"#,
    );
    let help = out(&sb.kip(&["app", "deploy", "--help"]));
    assert!(help.contains("[default: 2]"), "{help}");
    assert!(!help.contains("--allow-many-replicas"), "hidden: {help}");

    let deployed = deploy(&sb, "web", &[]);
    assert!(deployed.status.success(), "{}", err(&deployed));
    let replicas = deployment_field(&sb, "web", "default", ".spec.replicas");
    assert_eq!(replicas, "2", "the new default reached the stdlib verb");

    // Hidden is not gone: the stdlib verb still reads it.
    let many = deploy(&sb, "big", &["--replicas", "150", "--allow-many-replicas"]);
    assert!(many.status.success(), "{}", err(&many));

    let verbs = out(&sb.kip(&["verbs"]));
    let line = verbs
        .lines()
        .find(|l| l.starts_with("app deploy "))
        .unwrap_or_else(|| panic!("app deploy in:\n{verbs}"));
    let mine = sb.kip_home().join("scripts/two.rhai").display().to_string();
    assert!(
        line.contains(&format!("{mine} → stdlib/app.rhai")),
        "the chain, the running declaration first: {line}"
    );
}

/// `kip::next` with a map of the override's own making: the flags it leaves out take their
/// defaults, so the stdlib verb reads every flag it declares; a flag the override added is
/// passed on, not refused.
#[test]
fn kip_next_completes_a_map_the_override_made() {
    let sb = ServedSandbox::start();
    write_script(
        sb.kip_home(),
        "own.rhai",
        r#"fn verbs() {[ #{ verb: "app deploy", run: "deploy", flags: [#{ name: "size", default_value: "s" }] } ]}
fn deploy(opts) { kip::next(#{ name: opts.name, image: opts.image, port: 8080, size: opts.size }) }
"#,
    );
    let deployed = deploy(&sb, "web", &[]);
    assert!(deployed.status.success(), "{}", err(&deployed));
    assert_eq!(
        deployment_field(&sb, "web", "default", ".spec.replicas"),
        "1"
    );
    assert_eq!(
        deployment_field(
            &sb,
            "web",
            "default",
            ".spec.template.spec.containers[0].ports[0].containerPort"
        ),
        "8080"
    );
}

#[test]
fn an_override_that_cannot_apply_names_its_file_and_the_fix() {
    let sb = ServedSandbox::start();
    write_script(
        sb.kip_home(),
        "bad.rhai",
        r#"fn verbs() {[ #{ verb: "app deploy", run: "deploy", flags: [#{ name: "port", type: "string" }] } ]}
fn deploy(opts) { kip::next(opts) }
"#,
    );
    let run = deploy(&sb, "web", &[]);
    assert_ne!(run.status.code(), Some(0));
    let file = sb.kip_home().join("scripts/bad.rhai").display().to_string();
    assert!(err(&run).contains(&file), "{}", err(&run));
    assert!(
        err(&run).contains("flag `port` is an int in the verb it overrides"),
        "{}",
        err(&run)
    );
}

#[test]
fn a_builtin_failing_in_a_user_verb_names_the_users_file_and_line() {
    let sb = ServedSandbox::start();
    write_script(
        sb.kip_home(),
        "report.rhai",
        r#"fn verbs() {[ #{ verb: "report", run: "report" } ]}
fn report(opts) {
    settings()
}
fn settings() {
    k8s::get("v1", "ConfigMap", "default", "settings")
}
"#,
    );
    let run = sb.kip(&["report"]);
    assert_eq!(run.status.code(), Some(1), "{}", err(&run));
    let file = sb
        .kip_home()
        .join("scripts/report.rhai")
        .display()
        .to_string();
    let text = err(&run);
    assert!(
        text.starts_with("error: configmaps \"settings\" not found"),
        "{text}"
    );
    assert!(text.contains(&format!("--> {file}:6:10")), "{text}");
    assert!(text.contains("6 |     k8s::get("), "{text}");
    assert!(
        text.contains(&format!("in call to `settings` at {file}:3:5")),
        "{text}"
    );
}

/// The README's test of its `--team` example, run by `kip test` with the example installed.
#[test]
fn the_readme_team_example_passes_its_readme_test() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("the README");
    let test = readme
        .split("```rhai\n")
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.starts_with("// tests/team_test.rhai"))
        .expect("the README shows a test of the --team example");
    let home = tempfile::tempdir().unwrap();
    write_script(home.path(), "team.rhai", &team_example());
    let tests = home.path().join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    std::fs::write(tests.join("team_test.rhai"), test).unwrap();
    let run = crate::common::kip_in(home.path())
        .env("TMPDIR", home.path())
        .without("KUBECONFIG")
        .run(&["test", "tests"]);
    assert!(run.status.success(), "{}\n{}", out(&run), err(&run));
    assert!(out(&run).contains("2 passed, 0 failed"), "{}", out(&run));
}
