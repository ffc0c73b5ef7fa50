//! One pod's life as podman containers: images, network, volumes, init containers in order,
//! then the containers with their restart policy, back-off and probes, until the pod is
//! deleted. Every change is written to the pod's status as the kubelet would.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::status::{Container, State};
use super::{
    Observed, Runtime, SANDBOX_LABEL, SIMULATED, Updates, all_containers, images, podman, probe,
    record_events, spec, str_at, volumes, write_status,
};
use crate::controllers::{KUBELET, events, write_pod_status};
use crate::ops;
use crate::store::Store;

/// The longest a container waits before its next restart.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long without failing starts its back-off over.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// Grace given to containers when their pod goes; more only delays the sandbox.
const MAX_GRACE: u64 = 10;

/// What a container's helper tasks report.
enum Report {
    Exited {
        index: usize,
        incarnation: i64,
        code: i64,
        oom: bool,
        started: String,
        finished: String,
    },
    RestartDue {
        index: usize,
        incarnation: i64,
    },
    /// Creating the container failed; try again.
    Retry {
        index: usize,
        incarnation: i64,
    },
    Probe {
        index: usize,
        incarnation: i64,
        kind: Kind,
        result: Result<(), String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Startup,
    Readiness,
    Liveness,
}

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Kind::Startup => "startupProbe",
            Kind::Readiness => "readinessProbe",
            Kind::Liveness => "livenessProbe",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Readiness => "Readiness",
            Kind::Liveness => "Liveness",
        }
    }
}

/// One container and what the kubelet tracks of it.
struct Slot {
    spec: Value,
    status: Container,
    /// When the current incarnation started, for the back-off reset.
    since: Option<Instant>,
    /// Consecutive probe results, by kind: (successes, failures).
    counts: [(u32, u32); 3],
    started_ok: bool,
    backoff: Duration,
    /// The incarnation that runs now; a probe of an earlier one stops.
    incarnation: Arc<AtomicI64>,
    /// The cgroup that holds its memory limit, where the sandbox keeps one (see `memory`).
    limit: Option<Arc<super::memory::Limit>>,
}

impl Slot {
    fn new(spec: &Value, image_id: String) -> Slot {
        Slot {
            spec: spec.clone(),
            status: Container {
                image_id,
                ..Container::waiting(spec, "ContainerCreating")
            },
            since: None,
            counts: [(0, 0); 3],
            started_ok: false,
            backoff: Duration::ZERO,
            incarnation: Arc::default(),
            limit: None,
        }
    }
}

struct Worker {
    runtime: Arc<Runtime>,
    store: Store,
    uid: String,
    pod: Arc<Value>,
    podman_pod: String,
    dir: PathBuf,
    ip: String,
    folders: volumes::Folders,
    started: String,
    initialized: bool,
    phase: &'static str,
    inits: Vec<Slot>,
    containers: Vec<Slot>,
    reports: mpsc::UnboundedSender<Report>,
}

