//! The sandbox's real kubelet: pods whose images can be had run as podman containers, each pod
//! in a network namespace of its own with an address of the sandbox's pod network.
//!
//! The simulated kubelet (`controllers::pod`) schedules every pod; with a runtime it then leaves
//! the pods to this one, which follows them through the store's events, one task per pod
//! (`worker`). A pod whose image is in neither podman's store nor the sandbox's registry is
//! handed back: the pod gets the condition [`SIMULATED`] and a warning Event saying why, and is
//! simulated as before.
//!
//! At start every podman pod this sandbox left behind is removed and the stored pods start
//! afresh, as after a node's reboot; their volumes (emptyDir aside) keep their data.

mod images;
mod memory;
mod network;
pub mod podman;
mod probe;
pub mod services;
mod spec;
mod standin;
mod status;
mod volumes;
mod worker;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{broadcast, watch};

pub use network::{Network, SANDBOX_LABEL};

use crate::containers::Containers;
use crate::store::{EventType, Store};

/// The pod condition that says a pod is simulated although the sandbox runs containers.
pub const SIMULATED: &str = "sandbox.kipper.run/Simulated";

/// What the sandbox runs pods with.
pub struct Runtime {
    pub containers: Containers,
    pub network: Network,
    /// The sandbox's folder: pods' volumes live under it.
    pub sandbox_dir: PathBuf,
    /// The sandbox's local registry (`HOST:PORT`), where images are pulled from.
    pub registry: Option<String>,
    pods: Mutex<HashMap<String, Running>>,
    /// The process groups of stand-in containers that run now (see `standin`).
    groups: Arc<Mutex<std::collections::HashSet<i32>>>,
    /// DNS, the ClusterIP proxy and the network's rules, started with the first pod.
    services: tokio::sync::OnceCell<Result<(), String>>,
}

/// A pod that runs for real, as the API's logs, exec and port-forward need it.
#[derive(Debug, Clone)]
pub struct Running {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    /// Container name → the podman container that runs it now, and the one before.
    pub containers: HashMap<String, (String, Option<String>)>,
    /// Container name → its log, for pods whose containers run as processes of this machine
    /// (`standin`); empty for podman's.
    pub logs: HashMap<String, LogFile>,
}

/// The log of a container that runs as a process of this machine: lines `TIME TEXT`, the time
/// in RFC 3339 with nanoseconds, as the kubelet's CRI log files have them.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub path: PathBuf,
    /// Set once the container ended: nothing more is written.
    pub done: Arc<std::sync::atomic::AtomicBool>,
}

