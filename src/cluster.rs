//! Which cluster a command talks to, and the client for it.
//!
//! In order: the `current-cluster` entry of `config.yaml` (its kubeconfig and context, or its
//! server and token); with none, `KUBECONFIG` or `~/.kube/config` and its current context; with
//! neither, the local sandbox, started if needed.

use std::path::{Path, PathBuf};

use builtins::ClusterClient;
use builtins::config::{Cluster, Config};
use kube::config::{
    AuthInfo, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

/// The name the sandbox goes by in `config.yaml`.
pub const SANDBOX: &str = "sandbox";

/// How to reach the chosen cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// The local sandbox under the kip home.
    Sandbox,
    /// A kubeconfig file (`None`: `KUBECONFIG` or `~/.kube/config`) and context (`None`: its
    /// current context).
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
    /// The cluster this process runs in (`kip server` in a pod): its service account.
    InCluster,
    /// An API endpoint with a bearer token.
    Server {
        server: String,
        token: Option<String>,
        certificate_authority: Option<String>,
        insecure: bool,
    },
}

/// The cluster a command talks to: its name in `config.yaml` (where its per-cluster settings
/// live) and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub name: String,
    pub connection: Connection,
}

/// Decides the cluster without connecting to it.
pub fn choose(home: &Path) -> Result<Choice, String> {
    let config = Config::load(home)?;
    if let Some(entry) = config.current() {
        return from_entry(entry, home);
    }
    match default_kubeconfig() {
        None if in_cluster() => Ok(Choice {
            name: "in-cluster".into(),
            connection: Connection::InCluster,
        }),
        Some(kubeconfig) => Ok(Choice {
            name: kubeconfig
                .current_context
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "kubeconfig".into()),
            connection: Connection::Kubeconfig {
                path: None,
                context: None,
            },
        }),
        None => Ok(Choice {
            name: SANDBOX.into(),
            connection: Connection::Sandbox,
        }),
    }
}

/// Like [`choose`], for a throwaway kip home (`kip test`): a cluster its `config.yaml` names,
/// else its own sandbox, never the user's `KUBECONFIG`.
pub fn choose_isolated(home: &Path) -> Result<Choice, String> {
    let config = Config::load(home)?;
    match config.current() {
        Some(entry) => from_entry(entry, home),
        None => Ok(Choice {
            name: SANDBOX.into(),
            connection: Connection::Sandbox,
        }),
    }
}

fn from_entry(entry: &Cluster, home: &Path) -> Result<Choice, String> {
    let connection = if let Some(path) = &entry.kubeconfig {
        Connection::Kubeconfig {
            path: Some(PathBuf::from(path)),
            context: entry.context.clone(),
        }
    } else if let Some(server) = &entry.server {
        Connection::Server {
            server: server.clone(),
            token: entry.token.clone(),
            certificate_authority: entry.certificate_authority.clone(),
            insecure: entry.insecure_skip_tls_verify.unwrap_or(false),
        }
    } else if entry.name == SANDBOX {
        Connection::Sandbox
    } else {
        return Err(format!(
            "cluster `{}` in {} has neither `kubeconfig` nor `server`: add one with `kip cluster add {} --kubeconfig PATH` or switch with `kip cluster use`",
            entry.name,
            Config::path(home).display(),
            entry.name
        ));
    };
    Ok(Choice {
        name: entry.name.clone(),
        connection,
    })
}

/// Running in a pod: the API server's address and a service account token are there.
fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
}

/// `KUBECONFIG` or `~/.kube/config`, when there is one.
fn default_kubeconfig() -> Option<Kubeconfig> {
    let named = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    let home_file =
        std::env::var_os("HOME").is_some_and(|h| Path::new(&h).join(".kube/config").exists());
    if !named && !home_file {
        return None;
    }
    // An unreadable kubeconfig is reported when connecting; here it still counts as chosen.
    Some(Kubeconfig::read().unwrap_or_default())
}

impl Choice {
    /// What to try when the cluster cannot be reached.
    pub fn unreachable_hint(&self) -> String {
        match &self.connection {
            Connection::Sandbox => "`kip sandbox status` tells how the local sandbox is".into(),
            Connection::Kubeconfig { path: None, .. } => format!(
                "check the kubeconfig's context `{}`; `kip cluster use sandbox` switches to the local sandbox",
                self.name
            ),
            Connection::InCluster => {
                "check the pod's service account and the API server's address (KUBERNETES_SERVICE_HOST)".into()
            }
            Connection::Kubeconfig { path: Some(_), .. } | Connection::Server { .. } => format!(
                "check cluster `{}` with `kip cluster list`, or switch with `kip cluster use`",
                self.name
            ),
        }
    }
}

