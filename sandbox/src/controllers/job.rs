//! The Job controller: runs up to `parallelism` pods `{job}-{5 random characters}` at a time
//! until `completions` of them succeeded, and counts succeeded and failed pods. The Job is
//! Complete (with SuccessCriteriaMet) when enough succeeded, Failed (with FailureTarget,
//! reason BackoffLimitExceeded) after `backoffLimit + 1` failures, or Failed with reason
//! DeadlineExceeded after `activeDeadlineSeconds`. A suspended Job has its pods deleted.
//! Failed pods are replaced at once (no exponential back-off) and `completionMode: Indexed`
//! gives each pod the lowest free index (annotation and label
//! `batch.kubernetes.io/job-completion-index`) but is otherwise counted like NonIndexed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::common::{
    Cond, CondStyle, condition_true, conditions, controlled, controller_ref_to, delete, fresh_name,
    int, is_deleting, phase, pod_from_template, pod_ready, resource, uid, write_status,
};
use super::{BURST, Outcome, events};
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-job-controller";
const COMPONENT: &str = "job-controller";
const INDEX: &str = "batch.kubernetes.io/job-completion-index";

fn finished(job: &Value) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

pub fn reconcile(tx: &mut Tx, key: &ObjKey, job: Arc<Value>) -> ApiResult<Outcome> {
    if finished(&job) {
        return Ok(Outcome::done());
    }
    let res = resource(tx, "batch", "jobs")?;
    let pods_res = resource(tx, "", "pods")?;
    let spec = &job["spec"];
    let completions = spec["completions"].as_i64();
    let parallelism = int(&spec["parallelism"], 1).max(0);
    let backoff_limit = int(&spec["backoffLimit"], 6).max(0);
    let suspended = spec["suspend"].as_bool() == Some(true);
    let now = ops::now();
    let pods = controlled(tx, uid(&job), "/pods");
    let count = |p: &str| pods.iter().filter(|(_, pod)| phase(pod) == p).count() as i64;
    let succeeded = count("Succeeded").max(int(&job["status"]["succeeded"], 0));
    let failed = count("Failed").max(int(&job["status"]["failed"], 0));
    let active: Vec<&(ObjKey, Arc<Value>)> = pods
        .iter()
        .filter(|(_, p)| !matches!(phase(p), "Succeeded" | "Failed") && !is_deleting(p))
        .collect();
    let old_status = &job["status"];
    let start_time = old_status["startTime"].as_str().map(String::from);
    let deadline = spec["activeDeadlineSeconds"].as_i64();
    let elapsed = start_time
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| (jiff::Timestamp::now().as_second() - t.as_second()).max(0));
    let mut wanted: Vec<Cond> = Vec::new();
    let complete = match completions {
        Some(n) => succeeded >= n,
        None => succeeded >= 1 && active.is_empty(),
    };
    let failure = if failed > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if deadline.is_some_and(|d| elapsed.is_some_and(|e| e >= d) && !suspended) {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };
    let mut requeue = None;
    let mut status = Map::new();
    let mut active_count = active.len() as i64;
    if let Some((reason, message)) = failure {
        for (k, _) in &active {
            delete(tx, &pods_res, k)?;
        }
        active_count = 0;
        events::record(tx, &job, events::warning(COMPONENT, reason, message.into()));
        wanted.push(Cond {
            kind: "FailureTarget",
            status: "True",
            reason,
            message: message.into(),
        });
        wanted.push(Cond {
            kind: "Failed",
            status: "True",
            reason,
            message: message.into(),
        });
    } else if complete {
        events::record(
            tx,
            &job,
            events::normal(COMPONENT, "Completed", "Job completed".into()),
        );
        let message = "Reached expected number of succeeded pods".to_string();
        wanted.push(Cond {
            kind: "SuccessCriteriaMet",
            status: "True",
            reason: "CompletionsReached",
            message: message.clone(),
        });
        wanted.push(Cond {
            kind: "Complete",
            status: "True",
            reason: "CompletionsReached",
            message,
        });
        status.insert("completionTime".into(), json!(now));
    } else if suspended {
        for (k, _) in &active {
            delete(tx, &pods_res, k)?;
        }
        active_count = 0;
        wanted.push(Cond {
            kind: "Suspended",
            status: "True",
            reason: "JobSuspended",
            message: "Job suspended".into(),
        });
    } else {
        if old_status["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Suspended"))
        {
            wanted.push(Cond {
                kind: "Suspended",
                status: "False",
                reason: "JobResumed",
                message: "Job resumed".into(),
            });
        }
        let remaining = completions.map_or(parallelism, |n| (n - succeeded).max(0));
        let target = parallelism.min(remaining);
        let owner = controller_ref_to(&res, &job);
        let prefix = format!("{}-", key.name);
        let indexed = spec["completionMode"].as_str() == Some("Indexed");
        // Indexes taken by pods that succeeded or still run.
        let mut taken: Vec<i64> = pods
            .iter()
            .filter(|(_, p)| phase(p) != "Failed" && !is_deleting(p))
            .filter_map(|(_, p)| p["metadata"]["annotations"][INDEX].as_str()?.parse().ok())
            .collect();
        // At most a burst per reconcile; each new pod's event brings the job back for more.
        let missing = (target - active_count).min(BURST as i64);
        for _ in 0..missing {
            let name = fresh_name(tx, "/pods", &key.ns, &prefix);
            let mut pod = pod_from_template(&spec["template"], &name, &prefix, owner.clone());
            if indexed {
                let free = (0..).find(|i| !taken.contains(i)).unwrap_or(0);
                taken.push(free);
                let index = free.to_string();
                pod["metadata"]["annotations"][INDEX] = json!(index);
                pod["metadata"]["labels"][INDEX] = json!(index);
            }
            let how = WriteKind::Controller {
                manager: MANAGER,
                part: Part::Main,
            };
            ops::create(tx, &pods_res, &key.ns, pod, how)?;
            events::record(
                tx,
                &job,
                events::normal(
                    COMPONENT,
                    "SuccessfulCreate",
                    format!("Created pod: {name}"),
                ),
            );
            active_count += 1;
        }
        if let (Some(d), Some(e)) = (deadline, elapsed) {
            requeue = Some(Duration::from_secs((d - e).max(1) as u64));
        }
    }
    let start = start_time.or_else(|| (!suspended).then(|| now.clone()));
    if let Some(start) = start {
        status.insert("startTime".into(), json!(start));
    }
    if let Some(done) = old_status["completionTime"].as_str() {
        status.insert("completionTime".into(), json!(done));
    }
    let ready = active.iter().filter(|(_, p)| pod_ready(p)).count();
    if active_count > 0 {
        status.insert("active".into(), json!(active_count));
    }
    status.insert(
        "ready".into(),
        json!(if active_count > 0 { ready } else { 0 }),
    );
    if succeeded > 0 {
        status.insert("succeeded".into(), json!(succeeded));
    }
    if failed > 0 {
        status.insert("failed".into(), json!(failed));
    }
    status.insert("terminating".into(), json!(0));
    status.insert("uncountedTerminatedPods".into(), json!({}));
    if !wanted.is_empty() {
        status.insert(
            "conditions".into(),
            conditions(&old_status["conditions"], &wanted, CondStyle::Probe),
        );
    }
    write_status(tx, &res, key, Value::Object(status), MANAGER)?;
    Ok(match requeue {
        Some(d) => Outcome::after(d),
        None => Outcome::done(),
    })
}
