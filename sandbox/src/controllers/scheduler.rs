//! The simulated scheduler: binds a pod to the node `sandbox` when the node has room for it.
//!
//! The room is the node's `status.allocatable.pods` (110, a kubelet's default `--max-pods`)
//! less the pods bound to it that have not finished; no other resource is considered. A pod
//! that does not fit stays Pending with the condition `PodScheduled=False`, reason
//! `Unschedulable`, and a `FailedScheduling` event, worded as kube-scheduler words them. When a
//! pod on the node finishes or goes (or the node changes), [`waiting`] names the pending pods
//! that fit now, and their reconcile binds them. As in a real cluster, controllers still create
//! every pod they want: they just do not all run.

use std::sync::Arc;

use serde_json::{Value, json};

use super::common::{Cond, CondStyle, conditions, is_deleting, phase, write_main, write_status};
use super::events;
use super::pod::NODE;
use crate::error::ApiResult;
use crate::registry::Resource;
use crate::store::{ObjKey, State, Tx};

/// The pods a node takes when its status does not say: the kubelet's default `--max-pods`.
pub const MAX_PODS: usize = 110;

const MANAGER: &str = "kip-sandbox-scheduler";
const COMPONENT: &str = "default-scheduler";
const NODES: &str = "/nodes";

/// Binds the unbound `pod` to the node if it has room and returns it bound; otherwise records
/// why it stays Pending and returns `None`.
pub fn schedule(
    tx: &mut Tx,
    res: &Resource,
    key: &ObjKey,
    pod: &Arc<Value>,
) -> ApiResult<Option<Arc<Value>>> {
    match room(tx.state()) {
        Ok(free) if free > 0 => {
            let mut bound = (**pod).clone();
            bound["spec"]["nodeName"] = json!(NODE);
            let pod = write_main(tx, res, key, pod, bound, MANAGER)?;
            let message = format!("Successfully assigned {}/{} to {NODE}", key.ns, key.name);
            events::record(tx, &pod, events::normal(COMPONENT, "Scheduled", message));
            Ok(Some(pod))
        }
        Ok(_) => {
            let message = "0/1 nodes are available: 1 Too many pods.".to_string();
            unschedulable(tx, res, key, pod, message)?;
            Ok(None)
        }
        Err(message) => {
            unschedulable(tx, res, key, pod, message.to_string())?;
            Ok(None)
        }
    }
}

/// How many more pods the node takes, or why no pod can be placed at all.
fn room(state: &State) -> Result<usize, &'static str> {
    let node = state
        .get(&ObjKey::new(NODES, "", NODE))
        .ok_or("no nodes available to schedule pods")?;
    Ok(capacity(&node).saturating_sub(state.pods_on_node(NODE)))
}

/// The node's `status.allocatable.pods` (a quantity, so a string, or a number).
pub fn capacity(node: &Value) -> usize {
    let pods = &node["status"]["allocatable"]["pods"];
    pods.as_u64()
        .map(|n| n as usize)
        .or_else(|| pods.as_str()?.trim().parse().ok())
        .unwrap_or(MAX_PODS)
}

/// Pending pods that fit on the node now, as many as it has room for, in key order. Cheap
/// when the node is full, which is when most pods wait.
pub fn waiting(state: &State) -> Vec<ObjKey> {
    let free = room(state).unwrap_or(0);
    if free == 0 {
        return Vec::new();
    }
    state
        .list("/pods", None)
        .filter(|(_, pod)| unbound(pod))
        .take(free)
        .map(|(key, _)| key.clone())
        .collect()
}

/// A pod the scheduler has yet to place.
fn unbound(pod: &Value) -> bool {
    pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        && !is_deleting(pod)
        && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether a change of `obj` (its state before the change in `previous`, if any) may have
/// made room for a pending pod: a bound pod finished or went, or a node changed.
pub fn frees_room(res: &str, deleted: bool, obj: &Value, previous: Option<&Value>) -> bool {
    let takes_room = |pod: &Value| {
        pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
            && !matches!(phase(pod), "Succeeded" | "Failed")
    };
    match res {
        NODES => true,
        "/pods" if deleted => takes_room(obj),
        "/pods" => previous.is_some_and(takes_room) && !takes_room(obj),
        _ => false,
    }
}

/// Marks `pod` Pending and unschedulable for `message`; the event goes with the first report
/// (or a new reason), not with each retry.
fn unschedulable(
    tx: &mut Tx,
    res: &Resource,
    key: &ObjKey,
    pod: &Arc<Value>,
    message: String,
) -> ApiResult<()> {
    let mut status = json!({"phase": "Pending"});
    let cond = Cond {
        kind: "PodScheduled",
        status: "False",
        reason: "Unschedulable",
        message: message.clone(),
    };
    status["conditions"] = conditions(&pod["status"]["conditions"], &[cond], CondStyle::Probe);
    if !pod["status"]["qosClass"].is_null() {
        status["qosClass"] = pod["status"]["qosClass"].clone();
    }
    if pod.get("status") == Some(&status) {
        return Ok(());
    }
    write_status(tx, res, key, status, MANAGER)?;
    events::record(
        tx,
        pod,
        events::warning(COMPONENT, "FailedScheduling", message),
    );
    Ok(())
}

/// The node's pod capacity, which the scheduler reads back from the Node (see `crate::node`).
pub fn node_capacity() -> Value {
    json!({"pods": MAX_PODS.to_string()})
}
