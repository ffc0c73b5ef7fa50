//! The simulated kubelet, after the scheduler. No image runs: containers are reported as
//! started.
//!
//! A pending pod is bound to the node `sandbox` when the node has room for it (see
//! `scheduler`: 110 pods) and reported Running at once: a stable pod IP in 10.42.0.0/16, host
//! IP 127.0.0.1, every condition True and each container running and ready. A pod whose `restartPolicy` is `Never` or `OnFailure` (a job's pod) then exits:
//! phase Succeeded, its containers terminated with exit code 0.
//!
//! Annotations on a pod (or a pod template) script other behaviour:
//!
//! - `sandbox.kipper.run/fail: "true"`: the containers fail. With `restartPolicy: Always` they
//!   crash-loop (waiting in CrashLoopBackOff, not ready, restartCount growing with the real
//!   back-off: 10 s doubling up to 5 min); otherwise the pod ends Failed with exit code 1
//!   (reason Error).
//! - `sandbox.kipper.run/start-delay-ms: "N"`: the pod stays Pending (ContainerCreating) for
//!   N milliseconds before it runs.
//! - `sandbox.kipper.run/run-ms: "N"`: a run-to-completion pod runs N milliseconds before it
//!   exits (default 0).
//! - `sandbox.kipper.run/forward: "5432=127.0.0.1:15432,…"`: what stands for the pod's ports
//!   when a client port-forwards to it (see `api::portforward::backend`).
//! - `sandbox.kipper.run/exec: host` and `sandbox.kipper.run/exec-env: "NAME=VALUE,…"`: exec in
//!   the pod runs the command on this machine, when the sandbox allows it (see `api::exec::host`).
//!
//! A pod marked for deletion (it has finalizers, or it would be gone already) gets its
//! containers reported as terminated and is no longer ready.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::{
    Cond, CondStyle, annotation, conditions, is_deleting, phase, resource, uid, write_status,
};
use super::{Ctx, Outcome, events, scheduler};
use crate::admission::fnv;
use crate::error::ApiResult;
use crate::ops;
use crate::store::{ObjKey, Tx};

pub const FAIL_ANNOTATION: &str = "sandbox.kipper.run/fail";
pub const START_DELAY_ANNOTATION: &str = "sandbox.kipper.run/start-delay-ms";
pub const RUN_ANNOTATION: &str = "sandbox.kipper.run/run-ms";

pub(crate) const MANAGER: &str = "kip-sandbox-kubelet";
pub const NODE: &str = "sandbox";
/// The component named in the kubelet's events.
pub const KUBELET: &str = "kubelet";

fn millis(pod: &Value, annotation_name: &str) -> Duration {
    let ms = annotation(pod, annotation_name)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_millis(ms)
}

fn remaining(since: Instant, wait: Duration) -> Option<Duration> {
    wait.checked_sub(since.elapsed()).filter(|d| !d.is_zero())
}

/// Back-off before the restart after `restarts` restarts: 10 s doubling, at most 5 minutes.
fn backoff(restarts: i64) -> Duration {
    Duration::from_secs((10u64 << restarts.clamp(0, 5) as u32).min(300))
}

/// A stable address for the pod in 10.42.0.0/16 (k3s's pod range).
pub fn pod_ip(ns: &str, name: &str) -> String {
    let h = fnv(&format!("{ns}/{name}"));
    format!("10.42.{}.{}", (h >> 8) % 256, 1 + h % 254)
}

