//! Simulated controllers: what kube-controller-manager, the scheduler and a kubelet would do,
//! reduced to what makes `kubectl` and client libraries see a cluster that behaves.
//!
//! [`start`] spawns one task that follows the store's committed events, turns each into work
//! keys (the object itself, its owners, the dependents of a deleted object, the services and
//! autoscalers a change may concern) and reconciles each key inside one store write, so a
//! read-modify-write never races with the API. Reconciles converge: a pass that finds nothing
//! to change writes nothing, and a write that changes nothing emits no event. Keys are
//! deduplicated while queued, and every object is queued once at start so that work left over
//! from a previous run resumes. A reconcile that fails (or panics) is retried with back-off
//! and discards what it staged.
//!
//! One module per controller: `deployment`, `replicaset` (and ReplicationControllers),
//! `daemonset`, `scheduler`, `pod` (the kubelet, with the annotations that script failures
//! and delays), `statefulset`, `pvc` (binder and local-path provisioner), `volume`
//! (PersistentVolumes after their claims), `job`, `cronjob`, `service` (endpoints) and
//! `endpointslice`, `disruption` (PodDisruptionBudget status), `ingress`, `hpa`, `gc`
//! (garbage collector), `namespace` (and `namespace_setup`: the default ServiceAccount and
//! root CA of each namespace), `apiservice` (one per served group version), `events`, and
//! `helmchart` (k3s's helm controller, once its CRD is applied).
//!
//! Simplified compared with a real cluster:
//!
//! - No container runs: pods are reported Running and Ready at once (run-to-completion pods
//!   exit 0 at once); failures and delays are scripted with annotations (see `pod`). There is
//!   one node, `sandbox` (a Node object, Ready) that takes 110 pods (see `scheduler`); no
//!   other resources, probes, affinity or taints are considered.
//! - Deployments scale the new ReplicaSet to the full count at once and the old ones to zero
//!   once it is ready: no maxSurge/maxUnavailable steps, no proportional scaling, no
//!   minReadySeconds. Available means every wanted replica is available.
//! - StatefulSets keep no ControllerRevision objects; the revision is a hash of the template.
//! - Claims are provisioned and bound at once, whatever the class's volumeBindingMode.
//! - Jobs replace failed pods without back-off delay; `OnFailure` pods that fail end Failed
//!   instead of restarting in place; Indexed jobs only get their index; no pod failure
//!   policy, success policy or TTL after finishing.
//! - Endpoints only (no EndpointSlices); the autoscaler has no metrics and only clamps
//!   replicas into its range.
//! - Timers (start delays, crash-loop back-off) live in memory and start over after a restart.

mod apiservice;
mod common;
pub mod cronjob;
mod daemonset;
mod deployment;
mod disruption;
mod endpointslice;
pub(crate) mod events;
mod gc;
mod helmchart;
mod hpa;
mod ingress;
mod job;
mod namespace;
mod namespace_setup;
mod pod;

pub(crate) use common::{
    Cond, CondStyle, conditions, is_deleting as is_deleting_pod, uid as uid_of,
};
pub(crate) use pod::KUBELET;
pub use pod::NODE;
pub use pvc::{DEFAULT_CLASS, PROVISIONER};
mod pvc;
mod replicaset;
pub mod scheduler;
mod service;
mod statefulset;
mod volume;

pub use apiservice::sync as sync_api_services;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiResult;
use crate::store::{Event, EventType, ObjKey, State, Store, Tx};

pub use pod::{FAIL_ANNOTATION, RUN_ANNOTATION, START_DELAY_ANNOTATION};

/// How many keys are reconciled per round; their writes share one commit.
const BATCH: usize = 64;

/// How many pods (or other objects) one reconcile creates or deletes at most, as
/// kube-controller-manager's `burstReplicas`; a controller with more to do comes back at once.
/// One reconcile is one store write, so this bounds what a write holds in memory and commits.
pub const BURST: usize = 500;

