//! `kip app list` across projects and at 10,000 apps, `k8s::list` at 10,000 objects, and the
//! engine's memory limit, through the real binary against a sandbox; kubectl checks the counts.

use futures_util::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use crate::common::{ServedSandbox, stderr as err, stdout as out};

fn deploy(sb: &ServedSandbox, name: &str, image: &str, more: &[&str]) {
    let mut args = vec![
        "app", "deploy", "--name", name, "--image", image, "--port", "80",
    ];
    args.extend(more);
    let o = sb.kip(&args);
    assert!(o.status.success(), "{}", err(&o));
}

/// The words of each line of a table.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A cluster kip never wrote to has no apps, and a list (a read) installs nothing there: no
/// CRD appears, and the same list works, as empty, in JSON too.
#[test]
fn a_list_on_a_cluster_without_kips_crds_is_empty_and_installs_nothing() {
    let sb = ServedSandbox::start();
    let listed = sb.kip(&["app", "list", "-A", "-o", "json"]);
    assert!(listed.status.success(), "{}", err(&listed));
    assert_eq!(json_of(&out(&listed)), serde_json::json!([]));
    let table = sb.kip(&["app", "list"]);
    assert!(table.status.success(), "{}", err(&table));
    let crds = sb.kubectl().ok(&["get", "crd", "-o", "name"]);
    assert!(!crds.contains("kipper.run"), "a list applied CRDs: {crds}");
    let missing = sb.kip(&["app", "list", "--project", "nope"]);
    assert_eq!(missing.status.code(), Some(1), "{}", err(&missing));
    assert!(err(&missing).contains("nope"), "{}", err(&missing));
}

#[test]
fn lists_every_project_and_says_which_one_it_shows() {
    let sb = ServedSandbox::start();
    deploy(&sb, "api", "nginx:1", &[]);
    let created = sb.kip(&["project", "create", "shop", "--environments", "test,prod"]);
    assert!(created.status.success(), "{}", err(&created));
    deploy(
        &sb,
        "web",
        "nginx:2",
        &["--project", "shop", "--environment", "test"],
    );

    let plain = sb.kip(&["app", "list"]);
    assert_eq!(
        cells(&out(&plain)),
        [
            vec!["NAME", "STATUS", "IMAGE", "READY"],
            vec!["api", "running", "nginx:1", "1/1"]
        ]
    );
    assert_eq!(err(&plain), "", "the default project needs no word");

    let used = sb.kip(&["project", "use", "shop/test"]);
    assert!(used.status.success(), "{}", err(&used));
    let shop = sb.kip(&["app", "list"]);
    assert_eq!(
        err(&shop),
        "Project shop, environment test (kip app list -A for all)\n"
    );
    assert_eq!(cells(&out(&shop))[1], ["web", "running", "nginx:2", "1/1"]);
    let json = sb.kip(&["app", "list", "-o", "json"]);
    assert_eq!(err(&json), "", "nothing beside the JSON");
    let web = &json_of(&out(&json))[0];
    assert_eq!(web["namespace"], "shop-test");
    assert_eq!(web["project"], "shop");
    assert_eq!(web["environment"], "test");
    assert_eq!(web["host"], "web-test-sandbox.localhost");
    assert_eq!(web["url"], "https://web-test-sandbox.localhost");

    let all = sb.kip(&["app", "list", "-A"]);
    assert_eq!(err(&all), "");
    assert_eq!(
        cells(&out(&all)),
        [
            vec!["PROJECT", "ENVIRONMENT", "NAME", "STATUS", "IMAGE", "READY"],
            vec!["default", "default", "api", "running", "nginx:1", "1/1"],
            vec!["shop", "test", "web", "running", "nginx:2", "1/1"],
        ]
    );
    let items = json_of(&out(&sb.kip(&[
        "app",
        "list",
        "--all-projects",
        "-o",
        "json",
    ])));
    let listed: Vec<(&str, &str)> = items
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|i| {
            (
                i["namespace"].as_str().unwrap(),
                i["name"].as_str().unwrap(),
            )
        })
        .collect();
    let theirs = sb.kubectl().json(&["get", "apps.kipper.run", "-A"]);
    let kubectl: Vec<(&str, &str)> = theirs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let meta = &i["metadata"];
            (
                meta["namespace"].as_str().unwrap(),
                meta["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, kubectl, "kip -A lists what kubectl -A does");
    assert_eq!(items[0]["project"], "default");
    assert_eq!(items[0]["environment"], "");
    assert_eq!(items[0]["url"], "https://api-sandbox.localhost");

    let yaml = out(&sb.kip(&["app", "list", "-A", "-o", "yaml"]));
    let yaml: Value = serde_saphyr::from_str(&yaml).expect("YAML");
    assert_eq!(yaml[1]["namespace"], "shop-test", "{yaml}");

    for (args, named) in [
        (
            &["app", "list", "--project", "nope"][..],
            "no project `nope`",
        ),
        (
            &["app", "list", "--project", "shop", "--environment", "qa"][..],
            "project `shop` has no environment `qa` (it has test, prod; add it with `kip project add-env shop qa`)",
        ),
    ] {
        let refused = sb.kip(args);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{args:?}: {}",
            err(&refused)
        );
        assert_eq!(out(&refused), "", "no empty table");
        assert!(err(&refused).contains(named), "{args:?}: {}", err(&refused));
    }
}