impl Runtime {
    /// Sets podman up for the sandbox in `sandbox_dir`: its store and its pod network.
    pub async fn new(
        containers: Containers,
        sandbox_dir: &Path,
        registry: Option<String>,
    ) -> Result<Arc<Runtime>, String> {
        let network = Network::ensure(&containers, sandbox_dir).await?;
        Ok(Arc::new(Runtime {
            containers,
            network,
            sandbox_dir: sandbox_dir.to_path_buf(),
            registry,
            pods: Mutex::default(),
            groups: Arc::default(),
            services: tokio::sync::OnceCell::new(),
        }))
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ip` is the address of a pod that runs for real (what the ingress proxy and
    /// port-forward may connect to).
    pub fn runs_address(&self, ip: IpAddr) -> bool {
        let IpAddr::V4(ip) = ip else { return false };
        self.network.holds(ip) && self.pods().values().any(|p| p.ip == ip)
    }

    /// The running pod with this uid.
    pub fn running(&self, uid: &str) -> Option<Running> {
        self.pods().get(uid).cloned()
    }

    /// Records the address podman's IPAM gave the pod `uid` (it knows which are taken, also by
    /// what an earlier run left), until [`Runtime::release`].
    fn register(&self, uid: &str, namespace: &str, name: &str, ip: Ipv4Addr) {
        self.pods().insert(
            uid.to_string(),
            Running {
                namespace: namespace.to_string(),
                name: name.to_string(),
                ip,
                containers: HashMap::new(),
                logs: HashMap::new(),
            },
        );
    }

    /// Records which podman container runs `container` of the pod `uid` now.
    fn started(&self, uid: &str, container: &str, podman_name: &str) {
        if let Some(p) = self.pods().get_mut(uid) {
            let entry = p
                .containers
                .entry(container.to_string())
                .or_insert_with(|| (podman_name.to_string(), None));
            if entry.0 != podman_name {
                let previous = std::mem::replace(&mut entry.0, podman_name.to_string());
                entry.1 = Some(previous);
            }
        }
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<i32>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a stand-in pod, whose containers' logs are the files `logs`; it has no address
    /// of the pod network (0.0.0.0 is no one's).
    fn register_standin(
        &self,
        uid: &str,
        namespace: &str,
        name: &str,
        logs: HashMap<String, LogFile>,
    ) {
        self.pods().insert(
            uid.to_string(),
            Running {
                namespace: namespace.to_string(),
                name: name.to_string(),
                ip: Ipv4Addr::UNSPECIFIED,
                containers: HashMap::new(),
                logs,
            },
        );
    }

    fn release(&self, uid: &str) {
        self.pods().remove(uid);
    }

    /// Starts the Services' DNS and ClusterIPs once the pod network's bridge exists (with the
    /// first pod); the error of that start for every pod after, if it failed.
    async fn ensure_services(self: &Arc<Self>, store: &Store) -> Result<(), String> {
        self.services
            .get_or_init(|| services::start(self, store))
            .await
            .clone()
    }

    /// Removes every podman pod of this sandbox, as when its node goes down: at start (what an
    /// earlier run left) and when the sandbox stops. Volumes keep their data.
    pub async fn remove_all(&self) {
        self.stop_all(0).await;
    }

    /// Stops every podman pod of this sandbox within `grace` seconds (SIGTERM, then SIGKILL)
    /// and removes it: a node shutting down gives its databases the time to stop cleanly.
    pub async fn stop_all(&self, grace: u64) {
        let groups: Vec<i32> = self.groups().iter().copied().collect();
        standin::kill_groups(&groups, std::time::Duration::from_secs(grace.min(5))).await;
        podman::remove_pods(&self.containers, &self.owner(), grace).await;
        // The memory cgroups of the pods it ran (see `memory`).
        let running: Vec<(String, Running)> = self
            .pods()
            .iter()
            .map(|(u, p)| (u.clone(), p.clone()))
            .collect();
        for (uid, pod) in running {
            let short = &uid[..uid.len().min(8)];
            memory::remove(&format!("k8s_{}_{}_{short}_", pod.name, pod.namespace));
        }
    }

    /// The label value that marks this sandbox's podman objects.
    fn owner(&self) -> String {
        self.sandbox_dir.display().to_string()
    }
}

/// What a pod's task is fed: each new version of its pod, `None` once it is deleted.
type Updates = watch::Receiver<Option<Arc<Value>>>;

/// Takes the pod's newest version into `pod`; false when it is gone or being deleted.
fn take_update(pod: &mut Arc<Value>, open: bool, updates: &mut Updates) -> bool {
    let newest = if open {
        updates.borrow_and_update().clone()
    } else {
        None
    };
    match newest {
        Some(newest) if !crate::controllers::is_deleting_pod(&newest) => {
            *pod = newest;
            true
        }
        _ => false,
    }
}

/// Runs `work` while taking the pod's new versions into `pod`; None when the pod went first.
async fn unless_gone<T>(
    pod: &mut Arc<Value>,
    updates: &mut Updates,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            changed = updates.changed() => {
                if !take_update(pod, changed.is_ok(), updates) {
                    return None;
                }
            }
        }
    }
}

/// Every container of `pod`, init containers first.
fn all_containers(pod: &Value) -> impl Iterator<Item = &Value> {
    let list = |field: &str| pod["spec"][field].as_array().into_iter().flatten();
    list("initContainers").chain(list("containers"))
}

/// The string at `pointer` in `v`, or "".
fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// What a kubelet reports of a pod, owned so that a store write can take it.
struct Observed {
    phase: &'static str,
    ip: Option<String>,
    started: String,
    initialized: bool,
    inits: Vec<status::Container>,
    containers: Vec<status::Container>,
}

/// Writes `seen` as the status of `pod`, unless the pod was replaced by another of its name.
async fn write_status(
    store: &Store,
    pod: &Arc<Value>,
    seen: Observed,
) -> crate::error::ApiResult<()> {
    let pod = pod.clone();
    store
        .write(move |tx| {
            let Some(current) = crate::controllers::current_pod(tx, &pod) else {
                return Ok(());
            };
            let status = status::Pod {
                old: &current["status"],
                phase: seen.phase,
                ip: seen.ip,
                started: &seen.started,
                initialized: seen.initialized,
                inits: &seen.inits,
                containers: &seen.containers,
            }
            .json();
            crate::controllers::write_pod_status(tx, &current, status)
        })
        .await
}

/// Records `said` (normal or warning, reason, message) about the field `at` of `pod`, in one
/// store write, unless the pod was replaced by another of its name.
async fn record_events(
    store: &Store,
    pod: &Arc<Value>,
    said: Vec<(bool, &'static str, String)>,
    at: Option<&str>,
) -> crate::error::ApiResult<()> {
    use crate::controllers::{KUBELET, events};
    let pod = pod.clone();
    let at = at.map(String::from);
    store
        .write(move |tx| {
            let Some(current) = crate::controllers::current_pod(tx, &pod) else {
                return Ok(());
            };
            for (normal, reason, message) in said {
                let event = if normal {
                    events::normal(KUBELET, reason, message)
                } else {
                    events::warning(KUBELET, reason, message)
                };
                let event = match &at {
                    Some(at) => event.at(at.clone()),
                    None => event,
                };
                events::record(tx, &current, event);
            }
            Ok(())
        })
        .await
}

/// Whether the runtime leaves `pod` to the simulated kubelet.
pub fn simulated(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == SIMULATED && c["status"] == "True")
    })
}

/// Starts the kubelet on `store`: removes what an earlier run left, then follows the pods.
pub async fn start(runtime: Arc<Runtime>, store: Store) {
    runtime.remove_all().await;
    forget_containers(&store).await;
    tokio::spawn(follow(runtime, store));
}

/// Says of every pod the runtime will start again that its containers are being created: the
/// stored status tells of the previous run, and must not read Ready before the pod is.
async fn forget_containers(store: &Store) {
    let _ = store
        .write(|tx| {
            let pods: Vec<Arc<Value>> = tx
                .state()
                .list("/pods", None)
                .map(|(_, pod)| pod.clone())
                .collect();
            for pod in pods {
                let bound = pod["spec"]["nodeName"].as_str() == Some(crate::controllers::NODE);
                let done = matches!(
                    pod["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed")
                );
                if !bound || done || simulated(&pod) {
                    continue;
                }
                let list =
                    |field: &str| status::Container::all_waiting(&pod, field, "ContainerCreating");
                let (inits, containers) = (list("initContainers"), list("containers"));
                let started = pod["status"]["startTime"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let fresh = status::Pod {
                    old: &pod["status"],
                    phase: "Pending",
                    ip: None,
                    started: &started,
                    initialized: inits.is_empty(),
                    inits: &inits,
                    containers: &containers,
                }
                .json();
                crate::controllers::write_pod_status(tx, &pod, fresh)?;
            }
            Ok(())
        })
        .await;
}

/// One worker per pod bound to the node, fed every new version of its pod.
async fn follow(runtime: Arc<Runtime>, store: Store) {
    let mut events = store.subscribe();
    let mut workers: HashMap<String, watch::Sender<Option<Arc<Value>>>> = HashMap::new();
    let pods_res = "/pods";
    let initial: Vec<Arc<Value>> = store
        .read()
        .list(pods_res, None)
        .map(|(_, pod)| pod.clone())
        .collect();
    for pod in initial {
        offer(&runtime, &store, &mut workers, pod);
    }
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let all: Vec<Arc<Value>> = store
                    .read()
                    .list(pods_res, None)
                    .map(|(_, pod)| pod.clone())
                    .collect();
                let live: Vec<String> = all
                    .iter()
                    .map(|p| crate::controllers::uid_of(p).to_string())
                    .collect();
                workers.retain(|uid, tx| {
                    let keep = live.contains(uid);
                    if !keep {
                        let _ = tx.send(None);
                    }
                    keep
                });
                for pod in all {
                    offer(&runtime, &store, &mut workers, pod);
                }
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if event.key.res != pods_res {
            continue;
        }
        let uid = crate::controllers::uid_of(&event.object).to_string();
        if event.kind == EventType::Deleted {
            if let Some(worker) = workers.remove(&uid) {
                let _ = worker.send(None);
            }
            continue;
        }
        offer(&runtime, &store, &mut workers, event.object.clone());
    }
}

/// Hands `pod` to its worker, starting one for a pod newly bound to the node.
fn offer(
    runtime: &Arc<Runtime>,
    store: &Store,
    workers: &mut HashMap<String, watch::Sender<Option<Arc<Value>>>>,
    pod: Arc<Value>,
) {
    let uid = crate::controllers::uid_of(&pod).to_string();
    workers.retain(|_, tx| !tx.is_closed());
    if let Some(worker) = workers.get(&uid) {
        let _ = worker.send(Some(pod));
        return;
    }
    let bound = pod["spec"]["nodeName"].as_str() == Some(crate::controllers::NODE);
    let done = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if bound && done && standin::runs(&pod) && !crate::controllers::is_deleting_pod(&pod) {
        // A build that ended before the sandbox restarted: its logs stay readable.
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(uid.clone(), tx);
        tokio::spawn(standin::remember(runtime.clone(), uid, rx));
        return;
    }
    if !bound || done || simulated(&pod) || crate::controllers::is_deleting_pod(&pod) {
        return;
    }
    // Build pods (git, Kaniko) run as processes of this machine: their images are nowhere here.
    let stand_in = standin::runs(&pod);
    let (tx, rx) = watch::channel(Some(pod));
    workers.insert(uid.clone(), tx);
    if stand_in {
        tokio::spawn(standin::run(runtime.clone(), store.clone(), uid, rx));
    } else {
        tokio::spawn(worker::run(runtime.clone(), store.clone(), uid, rx));
    }
}
