//! The pod network of one sandbox: a podman bridge network with a /24 of 10.42.0.0/16 of its
//! own (as k3s gives each node a /24 of its cluster CIDR), so that several sandboxes on one
//! machine (the tests run many) never share an address.
//!
//! Pods reach each other, this machine's bridge address and the Services' ClusterIPs, nothing
//! else: see `services` for the rules that see to it.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::containers::Containers;

/// The label that ties a podman network, pod or container to the sandbox folder that made it.
pub const SANDBOX_LABEL: &str = "kipper.run/sandbox";

/// A sandbox's pod network.
#[derive(Debug, Clone)]
pub struct Network {
    /// The podman network's name, `kip-N`.
    pub name: String,
    /// N: the network is 10.42.N.0/24.
    pub index: u8,
}

impl Network {
    /// This machine's address on the bridge, the pods' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 42, self.index, 1)
    }

    /// The network in CIDR notation (the node's `spec.podCIDR`).
    pub fn cidr(&self) -> String {
        format!("10.42.{}.0/24", self.index)
    }

    /// Whether `ip` is a pod address of this network.
    pub fn holds(&self, ip: Ipv4Addr) -> bool {
        let [a, b, c, d] = ip.octets();
        (a, b, c) == (10, 42, self.index) && (2..255).contains(&d)
    }

    /// The network of the sandbox in `sandbox_dir`: the one it had (recorded in
    /// `sandbox_dir/pod-network`) when podman still has it, else a free /24, made now. Networks
    /// (and pods) left by sandboxes whose folder is gone are removed first: a test's sandbox
    /// lives in a temporary folder.
    pub async fn ensure(containers: &Containers, sandbox_dir: &Path) -> Result<Network, String> {
        crate::home::private_dir(sandbox_dir)
            .map_err(|e| format!("cannot make {}: {e}", sandbox_dir.display()))?;
        let owner = sandbox_dir.display().to_string();
        let record = sandbox_dir.join("pod-network");
        let _lock = crate::runtime::podman::lock(containers, "networks").await?;
        let existing = list(containers).await?;
        for (name, label) in &existing {
            if !label.is_empty() && !Path::new(label).exists() {
                remove_leftovers(containers, name, label).await;
            }
        }
        let existing = list(containers).await?;
        let recorded = std::fs::read_to_string(&record)
            .ok()
            .and_then(|n| n.trim().parse::<u8>().ok());
        if let Some(index) = recorded {
            let name = format!("kip-{index}");
            if existing.iter().any(|(n, l)| *n == name && *l == owner) {
                return Ok(Network { name, index });
            }
        }
        let taken: Vec<&str> = existing.iter().map(|(n, _)| n.as_str()).collect();
        let index = (1..=254u8)
            .find(|i| !taken.contains(&format!("kip-{i}").as_str()))
            .ok_or("all 254 sandbox pod networks (10.42.N.0/24) are taken: remove some with `podman network rm`")?;
        let network = Network {
            name: format!("kip-{index}"),
            index,
        };
        crate::runtime::podman::run(
            containers,
            &[
                "network",
                "create",
                "--subnet",
                &network.cidr(),
                "--gateway",
                &network.gateway().to_string(),
                "--label",
                &format!("{SANDBOX_LABEL}={owner}"),
                &network.name,
            ],
        )
        .await?;
        crate::home::write_private(&record, index.to_string().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", record.display()))?;
        Ok(network)
    }
}

/// podman's `kip-*` networks and the sandbox folder each belongs to.
async fn list(containers: &Containers) -> Result<Vec<(String, String)>, String> {
    let out =
        crate::runtime::podman::run(containers, &["network", "ls", "--format", "json"]).await?;
    let networks: Vec<serde_json::Value> = serde_json::from_str(&out)
        .map_err(|e| format!("cannot read podman's list of networks: {e}"))?;
    Ok(networks
        .iter()
        .filter_map(|n| {
            let name = n["name"].as_str()?;
            let owner = n["labels"][SANDBOX_LABEL].as_str().unwrap_or("");
            name.starts_with("kip-")
                .then(|| (name.to_string(), owner.to_string()))
        })
        .collect())
}

/// Removes the pods and the network of a sandbox whose folder is gone.
async fn remove_leftovers(containers: &Containers, network: &str, owner: &str) {
    crate::runtime::podman::remove_pods(containers, owner, 0).await;
    if crate::runtime::podman::run(containers, &["network", "rm", "-f", network])
        .await
        .is_ok()
    {
        // CNI's host-local IPAM keeps the addresses of containers that never got torn down
        // (a sandbox killed with SIGKILL); a network made again under this name starts clean.
        let _ =
            std::fs::remove_dir_all(std::path::Path::new("/var/lib/cni/networks").join(network));
    }
}
