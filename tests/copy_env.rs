//! `kip project copy-env` (and `add-env --copy-from`) through the real binary against a
//! sandbox, checked with kubectl: what the new environment gets, what is rewritten, that
//! `--plan` and a second run change nothing, customisation by flags and by file, and that every
//! refusal leaves no new environment behind.

use serde_json::Value;

use crate::common::{ServedSandbox, secret_value, stderr as err, stdout as out};

/// `kip project copy-env test prod` in project shop, no question asked.
const COPY: &[&str] = &[
    "project",
    "copy-env",
    "test",
    "prod",
    "--project",
    "shop",
    "--yes",
];
/// The same without `--yes`, for runs that add their own flags.
const COPY_ARGS: &[&str] = &["project", "copy-env", "test", "prod", "--project", "shop"];

fn get(sb: &ServedSandbox, kind: &str, ns: &str, name: &str) -> Value {
    sb.kubectl().json(&["get", kind, name, "-n", ns])
}

fn var(app: &Value, name: &str) -> String {
    app["spec"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {app}"))["value"]
        .as_str()
        .unwrap()
        .to_string()
}

const DB_URL: &str = "postgres://db.shop-test.svc.cluster.local:5432/app";

/// Project `shop` with environment `test`: `api` and `web` in route group `shop`, web linked
/// to api, a postgres `db` bound to api, a user secret of api and a variable naming the test
/// namespace.
fn shop() -> ServedSandbox {
    let sb = ServedSandbox::start();
    let w = ["--project", "shop", "--environment", "test"];
    let run = |args: &[&str]| sb.kip_ok(&[args, &w[..]].concat());
    sb.kip_ok(&["project", "create", "shop", "--environments", "test"]);
    run(&["service", "add", "postgres", "--name", "db"]);
    let db_url = format!("DATABASE_URL={DB_URL}");
    run(&[
        "app",
        "deploy",
        "--name",
        "api",
        "--image",
        "registry.example.com/api:v1",
        "--port",
        "3000",
        "--route",
        "shop/api",
        "--env",
        &db_url,
        "--env",
        "STRIPE_KEY=pk_test_1",
        "--env",
        "LOG_LEVEL=info",
    ]);
    run(&[
        "app",
        "deploy",
        "--name",
        "web",
        "--image",
        "registry.example.com/web:v1",
        "--port",
        "8080",
        "--route",
        "shop/",
    ]);
    run(&["app", "link", "api", "web"]);
    run(&["service", "bind", "db", "api"]);
    run(&["app", "secret", "set", "api", "API_TOKEN=tok-123"]);
    sb
}

/// Every object kip made in `ns` as `kind/name@resourceVersion`, sorted.
fn versions(sb: &ServedSandbox, ns: &str) -> Vec<String> {
    let list = sb.kubectl().json(&[
        "get",
        "apps.kipper.run,services.kipper.run,deployments,statefulsets,services,configmaps,secrets,ingresses",
        "-n",
        ns,
    ]);
    let mut out: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}@{}",
                o["kind"], o["metadata"]["name"], o["metadata"]["resourceVersion"]
            )
        })
        .collect();
    out.sort();
    out
}

fn environments(sb: &ServedSandbox) -> Value {
    sb.kubectl().json(&["get", "projects.kipper.run", "shop"])["spec"]["environments"].clone()
}

fn no_prod(sb: &ServedSandbox) {
    assert_eq!(environments(sb), serde_json::json!(["test"]));
    let o = sb.kubectl().run(&["get", "namespace", "shop-prod"]);
    assert!(!o.status.success(), "shop-prod was made");
}

