//! Every acknowledged write survives `kill -9`, with its resourceVersion, and watches resume.

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::common::ServedSandbox;

#[tokio::test(flavor = "multi_thread")]
async fn kill_nine_loses_nothing_acknowledged() {
    let mut sb = ServedSandbox::start();
    let cms: Api<ConfigMap> = Api::namespaced(sb.client().await, "default");
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}});
        let cm = cms
            .patch(
                &format!("cm-{i}"),
                &PatchParams::apply("test"),
                &Patch::Apply(&body),
            )
            .await
            .expect("apply");
        acknowledged.push((
            cm.metadata.name.unwrap(),
            cm.metadata.resource_version.unwrap(),
        ));
    }
    let last_rv = acknowledged.last().map(|(_, rv)| rv.clone()).unwrap();
    sb.kill9();
    sb.restart();

    let cms: Api<ConfigMap> = Api::namespaced(sb.client().await, "default");
    let list = cms
        .list(&ListParams::default())
        .await
        .expect("list after restart");
    for (name, rv) in &acknowledged {
        let found = list
            .items
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name.as_str()));
        let found = found.unwrap_or_else(|| panic!("{name} was acknowledged and then lost"));
        assert_eq!(
            found.metadata.resource_version.as_deref(),
            Some(rv.as_str()),
            "{name} kept its version"
        );
    }
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(
        list_rv >= last_rv.parse::<u64>().unwrap(),
        "versions keep growing after a restart"
    );

    // A watch resumed from before the crash replays what came after.
    let first_rv = &acknowledged[47].1;
    let mut stream = cms
        .watch(&WatchParams::default().timeout(5), first_rv)
        .await
        .unwrap()
        .boxed();
    let mut names = Vec::new();
    while names.len() < 2 {
        match stream.try_next().await.unwrap() {
            Some(WatchEvent::Added(cm)) => names.push(cm.metadata.name.unwrap()),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(names, ["cm-48", "cm-49"]);

    // And writes continue with larger versions.
    let cm = cms
        .patch(
            "cm-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"i": "again"}})),
        )
        .await
        .unwrap();
    assert!(
        cm.metadata
            .resource_version
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > list_rv
    );
}
