//! `metadata.generation`: set and moved by the server on kinds whose strategy tracks it, never
//! taken from a client, and absent on the others (ConfigMaps, Services, Namespaces… have none).

use serde_json::{Value, json};

use crate::registry::Resource;

/// What moves a kind's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracks {
    Nothing,
    /// A change to anything but metadata and status.
    Spec,
    /// A spec change or an annotation change: Deployments copy their annotations to their
    /// ReplicaSets, so a new annotation is a new desired state.
    SpecOrAnnotations,
}

fn tracks(res: &Resource) -> Tracks {
    if res.custom {
        return Tracks::Spec;
    }
    match res.key().as_str() {
        "apps/deployments" => Tracks::SpecOrAnnotations,
        "apps/replicasets"
        | "/replicationcontrollers"
        | "policy/poddisruptionbudgets"
        | "networking.k8s.io/networkpolicies"
        | "discovery.k8s.io/endpointslices"
        | "apps/statefulsets"
        | "apps/daemonsets"
        | "batch/jobs"
        | "batch/cronjobs"
        | "networking.k8s.io/ingresses"
        | "apiextensions.k8s.io/customresourcedefinitions"
        | "/pods" => Tracks::Spec,
        _ => Tracks::Nothing,
    }
}

pub fn on_create(res: &Resource, obj: &mut Value) {
    let Some(meta) = obj["metadata"].as_object_mut() else {
        return;
    };
    match tracks(res) {
        Tracks::Nothing => meta.remove("generation"),
        _ => meta.insert("generation".into(), json!(1)),
    };
}

/// The stored generation, one up when what the kind tracks changed. A client's value is ignored.
pub fn on_update(res: &Resource, may_move: bool, old: &Value, new: &mut Value) {
    let stored = old["metadata"].get("generation").cloned();
    let moved = may_move
        && match tracks(res) {
            Tracks::Nothing => false,
            Tracks::Spec => spec_changed(res, old, new),
            Tracks::SpecOrAnnotations => {
                spec_changed(res, old, new)
                    || old["metadata"].get("annotations") != new["metadata"].get("annotations")
            }
        };
    let Some(meta) = new["metadata"].as_object_mut() else {
        return;
    };
    match stored {
        Some(g) if moved => meta.insert("generation".into(), json!(g.as_i64().unwrap_or(0) + 1)),
        Some(g) => meta.insert("generation".into(), g),
        None => meta.remove("generation"),
    };
}

/// Whether anything but metadata (and status, when it has its own path) changed. No copies:
/// this runs on every write.
fn spec_changed(res: &Resource, old: &Value, new: &Value) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return true;
    };
    // A custom resource without a status subresource counts its status as spec, as the
    // apiserver compares everything but metadata there.
    let status_is_spec = res.custom && !res.has_subresource("status");
    let counts = |k: &str| super::is_spec(k) || (status_is_spec && k == "status");
    let differs = |a: &serde_json::Map<String, Value>, b: &serde_json::Map<String, Value>| {
        a.iter().any(|(k, v)| counts(k) && b.get(k) != Some(v))
    };
    differs(old, new) || differs(new, old)
}
