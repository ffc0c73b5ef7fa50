//! Node ports: every NodePort and LoadBalancer service port gets one, unique in the cluster and
//! in 30000-32767, as the API server's port allocator gives them. A port asked for explicitly
//! is checked instead, with the real server's words, because scripts and people recognise
//! `provided port is already allocated`.
//!
//! The allocator keeps no bitmap of its own: the ports in use are read off the stored services,
//! so deleting a service frees its ports with nothing to forget.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use serde_json::{Value, json};

use crate::store::{ObjKey, Tx};
use crate::validation::Cause;

/// The API server's default `--service-node-port-range`.
pub const RANGE: RangeInclusive<u16> = 30000..=32767;

/// The low band users pick static ports from (`ServiceNodePortStaticSubrange`): automatic
/// allocation takes ports above it first, so that a static pick rarely finds its port taken.
fn static_band_end() -> u16 {
    let size = RANGE.len() as u16;
    RANGE.start() + (size / 32).clamp(16, 128) - 1
}

/// Fills in and checks the node ports of the service `obj` (its defaults already set), stored
/// at `key`; `old` is the stored version on an update. Returns the causes of a 422 Invalid.
pub fn assign(tx: &Tx, key: &ObjKey, old: Option<&Value>, obj: &mut Value) -> Vec<Cause> {
    let spec = &mut obj["spec"];
    let kind = spec["type"].as_str().unwrap_or("").to_string();
    let needs = kind == "NodePort"
        || kind == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"].as_bool() != Some(false);
    let old_spec = old.map(|o| &o["spec"]);
    let old_ports = |port: &Value| -> Option<u16> {
        old_spec?["ports"].as_array()?.iter().find_map(|p| {
            (p["port"] == port["port"] && p["protocol"] == port["protocol"])
                .then(|| p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()))
                .flatten()
        })
    };
    let mut causes = Vec::new();
    let Some(ports) = spec["ports"].as_array_mut() else {
        return causes;
    };
    if !needs && kind != "LoadBalancer" {
        for (i, port) in ports.iter_mut().enumerate() {
            let Some(given) = port.get("nodePort").filter(|n| !n.is_null()).cloned() else {
                continue;
            };
            // A type change away from NodePort drops the ports it had, unless the client
            // changed them too (`dropTypeDependentFields`).
            if given.as_u64().and_then(|n| u16::try_from(n).ok()) == old_ports(port) {
                if let Some(map) = port.as_object_mut() {
                    map.remove("nodePort");
                }
                continue;
            }
            causes.push(Cause {
                field: format!("spec.ports[{i}].nodePort"),
                message: format!("Forbidden: may not be used when `type` is '{kind}'"),
                reason: "FieldValueForbidden".into(),
            });
        }
        return causes;
    }
    let mut used = in_use(tx, key);
    let mut mine: HashSet<(u16, String)> = HashSet::new();
    let mut wanting = Vec::new();
    for (i, port) in ports.iter_mut().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        let protocol = port["protocol"].as_str().unwrap_or("TCP").to_string();
        let given = match port.get("nodePort") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64() == Some(0) => None,
            Some(v) => Some(v.clone()),
        };
        let Some(given) = given else {
            match old_ports(port) {
                // An update keeps what was allocated.
                Some(kept) => {
                    port["nodePort"] = json!(kept);
                    mine.insert((kept, protocol));
                }
                None if needs => wanting.push(i),
                None => {}
            }
            continue;
        };
        let number = given.as_u64().and_then(|n| u16::try_from(n).ok());
        match number {
            Some(n) if RANGE.contains(&n) => {
                if !mine.insert((n, protocol)) {
                    causes.push(Cause {
                        field,
                        message: format!("Duplicate value: {n}"),
                        reason: "FieldValueDuplicate".into(),
                    });
                } else if used.contains(&n) {
                    causes.push(Cause::invalid(
                        field,
                        &given,
                        "provided port is already allocated",
                    ));
                }
            }
            _ => causes.push(Cause::invalid(
                field,
                &given,
                &format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    RANGE.start(),
                    RANGE.end()
                ),
            )),
        }
    }
    if !causes.is_empty() {
        return causes;
    }
    used.extend(mine.iter().map(|(n, _)| *n));
    let seed = crate::admission::fnv(&format!("{}/{}", key.ns, key.name));
    for i in wanting {
        let Some(port) = pick(&used, seed.wrapping_add(i as u64)) else {
            causes.push(Cause::invalid(
                format!("spec.ports[{i}].nodePort"),
                &json!(0),
                "range is full",
            ));
            continue;
        };
        used.insert(port);
        ports[i]["nodePort"] = json!(port);
    }
    if kind == "LoadBalancer" && spec["externalTrafficPolicy"] == "Local" {
        health_check_port(spec, old_spec, &mut used, seed, &mut causes);
    }
    causes
}

/// A LoadBalancer service with the Local traffic policy gets a node port for health checks.
fn health_check_port(
    spec: &mut Value,
    old_spec: Option<&Value>,
    used: &mut HashSet<u16>,
    seed: u64,
    causes: &mut Vec<Cause>,
) {
    if spec["healthCheckNodePort"].as_u64().is_some_and(|n| n != 0) {
        return;
    }
    let kept = old_spec.and_then(|o| o["healthCheckNodePort"].as_u64());
    let port = kept
        .and_then(|n| u16::try_from(n).ok())
        .or_else(|| pick(used, seed.wrapping_add(1 << 16)));
    match port {
        Some(port) => {
            used.insert(port);
            spec["healthCheckNodePort"] = json!(port);
        }
        None => causes.push(Cause::invalid(
            "spec.healthCheckNodePort",
            &json!(0),
            "range is full",
        )),
    }
}

/// The node ports every other service holds.
fn in_use(tx: &Tx, key: &ObjKey) -> HashSet<u16> {
    let mut used = HashSet::new();
    for (k, svc) in tx.state().list("/services", None) {
        if k.ns == key.ns && k.name == key.name {
            continue;
        }
        let spec = &svc["spec"];
        let ports = spec["ports"].as_array().into_iter().flatten();
        let numbers = ports
            .map(|p| &p["nodePort"])
            .chain(std::iter::once(&spec["healthCheckNodePort"]));
        used.extend(
            numbers
                .filter_map(Value::as_u64)
                .filter_map(|n| u16::try_from(n).ok()),
        );
    }
    used
}

/// A free port, from a place that depends on `seed`, above the static band first.
fn pick(used: &HashSet<u16>, seed: u64) -> Option<u16> {
    let dynamic = static_band_end() + 1..=*RANGE.end();
    let statics = *RANGE.start()..=static_band_end();
    [dynamic, statics].into_iter().find_map(|band| {
        let size = band.len() as u64;
        let start = band.start();
        (0..size)
            .map(|offset| start + (seed.wrapping_add(offset) % size) as u16)
            .find(|p| !used.contains(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_band_is_the_lowest_86_ports() {
        assert_eq!(static_band_end(), 30085);
    }

    #[test]
    fn picks_above_the_static_band_and_skips_used_ports() {
        let mut used = HashSet::new();
        let first = pick(&used, 7).expect("a port");
        assert!((30086..=32767).contains(&first), "{first}");
        used.insert(first);
        let second = pick(&used, 7).expect("a port");
        assert_ne!(first, second);
        let all_dynamic: HashSet<u16> = (30086..=32767).collect();
        let low = pick(&all_dynamic, 3).expect("a static-band port");
        assert!((30000..=30085).contains(&low), "{low}");
        let full: HashSet<u16> = RANGE.collect();
        assert_eq!(pick(&full, 1), None);
    }
}
