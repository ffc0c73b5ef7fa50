//! The sandbox's files under the kip home: store, kubeconfig, address and pid.

use std::path::{Path, PathBuf};

/// The context name the written kubeconfig uses.
pub const CONTEXT: &str = "kip-sandbox";

/// Where one sandbox keeps its files (`$KIP_HOME/sandbox`).
#[derive(Debug, Clone)]
pub struct SandboxHome {
    pub dir: PathBuf,
}

impl SandboxHome {
    pub fn new(kip_home: &Path) -> Self {
        SandboxHome {
            dir: kip_home.join("sandbox"),
        }
    }

    /// The store's folder.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Where the running server recorded the address it listens on.
    pub fn address_file(&self) -> PathBuf {
        self.dir.join("address")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("sandbox.pid")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("sandbox.log")
    }

    /// The address the sandbox last listened on, if it ever ran.
    pub fn last_address(&self) -> Option<String> {
        std::fs::read_to_string(self.address_file())
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Records the address and writes a kubeconfig whose context `kip-sandbox` points at it.
    pub fn write_kubeconfig(&self, address: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.address_file(), address)?;
        let path = self.kubeconfig();
        std::fs::write(&path, kubeconfig(&format!("http://{address}")))?;
        Ok(path)
    }
}

/// A kubeconfig with one cluster, user and context, all named `kip-sandbox`.
pub fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server}
users:
- name: {CONTEXT}
  user:
    token: kip-sandbox
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
"
    )
}
