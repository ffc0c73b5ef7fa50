//! A stand-in for k3s's helm controller: for each `HelmChart` (group `helm.cattle.io`, served
//! once its CRD is applied, as k3s ships it) it creates the Job `helm-install-{name}` in the
//! chart's namespace and records it in `status.jobName`, as k3s does. The sandbox installs no
//! chart: the Job's pod completes like any job pod, which is what waiting for "the chart was
//! installed" observes on a real k3s.
//!
//! A changed spec gets a fresh Job (the old one is replaced), so re-applying a chart with new
//! values can be waited for the same way.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Outcome;
use super::common::{
    controller_ref_to, delete, name, resource, resource_of_kind, str_of, template_hash,
    write_status,
};
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-helm-controller";
/// The annotation on the Job holding a hash of the chart spec it installs.
const SPEC_HASH: &str = "helmcharts.helm.cattle.io/configHash";

pub fn reconcile(tx: &mut Tx, key: &ObjKey, chart: Arc<Value>) -> ApiResult<Outcome> {
    let Some(chart_res) = resource_of_kind(tx, "helm.cattle.io/v1", "HelmChart") else {
        return Ok(Outcome::done());
    };
    let jobs = resource(tx, "batch", "jobs")?;
    let job_name = format!("helm-install-{}", name(&chart));
    let job_key = ops::key(&jobs, &key.ns, &job_name);
    let hash = template_hash(&chart["spec"]);
    if let Some(job) = tx.get(&job_key) {
        if job["metadata"]["annotations"][SPEC_HASH].as_str() == Some(hash.as_str()) {
            write_status(tx, &chart_res, key, json!({ "jobName": job_name }), MANAGER)?;
            return Ok(Outcome::done());
        }
        // A changed chart: k3s replaces the install job; the next reconcile creates it.
        delete(tx, &jobs, &job_key)?;
        return Ok(Outcome::after(std::time::Duration::from_millis(50)));
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name,
            "labels": { "helmcharts.helm.cattle.io/chart": name(&chart) },
            "annotations": { SPEC_HASH: hash },
            "ownerReferences": [controller_ref_to(&chart_res, &chart)],
        },
        "spec": {
            "backoffLimit": 1000,
            "template": {
                "metadata": { "labels": { "helmcharts.helm.cattle.io/chart": name(&chart) } },
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "helm",
                        "image": "rancher/klipper-helm:v0.9.4-build20250113",
                        "args": ["install"],
                        "env": [
                            { "name": "NAME", "value": name(&chart) },
                            { "name": "CHART", "value": str_of(&chart, "/spec/chart") },
                            { "name": "VERSION", "value": str_of(&chart, "/spec/version") },
                            { "name": "REPO", "value": str_of(&chart, "/spec/repo") },
                            { "name": "TARGET_NAMESPACE", "value": str_of(&chart, "/spec/targetNamespace") },
                        ],
                    }],
                },
            },
        },
    });
    let how = WriteKind::Controller {
        manager: MANAGER,
        part: Part::Main,
    };
    ops::create(tx, &jobs, &key.ns, job, how)?;
    write_status(tx, &chart_res, key, json!({ "jobName": job_name }), MANAGER)?;
    Ok(Outcome::done())
}
