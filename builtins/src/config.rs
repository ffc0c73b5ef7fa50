//! `config::…`: the kip home's `config.yaml` — the clusters kip knows, which one is current and
//! each cluster's active project. Scripts see the file as a map with the file's own keys
//! (`cfg["current-cluster"]`, `cluster["active-project"]`).
//!
//! ```yaml
//! current-cluster: prod
//! clusters:
//!   - name: prod
//!     kubeconfig: /path        # with an optional context…
//!     context: prod-admin
//!     server: https://…:6443   # …or server + token (+ certificate-authority)
//!     token: …
//!     cluster-id: 203-0-113-10
//!     domain: kipper.run
//!     org: ""
//!     active-project: shop/test
//! ```

use crate::errors::Kind;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rhai::{Dynamic, EvalAltResult, Map};
use serde::{Deserialize, Serialize};

use crate::host;

/// The file name inside the kip home.
pub const FILE: &str = "config.yaml";

/// The whole `config.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_cluster: Option<String>,
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Keys this version does not know, kept so an older kip does not erase a newer one's.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One cluster entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// The kubeconfig context; absent: the file's current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A PEM file with the CA that signed `server`'s certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Prefix of namespaces (`org-project-env`); empty or absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// `project/environment` the project verbs default to on this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_project: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Config {
    /// The path of the file in `home`.
    pub fn path(home: &Path) -> PathBuf {
        home.join(FILE)
    }

    /// Reads the file in `home`; a missing file is an empty configuration. A file readable by
    /// others is made its owner's alone.
    pub fn load(home: &Path) -> Result<Config, String> {
        let path = Self::path(home);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
        };
        // Tokens live here: a file an older kip (or an editor) left readable to others is
        // made its owner's alone. Failing that is no reason not to read it.
        let _ = tighten(&path);
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str(&text).map_err(|err| format!("malformed {}: {err}", path.display()))
    }

    /// Writes the file in `home` atomically: a temporary file beside it, then a rename, so a
    /// crash leaves the old file or the new one, never half of one. Readable only by its owner,
    /// since entries may hold tokens.
    pub fn save(&self, home: &Path) -> Result<(), String> {
        self.validate()?;
        let path = Self::path(home);
        let yaml = serde_saphyr::to_string(self)
            .map_err(|err| format!("cannot serialize the configuration: {err}"))?;
        create_private_dirs(home)
            .map_err(|err| format!("cannot create {}: {err}", home.display()))?;
        let temp = home.join(format!(".{FILE}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let written =
            write_private(&temp, yaml.as_bytes()).and_then(|()| std::fs::rename(&temp, &path));
        written.map_err(|err| {
            let _ = std::fs::remove_file(&temp);
            format!("cannot write {}: {err}", path.display())
        })
    }

    /// Rules a script could break through `config::save`.
    fn validate(&self) -> Result<(), String> {
        for (index, cluster) in self.clusters.iter().enumerate() {
            if cluster.name.is_empty() {
                return Err(format!("cluster {} has no name", index + 1));
            }
            if self.clusters[..index]
                .iter()
                .any(|c| c.name == cluster.name)
            {
                return Err(format!("cluster `{}` is listed twice", cluster.name));
            }
        }
        match &self.current_cluster {
            Some(name) if self.cluster(name).is_none() => Err(format!(
                "current-cluster `{name}` is not one of the configured clusters"
            )),
            _ => Ok(()),
        }
    }

    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|cluster| cluster.name == name)
    }

    /// The entry `current-cluster` names.
    pub fn current(&self) -> Option<&Cluster> {
        self.current_cluster
            .as_deref()
            .and_then(|name| self.cluster(name))
    }

    /// The entry `name`, made when missing.
    pub fn entry_mut(&mut self, name: &str) -> &mut Cluster {
        let index = match self.clusters.iter().position(|c| c.name == name) {
            Some(index) => index,
            None => {
                self.clusters.push(Cluster {
                    name: name.into(),
                    ..Cluster::default()
                });
                self.clusters.len() - 1
            }
        };
        &mut self.clusters[index]
    }
}

/// Creates `dir` and its missing parents (the kip home among them) readable by their owner
/// only; folders that exist keep their permissions.
pub(crate) fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Takes the group's and others' access away from `path`, which an older kip may have left.
fn tighten(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o077))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn config_error(message: String) -> Box<EvalAltResult> {
    host::error(Kind::Invalid, message)
}

fn load_at(home: &Path) -> Result<Config, Box<EvalAltResult>> {
    Config::load(home).map_err(config_error)
}

/// Changes the entry of the cluster in use (made when missing) and saves.
fn update_in_use(
    call: &rhai::NativeCallContext,
    change: impl FnOnce(&mut Cluster),
) -> Result<(), Box<EvalAltResult>> {
    let host = host::host(call)?;
    host.reach.everything("config:: writes to the kip home")?;
    let mut config = load_at(&host.kip_home)?;
    change(config.entry_mut(&host.cluster_name()));
    config.save(&host.kip_home).map_err(config_error)
}