#[test]
fn copy_test_into_prod_then_a_second_run_changes_nothing() {
    let sb = shop();
    let printed = sb.kip_ok(COPY);
    assert!(
        printed.contains("Copy test → prod in project shop (shop-test → shop-prod)"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "api DATABASE_URL=postgres://db.shop-prod.svc.cluster.local:5432/app (was {DB_URL})   [auto-updated, per-environment?]"
        )),
        "{printed}"
    );
    assert!(
        printed.contains("api STRIPE_KEY=pk_test_1   [per-environment?]"),
        "{printed}"
    );
    assert!(
        printed.contains("+ api-secrets: API_TOKEN (values copied, not shown)"),
        "{printed}"
    );
    assert!(
        !printed.contains("tok-123"),
        "a secret value was shown: {printed}"
    );
    assert!(printed.contains("+ db → api"), "{printed}");
    assert!(printed.contains("+ web → api"), "{printed}");
    assert!(printed.contains("✔ App api copied"), "{printed}");
    assert_eq!(environments(&sb), serde_json::json!(["test", "prod"]));

    // Apps: full spec, the new environment, fresh hosts of the group, no promotion records.
    let api = get(&sb, "app", "shop-prod", "api");
    let test_api = get(&sb, "app", "shop-test", "api");
    assert_eq!(api["spec"]["image"], "registry.example.com/api:v1");
    assert_eq!(api["spec"]["environment"], "prod");
    assert_eq!(api["spec"]["route"]["group"], "shop");
    assert_eq!(api["spec"]["route"]["path"], "/api");
    let host = api["spec"]["route"]["host"].as_str().unwrap();
    assert!(
        host.contains("prod") && host != test_api["spec"]["route"]["host"],
        "{host}"
    );
    assert_eq!(
        get(&sb, "app", "shop-prod", "web")["spec"]["route"]["host"],
        host,
        "one host per group"
    );
    assert_eq!(
        var(&api, "DATABASE_URL"),
        "postgres://db.shop-prod.svc.cluster.local:5432/app"
    );
    assert_eq!(var(&api, "STRIPE_KEY"), "pk_test_1");
    assert_eq!(api["spec"]["bindings"], serde_json::json!(["db"]));
    let web = get(&sb, "app", "shop-prod", "web");
    assert_eq!(web["spec"]["links"][0]["app"], "api");
    let notes = api["metadata"]["annotations"].clone();
    assert!(notes.get("kipper.run/promoted-from").is_none(), "{notes}");
    let link = get(&sb, "configmap", "shop-prod", "web-env");
    assert_eq!(
        link["data"]["API_URL"],
        "http://api.shop-prod.svc.cluster.local:3000"
    );

    // The service: same type, version and storage; a fresh password; the binding points at it.
    let db = get(&sb, "services.kipper.run", "shop-prod", "db");
    assert_eq!(db["spec"]["type"], "postgres");
    assert_eq!(
        db["spec"]["storage"],
        get(&sb, "services.kipper.run", "shop-test", "db")["spec"]["storage"]
    );
    let old = secret_value(
        &get(&sb, "secret", "shop-test", "db-credentials"),
        "password",
    );
    let new = secret_value(
        &get(&sb, "secret", "shop-prod", "db-credentials"),
        "password",
    );
    assert_ne!(old, new, "the new service has the old password");
    let binding = get(&sb, "secret", "shop-prod", "api-db-binding");
    assert_eq!(
        secret_value(&binding, "DB_HOST"),
        "db.shop-prod.svc.cluster.local"
    );
    assert_eq!(secret_value(&binding, "DB_PASSWORD"), new);
    let deployment = get(&sb, "deployment", "shop-prod", "api");
    let from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"].to_string();
    assert!(
        from.contains("api-db-binding") && from.contains("api-secrets"),
        "{from}"
    );

    // The user secret is duplicated.
    assert_eq!(
        secret_value(&get(&sb, "secret", "shop-prod", "api-secrets"), "API_TOKEN"),
        "tok-123"
    );

    // A second run creates nothing and writes nothing.
    let before = versions(&sb, "shop-prod");
    let again = sb.kip_ok(COPY);
    assert!(again.contains("= api: exists, left as it is"), "{again}");
    assert!(again.contains("0 created"), "{again}");
    assert_eq!(
        versions(&sb, "shop-prod"),
        before,
        "the second run wrote something"
    );
    // The source is untouched.
    assert_eq!(
        var(&get(&sb, "app", "shop-test", "api"), "DATABASE_URL"),
        DB_URL
    );
}

