//! Defaults and checks of the workload kinds added after the first ones: DaemonSets,
//! CronJobs and ReplicationControllers.

use serde_json::Value;

use super::require_selector_matches;
use crate::cron::Schedule;
use crate::error::{ApiError, ApiResult};

/// Its defaults are `crate::defaults::workloads::daemon_set`'s.
pub fn daemon_set(obj: &mut Value) -> ApiResult<()> {
    require_selector_matches("DaemonSet", obj)
}

/// The schedule, time zone and job template are checked as the apiserver checks them, so a
/// CronJob the controller could never run is refused when written.
pub fn cron_job(obj: &mut Value) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let invalid = |field: &str, message: String| {
        ApiError::invalid("CronJob", "batch", &name, &[(field.to_string(), message)])
    };
    let spec = &mut obj["spec"];
    let schedule = spec["schedule"].as_str().unwrap_or("");
    if schedule.is_empty() {
        return Err(invalid("spec.schedule", "Required value".into()));
    }
    if let Err(why) = Schedule::parse(schedule) {
        return Err(invalid(
            "spec.schedule",
            format!("Invalid value: {schedule:?}: {why}"),
        ));
    }
    if let Some(zone) = spec["timeZone"].as_str()
        && jiff::tz::TimeZone::get(zone).is_err()
    {
        return Err(invalid(
            "spec.timeZone",
            format!("Invalid value: {zone:?}: unknown time zone {zone}"),
        ));
    }
    // The pod defaults made an absent policy `Always`, which a Job cannot use. (The CronJob's
    // own defaults are `crate::defaults::workloads::cron_job`'s.)
    let restart = &spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"];
    if !matches!(restart.as_str(), Some("Never" | "OnFailure")) {
        let value = crate::validation::go_quote(restart.as_str().unwrap_or(""));
        return Err(invalid(
            "spec.jobTemplate.spec.template.spec.restartPolicy",
            format!("Unsupported value: {value}: supported values: \"OnFailure\", \"Never\""),
        ));
    }
    Ok(())
}

/// A ReplicationController's selector and labels default to its template's labels.
pub fn replication_controller(obj: &mut Value) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let template_labels = obj["spec"]["template"]["metadata"]["labels"].clone();
    let spec = &mut obj["spec"];
    if spec["selector"].as_object().is_none_or(|s| s.is_empty()) {
        spec["selector"] = template_labels.clone();
    }
    if obj["metadata"]["labels"]
        .as_object()
        .is_none_or(|l| l.is_empty())
        && template_labels.is_object()
    {
        obj["metadata"]["labels"] = template_labels.clone();
    }
    let selector = obj["spec"]["selector"].as_object();
    let matches = selector
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| template_labels.get(k) == Some(v)));
    if !matches {
        return Err(ApiError::invalid(
            "ReplicationController",
            "",
            &name,
            &[(
                "spec.template.metadata.labels".into(),
                "Invalid value: `selector` does not match template `labels`".into(),
            )],
        ));
    }
    Ok(())
}
