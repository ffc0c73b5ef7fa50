//! The defaults the API server fills into an object when it is written, so that what a client
//! reads back is what a real cluster would show (`kubectl get -o yaml`, typed clients, diffs).
//!
//! A real server defaults on every decode: on writes, and again when it reads from etcd. The
//! sandbox keeps objects already defaulted in its store, so it defaults on writes only and reads
//! stay a lookup: nothing here runs on a GET, a LIST or a WATCH.
//!
//! Each function is idempotent (it only fills what is absent), so a write of an unchanged object
//! stays a no-op and server-side apply of the same manifest reports `unchanged`.
//!
//! One module per API group, after kubernetes' `pkg/apis/{core,apps,batch}/v1/defaults.go`:
//! [`pod`] (pod specs and containers, wherever they appear), [`workloads`] (apps and batch),
//! [`service`] (the type-dependent fields of a Service). Allocations that need the store
//! (cluster IPs, [`node_ports`]) happen in `admission`, after these defaults.

pub mod node_ports;
pub mod pod;
pub mod service;
pub mod workloads;

use serde_json::Value;

/// Fills in the defaults of a `res_key` (`group/plural`, as `Resource::key`) object.
pub fn apply(res_key: &str, obj: &mut Value) {
    match res_key {
        "/pods" => pod::pod(obj),
        "/services" => service::service(obj),
        "/persistentvolumeclaims" => pod::claim_spec(&mut obj["spec"]),
        "apps/deployments" => workloads::deployment(obj),
        "apps/replicasets" => workloads::replica_set(obj),
        "apps/statefulsets" => workloads::stateful_set(obj),
        "apps/daemonsets" => workloads::daemon_set(obj),
        "batch/jobs" => workloads::job(obj),
        "batch/cronjobs" => workloads::cron_job(obj),
        "/replicationcontrollers" => workloads::replica_set(obj),
        _ => {}
    }
}

/// Sets `obj[field]` when it is absent or null; does nothing when `obj` is not an object (a
/// malformed body is left for validation to refuse).
pub fn set(obj: &mut Value, field: &str, value: Value) {
    if let Some(map) = obj.as_object_mut()
        && map.get(field).is_none_or(Value::is_null)
    {
        map.insert(field.to_string(), value);
    }
}

/// Applies `f` to each element of the array `obj[field]`, if there is one.
pub fn each(obj: &mut Value, field: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = obj.get_mut(field).and_then(Value::as_array_mut) {
        items.iter_mut().for_each(&mut f);
    }
}

/// Applies `f` to `obj[field]` when it is an object.
pub fn within(obj: &mut Value, field: &str, f: impl FnOnce(&mut Value)) {
    if let Some(inner) = obj.get_mut(field).filter(|v| v.is_object()) {
        f(inner);
    }
}

#[cfg(test)]
mod tests;
