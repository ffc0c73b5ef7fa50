//! `kip hook add|list|remove|logs` through the real binary against a sandbox: hooks are kept
//! as ConfigMaps in kipper-system (what kubectl sees), bad files are refused before anything is
//! stored, removing confirms, and logs show what the server recorded.

use crate::common::{ServedSandbox, stderr as err, stdout as out};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn hooks_are_added_listed_and_removed_and_bad_files_are_refused() {
    let sb = ServedSandbox::start();
    let created = sb.kip(&["project", "create", "shop", "--environments", "test,prod"]);
    assert!(created.status.success(), "{}", err(&created));
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "deploy-test.rhai",
        "fn on_push(event) {\n    print(event.commit);\n}\n",
    );
    let added = sb.kip(&["hook", "add", &good, "--project", "shop"]);
    assert!(added.status.success(), "{}", err(&added));
    assert!(
        out(&added).contains("Hook deploy-test created for shop"),
        "{}",
        out(&added)
    );
    // What is stored, as an independent client reads it.
    let stored = sb.kubectl().json(&[
        "get",
        "configmap",
        "kip-hook-shop-deploy-test",
        "-n",
        "kipper-system",
    ]);
    assert_eq!(
        stored["data"]["script.rhai"],
        "fn on_push(event) {\n    print(event.commit);\n}\n"
    );
    assert_eq!(
        stored["metadata"]["labels"]["kipper.run/hook-project"],
        "shop"
    );
    // Adding again replaces; a name of one's own is kept.
    let again = sb.kip(&["hook", "add", &good, "--project", "shop", "--name", "ci"]);
    assert!(again.status.success(), "{}", err(&again));

    let refused: &[(&str, &str, i32, &str)] = &[
        (
            "none.rhai",
            "fn on_pull(e) { }\n",
            2,
            "defines no fn on_push(event)",
        ),
        (
            "syntax.rhai",
            "fn on_push(e) { let = ; }\n",
            2,
            "syntax error at line 1",
        ),
        (
            "Bad Name.rhai",
            "fn on_push(e) { }\n",
            2,
            "invalid value 'Bad Name' for '--name'",
        ),
    ];
    for (file, text, code, says) in refused {
        let path = write(dir.path(), file, text);
        let o = sb.kip(&["hook", "add", &path, "--project", "shop"]);
        assert_eq!(o.status.code(), Some(*code), "{file}: {}", err(&o));
        assert!(err(&o).contains(says), "{file}: {}", err(&o));
    }
    let missing = sb.kip(&["hook", "add", "/nonexistent/x.rhai", "--project", "shop"]);
    assert_eq!(missing.status.code(), Some(1), "{}", err(&missing));
    assert!(
        err(&missing).contains("cannot read `/nonexistent/x.rhai`"),
        "{}",
        err(&missing)
    );
    let no_project = sb.kip(&["hook", "add", &good, "--project", "nope"]);
    assert!(
        err(&no_project).contains("no project `nope`"),
        "{}",
        err(&no_project)
    );
    let wrong_event = sb.kip(&["hook", "add", &good, "--project", "shop", "--event", "pull"]);
    assert_eq!(wrong_event.status.code(), Some(2), "{}", err(&wrong_event));
    let hooks = sb.kubectl().json(&[
        "get",
        "configmaps",
        "-n",
        "kipper-system",
        "-l",
        "kipper.run/hook",
    ]);
    assert_eq!(
        hooks["items"].as_array().unwrap().len(),
        2,
        "only the good ones: {hooks}"
    );

    let listed = sb.kip(&["hook", "list", "--project", "shop", "-o", "json"]);
    assert!(listed.status.success(), "{}", err(&listed));
    let listed: serde_json::Value = serde_json::from_str(&out(&listed)).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert!(
        names.contains(&"deploy-test") && names.contains(&"ci"),
        "{listed}"
    );
    assert_eq!(listed[0]["last_outcome"], "never ran");

    // Removing confirms; without a terminal it needs --yes.
    let unconfirmed = sb.kip(&["hook", "remove", "ci", "--project", "shop"]);
    assert_eq!(unconfirmed.status.code(), Some(2), "{}", err(&unconfirmed));
    assert!(err(&unconfirmed).contains("--yes"), "{}", err(&unconfirmed));
    let removed = sb.kip(&["hook", "remove", "ci", "--project", "shop", "--yes"]);
    assert!(removed.status.success(), "{}", err(&removed));
    let gone = sb.kip(&["hook", "remove", "ci", "--project", "shop", "--yes"]);
    assert_eq!(gone.status.code(), Some(1), "{}", err(&gone));
    assert!(
        err(&gone).contains("no hook `ci` in shop"),
        "{}",
        err(&gone)
    );
    let logs = sb.kip(&["hook", "logs", "--project", "shop"]);
    assert!(logs.status.success(), "{}", err(&logs));
    assert!(
        out(&logs).contains("No recorded hook runs in shop")
            || err(&logs).contains("No recorded hook runs in shop")
    );
}

