//! `kip service add|info|list|bind|unbind|delete|restart|resources` through the real binary
//! against a sandbox, checked with kip's output and `kubectl get -o json`.

use std::process::Output;

use crate::common::{ServedSandbox, secret_value, stderr as err, stdout as out};

fn kip(sb: &ServedSandbox, args: &[&str]) -> Output {
    sb.kip(args)
}

/// Deploys `name` (nginx on port 80) into the default project; what kip printed.
fn deploy_app(sb: &ServedSandbox, name: &str) -> String {
    ok(
        sb,
        &[
            "app",
            "deploy",
            "--name",
            name,
            "--image",
            "nginx:1.27",
            "--port",
            "80",
        ],
    )
}

fn ok(sb: &ServedSandbox, args: &[&str]) -> String {
    let o = kip(sb, args);
    assert!(o.status.success(), "kip {args:?}: {}{}", out(&o), err(&o));
    out(&o)
}

/// The value after `label:` in kip's connection details.
fn detail(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{label}:")))
        .unwrap_or_else(|| panic!("no {label} in {text}"))
        .trim()
        .to_string()
}

#[test]
fn add_creates_an_owned_statefulset_and_prints_the_connection() {
    let sb = ServedSandbox::start();
    let added = ok(&sb, &["service", "add", "redis", "--name", "cache"]);
    assert!(
        added.starts_with(
            "Adding redis service cache...\n✔ Secret cache-credentials created\n✔ Service cache-headless created\n✔ Service cache created\n✔ StatefulSet cache created\n✔ cache is ready\n"
        ),
        "{added}"
    );
    assert_eq!(detail(&added, "Host"), "cache.default.svc.cluster.local");
    assert_eq!(detail(&added, "Port"), "6379");
    assert_eq!(detail(&added, "Username"), "default");
    let password = detail(&added, "Password");
    assert_eq!(password.len(), 24, "{added}");
    assert!(
        !added.contains("Database:"),
        "redis has no database: {added}"
    );

    let k = sb.kubectl();
    let resource = k.json(&["get", "services.kipper.run", "cache"]);
    assert_eq!(resource["spec"]["type"], "redis");
    assert_eq!(resource["spec"]["storage"], "1Gi");
    let uid = resource["metadata"]["uid"].as_str().unwrap().to_string();
    let set = k.json(&["get", "statefulset", "cache"]);
    assert_eq!(set["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    assert_eq!(set["spec"]["replicas"], 1);
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "redis:7.4.1");
    assert!(container["readinessProbe"]["exec"].is_object());
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    let pvc = k.json(&["get", "pvc", "data-cache-0"]);
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
    let secret = k.json(&["get", "secret", "cache-credentials"]);
    assert_eq!(secret_value(&secret, "password"), password);
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        uid.as_str()
    );
    let headless = k.json(&["get", "service", "cache-headless"]);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert!(
        !resource.to_string().contains(&password),
        "no password in the Service resource"
    );

    // Idempotent: nothing changes, the password stays.
    let again = ok(&sb, &["service", "add", "redis", "--name", "cache"]);
    assert!(again.contains("✔ StatefulSet cache unchanged"), "{again}");
    assert!(
        again.contains("✔ Secret cache-credentials unchanged"),
        "{again}"
    );
    assert_eq!(
        detail(&again, "Password"),
        "******** (kip service info --show-password shows it)",
        "the password is printed once, when it is made"
    );

    let listed = ok(&sb, &["service", "list"]);
    assert_eq!(
        listed,
        "NAME   TYPE   STATUS   READY  STORAGE\ncache  redis  running  1/1    1Gi\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&sb, &["service", "list", "-o", "json"])).unwrap();
    assert_eq!(json[0]["name"], "cache");
    assert_eq!(json[0]["ready"], 1);

    let info = ok(&sb, &["service", "info", "cache"]);
    assert!(!info.contains(&password), "{info}");
    assert!(info.contains("--show-password"), "{info}");
    let shown = ok(&sb, &["service", "info", "cache", "--show-password"]);
    assert_eq!(detail(&shown, "Password"), password);
    let yaml = ok(&sb, &["service", "info", "cache", "-o", "yaml"]);
    assert!(
        yaml.contains("type: redis") && !yaml.contains(&password),
        "{yaml}"
    );
}

#[test]
fn minio_gets_its_endpoints_and_types_their_default_storage() {
    let sb = ServedSandbox::start();
    let added = ok(&sb, &["service", "add", "minio", "--name", "storage"]);
    assert_eq!(
        detail(&added, "Endpoint"),
        "http://storage.default.svc.cluster.local:9000"
    );
    assert_eq!(
        detail(&added, "Console"),
        "http://storage.default.svc.cluster.local:9001"
    );
    let k = sb.kubectl();
    assert_eq!(
        k.json(&["get", "pvc", "data-storage-0"])["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    let pg = ok(
        &sb,
        &[
            "service",
            "add",
            "postgres",
            "--name",
            "db",
            "--storage",
            "2Gi",
            "--version",
            "15.8",
        ],
    );
    assert_eq!(detail(&pg, "Database"), "app");
    let set = k.json(&["get", "statefulset", "db"]);
    assert_eq!(
        set["spec"]["template"]["spec"]["containers"][0]["image"],
        "postgres:15.8"
    );
    assert_eq!(
        k.json(&["get", "pvc", "data-db-0"])["spec"]["resources"]["requests"]["storage"],
        "2Gi"
    );
}

#[test]
fn bind_injects_prefixed_variables_through_a_secret_and_unbind_takes_them_away() {
    let sb = ServedSandbox::start();
    ok(&sb, &["service", "add", "redis", "--name", "cache"]);
    deploy_app(&sb, "api");
    let k = sb.kubectl();
    let generation = k.json(&["get", "deployment", "api"])["metadata"]["generation"].clone();

    let bound = ok(&sb, &["service", "bind", "cache", "api"]);
    assert_eq!(
        bound,
        "✔ Bound cache to api: REDIS_HOST, REDIS_PASSWORD, REDIS_PORT, REDIS_USERNAME\n"
    );
    let binding = k.json(&["get", "secret", "api-cache-binding"]);
    assert_eq!(
        secret_value(&binding, "REDIS_HOST"),
        "cache.default.svc.cluster.local"
    );
    assert_eq!(secret_value(&binding, "REDIS_PORT"), "6379");
    let credentials = k.json(&["get", "secret", "cache-credentials"]);
    assert_eq!(
        secret_value(&binding, "REDIS_PASSWORD"),
        secret_value(&credentials, "password")
    );
    let app = k.json(&["get", "apps.kipper.run", "api"]);
    assert_eq!(app["spec"]["bindings"], serde_json::json!(["cache"]));
    assert!(
        !app.to_string()
            .contains(&secret_value(&credentials, "password")),
        "no values in the App"
    );
    assert_eq!(
        binding["metadata"]["ownerReferences"][0]["uid"],
        app["metadata"]["uid"]
    );
    let deployment = k.json(&["get", "deployment", "api"]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][1]["secretRef"]["name"],
        "api-cache-binding"
    );
    assert_eq!(
        deployment["metadata"]["generation"].as_i64(),
        generation.as_i64().map(|g| g + 1),
        "rolled once"
    );

    assert_eq!(
        ok(&sb, &["service", "bind", "cache", "api"]),
        "✔ cache already bound to api\n"
    );
    // A redeploy keeps the binding.
    let redeployed = deploy_app(&sb, "api");
    assert!(
        redeployed.contains("✔ Deployment unchanged"),
        "{redeployed}"
    );

    assert_eq!(
        ok(&sb, &["service", "unbind", "cache", "api"]),
        "✔ Unbound cache from api\n"
    );
    let deployment = k.json(&["get", "deployment", "api"]);
    let sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"].to_string();
    assert!(!sources.contains("api-cache-binding"), "{sources}");
    assert!(
        k.fails(&["get", "secret", "api-cache-binding"])
            .contains("NotFound")
    );
    let again = kip(&sb, &["service", "unbind", "cache", "api"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        err(&again).contains("cache is not bound to api"),
        "{}",
        err(&again)
    );
}

#[test]
fn delete_needs_delete_data_and_unbinds_everywhere() {
    let sb = ServedSandbox::start();
    ok(&sb, &["service", "add", "redis", "--name", "cache"]);
    deploy_app(&sb, "api");
    ok(&sb, &["service", "bind", "cache", "api"]);
    let k = sb.kubectl();

    let refused = kip(&sb, &["service", "delete", "cache"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "confirmation-required exits 2"
    );
    assert_eq!(
        err(&refused),
        "error: deleting cache destroys its data for good: pass --delete-data to confirm\n"
    );
    k.ok(&["get", "statefulset", "cache"]);

    let deleted = ok(
        &sb,
        &["service", "delete", "cache", "--delete-data", "--yes"],
    );
    assert_eq!(
        deleted,
        "✔ Unbound from api\n✔ Service cache and its data deleted\n"
    );
    for what in [
        "services.kipper.run/cache",
        "statefulset/cache",
        "pvc/data-cache-0",
        "secret/cache-credentials",
        "secret/api-cache-binding",
    ] {
        let gone = k.run(&["get", what]);
        assert!(!gone.status.success(), "{what} is still there");
    }
    let app = k.json(&["get", "apps.kipper.run", "api"]);
    assert_eq!(app["spec"]["bindings"], serde_json::json!([]));
}

#[test]
fn restart_and_resources_warn_and_need_consent() {
    let sb = ServedSandbox::start();
    ok(&sb, &["service", "add", "redis", "--name", "cache"]);
    let k = sb.kubectl();
    let pod_uid =
        |k: &crate::common::Kubectl| k.json(&["get", "pod", "cache-0"])["metadata"]["uid"].clone();
    let before = pod_uid(&k);

    let refused = kip(&sb, &["service", "restart", "cache"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "confirmation-required exits 2"
    );
    assert!(err(&refused).contains("pass --force"), "{}", err(&refused));
    assert_eq!(pod_uid(&k), before);
    let restarted = kip(&sb, &["service", "restart", "cache", "--force"]);
    assert!(restarted.status.success(), "{}", err(&restarted));
    assert_eq!(out(&restarted), "✔ cache restarted\n");
    assert!(err(&restarted).contains("unavailable until its pod is back"));
    assert_ne!(pod_uid(&k), before);

    let no_terminal = kip(&sb, &["service", "resources", "cache", "--memory", "1Gi"]);
    assert_eq!(
        no_terminal.status.code(),
        Some(2),
        "confirmation-required exits 2"
    );
    assert!(
        err(&no_terminal).contains("pass --yes"),
        "{}",
        err(&no_terminal)
    );
    let changed = kip(
        &sb,
        &[
            "service",
            "resources",
            "cache",
            "--memory",
            "1Gi",
            "--memory-limit",
            "2Gi",
            "--yes",
        ],
    );
    assert!(changed.status.success(), "{}", err(&changed));
    assert!(
        err(&changed).contains("restarts cache"),
        "{}",
        err(&changed)
    );
    let set = k.json(&["get", "statefulset", "cache"]);
    let resources = &set["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(resources["requests"]["memory"], "1Gi");
    assert_eq!(resources["requests"]["cpu"], "50m", "untouched");
    assert_eq!(resources["limits"]["memory"], "2Gi");
    let resource = k.json(&["get", "services.kipper.run", "cache"]);
    assert_eq!(resource["spec"]["resources"]["requests"]["memory"], "1Gi");
    // A later `service add` keeps what was set.
    ok(&sb, &["service", "add", "redis", "--name", "cache"]);
    let set = k.json(&["get", "statefulset", "cache"]);
    assert_eq!(
        set["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "2Gi"
    );
}

#[test]
fn bad_input_is_refused_and_nothing_is_created() {
    let sb = ServedSandbox::start();
    ok(&sb, &["service", "add", "redis", "--name", "cache"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["service", "add", "oracle", "--name", "x"],
            "unknown service type `oracle`: use one of",
        ),
        (
            &["service", "add", "redis", "--name", "Bad_Name"],
            "invalid value 'Bad_Name' for '--name'",
        ),
        (
            &[
                "service",
                "add",
                "redis",
                "--name",
                "x",
                "--storage",
                "lots",
            ],
            "invalid value 'lots' for '--storage'",
        ),
        (
            &[
                "service",
                "add",
                "redis",
                "--name",
                "x",
                "--version",
                "7 rc",
            ],
            "invalid value '7 rc' for '--version'",
        ),
        (
            &["service", "add", "postgres", "--name", "cache"],
            "is a redis, not a postgres",
        ),
        (
            &[
                "service",
                "add",
                "redis",
                "--name",
                "x",
                "--project",
                "nope",
            ],
            "no project `nope`",
        ),
        (
            &["service", "info", "nothing"],
            "no service `nothing` in default",
        ),
        (
            &["service", "bind", "cache", "ghost"],
            "no app `ghost` in default",
        ),
        (
            &["service", "bind", "ghost", "api"],
            "no service `ghost` in default",
        ),
        (
            &["service", "resources", "cache", "--yes"],
            "name what to change",
        ),
        (
            &["service", "resources", "cache", "--cpu", "fast", "--yes"],
            "invalid value 'fast' for '--cpu'",
        ),
    ];
    for (args, expected) in cases {
        let o = kip(&sb, args);
        // Missing or of another type exits 1; a value the command line must change exits 2.
        let code = if expected.starts_with("no ") || expected.contains("not a ") {
            1
        } else {
            2
        };
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(expected), "{args:?}: {}", err(&o));
    }
    let missing = kip(&sb, &["service", "add", "redis"]);
    assert_eq!(missing.status.code(), Some(2), "{}", err(&missing));
    assert!(err(&missing).contains("--name"), "{}", err(&missing));
    let listed = ok(&sb, &["service", "list"]);
    assert_eq!(listed.lines().count(), 2, "only cache: {listed}");
    assert!(sb.kubectl().run(&["get", "statefulset", "x"]).status.code() != Some(0));
}

/// A real PostgreSQL stands in for the service's pod: `service bind` creates each app's
/// database inside it, once.
#[test]
fn bind_creates_each_apps_database_in_a_real_postgres() {
    use base64::Engine as _;
    let pg = crate::common::postgres::Postgres::start();
    let sb = ServedSandbox::start();
    ok(
        &sb,
        &["project", "create", "shop", "--environments", "test"],
    );
    fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [args, &["--project", "shop", "--environment", "test"][..]].concat()
    }
    ok(&sb, &with(&["service", "add", "postgres", "--name", "db"]));
    // The pod is the local server: its address, and the password it was set up with.
    let k = sb.kubectl();
    let forward = format!("sandbox.kipper.run/forward=5432=127.0.0.1:{}", pg.port);
    k.ok(&["annotate", "pod", "db-0", "-n", "shop-test", &forward]);
    let password =
        base64::engine::general_purpose::STANDARD.encode(crate::common::postgres::PASSWORD);
    let patch = format!(r#"{{"data":{{"password":"{password}"}}}}"#);
    k.ok(&[
        "patch",
        "secret",
        "db-credentials",
        "-n",
        "shop-test",
        "-p",
        &patch,
    ]);

    for app in ["api", "web-app"] {
        ok(
            &sb,
            &with(&[
                "app",
                "deploy",
                "--name",
                app,
                "--image",
                "nginx:1.27",
                "--port",
                "80",
            ]),
        );
    }
    let bound = ok(&sb, &with(&["service", "bind", "db", "api"]));
    assert_eq!(
        bound,
        "✔ Database api_test created\n✔ Bound db to api: DB_HOST, DB_NAME, DB_PASSWORD, DB_PORT, DB_USERNAME\n"
    );
    let bound = ok(&sb, &with(&["service", "bind", "db", "web-app"]));
    assert!(
        bound.starts_with("✔ Database web_app_test created\n"),
        "{bound}"
    );
    let databases = pg.databases();
    for name in ["api_test", "web_app_test"] {
        assert!(
            databases.iter().any(|d| d == name),
            "{name} in {databases:?}"
        );
    }
    let binding = k.json(&["get", "secret", "web-app-db-binding", "-n", "shop-test"]);
    assert_eq!(secret_value(&binding, "DB_NAME"), "web_app_test");
    assert_eq!(
        secret_value(&binding, "DB_HOST"),
        "db.shop-test.svc.cluster.local"
    );

    // Again: nothing created, nothing rolled; unbind leaves the database.
    assert_eq!(
        ok(&sb, &with(&["service", "bind", "db", "api"])),
        "✔ db already bound to api\n"
    );
    ok(&sb, &with(&["service", "unbind", "db", "api"]));
    assert!(pg.databases().iter().any(|d| d == "api_test"));
}
