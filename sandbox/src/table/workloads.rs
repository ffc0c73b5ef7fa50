//! Printers for pods and the workload controllers.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::printers::{
    Printer, age_cell, at, columns, condition_true, container_cells, format_labels,
    formatted_selector_cell, int, list, name_cell, object, parse_time, replicas, selector_cell,
    since, text,
};

pub(super) fn pod() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            (
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            (
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            ("Age", "string", 0, ""),
            (
                "IP",
                "string",
                1,
                "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            (
                "Node",
                "string",
                1,
                "NodeName indicates in which node this pod is scheduled.",
            ),
            (
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
            ),
            (
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ]),
        cells: pod_cells,
    }
}

/// Running totals while walking a pod's container statuses.
#[derive(Default)]
struct PodTally {
    ready: usize,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

impl PodTally {
    fn count_restarts(&mut self, status: &Value) {
        self.restarts = self.restarts.saturating_add(int(status, &["restartCount"]));
        let finished = parse_time(text(status, &["lastState", "terminated", "finishedAt"]));
        if finished > self.last_restart {
            self.last_restart = finished;
        }
    }
}

fn is_restartable_init(pod: &Value, name: &str) -> bool {
    list(pod, &["spec", "initContainers"])
        .iter()
        .any(|c| text(c, &["name"]) == name && text(c, &["restartPolicy"]) == "Always")
}

/// The reason shown for a container that terminated without one.
fn exit_reason(terminated: &Value, prefix: &str) -> String {
    match (text(terminated, &["reason"]), int(terminated, &["signal"])) {
        ("", 0) => format!("{prefix}ExitCode:{}", int(terminated, &["exitCode"])),
        ("", signal) => format!("{prefix}Signal:{signal}"),
        (reason, _) => format!("{prefix}{reason}"),
    }
}

/// Walks init containers like kubectl's printPod; returns the "Init:..." status if the pod is
/// still initializing.
fn init_status(pod: &Value, all: &mut PodTally, sidecars: &mut PodTally) -> Option<String> {
    let init_count = list(pod, &["spec", "initContainers"]).len();
    for (i, status) in list(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        all.count_restarts(status);
        let restartable = is_restartable_init(pod, text(status, &["name"]));
        if restartable {
            sidecars.count_restarts(status);
        }
        let terminated = at(status, &["state", "terminated"]);
        let waiting = text(status, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if restartable && at(status, &["started"]).and_then(Value::as_bool) == Some(true) {
            if at(status, &["ready"]).and_then(Value::as_bool) == Some(true) {
                sidecars.ready += 1;
            }
            continue;
        }
        return Some(match terminated {
            Some(t) => exit_reason(t, "Init:"),
            None if !waiting.is_empty() && waiting != "PodInitializing" => {
                format!("Init:{waiting}")
            }
            None => format!("Init:{i}/{init_count}"),
        });
    }
    None
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    // The apiserver stores new pods as Pending; read an unset phase the same way.
    let phase = match text(pod, &["status", "phase"]) {
        "" => "Pending",
        p => p,
    };
    let mut reason = match text(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if list(pod, &["status", "conditions"])
        .iter()
        .any(|c| text(c, &["type"]) == "PodScheduled" && text(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }
    let total = list(pod, &["spec", "containers"]).len()
        + list(pod, &["spec", "initContainers"])
            .iter()
            .filter(|c| text(c, &["restartPolicy"]) == "Always")
            .count();

    let mut all = PodTally::default();
    // Restartable init containers (sidecars) keep counting once the pod is initialized.
    let mut tally = PodTally::default();
    let init = init_status(pod, &mut all, &mut tally);
    let initialized = condition_true(pod, &["status", "conditions"], "Initialized");
    if let Some(init_reason) = &init {
        reason = init_reason.clone();
    }
    if init.is_none() || initialized {
        let mut has_running = false;
        for status in list(pod, &["status", "containerStatuses"]).iter().rev() {
            tally.count_restarts(status);
            let waiting = text(status, &["state", "waiting", "reason"]);
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = at(status, &["state", "terminated"]) {
                reason = exit_reason(t, "");
            } else if at(status, &["ready"]).and_then(Value::as_bool) == Some(true)
                && at(status, &["state", "running"]).is_some()
            {
                has_running = true;
                tally.ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, &["status", "conditions"], "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_string();
        }
    } else {
        // Still initializing: every init restart counts, readiness is the sidecars' alone.
        tally = PodTally {
            ready: tally.ready,
            ..all
        };
    }
    if at(pod, &["metadata", "deletionTimestamp"]).is_some() {
        if text(pod, &["status", "reason"]) == "NodeLost" {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }
    let restarts = match tally.last_restart {
        Some(last) if tally.restarts != 0 => format!(
            "{} ({} ago)",
            tally.restarts,
            super::human_duration(now.duration_since(last))
        ),
        _ => tally.restarts.to_string(),
    };
    let mut cells = vec![
        name_cell(pod),
        Value::from(format!("{}/{total}", tally.ready)),
        Value::from(reason),
        Value::from(restarts),
        age_cell(pod, now),
    ];
    cells.extend(pod_wide_cells(pod));
    cells
}

fn pod_wide_cells(pod: &Value) -> [Value; 4] {
    let ip = match list(pod, &["status", "podIPs"]).first() {
        Some(first) => text(first, &["ip"]),
        None => text(pod, &["status", "podIP"]),
    };
    let gates = list(pod, &["spec", "readinessGates"]);
    let readiness = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = list(pod, &["status", "conditions"]);
        let ready = gates
            .iter()
            .filter(|g| {
                let type_ = text(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| text(c, &["type"]) == type_)
                    .is_some_and(|c| text(c, &["status"]) == "True")
            })
            .count();
        format!("{ready}/{}", gates.len())
    };
    let none = |s: &str| Value::from(if s.is_empty() { "<none>" } else { s });
    [
        none(ip),
        none(text(pod, &["spec", "nodeName"])),
        none(text(pod, &["status", "nominatedNodeName"])),
        Value::from(readiness),
    ]
}

/// Row conditions kubectl uses to recognise finished pods.
pub(super) fn pod_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

pub(super) const CONTAINERS_DESCRIPTION: &str = "Names of each container in the template.";
pub(super) const IMAGES_DESCRIPTION: &str = "Images referenced by each container in the template.";
pub(super) const SELECTOR_DESCRIPTION: &str = "Label query over pods that should match the replica count. Must match in order to be controlled. If empty, defaulted to labels on pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

pub(super) fn template_containers(obj: &Value) -> [Value; 2] {
    container_cells(list(obj, &["spec", "template", "spec", "containers"]))
}

pub(super) fn deployment() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Ready", "string", 0, "Number of the pod with ready state"),
            (
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            (
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            ("Age", "string", 0, ""),
            ("Containers", "string", 1, CONTAINERS_DESCRIPTION),
            ("Images", "string", 1, IMAGES_DESCRIPTION),
            ("Selector", "string", 1, SELECTOR_DESCRIPTION),
        ]),
        cells: |d, now| {
            let [containers, images] = template_containers(d);
            vec![
                name_cell(d),
                Value::from(format!(
                    "{}/{}",
                    int(d, &["status", "readyReplicas"]),
                    replicas(d)
                )),
                Value::from(int(d, &["status", "updatedReplicas"])),
                Value::from(int(d, &["status", "availableReplicas"])),
                age_cell(d, now),
                containers,
                images,
                selector_cell(d, &["spec", "selector"]),
            ]
        },
    }
}

pub(super) fn replica_set() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1.",
            ),
            (
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            (
                "Ready",
                "integer",
                0,
                "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition.",
            ),
            ("Age", "string", 0, ""),
            ("Containers", "string", 1, CONTAINERS_DESCRIPTION),
            ("Images", "string", 1, IMAGES_DESCRIPTION),
            ("Selector", "string", 1, SELECTOR_DESCRIPTION),
        ]),
        cells: |rs, now| {
            let [containers, images] = template_containers(rs);
            vec![
                name_cell(rs),
                Value::from(replicas(rs)),
                Value::from(int(rs, &["status", "replicas"])),
                Value::from(int(rs, &["status", "readyReplicas"])),
                age_cell(rs, now),
                containers,
                images,
                formatted_selector_cell(rs, &["spec", "selector"]),
            ]
        },
    }
}

