//! Running the sandbox: opening its store, seeding a fresh cluster, starting the simulated
//! controllers and serving HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;

use crate::api::{self, Api};
use crate::controllers;
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::Store;

/// A sandbox cluster: its store and the controllers working on it.
#[derive(Clone)]
pub struct Sandbox {
    pub store: Store,
    /// Exec in pods annotated `sandbox.kipper.run/exec: host` runs the command on this machine.
    pub host_exec: bool,
}

impl Sandbox {
    /// Opens the sandbox stored in `dir`, seeding it on first use. Needs a tokio runtime.
    pub async fn open(dir: &Path) -> Result<Sandbox, String> {
        let store = Store::open(dir)?;
        Self::start(store).await
    }

    /// A sandbox that keeps nothing on disk.
    pub async fn in_memory() -> Result<Sandbox, String> {
        Self::start(Store::in_memory()).await
    }

    async fn start(store: Store) -> Result<Sandbox, String> {
        seed(&store)
            .await
            .map_err(|e| format!("cannot seed the sandbox: {e}"))?;
        controllers::start(store.clone());
        Ok(Sandbox {
            store,
            host_exec: false,
        })
    }

    /// Lets exec run commands on this machine, as the sandbox's user, for pods annotated
    /// `sandbox.kipper.run/exec: host` (see `api::exec`). Off by default.
    pub fn allow_host_exec(mut self, allowed: bool) -> Self {
        self.host_exec = allowed;
        self
    }

    /// Serves the API on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let address = listener.local_addr()?;
        let api = Api::new(self.store.clone()).with_host_exec(self.host_exec);
        api.set_address(address.to_string());
        let app = api::router(api);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Port-forwards, exec and watches carry small interactive messages: no Nagle delay.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serving = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        // Watches and followed logs never end by themselves; give them a moment, then stop.
        let mut stop_rx = stop_rx;
        tokio::select! {
            result = serving => result,
            _ = async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            } => Ok(()),
        }
    }

    /// Binds `address` and serves in a background task; returns the bound address.
    pub async fn spawn(&self, address: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        let sandbox = self.clone();
        tokio::spawn(async move { sandbox.serve(listener, std::future::pending()).await });
        Ok(bound)
    }
}

/// The one node of the sandbox, Ready, shaped like a k3s server node so that `kubectl get
/// nodes` and a wait for readiness see what they see on a fresh k3s.
fn sandbox_node() -> serde_json::Value {
    let now = ops::now();
    let ready = |kind: &str, status: &str, reason: &str| json!({"type": kind, "status": status, "reason": reason, "lastHeartbeatTime": now, "lastTransitionTime": now});
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": crate::controllers::NODE,
            "labels": {
                "kubernetes.io/hostname": crate::controllers::NODE,
                "kubernetes.io/os": std::env::consts::OS,
                "node-role.kubernetes.io/control-plane": "true",
            },
        },
        "spec": {"podCIDR": "10.42.0.0/24"},
        "status": {
            "conditions": [
                ready("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                ready("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                ready("PIDPressure", "False", "KubeletHasSufficientPID"),
                ready("Ready", "True", "KubeletReady"),
            ],
            "capacity": crate::controllers::scheduler::node_capacity(),
            "allocatable": crate::controllers::scheduler::node_capacity(),
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": crate::controllers::NODE}],
            "nodeInfo": {
                "architecture": std::env::consts::ARCH,
                "operatingSystem": std::env::consts::OS,
                "kubeletVersion": crate::api::discovery::git_version(),
                "containerRuntimeVersion": "sandbox://0",
            },
        },
    })
}

/// k3s's `local-path` class, the default.
fn default_storage_class() -> serde_json::Value {
    json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {
            "name": crate::controllers::DEFAULT_CLASS,
            "annotations": {crate::admission::DEFAULT_CLASS_ANNOTATION: "true"},
        },
        "provisioner": crate::controllers::PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    })
}

/// The objects every cluster starts with.
async fn seed(store: &Store) -> ApiResult<()> {
    store
        .write(|tx| {
            let registry = tx.state().registry.clone();
            let (Some(namespaces), Some(services), Some(accounts)) = (
                registry.find("", "v1", "namespaces"),
                registry.find("", "v1", "services"),
                registry.find("", "v1", "serviceaccounts"),
            ) else {
                return Ok(());
            };
            let how = || WriteKind::Controller { manager: "kip-sandbox", part: Part::Main };
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                if tx.get(&ops::key(&namespaces, "", ns)).is_none() {
                    let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                    ops::create(tx, &namespaces, "", obj, how())?;
                }
            }
            if tx.get(&ops::key(&services, "default", "kubernetes")).is_none() {
                let obj = json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                    "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
                });
                ops::create(tx, &services, "default", obj, how())?;
            }
            if let Some(nodes) = registry.find("", "v1", "nodes")
                && tx.state().list(&nodes.key(), None).next().is_none()
            {
                // Status is a subresource: create drops it, so it is written after.
                let node = sandbox_node();
                let created = ops::create(tx, &nodes, "", node.clone(), how())?;
                let mut ready = (*created).clone();
                ready["status"] = node["status"].clone();
                let key = ops::key(&nodes, "", crate::controllers::NODE);
                let status = WriteKind::Controller { manager: "kip-sandbox", part: Part::Status };
                ops::finish_write(tx, &nodes, key, created, ready, status)?;
            }
            // A node an older sandbox made has no pod capacity: the scheduler reads it there.
            crate::controllers::scheduler::add_capacity(tx)?;
            if let Some(classes) = registry.find("storage.k8s.io", "v1", "storageclasses")
                && tx.get(&ops::key(&classes, "", crate::controllers::DEFAULT_CLASS)).is_none()
            {
                ops::create(tx, &classes, "", default_storage_class(), how())?;
            }
            crate::controllers::sync_api_services(tx)?;
            if tx.get(&ops::key(&accounts, "default", "default")).is_none() {
                let obj = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
                ops::create(tx, &accounts, "default", obj, how())?;
            }
            Ok(())
        })
        .await
}
