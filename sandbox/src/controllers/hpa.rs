//! The horizontal pod autoscaler, without metrics: the sandbox has no metrics server, so it
//! only keeps its target's `spec.replicas` (a Deployment, StatefulSet or ReplicaSet) within
//! `[minReplicas, maxReplicas]` and reports ScalingActive False (FailedGetResourceMetric).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::common::{Cond, CondStyle, conditions, int, resource, write_main, write_status};
use super::{Outcome, events};
use crate::error::ApiResult;
use crate::ops;
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-hpa-controller";

pub fn reconcile(tx: &mut Tx, key: &ObjKey, hpa: Arc<Value>) -> ApiResult<Outcome> {
    let res = resource(tx, "autoscaling", "horizontalpodautoscalers")?;
    let target_ref = &hpa["spec"]["scaleTargetRef"];
    let min = int(&hpa["spec"]["minReplicas"], 1).max(1);
    let max = int(&hpa["spec"]["maxReplicas"], min).max(min);
    let kind = target_ref["kind"].as_str().unwrap_or("");
    let target_name = target_ref["name"].as_str().unwrap_or("");
    let plural = match kind {
        "Deployment" => Some("deployments"),
        "StatefulSet" => Some("statefulsets"),
        "ReplicaSet" => Some("replicasets"),
        _ => None,
    };
    let target = plural.and_then(|p| {
        let r = tx.state().registry.find_any_version("apps", p)?;
        let k = ops::key(&r, &key.ns, target_name);
        let obj = tx.get(&k)?;
        Some((r, k, obj))
    });
    let old = &hpa["status"];
    let mut status = Map::new();
    if let Some(g) = hpa["metadata"]["generation"].as_i64() {
        status.insert("observedGeneration".into(), json!(g));
    }
    let Some((target_res, target_key, target)) = target else {
        let what = plural.map_or_else(|| kind.to_lowercase(), |p| format!("{p}.apps"));
        let cond = Cond {
            kind: "AbleToScale",
            status: "False",
            reason: "FailedGetScale",
            message: format!(
                "the HPA controller was unable to get the target's current scale: {what} \"{target_name}\" not found"
            ),
        };
        status.insert(
            "currentReplicas".into(),
            old["currentReplicas"]
                .as_i64()
                .map_or(json!(0), |n| json!(n)),
        );
        status.insert(
            "desiredReplicas".into(),
            old["desiredReplicas"]
                .as_i64()
                .map_or(json!(0), |n| json!(n)),
        );
        if let Some(t) = old["lastScaleTime"].as_str() {
            status.insert("lastScaleTime".into(), json!(t));
        }
        status.insert(
            "conditions".into(),
            conditions(&old["conditions"], &[cond], CondStyle::Transition),
        );
        write_status(tx, &res, key, Value::Object(status), MANAGER)?;
        return Ok(Outcome::done());
    };
    let current = int(&target["spec"]["replicas"], 1);
    let disabled = current == 0;
    let desired = if disabled { 0 } else { current.clamp(min, max) };
    let mut last_scale = old["lastScaleTime"].as_str().map(String::from);
    let able = if desired != current {
        let mut scaled = (*target).clone();
        scaled["spec"]["replicas"] = json!(desired);
        write_main(tx, &target_res, &target_key, &target, scaled, MANAGER)?;
        last_scale = Some(ops::now());
        let why = if current < min {
            "below Spec.MinReplicas"
        } else {
            "above Spec.MaxReplicas"
        };
        let message = format!("New size: {desired}; reason: Current number of replicas {why}");
        events::record(
            tx,
            &hpa,
            events::normal("horizontal-pod-autoscaler", "SuccessfulRescale", message),
        );
        Cond {
            kind: "AbleToScale",
            status: "True",
            reason: "SucceededRescale",
            message: format!("the HPA controller was able to update the target scale to {desired}"),
        }
    } else {
        Cond {
            kind: "AbleToScale",
            status: "True",
            reason: "ReadyForNewScale",
            message: "recommended size matches current size".into(),
        }
    };
    let active = if disabled {
        Cond {
            kind: "ScalingActive",
            status: "False",
            reason: "ScalingDisabled",
            message: "scaling is disabled since the replica count of the target is zero".into(),
        }
    } else {
        Cond {
            kind: "ScalingActive",
            status: "False",
            reason: "FailedGetResourceMetric",
            message: "the HPA was unable to compute the replica count: no metrics returned from resource metrics API (the sandbox has no metrics server)".into(),
        }
    };
    let limited = if current < min && !disabled {
        Cond {
            kind: "ScalingLimited",
            status: "True",
            reason: "TooFewReplicas",
            message: "the desired replica count is less than the minimum replica count".into(),
        }
    } else if current > max {
        Cond {
            kind: "ScalingLimited",
            status: "True",
            reason: "TooManyReplicas",
            message: "the desired replica count is more than the maximum replica count".into(),
        }
    } else {
        Cond {
            kind: "ScalingLimited",
            status: "False",
            reason: "DesiredWithinRange",
            message: "the desired count is within the acceptable range".into(),
        }
    };
    let pods = int(&target["status"]["replicas"], current);
    status.insert("currentReplicas".into(), json!(pods));
    status.insert("desiredReplicas".into(), json!(desired));
    if let Some(t) = last_scale {
        status.insert("lastScaleTime".into(), json!(t));
    }
    status.insert(
        "conditions".into(),
        conditions(
            &old["conditions"],
            &[able, active, limited],
            CondStyle::Transition,
        ),
    );
    write_status(tx, &res, key, Value::Object(status), MANAGER)?;
    Ok(Outcome::done())
}
