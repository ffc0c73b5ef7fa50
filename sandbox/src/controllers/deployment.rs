//! The Deployment controller.
//!
//! Each pod template gets a ReplicaSet `{deployment}-{hash}` (label `pod-template-hash` on it,
//! its selector and its template) with an increasing `deployment.kubernetes.io/revision`. The
//! new ReplicaSet is scaled to `spec.replicas` at once; the old ones are scaled to 0 once the
//! new one is fully ready (`RollingUpdate`, without surge arithmetic) or before the new one
//! starts (`Recreate`). At most `revisionHistoryLimit` old, empty ReplicaSets are kept. A
//! paused Deployment gets no new ReplicaSet until resumed. ReplicaSets matching the selector
//! that have no controller are adopted.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::common::{
    Cond, CondStyle, adopt_orphans, annotation, conditions, controlled, controller_ref_to, delete,
    int, put_nonzero, resource, salted_template_hash, same_template, uid, write_main, write_part,
    write_status,
};
use super::{Outcome, events};
use crate::error::{ApiError, ApiResult};
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-deployment-controller";
const COMPONENT: &str = "deployment-controller";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

fn revision(rs: &Value) -> i64 {
    annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// An int-or-percent field (`maxSurge`) against `total`, percentages rounded up.
fn int_or_percent(v: &Value, total: i64, default: i64) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(default),
        Value::String(s) => s
            .trim_end_matches('%')
            .parse::<i64>()
            .map(|p| (p * total + 99) / 100)
            .unwrap_or(default),
        _ => default,
    }
}

pub fn reconcile(tx: &mut Tx, key: &ObjKey, d: Arc<Value>) -> ApiResult<Outcome> {
    let res = resource(tx, "apps", "deployments")?;
    let rs_res = resource(tx, "apps", "replicasets")?;
    let want = int(&d["spec"]["replicas"], 1).max(0);
    let template = &d["spec"]["template"];
    let recreate = d["spec"]["strategy"]["type"].as_str() == Some("Recreate");
    let paused = d["spec"]["paused"].as_bool() == Some(true);
    let surge = if recreate {
        0
    } else {
        int_or_percent(&d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], want, 1)
    };
    adopt_orphans(
        tx,
        &rs_res,
        &d,
        &res,
        &d["spec"]["selector"],
        MANAGER,
        |_| true,
    )?;
    let all = controlled(tx, uid(&d), "apps/replicasets");
    let new_idx = all
        .iter()
        .position(|(_, rs)| same_template(&rs["spec"]["template"], template));
    let olds: Vec<&(ObjKey, Arc<Value>)> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, x)| x)
        .collect();
    let max_old_revision = olds.iter().map(|(_, rs)| revision(rs)).max().unwrap_or(0);
    let old_running = olds.iter().any(|(_, rs)| {
        int(&rs["spec"]["replicas"], 0) > 0 || int(&rs["status"]["replicas"], 0) > 0
    });
    let target = if recreate && old_running { 0 } else { want };
    let annotate = |meta: &mut Value, revision: i64| {
        meta["annotations"][REVISION] = json!(revision.to_string());
        meta["annotations"][DESIRED] = json!(want.to_string());
        meta["annotations"][MAX] = json!((want + surge).to_string());
        if let Some(cause) = annotation(&d, CHANGE_CAUSE) {
            meta["annotations"][CHANGE_CAUSE] = json!(cause);
        }
    };
    let new_key = match new_idx {
        Some(i) => {
            let (k, rs) = &all[i];
            let mut updated = (**rs).clone();
            let rev = revision(rs).max(max_old_revision + 1);
            annotate(&mut updated["metadata"], rev);
            updated["spec"]["replicas"] = json!(target);
            write_main(tx, &rs_res, k, rs, updated, MANAGER)?;
            scaled_event(tx, &d, rs, target);
            Some(k.clone())
        }
        None if !paused => {
            let created = create_rs(tx, &d, key, target, |m| annotate(m, max_old_revision + 1))?;
            Some(created)
        }
        None => None,
    };
    let new_rs = new_key.as_ref().and_then(|k| tx.get(k));
    // Old ReplicaSets go to zero once the new one is ready (or at once for Recreate).
    let new_ready = new_rs
        .as_ref()
        .is_some_and(|rs| int(&rs["status"]["readyReplicas"], 0) >= want);
    if !paused && new_rs.is_some() && (recreate || new_ready) {
        for (k, rs) in &olds {
            if int(&rs["spec"]["replicas"], 0) != 0 {
                let mut scaled = (**rs).clone();
                scaled["spec"]["replicas"] = json!(0);
                write_main(tx, &rs_res, k, rs, scaled, MANAGER)?;
                scaled_event(tx, &d, rs, 0);
            }
        }
    }
    cleanup(tx, &d, new_key.as_ref())?;
    if let Some(rs) = &new_rs {
        let mut annotated = (*d).clone();
        annotated["metadata"]["annotations"][REVISION] = json!(revision(rs).to_string());
        // Through `/status`, as the real controller does: on the main resource a new
        // annotation would bump the Deployment's generation.
        write_part(tx, &res, key, &d, annotated, MANAGER, Part::Status)?;
    }
    let (status, requeue) = status(tx, &d, new_key.as_ref(), want, paused);
    write_status(tx, &res, key, status, MANAGER)?;
    Ok(Outcome {
        requeue_after: requeue,
    })
}

