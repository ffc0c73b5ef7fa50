//! The CronJob controller against a store with no controllers running, on a clock the test
//! drives: which jobs exist after each reconcile at a chosen time.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::reconcile_at;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Store};

const CRON_JOBS: &str = "batch/cronjobs";

fn how(part: Part) -> WriteKind<'static> {
    WriteKind::Controller {
        manager: "test",
        part,
    }
}

async fn store_with(cron_job: Value) -> (Store, Timestamp) {
    let store = Store::in_memory();
    let created = store
        .write(move |tx| {
            let registry = tx.state().registry.clone();
            let ns = registry.find("", "v1", "namespaces").unwrap();
            let ns_obj =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
            ops::create(tx, &ns, "", ns_obj, how(Part::Main))?;
            let res = registry.find("batch", "v1", "cronjobs").unwrap();
            ops::create(tx, &res, "default", cron_job, how(Part::Main))
        })
        .await
        .expect("create");
    let at = created["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (store, at)
}

fn cron_job(policy: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": policy,
            "jobTemplate": {
                "metadata": {"labels": {"task": "tick"}, "annotations": {"team": "a"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "busybox"}]}}},
            },
        },
    })
}

async fn run_at(store: &Store, now: Timestamp) {
    store
        .write(move |tx| {
            let key = ObjKey::new(CRON_JOBS, "default", "tick");
            let cj = tx.get(&key).expect("cron job");
            reconcile_at(tx, &key, cj, now)
        })
        .await
        .expect("reconcile");
}

/// The jobs that exist and are not being deleted, by name.
fn jobs(store: &Store) -> Vec<String> {
    let state = store.read();
    let mut names: Vec<String> = state
        .list("batch/jobs", Some("default"))
        .filter(|(_, j)| j["metadata"]["deletionTimestamp"].is_null())
        .map(|(k, _)| k.name.clone())
        .collect();
    names.sort();
    names
}

fn cron(store: &Store) -> Arc<Value> {
    store
        .get(&ObjKey::new(CRON_JOBS, "default", "tick"))
        .unwrap()
}

/// The minute after `t`'s plus `n` minutes, and the job name for it.
fn minute(t: Timestamp, n: i64) -> (Timestamp, String) {
    let m = t.as_second() / 60 + 1 + n;
    (Timestamp::from_second(m * 60).unwrap(), format!("tick-{m}"))
}

fn secs(t: Timestamp, s: i64) -> Timestamp {
    Timestamp::from_second(t.as_second() + s).unwrap()
}

async fn modify(
    store: &Store,
    name: &str,
    res: &'static str,
    part: Part,
    f: impl FnOnce(&mut Value) + Send + 'static,
) {
    let name = name.to_string();
    store
        .write(move |tx| {
            let r = tx
                .state()
                .registry
                .find_any_version(
                    res.split('/').next().unwrap(),
                    res.split('/').nth(1).unwrap(),
                )
                .unwrap();
            let key = ObjKey::new(res, "default", &name);
            let old = tx.get(&key).unwrap();
            let mut new = (*old).clone();
            f(&mut new);
            ops::finish_write(tx, &r, key, old, new, how(part))
        })
        .await
        .expect("modify");
}

async fn finish(store: &Store, job: &str, condition: &str) {
    let condition = condition.to_string();
    modify(store, job, "batch/jobs", Part::Status, move |j| {
        j["status"] = json!({
            "conditions": [{"type": condition, "status": "True"}],
            "completionTime": ops::now(),
        });
    })
    .await;
}

