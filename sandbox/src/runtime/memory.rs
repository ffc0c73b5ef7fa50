//! Memory limits that say when they killed: on a cgroup v1 memory hierarchy (hybrid hosts)
//! podman cannot tell an out-of-memory kill from any other SIGKILL, so a container with a
//! limit gets a parent cgroup of the sandbox's own that carries the limit and outlives the
//! container; a SIGKILL after that cgroup hit its limit is `OOMKilled`. Where cgroup v2 rules,
//! podman's `--memory` and its own OOM report are used.

use std::path::PathBuf;

const V1_MEMORY: &str = "/sys/fs/cgroup/memory";
/// The sandbox's cgroups, one per limited container, under every v1 controller.
const PARENT: &str = "kip_sandbox";

/// A container's own limit cgroup (cgroup v1 only).
pub struct Limit {
    name: String,
}

impl Limit {
    /// Makes the cgroup that limits the container `name` to `bytes`, when this machine has a
    /// v1 memory hierarchy; None elsewhere (then `--memory` does the job).
    pub fn make(name: &str, bytes: u64) -> Result<Option<Limit>, String> {
        if !std::path::Path::new(V1_MEMORY)
            .join("memory.limit_in_bytes")
            .exists()
        {
            return Ok(None);
        }
        let limit = Limit {
            name: name.to_string(),
        };
        let dir = limit.memory_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot make the memory cgroup {}: {e}", dir.display()))?;
        std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())
            .map_err(|e| format!("cannot set the memory limit of {name}: {e}"))?;
        Ok(Some(limit))
    }

    /// What `--cgroup-parent` names.
    pub fn parent(&self) -> String {
        format!("/{PARENT}/{}", self.name)
    }

    fn memory_dir(&self) -> PathBuf {
        PathBuf::from(V1_MEMORY).join(PARENT).join(&self.name)
    }

    /// Whether the limit was ever reached.
    pub fn was_hit(&self) -> bool {
        std::fs::read_to_string(self.memory_dir().join("memory.failcnt"))
            .ok()
            .and_then(|n| n.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    }
}

/// Removes the cgroups of the containers whose names start with `prefix` under every
/// controller (podman made the others beside the memory one); those still in use stay.
pub fn remove(prefix: &str) {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for controller in controllers.flatten() {
        let Ok(ours) = std::fs::read_dir(controller.path().join(PARENT)) else {
            continue;
        };
        for dir in ours.flatten().map(|d| d.path()) {
            let named = dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix));
            if !named || !dir.is_dir() {
                continue;
            }
            // Child cgroups podman left, then ours; rmdir is how cgroups are removed.
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in children.flatten() {
                    if child.path().is_dir() {
                        let _ = std::fs::remove_dir(child.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}