fn create_rs(
    tx: &mut Tx,
    d: &Value,
    key: &ObjKey,
    replicas: i64,
    annotate: impl Fn(&mut Value),
) -> ApiResult<ObjKey> {
    let res = resource(tx, "apps", "deployments")?;
    let rs_res = resource(tx, "apps", "replicasets")?;
    let template = &d["spec"]["template"];
    let mut collision = 0u32;
    let (name, hash) = loop {
        let hash = salted_template_hash(template, collision);
        let name = format!("{}-{hash}", key.name);
        if tx
            .get(&ObjKey::new("apps/replicasets", &key.ns, &name))
            .is_none()
        {
            break (name, hash);
        }
        collision += 1;
        if collision > 100 {
            return Err(ApiError::internal("cannot find a free ReplicaSet name"));
        }
    };
    let mut template = template.clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    if let Some(meta) = template["metadata"].as_object_mut() {
        meta.remove("creationTimestamp");
    }
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    let mut meta = json!({
        "name": name,
        "labels": template["metadata"]["labels"].clone(),
        "ownerReferences": [controller_ref_to(&res, d)],
    });
    annotate(&mut meta);
    let mut spec = json!({"replicas": replicas, "selector": selector, "template": template});
    if let Some(min_ready) = d["spec"]["minReadySeconds"].as_i64() {
        spec["minReadySeconds"] = json!(min_ready);
    }
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta, "spec": spec});
    let how = WriteKind::Controller {
        manager: MANAGER,
        part: Part::Main,
    };
    let created = ops::create(tx, &rs_res, &key.ns, rs, how)?;
    if replicas > 0 {
        let message = format!("Scaled up replica set {name} from 0 to {replicas}");
        events::record(
            tx,
            d,
            events::normal(COMPONENT, "ScalingReplicaSet", message),
        );
    }
    Ok(ObjKey::new(
        "apps/replicasets",
        &key.ns,
        created["metadata"]["name"].as_str().unwrap_or(&name),
    ))
}

/// Says that a ReplicaSet was scaled, when it was.
fn scaled_event(tx: &mut Tx, d: &Value, rs: &Value, to: i64) {
    let from = int(&rs["spec"]["replicas"], 0);
    if from == to {
        return;
    }
    let way = if to > from { "up" } else { "down" };
    let message = format!(
        "Scaled {way} replica set {} from {from} to {to}",
        rs["metadata"]["name"].as_str().unwrap_or("")
    );
    events::record(
        tx,
        d,
        events::normal(COMPONENT, "ScalingReplicaSet", message),
    );
}

