//! `kip doc` and `docs/scripting.md`: the script reference is made from the binary's own
//! metadata, and the file in the repository is exactly what the binary prints.

use std::path::Path;
use std::process::Output;

use crate::common::{kip_in, stderr as err, stdout as out};

fn kip_doc(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    kip_in(home.path()).run(&[&["doc"], args].concat())
}

#[test]
fn the_reference_in_the_repository_is_what_kip_doc_prints() {
    let printed = kip_doc(&[]);
    assert!(printed.status.success(), "{}", err(&printed));
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scripting.md");
    let kept = std::fs::read_to_string(&file).expect("docs/scripting.md");
    assert!(
        out(&printed) == kept,
        "docs/scripting.md is out of date: run `cargo run -- doc > docs/scripting.md`"
    );
}

#[test]
fn every_builtin_library_function_and_verb_is_in_it_documented() {
    let text = out(&kip_doc(&[]));
    assert!(
        !text.contains("(undocumented)"),
        "every entry has its doc comment"
    );
    for part in [
        "## Errors",
        "### Module `k8s`",
        "#### `k8s::get(api_version: string, kind: string, ns: string, name: string) -> map`",
        "#### `kip::error(kind: string, message: string) -> map`",
        "### Library `lib/kipper`",
        "#### `kipper::target(opts)`",
        "### `kip app deploy`",
        "| `--replicas` | int | `1` |",
        "| `not-found` |",
    ] {
        assert!(text.contains(part), "{part} is missing");
    }
}

#[test]
fn kip_doc_prints_one_topic_or_says_which_exist() {
    let get = kip_doc(&["k8s::get"]);
    assert!(get.status.success(), "{}", err(&get));
    assert!(out(&get).starts_with("#### `k8s::get("), "{}", out(&get));
    assert!(
        !out(&get).contains("k8s::list"),
        "only the function asked for"
    );

    let verb = out(&kip_doc(&["app deploy"]));
    assert!(
        verb.starts_with("### `kip app deploy`") && verb.contains("`--image`"),
        "{verb}"
    );
    let errors = out(&kip_doc(&["errors"]));
    assert!(
        errors.contains("| `invalid` |") && !errors.contains("### Module"),
        "{errors}"
    );

    let missing = kip_doc(&["k8s::nope"]);
    assert_eq!(missing.status.code(), Some(1), "not-found exits 1");
    assert!(
        err(&missing).starts_with(
            "error: no topic `k8s::nope` in the reference: try errors, builtins, assert, config"
        ),
        "{}",
        err(&missing)
    );
}

/// An example of the reference with the function whose entry holds it.
struct Example {
    function: String,
    code: String,
}

/// Every example of the reference, by the `#### `module::function(…)`` heading above it.
fn examples(markdown: &str) -> Vec<Example> {
    let mut function = String::new();
    let mut found = Vec::new();
    for line in markdown.lines() {
        if let Some(heading) = line.strip_prefix("#### `") {
            function = heading.split('(').next().unwrap_or("").to_string();
            continue;
        }
        let code = line.strip_prefix("Example: ").unwrap_or(line);
        let Some(inner) = code.strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        if inner.contains('(') && function.contains("::") {
            found.push(Example {
                function: function.clone(),
                code: inner.to_string(),
            });
        }
    }
    found
}

/// Examples not run here, by the start of their function's name or a part of their code, and
/// why. Their calls are still checked against the reference (name and number of arguments) by
/// the core's unit tests.
const NOT_RUN: &[(&str, &str)] = &[
    ("follow: true", "it follows the log until the pod ends"),
    (
        "ssh::",
        "they connect to an SSH server at the example's address",
    ),
    ("pg::", "they need a PostgreSQL connection"),
    (
        "git::remote_head",
        "it asks the git server of the example's repository",
    ),
    (
        "gateway::lookup",
        "it asks a gateway at the example's address",
    ),
    (
        "gateway::register",
        "it asks a gateway at the example's address",
    ),
    (
        "gateway::unregister",
        "it asks a gateway at the example's address",
    ),
    (
        "kip::next",
        "it declares an override: a function, not a statement",
    ),
    ("tunnel::wait", "it waits until the user presses Ctrl-C"),
    (
        "kipper::copy_env",
        "it makes a whole environment, which the sandbox here already has: tests/copy_env.rs runs it",
    ),
];

/// Examples that end in an error by design, by a part of their code, and the kind it has:
/// they show how to raise one, or what a command without a terminal or a sandbox without
/// processes answers.
const THROWS: &[(&str, &str)] = &[
    ("throw kip::error(\"not-found\"", "not-found"),
    ("throw kip::invalid_value(", "invalid"),
    ("ui::confirm", "confirmation-required"),
    ("k8s::exec(", "denied"),
    // Standard input is empty: no value to read.
    ("ui::secret(", "invalid"),
];

