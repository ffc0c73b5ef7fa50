//! Waiting for a Deployment to roll out, and saying in words why it does not: a rollout whose
//! pods cannot start is reported within seconds of the cause showing in their status, with the
//! pod, the reason and message the kubelet gave and the container's last log lines, instead of
//! a silent wait that ends in a timeout.

use crate::errors::Kind;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Api;
use kube::api::{ListParams, LogParams};
use rhai::EvalAltResult;

use crate::host;
use crate::k8s::{Cluster, kube_error};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// How often the Deployment and its pods are read while waiting.
const POLL: Duration = Duration::from_millis(500);

/// Log lines shown of a failing container.
const LOG_LINES: i64 = 10;

/// Waiting reasons of a container that will not start without a change: the kubelet keeps
/// retrying them, but the rollout cannot finish until someone acts.
const STUCK: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Why a pod of the rollout cannot become ready.
#[derive(Debug, PartialEq)]
pub struct Stuck {
    pub pod: String,
    /// The container, or "" when the pod is not placed at all.
    pub container: String,
    pub reason: String,
    pub message: String,
    /// How often the container restarted; its previous log is the useful one when > 0.
    pub restarts: i32,
    /// The last exit of the container: code and reason.
    pub last_exit: Option<(i32, String)>,
}

/// Waits for the rollout of Deployment `name` in `ns` (as `rolled_out` judges it); fails early
/// when a pod is stuck or the Deployment reports it stopped progressing.
pub(crate) async fn wait(
    k: &Cluster,
    ns: &str,
    name: &str,
    timeout: Duration,
    rolled_out: impl Fn(&serde_json::Value) -> bool,
) -> RhaiResult<Deployment> {
    k.host.reach.namespace(ns, "Deployment")?;
    let deployments: Api<Deployment> = Api::namespaced(k.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(k.client.clone(), ns);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(k.client.clone(), ns);
    let what = format!("the rollout of deployment `{name}` in `{ns}`");
    let deadline = Instant::now() + timeout;
    loop {
        let Some(d) = deployments.get_opt(name).await.map_err(kube_error)? else {
            return Err(host::error(
                Kind::Refused,
                format!("Deployment `{name}` in `{ns}` is gone"),
            ));
        };
        let value = serde_json::to_value(&d).unwrap_or_default();
        if rolled_out(&value) {
            return Ok(d);
        }
        if let Some(message) = stalled(&d) {
            return Err(failed(&what, &message));
        }
        // Only the pods of the rollout under way count: old ones still crashing are what a
        // fixing rollout replaces.
        let current = match current_hash(&replica_sets, &d).await? {
            Some(hash) => {
                let labels = format!("{},pod-template-hash={hash}", selector(&d));
                pods.list(&ListParams::default().labels(&labels))
                    .await
                    .map_err(kube_error)?
                    .items
            }
            None => Vec::new(),
        };
        if let Some(stuck) = current.iter().find_map(stuck) {
            let logs = last_logs(&pods, &stuck).await;
            return Err(failed(&what, &describe(&stuck, &logs)));
        }
        if Instant::now() >= deadline {
            let secs = timeout.as_secs();
            return Err(host::error(
                Kind::Timeout,
                format!(
                    "timed out after {secs}s waiting for {what}: {}",
                    progress(&d)
                ),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn failed(what: &str, why: &str) -> Box<EvalAltResult> {
    host::error(Kind::RolloutFailed, format!("{what} is failing: {why}"))
}

/// The Deployment's label selector as a query string.
fn selector(d: &Deployment) -> String {
    let labels = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `pod-template-hash` of the Deployment's current ReplicaSet (the one of its revision),
/// or `None` before its controller made it.
async fn current_hash(
    replica_sets: &Api<ReplicaSet>,
    d: &Deployment,
) -> RhaiResult<Option<String>> {
    const REVISION: &str = "deployment.kubernetes.io/revision";
    let Some(revision) = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
    else {
        return Ok(None);
    };
    let owned = replica_sets
        .list(&ListParams::default().labels(&selector(d)))
        .await
        .map_err(kube_error)?;
    Ok(owned.items.into_iter().find_map(|rs| {
        let owner = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == d.metadata.uid.as_ref());
        let same = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            == Some(revision);
        (owner && same)
            .then(|| rs.metadata.labels?.get("pod-template-hash").cloned())
            .flatten()
    }))
}

/// The Deployment's own word that it gave up: `Progressing` false (its deadline passed) or a
/// `ReplicaFailure` (pods refused, e.g. by a quota).
fn stalled(d: &Deployment) -> Option<String> {
    let conditions = d.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find_map(|c| {
        let gave_up = (c.type_ == "Progressing" && c.status == "False")
            || (c.type_ == "ReplicaFailure" && c.status == "True");
        gave_up.then(|| {
            let reason = c.reason.clone().unwrap_or_default();
            format!("{reason}: {}", c.message.clone().unwrap_or_default())
        })
    })
}

/// What is stuck in `pod`, if anything: a container waiting for a reason that will not pass
/// by itself, a failed pod, or a pod no node can take.
pub fn stuck(pod: &Pod) -> Option<Stuck> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(c) = unschedulable {
        return Some(Stuck {
            pod: name,
            container: String::new(),
            reason: "Unschedulable".into(),
            message: c.message.clone().unwrap_or_default(),
            restarts: 0,
            last_exit: None,
        });
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in containers {
        if let Some(found) = stuck_container(&name, c) {
            return Some(found);
        }
    }
    None
}

fn stuck_container(pod: &str, c: &ContainerStatus) -> Option<Stuck> {
    let waiting = c.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.clone().unwrap_or_default();
    if !STUCK.contains(&reason.as_str()) {
        return None;
    }
    let last_exit = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| (t.exit_code, t.reason.clone().unwrap_or_default()));
    Some(Stuck {
        pod: pod.into(),
        container: c.name.clone(),
        reason,
        message: waiting.message.clone().unwrap_or_default(),
        restarts: c.restart_count,
        last_exit,
    })
}

/// The last lines the stuck container wrote (its previous run's when it restarted), or "".
async fn last_logs(pods: &Api<Pod>, stuck: &Stuck) -> String {
    if stuck.container.is_empty() {
        return String::new();
    }
    // A container that exited has its useful lines in its previous run; one that never ran
    // may only have a current log.
    let exited = stuck.restarts > 0 || stuck.last_exit.is_some();
    for previous in [exited, !exited] {
        let params = LogParams {
            container: Some(stuck.container.clone()),
            tail_lines: Some(LOG_LINES),
            previous,
            ..LogParams::default()
        };
        if let Ok(text) = pods.logs(&stuck.pod, &params).await
            && !text.trim().is_empty()
        {
            return text;
        }
    }
    String::new()
}

/// `stuck` in words, with the log lines indented under it.
pub fn describe(stuck: &Stuck, logs: &str) -> String {
    let mut text = if stuck.container.is_empty() {
        format!("pod {} cannot be scheduled: {}", stuck.pod, stuck.message)
    } else {
        format!(
            "pod {}: container `{}` is waiting: {}",
            stuck.pod, stuck.container, stuck.reason
        )
    };
    if !stuck.container.is_empty() && !stuck.message.is_empty() {
        text.push_str(&format!(" ({})", stuck.message));
    }
    if stuck.restarts > 0 {
        text.push_str(&format!(", restarted {} times", stuck.restarts));
    }
    if let Some((code, reason)) = &stuck.last_exit {
        text.push_str(&format!(", last exit code {code} ({reason})"));
    }
    let lines: Vec<&str> = logs.lines().collect();
    if !lines.is_empty() {
        text.push_str(&format!("\nlast log lines of {}:", stuck.pod));
        for line in lines {
            text.push_str(&format!("\n  | {line}"));
        }
    }
    text
}

/// How far a rollout got, in words: `2 of 3 replicas updated, 1 available`.
fn progress(d: &Deployment) -> String {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    format!(
        "{} of {want} replicas updated, {} available",
        status.updated_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-1"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_crash_looping_container_is_stuck_with_its_last_exit() {
        let p = pod(serde_json::json!({"containerStatuses": [{
            "name": "api", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}},
        }]}));
        let found = stuck(&p).expect("stuck");
        assert_eq!(
            describe(&found, "boom\nbye\n"),
            "pod api-1: container `api` is waiting: CrashLoopBackOff (back-off 40s), restarted 3 times, last exit code 2 (Error)\nlast log lines of api-1:\n  | boom\n  | bye"
        );
    }

    #[test]
    fn starting_and_running_pods_are_not_stuck() {
        for state in [
            serde_json::json!({"waiting": {"reason": "ContainerCreating"}}),
            serde_json::json!({"running": {}}),
        ] {
            let p = pod(serde_json::json!({"containerStatuses": [{
                "name": "api", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": state,
            }]}));
            assert_eq!(stuck(&p), None);
        }
    }

    #[test]
    fn an_unschedulable_pod_says_why() {
        let p = pod(serde_json::json!({"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Too many pods.",
        }]}));
        let found = stuck(&p).expect("stuck");
        assert_eq!(
            describe(&found, ""),
            "pod api-1 cannot be scheduled: 0/1 nodes are available: 1 Too many pods."
        );
    }
}