pub fn reconcile(tx: &mut Tx, ctx: &Ctx, key: &ObjKey, pod: Arc<Value>) -> ApiResult<Outcome> {
    let res = resource(tx, "", "pods")?;
    if is_deleting(&pod) {
        let status = terminated_status(&pod, 0, "Completed", None);
        write_status(tx, &res, key, status, MANAGER)?;
        return Ok(Outcome::done());
    }
    let phase = phase(&pod).to_string();
    if matches!(phase.as_str(), "Succeeded" | "Failed") {
        ctx.forget(key);
        return Ok(Outcome::done());
    }
    let mut pod = pod;
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
        match scheduler::schedule(tx, &res, key, &pod)? {
            Some(bound) => pod = bound,
            // It waits for room; `scheduler::waiting` brings it back.
            None => return Ok(Outcome::done()),
        }
    }
    if ctx.real_pods && !crate::runtime::simulated(&pod) {
        // The runtime runs it (or hands it back with the condition that says why).
        return Ok(Outcome::done());
    }
    let pod_uid = uid(&pod).to_string();
    let fail = annotation(&pod, FAIL_ANNOTATION) == Some("true");
    let completes = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always") != "Always";
    if phase != "Running" {
        let seen = ctx.since(key, &pod_uid, "seen");
        if let Some(wait) = remaining(seen, millis(&pod, START_DELAY_ANNOTATION)) {
            write_status(tx, &res, key, pending_status(&pod), MANAGER)?;
            return Ok(Outcome::after(wait));
        }
        let started = ops::now();
        ctx.reset(key, &pod_uid, "running");
        container_events(tx, &pod, fail && !completes);
        if fail && !completes {
            write_status(tx, &res, key, crashloop_status(&pod, &started, 0), MANAGER)?;
            return Ok(Outcome::after(backoff(0)));
        }
        write_status(tx, &res, key, running_status(&pod, &started), MANAGER)?;
        return Ok(match completes {
            true => Outcome::after(millis(&pod, RUN_ANNOTATION).max(Duration::from_millis(1))),
            false => Outcome::done(),
        });
    }
    let started = pod["status"]["startTime"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(ops::now);
    if completes {
        let running = ctx.since(key, &pod_uid, "running");
        if let Some(wait) = remaining(running, millis(&pod, RUN_ANNOTATION)) {
            return Ok(Outcome::after(wait));
        }
        let status = match fail {
            true => terminated_status(&pod, 1, "Error", Some("Failed")),
            false => terminated_status(&pod, 0, "Completed", Some("Succeeded")),
        };
        write_status(tx, &res, key, status, MANAGER)?;
        return Ok(Outcome::done());
    }
    if fail {
        let restarts = pod["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0);
        let last = ctx.since(key, &pod_uid, "restart");
        if let Some(wait) = remaining(last, backoff(restarts)) {
            // Keep the status right (the annotation may have just been added).
            write_status(
                tx,
                &res,
                key,
                crashloop_status(&pod, &started, restarts),
                MANAGER,
            )?;
            return Ok(Outcome::after(wait));
        }
        ctx.reset(key, &pod_uid, "restart");
        container_events(tx, &pod, true);
        let status = crashloop_status(&pod, &started, restarts + 1);
        write_status(tx, &res, key, status, MANAGER)?;
        return Ok(Outcome::after(backoff(restarts + 1)));
    }
    // Running: keep the status in step with the spec (a container image can change).
    write_status(tx, &res, key, running_status(&pod, &started), MANAGER)?;
    Ok(Outcome::done())
}

/// What the kubelet says when it starts the containers (and when they crash).
fn container_events(tx: &mut Tx, pod: &Value, crashed: bool) {
    for c in containers(pod) {
        let name = c["name"].as_str().unwrap_or("");
        let image = c["image"].as_str().unwrap_or("");
        let at = format!("spec.containers{{{name}}}");
        let said = [
            events::normal(
                KUBELET,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            ),
            events::normal(KUBELET, "Created", format!("Created container: {name}")),
            events::normal(KUBELET, "Started", format!("Started container {name}")),
        ];
        for event in said {
            events::record(tx, pod, event.at(at.clone()));
        }
        if crashed {
            let message = format!(
                "Back-off restarting failed container {name} in pod {}_{}({})",
                pod["metadata"]["name"].as_str().unwrap_or(""),
                pod["metadata"]["namespace"].as_str().unwrap_or(""),
                uid(pod)
            );
            events::record(
                tx,
                pod,
                events::warning(KUBELET, "BackOff", message).at(at.clone()),
            );
        }
    }
}

fn containers(pod: &Value) -> &[Value] {
    pod["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn container_id(pod: &Value, name: &str) -> String {
    format!("sandbox://{:016x}", fnv(&format!("{}/{name}", uid(pod))))
}

fn base_status(pod: &Value, phase: &str, started: &str) -> Value {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let ip = pod_ip(ns, pod["metadata"]["name"].as_str().unwrap_or(""));
    let qos = pod["status"]["qosClass"].clone();
    let mut status = json!({
        "phase": phase,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
    });
    if !qos.is_null() {
        status["qosClass"] = qos;
    }
    status
}

fn pod_conditions(
    pod: &Value,
    started: bool,
    ready: bool,
    reason: &str,
    unready: &[&str],
) -> Value {
    let t = |b: bool| if b { "True" } else { "False" };
    let message = if ready || reason != "ContainersNotReady" {
        String::new()
    } else {
        format!("containers with unready status: [{}]", unready.join(" "))
    };
    let (r, m) = if ready {
        ("", String::new())
    } else {
        (reason, message)
    };
    let wanted = [
        Cond {
            kind: "PodReadyToStartContainers",
            status: t(started),
            reason: "",
            message: String::new(),
        },
        Cond {
            kind: "Initialized",
            status: "True",
            reason: "",
            message: String::new(),
        },
        Cond {
            kind: "Ready",
            status: t(ready),
            reason: r,
            message: m.clone(),
        },
        Cond {
            kind: "ContainersReady",
            status: t(ready),
            reason: r,
            message: m,
        },
        Cond {
            kind: "PodScheduled",
            status: "True",
            reason: "",
            message: String::new(),
        },
    ];
    let mut made = conditions(&pod["status"]["conditions"], &wanted, CondStyle::Probe);
    // Why the runtime left the pod simulated stays said.
    let simulated = pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == crate::runtime::SIMULATED));
    if let (Some(list), Some(simulated)) = (made.as_array_mut(), simulated) {
        list.push(simulated.clone());
    }
    made
}

