//! The endpoints controller (and k3s's service load balancer).
//!
//! A Service with a selector gets an Endpoints object of the same name: the ready pods of the
//! namespace whose labels match as `addresses`, the others (running but unready) as
//! `notReadyAddresses` (all as addresses with `publishNotReadyAddresses`), with the service's
//! ports resolved against each pod's container ports. A LoadBalancer service gets `127.0.0.1` as its ingress address. The
//! same addresses are kept as EndpointSlices ([`super::endpointslice`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::Outcome;
use super::common::{is_deleting, pod_active, pod_ready, resource, write_main, write_status};
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-endpoints-controller";

pub fn reconcile(tx: &mut Tx, key: &ObjKey, svc: Arc<Value>) -> ApiResult<Outcome> {
    if svc["spec"]["type"].as_str() == Some("LoadBalancer") {
        let res = resource(tx, "", "services")?;
        let mut status = svc["status"].clone();
        status["loadBalancer"] = json!({"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]});
        write_status(tx, &res, key, status, MANAGER)?;
    }
    let groups = match svc["spec"]["selector"].as_object() {
        Some(selector) if !selector.is_empty() => backends(tx, &svc, selector, &key.ns),
        _ => return Ok(Outcome::done()),
    };
    super::endpointslice::sync(tx, &svc, &groups)?;
    let subsets = subsets(groups);
    let ep_res = resource(tx, "", "endpoints")?;
    let ep_key = ops::key(&ep_res, &key.ns, &key.name);
    let mut endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": key.name},
    });
    if let Some(labels) = svc["metadata"]["labels"].as_object() {
        endpoints["metadata"]["labels"] = json!(labels);
    }
    if subsets.as_array().is_some_and(|s| !s.is_empty()) {
        endpoints["subsets"] = subsets;
    }
    match tx.get(&ep_key) {
        None => {
            let how = WriteKind::Controller {
                manager: MANAGER,
                part: Part::Main,
            };
            ops::create(tx, &ep_res, &key.ns, endpoints, how)?;
        }
        Some(old) if !is_deleting(&old) => {
            let mut new = (*old).clone();
            new["metadata"]["labels"] = endpoints["metadata"]["labels"].clone();
            if new["metadata"]["labels"].is_null()
                && let Some(m) = new["metadata"].as_object_mut()
            {
                m.remove("labels");
            }
            match endpoints.get("subsets") {
                Some(s) => new["subsets"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("subsets");
                    }
                }
            }
            write_main(tx, &ep_res, &ep_key, &old, new, MANAGER)?;
        }
        Some(_) => {}
    }
    Ok(Outcome::done())
}

/// A deleted service takes its Endpoints along.
pub fn service_gone(tx: &mut Tx, key: &ObjKey) -> ApiResult<()> {
    let ep_res = resource(tx, "", "endpoints")?;
    let ep_key = ops::key(&ep_res, &key.ns, &key.name);
    if tx.get(&ep_key).is_some_and(|ep| !is_deleting(&ep)) {
        super::common::delete(tx, &ep_res, &ep_key)?;
    }
    Ok(())
}

/// The container port a service port's `targetPort` means for one pod.
fn resolve(pod: &Value, port: &Value) -> Option<i64> {
    match &port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => pod["spec"]["containers"]
            .as_array()?
            .iter()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|p| p["name"].as_str() == Some(name.as_str()))
            .and_then(|p| p["containerPort"].as_i64()),
        _ => port["port"].as_i64(),
    }
}

/// Ports, ready addresses and unready addresses.
pub type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);

/// The pods behind a service, grouped by their resolved ports (keyed by the ports' JSON).
fn backends(
    tx: &Tx,
    svc: &Value,
    selector: &Map<String, Value>,
    ns: &str,
) -> BTreeMap<String, Subset> {
    let publish_all = svc["spec"]["publishNotReadyAddresses"].as_bool() == Some(true);
    let svc_name = svc["metadata"]["name"].as_str().unwrap_or("");
    let svc_ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    // Pods with the same resolved ports share a subset.
    let mut groups: BTreeMap<String, Subset> = BTreeMap::new();
    for (_, pod) in tx.state().list("/pods", Some(ns)) {
        let labels = &pod["metadata"]["labels"];
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) || !pod_active(pod) {
            continue;
        }
        let Some(ip) = pod["status"]["podIP"].as_str() else {
            continue;
        };
        let ports: Vec<Value> = svc_ports
            .iter()
            .filter_map(|p| {
                let mut port = json!({"port": resolve(pod, p)?, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
                if let Some(name) = p["name"].as_str() {
                    port["name"] = json!(name);
                }
                if let Some(proto) = p["appProtocol"].as_str() {
                    port["appProtocol"] = json!(proto);
                }
                Some(port)
            })
            .collect();
        if ports.len() != svc_ports.len() {
            continue;
        }
        let mut address = json!({
            "ip": ip,
            "targetRef": {
                "kind": "Pod",
                "namespace": ns,
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        });
        if let Some(node) = pod["spec"]["nodeName"].as_str() {
            address["nodeName"] = json!(node);
        }
        if pod["spec"]["subdomain"].as_str() == Some(svc_name)
            && let Some(host) = pod["spec"]["hostname"].as_str()
        {
            address["hostname"] = json!(host);
        }
        let group = groups
            .entry(Value::Array(ports.clone()).to_string())
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish_all || pod_ready(pod) {
            group.1.push(address);
        } else {
            group.2.push(address);
        }
    }
    groups
}

fn subsets(groups: BTreeMap<String, Subset>) -> Value {
    let by_ip = |a: &Value, b: &Value| a["ip"].as_str().cmp(&b["ip"].as_str());
    let subsets: Vec<Value> = groups
        .into_values()
        .map(|(ports, mut ready, mut unready)| {
            ready.sort_by(by_ip);
            unready.sort_by(by_ip);
            let mut subset = Map::new();
            if !ready.is_empty() {
                subset.insert("addresses".into(), json!(ready));
            }
            if !unready.is_empty() {
                subset.insert("notReadyAddresses".into(), json!(unready));
            }
            if !ports.is_empty() {
                subset.insert("ports".into(), json!(ports));
            }
            Value::Object(subset)
        })
        .collect();
    json!(subsets)
}