#[test]
fn plan_changes_nothing_and_refusals_leave_no_environment() {
    let sb = shop();
    let before = versions(&sb, "shop-test");
    let plan = sb.kip_ok(&[COPY_ARGS, &["--plan"]].concat());
    for line in [
        "Environment: + prod (namespace shop-prod)",
        "  + api: registry.example.com/api:v1, 1 replica, memory limit 512Mi",
        "  + db: postgres 16.4, storage 5Gi, fresh credentials, empty data",
        "  + api-secrets: API_TOKEN (values copied, not shown)",
        "  + db → api (fresh credentials of db in prod)",
        "  + web → api",
        "  api LOG_LEVEL=info\n",
    ] {
        assert!(plan.contains(line), "{line:?} not in {plan}");
    }
    no_prod(&sb);
    assert_eq!(versions(&sb, "shop-test"), before);

    // Without a terminal and without --yes: refused, nothing made.
    let e = sb.kip_refused(&["project", "copy-env", "test", "prod", "--project", "shop"]);
    assert!(e.contains("pass --yes"), "{e}");
    no_prod(&sb);

    let base = [
        "project",
        "copy-env",
        "test",
        "prod",
        "--project",
        "shop",
        "--yes",
    ];
    let bad: &[(&[&str], &str)] = &[
        (&["--set", "nope.replicas=2"], "no app `nope` in test"),
        (
            &["--set", "api.colour=red"],
            "an app takes env.KEY, replicas, memory and cpu",
        ),
        (
            &["--set", "api.replicas=many"],
            "replicas is a whole number",
        ),
        (&["--set", "api.replicas"], "expected APP.env.KEY=VALUE"),
        (&["--set", "api.memory=lots"], "use a quantity like"),
        (&["--set", "api.memory=10Mi"], "at least 64Mi"),
        (&["--set", "api.cpu=1Gi"], "a CPU limit is in cores"),
        (
            &["--route", "nope=x.example.com"],
            "no app or route group `nope`",
        ),
        (&["--route", "shop=Not A Host"], "use a lowercase host name"),
        (
            &["--keep", "api.env.MISSING"],
            "api has no variable MISSING",
        ),
        (&["--keep", "api.LOG_LEVEL"], "expected APP.env.KEY"),
        (&["--values", "missing.yaml"], "missing.yaml"),
    ];
    for (extra, why) in bad {
        let e = sb.kip_refused(&[&base[..], extra].concat());
        assert!(e.contains(why), "{extra:?}: {e}");
        no_prod(&sb);
    }
    std::fs::write(sb.kip_home().join("broken.yaml"), "apps: [\n").unwrap();
    let e = sb.kip_refused(&[&base[..], &["--values", "broken.yaml"]].concat());
    assert!(e.contains("broken.yaml"), "{e}");
    for (file, why) in [
        (
            "routes: [a]\n",
            "setting routes is an array: it takes a map",
        ),
        (
            "apps: {api: {keep: DATABASE_URL}}\n",
            "setting apps.api.keep is a string: it takes an array",
        ),
        ("apps: {api: {replicas: \"3\"}}\n", "use a whole number"),
        (
            "prod_defaults: yes-please\n",
            "setting prod_defaults is a string",
        ),
    ] {
        std::fs::write(sb.kip_home().join("shape.yaml"), file).unwrap();
        let e = sb.kip_refused(&[&base[..], &["--values", "shape.yaml"]].concat());
        assert!(e.contains(why), "{file}: {e}");
    }
    std::fs::write(sb.kip_home().join("typo.yaml"), "aps: {}\n").unwrap();
    let e = sb.kip_refused(&[&base[..], &["--values", "typo.yaml"]].concat());
    assert!(e.contains("unknown setting `aps`"), "{e}");
    no_prod(&sb);

    let e = sb.kip_refused(&[
        "project",
        "copy-env",
        "staging",
        "prod",
        "--project",
        "shop",
        "--yes",
    ]);
    assert!(e.contains("no environment `staging`"), "{e}");
    no_prod(&sb);

    // An environment that holds something else is not merged into.
    sb.kip_ok(&["project", "add-env", "shop", "acc"]);
    sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "other",
        "--image",
        "nginx:1.27",
        "--port",
        "80",
        "--project",
        "shop",
        "--environment",
        "acc",
    ]);
    let e = sb.kip_refused(&[
        "project",
        "copy-env",
        "test",
        "acc",
        "--project",
        "shop",
        "--yes",
    ]);
    assert!(
        e.contains("already has apps or services and was not copied from test"),
        "{e}"
    );
    let copied = sb.kubectl().run(&["get", "app", "api", "-n", "shop-acc"]);
    assert!(!copied.status.success(), "api was copied into acc");
}