/// What a host knows of `choice`: its name, what to try when it cannot be reached, and its
/// client, made on first use on `handle`'s runtime.
pub fn host_choice(
    choice: Choice,
    handle: tokio::runtime::Handle,
    home: PathBuf,
) -> builtins::ClusterChoice {
    builtins::ClusterChoice {
        name: choice.name.clone(),
        unreachable_hint: choice.unreachable_hint(),
        client: std::sync::Arc::new(move || client(&choice, &handle, &home)),
    }
}

/// The client for `choice`; the sandbox is started if needed and says so in one line.
pub fn client(
    choice: &Choice,
    handle: &tokio::runtime::Handle,
    home: &Path,
) -> Result<ClusterClient, String> {
    connect(config(choice, handle, home)?)
}

/// How to reach `choice`: its server and credentials (the sandbox started if needed).
pub fn config(
    choice: &Choice,
    handle: &tokio::runtime::Handle,
    home: &Path,
) -> Result<kube::Config, String> {
    let mut config = match &choice.connection {
        Connection::Sandbox => {
            let kubeconfig = start_sandbox(home)?;
            handle
                .block_on(kube::Config::from_custom_kubeconfig(
                    kubeconfig,
                    &KubeConfigOptions::default(),
                ))
                .map_err(|e| e.to_string())?
        }
        Connection::Kubeconfig {
            path: None,
            context,
        } => handle
            .block_on(kube::Config::from_kubeconfig(&options(context)))
            .map_err(|e| format!("cannot use the kubeconfig: {e}"))?,
        Connection::Kubeconfig {
            path: Some(path),
            context,
        } => {
            if path.starts_with(home.join("clusters")) {
                // One `kip install` saved, with the cluster's credentials: its owner's alone,
                // whatever an older kip left. Kubeconfigs elsewhere are the user's business.
                let _ = sandbox::home::tighten(path);
            }
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                format!(
                    "cannot read the kubeconfig {} of cluster `{}`: {e}",
                    path.display(),
                    choice.name
                )
            })?;
            handle
                .block_on(kube::Config::from_custom_kubeconfig(
                    kubeconfig,
                    &options(context),
                ))
                .map_err(|e| format!("cannot use the kubeconfig {}: {e}", path.display()))?
        }
        Connection::InCluster => kube::Config::incluster()
            .map_err(|e| format!("cannot use the pod's service account: {e}"))?,
        Connection::Server {
            server,
            token,
            certificate_authority,
            insecure,
        } => handle
            .block_on(kube::Config::from_custom_kubeconfig(
                server_kubeconfig(
                    &choice.name,
                    server,
                    token.as_deref(),
                    certificate_authority.as_deref(),
                    *insecure,
                ),
                &KubeConfigOptions::default(),
            ))
            .map_err(|e| {
                format!(
                    "cannot use server {server} of cluster `{}`: {e}",
                    choice.name
                )
            })?,
    };
    if config.cluster_url.scheme_str() == Some("http") && config.root_cert.is_none() {
        // Plain HTTP (the sandbox) never verifies a certificate: an empty root store spares
        // every command reading the system's few hundred roots (about 4 ms).
        config.root_cert = Some(Vec::new());
    }
    Ok(config)
}

/// A client talking to `config`'s server with its credentials.
pub fn connect(config: kube::Config) -> Result<ClusterClient, String> {
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|e| format!("cannot build a cluster client: {e}"))?;
    Ok(ClusterClient {
        client,
        server: server.trim_end_matches('/').to_string(),
    })
}

/// `config` with the bearer `token` as its only credentials: the same server, as the user
/// the token authenticates (client certificates, exec plugins and impersonation dropped).
pub fn as_token(config: &kube::Config, token: &str) -> kube::Config {
    let mut config = config.clone();
    config.auth_info = AuthInfo {
        token: Some(token.to_string().into()),
        ..AuthInfo::default()
    };
    config
}

/// The cluster a long-running command (`kip console`, `kip server`) works on: one client,
/// made and checked at start, and how to reach the cluster as another user.
pub struct Reached {
    /// What hosts and engines use: always this client.
    pub choice: builtins::ClusterChoice,
    pub client: ClusterClient,
    /// A client for the user a bearer token authenticates (the console's cluster sign-in).
    pub as_user: kip_server::console::AsUser,
}

