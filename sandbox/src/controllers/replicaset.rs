//! The ReplicaSet controller: creates pods `{rs}-{5 random characters}` from the template, or
//! deletes some (unready ones first, then the newest) to reach `spec.replicas`, at most
//! [`BURST`] per reconcile, and reports replicas, fullyLabeledReplicas, readyReplicas and
//! availableReplicas.
//!
//! Pods are the ones whose controller reference is the ReplicaSet; running pods that match the
//! selector and have no controller are adopted.
//!
//! ReplicationControllers are the same controller with an equality selector (a plain map).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::common::{
    Cond, CondStyle, adopt_orphans, conditions, controlled, controller_ref_to, delete, fresh_name,
    int, pod_active, pod_from_template, pod_ready, put_nonzero, resource, uid, write_status,
};
use super::{BURST, Outcome, events};
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

/// What tells a ReplicaSet from a ReplicationController.
struct Flavour {
    group: &'static str,
    plural: &'static str,
    manager: &'static str,
    component: &'static str,
}

const REPLICA_SET: Flavour = Flavour {
    group: "apps",
    plural: "replicasets",
    manager: "kip-sandbox-replicaset-controller",
    component: "replicaset-controller",
};

const REPLICATION_CONTROLLER: Flavour = Flavour {
    group: "",
    plural: "replicationcontrollers",
    manager: "kip-sandbox-replication-controller",
    component: "replication-controller",
};

pub fn reconcile(tx: &mut Tx, key: &ObjKey, rs: Arc<Value>) -> ApiResult<Outcome> {
    let selector = rs["spec"]["selector"].clone();
    reconcile_flavour(tx, key, rs, &selector, &REPLICA_SET)
}

pub fn reconcile_replication_controller(
    tx: &mut Tx,
    key: &ObjKey,
    rc: Arc<Value>,
) -> ApiResult<Outcome> {
    let selector = json!({"matchLabels": rc["spec"]["selector"]});
    reconcile_flavour(tx, key, rc, &selector, &REPLICATION_CONTROLLER)
}

fn reconcile_flavour(
    tx: &mut Tx,
    key: &ObjKey,
    rs: Arc<Value>,
    selector: &Value,
    flavour: &Flavour,
) -> ApiResult<Outcome> {
    let (manager, component) = (flavour.manager, flavour.component);
    let res = resource(tx, flavour.group, flavour.plural)?;
    let pods_res = resource(tx, "", "pods")?;
    let want = int(&rs["spec"]["replicas"], 1).max(0) as usize;
    adopt_orphans(tx, &pods_res, &rs, &res, selector, manager, pod_active)?;
    let mut pods: Vec<(ObjKey, Arc<Value>)> = controlled(tx, uid(&rs), "/pods")
        .into_iter()
        .filter(|(_, p)| pod_active(p))
        .collect();
    let mut failure = None;
    // More to do than one burst: come back for the rest once this write is committed.
    let more = pods.len().abs_diff(want) > BURST;
    if pods.len() < want {
        let owner = controller_ref_to(&res, &rs);
        let prefix = format!("{}-", key.name);
        for _ in pods.len()..want.min(pods.len() + BURST) {
            let name = fresh_name(tx, "/pods", &key.ns, &prefix);
            let pod = pod_from_template(&rs["spec"]["template"], &name, &prefix, owner.clone());
            let how = WriteKind::Controller {
                manager,
                part: Part::Main,
            };
            match ops::create(tx, &pods_res, &key.ns, pod, how) {
                Ok(_) => {
                    let message = format!("Created pod: {name}");
                    events::record(
                        tx,
                        &rs,
                        events::normal(component, "SuccessfulCreate", message),
                    );
                }
                Err(e) => {
                    let message = format!("Error creating: {}", e.message);
                    events::record(tx, &rs, events::warning(component, "FailedCreate", message));
                    failure = Some(e.message);
                    break;
                }
            }
        }
    } else if pods.len() > want {
        // Unready pods go first, then the newest.
        pods.sort_by(|(ka, a), (kb, b)| {
            let rank = |p: &Value| {
                (
                    pod_ready(p),
                    std::cmp::Reverse(
                        p["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    ),
                )
            };
            rank(a).cmp(&rank(b)).then_with(|| kb.name.cmp(&ka.name))
        });
        for (k, _) in pods.iter().take((pods.len() - want).min(BURST)) {
            delete(tx, &pods_res, k)?;
            let message = format!("Deleted pod: {}", k.name);
            events::record(
                tx,
                &rs,
                events::normal(component, "SuccessfulDelete", message),
            );
        }
    }
    let pods: Vec<Arc<Value>> = controlled(tx, uid(&rs), "/pods")
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| pod_active(p))
        .collect();
    let template_labels = rs["spec"]["template"]["metadata"]["labels"].as_object();
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            template_labels.is_none_or(|want| {
                want.iter()
                    .all(|(k, v)| p["metadata"]["labels"].get(k) == Some(v))
            })
        })
        .count();
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let mut status = Map::new();
    status.insert("replicas".into(), json!(pods.len()));
    put_nonzero(&mut status, "fullyLabeledReplicas", fully_labeled as i64);
    put_nonzero(&mut status, "readyReplicas", ready as i64);
    put_nonzero(&mut status, "availableReplicas", ready as i64);
    status.insert(
        "observedGeneration".into(),
        rs["metadata"]["generation"].clone(),
    );
    let retry = failure.is_some();
    if let Some(message) = failure {
        let cond = Cond {
            kind: "ReplicaFailure",
            status: "True",
            reason: "FailedCreate",
            message,
        };
        status.insert(
            "conditions".into(),
            conditions(&rs["status"]["conditions"], &[cond], CondStyle::Transition),
        );
    }
    write_status(tx, &res, key, Value::Object(status), manager)?;
    Ok(match (retry, more) {
        (true, _) => Outcome::after(std::time::Duration::from_secs(10)),
        (false, true) => Outcome::after(std::time::Duration::ZERO),
        (false, false) => Outcome::done(),
    })
}
