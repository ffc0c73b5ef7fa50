//! The CronJob controller: at each minute the schedule fires (in `spec.timeZone`, UTC by
//! default) it creates the Job `{cronjob}-{scheduled time in minutes since the epoch}` from
//! the job template, owned by the CronJob and annotated with the scheduled time, then comes
//! back at the next firing. Only the most recent missed firing runs (none when it is older
//! than `startingDeadlineSeconds`). `concurrencyPolicy`: Allow runs jobs side by side; Forbid
//! skips a firing while one runs (and starts it once that one ends, as the real controller
//! does, if still within the deadline); Replace deletes the running ones first. A suspended
//! CronJob starts nothing. Finished jobs beyond `successfulJobsHistoryLimit` and
//! `failedJobsHistoryLimit` are deleted, oldest first. Status: `active`, `lastScheduleTime`,
//! `lastSuccessfulTime`.
//!
//! Time comes in as a parameter ([`reconcile_at`]) so tests drive the clock.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use super::common::{
    condition_true, controlled, controller_ref_to, delete, name, resource, str_of, uid,
    write_status,
};
use super::{Outcome, events};
use crate::cron::Schedule;
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-cronjob-controller";
const COMPONENT: &str = "cronjob-controller";
const JOBS: &str = "batch/jobs";
pub const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

pub fn reconcile(tx: &mut Tx, key: &ObjKey, cj: Arc<Value>) -> ApiResult<Outcome> {
    reconcile_at(tx, key, cj, Timestamp::now())
}

fn finished(job: &Value) -> Option<&'static str> {
    if condition_true(job, "Complete") {
        Some("Complete")
    } else if condition_true(job, "Failed") {
        Some("Failed")
    } else {
        None
    }
}

