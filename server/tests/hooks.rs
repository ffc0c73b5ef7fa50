//! Hooks on push run in their restricted engine against a sandbox over HTTP: a good hook runs
//! an app verb in its project; hostile ones (an endless loop, deep recursion, a huge string, a
//! forbidden module, another project's namespace, a cluster-scoped write, a verb outside the
//! allowed few, a wait past the budget) are stopped with a record that says why, and the
//! runner goes on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use builtins::ClusterChoice;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kip_core::{Limits, SearchPath};
use kip_server::hooks::{self, Outcome, Runner};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;

/// Memory limits count the heap as the kip binary does.
#[global_allocator]
static HEAP: kip_core::heap::Counting = kip_core::heap::Counting;

struct World {
    _dir: tempfile::TempDir,
    _home: tempfile::TempDir,
    client: kube::Client,
    runner: Runner,
}

async fn world(limits: Limits) -> World {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox::Sandbox::open(dir.path()).await.unwrap();
    let address = sandbox.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{address}");
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let connect = client.clone();
    let cluster = ClusterChoice {
        name: "sandbox".into(),
        unreachable_hint: String::new(),
        client: Arc::new(move || {
            Ok(builtins::ClusterClient {
                client: connect.clone(),
                server: url.clone(),
            })
        }),
    };
    let home = tempfile::tempdir().unwrap();
    for ns in ["kipper-system", "shop-test", "shop-prod", "other-test"] {
        let (project, env) = ns.split_once('-').unwrap();
        let labels = BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_string(),
                "kipper".to_string(),
            ),
            ("kipper.run/project".to_string(), project.to_string()),
            ("kipper.run/environment".to_string(), env.to_string()),
        ]);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.into()),
                labels: (project != "kipper").then_some(labels),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    let runner = Runner {
        client: client.clone(),
        cluster,
        search: SearchPath::stdlib_only(),
        kip_home: home.path().to_path_buf(),
        runtime: tokio::runtime::Handle::current(),
        limits,
    };
    World {
        _dir: dir,
        _home: home,
        client,
        runner,
    }
}

/// Registers `source` as hook `name` of project `shop`, as `kip hook add` does.
async fn add_hook(w: &World, name: &str, source: &str) {
    let labels = BTreeMap::from([
        (hooks::HOOK_LABEL.to_string(), name.to_string()),
        (hooks::PROJECT_LABEL.to_string(), "shop".to_string()),
        (hooks::EVENT_LABEL.to_string(), "push".to_string()),
    ]);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(format!("kip-hook-shop-{name}")),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            hooks::SCRIPT_KEY.to_string(),
            source.to_string(),
        )])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(w.client.clone(), hooks::NAMESPACE)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
}

fn push() -> serde_json::Value {
    json!({
        "provider": "github", "repo": "https://github.com/acme/shop.git", "branch": "main",
        "tag": null, "commit": "0123456789abcdef", "author": "Ada",
        "changed_files": ["src/main.rs"], "delivery": "d-1", "apps": [],
    })
}