/// Starts the controllers on `store`; `root_ca` is the cluster's CA certificate (PEM) they
/// publish in every namespace. With `real_pods`, the simulated kubelet schedules pods and
/// leaves them to the runtime (see `crate::runtime`) unless it hands them back. Needs a tokio
/// runtime; without one it does nothing.
pub fn start(store: Store, root_ca: String, real_pods: bool) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(run(store, root_ca, real_pods));
        }
        Err(_) => tracing::warn!("no tokio runtime: the sandbox controllers are not running"),
    }
}

/// What a reconcile asks of the framework afterwards.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Reconcile this key again after this long (a pod starting late, a crash-loop restart…).
    pub requeue_after: Option<Duration>,
}

impl Outcome {
    pub fn done() -> Self {
        Outcome::default()
    }

    pub fn after(d: Duration) -> Self {
        Outcome {
            requeue_after: Some(d),
        }
    }
}

/// State the controllers keep in memory between reconciles: when things were first seen, for
/// delays measured in milliseconds (object timestamps only have whole seconds).
#[derive(Default)]
pub struct Ctx {
    /// By object, so that forgetting one is not a walk over every timer.
    timers: Mutex<HashMap<ObjKey, HashMap<&'static str, Timer>>>,
    /// The cluster's CA certificate, PEM.
    root_ca: String,
    /// Pods run as containers (`crate::runtime`) unless marked simulated.
    pub real_pods: bool,
}

impl Ctx {
    pub fn root_ca(&self) -> &str {
        &self.root_ca
    }

    /// When the timer `what` of the object `key` (with this uid) started; starts it now if new.
    pub fn since(&self, key: &ObjKey, uid: &str, what: &'static str) -> Instant {
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        let entry = timers
            .entry(key.clone())
            .or_default()
            .entry(what)
            .or_insert_with(|| (uid.to_string(), Instant::now()));
        if entry.0 != uid {
            *entry = (uid.to_string(), Instant::now());
        }
        entry.1
    }

    /// Restarts the timer `what` of `key`.
    pub fn reset(&self, key: &ObjKey, uid: &str, what: &'static str) {
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        timers
            .entry(key.clone())
            .or_default()
            .insert(what, (uid.to_string(), Instant::now()));
    }

    /// Drops every timer of `key`.
    pub fn forget(&self, key: &ObjKey) {
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        timers.remove(key);
    }
}

/// The uid of the object a timer belongs to, and when it started.
type Timer = (String, Instant);

/// Keys waiting for a reconcile, each at most once.
#[derive(Default)]
struct Queue {
    order: VecDeque<ObjKey>,
    queued: HashSet<ObjKey>,
}

impl Queue {
    fn push(&mut self, key: ObjKey) {
        if self.queued.insert(key.clone()) {
            self.order.push_back(key);
        }
    }

