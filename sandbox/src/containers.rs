//! podman and buildah as the sandbox runs them: a configuration of its own (runc, cgroupfs,
//! vfs storage, no default ulimits) and a store in one folder, shared by the sandbox's
//! kubelet, `kip sandbox image build|prepare` and the tests.
//!
//! The configuration is what works on the machines kip is tested on: crun fails on a cgroup
//! v1/v2 hybrid and runc does not; there is no systemd or journald; root in a container may not
//! raise its rlimits, which podman's default ulimits would; vfs needs neither overlayfs nor
//! fuse. The environment variables `CONTAINERS_CONF` and `CONTAINERS_STORAGE_CONF` point both
//! tools at it, so nothing of the machine's own configuration is changed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Where the store lives when `KIP_CONTAINERS` does not say: beside the sandbox, in the kip home.
pub const DIR_ENV: &str = "KIP_CONTAINERS";

/// The podman/buildah set-up of one store folder.
#[derive(Debug, Clone)]
pub struct Containers {
    dir: PathBuf,
}

impl Containers {
    /// The store of the kip home `kip_home`, or the folder `KIP_CONTAINERS` names; writes its
    /// configuration files. Several sandboxes (and tests) may share one store: podman locks it.
    pub fn for_kip_home(kip_home: &Path) -> std::io::Result<Containers> {
        let dir = std::env::var_os(DIR_ENV)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| kip_home.join("containers"));
        Containers::at(&dir)
    }

    /// The store in `dir`, with its configuration written there.
    pub fn at(dir: &Path) -> std::io::Result<Containers> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let containers = Containers { dir };
        write_if_changed(
            &containers.containers_conf(),
            &containers.containers_conf_text(),
        )?;
        write_if_changed(&containers.storage_conf(), &containers.storage_conf_text())?;
        Ok(containers)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn containers_conf(&self) -> PathBuf {
        self.dir.join("containers.conf")
    }

    pub fn storage_conf(&self) -> PathBuf {
        self.dir.join("storage.conf")
    }

    fn containers_conf_text(&self) -> String {
        format!(
            "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\ntmp_dir = \"{}\"\n",
            self.dir.join("tmp").display()
        )
    }

    fn storage_conf_text(&self) -> String {
        format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
            self.dir.join("run").display(),
            self.dir.join("storage").display()
        )
    }

    /// `program` (podman, buildah) with this store's configuration and no stdin.
    pub fn command(&self, program: impl AsRef<OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.env("CONTAINERS_CONF", self.containers_conf())
            .env("CONTAINERS_STORAGE_CONF", self.storage_conf())
            .stdin(Stdio::null());
        cmd
    }

    /// [`Containers::command`] for async callers; the child is killed if the future is dropped.
    pub fn tokio_command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::from(self.command(program));
        cmd.kill_on_drop(true);
        cmd
    }
}

/// Why podman cannot run the sandbox's pods on this machine, if it cannot: it is missing, or
/// kip runs without root (pods get their own network namespaces on a bridge of the host,
/// which needs root).
pub fn podman_unavailable() -> Option<String> {
    if !on_path("podman") {
        return Some("podman is not installed (on Debian: apt-get install podman runc)".into());
    }
    if !on_path("runc") {
        return Some("runc is not installed (on Debian: apt-get install runc)".into());
    }
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "pods need network namespaces on a bridge of this machine, which needs root: \
             run the sandbox as root, or with --runtime none"
                .into(),
        );
    }
    None
}

/// Whether `program` is an executable file in a folder of `PATH`.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    // Written aside and renamed, so a podman started meanwhile never reads half a file.
    let aside = path.with_extension("new");
    std::fs::write(&aside, text)?;
    std::fs::rename(aside, path)
}