pub(super) fn stateful_set() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Ready", "string", 0, "Number of the pod with ready state"),
            ("Age", "string", 0, ""),
            ("Containers", "string", 1, CONTAINERS_DESCRIPTION),
            ("Images", "string", 1, IMAGES_DESCRIPTION),
        ]),
        cells: |ss, now| {
            let [containers, images] = template_containers(ss);
            vec![
                name_cell(ss),
                Value::from(format!(
                    "{}/{}",
                    int(ss, &["status", "readyReplicas"]),
                    replicas(ss)
                )),
                age_cell(ss, now),
                containers,
                images,
            ]
        },
    }
}

pub(super) fn daemon_set() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Desired",
                "integer",
                0,
                "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
            ),
            (
                "Current",
                "integer",
                0,
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            (
                "Ready",
                "integer",
                0,
                "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
            ),
            (
                "Up-to-date",
                "integer",
                0,
                "The total number of nodes that are running updated daemon pod",
            ),
            (
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
            ),
            (
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node.",
            ),
            ("Age", "string", 0, ""),
            ("Containers", "string", 1, CONTAINERS_DESCRIPTION),
            ("Images", "string", 1, IMAGES_DESCRIPTION),
            ("Selector", "string", 1, SELECTOR_DESCRIPTION),
        ]),
        cells: |ds, now| {
            let [containers, images] = template_containers(ds);
            let status = |field: &str| Value::from(int(ds, &["status", field]));
            vec![
                name_cell(ds),
                status("desiredNumberScheduled"),
                status("currentNumberScheduled"),
                status("numberReady"),
                status("updatedNumberScheduled"),
                status("numberAvailable"),
                Value::from(format_labels(object(
                    ds,
                    &["spec", "template", "spec", "nodeSelector"],
                ))),
                age_cell(ds, now),
                containers,
                images,
                formatted_selector_cell(ds, &["spec", "selector"]),
            ]
        },
    }
}

