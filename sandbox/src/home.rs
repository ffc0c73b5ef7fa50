//! The sandbox's files under the kip home: store, kubeconfig, address and pid.
//!
//! The store holds Secret data and the kubeconfig a token, so the sandbox's folders are
//! readable by their owner only (0700) and the files in them too (0600); folders and files an
//! older kip left looser are tightened when the sandbox next writes or opens them.

use std::io::Write as _;
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

    /// Creates the sandbox's folder (and the kip home, when missing) for its owner only.
    pub fn create_dir(&self) -> std::io::Result<()> {
        private_dir(&self.dir)
    }

    /// Records the address and writes a kubeconfig whose context `kip-sandbox` points at it.
    pub fn write_kubeconfig(&self, address: &str) -> std::io::Result<PathBuf> {
        self.create_dir()?;
        write_private(&self.address_file(), address.as_bytes())?;
        let path = self.kubeconfig();
        write_private(&path, kubeconfig(&format!("http://{address}")).as_bytes())?;
        Ok(path)
    }
}

/// Creates `dir` and its missing parents readable by their owner only; folders that exist
/// keep their permissions.
pub fn create_dirs(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Like [`create_dirs`], and takes the group's and others' access away from `dir` if it
/// already had some.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    create_dirs(dir)?;
    tighten(dir)
}

/// Opens `path` for writing (created when missing, not truncated) readable by its owner only,
/// tightening an existing file.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    tighten(path)?;
    Ok(file)
}

/// Replaces `path` with a file holding `bytes`, readable by its owner only. The file is
/// written beside it and renamed over it, so a reader never sees half of it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        tighten(&temp)?;
        file.write_all(bytes)?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Takes the group's and others' permissions away from `path`, keeping the owner's.
pub fn tighten(path: &Path) -> std::io::Result<()> {
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
