//! `kip service bind` creating each app's database inside a MySQL or MongoDB service, through
//! `k8s::exec` in the service's pod. The sandbox runs no container, so the pod is annotated to
//! run exec commands on this machine (`kip sandbox serve --allow-host-exec`): for MySQL the
//! real `mysql` client against a throwaway MariaDB on loopback; for MongoDB, which has no
//! Debian package, a stand-in `mongosh` that records what it was asked to run.

use std::path::Path;
use std::process::Output;

use crate::common::mariadb::{self, MariaDb};
use crate::common::{ServedSandbox, stderr as err, stdout as out, text};

fn ok(sb: &ServedSandbox, args: &[&str]) -> String {
    let o = sb.kip(args);
    assert!(o.status.success(), "kip {args:?}: {}{}", out(&o), err(&o));
    out(&o)
}

/// `args` in the project `shop`, environment `test`.
fn in_shop(args: &[&str]) -> Vec<String> {
    args.iter()
        .chain(&["--project", "shop", "--environment", "test"])
        .map(|a| a.to_string())
        .collect()
}

fn shop(sb: &ServedSandbox, args: &[&str]) -> String {
    let all = in_shop(args);
    ok(sb, &all.iter().map(String::as_str).collect::<Vec<_>>())
}

fn shop_output(sb: &ServedSandbox, args: &[&str]) -> Output {
    let all = in_shop(args);
    sb.kip(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A project with a service of `kind` named `db` and the apps `api` and `web-app`.
fn service_and_apps(sb: &ServedSandbox, kind: &str) {
    ok(sb, &["project", "create", "shop", "--environments", "test"]);
    shop(sb, &["service", "add", kind, "--name", "db"]);
    for app in ["api", "web-app"] {
        shop(
            sb,
            &[
                "app",
                "deploy",
                "--name",
                app,
                "--image",
                "nginx:1.27",
                "--port",
                "80",
            ],
        );
    }
}

/// Makes pod `db-0` run exec commands on this machine, with `env` added.
fn exec_on_host(sb: &ServedSandbox, env: &str) {
    let k = sb.kubectl();
    k.ok(&[
        "annotate",
        "pod",
        "db-0",
        "-n",
        "shop-test",
        "sandbox.kipper.run/exec=host",
        &format!("sandbox.kipper.run/exec-env={env}"),
    ]);
}

/// Sets the service's password (the credentials Secret the pod's env reads) to `password`.
fn set_password(sb: &ServedSandbox, password: &str) {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(password);
    sb.kubectl().ok(&[
        "patch",
        "secret",
        "db-credentials",
        "-n",
        "shop-test",
        "-p",
        &format!(r#"{{"data":{{"password":"{encoded}"}}}}"#),
    ]);
}

/// A real MariaDB stands in for the mysql pod: bind creates each app's database with the
/// root password from the pod's environment, lets the service's user use it, and binding
/// again changes nothing.
#[test]
fn bind_creates_each_apps_database_in_a_real_mysql() {
    let db = MariaDb::start();
    let sb = ServedSandbox::with_host_exec();
    service_and_apps(&sb, "mysql");
    exec_on_host(&sb, &db.client_env());
    set_password(&sb, mariadb::PASSWORD);

    let bound = shop(&sb, &["service", "bind", "db", "api"]);
    assert_eq!(
        bound,
        "✔ Database api_test created\n✔ Bound db to api: DB_HOST, DB_NAME, DB_PASSWORD, DB_PORT, DB_USERNAME\n"
    );
    let bound = shop(&sb, &["service", "bind", "db", "web-app"]);
    assert!(
        bound.starts_with("✔ Database web_app_test created\n"),
        "{bound}"
    );
    let databases = db.databases();
    for name in ["api_test", "web_app_test"] {
        assert!(
            databases.iter().any(|d| d == name),
            "{name} in {databases:?}"
        );
        // The user apps get (DB_USERNAME) may use its database.
        let used = db.mysql_output(
            "skipper",
            name,
            "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi'); SELECT body FROM notes",
        );
        assert!(used.status.success(), "{}", text(&used));
        assert_eq!(out(&used), "hi\n");
    }

    // Again: the database exists, nothing is created or rolled.
    assert_eq!(
        shop(&sb, &["service", "bind", "db", "api"]),
        "✔ db already bound to api\n"
    );
    // Unbound and bound again: the database (and its table) is found, not created anew.
    shop(&sb, &["service", "unbind", "db", "api"]);
    let again = shop(&sb, &["service", "bind", "db", "api"]);
    assert!(!again.contains("created"), "{again}");
    assert!(again.starts_with("✔ Bound db to api"), "{again}");
    let kept = db.mysql_output("skipper", "api_test", "SELECT body FROM notes");
    assert_eq!(out(&kept), "hi\n", "{}", text(&kept));
}

/// A failing client is reported with what failed and the server's words, and nothing is bound.
#[test]
fn a_failing_mysql_exec_says_why_and_binds_nothing() {
    let db = MariaDb::start();
    let sb = ServedSandbox::with_host_exec();
    service_and_apps(&sb, "mysql");
    exec_on_host(&sb, &db.client_env());
    // The Secret keeps kip's fresh password, which this server does not know.
    let refused = shop_output(&sb, &["service", "bind", "db", "api"]);
    assert_eq!(refused.status.code(), Some(1));
    let message = err(&refused);
    assert!(
        message.contains("cannot create database api_test in db: mysql in pod shop-test/db-0 exited with status 1"),
        "{message}"
    );
    assert!(message.contains("Access denied"), "{message}");
    assert!(
        sb.kubectl()
            .fails(&["get", "secret", "api-db-binding", "-n", "shop-test"])
            .contains("NotFound")
    );

    // A pod with nothing standing in for it: the binding is made, and one line says the
    // database was not, why, and how to point the pod at a real server.
    let sb = ServedSandbox::start();
    service_and_apps(&sb, "mysql");
    let bound = shop_output(&sb, &["service", "bind", "db", "api"]);
    assert!(bound.status.success(), "{}", err(&bound));
    assert_eq!(
        err(&bound),
        "warning: database api_test not created: in the sandbox no mysql runs in pod db-0 (point it at a local server with the sandbox.kipper.run/forward or sandbox.kipper.run/exec annotation, see README)\n"
    );
    sb.kubectl()
        .ok(&["get", "secret", "api-db-binding", "-n", "shop-test"]);
}

/// A stand-in `mongosh` in `dir`: records its arguments (NUL-separated) and the root password
/// it finds in its environment, then answers as the script kip sends does: `created` the
/// first time a database name comes, `exists` after.
fn fake_mongosh(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let script = r#"#!/bin/sh
set -e
here=$(dirname "$0")
printf '%s\0' "$@" > "$here/args"
printf '%s' "$MONGO_INITDB_ROOT_USERNAME:$MONGO_INITDB_ROOT_PASSWORD" > "$here/credentials"
name=$(printf '%s\n' "$4" | sed -n 's/^const name = "\(.*\)";$/\1/p')
if [ -e "$here/db-$name" ]; then echo exists; else touch "$here/db-$name"; echo created; fi
"#;
    let path = dir.join("mongosh");
    std::fs::write(&path, script).expect("write mongosh");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// MongoDB cannot run here (no Debian package): this checks the exact command the pod
/// receives and that its answer is understood; the script itself is not run against a mongod.
#[test]
fn bind_runs_mongosh_with_the_root_credentials_to_create_the_database() {
    let bin = tempfile::tempdir().expect("temp dir");
    fake_mongosh(bin.path());
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let sb = ServedSandbox::start_with(&["--allow-host-exec"], &[("PATH", &path)]);
    service_and_apps(&sb, "mongodb");
    exec_on_host(&sb, "KIP_TEST=1");

    let bound = shop(&sb, &["service", "bind", "db", "api"]);
    assert!(
        bound.starts_with("✔ Database api_test created\n"),
        "{bound}"
    );
    let args = std::fs::read_to_string(bin.path().join("args")).expect("mongosh ran");
    let args: Vec<&str> = args.trim_end_matches('\0').split('\0').collect();
    assert_eq!(
        args[..3],
        ["--quiet", "mongodb://127.0.0.1:27017/admin", "--eval"]
    );
    assert_eq!(args.len(), 4, "{args:?}");
    let script = args[3];
    for line in [
        "db.auth(process.env.MONGO_INITDB_ROOT_USERNAME, process.env.MONGO_INITDB_ROOT_PASSWORD);",
        "const name = \"api_test\";",
        "db.adminCommand({ listDatabases: 1, nameOnly: true, filter: { name: name } })",
        "db.getSiblingDB(name).createCollection(\"kipper\");",
    ] {
        assert!(script.contains(line), "{line} in {script}");
    }
    let credentials = sb
        .kubectl()
        .json(&["get", "secret", "db-credentials", "-n", "shop-test"]);
    let password = {
        use base64::Engine as _;
        let encoded = credentials["data"]["password"].as_str().expect("password");
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .expect("base64"),
        )
        .expect("utf-8")
    };
    assert_eq!(
        std::fs::read_to_string(bin.path().join("credentials")).expect("credentials"),
        format!("skipper:{password}"),
        "the root credentials come from the container's env"
    );

    // An existing database is not reported as created.
    shop(&sb, &["service", "unbind", "db", "api"]);
    let again = shop(&sb, &["service", "bind", "db", "api"]);
    assert!(!again.contains("created"), "{again}");
}
