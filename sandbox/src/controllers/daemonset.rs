//! The DaemonSet controller: one pod `{ds}-{5 random characters}` per Ready node whose labels
//! satisfy the template's `nodeSelector` (the sandbox has one node), pinned to it by node
//! affinity as the real controller does, with the tolerations daemon pods get. A template
//! change under RollingUpdate replaces each node's old pod (the old one goes first, as with
//! `maxSurge: 0`); under OnDelete old pods stay until deleted. Status reports desired,
//! current, ready, updated and available counts and the observed generation, which is what
//! `kubectl rollout status ds/x` waits on.
//!
//! Simplified: no ControllerRevisions (so no `kubectl rollout undo`); the revision is a hash
//! of the template; minReadySeconds is not waited for.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::common::{
    condition_true, controlled, controller_ref_to, delete, fresh_name, pod_active,
    pod_from_template, pod_ready, put_nonzero, resource, str_of, template_hash, uid, write_status,
};
use super::{BURST, Outcome, events};
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-daemonset-controller";
const COMPONENT: &str = "daemonset-controller";
const HASH: &str = "controller-revision-hash";

/// The tolerations the controller adds to every daemon pod, so it runs where others may not.
const TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

pub fn reconcile(tx: &mut Tx, key: &ObjKey, ds: Arc<Value>) -> ApiResult<Outcome> {
    let res = resource(tx, "apps", "daemonsets")?;
    let pods_res = resource(tx, "", "pods")?;
    let template = &ds["spec"]["template"];
    let hash = template_hash(template);
    let rolling = ds["spec"]["updateStrategy"]["type"].as_str() != Some("OnDelete");
    let nodes = eligible_nodes(tx, template);
    let mut by_node: BTreeMap<String, Vec<(ObjKey, Arc<Value>)>> = BTreeMap::new();
    for (k, pod) in controlled(tx, uid(&ds), "/pods") {
        if pod_active(&pod) {
            by_node.entry(node_of(&pod)).or_default().push((k, pod));
        }
    }
    for pods in by_node.values_mut() {
        // The pod of the current template is the one a node keeps.
        pods.sort_by_key(|(_, p)| p["metadata"]["labels"][HASH].as_str() != Some(hash.as_str()));
    }
    let mut budget = BURST;
    for (node, pods) in &by_node {
        // Extra pods, pods on nodes that should not run one, and old pods under RollingUpdate.
        let keep_one = nodes.contains(node);
        for (i, (k, pod)) in pods.iter().enumerate() {
            let old = pod["metadata"]["labels"][HASH].as_str() != Some(hash.as_str());
            if budget > 0 && (!keep_one || i > 0 || (rolling && old)) {
                budget -= 1;
                delete(tx, &pods_res, k)?;
                let message = format!("Deleted pod: {}", k.name);
                events::record(
                    tx,
                    &ds,
                    events::normal(COMPONENT, "SuccessfulDelete", message),
                );
            }
        }
    }
    for node in &nodes {
        // A node whose pod was just deleted gets its new one once the deletion is seen.
        if by_node.contains_key(node) || budget == 0 {
            continue;
        }
        budget -= 1;
        let prefix = format!("{}-", key.name);
        let name = fresh_name(tx, "/pods", &key.ns, &prefix);
        let pod = daemon_pod(&ds, &res, &name, &prefix, node, &hash);
        let how = WriteKind::Controller {
            manager: MANAGER,
            part: Part::Main,
        };
        ops::create(tx, &pods_res, &key.ns, pod, how)?;
        let message = format!("Created pod: {name}");
        events::record(
            tx,
            &ds,
            events::normal(COMPONENT, "SuccessfulCreate", message),
        );
    }
    let status = status(tx, &ds, &nodes, &hash);
    write_status(tx, &res, key, status, MANAGER)?;
    Ok(if budget == 0 {
        Outcome::after(std::time::Duration::ZERO)
    } else {
        Outcome::done()
    })
}

/// Ready nodes whose labels satisfy the template's nodeSelector.
fn eligible_nodes(tx: &Tx, template: &Value) -> Vec<String> {
    let selector = template["spec"]["nodeSelector"].as_object();
    tx.state()
        .list("/nodes", None)
        .filter(|(_, n)| condition_true(n, "Ready") && n["spec"]["unschedulable"] != true)
        .filter(|(_, n)| {
            selector.is_none_or(|s| {
                s.iter()
                    .all(|(k, v)| n["metadata"]["labels"].get(k) == Some(v))
            })
        })
        .map(|(k, _)| k.name.clone())
        .collect()
}

/// The node a daemon pod is for: where it runs, or where its affinity pins it.
fn node_of(pod: &Value) -> String {
    match str_of(pod, "/spec/nodeName") {
        "" => str_of(
            pod,
            "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0",
        )
        .to_string(),
        node => node.to_string(),
    }
}

fn daemon_pod(
    ds: &Value,
    res: &crate::registry::Resource,
    name: &str,
    prefix: &str,
    node: &str,
    hash: &str,
) -> Value {
    let owner = controller_ref_to(res, ds);
    let mut pod = pod_from_template(&ds["spec"]["template"], name, prefix, owner);
    let labels = &mut pod["metadata"]["labels"];
    labels[HASH] = json!(hash);
    labels["pod-template-generation"] = json!(ds["metadata"]["generation"].to_string());
    pod["spec"]["affinity"]["nodeAffinity"] = json!({
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]},
        ]},
    });
    let mut tolerations = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (key, effect) in TOLERATIONS {
        if !tolerations.iter().any(|t| t["key"] == *key) {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
    pod["spec"]["tolerations"] = json!(tolerations);
    pod
}

fn status(tx: &Tx, ds: &Value, nodes: &[String], hash: &str) -> Value {
    let pods: Vec<Arc<Value>> = controlled(tx, uid(ds), "/pods")
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| pod_active(p))
        .collect();
    let on = |node: &String, extra: &dyn Fn(&Value) -> bool| {
        pods.iter().any(|p| node_of(p) == *node && extra(p))
    };
    let count = |extra: &dyn Fn(&Value) -> bool| nodes.iter().filter(|n| on(n, extra)).count();
    let current = count(&|_| true);
    let ready = count(&|p| pod_ready(p));
    let updated = count(&|p| p["metadata"]["labels"][HASH] == hash);
    let misscheduled = pods.iter().filter(|p| !nodes.contains(&node_of(p))).count();
    let mut status = Map::new();
    status.insert("currentNumberScheduled".into(), json!(current));
    status.insert("desiredNumberScheduled".into(), json!(nodes.len()));
    status.insert("numberMisscheduled".into(), json!(misscheduled));
    status.insert("numberReady".into(), json!(ready));
    status.insert(
        "observedGeneration".into(),
        ds["metadata"]["generation"].clone(),
    );
    put_nonzero(&mut status, "updatedNumberScheduled", updated as i64);
    put_nonzero(&mut status, "numberAvailable", ready as i64);
    put_nonzero(
        &mut status,
        "numberUnavailable",
        nodes.len().saturating_sub(ready) as i64,
    );
    Value::Object(status)
}
