//! The one node of the sandbox, shaped like a k3s server node: what `kubectl get nodes`, a
//! wait for readiness and a typed client (which requires every `nodeInfo` field) expect.
//!
//! It stands in for a Linux node (k3s runs on Linux only, and charts select on
//! `kubernetes.io/os: linux`) of this machine's architecture, since pods that really run use
//! this machine's images; capacity is this machine's CPUs, memory and disk.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::controllers::{NODE, scheduler};
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::registry::Resource;
use crate::store::Tx;

const MANAGER: &str = "kip-sandbox";

/// Creates the node, or brings one an older sandbox made up to date (labels, capacity,
/// `nodeInfo`). Writes nothing when it is complete already.
pub fn ensure(tx: &mut Tx) -> ApiResult<()> {
    let Some(nodes) = tx.state().registry.find("", "v1", "nodes") else {
        return Ok(());
    };
    let key = ops::key(&nodes, "", NODE);
    let node = match tx.get(&key) {
        Some(node) => node,
        None => {
            let how = WriteKind::Controller {
                manager: MANAGER,
                part: Part::Main,
            };
            let node = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE},
                "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]},
            });
            ops::create(tx, &nodes, "", node, how)?
        }
    };
    let node = with_labels(tx, &nodes, node)?;
    let status = status(&node["status"]);
    if node.get("status") != Some(&status) {
        let mut new = (*node).clone();
        new["status"] = status;
        let how = WriteKind::Controller {
            manager: MANAGER,
            part: Part::Status,
        };
        ops::finish_write(tx, &nodes, key, node, new, how)?;
    }
    Ok(())
}

fn with_labels(tx: &mut Tx, nodes: &Resource, node: Arc<Value>) -> ApiResult<Arc<Value>> {
    let arch = architecture();
    let wanted = [
        ("beta.kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("kubernetes.io/hostname", NODE),
        ("kubernetes.io/os", "linux"),
        ("node-role.kubernetes.io/control-plane", "true"),
    ];
    let mut new = (*node).clone();
    for (label, value) in wanted {
        new["metadata"]["labels"][label] = json!(value);
    }
    if new == *node {
        return Ok(node);
    }
    let key = ops::key(nodes, "", NODE);
    let how = WriteKind::Controller {
        manager: MANAGER,
        part: Part::Main,
    };
    ops::finish_write(tx, nodes, key, node, new, how)
}

/// The node's status: `old`'s identity (ids made once) and conditions kept, the rest as this
/// machine is now.
fn status(old: &Value) -> Value {
    let now = ops::now();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        let kept = old["conditions"].as_array().and_then(|c| {
            c.iter()
                .find(|c| c["type"] == kind && c["status"] == status)
        });
        match kept {
            Some(kept) => kept.clone(),
            None => json!({"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now}),
        }
    };
    let capacity = capacity();
    json!({
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": NODE},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": node_info(&old["nodeInfo"]),
    })
}

/// Every field of `NodeSystemInfo` (clients' schemas require them all).
fn node_info(old: &Value) -> Value {
    let kept_or_new = |field: &str, make: fn() -> String| {
        old[field]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .unwrap_or_else(make)
    };
    let version = crate::api::discovery::git_version();
    // The host's boot id changes when it reboots, as a real node's does.
    let boot_id = read_trimmed("/proc/sys/kernel/random/boot_id")
        .unwrap_or_else(|| kept_or_new("bootID", || uuid::Uuid::new_v4().to_string()));
    json!({
        "machineID": kept_or_new("machineID", || uuid::Uuid::new_v4().simple().to_string()),
        "systemUUID": kept_or_new("systemUUID", || uuid::Uuid::new_v4().to_string()),
        "bootID": boot_id,
        "kernelVersion": read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        "osImage": os_image(),
        "containerRuntimeVersion": format!("kip-sandbox://{}", env!("CARGO_PKG_VERSION")),
        "kubeletVersion": version,
        "kubeProxyVersion": version,
        "operatingSystem": "linux",
        "architecture": architecture(),
    })
}

/// This machine's architecture as Kubernetes (Go's `GOARCH`) spells it.
pub fn architecture() -> &'static str {
    kubernetes_arch(std::env::consts::ARCH)
}

fn kubernetes_arch(rust_arch: &'static str) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn os_image() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "kip sandbox".into())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// CPUs, memory, disk and pods, in the units a kubelet reports them.
fn capacity() -> Value {
    let mut capacity = Map::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    capacity.insert("cpu".into(), json!(cpus.to_string()));
    capacity.insert(
        "ephemeral-storage".into(),
        json!(disk_kib().map_or("100Gi".into(), |k| format!("{k}Ki"))),
    );
    capacity.insert(
        "memory".into(),
        json!(memory_kib().map_or("8Gi".into(), |k| format!("{k}Ki"))),
    );
    capacity.insert("pods".into(), scheduler::node_capacity()["pods"].clone());
    Value::Object(capacity)
}

fn memory_kib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(unix)]
fn disk_kib() -> Option<u64> {
    let root = std::ffi::CString::new("/").ok()?;
    // SAFETY: statvfs is a plain C struct that zeroed memory validly initialises.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `root` is a NUL-terminated path and `stat` a valid, writable statvfs.
    if unsafe { libc::statvfs(root.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let bytes = u64::from(stat.f_blocks).saturating_mul(u64::from(stat.f_frsize));
    Some(bytes / 1024)
}

#[cfg(not(unix))]
fn disk_kib() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_are_spelled_as_kubernetes_does() {
        assert_eq!(kubernetes_arch("x86_64"), "amd64");
        assert_eq!(kubernetes_arch("aarch64"), "arm64");
        assert_eq!(kubernetes_arch("s390x"), "s390x");
        assert!(["amd64", "arm64"].contains(&architecture()) || !architecture().contains('_'));
    }

    #[test]
    fn a_status_is_complete_and_keeps_the_node_identity() {
        let first = status(&Value::Null);
        for field in [
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
            "kubeletVersion",
            "kubeProxyVersion",
            "operatingSystem",
            "architecture",
        ] {
            assert!(first["nodeInfo"][field].is_string(), "{field}: {first}");
        }
        for resource in ["cpu", "memory", "pods", "ephemeral-storage"] {
            assert!(first["capacity"][resource].is_string(), "{resource}");
            assert_eq!(first["capacity"][resource], first["allocatable"][resource]);
        }
        let again = status(&first);
        assert_eq!(first, again);
    }
}