#[rhai::plugin::export_module]
pub mod config_module {
    use super::*;
    use rhai::plugin::*;

    /// The kip home directory (`~/.kip`, or `KIP_HOME`).
    ///
    /// `let dir = config::home();`
    #[rhai_fn(return_raw)]
    pub fn home(call: NativeCallContext) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            Ok(host::host(&call)?.kip_home.display().to_string())
        })
    }

    /// The whole `config.yaml` as a map with the file's keys (`current-cluster`, `clusters`,
    /// each with `name`, `kubeconfig`, `server`, `token`, `cluster-id`, `domain`, `org`,
    /// `active-project`); absent keys are missing from the map. A missing file gives
    /// `#{ clusters: [] }`.
    ///
    /// Raises `invalid` when the file cannot be read or is malformed (naming the file and the
    /// YAML error).
    ///
    /// `let cfg = config::load(); print(cfg["current-cluster"]);`
    #[rhai_fn(return_raw)]
    pub fn load(call: NativeCallContext) -> Result<Map, Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            // It holds every cluster's credentials.
            host::host(&call)?.reach.everything("config::load")?;
            let config = load_at(&host::host(&call)?.kip_home)?;
            rhai::serde::to_dynamic(&config)?
                .try_cast::<Map>()
                .ok_or_else(|| host::error(Kind::Internal, "the configuration is not a map"))
        })
    }

    /// Replaces `config.yaml` with `cfg` (a map shaped like `config::load()` returns),
    /// atomically and readable only by its owner.
    ///
    /// Raises `invalid` when `cfg` has the wrong shape, names a `current-cluster` that is not
    /// listed, lists a cluster twice or without a name, or the file cannot be written.
    ///
    /// `let cfg = config::load(); cfg["current-cluster"] = "prod"; config::save(cfg);`
    #[rhai_fn(return_raw)]
    pub fn save(call: NativeCallContext, cfg: Map) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            host::host(&call)?.reach.everything("config::save")?;
            let config: Config = rhai::serde::from_dynamic(&Dynamic::from_map(cfg))
                .map_err(|err| config_error(format!("not a valid configuration: {err}")))?;
            config
                .save(&host::host(&call)?.kip_home)
                .map_err(config_error)
        })
    }

    /// The name of the cluster this command talks to: the `current-cluster` entry, else the
    /// kubeconfig's current context, else `sandbox`. Its settings in `config.yaml` are kept
    /// under this name.
    ///
    /// `print(`on cluster ${config::cluster_name()}`);`
    #[rhai_fn(return_raw)]
    pub fn cluster_name(call: NativeCallContext) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            Ok(host::host(&call)?.cluster_name())
        })
    }

    /// The context names of the kubeconfig file at `path`, so a script can check a
    /// `--context` before saving it.
    ///
    /// Raises `invalid` when the file cannot be read or is not a kubeconfig.
    ///
    /// `if !config::kubeconfig_contexts(path).contains(ctx) { throw "no such context"; }`
    #[rhai_fn(return_raw)]
    pub fn kubeconfig_contexts(
        ctx: NativeCallContext,
        path: &str,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            host::host(&ctx)?
                .reach
                .everything("config::kubeconfig_contexts")?;
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|err| config_error(format!("cannot read the kubeconfig {path}: {err}")))?;
            Ok(kubeconfig
                .contexts
                .into_iter()
                .map(|context| context.name.into())
                .collect())
        })
    }

    /// A server's own kubeconfig (such as k3s's `/etc/rancher/k3s/k3s.yaml`) made usable
    /// from here: each server URL gets `server_host` as its host (scheme and port kept), and
    /// a file with one context has its cluster, user and context renamed to `name`, which
    /// becomes the current context.
    ///
    /// Raises `invalid` when `text` is not a kubeconfig or a server is not a URL.
    ///
    /// `let text = config::kubeconfig_for_host(k3s_yaml, "203.0.113.10", "203-0-113-10");`
    #[rhai_fn(return_raw)]
    pub fn kubeconfig_for_host(
        ctx: NativeCallContext,
        text: &str,
        server_host: &str,
        name: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            crate::kubeconfig::rewrite(text, server_host, name).map_err(config_error)
        })
    }

    /// Saves `text` as the kubeconfig of cluster `name` in the kip home
    /// (`clusters/<name>.kubeconfig`, readable only by its owner, replaced atomically) and
    /// returns its path, for a `config.yaml` entry to point at.
    ///
    /// Raises `invalid` when `name` is not a plain file name or the file cannot be written.
    ///
    /// `let path = config::save_kubeconfig("203-0-113-10", text);`
    #[rhai_fn(return_raw)]
    pub fn save_kubeconfig(
        call: NativeCallContext,
        name: &str,
        text: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            let host = host::host(&call)?;
            host.reach.everything("config::save_kubeconfig")?;
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !name.starts_with('.');
            if !plain {
                return Err(config_error(format!(
                    "`{name}` cannot name a kubeconfig file: use letters, digits, '-', '_' and '.'"
                )));
            }
            let dir = host.kip_home.join("clusters");
            let path = dir.join(format!("{name}.kubeconfig"));
            create_private_dirs(&dir)
                .and_then(|()| tighten(&dir))
                .map_err(|err| config_error(format!("cannot create {}: {err}", dir.display())))?;
            let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
            write_private(&temp, text.as_bytes())
                .and_then(|()| std::fs::rename(&temp, &path))
                .map_err(|err| {
                    let _ = std::fs::remove_file(&temp);
                    config_error(format!("cannot write {}: {err}", path.display()))
                })?;
            Ok(path.display().to_string())
        })
    }

    /// The `config.yaml` entry of the cluster this command talks to, as a map, or `()` when
    /// the file has none for it.
    ///
    /// Raises `invalid` like `config::load`.
    ///
    /// `let cluster = config::current_cluster(); if cluster != () { print(cluster.domain); }`
    #[rhai_fn(return_raw)]
    pub fn current_cluster(call: NativeCallContext) -> Result<Dynamic, Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            let host = host::host(&call)?;
            let config = load_at(&host.kip_home)?;
            match config.cluster(&host.cluster_name()) {
                // A hook sees how hostnames and namespaces are named, never credentials.
                Some(cluster) if host.reach.is_limited() => rhai::serde::to_dynamic(Cluster {
                    name: cluster.name.clone(),
                    cluster_id: cluster.cluster_id.clone(),
                    domain: cluster.domain.clone(),
                    org: cluster.org.clone(),
                    active_project: cluster.active_project.clone(),
                    ..Cluster::default()
                }),
                Some(cluster) => rhai::serde::to_dynamic(cluster),
                None => Ok(Dynamic::UNIT),
            }
        })
    }

    /// Sets the `active-project` (`"project/environment"`) of the cluster this command talks
    /// to, adding its entry when missing, and saves.
    ///
    /// Raises `invalid` when the file cannot be read or written.
    ///
    /// `config::set_active_project("shop/test");`
    #[rhai_fn(return_raw)]
    pub fn set_active_project(
        call: NativeCallContext,
        project_env: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            let project_env = project_env.to_owned();
            update_in_use(&call, |cluster| {
                cluster.active_project = Some(project_env);
            })
        })
    }

    /// Removes the `active-project` of the cluster this command talks to and saves; nothing
    /// to do when it has none.
    ///
    /// Raises `invalid` when the file cannot be read or written.
    ///
    /// `config::clear_active_project();`
    #[rhai_fn(return_raw)]
    pub fn clear_active_project(call: NativeCallContext) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            let host = host::host(&call)?;
            let config = load_at(&host.kip_home)?;
            if config
                .cluster(&host.cluster_name())
                .is_none_or(|c| c.active_project.is_none())
            {
                return Ok(());
            }
            update_in_use(&call, |cluster| cluster.active_project = None)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
