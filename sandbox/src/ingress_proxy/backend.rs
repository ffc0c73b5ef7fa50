//! From an Ingress backend to the pod addresses it may be connected to: the Service's port, the
//! Endpoints' ready addresses with that port resolved, and only those the kubelet runs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use serde_json::Value;

use super::routing::{PortRef, Route};
use crate::store::{ObjKey, State};

/// Which addresses a backend has, or why it has none to connect to.
#[derive(Debug)]
pub(super) struct Backend {
    /// `<namespace>/<service>:<port>`, the round-robin key and how messages name it.
    pub name: String,
    pub addresses: Result<Vec<SocketAddr>, String>,
}

/// The addresses behind `route`'s Service port that `reachable` approves, in Endpoints order.
pub(super) fn resolve(state: &State, route: &Route, reachable: &dyn Fn(IpAddr) -> bool) -> Backend {
    let service = format!("{}/{}", route.namespace, route.service);
    let name = format!("{service}:{}", route.port);
    let addresses = ready_addresses(state, route, &service).and_then(|ready| {
        let total = ready.len();
        let usable: Vec<SocketAddr> = ready.into_iter().filter(|a| reachable(a.ip())).collect();
        if usable.is_empty() {
            Err(format!(
                "no ready pod behind service {service}: its pods are simulated (no container runs); \
                 none of its {total} ready address(es) has a running container to connect to"
            ))
        } else {
            Ok(usable)
        }
    });
    Backend { name, addresses }
}

/// Every ready address of the Service's port (not yet filtered by reachability).
fn ready_addresses(state: &State, route: &Route, service: &str) -> Result<Vec<SocketAddr>, String> {
    let svc = state
        .get(&ObjKey::new("/services", &route.namespace, &route.service))
        .ok_or_else(|| {
            format!(
                "service {service} does not exist (named by Ingress {}/{})",
                route.namespace, route.ingress
            )
        })?;
    let port = service_port(&svc, &route.port)
        .ok_or_else(|| format!("service {service} has no port {}", route.port))?;
    let port_name = port["name"].as_str().unwrap_or("");
    let endpoints = state.get(&ObjKey::new("/endpoints", &route.namespace, &route.service));
    let mut found = Vec::new();
    let mut not_ready = 0;
    for subset in endpoints
        .iter()
        .flat_map(|e| e["subsets"].as_array().into_iter().flatten())
    {
        not_ready += subset["notReadyAddresses"].as_array().map_or(0, Vec::len);
        let Some(target) = subset_port(subset, port_name) else {
            continue;
        };
        for address in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = address["ip"]
                .as_str()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
            {
                found.push(SocketAddr::new(ip, target));
            }
        }
    }
    if found.is_empty() {
        let unready = if not_ready > 0 {
            format!(" ({not_ready} not ready)")
        } else {
            String::new()
        };
        return Err(format!(
            "no ready endpoints for service {service} port {}{unready}",
            route.port
        ));
    }
    Ok(found)
}

/// The Service's port an Ingress names, by number or by name.
fn service_port<'a>(svc: &'a Value, wanted: &PortRef) -> Option<&'a Value> {
    svc["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| match wanted {
            PortRef::Number(n) => p["port"].as_i64() == Some(*n),
            PortRef::Name(name) => p["name"].as_str() == Some(name.as_str()),
        })
}

/// The subset's resolved target port for the Service port named `name`: the port of that
/// name, or the only one (an unnamed single-port Service).
fn subset_port(subset: &Value, name: &str) -> Option<u16> {
    let ports = subset["ports"].as_array()?;
    let port = ports
        .iter()
        .find(|p| p["name"].as_str().unwrap_or("") == name)
        .or_else(|| (ports.len() == 1).then(|| &ports[0]))?;
    u16::try_from(port["port"].as_u64()?).ok()
}

/// Turns of each backend, so consecutive requests go to consecutive addresses.
#[derive(Default)]
pub(super) struct RoundRobin {
    next: Mutex<HashMap<String, usize>>,
}

/// Backends remembered at most; past that the turns start over (a sandbox has far fewer).
const MAX_BACKENDS: usize = 4096;

impl RoundRobin {
    /// The next of `addresses` for backend `name`.
    pub fn pick(&self, name: &str, addresses: &[SocketAddr]) -> Option<SocketAddr> {
        if addresses.is_empty() {
            return None;
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if next.len() >= MAX_BACKENDS && !next.contains_key(name) {
            next.clear();
        }
        let turn = next.entry(name.to_string()).or_insert(0);
        let picked = addresses[*turn % addresses.len()];
        *turn = turn.wrapping_add(1);
        Some(picked)
    }
}
