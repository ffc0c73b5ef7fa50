//! The sandbox through kube-rs: CRUD, apply, conflicts, selectors, watch, GC, namespaces, rollouts.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use serde_json::json;

use crate::common::{LocalSandbox, eventually};

const WAIT: Duration = Duration::from_secs(15);

fn configmap(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        },
        "data": {"k": "v"},
    }))
    .expect("configmap")
}

fn deployment(name: &str, replicas: i32, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    })
}

fn status_code(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crud_and_conflicts() {
    let sb = LocalSandbox::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(sb.client(), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("one", &[]))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    let rv1: u64 = meta.resource_version.clone().unwrap().parse().unwrap();

    let (code, reason) = status_code(
        cms.create(&PostParams::default(), &configmap("one", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut changed = created.clone();
    changed.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let replaced = cms
        .replace("one", &PostParams::default(), &changed)
        .await
        .expect("replace");
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1, "resourceVersion must grow: {rv1} then {rv2}");

    // The same body again still carries the old resourceVersion: a stale write.
    let (code, reason) = status_code(
        cms.replace("one", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    let got = cms.get("one").await.expect("get");
    assert_eq!(got.data.unwrap()["k"], "w");

    cms.delete("one", &DeleteParams::default())
        .await
        .expect("delete");
    let (code, reason) = status_code(cms.get("one").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    let (code, reason) = status_code(
        Api::<ConfigMap>::namespaced(sb.client(), "nowhere")
            .create(&PostParams::default(), &configmap("x", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, reason.as_str()),
        (404, "NotFound"),
        "namespaced objects need their namespace"
    );

    let (code, reason) = status_code(
        cms.create(&PostParams::default(), &configmap("Bad_Name", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_name_and_dry_run() {
    let sb = LocalSandbox::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(sb.client(), "default");
    let mut cm = configmap("", &[]);
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let made = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    cms.create(&dry, &configmap("dry", &[]))
        .await
        .expect("dry run create");
    assert!(
        cms.get_opt("dry").await.expect("get").is_none(),
        "dry run stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_is_idempotent_and_detects_conflicts() {
    let sb = LocalSandbox::start().await;
    let deployments: Api<Deployment> = Api::namespaced(sb.client(), "default");
    let apply = PatchParams::apply("kip");
    let body = deployment("web", 2, "nginx:1.27");
    deployments
        .patch("web", &apply, &Patch::Apply(&body))
        .await
        .expect("apply creates");
    // The controllers write the deployment's status and revision annotation; let them finish.
    let first = eventually(WAIT, "the rollout to settle", || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("web").await.ok()?;
            let done = d
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
            done.then_some(d)
        }
    })
    .await;
    let second = deployments
        .patch("web", &apply, &Patch::Apply(&body))
        .await
        .expect("apply again");
    assert_eq!(
        first.metadata.resource_version, second.metadata.resource_version,
        "a second identical apply changes nothing"
    );
    let managers: Vec<String> = second
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"kip".to_string()),
        "managedFields record the applier: {managers:?}"
    );

    let mut other = body.clone();
    other["spec"]["replicas"] = json!(5);
    let err = deployments
        .patch(
            "web",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap_err();
    assert_eq!(status_code(err), (409, "Conflict".to_string()));

    let forced = deployments
        .patch(
            "web",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(&other),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.spec.unwrap().replicas, Some(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_kinds() {
    let sb = LocalSandbox::start().await;
    let deployments: Api<Deployment> = Api::namespaced(sb.client(), "default");
    let body: Deployment = serde_json::from_value(deployment("api", 1, "api:1")).unwrap();
    deployments
        .create(&PostParams::default(), &body)
        .await
        .expect("create");
    let generation = |d: &Deployment| d.metadata.generation.unwrap();

    let merged = deployments
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "back"}}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(merged.metadata.labels.as_ref().unwrap()["tier"], "back");
    assert_eq!(
        generation(&merged),
        1,
        "a metadata change does not bump generation"
    );

    let strategic = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "proxy:1"}
    ]}}}});
    let patched = deployments
        .patch("api", &PatchParams::default(), &Patch::Strategic(strategic))
        .await
        .expect("strategic patch");
    let containers = patched
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .clone();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web", "sidecar"], "containers merge by name");
    assert_eq!(generation(&patched), 2, "a spec change bumps generation");

    let json_patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/replicas", "value": 4}
    ]))
    .unwrap();
    let replaced = deployments
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch),
        )
        .await
        .expect("json patch");
    assert_eq!(replaced.spec.unwrap().replicas, Some(4));

    let bad: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 99}
    ]))
    .unwrap();
    let err = deployments
        .patch("api", &PatchParams::default(), &Patch::<()>::Json(bad))
        .await
        .unwrap_err();
    assert_eq!(
        status_code(err).0,
        422,
        "a patch that does not apply is refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn selectors_and_pagination() {
    let sb = LocalSandbox::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(sb.client(), "default");
    for (name, app, tier) in [
        ("a", "web", "front"),
        ("b", "web", "back"),
        ("c", "db", "back"),
        ("d", "cache", ""),
    ] {
        let mut labels = vec![("app", app)];
        if !tier.is_empty() {
            labels.push(("tier", tier));
        }
        cms.create(&PostParams::default(), &configmap(name, &labels))
            .await
            .expect("create");
    }
    // Every namespace also holds the cluster's CA, as on a real server: not one of ours.
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .filter(|name| name != "kube-root-ca.crt")
            .collect()
    };
    let q = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(cms.list(&q("app=web")).await.unwrap()), ["a", "b"]);
    assert_eq!(names(cms.list(&q("app!=web")).await.unwrap()), ["c", "d"]);
    assert_eq!(
        names(cms.list(&q("app in (db,cache)")).await.unwrap()),
        ["c", "d"]
    );
    assert_eq!(
        names(cms.list(&q("tier notin (back)")).await.unwrap()),
        ["a", "d"]
    );
    assert_eq!(names(cms.list(&q("tier")).await.unwrap()), ["a", "b", "c"]);
    assert_eq!(names(cms.list(&q("!tier")).await.unwrap()), ["d"]);
    let by_name = ListParams::default().fields("metadata.name=c");
    assert_eq!(names(cms.list(&by_name).await.unwrap()), ["c"]);
    let by_ns = ListParams::default().fields("metadata.namespace=default,metadata.name!=a");
    assert_eq!(names(cms.list(&by_ns).await.unwrap()), ["b", "c", "d"]);

    let page1 = cms.list(&ListParams::default().limit(3)).await.unwrap();
    let token = page1.metadata.continue_.clone().expect("a continue token");
    let page2 = cms
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(page2.metadata.continue_, None);
    let mut all = names(page1);
    all.extend(names(page2));
    assert_eq!(all, ["a", "b", "c", "d"], "pages cover every object once");

    let err = cms.list(&q("app in (web")).await.unwrap_err();
    assert_eq!(
        status_code(err).0,
        400,
        "a malformed selector is a bad request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_streams_and_resumes() {
    let sb = LocalSandbox::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(sb.client(), "default");
    let first = cms
        .create(&PostParams::default(), &configmap("w", &[]))
        .await
        .unwrap();
    let start_rv = first.metadata.resource_version.clone().unwrap();
    for value in ["1", "2"] {
        cms.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": value}})),
        )
        .await
        .unwrap();
    }
    cms.delete("w", &DeleteParams::default()).await.unwrap();

    // Resuming from the create's version replays what happened after it, in order.
    let params = WatchParams::default().timeout(5);
    let mut stream = cms.watch(&params, &start_rv).await.expect("watch").boxed();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match stream.try_next().await.expect("watch event") {
            Some(WatchEvent::Modified(cm)) => {
                seen.push(format!("MODIFIED {}", cm.data.unwrap()["k"]))
            }
            Some(WatchEvent::Deleted(_)) => seen.push("DELETED".to_string()),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(seen, ["MODIFIED 1", "MODIFIED 2", "DELETED"]);

    // A live watch sees a new write.
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut live = cms
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &configmap("later", &[]))
        .await
        .unwrap();
    match live.try_next().await.unwrap() {
        Some(WatchEvent::Added(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("later")),
        other => panic!("expected ADDED, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn filtered_watch_sees_objects_enter_and_leave() {
    let sb = LocalSandbox::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(sb.client(), "default");
    cms.create(&PostParams::default(), &configmap("m", &[("app", "other")]))
        .await
        .unwrap();
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let params = WatchParams::default().labels("app=web").timeout(5);
    let mut stream = cms.watch(&params, &rv).await.unwrap().boxed();
    let relabel = |app: &'static str| {
        let cms = cms.clone();
        async move {
            cms.patch(
                "m",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"app": app}}})),
            )
            .await
            .unwrap();
        }
    };
    relabel("web").await;
    relabel("web2").await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match stream.try_next().await.unwrap() {
            Some(WatchEvent::Added(_)) => seen.push("ADDED"),
            Some(WatchEvent::Deleted(_)) => seen.push("DELETED"),
            Some(WatchEvent::Modified(_)) => seen.push("MODIFIED"),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        ["ADDED", "DELETED"],
        "entering and leaving the selector"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_serves_builtins_and_crds() {
    let sb = LocalSandbox::start().await;
    let client = sb.client();
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "apps.kipper.run"},
        "spec": {
            "group": "kipper.run",
            "scope": "Namespaced",
            "names": {"plural": "apps", "singular": "app", "kind": "App", "shortNames": ["kapp"]},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}}],
        },
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");

    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let mut kinds = Vec::new();
    for group in discovery.groups() {
        for (ar, _) in group.recommended_resources() {
            kinds.push(format!("{}/{}", ar.api_version, ar.kind));
        }
    }
    for expected in [
        "v1/Pod",
        "apps/v1/Deployment",
        "batch/v1/Job",
        "networking.k8s.io/v1/Ingress",
        "kipper.run/v1alpha1/App",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "discovery lacks {expected}: {kinds:?}"
        );
    }

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kipper.run", "v1alpha1", "App"),
        "apps",
    );
    let apps: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kipper.run/v1alpha1", "kind": "App",
        "metadata": {"name": "web"}, "spec": {"image": "nginx"},
    }))
    .unwrap();
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create custom resource");
    let got = apps.get("web").await.expect("get custom resource");
    assert_eq!(got.data["spec"]["image"], "nginx");
}