    fn pop_batch(&mut self, n: usize) -> Vec<ObjKey> {
        let n = n.min(self.order.len());
        let batch: Vec<ObjKey> = self.order.drain(..n).collect();
        for key in &batch {
            self.queued.remove(key);
        }
        if self.order.is_empty() && self.order.capacity() > 4 * BATCH {
            // A burst of work (every pod of a big Deployment) need not keep its room for good.
            self.order.shrink_to(BATCH);
            self.queued.shrink_to(BATCH);
        }
        batch
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn push_all(&mut self, state: &State) {
        for (key, _) in state.iter() {
            if key.res != EVENTS {
                self.push(key.clone());
            }
        }
    }
}

const EVENTS: &str = "/events";

async fn run(store: Store, root_ca: String, real_pods: bool) {
    let mut events = store.subscribe();
    let (requeue, mut requeued) = mpsc::unbounded_channel::<ObjKey>();
    let ctx = Arc::new(Ctx {
        root_ca,
        real_pods,
        ..Ctx::default()
    });
    let mut queue = Queue::default();
    let mut failures: HashMap<ObjKey, u32> = HashMap::new();
    queue.push_all(&store.read());
    // Whether room may have been made for pods waiting to be scheduled.
    let mut room = false;
    loop {
        loop {
            match events.try_recv() {
                Ok(event) => room |= on_event(&store, &event, &mut queue),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Lagged(_)) => queue.push_all(&store.read()),
                Err(broadcast::error::TryRecvError::Closed) => return,
            }
        }
        if std::mem::take(&mut room) {
            // Once per round of events, not per event: with the node full and many pods
            // waiting, looking for the ones that fit is the costly part.
            for key in scheduler::waiting(&store.read()) {
                queue.push(key);
            }
        }
        while let Ok(key) = requeued.try_recv() {
            queue.push(key);
        }
        if queue.is_empty() {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => room |= on_event(&store, &event, &mut queue),
                    Err(broadcast::error::RecvError::Lagged(_)) => queue.push_all(&store.read()),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(key) = requeued.recv() => queue.push(key),
            }
            continue;
        }
        let batch = queue.pop_batch(BATCH);
        // Submitted together, the writes of a batch are committed together.
        let results = join_all(batch.iter().map(|key| {
            let key = key.clone();
            let ctx = ctx.clone();
            store.write(move |tx| guarded(tx, &ctx, &key))
        }))
        .await;
        for (key, result) in batch.into_iter().zip(results) {
            let delay = match result {
                Ok(outcome) => {
                    failures.remove(&key);
                    outcome.requeue_after
                }
                Err(e) => {
                    let n = failures.entry(key.clone()).or_insert(0);
                    *n += 1;
                    tracing::warn!(
                        "controller: reconciling {} {}/{} failed: {}",
                        key.res,
                        key.ns,
                        key.name,
                        e.message
                    );
                    Some(Duration::from_millis(200 << (*n).min(8)))
                }
            };
            if let Some(delay) = delay {
                let requeue = requeue.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = requeue.send(key);
                });
            }
        }
    }
}

/// Queues the keys an event concerns; true when it may have made room on the node.
fn on_event(store: &Store, event: &Event, queue: &mut Queue) -> bool {
    let key = &event.key;
    let obj = &event.object;
    let state = store.read();
    let deleted = event.kind == EventType::Deleted;
    if deleted && !key.ns.is_empty() {
        // A terminating namespace waits for its content to go.
        queue.push(ObjKey::new(crate::ops::NAMESPACES, "", &key.ns));
    }
    if key.res == EVENTS {
        return false;
    }
    if namespace_setup::kept(key) {
        // Someone changed what the namespace's setup keeps: put it back.
        queue.push(namespace_setup::namespace_of(key));
    }
    queue.push(key.clone());
    for owner in common::owner_refs(obj) {
        let group = owner["apiVersion"]
            .as_str()
            .and_then(|v| v.rsplit_once('/'))
            .map(|(g, _)| g)
            .unwrap_or("");
        let Some(res) = state
            .registry
            .all()
            .find(|r| r.group == group && Some(r.kind.as_str()) == owner["kind"].as_str())
        else {
            continue;
        };
        if let Some(name) = owner["name"].as_str() {
            queue.push(crate::ops::key(res, &key.ns, name));
        }
    }
    if deleted && let Some(uid) = obj["metadata"]["uid"].as_str() {
        for dependent in state.dependents_of(uid) {
            queue.push(dependent);
        }
    }
    // Kinds whose reconcile reads other objects than their own and their dependents.
    let also: &[&str] = match key.res.as_str() {
        "/pods" => &["/services", "policy/poddisruptionbudgets"],
        "apps/deployments" | "apps/statefulsets" | "apps/replicasets" => {
            &["autoscaling/horizontalpodautoscalers"]
        }
        _ => &[],
    };
    for also in also {
        for (k, _) in state.list(also, Some(&key.ns)) {
            queue.push(k.clone());
        }
    }
    if key.res == "storage.k8s.io/storageclasses" {
        // Claims waiting for this class.
        for (k, c) in state.list("/persistentvolumeclaims", None) {
            if c["status"]["phase"] != "Bound" {
                queue.push(k.clone());
            }
        }
    }
    scheduler::frees_room(&key.res, deleted, obj, event.previous.as_deref())
}