/// Runs the pod `uid` until it is deleted or ends; hands it back to the simulated kubelet when
/// its images cannot be had.
pub async fn run(runtime: Arc<Runtime>, store: Store, uid: String, mut updates: Updates) {
    let Some(pod) = updates.borrow_and_update().clone() else {
        return;
    };
    let mut image_ids = Vec::new();
    let specs: Vec<Value> = all_containers(&pod).cloned().collect();
    for c in &specs {
        let image = c["image"].as_str().unwrap_or("");
        match images::resolve(&runtime, image).await {
            Ok(id) => image_ids.push(id),
            Err(why) => return hand_back(&store, &pod, "ImageNotAvailable", &why).await,
        }
    }
    let ns = str_at(&pod, "/metadata/namespace").to_string();
    let name = str_at(&pod, "/metadata/name").to_string();
    let (reports, mut inbox) = mpsc::unbounded_channel();
    let short = &uid[..uid.len().min(8)];
    let inits: Vec<Slot> = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(image_ids.iter())
        .map(|(c, id)| Slot::new(c, id.clone()))
        .collect();
    let containers: Vec<Slot> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(image_ids.iter().skip(inits.len()))
        .map(|(c, id)| Slot::new(c, id.clone()))
        .collect();
    let mut w = Worker {
        dir: runtime.sandbox_dir.join("pods").join(&uid),
        podman_pod: format!("k8s_{name}_{ns}_{short}"),
        runtime,
        store,
        uid,
        started: pod["status"]["startTime"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(ops::now),
        pod,
        ip: String::new(),
        folders: volumes::Folders::new(),
        initialized: false,
        phase: "Pending",
        inits,
        containers,
        reports,
    };
    if w.set_up(&mut updates).await {
        w.life(&mut updates, &mut inbox).await;
    }
    w.tear_down().await;
}

/// Marks the pod simulated, with a warning Event saying why; the simulated kubelet takes over.
async fn hand_back(store: &Store, pod: &Value, reason: &'static str, why: &str) {
    let message = format!("{why}; the pod is simulated (no container runs)");
    let pod = pod.clone();
    let _ = store
        .write(move |tx| {
            let Some(current) = crate::controllers::current_pod(tx, &pod) else {
                return Ok(());
            };
            let mut status = current["status"].clone();
            if !status.is_object() {
                status = json!({"phase": "Pending"});
            }
            let mut conds: Vec<Value> =
                status["conditions"].as_array().cloned().unwrap_or_default();
            conds.retain(|c| c["type"] != SIMULATED);
            conds.push(json!({
                "type": SIMULATED, "status": "True", "reason": reason, "message": message,
                "lastProbeTime": null, "lastTransitionTime": ops::now(),
            }));
            status["conditions"] = json!(conds);
            events::record(
                tx,
                &current,
                events::warning(KUBELET, reason, message.clone()),
            );
            write_pod_status(tx, &current, status)
        })
        .await;
}

impl Worker {
    fn labels(&self) -> Vec<String> {
        vec![
            format!("{SANDBOX_LABEL}={}", self.runtime.owner()),
            format!("kipper.run/pod-uid={}", self.uid),
        ]
    }

    /// Volumes, the podman pod and its network. False when the pod went meanwhile.
    async fn set_up(&mut self, updates: &mut Updates) -> bool {
        loop {
            let prepared = std::fs::create_dir_all(&self.dir)
                .map_err(|e| format!("cannot make {}: {e}", self.dir.display()))
                .and_then(|()| {
                    volumes::prepare(&self.store, &self.runtime.sandbox_dir, &self.dir, &self.pod)
                });
            match prepared {
                Ok(folders) => {
                    self.folders = folders;
                    break;
                }
                Err(why) => {
                    self.event(
                        false,
                        "FailedMount",
                        format!("MountVolume.SetUp failed: {why}"),
                        None,
                    )
                    .await;
                    self.write().await;
                    if !self.wait_or_gone(updates, Duration::from_secs(2)).await {
                        return false;
                    }
                }
            }
        }
        let gateway = self.runtime.network.gateway().to_string();
        let ns = str_at(&self.pod, "/metadata/namespace").to_string();
        let hostname = str_at(&self.pod, "/metadata/name").to_string();
        let mut args: Vec<String> = [
            "pod",
            "create",
            "--name",
            &self.podman_pod,
            "--network",
            &self.runtime.network.name,
            "--hostname",
            &hostname,
            "--dns",
            &gateway,
            "--dns-search",
            &format!("{ns}.svc.cluster.local"),
            "--dns-search",
            "svc.cluster.local",
            "--dns-search",
            "cluster.local",
            "--dns-option",
            "ndots:5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for label in self.labels() {
            args.extend(["--label".into(), label]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut delay = Duration::from_secs(2);
        loop {
            match self.make_sandbox(&args).await {
                Ok(ip) => {
                    self.ip = ip.to_string();
                    let (ns, name) = (ns.clone(), hostname.clone());
                    self.runtime.register(&self.uid, &ns, &name, ip);
                    break;
                }
                Err(why) => {
                    // As the kubelet does: the pod stays Pending and the sandbox is tried again.
                    let _ = podman::run(
                        &self.runtime.containers,
                        &["pod", "rm", "-f", "-t", "0", &self.podman_pod],
                    )
                    .await;
                    self.event(
                        false,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {why}"),
                        None,
                    )
                    .await;
                    self.write().await;
                    if !self.wait_or_gone(updates, delay).await {
                        return false;
                    }
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
            }
        }
        self.write().await;
        true
    }

    /// Creates and starts the podman pod (its network namespace), and the Services' DNS and
    /// ClusterIPs with the first one; the address podman's IPAM gave it.
    async fn make_sandbox(&self, create: &[&str]) -> Result<std::net::Ipv4Addr, String> {
        let containers = &self.runtime.containers;
        podman::run(containers, create).await?;
        podman::run(containers, &["pod", "start", &self.podman_pod]).await?;
        let infra = podman::run(
            containers,
            &[
                "pod",
                "inspect",
                &self.podman_pod,
                "--format",
                "{{.InfraContainerID}}",
            ],
        )
        .await?;
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.runtime.network.name
        );
        let ip = podman::run(containers, &["inspect", infra.trim(), "--format", &format]).await?;
        let ip: std::net::Ipv4Addr = ip.trim().parse().map_err(|_| {
            format!(
                "podman gave the pod no address on {}",
                self.runtime.network.name
            )
        })?;
        if !self.runtime.network.holds(ip) {
            return Err(format!(
                "podman gave the pod {ip}, outside {}",
                self.runtime.network.cidr()
            ));
        }
        self.runtime.ensure_services(&self.store).await?;
        Ok(ip)
    }

    /// Init containers in order, then the containers; follows them until the pod goes or ends.
    async fn life(&mut self, updates: &mut Updates, inbox: &mut mpsc::UnboundedReceiver<Report>) {
        for index in 0..self.inits.len() {
            loop {
                let Some(code) = self.run_init(index, updates).await else {
                    return;
                };
                if code == 0 {
                    break;
                }
                if self.restart_policy() == "Never" {
                    self.phase = "Failed";
                    self.write().await;
                    return self.wait_until_gone(updates).await;
                }
                let delay = self.next_backoff(true, index);
                let slot = &mut self.inits[index];
                slot.status.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!(
                        "back-off {}s restarting failed container={}",
                        delay.as_secs(),
                        slot.status.name
                    ),
                };
                self.write().await;
                if !self.wait_or_gone(updates, delay).await {
                    return;
                }
            }
        }
        self.initialized = true;
        for index in 0..self.containers.len() {
            self.start_container(index).await;
        }
        self.phase = "Running";
        self.write().await;
        loop {
            tokio::select! {
                changed = updates.changed() => {
                    if !super::take_update(&mut self.pod, changed.is_ok(), updates) {
                        return;
                    }
                }
                Some(report) = inbox.recv() => {
                    if self.on_report(report).await {
                        self.write().await;
                    }
                    if matches!(self.phase, "Succeeded" | "Failed") {
                        return self.wait_until_gone(updates).await;
                    }
                }
            }
        }
    }

    fn restart_policy(&self) -> &str {
        self.pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
    }

    /// The next back-off of a container: none for its first restart, then 10 s doubling.
    fn next_backoff(&mut self, init: bool, index: usize) -> Duration {
        let slot = if init {
            &mut self.inits[index]
        } else {
            &mut self.containers[index]
        };
        if slot.since.is_some_and(|s| s.elapsed() > BACKOFF_RESET) {
            slot.backoff = Duration::ZERO;
        }
        let delay = slot.backoff;
        slot.backoff = if delay.is_zero() {
            Duration::from_secs(10)
        } else {
            (delay * 2).min(MAX_BACKOFF)
        };
        delay
    }

    /// Runs init container `index` to its end; its exit code, or None when the pod went.
    async fn run_init(&mut self, index: usize, updates: &mut Updates) -> Option<i64> {
        let Ok(name) = self.create(true, index).await else {
            // Counted as a failed run: the back-off or the restart policy decide what follows.
            return Some(128);
        };
        self.write().await;
        let wait = wait_exit(self.runtime.clone(), name, self.inits[index].limit.clone());
        let (code, oom, started, finished) = self.unless_gone(updates, wait).await?;
        let slot = &mut self.inits[index];
        let reason = exit_reason(code, oom);
        slot.status.state = State::Terminated {
            code,
            reason: reason.into(),
            started,
            finished,
            message: String::new(),
        };
        slot.status.ready = code == 0;
        Some(code)
    }

    /// Creates and starts a container (a new incarnation after a restart); its podman name.
    async fn create(&mut self, init: bool, index: usize) -> Result<String, ()> {
        let labels = self.labels();
        let slot = if init {
            &self.inits[index]
        } else {
            &self.containers[index]
        };
        let incarnation = slot.status.restarts;
        let cname = slot.status.name.clone();
        let name = format!("{}_{cname}_{incarnation}", self.podman_pod);
        let limit = match spec::memory_limit(&slot.spec) {
            Some(bytes) => match super::memory::Limit::make(&name, bytes) {
                Ok(limit) => limit.map(Arc::new),
                Err(why) => {
                    tracing::warn!("{why}; the limit is left to podman");
                    None
                }
            },
            None => None,
        };
        let args = spec::create_args(
            &self.store,
            &self.pod,
            &slot.spec,
            &slot.status.image_id,
            &self.podman_pod,
            &name,
            &labels,
            &self.folders,
            &self.dir,
            limit.as_ref().map(|l| l.parent()).as_deref(),
        );
        tracing::debug!(container = %name, "creating");
        let created = match args {
            Ok(args) => {
                let mut all = vec!["create".to_string()];
                all.extend(args);
                let all: Vec<&str> = all.iter().map(String::as_str).collect();
                match podman::run(&self.runtime.containers, &all).await {
                    Ok(_) => podman::run(&self.runtime.containers, &["start", &name]).await,
                    Err(e) => Err(e),
                }
            }
            Err(why) => Err(why),
        };
        let at = format!(
            "spec.{}{{{cname}}}",
            if init { "initContainers" } else { "containers" }
        );
        let slot = if init {
            &mut self.inits[index]
        } else {
            &mut self.containers[index]
        };
        tracing::debug!(container = %name, ok = created.is_ok(), "created and started");
        match created {
            Ok(_) => {
                slot.status.podman = Some(name.clone());
                slot.limit = limit;
                slot.incarnation.store(incarnation, Ordering::Relaxed);
                slot.status.state = State::Running { since: ops::now() };
                slot.since = Some(Instant::now());
                slot.counts = [(0, 0); 3];
                slot.started_ok = slot.spec["startupProbe"].is_null();
                slot.status.ready =
                    !init && slot.spec["readinessProbe"].is_null() && slot.started_ok;
                let image = slot.status.image.clone();
                self.runtime.started(&self.uid, &cname, &name);
                // The incarnation before the previous one is no longer anyone's `--previous`.
                if incarnation >= 2 {
                    let old = format!("{}_{cname}_{}", self.podman_pod, incarnation - 2);
                    let _ =
                        podman::run(&self.runtime.containers, &["rm", "-f", "-t", "0", &old]).await;
                    super::memory::remove(&old);
                }
                let said = vec![
                    (
                        true,
                        "Pulled",
                        format!("Container image \"{image}\" already present on machine"),
                    ),
                    (true, "Created", format!("Created container: {cname}")),
                    (true, "Started", format!("Started container {cname}")),
                ];
                self.events(said, Some(&at)).await;
                Ok(name)
            }
            Err(why) => {
                slot.status.state = State::Waiting {
                    reason: "CreateContainerError".into(),
                    message: why.clone(),
                };
                slot.status.ready = false;
                // What podman made of it before failing must not hold the name.
                let _ =
                    podman::run(&self.runtime.containers, &["rm", "-f", "-t", "0", &name]).await;
                self.event(false, "Failed", format!("Error: {why}"), Some(&at))
                    .await;
                self.write().await;
                Err(())
            }
        }
    }

    /// Starts container `index` and the tasks that watch it: its exit and its probes.
    async fn start_container(&mut self, index: usize) {
        let incarnation = self.containers[index].status.restarts;
        let Ok(name) = self.create(false, index).await else {
            // Tried again after the back-off, as the kubelet does with CreateContainerError.
            let delay = self.next_backoff(false, index).max(Duration::from_secs(1));
            let reports = self.reports.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = reports.send(Report::Retry { index, incarnation });
            });
            return;
        };
        let reports = self.reports.clone();
        let runtime = self.runtime.clone();
        let limit = self.containers[index].limit.clone();
        tokio::spawn(async move {
            let (code, oom, started, finished) = wait_exit(runtime, name, limit).await;
            let _ = reports.send(Report::Exited {
                index,
                incarnation,
                code,
                oom,
                started,
                finished,
            });
        });
        for kind in [Kind::Startup, Kind::Readiness, Kind::Liveness] {
            let probe = self.containers[index].spec[kind.field()].clone();
            if probe.is_object() {
                self.spawn_probe(index, incarnation, kind, probe);
            }
        }
    }

    fn spawn_probe(&self, index: usize, incarnation: i64, kind: Kind, probe: Value) {
        let runtime = self.runtime.clone();
        let reports = self.reports.clone();
        let container = self.containers[index].spec.clone();
        let name = self.containers[index]
            .status
            .podman
            .clone()
            .unwrap_or_default();
        let ip: std::net::Ipv4Addr = self.ip.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        let current = self.containers[index].incarnation.clone();
        tokio::spawn(async move {
            let timing = probe::Timing::of(&probe);
            tokio::time::sleep(timing.initial_delay).await;
            loop {
                let result = probe::check(&runtime, ip, &container, &name, &probe).await;
                if reports
                    .send(Report::Probe {
                        index,
                        incarnation,
                        kind,
                        result,
                    })
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(timing.period).await;
                if current.load(Ordering::Relaxed) != incarnation {
                    return;
                }
            }
        });
    }

    /// Applies a report; true when the status changed.
    async fn on_report(&mut self, report: Report) -> bool {
        match report {
            Report::Exited {
                index,
                incarnation,
                code,
                oom,
                started,
                finished,
            } => {
                if self.containers[index].status.restarts != incarnation {
                    return false;
                }
                self.exited(index, code, oom, started, finished).await;
                true
            }
            Report::RestartDue { index, incarnation } => {
                if self.containers[index].status.restarts + 1 != incarnation {
                    return false;
                }
                self.containers[index].status.restarts = incarnation;
                self.start_container(index).await;
                true
            }
            Report::Retry { index, incarnation } => {
                if self.containers[index].status.restarts != incarnation {
                    return false;
                }
                self.start_container(index).await;
                true
            }
            Report::Probe {
                index,
                incarnation,
                kind,
                result,
            } => {
                let slot = &self.containers[index];
                if slot.status.restarts != incarnation
                    || !matches!(slot.status.state, State::Running { .. })
                {
                    return false;
                }
                self.probed(index, kind, result).await
            }
        }
    }

    async fn exited(
        &mut self,
        index: usize,
        code: i64,
        oom: bool,
        started: String,
        finished: String,
    ) {
        let policy = self.restart_policy().to_string();
        let slot = &mut self.containers[index];
        let reason = exit_reason(code, oom);
        let id = slot
            .status
            .podman
            .clone()
            .map(|n| format!("podman://{n}"))
            .unwrap_or_default();
        let terminated = State::Terminated {
            code,
            reason: reason.into(),
            started,
            finished,
            message: String::new(),
        };
        slot.status.ready = false;
        let restart = match policy.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if !restart {
            slot.status.state = terminated;
            let all_done = self
                .containers
                .iter()
                .all(|c| matches!(c.status.state, State::Terminated { .. }));
            if all_done {
                let failed = self
                    .containers
                    .iter()
                    .any(|c| matches!(c.status.state, State::Terminated { code, .. } if code != 0));
                self.phase = if failed { "Failed" } else { "Succeeded" };
            }
            return;
        }
        slot.status.last = terminated.json(&id);
        let name = slot.status.name.clone();
        let incarnation = slot.status.restarts + 1;
        let delay = self.next_backoff(false, index);
        let pod_name = str_at(&self.pod, "/metadata/name").to_string();
        let ns = str_at(&self.pod, "/metadata/namespace").to_string();
        let slot = &mut self.containers[index];
        slot.status.state = if delay.is_zero() {
            State::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            }
        } else {
            State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!(
                    "back-off {}s restarting failed container={name} pod={pod_name}_{ns}({})",
                    delay.as_secs(),
                    self.uid
                ),
            }
        };
        if !delay.is_zero() {
            let at = format!("spec.containers{{{name}}}");
            let message = format!(
                "Back-off restarting failed container {name} in pod {pod_name}_{ns}({})",
                self.uid
            );
            self.event(false, "BackOff", message, Some(&at)).await;
        }
        let reports = self.reports.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = reports.send(Report::RestartDue { index, incarnation });
        });
    }

    /// Counts a probe result; readiness decides Ready, a failed liveness or startup probe
    /// restarts the container.
    async fn probed(&mut self, index: usize, kind: Kind, result: Result<(), String>) -> bool {
        let slot = &mut self.containers[index];
        let timing = probe::Timing::of(&slot.spec[kind.field()]);
        let k = kind as usize;
        let ok = result.is_ok();
        if ok {
            slot.counts[k] = (slot.counts[k].0 + 1, 0);
        } else {
            slot.counts[k] = (0, slot.counts[k].1 + 1);
        }
        let (successes, failures) = slot.counts[k];
        let name = slot.status.name.clone();
        let podman_name = slot.status.podman.clone().unwrap_or_default();
        let before = slot.status.ready;
        match kind {
            Kind::Startup if ok => slot.started_ok = true,
            Kind::Readiness if slot.started_ok => {
                if ok && successes >= timing.success_threshold {
                    slot.status.ready = true;
                } else if !ok && failures >= timing.failure_threshold {
                    slot.status.ready = false;
                }
            }
            _ => {}
        }
        if slot.started_ok && slot.spec["readinessProbe"].is_null() {
            slot.status.ready = true;
        }
        let changed = before != slot.status.ready;
        if let Err(why) = result {
            let at = format!("spec.containers{{{name}}}");
            self.event(
                false,
                "Unhealthy",
                format!("{} probe failed: {why}", kind.word()),
                Some(&at),
            )
            .await;
            let fatal = matches!(kind, Kind::Liveness | Kind::Startup)
                && failures >= timing.failure_threshold;
            if fatal {
                let word = if kind == Kind::Liveness {
                    "liveness"
                } else {
                    "startup"
                };
                self.event(
                    true,
                    "Killing",
                    format!("Container {name} failed {word} probe, will be restarted"),
                    Some(&at),
                )
                .await;
                let _ = podman::run(&self.runtime.containers, &["kill", &podman_name]).await;
            }
        }
        changed
    }

    /// Waits `delay`; false when the pod went meanwhile.
    async fn wait_or_gone(&mut self, updates: &mut Updates, delay: Duration) -> bool {
        self.unless_gone(updates, tokio::time::sleep(delay))
            .await
            .is_some()
    }

    /// Runs `work` while taking the pod's new versions; None when the pod went first.
    async fn unless_gone<T>(
        &mut self,
        updates: &mut Updates,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        super::unless_gone(&mut self.pod, updates, work).await
    }

    async fn wait_until_gone(&mut self, updates: &mut Updates) {
        while self.wait_or_gone(updates, Duration::from_secs(3600)).await {}
    }

    /// Writes the status as it is now, unless the pod was replaced by another of its name.
    async fn write(&self) {
        let seen = Observed {
            phase: self.phase,
            ip: (!self.ip.is_empty()).then(|| self.ip.clone()),
            started: self.started.clone(),
            initialized: self.initialized,
            inits: self.inits.iter().map(|s| s.status.clone()).collect(),
            containers: self.containers.iter().map(|s| s.status.clone()).collect(),
        };
        if let Err(e) = write_status(&self.store, &self.pod, seen).await {
            tracing::warn!(pod = %self.podman_pod, "cannot write the pod's status: {}", e.message);
        }
    }

    async fn event(&self, normal: bool, reason: &'static str, message: String, at: Option<&str>) {
        self.events(vec![(normal, reason, message)], at).await;
    }

    /// Records `said` (normal or warning, reason, message) about the pod's field `at`, in one
    /// store write.
    async fn events(&self, said: Vec<(bool, &'static str, String)>, at: Option<&str>) {
        let _ = record_events(&self.store, &self.pod, said, at).await;
    }

    /// Stops and removes the pod's containers (SIGTERM, then SIGKILL after its grace, at most
    /// [`MAX_GRACE`] seconds) and its folder; its address is free again.
    async fn tear_down(&mut self) {
        let grace = self.pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30)
            .min(MAX_GRACE);
        self.pre_stop(Duration::from_secs(grace)).await;
        let grace = grace.to_string();
        let _ = podman::run(
            &self.runtime.containers,
            &["pod", "rm", "-f", "-t", &grace, &self.podman_pod],
        )
        .await;
        let _ = std::fs::remove_dir_all(&self.dir);
        super::memory::remove(&format!("{}_", self.podman_pod));
        self.runtime.release(&self.uid);
    }
}

