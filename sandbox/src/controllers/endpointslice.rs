//! The EndpointSlice controller, kept in step with the Endpoints of a service with a selector:
//! one slice `{service}-{5 random characters}` per set of resolved ports, labelled
//! `kubernetes.io/service-name` and owned by the service (so the garbage collector removes
//! them with it). A service with no backends has one empty placeholder slice, as a real
//! controller keeps. Ready and serving follow the pod's readiness (both are true for unready
//! pods the service publishes: serving is not told apart); terminating pods are not listed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::common::{canonical, controller_ref_to, delete, fresh_name, resource, write_main};
use super::service::Subset;
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-endpointslice-controller";
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const SLICES: &str = "discovery.k8s.io/endpointslices";

/// Makes the service's slices say what `groups` (its backends by port set) say.
pub fn sync(tx: &mut Tx, svc: &Value, groups: &BTreeMap<String, Subset>) -> ApiResult<()> {
    let res = resource(tx, "discovery.k8s.io", "endpointslices")?;
    let svc_res = resource(tx, "", "services")?;
    let ns = svc["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = svc["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut wanted: Vec<(Value, Vec<Value>)> = groups
        .values()
        .map(|(ports, ready, unready)| {
            let endpoints = ready
                .iter()
                .map(|a| endpoint(a, true))
                .chain(unready.iter().map(|a| endpoint(a, false)))
                .collect();
            (
                json!(ports.iter().map(slice_port).collect::<Vec<_>>()),
                endpoints,
            )
        })
        .collect();
    if wanted.is_empty() {
        wanted.push((json!([]), Vec::new()));
    }
    let mut existing: Vec<(ObjKey, Arc<Value>)> = tx
        .state()
        .list(SLICES, Some(&ns))
        .filter(|(_, s)| {
            s["metadata"]["labels"][SERVICE_NAME] == name.as_str()
                && s["metadata"]["labels"][MANAGED_BY] == CONTROLLER
        })
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect();
    let mut labels = svc["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), json!(name));
    labels.insert(MANAGED_BY.into(), json!(CONTROLLER));
    for (ports, endpoints) in wanted {
        let same_ports = existing
            .iter()
            .position(|(_, s)| canonical(&s["ports"]) == canonical(&ports));
        let mut slice = match same_ports {
            Some(i) => (*existing.remove(i).1).clone(),
            None => json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": fresh_name(tx, SLICES, &ns, &format!("{name}-")),
                    "generateName": format!("{name}-"),
                    "ownerReferences": [controller_ref_to(&svc_res, svc)],
                },
                "addressType": "IPv4",
            }),
        };
        slice["metadata"]["labels"] = Value::Object(labels.clone());
        slice["ports"] = ports;
        slice["endpoints"] = json!(endpoints);
        let key = ops::key(&res, &ns, slice["metadata"]["name"].as_str().unwrap_or(""));
        match tx.get(&key) {
            Some(old) => {
                write_main(tx, &res, &key, &old, slice, MANAGER)?;
            }
            None => {
                let how = WriteKind::Controller {
                    manager: MANAGER,
                    part: Part::Main,
                };
                ops::create(tx, &res, &ns, slice, how)?;
            }
        }
    }
    // Port sets no pod has any more.
    for (key, _) in existing {
        delete(tx, &res, &key)?;
    }
    Ok(())
}

/// An Endpoints address as a slice endpoint; `ready` tells which list of the Endpoints it is
/// in, so a published unready pod counts as ready and serving, as its Endpoints say.
fn endpoint(address: &Value, ready: bool) -> Value {
    let mut e = Map::new();
    e.insert("addresses".into(), json!([address["ip"]]));
    e.insert(
        "conditions".into(),
        json!({"ready": ready, "serving": ready, "terminating": false}),
    );
    for field in ["hostname", "nodeName", "targetRef"] {
        if let Some(v) = address.get(field) {
            e.insert(field.into(), v.clone());
        }
    }
    Value::Object(e)
}

/// An Endpoints port as a slice port (whose name is always present, empty when unnamed).
fn slice_port(port: &Value) -> Value {
    let mut p = port.clone();
    if p.get("name").is_none() {
        p["name"] = json!("");
    }
    p
}