const APPS: usize = 10_000;

/// `count` apps `app-0`… in `default` as `kip app deploy` makes them (an App and its
/// Deployment; no Service or Ingress, which listing does not read), created through the API
/// 16 at a time. Paused Deployments: the sandbox's controllers then make no ReplicaSets or
/// Pods, which listing does not read either.
async fn create_apps(client: kube::Client, count: usize) {
    let app = ApiResource {
        group: "kipper.run".into(),
        version: "v1alpha1".into(),
        api_version: "kipper.run/v1alpha1".into(),
        kind: "App".into(),
        plural: "apps".into(),
    };
    let deployment = ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
    let apps: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &app);
    let deployments: Api<DynamicObject> = Api::namespaced_with(client, "default", &deployment);
    futures_util::stream::iter(0..count)
        .map(|i| {
            let (apps, deployments) = (apps.clone(), deployments.clone());
            async move {
                let name = format!("app-{i}");
                let labels = json!({
                    "app.kubernetes.io/name": name,
                    "app.kubernetes.io/managed-by": "kipper",
                    "kipper.run/project": "default",
                    "kipper.run/environment": "default",
                });
                let host = format!("{name}-sandbox.localhost");
                let object = |value: Value| serde_json::from_value::<DynamicObject>(value);
                let a = object(json!({
                    "apiVersion": "kipper.run/v1alpha1", "kind": "App",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"image": "nginx:1.27", "port": 80, "replicas": 1, "project": "default",
                             "environment": "", "route": {"host": host, "path": "/"},
                             "source": {"kind": "image"}, "env": []},
                }))?;
                let d = object(json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"replicas": 1, "paused": true,
                             "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                             "template": {"metadata": {"labels": labels},
                                          "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]}}},
                }))?;
                let post = PostParams::default();
                apps.create(&post, &a).await?;
                deployments.create(&post, &d).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await
        .expect("create the apps");
}

#[test]
fn ten_thousand_apps_in_one_namespace() {
    let sb = ServedSandbox::start();
    // The CRDs, and one app as the verb makes it.
    deploy(&sb, "app-first", "nginx:1.27", &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async { create_apps(sb.client().await, APPS - 1).await });

    let table = sb.kip(&["app", "list"]);
    assert!(table.status.success(), "{}", err(&table));
    let rows = cells(&out(&table));
    assert_eq!(rows.len(), APPS + 1, "a header and a line per app");
    assert_eq!(rows[1], ["app-0", "deploying", "nginx:1.27", "0/1"]);
    assert!(
        rows.contains(
            &["app-first", "running", "nginx:1.27", "1/1"]
                .map(String::from)
                .to_vec()
        ),
        "the app kip deployed is among them"
    );
    let json = json_of(&out(&sb.kip(&["app", "list", "-o", "json"])));
    assert_eq!(json.as_array().map(Vec::len), Some(APPS));

    // Whole objects too, a page at a time: RUST_LOG shows each request kube-rs sends.
    let whole = sb
        .kip_command(&[
            "eval",
            r#"let all = k8s::list("apps/v1", "Deployment", "default"); `${all.len()} ${all[1].spec.template.spec.containers[0].image}`"#,
        ])
        .env("RUST_LOG", "kube_client::client::builder=debug")
        .env("NO_COLOR", "1")
        .output()
        .expect("run kip");
    assert_eq!(
        out(&whole),
        format!("{APPS} nginx:1.27\n"),
        "{}",
        err(&whole)
    );
    let pages = err(&whole)
        .lines()
        .filter(|l| {
            l.contains("requesting") && l.contains("deployments?") && l.contains("limit=500")
        })
        .count();
    assert_eq!(pages, APPS / 500, "{}", err(&whole));

    let kubectl = sb.kubectl().ok(&["get", "deployments", "-o", "name"]);
    assert_eq!(kubectl.lines().count(), APPS, "kubectl counts as many");
}

/// The memory limit still stops a script that builds a value without end, and says so.
#[test]
fn a_runaway_script_is_stopped_by_the_memory_limit() {
    let home = tempfile::tempdir().expect("kip home");
    let o = crate::common::kip_in(home.path())
        .run(&["eval", "let rows = []; loop { rows.push(blob(65536)); }"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    // Stopped between two pushes, or refused the push that would pass the limit.
    assert!(
        err(&o).starts_with("error: ") && err(&o).contains("its 1024 MiB of memory"),
        "{}",
        err(&o)
    );
}
