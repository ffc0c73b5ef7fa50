//! `kip server`: the in-cluster half of kip. Controllers reconcile kip's resources (App,
//! Project, Service) by calling the stdlib functions the verbs call (`lib/reconcile.rhai`), so
//! an App applied with kubectl gets the objects `kip app deploy` would make; one server at a
//! time works, by holding a Lease. An HTTP endpoint answers health checks and git push
//! webhooks (every replica answers webhooks, lease or not); a verified push runs the hooks of
//! the projects it reached (`hooks.rs`). The web console is served under `/` (`console/`).

pub mod console;
pub mod controllers;
pub mod hooks;
mod http;
pub mod leader;
pub mod push;
pub mod scripts;
pub mod webhooks;

use std::net::SocketAddr;
use std::time::Duration;

pub use scripts::Scripts;

/// How a server runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the HTTP endpoint listens.
    pub listen: SocketAddr,
    /// This server among its replicas, as the Lease names its holder.
    pub identity: String,
    /// The namespace of the Lease (`kipper-system`).
    pub lease_namespace: String,
    /// How long a lease lasts without renewal: how soon another server takes over from one
    /// that died.
    pub lease_duration: Duration,
    /// How many resources are reconciled at once.
    pub concurrency: u16,
}

impl Options {
    /// The defaults for a server listening on `listen`.
    pub fn new(listen: SocketAddr, identity: String) -> Options {
        Options {
            listen,
            identity,
            lease_namespace: "kipper-system".into(),
            lease_duration: Duration::from_secs(15),
            concurrency: 4,
        }
    }
}

/// Runs the server until `shutdown` resolves: the HTTP endpoint at once, the controllers
/// whenever this server holds the lease. `ready` is told the address it listens on.
pub async fn run(
    scripts: Scripts,
    client: kube::Client,
    hooks: Option<hooks::Runner>,
    console: Option<console::Console>,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    ready(address);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let hooks = std::sync::Arc::new(webhooks::State::new(client.clone(), hooks)?);
    let http = tokio::spawn(http::serve(
        listener,
        hooks,
        console.map(std::sync::Arc::new),
        stopped.clone(),
    ));
    let lease = leader::Lease::new(
        client.clone(),
        &options.lease_namespace,
        "kip-server",
        &options.identity,
        options.lease_duration,
    );
    let work = leader::while_leader(lease, stopped, move || {
        controllers::run(client.clone(), scripts.clone(), options.concurrency)
    });
    let work = tokio::spawn(work);
    shutdown.await;
    let _ = stop.send(true);
    let worked = work
        .await
        .map_err(|e| format!("the controllers stopped: {e}"))?;
    let _ = http.await;
    worked
}