fn container_status(
    pod: &Value,
    c: &Value,
    state: Value,
    ready: bool,
    restarts: i64,
    last: Value,
) -> Value {
    let name = c["name"].as_str().unwrap_or("");
    let image = c["image"].as_str().unwrap_or("");
    let running = state.get("running").is_some();
    let last = if last.is_null() { json!({}) } else { last };
    json!({
        "name": name,
        "image": image,
        "imageID": format!("sandbox://{image}"),
        "containerID": container_id(pod, name),
        "ready": ready,
        "started": running,
        "restartCount": restarts,
        "state": state,
        "lastState": last,
    })
}

/// Init containers, which all completed before the app containers started.
fn init_statuses(pod: &Value, started: &str) -> Option<Value> {
    let inits = pod["spec"]["initContainers"].as_array()?;
    Some(Value::Array(
        inits
            .iter()
            .map(|c| {
                let state = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started, "containerID": container_id(pod, c["name"].as_str().unwrap_or(""))}});
                let mut s = container_status(pod, c, state, true, 0, json!({}));
                s["started"] = json!(false);
                s
            })
            .collect(),
    ))
}

fn pending_status(pod: &Value) -> Value {
    let names: Vec<&str> = containers(pod)
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .map(|c| {
            let mut s = container_status(
                pod,
                c,
                json!({"waiting": {"reason": "ContainerCreating"}}),
                false,
                0,
                json!({}),
            );
            if let Some(m) = s.as_object_mut() {
                m.remove("containerID");
            }
            s["imageID"] = json!("");
            s
        })
        .collect();
    let mut status = json!({
        "phase": "Pending",
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "startTime": pod["status"]["startTime"].as_str().map(String::from).unwrap_or_else(ops::now),
        "containerStatuses": statuses,
    });
    status["conditions"] = pod_conditions(pod, false, false, "ContainersNotReady", &names);
    if !pod["status"]["qosClass"].is_null() {
        status["qosClass"] = pod["status"]["qosClass"].clone();
    }
    status
}

