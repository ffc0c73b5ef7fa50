//! The disruption controller: a PodDisruptionBudget's status from the active pods its
//! selector matches. Expected pods are those pods (a real controller asks their controllers'
//! scale); healthy ones are Ready; `minAvailable` or `maxUnavailable` (a count, or a
//! percentage of the expected pods, rounded up) gives the desired healthy count, and the
//! difference the disruptions allowed, with the condition DisruptionAllowed.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Outcome;
use super::common::{Cond, CondStyle, conditions, pod_active, pod_ready, resource, write_status};
use crate::error::ApiResult;
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-disruption-controller";

pub fn reconcile(tx: &mut Tx, key: &ObjKey, pdb: Arc<Value>) -> ApiResult<Outcome> {
    let res = resource(tx, "policy", "poddisruptionbudgets")?;
    let selector = crate::selector::from_label_selector_json(&pdb["spec"]["selector"]).ok();
    let pods: Vec<Arc<Value>> = match &selector {
        Some(s) if !s.is_empty() => tx
            .state()
            .list("/pods", Some(&key.ns))
            .filter(|(_, p)| pod_active(p) && s.matches(p["metadata"]["labels"].as_object()))
            .map(|(_, p)| p.clone())
            .collect(),
        _ => Vec::new(),
    };
    let expected = pods.len() as i64;
    let healthy = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let spec = &pdb["spec"];
    let desired = if let Some(min) = spec.get("minAvailable") {
        resolve(min, expected)
    } else if let Some(max) = spec.get("maxUnavailable") {
        (expected - resolve(max, expected)).max(0)
    } else {
        0
    };
    let allowed = (healthy - desired).max(0);
    let (status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let cond = Cond {
        kind: "DisruptionAllowed",
        status,
        reason,
        message: String::new(),
    };
    let mut conds = conditions(&pdb["status"]["conditions"], &[cond], CondStyle::Transition);
    conds[0]["observedGeneration"] = pdb["metadata"]["generation"].clone();
    let status = json!({
        "observedGeneration": pdb["metadata"]["generation"],
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": conds,
    });
    write_status(tx, &res, key, status, MANAGER)?;
    Ok(Outcome::done())
}

/// An IntOrString against a total: `2`, or `"50%"` rounded up.
fn resolve(v: &Value, total: i64) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(percent) => (percent * total + 99) / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use serde_json::json;

    #[test]
    fn counts_and_percentages() {
        assert_eq!(resolve(&json!(2), 5), 2);
        assert_eq!(resolve(&json!("50%"), 5), 3);
        assert_eq!(resolve(&json!("100%"), 4), 4);
        assert_eq!(resolve(&json!("0%"), 4), 0);
    }
}