#[test]
fn customise_by_flags() {
    let sb = shop();
    sb.kip_ok(&[
        "app",
        "autoscale",
        "web",
        "--min",
        "1",
        "--max",
        "3",
        "--project",
        "shop",
        "--environment",
        "test",
    ]);
    sb.kip_ok(
        &[
            COPY_ARGS,
            &[
                "--yes",
                "--prod-defaults",
                "--set",
                "api.env.STRIPE_KEY=pk_live_9",
                "--set",
                "api.replicas=3",
                "--set",
                "web.memory=1Gi",
                "--set",
                "api.cpu=500m",
                "--keep",
                "api.env.DATABASE_URL",
                "--route",
                "shop=shop.example.com",
            ],
        ]
        .concat(),
    );
    let api = get(&sb, "app", "shop-prod", "api");
    assert_eq!(var(&api, "STRIPE_KEY"), "pk_live_9");
    assert_eq!(
        var(&api, "DATABASE_URL"),
        DB_URL,
        "--keep leaves it as it was"
    );
    assert_eq!(api["spec"]["replicas"], 3);
    assert_eq!(
        api["spec"]["resources"]["memory"], "768Mi",
        "prod defaults: 512Mi × 1.5"
    );
    assert_eq!(api["spec"]["route"]["host"], "shop.example.com");
    let web = get(&sb, "app", "shop-prod", "web");
    assert_eq!(web["spec"]["replicas"], 2, "prod defaults: at least 2");
    assert_eq!(
        web["spec"]["autoscale"]["min"], 2,
        "prod defaults: at least 2"
    );
    assert_eq!(web["spec"]["autoscale"]["max"], 3);
    assert_eq!(web["spec"]["route"]["host"], "shop.example.com");
    let d = get(&sb, "deployment", "shop-prod", "api");
    let res = &d["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(res["limits"]["memory"], "768Mi");
    assert_eq!(res["limits"]["cpu"], "500m");
    assert_eq!(res["requests"]["cpu"], "50m");
    let d = get(&sb, "deployment", "shop-prod", "web");
    let hpa = get(&sb, "hpa", "shop-prod", "web");
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"],
        "1Gi"
    );
    // A redeploy keeps the limits the copy set.
    sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "web",
        "--image",
        "registry.example.com/web:v2",
        "--port",
        "8080",
        "--route",
        "shop/",
        "--domain",
        "shop.example.com",
        "--project",
        "shop",
        "--environment",
        "prod",
    ]);
    assert_eq!(
        get(&sb, "app", "shop-prod", "web")["spec"]["resources"]["memory"],
        "1Gi"
    );
}

#[test]
fn customise_by_file_with_add_env_and_flags_winning() {
    let sb = shop();
    std::fs::write(
        sb.kip_home().join("prod.yaml"),
        "prod_defaults: true\nroutes:\n  shop: www.example.com\napps:\n  api:\n    replicas: 4\n    memory: 2Gi\n    env:\n      STRIPE_KEY: pk_file\n      NEW_FLAG: \"on\"\n      WORKERS: 4\n  web:\n    cpu: \"1\"\n",
    )
    .unwrap();
    let plan = sb.kip_ok(
        &[
            COPY_ARGS,
            &["--values", "prod.yaml", "--set", "api.replicas=5", "--plan"],
        ]
        .concat(),
    );
    assert!(
        plan.contains("api STRIPE_KEY=pk_file (was pk_test_1)   [set, per-environment?]"),
        "{plan}"
    );
    assert!(plan.contains("api NEW_FLAG=on   [added]"), "{plan}");
    assert!(plan.contains("api WORKERS=4   [added]"), "{plan}");
    assert!(
        plan.contains("+ api: registry.example.com/api:v1, 5 replicas, memory limit 2Gi"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "+ web: registry.example.com/web:v1, 2 replicas, memory limit 768Mi, cpu limit 1"
        ),
        "{plan}"
    );
    assert!(
        plan.contains("https://www.example.com/api (group shop)"),
        "{plan}"
    );
    no_prod(&sb);

    // add-env --copy-from copies as-is.
    sb.kip_ok(&[
        "project",
        "add-env",
        "shop",
        "prod",
        "--copy-from",
        "test",
        "--yes",
    ]);
    let api = get(&sb, "app", "shop-prod", "api");
    assert_eq!(api["spec"]["replicas"], 1);
    assert_eq!(var(&api, "STRIPE_KEY"), "pk_test_1");
    assert!(api["spec"]["resources"].is_null(), "{api}");
}

