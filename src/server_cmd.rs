//! `kip server`: the controllers that reconcile kip's resources, run here against the cluster
//! kip talks to (in a pod: the cluster it runs in).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use builtins::{Host, Kind, UiSettings};
use kip_core::{Kip, Limits, SearchPath};

use crate::cli_error::CliError;
use crate::home::kip_home;

/// Run kip's server: controllers for App, Project and Service, and an HTTP endpoint with push
/// webhooks.
///
/// Each App, Project and Service in the cluster gets the objects the verbs would make, by the
/// same stdlib functions (lib/reconcile.rhai, which your scripts folders may override), and its
/// status written back. Several servers may run: one at a time works, the one holding the
/// Lease kipper-system/kip-server; another takes over within --lease-seconds of it stopping.
/// Every server answers git push webhooks (POST /hooks/github, /hooks/gitlab, /hooks/generic)
/// for the apps whose webhook is enabled (`kip app webhook enable`), and runs the hooks of the
/// projects a push reached (`kip hook add`) in a restricted engine. The web console is
/// served under / (sign in with the token in Secret kipper-system/kip-console, made on first
/// start, or --console-token).
/// Talks to the cluster kip talks to (`kip cluster list`); in a pod, to the cluster it runs in.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Where the HTTP endpoint (GET /healthz, POST /hooks/*) listens.
    #[arg(long, default_value = "127.0.0.1:8080", env = "KIP_SERVER_LISTEN")]
    listen: SocketAddr,
    /// This server's name in the Lease [default: HOSTNAME-PID].
    #[arg(long)]
    identity: Option<String>,
    /// How long the Lease lasts unrenewed: how soon another server takes over from one that died.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=300))]
    lease_seconds: u64,
    /// How many resources are reconciled at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// The cluster's id in app hostnames (`kip install` sets it in the pod); saved in this
    /// kip home's entry for the cluster, as `kip install` saves it on a workstation.
    #[arg(long, env = "KIP_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// The wildcard domain of app hostnames (as --cluster-id).
    #[arg(long, env = "KIP_DOMAIN")]
    domain: Option<String>,
    /// The token that signs in to the console [default: Secret kipper-system/kip-console,
    /// made with a random token if missing].
    #[arg(long, env = "KIP_CONSOLE_TOKEN", hide_env_values = true)]
    console_token: Option<String>,
    /// Serve no web console.
    #[arg(long)]
    no_console: bool,
    /// The image of the X-Instance-ID sidecar in front of apps (as --cluster-id; `kip install
    /// --instance-id-image` sets it in the pod).
    #[arg(long, env = "KIP_INSTANCE_ID_IMAGE")]
    instance_id_image: Option<String>,
}

pub fn run(args: ServerArgs) -> Result<(), CliError> {
    let home = kip_home().map_err(|e| CliError::new(Kind::Invalid, e))?;
    let _ = crate::home::create(&home);
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let search = SearchPath::new(None, &cwd, &home);
    let mut kip = Kip::load(search.clone(), &Limits::RECONCILE);
    for broken in kip.verbs.broken() {
        eprintln!(
            "warning: skipped {}, which is broken: {}",
            broken.origin.display(),
            broken.error.message
        );
    }
    let choice = crate::cluster::choose(&home).map_err(|e| CliError::new(Kind::NotFound, e))?;
    if args.cluster_id.is_some() || args.domain.is_some() || args.instance_id_image.is_some() {
        remember_hostnames(&home, &choice.name, &args)?;
    }
    let runtime = crate::verb_cmd::runtime()?;
    let reached = crate::cluster::reach(&choice, &runtime, &home)?;
    let _entered = runtime.enter();
    let (cluster, client) = (reached.choice.clone(), reached.client.clone());
    // Hooks on push run in engines of their own, with the hook limits, on the same cluster.
    let hooks = kip_server::hooks::Runner {
        client: client.client.clone(),
        cluster: cluster.clone(),
        search,
        kip_home: home.clone(),
        runtime: runtime.handle().clone(),
        limits: Limits::HOOK,
    };
    let console = if args.no_console {
        None
    } else {
        let token = match args.console_token.clone() {
            Some(token) if token.len() < 16 => {
                return Err(CliError::new(
                    Kind::Invalid,
                    "--console-token is too short: use at least 16 characters, or leave it out for the one in Secret kipper-system/kip-console",
                ));
            }
            Some(token) => Ok(token),
            None => runtime.block_on(kip_server::console::cluster_token(&client.client)),
        };
        match token {
            Ok(token) => {
                let runner = kip_server::console::Runner {
                    cluster: cluster.clone(),
                    search: (*kip.search).clone(),
                    kip_home: home.clone(),
                    runtime: runtime.handle().clone(),
                };
                Some(
                    kip_server::console::Console::new(runner, token)
                        .with_cluster_sign_in(reached.as_user.clone()),
                )
            }
            Err(why) => {
                eprintln!("warning: no web console: {why}");
                None
            }
        }
    };
    let console_token_from = match (&console, &args.console_token) {
        (None, _) => None,
        (Some(_), Some(_)) => Some("--console-token"),
        (Some(_), None) => Some("Secret kipper-system/kip-console"),
    };
    let host = Host::new(
        runtime.handle().clone(),
        home,
        kip.search.clone(),
        UiSettings::default(),
        cluster,
    );
    builtins::set_host(&mut kip.engine, Arc::new(host));
    let identity = args.identity.unwrap_or_else(default_identity);
    let mut options = kip_server::Options::new(args.listen, identity);
    options.lease_duration = Duration::from_secs(args.lease_seconds);
    options.concurrency = args.concurrency;
    let server = client.server.clone();
    let cluster_name = choice.name.clone();
    runtime
        .block_on(kip_server::run(
            kip_server::Scripts::new(kip),
            client.client,
            Some(hooks),
            console,
            options,
            crate::sandbox_cmd::shutdown_signal(),
            move |address| {
                println!("✔ kip server listening on http://{address}");
                println!(
                    "  reconciling App, Project and Service on cluster `{cluster_name}` ({server})"
                );
                if let Some(from) = console_token_from {
                    println!("  console at http://{address}/ (token: {from})");
                }
            },
        ))
        .map_err(|e| CliError::new(Kind::Failed, e))
}

/// Saves `--cluster-id`, `--domain` and `--instance-id-image` in the kip home's entry of
/// `cluster`, where the scripts read them (an App applied without a host gets
/// `<app>-<cluster-id>.<domain>`).
fn remember_hostnames(
    home: &std::path::Path,
    cluster: &str,
    args: &ServerArgs,
) -> Result<(), CliError> {
    let failed = |e: String| CliError::new(Kind::Invalid, e);
    let mut config = builtins::config::Config::load(home).map_err(failed)?;
    let entry = config.entry_mut(cluster);
    if let Some(id) = &args.cluster_id {
        entry.cluster_id = Some(id.clone());
    }
    if let Some(domain) = &args.domain {
        entry.domain = Some(domain.clone());
    }
    if let Some(image) = &args.instance_id_image {
        entry
            .other
            .insert("instance-id-image".into(), image.clone().into());
    }
    config.save(home).map_err(failed)
}

/// `HOSTNAME-PID`: unique among the servers of one cluster (a pod's hostname is its name).
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "kip".into());
    format!("{host}-{}", std::process::id())
}