async fn run_one(w: &World, name: &str, source: &str) -> hooks::HookRun {
    add_hook(w, name, source).await;
    let hook = w
        .runner
        .hooks_for("shop", "push")
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.name == name)
        .expect("the hook is listed");
    w.runner.run(&hook, push(), "d-1").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_hook_deploys_in_its_project_and_its_run_is_recorded() {
    let w = world(Limits::HOOK).await;
    let source = r#"
fn on_push(event) {
    print(`push of ${event.commit} to ${event.branch} by ${event.author}`);
    kip::run("app deploy", #{ name: "web", image: `nginx:${event.commit.sub_string(0, 7)}`, port: 80, environment: "test" });
    ui::step("deployed");
}
"#;
    add_hook(&w, "deploy", source).await;
    let runs = w.runner.on_push("shop", &push(), "d-1").await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    assert!(
        run.output
            .contains("push of 0123456789abcdef to main by Ada"),
        "{run:?}"
    );
    assert!(run.output.contains("deployed"), "{run:?}");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(w.client.clone(), "shop-test");
    let web = deployments.get("web").await.expect("deployed in shop-test");
    let image = web.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert_eq!(image, "nginx:0123456");
    // The record: one ConfigMap beside the hook, saying how the run went.
    let records = Api::<ConfigMap>::namespaced(w.client.clone(), hooks::NAMESPACE)
        .list(&ListParams::default().labels("kipper.run/hook-run=deploy"))
        .await
        .unwrap();
    assert_eq!(records.items.len(), 1);
    let data = records.items[0].data.clone().unwrap();
    assert_eq!(data["outcome"], "succeeded");
    assert_eq!(data["delivery"], "d-1");
    assert!(data["output"].contains("deployed"), "{data:?}");
    assert!(data["event"].contains("0123456789abcdef"), "{data:?}");
}

/// Each hostile hook ends, stopped or failed, with an error that says why (and where); none
/// stalls the runner or touches what is not its project's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_hooks_are_stopped_with_a_clear_record() {
    let mut limits = Limits::HOOK;
    // A short budget so the wait below runs out quickly.
    limits.time = Duration::from_secs(3);
    let w = world(limits).await;
    let cases: &[(&str, &str, Outcome, &str)] = &[
        (
            "loop",
            "fn on_push(event) { loop { } }",
            Outcome::Stopped,
            "",
        ),
        (
            "recursion",
            "fn down(n) { down(n + 1) } fn on_push(event) { down(0) }",
            Outcome::Stopped,
            "",
        ),
        (
            "huge-string",
            r#"fn on_push(event) { let s = "x"; loop { s += s; } }"#,
            Outcome::Stopped,
            "",
        ),
        (
            "ssh",
            r#"fn on_push(event) { ssh::connect(#{ host: "127.0.0.1" }) }"#,
            Outcome::Failed,
            "hooks may not use ssh::",
        ),
        (
            "files",
            r#"fn on_push(event) { fs::read_text("/etc/passwd") }"#,
            Outcome::Failed,
            "hooks may not use fs::",
        ),
        (
            "other-project",
            r#"fn on_push(event) { k8s::list("v1", "Secret", "other-test") }"#,
            Outcome::Failed,
            "may not reach Secret in namespace `other-test`",
        ),
        (
            "all-namespaces",
            r#"fn on_push(event) { k8s::list("v1", "Secret", "") }"#,
            Outcome::Failed,
            "may not reach Secret outside a namespace",
        ),
        (
            "cluster-scoped",
            r#"fn on_push(event) { k8s::apply(#{ apiVersion: "v1", kind: "Namespace", metadata: #{ name: "evil" } }) }"#,
            Outcome::Failed,
            "may not reach Namespace outside a namespace",
        ),
        (
            "exec",
            r#"fn on_push(event) { k8s::exec("shop-test", "web-0", ["sh"]) }"#,
            Outcome::Failed,
            "may not use k8s::exec",
        ),
        (
            "other-verb",
            r#"fn on_push(event) { kip::run("project delete", #{ name: "other", yes: true }) }"#,
            Outcome::Failed,
            "a hook may not run `kip project delete`",
        ),
        (
            "other-project-verb",
            r#"fn on_push(event) { kip::run("app deploy", #{ name: "x", image: "nginx:1", port: 80, project: "other", environment: "test" }) }"#,
            Outcome::Failed,
            "may not run `kip app deploy` in project `other`",
        ),
        (
            "kip-home",
            r#"fn on_push(event) { config::set_active_project("other/test") }"#,
            Outcome::Failed,
            "may not use config::",
        ),
        (
            "credentials",
            r#"fn on_push(event) { config::load() }"#,
            Outcome::Failed,
            "may not use config::load",
        ),
        (
            "wait",
            r#"fn on_push(event) { k8s::wait_condition("v1", "ConfigMap", "shop-test", "never", "Ready", 600) }"#,
            Outcome::Stopped,
            "",
        ),
        (
            "throws",
            r#"fn on_push(event) { throw "no thanks"; }"#,
            Outcome::Failed,
            "no thanks",
        ),
        (
            "no-entry",
            "fn on_pull(event) { }",
            Outcome::Failed,
            "defines no `fn on_push(event)`",
        ),
        (
            "syntax",
            "fn on_push(event) { let = ; }",
            Outcome::Failed,
            "syntax",
        ),
    ];
    for (name, source, outcome, says) in cases {
        let started = std::time::Instant::now();
        let run = run_one(&w, name, source).await;
        assert_eq!(run.outcome, *outcome, "{name}: {run:?}");
        assert!(!run.error.is_empty(), "{name}: {run:?}");
        assert!(run.error.contains(says), "{name}: {}", run.error);
        assert!(
            run.error.contains(&format!("hook shop/{name}")) || *name == "no-entry",
            "{name}: the error names the hook: {}",
            run.error
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} took {:?}",
            started.elapsed()
        );
    }
    // Nothing outside the project was made.
    let namespaces: Api<Namespace> = Api::all(w.client.clone());
    assert!(namespaces.get_opt("evil").await.unwrap().is_none());
}