/// An override of `service bind` that fails, standing in for a database server that does not
/// answer: kip loads it from the kip home's scripts folder.
const FAILING_BIND: &str = r#"fn verbs() {[ #{ verb: "service bind", run: "bind" } ]}
fn bind(opts) { throw kip::error("unreachable", "the database server did not answer"); }
"#;

#[test]
fn a_partial_copy_says_what_is_missing_and_a_rerun_completes_only_that() {
    let sb = shop();
    let scripts = sb.kip_home().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("failing-bind.rhai"), FAILING_BIND).unwrap();
    let o = sb.kip(COPY);
    assert!(!o.status.success(), "{}", out(&o));
    let e = err(&o);
    assert!(
        e.contains("the copy of test into prod is incomplete. Copied: Service db, App api, App web. Not copied: Binding db → api: the database server did not answer"),
        "{e}"
    );
    assert!(e.contains("Run it again to complete it"), "{e}");
    assert!(
        get(&sb, "app", "shop-prod", "api")["spec"]["bindings"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    std::fs::remove_file(scripts.join("failing-bind.rhai")).unwrap();
    let web = versions(&sb, "shop-prod")
        .into_iter()
        .filter(|v| v.contains("\"web"))
        .collect::<Vec<_>>();
    let again = sb.kip_ok(COPY);
    assert!(again.contains("= api: exists, left as it is"), "{again}");
    assert!(again.contains("✔ Binding db → api copied"), "{again}");
    assert!(again.contains("1 created"), "{again}");
    assert_eq!(
        get(&sb, "app", "shop-prod", "api")["spec"]["bindings"],
        serde_json::json!(["db"])
    );
    let after: Vec<String> = versions(&sb, "shop-prod")
        .into_iter()
        .filter(|v| v.contains("\"web"))
        .collect();
    assert_eq!(after, web, "the re-run changed what was already copied");
}

/// On a terminal the plan comes first, then the question; "n" copies nothing.
#[test]
fn on_a_terminal_it_shows_the_plan_then_asks() {
    use std::io::Write as _;
    let sb = shop();
    let mut child = sb
        .kip_on_terminal("project copy-env test prod --project shop")
        .spawn()
        .expect("run script");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"n\n").expect("answer");
    let o = child.wait_with_output().expect("script ran");
    drop(stdin);
    let shown = out(&o);
    assert_eq!(o.status.code(), Some(1), "{shown}");
    let plan_at = shown.find("+ db: postgres").expect("the plan");
    let question_at = shown
        .find("Copy test into prod? [y/N]")
        .expect("the question");
    assert!(plan_at < question_at, "{shown}");
    assert!(shown.contains("not confirmed: nothing copied"), "{shown}");
    no_prod(&sb);
}

/// `kipper::copy_env` from a pipeline script: no question, the overrides as a map, what was
/// created returned; bad overrides raise before anything is written.
#[test]
fn kipper_copy_env_runs_from_a_pipeline() {
    let sb = shop();
    let script = sb.kip_home().join("release.rhai");
    std::fs::write(
        &script,
        r#"import "lib/kipper" as kipper;
try {
    kipper::copy_env("shop", "test", "prod", #{ apps: #{ api: #{ replicas: -1 } } });
} catch (e) {
    print(`refused: ${e.message}`);
}
let done = kipper::copy_env("shop", "test", "prod", #{ apps: #{ api: #{ replicas: 3 } } });
print(`created: ${done.created}`);
"#,
    )
    .unwrap();
    let printed = sb.kip_ok(&["run", &script.display().to_string()]);
    assert!(
        printed.contains("refused: invalid value '-1' for 'api.replicas'"),
        "{printed}"
    );
    assert!(
        printed.contains(r#"created: ["Service db", "App api", "App web", "Binding db → api"]"#),
        "{printed}"
    );
    assert_eq!(get(&sb, "app", "shop-prod", "api")["spec"]["replicas"], 3);
}