/// What a test needs before an example of `function` runs: the names examples use for what a
/// verb has at hand (`ns`, `pod`, `deployment`, `ctx`…), bound to real objects in the
/// sandbox, and the state examples change put back (an example deletes the app, another
/// switches the current cluster).
fn prelude(function: &str) -> String {
    let mut p = String::from(
        r#"config::save(#{});
    // An example deletes the app (in the foreground): its objects go before it is made again.
    for k in [["kipper.run/v1alpha1", "App"], ["apps/v1", "Deployment"], ["v1", "Service"], ["networking.k8s.io/v1", "Ingress"]] {
        let o = k8s::get_opt(k[0], k[1], "shop-test", "web");
        if o != () && o.metadata.deletionTimestamp != () { k8s::wait_deleted(k[0], k[1], "shop-test", "web", 30); }
    }
    let ns = "shop-test";
    let name = "web";
    let opts = #{ name: "web", image: "nginx:1.27", port: 80, replicas: 2, project: "shop", environment: "test" };
    let app = kip::run("app deploy", opts);
    let apps = [app];
    let pod = k8s::pods_of(ns, "app.kubernetes.io/name=web")[0].metadata.name;
    import "lib/apps" as lib;
    import "lib/kipper" as kipper;
    let ctx = lib::context(k8s::get("kipper.run/v1alpha1", "App", ns, "web"));
    let objects = lib::objects(k8s::get("kipper.run/v1alpha1", "App", ns, "web"));
    let deployment = objects.filter(|o| o.kind == "Deployment")[0];
    let service = objects.filter(|o| o.kind == "Service")[0];
    let obj = #{ apiVersion: "v1", kind: "ConfigMap", metadata: #{ name: "example", namespace: ns }, data: #{ a: "1" } };
    let force = false;
    let img = "nginx:1.28";
    let image = "nginx:1.28";
    let logs = "2026-12-03 listening on :80";
    let cfg = config::load();
    let k3s_yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: default\n  cluster: {server: 'https://127.0.0.1:6443'}\ncontexts:\n- name: default\n  context: {cluster: default, user: default}\ncurrent-context: default\nusers:\n- name: default\n  user: {token: t}\n";
    let text = k3s_yaml;
    let source = "fn on_push(event) { print(event.commit); }";
"#,
    );
    match function {
        "config::kubeconfig_contexts" => {
            p.push_str("    let ctx = \"default\";\n    let path = config::save_kubeconfig(\"example\", k3s_yaml);\n");
        }
        "config::save" => {
            p.push_str("    config::save(#{ clusters: [#{ name: \"prod\", server: \"https://203.0.113.10:6443\" }] });\n");
        }
        "k8s::wait_deleted" => {
            p.push_str("    let ns = \"scratch\";\n    k8s::apply(#{ apiVersion: \"v1\", kind: \"Namespace\", metadata: #{ name: ns } });\n");
        }
        _ => {}
    }
    p
}

/// The examples do what they show: those that need only a cluster run, each as a test of
/// `kip test` against a sandbox holding a project `shop` with the app `web` in `test` and
/// `prod`, a `db` pod and a `migrate` Job. One that fails names its function and example.
#[test]
fn the_examples_run_against_a_sandbox() {
    let markdown = out(&kip_doc(&[]));
    let all = examples(&markdown);
    let mut file = String::from(
        r#"// Generated from the examples of `kip doc` by tests/doc.rs.
kip::run("project create", #{ name: "shop", environments: "test,prod" });
for env in ["test", "prod"] {
    kip::run("app deploy", #{ name: "web", image: "nginx:1.27", port: 80, project: "shop", environment: env });
    k8s::wait_rollout(`shop-${env}`, "web", 60);
    k8s::apply(#{ apiVersion: "v1", kind: "Pod", metadata: #{ name: "db-0", namespace: `shop-${env}` }, spec: #{ containers: [#{ name: "mysql", image: "mysql:8" }] } });
}
k8s::apply(#{ apiVersion: "batch/v1", kind: "Job", metadata: #{ name: "migrate", namespace: "shop-test" }, spec: #{ template: #{ spec: #{ restartPolicy: "Never", containers: [#{ name: "m", image: "busybox" }] } } } });
"#,
    );
    let mut run = 0;
    for (i, example) in all.iter().enumerate() {
        if NOT_RUN
            .iter()
            .any(|(p, _)| example.function.starts_with(p) || example.code.contains(p))
        {
            continue;
        }
        run += 1;
        let code = match THROWS.iter().find(|(p, _)| example.code.contains(p)) {
            Some((_, kind)) => format!("assert::throws(|| {{ {} }}, \"{kind}\");", example.code),
            None => example.code.clone(),
        };
        file.push_str(&format!(
            "\n// {}\nfn test_{i}_{}() {{\n    {}\n    {code}\n}}\n",
            example.function,
            example.function.replace("::", "_"),
            prelude(&example.function),
        ));
    }
    assert!(run >= 60, "{run} of {} examples run", all.len());
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("examples");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("examples_test.rhai"), &file).unwrap();
    // What `fs::read_yaml`'s example reads, where kip runs.
    std::fs::write(
        home.path().join("prod.yaml"),
        "apps:\n  web: {replicas: 2}\n",
    )
    .unwrap();
    // What `fs::read_dotenv`'s example reads, where kip runs.
    std::fs::write(home.path().join(".env"), "LOG_LEVEL=info\n").unwrap();
    // What `fs::read_text`'s example reads, where kip runs.
    std::fs::create_dir_all(home.path().join("hooks")).unwrap();
    std::fs::write(
        home.path().join("hooks/deploy.rhai"),
        "fn on_push(event) { }\n",
    )
    .unwrap();
    if let Some(keep) = std::env::var_os("KIP_KEEP_EXAMPLES") {
        std::fs::write(keep, &file).unwrap();
    }
    let ran = kip_in(home.path())
        .env("KUBECONFIG", home.path().join("not-a-kubeconfig"))
        .env("TMPDIR", home.path())
        .run(&["test", &dir.display().to_string()]);
    assert!(
        ran.status.success(),
        "examples fail:\n{}\n{}",
        out(&ran),
        err(&ran)
    );
    assert!(
        out(&ran).contains(&format!("{run} passed, 0 failed")),
        "{}",
        out(&ran)
    );
}