/// The hooks shipped in scripts/hooks/ do what they say: a push deploys the commit into test,
/// a tag promotes test's image to acc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_example_hooks_deploy_a_push_and_promote_a_tag() {
    let w = world(Limits::HOOK).await;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/hooks");
    // The app in test and acc, as `kip app deploy` makes it (acc's namespace first).
    Api::<Namespace>::all(w.client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("shop-acc".into()),
                    labels: Some(BTreeMap::from([
                        (
                            "app.kubernetes.io/managed-by".to_string(),
                            "kipper".to_string(),
                        ),
                        ("kipper.run/project".to_string(), "shop".to_string()),
                    ])),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let setup = r#"fn on_push(event) {
    for env in ["test", "acc"] {
        kip::run("app deploy", #{ name: "web", image: "registry.example.com/web:old", port: 80, environment: env });
    }
}"#;
    let made = run_one(&w, "setup", setup).await;
    assert_eq!(made.outcome, Outcome::Succeeded, "{made:?}");
    // The Project that lists the environments (kip project create makes it).
    let projects: Api<kube::api::DynamicObject> = Api::all_with(
        w.client.clone(),
        &kube::api::ApiResource {
            group: "kipper.run".into(),
            version: "v1alpha1".into(),
            api_version: "kipper.run/v1alpha1".into(),
            kind: "Project".into(),
            plural: "projects".into(),
        },
    );
    let project: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kipper.run/v1alpha1", "kind": "Project",
        "metadata": { "name": "shop" },
        "spec": { "environments": ["test", "acc", "prod"] },
    }))
    .unwrap();
    projects
        .create(&PostParams::default(), &project)
        .await
        .unwrap();
    let app = json!({ "name": "web", "namespace": "shop-test", "environment": "test", "image": "registry.example.com/web:old" });
    let image_in = |ns: &'static str| {
        let client = w.client.clone();
        async move {
            let apps: Api<kube::api::DynamicObject> = Api::namespaced_with(
                client,
                ns,
                &kube::api::ApiResource {
                    group: "kipper.run".into(),
                    version: "v1alpha1".into(),
                    api_version: "kipper.run/v1alpha1".into(),
                    kind: "App".into(),
                    plural: "apps".into(),
                },
            );
            apps.get("web").await.unwrap().data["spec"]["image"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let deploy = std::fs::read_to_string(repo.join("deploy-branch-to-test.rhai")).unwrap();
    let mut pushed = push();
    pushed["project"] = json!("shop");
    pushed["apps"] = json!([app]);
    add_hook(&w, "deploy-branch-to-test", &deploy).await;
    let hook = hooks::Hook {
        project: "shop".into(),
        name: "deploy-branch-to-test".into(),
        event: "push".into(),
        source: deploy,
    };
    let run = w.runner.run(&hook, pushed.clone(), "d-2").await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    assert_eq!(
        image_in("shop-test").await,
        "registry.example.com/web:0123456789ab"
    );
    assert_eq!(image_in("shop-acc").await, "registry.example.com/web:old");

    let promote = std::fs::read_to_string(repo.join("promote-tag-to-acc.rhai")).unwrap();
    let hook = hooks::Hook {
        project: "shop".into(),
        name: "promote-tag-to-acc".into(),
        event: "push".into(),
        source: promote,
    };
    // A branch push leaves acc alone; a tag promotes.
    let run = w.runner.run(&hook, pushed.clone(), "d-3").await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    assert_eq!(image_in("shop-acc").await, "registry.example.com/web:old");
    pushed["tag"] = json!("v1.4.0");
    let run = w.runner.run(&hook, pushed, "d-4").await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    assert!(
        run.output
            .contains("tag v1.4.0: promoting web from test to acc"),
        "{run:?}"
    );
    assert!(
        run.output
            .contains("✔ web → acc (registry.example.com/web:0123456789ab)"),
        "{run:?}"
    );
    assert_eq!(
        image_in("shop-acc").await,
        "registry.example.com/web:0123456789ab"
    );
}