/// Reaches `choice` on `runtime`, or says why not in words: an unreachable cluster is said at
/// once, not retried in the background for ever.
pub fn reach(
    choice: &Choice,
    runtime: &tokio::runtime::Runtime,
    home: &Path,
) -> Result<Reached, crate::cli_error::CliError> {
    use crate::cli_error::CliError;
    use builtins::Kind;
    let unreachable = |e: String| {
        CliError::new(
            Kind::Unreachable,
            format!(
                "cannot reach cluster `{}`: {e}; {}",
                choice.name,
                choice.unreachable_hint()
            ),
        )
    };
    // The client spawns its connection tasks on the runtime it is made in.
    let _entered = runtime.enter();
    let config = config(choice, runtime.handle(), home).map_err(unreachable)?;
    let client = connect(config.clone()).map_err(unreachable)?;
    runtime
        .block_on(client.client.apiserver_version())
        .map_err(|e| unreachable(format!("at {}: {e}", client.server)))?;
    let fixed = client.clone();
    let handle = runtime.handle().clone();
    Ok(Reached {
        choice: builtins::ClusterChoice {
            name: choice.name.clone(),
            unreachable_hint: choice.unreachable_hint(),
            client: std::sync::Arc::new(move || Ok(fixed.clone())),
        },
        client,
        as_user: std::sync::Arc::new(move |token| {
            let _entered = handle.enter();
            connect(as_token(&config, token))
        }),
    })
}

fn options(context: &Option<String>) -> KubeConfigOptions {
    KubeConfigOptions {
        context: context.clone(),
        ..KubeConfigOptions::default()
    }
}

/// A kubeconfig in memory for an endpoint and token, so kube handles TLS the one way it
/// always does.
fn server_kubeconfig(
    name: &str,
    server: &str,
    token: Option<&str>,
    certificate_authority: Option<&str>,
    insecure: bool,
) -> Kubeconfig {
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.into(),
            cluster: Some(kube::config::Cluster {
                server: Some(server.into()),
                certificate_authority: certificate_authority.map(Into::into),
                insecure_skip_tls_verify: insecure.then_some(true),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.into(),
            auth_info: Some(AuthInfo {
                token: token.map(|t| t.to_string().into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: name.into(),
            context: Some(Context {
                cluster: name.into(),
                user: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(name.into()),
        ..Default::default()
    }
}

fn start_sandbox(home: &Path) -> Result<Kubeconfig, String> {
    let sandbox = sandbox::home::SandboxHome::new(home);
    let any_port = "127.0.0.1:0"
        .parse()
        .map_err(|_| "bad address".to_string())?;
    if let crate::sandbox_cmd::Started::Now { address, .. } =
        crate::sandbox_cmd::ensure_running(&sandbox, any_port)?
    {
        eprintln!("No cluster configured: started the local sandbox at http://{address}");
    }
    let text = std::fs::read_to_string(sandbox.kubeconfig())
        .map_err(|e| format!("cannot read the sandbox kubeconfig: {e}"))?;
    Kubeconfig::from_yaml(&text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home_with(yaml: &str) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("config.yaml"), yaml).unwrap();
        home
    }

    #[test]
    fn current_entry_wins() {
        let home = home_with(
            "current-cluster: prod\nclusters:\n  - name: prod\n    server: https://10.0.0.1:6443\n    token: t\n",
        );
        let choice = choose(home.path()).unwrap();
        assert_eq!(choice.name, "prod");
        assert!(
            matches!(choice.connection, Connection::Server { ref server, .. } if server == "https://10.0.0.1:6443")
        );
    }

    #[test]
    fn kubeconfig_entry_keeps_its_context() {
        let home = home_with(
            "current-cluster: a\nclusters:\n  - name: a\n    kubeconfig: /k\n    context: ctx\n",
        );
        assert_eq!(
            choose(home.path()).unwrap().connection,
            Connection::Kubeconfig {
                path: Some("/k".into()),
                context: Some("ctx".into())
            }
        );
    }

    #[test]
    fn entry_without_connection_is_an_error_naming_the_fix() {
        let home = home_with("current-cluster: a\nclusters:\n  - name: a\n");
        let err = choose(home.path()).unwrap_err();
        assert!(err.contains("kip cluster add a --kubeconfig"), "{err}");
    }

    #[test]
    fn sandbox_entry_is_the_sandbox() {
        let home = home_with("current-cluster: sandbox\nclusters:\n  - name: sandbox\n");
        assert_eq!(choose(home.path()).unwrap().connection, Connection::Sandbox);
    }
}