fn running_status(pod: &Value, started: &str) -> Value {
    let mut status = base_status(pod, "Running", started);
    status["conditions"] = pod_conditions(pod, true, true, "", &[]);
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .map(|c| {
            container_status(
                pod,
                c,
                json!({"running": {"startedAt": started}}),
                true,
                0,
                json!({}),
            )
        })
        .collect();
    status["containerStatuses"] = json!(statuses);
    if let Some(inits) = init_statuses(pod, started) {
        status["initContainerStatuses"] = inits;
    }
    status
}

fn crashloop_status(pod: &Value, started: &str, restarts: i64) -> Value {
    let mut status = base_status(pod, "Running", started);
    let names: Vec<&str> = containers(pod)
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    status["conditions"] = pod_conditions(pod, true, false, "ContainersNotReady", &names);
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    // The last exit: from the previous status when nothing restarted since.
    let old = &pod["status"]["containerStatuses"];
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c["name"].as_str().unwrap_or("");
            let same = old[i]["restartCount"].as_i64() == Some(restarts)
                && old[i]["lastState"]["terminated"].is_object();
            let last = if same {
                old[i]["lastState"].clone()
            } else {
                let now = ops::now();
                json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now, "containerID": container_id(pod, name)}})
            };
            let waiting = json!({"waiting": {
                "reason": "CrashLoopBackOff",
                "message": format!("back-off {}s restarting failed container={name} pod={pod_name}_{ns}({})", backoff(restarts).as_secs(), uid(pod)),
            }});
            container_status(pod, c, waiting, false, restarts, last)
        })
        .collect();
    status["containerStatuses"] = json!(statuses);
    if let Some(inits) = init_statuses(pod, started) {
        status["initContainerStatuses"] = inits;
    }
    status
}

/// Every container terminated; the phase is `phase` when given, else unchanged.
fn terminated_status(pod: &Value, exit: i64, reason: &str, phase: Option<&str>) -> Value {
    let old = &pod["status"];
    let all_done = old["containerStatuses"]
        .as_array()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|c| c["state"]["terminated"].is_object()));
    if all_done && phase.is_none_or(|p| old["phase"].as_str() == Some(p)) {
        return old.clone();
    }
    let now = ops::now();
    let started = old["startTime"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| now.clone());
    let phase = phase
        .map(String::from)
        .unwrap_or_else(|| old["phase"].as_str().unwrap_or("Pending").to_string());
    let mut status = if old["podIP"].is_string() || phase != "Pending" {
        base_status(pod, &phase, &started)
    } else {
        let mut s = old.clone();
        s["phase"] = json!(phase);
        s
    };
    let terminal = if phase == "Succeeded" {
        "PodCompleted"
    } else if phase == "Failed" {
        "PodFailed"
    } else {
        "ContainersNotReady"
    };
    let names: Vec<&str> = containers(pod)
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    status["conditions"] = pod_conditions(pod, true, false, terminal, &names);
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c["name"].as_str().unwrap_or("");
            let restarts = old["containerStatuses"][i]["restartCount"]
                .as_i64()
                .unwrap_or(0);
            let state = json!({"terminated": {
                "exitCode": exit,
                "reason": reason,
                "startedAt": started,
                "finishedAt": now,
                "containerID": container_id(pod, name),
            }});
            container_status(
                pod,
                c,
                state,
                false,
                restarts,
                old["containerStatuses"][i]["lastState"].clone(),
            )
        })
        .collect();
    status["containerStatuses"] = json!(statuses);
    if let Some(inits) = init_statuses(pod, &started) {
        status["initContainerStatuses"] = inits;
    }
    status
}
