//! `kip test`: script tests against a fresh sandbox per file, with the stdlib's own tests in
//! `tests/scripts/` as the first users.

use std::path::Path;
use std::process::Output;

use crate::common::{kip_in, stderr as err, stdout as out};

/// `kip test DIR` as a user runs it, with a kubeconfig pointing nowhere: tests must not use it.
fn kip_test(home: &Path, dir: &Path) -> Output {
    kip_in(home)
        .env("KUBECONFIG", home.join("not-a-kubeconfig"))
        .env("TMPDIR", home)
        .run(&["test", &dir.display().to_string()])
}

#[test]
fn the_stdlibs_script_tests_pass() {
    let home = tempfile::tempdir().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let run = kip_test(home.path(), &dir);
    let text = out(&run);
    assert!(run.status.success(), "{text}\n{}", err(&run));
    assert!(
        text.contains("  ✔ test_deploy_makes_the_app_and_its_objects"),
        "{text}"
    );
    assert!(
        text.contains("  ✔ test_create_makes_a_namespace_per_environment"),
        "{text}"
    );
    assert!(text.contains(" 0 failed:"), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("kip-test-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "each test's kip home is removed: {leftovers:?}"
    );
}

#[test]
fn a_failing_test_is_named_with_its_line_and_the_run_fails() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("t");
    std::fs::create_dir_all(dir.join("more")).unwrap();
    std::fs::write(
        dir.join("more/scale_test.rhai"),
        r#"let deployed = kip::run("app deploy", #{ name: "web", image: "nginx:1.27", port: 80 });

fn test_passes() {
    assert::eq(k8s::get("apps/v1", "Deployment", "default", "web").spec.replicas, 1);
}

fn test_fails() {
    print("scaling web");
    kip::run("app scale", #{ name: "web", replicas: 2 });
    let d = k8s::get("apps/v1", "Deployment", "default", "web");
    assert::eq(d.spec.replicas, 3);
}
"#,
    )
    .unwrap();
    // Each file has a sandbox of its own: this one sees no `web`.
    std::fs::write(
        dir.join("fresh_test.rhai"),
        r#"assert::eq(k8s::get_opt("apps/v1", "Deployment", "default", "web"), ());"#,
    )
    .unwrap();
    std::fs::write(dir.join("helpers.rhai"), "throw \"never run\";").unwrap();
    let run = kip_test(home.path(), &dir);
    let text = out(&run);
    assert_eq!(run.status.code(), Some(1), "{text}\n{}", err(&run));
    let file = dir.join("more/scale_test.rhai").display().to_string();
    assert!(text.contains("  ✔ fresh_test"), "{text}");
    assert!(text.contains("  ✔ test_passes"), "{text}");
    assert!(text.contains("  ✘ test_fails"), "{text}");
    assert!(text.contains("error: expected 3, found 2"), "{text}");
    assert!(text.contains(&format!("--> {file}:11:")), "{text}");
    // What verbs and prints wrote shows only under the test that failed, after its error.
    assert!(
        !text.contains("Deployment created"),
        "the setup's deploy passed, its lines are not shown: {text}"
    );
    let shown = text.split("  ✘ test_fails").nth(1).unwrap_or_default();
    assert!(
        shown.contains("output:\n      scaling web\n      ✔ web scaled to 2"),
        "{text}"
    );
    assert!(
        text.contains("2 passed, 1 failed: 3 tests in 2 files"),
        "{text}"
    );
    assert!(!text.contains("never run"), "{text}");
    assert_eq!(err(&run), "error: 1 of 3 tests failed\n");

    let empty = home.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let none = kip_test(home.path(), &empty);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        err(&none).contains("no *_test.rhai files in"),
        "{}",
        err(&none)
    );
}
