//! Verbs declared by scripts: adding, replacing and wrapping verbs from an override folder,
//! `kip run`, `kip eval`, and errors that point at file, line and column.

use std::path::Path;
use std::process::Output;

use crate::common::kip_in;

fn kip(home: &Path, args: &[&str]) -> Output {
    kip_in(home).run(args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

const GREET: &str = r#"
fn verbs() {[
    #{
        verb: "hello greet",
        about: "Greet someone",
        flags: [
            #{ name: "name", required: true, help: "Who to greet" },
            #{ name: "times", type: "int", default_value: 1, help: "How often" },
            #{ name: "shout", type: "bool", help: "Upper case" },
            #{ name: "tag", repeatable: true, help: "A tag (repeatable)" },
        ],
        run: "greet",
    },
]}

fn greet(opts) {
    for i in 0..opts.times {
        let line = `hello ${opts.name}`;
        if opts.shout { line = line.to_upper(); }
        print(line);
    }
    print(`tags: ${opts.tag}`);
}
"#;

#[test]
fn a_user_script_adds_a_verb_with_flags() {
    let home = tempfile::tempdir().unwrap();
    let scripts = home.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("hello.rhai"), GREET).unwrap();

    let help = stdout(&kip(home.path(), &["--help"]));
    assert!(help.contains("hello"), "{help}");
    let help = stdout(&kip(home.path(), &["hello", "greet", "--help"]));
    assert!(
        help.contains("--name <VALUE>") && help.contains("Who to greet"),
        "{help}"
    );
    assert!(help.contains("[default: 1]"), "{help}");

    let out = kip(
        home.path(),
        &[
            "hello", "greet", "--name", "ada", "--times", "2", "--shout", "--tag", "a", "--tag",
            "b",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "HELLO ADA\nHELLO ADA\ntags: [\"a\", \"b\"]\n");

    let out = kip(home.path(), &["hello", "greet"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing required flag is a usage error"
    );
    assert!(stderr(&out).contains("--name"), "{}", stderr(&out));
    let out = kip(
        home.path(),
        &["hello", "greet", "--name", "x", "--times", "many"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'many'"),
        "{}",
        stderr(&out)
    );

    let listed = stdout(&kip(home.path(), &["verbs"]));
    let line = listed
        .lines()
        .find(|l| l.starts_with("hello greet"))
        .expect("listed");
    assert!(
        line.ends_with(&scripts.join("hello.rhai").display().to_string()),
        "{listed}"
    );
    // kip's own commands are verbs too, and say they are built in.
    for own in [
        "sandbox up",
        "shell ",
        "completion ",
        "eval ",
        "run ",
        "verbs ",
    ] {
        let line = listed
            .lines()
            .find(|l| l.starts_with(own))
            .unwrap_or_else(|| panic!("`{own}` is not listed: {listed}"));
        assert!(line.ends_with("built into kip"), "{line}");
    }
}

#[test]
fn an_override_replaces_or_wraps_a_stdlib_verb() {
    let home = tempfile::tempdir().unwrap();
    let scripts = home.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        scripts.join("version.rhai"),
        r#"
fn verbs() {[ #{ verb: "version", about: "Print kip's version, politely", run: "version" } ]}
fn version(opts) {
    print("before");
    kip::next(opts);
    print("after");
}
"#,
    )
    .unwrap();
    let out = kip(home.path(), &["version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("before\nkip {}\nafter\n", env!("CARGO_PKG_VERSION"))
    );
    let help = stdout(&kip(home.path(), &["--help"]));
    assert!(
        help.contains("Print kip's version, politely"),
        "the override's help wins: {help}"
    );

    // --scripts comes first on the search path: it replaces without calling the original.
    let other = home.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("v.rhai"),
        r#"fn verbs() {[ #{ verb: "version", about: "replaced", run: "v" } ]} fn v(opts) { print("mine") }"#,
    )
    .unwrap();
    let out = kip(
        home.path(),
        &["--scripts", &other.display().to_string(), "version"],
    );
    assert_eq!(stdout(&out), "mine\n");
}

#[test]
fn script_errors_point_at_file_line_and_column() {
    let home = tempfile::tempdir().unwrap();
    let scripts = home.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let broken = scripts.join("broken.rhai");
    std::fs::write(
        &broken,
        "fn verbs() {[ #{ verb: \"hello greet\", run: \"oops\" } ]}\nfn oops( {\n",
    )
    .unwrap();
    // Only the verb the broken script declares fails, with the whole error.
    let out = kip(home.path(), &["hello", "greet", "--name", "x"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a syntax error is a script error"
    );
    let err = stderr(&out);
    assert!(err.starts_with("error: syntax error"), "{err}");
    assert!(
        err.contains(&format!("--> {}:2:", broken.display())),
        "{err}"
    );
    // Every other command runs, after one line naming the script and where it breaks.
    for args in [
        &["version"][..],
        &["--version"],
        &["verbs"],
        &["sandbox", "status"],
    ] {
        let out = kip(home.path(), args);
        let err = stderr(&out);
        if args[0] != "sandbox" {
            assert!(out.status.success(), "{args:?}: {err}");
            assert!(
                err.contains(&format!("warning: skipped {}", broken.display()))
                    && err.contains("(line 2, column"),
                "{args:?}: {err}"
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "not running: {err}");
            assert!(
                !err.contains("broken"),
                "the sandbox reads no scripts: {err}"
            );
        }
    }
    // A `verbs()` that fails when it runs is named too.
    std::fs::write(&broken, "fn verbs() {\n    let x = 1;\n    x.nope()\n}\n").unwrap();
    let err = stderr(&kip(home.path(), &["version"]));
    assert!(
        err.contains(&format!("warning: skipped {}", broken.display()))
            && err.contains("nope")
            && err.contains("line 3"),
        "{err}"
    );
    std::fs::remove_file(&broken).unwrap();

    std::fs::write(
        scripts.join("fails.rhai"),
        r#"fn verbs() {[ #{ verb: "fails", about: "Fails", run: "run" } ]}
fn run(opts) {
    inner(opts)
}
fn inner(opts) {
    throw #{ kind: "demo", message: "the thing failed" };
}
"#,
    )
    .unwrap();
    let out = kip(home.path(), &["fails"]);
    assert_eq!(out.status.code(), Some(1), "a failing verb exits 1");
    let err = stderr(&out);
    let file = scripts.join("fails.rhai").display().to_string();
    assert!(err.starts_with("error: the thing failed\n"), "{err}");
    assert!(err.contains(&format!("--> {file}:6:5")), "{err}");
    assert!(
        err.contains("6 |     throw #{ kind: \"demo\", message: \"the thing failed\" };"),
        "{err}"
    );
    assert!(
        err.contains("in call to `run`") && err.contains("in call to `inner`"),
        "{err}"
    );
}

#[test]
fn run_and_eval() {
    let home = tempfile::tempdir().unwrap();
    let pipeline = home.path().join("pipeline.rhai");
    std::fs::write(
        &pipeline,
        "for a in ARGS { print(`step ${a}`); }\nkip::run(\"version\", #{});\n",
    )
    .unwrap();
    let out = kip(
        home.path(),
        &["run", &pipeline.display().to_string(), "one", "two"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("step one\nstep two\nkip {}\n", env!("CARGO_PKG_VERSION"))
    );

    let out = kip(home.path(), &["eval", "40 + 2"]);
    assert_eq!(stdout(&out), "42\n");
    let out = kip(home.path(), &["eval", "eval(\"1\")"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "eval is disabled in scripts: {}",
        stderr(&out)
    );
    let out = kip(home.path(), &["eval", "let n = 0; loop { n += 1; }"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a runaway loop hits the operations limit"
    );
    assert!(
        stderr(&out).to_lowercase().contains("too many operations"),
        "{}",
        stderr(&out)
    );

    let out = kip(home.path(), &["completion", "bash"]);
    assert!(
        out.status.success() && stdout(&out).contains("_kip"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn with_no_cluster_configured_kip_starts_and_uses_the_sandbox() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        crate::common::kip_command()
            .args(args)
            .env("KIP_HOME", home.path())
            .env("HOME", home.path())
            .env_remove("KUBECONFIG")
            .env_remove("KIP_SCRIPTS")
            .current_dir(home.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run kip")
    };
    let out = run(&["eval", "k8s::server_version()"]);
    let _stop = StopSandbox(home.path().to_path_buf());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "v1.33.0-kip-sandbox\n");
    assert!(
        stderr(&out)
            .starts_with("No cluster configured: started the local sandbox at http://127.0.0.1:"),
        "{}",
        stderr(&out)
    );

    let out = run(&[
        "eval",
        r#"let r = "found"; try { k8s::get("v1", "ConfigMap", "default", "nope"); } catch (e) { r = e.reason; } r"#,
    ]);
    assert_eq!(
        stdout(&out),
        "NotFound\n",
        "the second run finds it running: {}",
        stderr(&out)
    );
    assert_eq!(stderr(&out), "", "and says nothing about it");
}

/// Stops the sandbox a test started through kip's default cluster.
struct StopSandbox(std::path::PathBuf);

impl Drop for StopSandbox {
    fn drop(&mut self) {
        let _ = crate::common::kip_command()
            .args(["sandbox", "down"])
            .env("KIP_HOME", &self.0)
            .output();
    }
}