pub(super) fn job() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Status", "string", 0, "Status of the job."),
            (
                "Completions",
                "string",
                0,
                "The desired number of successfully finished pods the job should be run with.",
            ),
            (
                "Duration",
                "string",
                0,
                "Time required to complete the job.",
            ),
            ("Age", "string", 0, ""),
            ("Containers", "string", 1, CONTAINERS_DESCRIPTION),
            ("Images", "string", 1, IMAGES_DESCRIPTION),
            (
                "Selector",
                "string",
                1,
                "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
            ),
        ]),
        cells: job_cells,
    }
}

fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = match at(job, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{}", super::printers::as_int(c)),
        None => match int(job, &["spec", "parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = parse_time(text(job, &["status", "startTime"]));
    let end = parse_time(text(job, &["status", "completionTime"]));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(_), None) => since(text(job, &["status", "startTime"]), now),
        (Some(start), Some(end)) => super::human_duration(end.duration_since(start)),
    };
    let [containers, images] = template_containers(job);
    vec![
        name_cell(job),
        Value::from(job_status(job)),
        Value::from(completions),
        Value::from(duration),
        age_cell(job, now),
        containers,
        images,
        formatted_selector_cell(job, &["spec", "selector"]),
    ]
}

fn job_status(job: &Value) -> &'static str {
    let has = |type_: &str| condition_true(job, &["status", "conditions"], type_);
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if at(job, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}