/// Containers' `preStop` hooks, together and within `grace`: a `sleep` waits, an `exec` runs
/// its command in the container. Until they end, the containers keep serving the connections
/// they have while the pod's endpoints are already gone.
impl Worker {
    async fn pre_stop(&self, grace: Duration) {
        let hooks = self.containers.iter().filter_map(|slot| {
            let hook = &slot.spec["lifecycle"]["preStop"];
            let name = slot.status.podman.clone()?;
            let runtime = self.runtime.clone();
            if let Some(secs) = hook["sleep"]["seconds"].as_u64() {
                return Some(Box::pin(async move {
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);
            }
            let command: Vec<String> = hook["exec"]["command"]
                .as_array()?
                .iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect();
            Some(Box::pin(async move {
                let mut args = vec!["exec".to_string(), name];
                args.extend(command);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let _ = podman::run(&runtime.containers, &args).await;
            }))
        });
        let all = futures_util::future::join_all(hooks);
        let _ = tokio::time::timeout(grace, all).await;
    }
}

/// `OOMKilled`, `Completed` or `Error`, as the kubelet names an exit.
fn exit_reason(code: i64, oom: bool) -> &'static str {
    if oom {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// Waits for the container to exit: its exit code, whether it was killed for memory, and when
/// it started and finished.
async fn wait_exit(
    runtime: Arc<Runtime>,
    name: String,
    limit: Option<Arc<super::memory::Limit>>,
) -> (i64, bool, String, String) {
    let code = podman::run(&runtime.containers, &["wait", &name])
        .await
        .ok()
        .and_then(|out| out.trim().parse::<i64>().ok())
        .unwrap_or(-1);
    let inspected = podman::run(
        &runtime.containers,
        &[
            "inspect",
            &name,
            "--format",
            "{{.State.OOMKilled}}\t{{.State.StartedAt}}\t{{.State.FinishedAt}}",
        ],
    )
    .await
    .unwrap_or_default();
    let mut parts = inspected.trim().split('\t');
    // SIGKILL once the memory limit was reached is the kernel's OOM killer.
    let oom = parts.next() == Some("true") || (code == 137 && limit.is_some_and(|l| l.was_hit()));
    let time = |s: Option<&str>| {
        s.and_then(|t| {
            // podman prints `2026-12-03 22:01:02.123456789 +0000 UTC`.
            let t = t.trim().trim_end_matches(" UTC");
            jiff::fmt::strtime::parse("%Y-%m-%d %H:%M:%S%.f %z", t)
                .ok()?
                .to_timestamp()
                .ok()
        })
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(ops::now)
    };
    let started = time(parts.next());
    let finished = time(parts.next());
    (code, oom, started, finished)
}