/// [`reconcile`], turning a panic (a bug, or an object of a shape nothing expected) into an
/// error so that the store's writer thread survives it and what was staged is discarded.
fn guarded(tx: &mut Tx, ctx: &Ctx, key: &ObjKey) -> ApiResult<Outcome> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reconcile(tx, ctx, key)))
        .unwrap_or_else(|_| Err(crate::error::ApiError::internal("the controller panicked")))
}

/// One reconcile of one key: garbage collection first, then the kind's controller.
fn reconcile(tx: &mut Tx, ctx: &Ctx, key: &ObjKey) -> ApiResult<Outcome> {
    let Some(obj) = tx.get(key) else {
        return gone(tx, ctx, key);
    };
    if gc::reconcile(tx, key, &obj)? {
        return Ok(Outcome::done());
    }
    let Some(obj) = tx.get(key) else {
        return gone(tx, ctx, key);
    };
    if key.res == crate::ops::NAMESPACES {
        return namespace::reconcile(tx, ctx, key, &obj);
    }
    if common::namespace_terminating(tx, &key.ns) {
        return Ok(Outcome::done());
    }
    match key.res.as_str() {
        "/pods" => pod::reconcile(tx, ctx, key, obj),
        _ if common::is_deleting(&obj) => Ok(Outcome::done()),
        "apps/deployments" => deployment::reconcile(tx, key, obj),
        "apps/replicasets" => replicaset::reconcile(tx, key, obj),
        "/replicationcontrollers" => replicaset::reconcile_replication_controller(tx, key, obj),
        "apps/daemonsets" => daemonset::reconcile(tx, key, obj),
        "batch/cronjobs" => cronjob::reconcile(tx, key, obj),
        "/persistentvolumes" => volume::reconcile(tx, key, obj),
        "policy/poddisruptionbudgets" => disruption::reconcile(tx, key, obj),
        "apiextensions.k8s.io/customresourcedefinitions" | "apiregistration.k8s.io/apiservices" => {
            apiservice::sync(tx).map(|_| Outcome::done())
        }
        "apps/statefulsets" => statefulset::reconcile(tx, key, obj),
        "batch/jobs" => job::reconcile(tx, key, obj),
        "/persistentvolumeclaims" => pvc::reconcile(tx, key, obj),
        "/services" => service::reconcile(tx, key, obj),
        "networking.k8s.io/ingresses" => ingress::reconcile(tx, key, obj),
        "autoscaling/horizontalpodautoscalers" => hpa::reconcile(tx, key, obj),
        "helm.cattle.io/helmcharts" => helmchart::reconcile(tx, key, obj),
        _ => Ok(Outcome::done()),
    }
}

/// Cleanup after an object is gone.
fn gone(tx: &mut Tx, ctx: &Ctx, key: &ObjKey) -> ApiResult<Outcome> {
    match key.res.as_str() {
        "/pods" => ctx.forget(key),
        "/services" => service::service_gone(tx, key)?,
        "/persistentvolumeclaims" => volume::claim_gone(tx, key)?,
        "apiextensions.k8s.io/customresourcedefinitions" | "apiregistration.k8s.io/apiservices" => {
            apiservice::sync(tx)?
        }
        _ => {}
    }
    Ok(Outcome::done())
}

/// The stored pod `pod` is a version of: same namespace, name and uid (not a new pod of the
/// same name).
pub(crate) fn current_pod(tx: &Tx, pod: &serde_json::Value) -> Option<Arc<serde_json::Value>> {
    let res = common::resource(tx, "", "pods").ok()?;
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let current = tx.get(&crate::ops::key(&res, ns, name))?;
    (current["metadata"]["uid"] == pod["metadata"]["uid"]).then_some(current)
}

/// Writes a pod's status as the kubelet.
pub(crate) fn write_pod_status(
    tx: &mut Tx,
    pod: &serde_json::Value,
    status: serde_json::Value,
) -> ApiResult<()> {
    let res = common::resource(tx, "", "pods")?;
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let key = crate::ops::key(&res, ns, name);
    common::write_status(tx, &res, &key, status, pod::MANAGER)
}
