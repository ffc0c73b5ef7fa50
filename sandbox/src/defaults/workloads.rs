//! Workloads of the `apps` and `batch` groups: their own defaults (`pkg/apis/apps/v1` and
//! `pkg/apis/batch/v1` `defaults.go`) and those of the pod template inside.

use serde_json::{Value, json};

use super::{each, pod, set, within};

/// A workload's `spec`, when the body has one (validation refuses it otherwise).
fn spec_of(obj: &mut Value) -> Option<&mut Value> {
    obj.get_mut("spec").filter(|s| s.is_object())
}

pub fn deployment(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set(spec, "replicas", json!(1));
    set(spec, "strategy", json!({}));
    let strategy = &mut spec["strategy"];
    set(strategy, "type", json!("RollingUpdate"));
    // A Recreate strategy gets no rollingUpdate; a RollingUpdate one gets both bounds.
    if strategy["type"] == "RollingUpdate" {
        set(strategy, "rollingUpdate", json!({}));
        within(strategy, "rollingUpdate", |r| {
            set(r, "maxUnavailable", json!("25%"));
            set(r, "maxSurge", json!("25%"));
        });
    }
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    within(spec, "template", pod::template);
}

pub fn replica_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set(spec, "replicas", json!(1));
    within(spec, "template", pod::template);
}

pub fn stateful_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set(spec, "replicas", json!(1));
    set(spec, "podManagementPolicy", json!("OrderedReady"));
    set(spec, "updateStrategy", json!({}));
    let strategy = &mut spec["updateStrategy"];
    // Only a strategy without a type gets a rollingUpdate block; an explicit RollingUpdate
    // without one stays without, as on a real server.
    if strategy["type"].as_str().is_none_or(str::is_empty) {
        strategy["type"] = json!("RollingUpdate");
        set(strategy, "rollingUpdate", json!({}));
    }
    if strategy["type"] == "RollingUpdate" {
        within(strategy, "rollingUpdate", |r| set(r, "partition", json!(0)));
    }
    set(spec, "persistentVolumeClaimRetentionPolicy", json!({}));
    within(spec, "persistentVolumeClaimRetentionPolicy", |p| {
        set(p, "whenDeleted", json!("Retain"));
        set(p, "whenScaled", json!("Retain"));
    });
    set(spec, "revisionHistoryLimit", json!(10));
    within(spec, "template", pod::template);
    // Claim templates are defaulted as claims, status included.
    each(spec, "volumeClaimTemplates", |claim| {
        within(claim, "spec", pod::claim_spec);
        set(claim, "status", json!({"phase": "Pending"}));
    });
}

pub fn daemon_set(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set(spec, "updateStrategy", json!({}));
    let strategy = &mut spec["updateStrategy"];
    set(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        set(strategy, "rollingUpdate", json!({}));
        within(strategy, "rollingUpdate", |r| {
            set(r, "maxUnavailable", json!(1));
            set(r, "maxSurge", json!(0));
        });
    }
    set(spec, "revisionHistoryLimit", json!(10));
    within(spec, "template", pod::template);
}

/// `SetDefaults_Job`. The selector and the labels that name the Job are not defaults: the
/// server generates them from the uid when it creates the Job (see `admission`).
pub fn job(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    // A non-parallel job may leave both unset; a parallel one with only `parallelism` keeps
    // `completions` unset (it runs until one pod succeeds).
    if spec["completions"].is_null() && spec["parallelism"].is_null() {
        spec["completions"] = json!(1);
    }
    set(spec, "parallelism", json!(1));
    let backoff = if spec["backoffLimitPerIndex"].is_null() {
        json!(6)
    } else {
        json!(i32::MAX)
    };
    set(spec, "backoffLimit", backoff);
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    let replacement = if spec["podFailurePolicy"].is_null() {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    set(spec, "podReplacementPolicy", json!(replacement));
    within(spec, "podFailurePolicy", |policy| {
        each(policy, "rules", |rule| {
            each(rule, "onPodConditions", |c| set(c, "status", json!("True")))
        })
    });
    set(spec, "manualSelector", json!(false));
    within(spec, "template", pod::template);
}

/// `SetDefaults_CronJob`. The job template gets its pod template's defaults but not a Job's:
/// those come when the CronJob creates the Job.
pub fn cron_job(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    set(spec, "concurrencyPolicy", json!("Allow"));
    set(spec, "suspend", json!(false));
    set(spec, "successfulJobsHistoryLimit", json!(3));
    set(spec, "failedJobsHistoryLimit", json!(1));
    within(spec, "jobTemplate", |t| {
        within(t, "spec", |s| within(s, "template", pod::template))
    });
}