#[tokio::test]
async fn a_job_per_firing_named_after_its_minute() {
    let (store, created) = store_with(cron_job("Allow")).await;
    run_at(&store, secs(created, 1)).await;
    assert!(jobs(&store).is_empty(), "nothing before the first firing");
    let (first, name) = minute(created, 0);
    run_at(&store, secs(first, 5)).await;
    assert_eq!(jobs(&store), [name.clone()]);
    run_at(&store, secs(first, 30)).await;
    assert_eq!(jobs(&store), [name.clone()], "one job per firing");
    let job = store
        .get(&ObjKey::new("batch/jobs", "default", &name))
        .unwrap();
    assert_eq!(job["metadata"]["labels"]["task"], "tick");
    assert_eq!(job["metadata"]["annotations"]["team"], "a");
    assert_eq!(
        job["metadata"]["annotations"][super::SCHEDULED_AT],
        first.to_string()
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
    let status = &cron(&store)["status"];
    assert_eq!(status["lastScheduleTime"], first.to_string());
    assert_eq!(status["active"][0]["name"], name);

    // Allow: the next firing runs beside the running job; several missed run once.
    let (_, second) = minute(created, 1);
    let (third_at, third) = minute(created, 2);
    run_at(&store, secs(third_at, 1)).await;
    assert_eq!(
        jobs(&store),
        [name.clone(), third.clone()],
        "only the last missed firing runs, not {second}"
    );
    assert_eq!(
        cron(&store)["status"]["active"].as_array().unwrap().len(),
        2
    );

    finish(&store, &name, "Complete").await;
    run_at(&store, secs(third_at, 2)).await;
    let status = &cron(&store)["status"];
    assert!(status["lastSuccessfulTime"].is_string());
    assert_eq!(status["active"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn forbid_waits_and_replace_replaces() {
    let (store, created) = store_with(cron_job("Forbid")).await;
    let (first_at, first) = minute(created, 0);
    run_at(&store, secs(first_at, 1)).await;
    let (second_at, second) = minute(created, 1);
    run_at(&store, secs(second_at, 1)).await;
    assert_eq!(jobs(&store), [first.clone()], "Forbid skips while one runs");
    // Once it ends, the skipped firing starts late.
    finish(&store, &first, "Failed").await;
    run_at(&store, secs(second_at, 20)).await;
    assert_eq!(jobs(&store), [first.clone(), second.clone()]);

    modify(&store, "tick", CRON_JOBS, Part::Main, |c| {
        c["spec"]["concurrencyPolicy"] = json!("Replace");
    })
    .await;
    let (third_at, third) = minute(created, 2);
    run_at(&store, secs(third_at, 1)).await;
    assert_eq!(
        jobs(&store),
        [first, third],
        "Replace deletes the running job"
    );
}

#[tokio::test]
async fn suspend_deadline_and_history_limits() {
    let mut cj = cron_job("Allow");
    cj["spec"]["suspend"] = json!(true);
    cj["spec"]["startingDeadlineSeconds"] = json!(10);
    cj["spec"]["successfulJobsHistoryLimit"] = json!(1);
    cj["spec"]["failedJobsHistoryLimit"] = json!(0);
    let (store, created) = store_with(cj).await;
    let (first_at, _) = minute(created, 0);
    run_at(&store, secs(first_at, 1)).await;
    assert!(jobs(&store).is_empty(), "suspended");
    modify(&store, "tick", CRON_JOBS, Part::Main, |c| {
        c["spec"]["suspend"] = json!(false);
    })
    .await;
    run_at(&store, secs(first_at, 30)).await;
    assert!(jobs(&store).is_empty(), "past the starting deadline");

    let mut made = Vec::new();
    for n in 1..4 {
        let (at, name) = minute(created, n);
        run_at(&store, secs(at, 1)).await;
        assert!(jobs(&store).contains(&name), "{name} started");
        finish(&store, &name, if n == 3 { "Failed" } else { "Complete" }).await;
        made.push(name);
    }
    let (at, _) = minute(created, 3);
    run_at(&store, secs(at, 5)).await;
    assert_eq!(
        jobs(&store),
        [made[1].clone()],
        "one success kept, no failure"
    );
}

#[tokio::test]
async fn requeues_at_the_next_firing() {
    let mut cj = cron_job("Allow");
    cj["spec"]["schedule"] = json!("0 * * * *");
    let (store, created) = store_with(cj).await;
    let outcome = store
        .write(move |tx| {
            let key = ObjKey::new(CRON_JOBS, "default", "tick");
            let cj = tx.get(&key).unwrap();
            reconcile_at(tx, &key, cj, created)
        })
        .await
        .unwrap();
    let wait = outcome.requeue_after.expect("a requeue");
    let next = (created.as_second() / 3600 + 1) * 3600;
    let expected = (next - created.as_second()) as u64;
    assert!(
        wait.as_secs() >= expected.saturating_sub(1) && wait.as_secs() <= expected + 1,
        "{wait:?}"
    );
}