current-cluster: sandbox
clusters:
  - name: sandbox
    kubeconfig: /path
    cluster-id: 203-0-113-10
    domain: kipper.run
    org: \"\"
    active-project: shop/test
    future-key: kept
";

    #[test]
    fn missing_file_is_empty() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(home.path()).unwrap(), Config::default());
    }

    #[test]
    fn round_trip_keeps_unknown_keys() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(FILE), SAMPLE).unwrap();
        let config = Config::load(home.path()).unwrap();
        let cluster = config.current().unwrap();
        assert_eq!(cluster.domain.as_deref(), Some("kipper.run"));
        assert_eq!(cluster.org.as_deref(), Some(""));
        assert_eq!(cluster.other["future-key"], "kept");
        config.save(home.path()).unwrap();
        assert_eq!(Config::load(home.path()).unwrap(), config);
        let leftovers = std::fs::read_dir(home.path()).unwrap().count();
        assert_eq!(leftovers, 1, "only config.yaml, no temporary file");
    }

    #[cfg(unix)]
    #[test]
    fn saved_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        Config::default().save(home.path()).unwrap();
        let mode = std::fs::metadata(home.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn malformed_file_names_itself() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(FILE), "clusters: [unclosed").unwrap();
        let err = Config::load(home.path()).unwrap_err();
        assert!(err.starts_with("malformed "), "{err}");
        assert!(err.contains("config.yaml"), "{err}");
    }

    #[test]
    fn validation() {
        let named = |name: &str| Cluster {
            name: name.into(),
            ..Cluster::default()
        };
        let dangling = Config {
            current_cluster: Some("x".into()),
            ..Config::default()
        };
        assert!(dangling.validate().unwrap_err().contains("`x`"));
        let twice = Config {
            clusters: vec![named("a"), named("a")],
            ..Config::default()
        };
        assert!(twice.validate().unwrap_err().contains("twice"));
        let nameless = Config {
            clusters: vec![named("")],
            ..Config::default()
        };
        assert!(nameless.validate().is_err());
    }
}
