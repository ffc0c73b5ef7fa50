//! A real pod's status, made from what its containers are doing.

use serde_json::{Value, json};

use crate::controllers::{Cond, CondStyle, conditions};

/// What one container is doing.
#[derive(Debug, Clone)]
pub enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        since: String,
    },
    Terminated {
        code: i64,
        reason: String,
        started: String,
        finished: String,
        /// The termination message (none when empty).
        message: String,
    },
}

impl State {
    pub fn json(&self, container_id: &str) -> Value {
        match self {
            State::Waiting { reason, message } if message.is_empty() => {
                json!({"waiting": {"reason": reason}})
            }
            State::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            State::Running { since } => json!({"running": {"startedAt": since}}),
            State::Terminated {
                code,
                reason,
                started,
                finished,
                message,
            } => {
                let mut t = json!({"terminated": {
                    "exitCode": code, "reason": reason, "startedAt": started,
                    "finishedAt": finished, "containerID": container_id,
                }});
                if !message.is_empty() {
                    t["terminated"]["message"] = json!(message);
                }
                t
            }
        }
    }
}

/// One container's part of the status.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub podman: Option<String>,
    pub state: State,
    pub last: Value,
    pub ready: bool,
    pub restarts: i64,
}

impl Container {
    /// The container of `spec` before it starts, waiting for `reason` (ContainerCreating,
    /// PodInitializing).
    pub fn waiting(spec: &Value, reason: &str) -> Container {
        Container {
            name: spec["name"].as_str().unwrap_or("").to_string(),
            image: spec["image"].as_str().unwrap_or("").to_string(),
            image_id: String::new(),
            podman: None,
            state: State::Waiting {
                reason: reason.into(),
                message: String::new(),
            },
            last: Value::Null,
            ready: false,
            restarts: 0,
        }
    }

    /// Every container of the pod's `field` (initContainers, containers), waiting for `reason`.
    pub fn all_waiting(pod: &Value, field: &str, reason: &str) -> Vec<Container> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| Container::waiting(c, reason))
            .collect()
    }

    fn id(&self) -> String {
        self.podman
            .as_deref()
            .map(|n| format!("podman://{n}"))
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        let id = self.id();
        let mut s = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.ready,
            "started": matches!(self.state, State::Running { .. }),
            "restartCount": self.restarts,
            "state": self.state.json(&id),
            "lastState": if self.last.is_null() { json!({}) } else { self.last.clone() },
        });
        if !id.is_empty() {
            s["containerID"] = json!(id);
        }
        s
    }
}

/// The whole status.
pub struct Pod<'a> {
    pub old: &'a Value,
    pub phase: &'a str,
    pub ip: Option<String>,
    pub started: &'a str,
    pub initialized: bool,
    pub inits: &'a [Container],
    pub containers: &'a [Container],
}

impl Pod<'_> {
    pub fn json(&self) -> Value {
        let ready = self.phase == "Running"
            && !self.containers.is_empty()
            && self.containers.iter().all(|c| c.ready);
        let unready: Vec<&str> = self
            .containers
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.as_str())
            .collect();
        let terminal = match self.phase {
            "Succeeded" => "PodCompleted",
            "Failed" => "PodFailed",
            _ => "ContainersNotReady",
        };
        let (reason, message) = if ready {
            ("", String::new())
        } else if terminal == "ContainersNotReady" {
            (
                terminal,
                format!("containers with unready status: [{}]", unready.join(" ")),
            )
        } else {
            (terminal, String::new())
        };
        let t = |b: bool| if b { "True" } else { "False" };
        let pending_inits: Vec<&str> = self
            .inits
            .iter()
            .filter(|c| !matches!(&c.state, State::Terminated { code: 0, .. }))
            .map(|c| c.name.as_str())
            .collect();
        let init_message = if self.initialized {
            String::new()
        } else {
            format!(
                "containers with incomplete status: [{}]",
                pending_inits.join(" ")
            )
        };
        let wanted = [
            Cond {
                kind: "PodReadyToStartContainers",
                status: t(self.ip.is_some()),
                reason: "",
                message: String::new(),
            },
            Cond {
                kind: "Initialized",
                status: t(self.initialized),
                reason: if self.initialized {
                    ""
                } else {
                    "ContainersNotInitialized"
                },
                message: init_message,
            },
            Cond {
                kind: "Ready",
                status: t(ready),
                reason,
                message: message.clone(),
            },
            Cond {
                kind: "ContainersReady",
                status: t(ready),
                reason,
                message,
            },
            Cond {
                kind: "PodScheduled",
                status: "True",
                reason: "",
                message: String::new(),
            },
        ];
        let mut status = json!({
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.started,
            "conditions": conditions(&self.old["conditions"], &wanted, CondStyle::Probe),
            "containerStatuses": self.containers.iter().map(Container::json).collect::<Vec<_>>(),
        });
        if let Some(ip) = &self.ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if !self.inits.is_empty() {
            status["initContainerStatuses"] =
                json!(self.inits.iter().map(Container::json).collect::<Vec<_>>());
        }
        if !self.old["qosClass"].is_null() {
            status["qosClass"] = self.old["qosClass"].clone();
        }
        status
    }
}