#[tokio::test(flavor = "multi_thread")]
async fn rollout_reaches_ready_and_gc_cascades() {
    let sb = LocalSandbox::start().await;
    let client = sb.client();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    deployments
        .patch(
            "web",
            &PatchParams::apply("kip"),
            &Patch::Apply(deployment("web", 3, "nginx:1")),
        )
        .await
        .unwrap();
    let cond = kube::runtime::wait::conditions::is_deployment_completed();
    tokio::time::timeout(
        WAIT,
        kube::runtime::wait::await_condition(deployments.clone(), "web", cond),
    )
    .await
    .expect("rollout in time")
    .expect("await condition");
    let ready = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(ready.items.len(), 3);

    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    eventually(WAIT, "pods of a deleted deployment to go", || {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels("app=web"))
                .await
                .ok()
                .filter(|l| l.items.is_empty())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_deletion_removes_its_content() {
    let sb = LocalSandbox::start().await;
    let client = sb.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    cms.create(&PostParams::default(), &configmap("x", &[]))
        .await
        .unwrap();

    let deleting = namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    if let either::Either::Left(ns) = deleting {
        assert!(ns.metadata.deletion_timestamp.is_some());
    }
    eventually(WAIT, "the namespace to disappear", || {
        let namespaces = namespaces.clone();
        async move {
            namespaces
                .get_opt("doomed")
                .await
                .ok()
                .filter(|n| n.is_none())
        }
    })
    .await;
    let all_cms: Api<ConfigMap> = Api::all(client);
    let left = all_cms
        .list(&ListParams::default().fields("metadata.namespace=doomed"))
        .await
        .unwrap();
    assert!(
        left.items.is_empty(),
        "content of a deleted namespace is gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn finalizers_hold_deletion() {
    let sb = LocalSandbox::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(sb.client(), "default");
    let mut cm = configmap("held", &[]);
    cm.metadata.finalizers = Some(vec!["kipper.run/test".into()]);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let held = cms
        .get("held")
        .await
        .expect("still there while a finalizer holds it");
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(
        cms.get_opt("held").await.unwrap().is_none(),
        "gone once the finalizer is removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_logs_tail_container_and_follow() {
    use futures_util::AsyncBufReadExt;
    use kube::api::LogParams;

    let sb = LocalSandbox::start().await;
    let pods: Api<Pod> = Api::namespaced(sb.client(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "talker", "annotations": {"sandbox.kipper.run/log": "hello from the app\nsecond line"}},
        "spec": {"containers": [
            {"name": "app", "image": "acme/app:1", "ports": [{"containerPort": 8080}]},
            {"name": "proxy", "image": "acme/proxy:1"},
        ]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    tokio::time::timeout(
        WAIT,
        kube::runtime::wait::await_condition(
            pods.clone(),
            "talker",
            kube::runtime::wait::conditions::is_pod_running(),
        ),
    )
    .await
    .expect("pod running in time")
    .unwrap();

    let err = pods
        .logs("talker", &LogParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        status_code(err).0,
        400,
        "two containers: the request must name one"
    );

    let app = LogParams {
        container: Some("app".into()),
        ..Default::default()
    };
    let all = pods.logs("talker", &app).await.unwrap();
    assert!(all.contains("pulled image \"acme/app:1\""), "{all}");
    assert!(all.contains("listening on :8080/TCP"), "{all}");
    assert!(all.ends_with("hello from the app\nsecond line\n"), "{all}");

    let tail = LogParams {
        container: Some("app".into()),
        tail_lines: Some(1),
        ..Default::default()
    };
    assert_eq!(pods.logs("talker", &tail).await.unwrap(), "second line\n");

    let follow = LogParams {
        container: Some("proxy".into()),
        follow: true,
        ..Default::default()
    };
    let mut lines = pods.log_stream("talker", &follow).await.unwrap().lines();
    let first = tokio::time::timeout(WAIT, lines.try_next())
        .await
        .expect("a line in time")
        .unwrap();
    assert!(
        first
            .unwrap_or_default()
            .contains("pulled image \"acme/proxy:1\"")
    );
}
