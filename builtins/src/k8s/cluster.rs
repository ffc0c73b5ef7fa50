//! The client a builtin talks to the cluster through, made once per host, and what is kept
//! with it.

use std::future::Future;
use std::sync::{Arc, Mutex};

use kube::discovery::{ApiCapabilities, ApiResource};
use rhai::plugin::*;
use rhai::{EvalAltResult, Map};

use super::RhaiResult;
use super::error::kube_error;
use crate::errors::Kind;
use crate::host::{self, Host};

// The cluster talked to, merged into `k8s` by `super::module`, which holds the namespace's doc
// comment.
#[export_module]
pub mod cluster_module {
    use super::*;

    /// Talks to the cluster `config.yaml` names as current from now on (after a script made
    /// another cluster current, as `kip install` does), forgetting the client and the kinds
    /// learnt from the previous one. Returns the new cluster's name.
    ///
    /// Errors: `invalid` when `config.yaml` cannot be read or its current entry is incomplete;
    /// `internal` where the host has a fixed cluster.
    ///
    /// Example: `config::save(cfg); k8s::reconnect();`
    #[rhai_fn(return_raw)]
    pub fn reconnect(ctx: NativeCallContext) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let host = host::host(&ctx)?;
            let Some(rechoose) = host.rechoose.clone() else {
                return Err(host::error(
                    Kind::Internal,
                    "this kip cannot switch clusters while a script runs",
                ));
            };
            let choice = rechoose().map_err(|e| host::error(Kind::Invalid, e))?;
            let name = choice.name.clone();
            *host.cluster.write().unwrap_or_else(|e| e.into_inner()) = choice;
            *lock(&host.k8s) = State::default();
            Ok(name)
        })
    }

    /// The API server's version, e.g. `"v1.33.1"`.
    ///
    /// Example: `ui::step(`cluster ${k8s::server_version()}`);`
    #[rhai_fn(return_raw)]
    pub fn server_version(ctx: NativeCallContext) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let info = k.run(async { k.client.apiserver_version().await.map_err(kube_error) })?;
            Ok(info.git_version)
        })
    }
}

/// What this module keeps per host ([`Host::k8s`]): the client, and the kinds resolved so far.
#[derive(Default)]
pub struct State {
    pub(super) client: Option<host::ClusterClient>,
    pub(super) kinds: Vec<(String, String, ApiResource, ApiCapabilities)>,
}

pub(super) fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A builtin's view of the cluster: the host (for `block_on` and its state), and its client.
/// The other modules that talk to pods (`tunnel`, `pg`) use it too.
pub(crate) struct Cluster {
    pub(crate) host: Arc<Host>,
    pub(crate) client: kube::Client,
    server: String,
}

impl Cluster {
    pub(crate) fn of(ctx: &NativeCallContext) -> RhaiResult<Cluster> {
        let host = host::host(ctx)?;
        let cached = lock(&host.k8s).client.clone();
        let connected = match cached {
            Some(connected) => connected,
            None => {
                // Making a client spawns its connection task: do it inside the runtime.
                let _runtime = host.runtime.enter();
                let connected =
                    (host.choice().client)().map_err(|e| host::error(Kind::Unreachable, e))?;
                lock(&host.k8s).client = Some(connected.clone());
                connected
            }
        };
        Ok(Cluster {
            host,
            client: connected.client,
            server: connected.server,
        })
    }

    pub(crate) fn run<T>(&self, fut: impl Future<Output = RhaiResult<T>>) -> RhaiResult<T> {
        self.host
            .block_on_interruptible(fut)
            .map_err(|e| self.name_the_server(e))
    }

    /// An `unreachable` error names the server and what to try, which only the host knows.
    fn name_the_server(&self, err: Box<EvalAltResult>) -> Box<EvalAltResult> {
        let EvalAltResult::ErrorRuntime(value, _) = &*err else {
            return err;
        };
        let Some(mut map) = value.read_lock::<Map>().map(|m| m.clone()) else {
            return err;
        };
        if map.get("kind").map(|k| k.to_string()).as_deref() != Some(Kind::Unreachable.name()) {
            return err;
        }
        // Only a connection to the API server failed for want of a server; a pod that could
        // not be reached through it (a refused port-forward) already says why.
        let Some(cause) = map.get("cause").map(|c| c.to_string()) else {
            return err;
        };
        let hint = self.host.choice().unreachable_hint;
        let message = format!("cluster unreachable at {}: {cause} ({hint})", self.server);
        map.insert("message".into(), message.into());
        host::error_map(map)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::lock;
    use crate::host::testing;

    #[test]
    fn two_hosts_keep_separate_clients() {
        let runtime = testing::runtime();
        let (made_a, made_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let a = testing::host(&runtime, "a", made_a.clone());
        let b = testing::host(&runtime, "b", made_b.clone());
        let engine = |host| {
            let mut engine = rhai::Engine::new();
            crate::register_all(&mut engine, host);
            engine
        };
        let (on_a, on_b) = (engine(a.clone()), engine(b.clone()));
        // A built-in kind resolves without a request: nothing leaves the process.
        let has_kind = r#"k8s::has_kind("v1", "ConfigMap")"#;
        for _ in 0..2 {
            assert!(on_a.eval::<bool>(has_kind).expect("has_kind on a"));
        }
        assert_eq!(made_a.load(Ordering::SeqCst), 1, "a makes its client once");
        assert!(lock(&a.k8s).client.is_some());
        assert!(lock(&b.k8s).client.is_none(), "b does not see a's client");
        assert!(on_b.eval::<bool>(has_kind).expect("has_kind on b"));
        assert_eq!(
            made_b.load(Ordering::SeqCst),
            1,
            "b makes a client of its own"
        );
        assert_eq!(made_a.load(Ordering::SeqCst), 1);
    }
}
