//! Containers for the image tests: podman and buildah with a configuration of their own, the
//! containers they run (removed when dropped), and a docker-registry on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, raw_request, text};

/// How long a container or the registry may take to answer.
const WAIT: Duration = Duration::from_secs(30);

/// podman and buildah with their storage, state and configuration in one folder.
pub struct Engine {
    containers_conf: PathBuf,
    storage_conf: PathBuf,
}

impl Engine {
    pub fn new(scratch: &Path) -> Engine {
        let dir = scratch.join("containers");
        std::fs::create_dir_all(&dir).expect("containers folder");
        let containers_conf = dir.join("containers.conf");
        let storage_conf = dir.join("storage.conf");
        // No systemd or journald here, and root in a container may not raise its rlimits,
        // which podman's default ulimits would; crun, where installed, fails here and runc
        // does not.
        std::fs::write(
            &containers_conf,
            format!(
                "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\ntmp_dir = \"{}\"\n",
                dir.join("tmp").display()
            ),
        )
        .expect("write containers.conf");
        // vfs needs neither overlayfs nor fuse.
        std::fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                dir.join("run").display(),
                dir.join("storage").display()
            ),
        )
        .expect("write storage.conf");
        Engine {
            containers_conf,
            storage_conf,
        }
    }

    /// `program` with this engine's configuration.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("CONTAINERS_CONF", &self.containers_conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .stdin(Stdio::null());
        cmd
    }

    pub fn podman(&self, args: &[&str]) -> Output {
        self.command("podman")
            .args(args)
            .output()
            .expect("run podman")
    }

    /// `podman ARGS`'s stdout; fails the test with what podman said if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Starts `image` with `command` in the background, on the host's network.
    pub fn run(
        &self,
        what: &str,
        options: &[&str],
        image: &str,
        command: &[&str],
    ) -> Container<'_> {
        let name = format!("kip-image-test-{}-{what}", std::process::id());
        let mut args = vec!["run", "--detach", "--name", &name, "--network", "host"];
        args.extend(options);
        args.push(image);
        args.extend(command);
        self.ok(&args);
        Container { engine: self, name }
    }
}

/// A container podman runs; removed when dropped.
pub struct Container<'a> {
    engine: &'a Engine,
    pub name: String,
}

impl Container<'_> {
    pub fn logs(&self) -> String {
        let out = self.engine.podman(&["logs", &self.name]);
        format!("podman logs {}:\n{}", self.name, text(&out))
    }

    pub fn answers(&self, address: &str, path: &str) -> bool {
        matches!(raw_request(address, "GET", path, None, &[]), Ok((200, body)) if body == "ok\n")
    }

    /// Waits until GET `path` on `address` answers 200 ok; fails with the container's logs.
    pub fn wait_answering(&self, address: &str, path: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.answers(address, path) {
            let running =
                self.engine
                    .podman(&["inspect", "--format", "{{.State.Running}}", &self.name]);
            assert!(
                String::from_utf8_lossy(&running.stdout).trim() == "true",
                "the container stopped: {}",
                self.logs()
            );
            assert!(
                Instant::now() < deadline,
                "GET {path} on {address} never answered: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The real, effective, saved and filesystem uids of the container's process, as the
    /// host's kernel sees them.
    pub fn uids(&self) -> [u32; 4] {
        let pid = self
            .engine
            .ok(&["inspect", "--format", "{{.State.Pid}}", &self.name]);
        let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))
            .expect("the container's process status");
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .expect("a Uid line");
        let ids: Vec<u32> = line
            .split_whitespace()
            .map(|n| n.parse().expect("a uid"))
            .collect();
        ids.try_into().expect("four uids")
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self
            .engine
            .podman(&["rm", "--force", "--time", "5", &self.name]);
    }
}

/// A docker-registry of its own on a loopback port, its storage in the scratch folder.
pub struct Registry {
    child: Child,
    pub address: String,
}

impl Registry {
    pub fn start(scratch: &Path) -> Registry {
        let dir = scratch.join("registry");
        std::fs::create_dir_all(&dir).expect("registry folder");
        let address = format!("127.0.0.1:{}", free_port());
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                dir.join("data").display()
            ),
        )
        .expect("write registry config");
        let log = std::fs::File::create(dir.join("log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry { child, address };
        let deadline = Instant::now() + WAIT;
        while !matches!(
            raw_request(&registry.address, "GET", "/v2/", None, &[]),
            Ok((200, _))
        ) {
            let exited = registry.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "docker-registry did not start ({exited:?}): {}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
