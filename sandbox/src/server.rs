//! Running the sandbox: opening its store, seeding a fresh cluster, starting the simulated
//! controllers and serving HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::api::{self, Api};
use crate::controllers;
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::runtime::Runtime;
use crate::store::Store;

/// The ConfigMap in kube-system where a sandbox says what it is ([`Sandbox::announce`]).
pub const ANNOUNCED: &str = "kip-sandbox";

/// A sandbox cluster: its store and the controllers working on it.
#[derive(Clone)]
pub struct Sandbox {
    pub store: Store,
    /// Exec in pods annotated `sandbox.kipper.run/exec: host` runs the command on this machine.
    pub host_exec: bool,
    /// What runs pods as containers; without it every pod is simulated.
    pub runtime: Option<Arc<Runtime>>,
    /// Signs ServiceAccount tokens.
    pub token_key: crate::auth::tokens::Key,
}

impl Sandbox {
    /// Opens the sandbox stored in `dir`, seeding it on first use. Needs a tokio runtime.
    pub async fn open(dir: &Path) -> Result<Sandbox, String> {
        Self::open_with(dir, None).await
    }

    /// Opens the sandbox stored in `dir` with pods run by `runtime` (simulated without one).
    pub async fn open_with(dir: &Path, runtime: Option<Arc<Runtime>>) -> Result<Sandbox, String> {
        let store = Store::open(dir)?;
        let root_ca = crate::ca::load_or_create(Some(dir))?;
        let token_key = crate::auth::tokens::Key::load_or_create(dir)?;
        Self::start(store, root_ca, token_key, runtime).await
    }

    /// A sandbox that keeps nothing on disk.
    pub async fn in_memory() -> Result<Sandbox, String> {
        let root_ca = crate::ca::load_or_create(None)?;
        let token_key = crate::auth::tokens::Key::random();
        Self::start(Store::in_memory(), root_ca, token_key, None).await
    }

    async fn start(
        store: Store,
        root_ca: String,
        token_key: crate::auth::tokens::Key,
        runtime: Option<Arc<Runtime>>,
    ) -> Result<Sandbox, String> {
        seed(&store)
            .await
            .map_err(|e| format!("cannot seed the sandbox: {e}"))?;
        controllers::start(store.clone(), root_ca, runtime.is_some());
        if let Some(runtime) = &runtime {
            crate::runtime::start(runtime.clone(), store.clone()).await;
        }
        Ok(Sandbox {
            store,
            host_exec: false,
            runtime,
            token_key,
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
        let api = Api::new(self.store.clone())
            .with_host_exec(self.host_exec)
            .with_runtime(self.runtime.clone())
            .with_token_key(self.token_key.clone());
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

    /// Serves the cluster's Ingresses on `listener` (see `ingress_proxy`) in a background task:
    /// to pods the runtime runs, none otherwise.
    pub fn serve_ingress(&self, listener: TcpListener) {
        let runtime = self.runtime.clone();
        let reachable: crate::ingress_proxy::Reachable =
            Arc::new(move |ip| runtime.as_ref().is_some_and(|r| r.runs_address(ip)));
        let proxy = crate::ingress_proxy::IngressProxy::new(self.store.clone(), reachable);
        tokio::spawn(proxy.serve(listener, std::future::pending()));
    }

    /// Publishes facts about this sandbox in the ConfigMap `kube-system/kip-sandbox` (where its
    /// ingress listens, what runs pods), so scripts and clients can read them from the cluster.
    pub async fn announce(&self, facts: serde_json::Map<String, Value>) -> ApiResult<()> {
        self.store
            .write(move |tx| {
                let Some(maps) = tx.state().registry.find("", "v1", "configmaps") else {
                    return Ok(());
                };
                let key = ops::key(&maps, "kube-system", ANNOUNCED);
                let how = || WriteKind::Controller {
                    manager: "kip-sandbox",
                    part: Part::Main,
                };
                match tx.get(&key) {
                    None => {
                        let obj = json!({
                            "apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": ANNOUNCED},
                            "data": facts,
                        });
                        ops::create(tx, &maps, "kube-system", obj, how()).map(|_| ())
                    }
                    Some(old) => {
                        let mut new = (*old).clone();
                        new["data"] = Value::Object(facts);
                        ops::finish_write(tx, &maps, key, old, new, how()).map(|_| ())
                    }
                }
            })
            .await
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

/// The kinds a cluster made by `kip install` serves besides kip's own: Traefik's Middleware
/// (k3s ships Traefik with its CRDs) and cert-manager's Certificate (install adds it). kip's app
/// templates use both (route groups strip path prefixes, share one certificate). The schemas
/// keep whatever the spec holds, as the sandbox runs neither Traefik nor cert-manager.
fn platform_crds() -> [Value; 2] {
    let crd = |group: &str, version: &str, kind: &str, plural: &str| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {
                    "kind": kind, "listKind": format!("{kind}List"),
                    "plural": plural, "singular": kind.to_lowercase(),
                },
                "versions": [{
                    "name": version, "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        },
                    }},
                    "subresources": {"status": {}},
                }],
            },
        })
    };
    [
        crd("traefik.io", "v1alpha1", "Middleware", "middlewares"),
        crd("cert-manager.io", "v1", "Certificate", "certificates"),
    ]
}

/// The objects every cluster starts with.
async fn seed(store: &Store) -> ApiResult<()> {
    store
        .write(|tx| {
            let registry = tx.state().registry.clone();
            let (Some(namespaces), Some(services)) = (
                registry.find("", "v1", "namespaces"),
                registry.find("", "v1", "services"),
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
            // Made, or brought up to date when an older sandbox made it.
            crate::node::ensure(tx)?;
            if let Some(classes) = registry.find("storage.k8s.io", "v1", "storageclasses")
                && tx.get(&ops::key(&classes, "", crate::controllers::DEFAULT_CLASS)).is_none()
            {
                ops::create(tx, &classes, "", default_storage_class(), how())?;
            }
            if let Some(crds) = registry.find("apiextensions.k8s.io", "v1", "customresourcedefinitions") {
                for crd in platform_crds() {
                    let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    if tx.get(&ops::key(&crds, "", &name)).is_none() {
                        ops::create(tx, &crds, "", crd, how())?;
                    }
                }
            }
            for role in crate::auth::roles::defaults() {
                let plural = crate::auth::roles::plural(&role);
                let ns = role["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
                let name = role["metadata"]["name"].as_str().unwrap_or_default().to_string();
                if let Some(res) = registry.find("rbac.authorization.k8s.io", "v1", plural)
                    && tx.get(&ops::key(&res, &ns, &name)).is_none()
                {
                    ops::create(tx, &res, &ns, role, how())?;
                }
            }
            crate::controllers::sync_api_services(tx)?;
            // Each namespace's ServiceAccount and root CA come from the controllers, for the
            // namespaces made here as for any other.
            Ok(())
        })
        .await
}