/// Deletes the oldest empty old ReplicaSets beyond `revisionHistoryLimit`.
fn cleanup(tx: &mut Tx, d: &Value, new_key: Option<&ObjKey>) -> ApiResult<()> {
    let rs_res = resource(tx, "apps", "replicasets")?;
    let limit = int(&d["spec"]["revisionHistoryLimit"], 10).max(0) as usize;
    let mut empty: Vec<(ObjKey, i64)> = controlled(tx, uid(d), "apps/replicasets")
        .into_iter()
        .filter(|(k, rs)| {
            Some(k) != new_key
                && int(&rs["spec"]["replicas"], 0) == 0
                && int(&rs["status"]["replicas"], 0) == 0
                && rs["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|(k, rs)| (k, revision(&rs)))
        .collect();
    if empty.len() <= limit {
        return Ok(());
    }
    empty.sort_by_key(|(_, rev)| *rev);
    let excess = empty.len() - limit;
    for (k, _) in empty.into_iter().take(excess) {
        delete(tx, &rs_res, &k)?;
    }
    Ok(())
}

/// The status, and when to look again for the progress deadline.
fn status(
    tx: &Tx,
    d: &Value,
    new_key: Option<&ObjKey>,
    want: i64,
    paused: bool,
) -> (Value, Option<Duration>) {
    let mut requeue = None;
    let all = controlled(tx, uid(d), "apps/replicasets");
    let sum = |field: &str| -> i64 { all.iter().map(|(_, rs)| int(&rs["status"][field], 0)).sum() };
    let replicas = sum("replicas");
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let total: i64 = all
        .iter()
        .map(|(_, rs)| int(&rs["spec"]["replicas"], 0))
        .sum();
    let new_rs = new_key
        .and_then(|k| all.iter().find(|(key, _)| key == k))
        .map(|(_, rs)| rs);
    let updated = new_rs.map_or(0, |rs| int(&rs["status"]["replicas"], 0));
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        d["metadata"]["generation"].clone(),
    );
    put_nonzero(&mut status, "replicas", replicas);
    put_nonzero(&mut status, "updatedReplicas", updated);
    put_nonzero(&mut status, "readyReplicas", ready);
    put_nonzero(&mut status, "availableReplicas", available);
    put_nonzero(
        &mut status,
        "unavailableReplicas",
        (total.max(want) - available).max(0),
    );
    let available_cond = if available >= want {
        Cond {
            kind: "Available",
            status: "True",
            reason: "MinimumReplicasAvailable",
            message: "Deployment has minimum availability.".into(),
        }
    } else {
        Cond {
            kind: "Available",
            status: "False",
            reason: "MinimumReplicasUnavailable",
            message: "Deployment does not have minimum availability.".into(),
        }
    };
    let rs_name = new_key.map(|k| k.name.as_str()).unwrap_or("");
    let complete = new_rs.is_some() && updated == want && replicas == want && available >= want;
    let progressing = if paused {
        Cond {
            kind: "Progressing",
            status: "Unknown",
            reason: "DeploymentPaused",
            message: "Deployment is paused".into(),
        }
    } else if complete {
        Cond {
            kind: "Progressing",
            status: "True",
            reason: "NewReplicaSetAvailable",
            message: format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        }
    } else {
        rolling(d, rs_name, available, updated, &mut requeue)
    };
    let mut conds = conditions(
        &d["status"]["conditions"],
        &[available_cond, progressing],
        CondStyle::Update,
    );
    // Progress (more pods updated or available) restarts the progress deadline.
    let progressed = available > int(&d["status"]["availableReplicas"], 0)
        || updated > int(&d["status"]["updatedReplicas"], 0);
    if progressed && conds[1]["reason"] == "ReplicaSetUpdated" {
        conds[1]["lastUpdateTime"] = json!(ops::now());
    }
    status.insert("conditions".into(), conds);
    if let Some(c) = d["status"]["collisionCount"].as_i64() {
        status.insert("collisionCount".into(), json!(c));
    }
    (Value::Object(status), requeue)
}

/// The Progressing condition of a rollout under way: ReplicaSetUpdated, or False with
/// ProgressDeadlineExceeded when nothing progressed for `progressDeadlineSeconds`.
fn rolling(
    d: &Value,
    rs_name: &str,
    available: i64,
    updated: i64,
    requeue: &mut Option<Duration>,
) -> Cond<'static> {
    let updating = Cond {
        kind: "Progressing",
        status: "True",
        reason: "ReplicaSetUpdated",
        message: format!("ReplicaSet \"{rs_name}\" is progressing."),
    };
    let Some(deadline) = d["spec"]["progressDeadlineSeconds"].as_i64() else {
        return updating;
    };
    let exceeded = Cond {
        kind: "Progressing",
        status: "False",
        reason: "ProgressDeadlineExceeded",
        message: format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
    };
    let old = &d["status"];
    let progressed =
        available > int(&old["availableReplicas"], 0) || updated > int(&old["updatedReplicas"], 0);
    let previous = old["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"));
    let same = |c: &Cond| {
        previous.is_some_and(|p| p["reason"] == c.reason && p["message"] == c.message.as_str())
    };
    if progressed {
        *requeue = Some(Duration::from_secs(deadline.max(0) as u64 + 1));
        return updating;
    }
    if same(&exceeded) {
        return exceeded;
    }
    let since = previous.filter(|_| same(&updating)).and_then(|p| {
        p["lastUpdateTime"]
            .as_str()?
            .parse::<jiff::Timestamp>()
            .ok()
    });
    let Some(since) = since else {
        *requeue = Some(Duration::from_secs(deadline.max(0) as u64 + 1));
        return updating;
    };
    let waited = jiff::Timestamp::now().as_second() - since.as_second();
    if waited >= deadline {
        return exceeded;
    }
    *requeue = Some(Duration::from_secs((deadline - waited) as u64 + 1));
    updating
}