/// The README's hook example and the hooks shipped in scripts/hooks/ are accepted as written.
#[test]
fn the_readme_and_shipped_hooks_are_accepted() {
    let sb = ServedSandbox::start();
    let created = sb.kip(&["project", "create", "shop", "--environments", "test,acc"]);
    assert!(created.status.success(), "{}", err(&created));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("### Hooks on push")
        .nth(1)
        .expect("the README has a hooks section");
    let example = section
        .split("```rhai\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a rhai example");
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![write(dir.path(), "deploy-main.rhai", example)];
    for shipped in ["deploy-branch-to-test.rhai", "promote-tag-to-acc.rhai"] {
        files.push(
            root.join("scripts/hooks")
                .join(shipped)
                .display()
                .to_string(),
        );
    }
    for file in &files {
        let added = sb.kip(&["hook", "add", file, "--project", "shop"]);
        assert!(added.status.success(), "{file}: {}", err(&added));
    }
    let listed = sb.kip(&["hook", "list", "--project", "shop"]);
    for name in ["deploy-main", "deploy-branch-to-test", "promote-tag-to-acc"] {
        assert!(out(&listed).contains(name), "{}", out(&listed));
    }
}

/// A repository's `.kip/hooks/` folder is added at once; one bad file in it stores none.
#[test]
fn a_folder_of_hooks_is_added_whole_or_not_at_all() {
    let sb = ServedSandbox::start();
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join(".kip/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    write(&hooks, "a.rhai", "fn on_push(event) { }\n");
    write(&hooks, "b.rhai", "fn on_push(event) { print(1); }\n");
    write(&hooks, "notes.txt", "not a hook\n");
    let bad = write(&hooks, "c.rhai", "fn on_pull(event) { }\n");
    let folder = hooks.display().to_string();
    let refused = sb.kip(&["hook", "add", &folder]);
    assert_eq!(refused.status.code(), Some(2), "{}", err(&refused));
    assert!(
        err(&refused).contains("c.rhai defines no fn on_push"),
        "{}",
        err(&refused)
    );
    let listed = sb.kip(&["hook", "list", "-o", "json"]);
    assert_eq!(
        out(&listed).trim(),
        "[]",
        "nothing stored: {}",
        out(&listed)
    );
    std::fs::remove_file(bad).unwrap();
    let added = sb.kip(&["hook", "add", &folder]);
    assert!(added.status.success(), "{}", err(&added));
    assert!(
        out(&added).contains("Hook a created for default"),
        "{}",
        out(&added)
    );
    assert!(
        out(&added).contains("Hook b created for default"),
        "{}",
        out(&added)
    );
    let named = sb.kip(&["hook", "add", &folder, "--name", "x"]);
    assert_eq!(named.status.code(), Some(2), "{}", err(&named));
    let empty = tempfile::tempdir().unwrap();
    let none = sb.kip(&["hook", "add", &empty.path().display().to_string()]);
    assert_eq!(none.status.code(), Some(1), "{}", err(&none));
    assert!(err(&none).contains("no .rhai files in"), "{}", err(&none));
}