fn time(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

pub fn reconcile_at(
    tx: &mut Tx,
    key: &ObjKey,
    cj: Arc<Value>,
    now: Timestamp,
) -> ApiResult<Outcome> {
    let res = resource(tx, "batch", "cronjobs")?;
    let jobs_res = resource(tx, "batch", "jobs")?;
    let spec = &cj["spec"];
    let old_status = &cj["status"];
    let mut jobs: Vec<(ObjKey, Arc<Value>)> = controlled(tx, uid(&cj), JOBS);
    jobs.sort_by(|(ka, a), (kb, b)| {
        let created = |j: &Value| str_of(j, "/metadata/creationTimestamp").to_string();
        created(a).cmp(&created(b)).then(ka.name.cmp(&kb.name))
    });
    let was_active: Vec<&str> = old_status["active"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect();
    let mut last_success = time(&old_status["lastSuccessfulTime"]);
    let mut running: Vec<Arc<Value>> = Vec::new();
    let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
    for (k, job) in &jobs {
        match finished(job) {
            None => running.push(job.clone()),
            Some(condition) => {
                if was_active.contains(&k.name.as_str()) {
                    let message = format!("Saw completed job: {}, condition: {condition}", k.name);
                    events::record(
                        tx,
                        &cj,
                        events::normal(COMPONENT, "SawCompletedJob", message),
                    );
                }
                if condition == "Complete" {
                    let done = time(&job["status"]["completionTime"]);
                    last_success = last_success.max(done);
                    succeeded.push(k.clone());
                } else {
                    failed.push(k.clone());
                }
            }
        }
    }
    for (finished, limit) in [
        (
            succeeded,
            spec["successfulJobsHistoryLimit"].as_i64().unwrap_or(3),
        ),
        (failed, spec["failedJobsHistoryLimit"].as_i64().unwrap_or(1)),
    ] {
        let extra = finished.len().saturating_sub(limit.max(0) as usize);
        for k in finished.iter().take(extra) {
            delete(tx, &jobs_res, k)?;
            let message = format!("Deleted job {}", k.name);
            events::record(
                tx,
                &cj,
                events::normal(COMPONENT, "SuccessfulDelete", message),
            );
        }
    }
    let mut last_schedule = time(&old_status["lastScheduleTime"]);
    let schedule = Schedule::parse(str_of(&cj, "/spec/schedule"));
    let tz = spec["timeZone"]
        .as_str()
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or(TimeZone::UTC);
    let mut requeue = None;
    match schedule {
        Err(why) => {
            let message = format!("unparseable schedule: {why}");
            events::record(
                tx,
                &cj,
                events::warning(COMPONENT, "UnparseableSchedule", message),
            );
        }
        Ok(_) if spec["suspend"].as_bool() == Some(true) => {}
        Ok(schedule) => {
            let created = time(&cj["metadata"]["creationTimestamp"]).unwrap_or(now);
            let mut earliest = last_schedule.unwrap_or(created);
            if let Some(deadline) = spec["startingDeadlineSeconds"].as_i64() {
                let cutoff = Timestamp::from_second(now.as_second() - deadline).unwrap_or(now);
                earliest = earliest.max(cutoff);
            }
            let due = schedule
                .last_at_or_before(now, &tz)
                .filter(|t| *t > earliest);
            if let Some(at) = due
                && start(tx, &cj, key, at, &tz, &mut running)?
            {
                last_schedule = Some(at);
            }
            if let Some(next) = schedule.next_after(now, &tz) {
                let wait = (next.as_millisecond() - now.as_millisecond()).max(0) as u64;
                requeue = Some(Duration::from_millis(wait + 100));
            }
        }
    }
    let mut status = Map::new();
    if !running.is_empty() {
        let refs: Vec<Value> = running.iter().map(|j| job_ref(j)).collect();
        status.insert("active".into(), json!(refs));
    }
    if let Some(t) = last_schedule {
        status.insert("lastScheduleTime".into(), json!(t.to_string()));
    }
    if let Some(t) = last_success {
        status.insert("lastSuccessfulTime".into(), json!(t.to_string()));
    }
    write_status(tx, &res, key, Value::Object(status), MANAGER)?;
    Ok(match requeue {
        Some(d) => Outcome::after(d),
        None => Outcome::done(),
    })
}

/// Starts the run scheduled `at` as the concurrency policy allows; whether it was started
/// (or had been already).
fn start(
    tx: &mut Tx,
    cj: &Arc<Value>,
    key: &ObjKey,
    at: Timestamp,
    tz: &TimeZone,
    running: &mut Vec<Arc<Value>>,
) -> ApiResult<bool> {
    let jobs_res = resource(tx, "batch", "jobs")?;
    let res = resource(tx, "batch", "cronjobs")?;
    let job_name = format!("{}-{}", key.name, at.as_second() / 60);
    if tx.get(&ObjKey::new(JOBS, &key.ns, &job_name)).is_some() {
        return Ok(true);
    }
    match cj["spec"]["concurrencyPolicy"].as_str() {
        Some("Forbid") if !running.is_empty() => {
            let message = "Not starting job because prior execution is running and concurrency policy is Forbid";
            events::record(
                tx,
                cj,
                events::normal(COMPONENT, "JobAlreadyActive", message.into()),
            );
            return Ok(false);
        }
        Some("Replace") => {
            for job in running.drain(..) {
                let k = ObjKey::new(JOBS, &key.ns, name(&job));
                delete(tx, &jobs_res, &k)?;
                let message = format!("Deleted job {}", k.name);
                events::record(
                    tx,
                    cj,
                    events::normal(COMPONENT, "SuccessfulDelete", message),
                );
            }
        }
        _ => {}
    }
    let template = &cj["spec"]["jobTemplate"];
    let mut meta = Map::new();
    meta.insert("name".into(), json!(job_name));
    if let Some(labels) = template["metadata"]["labels"].as_object() {
        meta.insert("labels".into(), json!(labels));
    }
    let mut annotations = template["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let local = at.to_zoned(tz.clone());
    annotations.insert(
        SCHEDULED_AT.into(),
        json!(
            local
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
                .replace("+00:00", "Z")
        ),
    );
    meta.insert("annotations".into(), json!(annotations));
    meta.insert(
        "ownerReferences".into(),
        json!([controller_ref_to(&res, cj)]),
    );
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": template["spec"].clone(),
    });
    let how = WriteKind::Controller {
        manager: MANAGER,
        part: Part::Main,
    };
    match ops::create(tx, &jobs_res, &key.ns, job, how) {
        Ok(job) => {
            let message = format!("Created job {job_name}");
            events::record(
                tx,
                cj,
                events::normal(COMPONENT, "SuccessfulCreate", message),
            );
            running.push(job);
            Ok(true)
        }
        Err(e) => {
            let message = format!("Error creating job: {}", e.message);
            events::record(tx, cj, events::warning(COMPONENT, "FailedCreate", message));
            Ok(false)
        }
    }
}

fn job_ref(job: &Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job["metadata"]["name"],
        "namespace": job["metadata"]["namespace"],
        "uid": job["metadata"]["uid"],
        "resourceVersion": job["metadata"]["resourceVersion"],
    })
}

#[cfg(test)]
mod tests;
