//! Spec fields a kind's update validation refuses to change once the object exists. Checked on
//! client writes only, after defaulting: the simulated controllers stand in for the
//! subresources (pods/binding, PV binding) through which a real cluster sets some of them.
//!
//! Covered: the selector of Deployments, ReplicaSets, DaemonSets, StatefulSets and Jobs; a
//! StorageClass's provisioner, parameters, reclaim policy and binding mode; an EndpointSlice's
//! address type; the forbidden
//! StatefulSet fields; a Job's pod template; a Service's clusterIP; everything in a Pod's spec
//! but images, activeDeadlineSeconds, tolerations (added) and terminationGracePeriodSeconds;
//! a PersistentVolumeClaim's spec but its requests.

use serde_json::Value;

use crate::registry::Resource;

/// One refused change: the field and the apiserver's message.
pub type Refusal = (String, String);

pub fn check(res: &Resource, old: &Value, new: &Value) -> Vec<Refusal> {
    let (old_spec, new_spec) = (&old["spec"], &new["spec"]);
    match res.key().as_str() {
        "apps/deployments" | "apps/replicasets" | "apps/daemonsets" => {
            same(old_spec, new_spec, &["selector"])
        }
        "storage.k8s.io/storageclasses" => storage_class(old, new),
        "discovery.k8s.io/endpointslices" => same(old, new, &["addressType"])
            .into_iter()
            .map(|(field, message)| (field.replacen("spec.", "", 1), message))
            .collect(),
        "apps/statefulsets" => statefulset(old_spec, new_spec),
        "batch/jobs" => same(old_spec, new_spec, &["selector", "template"]),
        "/services" => service(old_spec, new_spec),
        "/pods" => pod(old_spec, new_spec),
        "/persistentvolumeclaims" => claim(old_spec, new_spec),
        _ => Vec::new(),
    }
}

/// `spec.FIELD: Invalid value: …: field is immutable` for each of `fields` that changed.
fn same(old: &Value, new: &Value, fields: &[&str]) -> Vec<Refusal> {
    fields
        .iter()
        .filter(|f| old.get(**f) != new.get(**f))
        .map(|f| {
            let given = new.get(*f).cloned().unwrap_or(Value::Null);
            (
                format!("spec.{f}"),
                format!("Invalid value: {given}: field is immutable"),
            )
        })
        .collect()
}

/// Whether `old` and `new` are equal once the fields in `free` are taken from `new` on both.
fn equal_but(old: &Value, new: &Value, free: &[&str]) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return old == new;
    };
    let differs = |a: &serde_json::Map<String, Value>, b: &serde_json::Map<String, Value>| {
        a.iter()
            .any(|(k, v)| !free.contains(&k.as_str()) && b.get(k) != Some(v))
    };
    !differs(old, new) && !differs(new, old)
}

fn statefulset(old: &Value, new: &Value) -> Vec<Refusal> {
    let free = [
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    if equal_but(old, new, &free) {
        return Vec::new();
    }
    vec![(
        "spec".into(),
        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into(),
    )]
}

/// A class's fields live at the top level; each refusal is worded as the apiserver words it.
fn storage_class(old: &Value, new: &Value) -> Vec<Refusal> {
    [
        (
            "parameters",
            "Forbidden: updates to parameters are forbidden.",
        ),
        (
            "provisioner",
            "Forbidden: updates to provisioner are forbidden.",
        ),
        (
            "reclaimPolicy",
            "Forbidden: updates to reclaimPolicy are forbidden.",
        ),
        ("volumeBindingMode", "Invalid value: field is immutable"),
    ]
    .into_iter()
    .filter(|(field, _)| old.get(*field) != new.get(*field))
    .map(|(field, message)| (field.to_string(), message.to_string()))
    .collect()
}

fn service(old: &Value, new: &Value) -> Vec<Refusal> {
    let ip = |s: &Value| s["clusterIP"].as_str().unwrap_or("").to_string();
    if ip(old).is_empty() || ip(old) == ip(new) {
        return Vec::new();
    }
    vec![(
        "spec.clusterIPs[0]".into(),
        format!("Invalid value: [{:?}]: may not change once set", ip(new)),
    )]
}

/// A pod's spec is fixed but for a few fields (ValidatePodUpdate).
fn pod(old: &Value, new: &Value) -> Vec<Refusal> {
    let mut masked = new.clone();
    for list in ["containers", "initContainers"] {
        // `get_mut`, not indexing: indexing would add the absent list as null.
        let old_list = old[list].as_array();
        let new_list = masked.get_mut(list).and_then(Value::as_array_mut);
        if let (Some(old_list), Some(new_list)) = (old_list, new_list)
            && old_list.len() == new_list.len()
        {
            for (o, n) in old_list.iter().zip(new_list.iter_mut()) {
                if let Some(image) = o.get("image") {
                    n["image"] = image.clone();
                }
            }
        }
    }
    // Tolerations may be added, not removed or changed.
    let old_tolerations = old["tolerations"].as_array().cloned().unwrap_or_default();
    let new_tolerations = new["tolerations"].as_array().cloned().unwrap_or_default();
    let only_added = old_tolerations.iter().all(|t| new_tolerations.contains(t));
    let mut free = vec!["activeDeadlineSeconds", "terminationGracePeriodSeconds"];
    if only_added {
        free.push("tolerations");
    }
    if equal_but(old, &masked, &free) {
        return Vec::new();
    }
    vec![(
        "spec".into(),
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into(),
    )]
}

/// A claim's spec is fixed but for its requests; the binder's fields may be filled once.
fn claim(old: &Value, new: &Value) -> Vec<Refusal> {
    let mut masked = new.clone();
    masked["resources"]["requests"] = old["resources"]["requests"].clone();
    if masked["resources"]["requests"].is_null()
        && let Some(resources) = masked["resources"].as_object_mut()
    {
        resources.remove("requests");
        if resources.is_empty()
            && let Some(spec) = masked.as_object_mut()
        {
            spec.remove("resources");
        }
    }
    // Fields the server fills (defaulting, the binder) may be left out by a client.
    for filled in ["volumeName", "storageClassName", "volumeMode"] {
        if masked.get(filled).is_none_or(Value::is_null)
            && let Some(v) = old.get(filled)
        {
            masked[filled] = v.clone();
        }
    }
    if equal_but(old, &masked, &["volumeAttributesClassName"]) {
        return Vec::new();
    }
    vec![(
        "spec".into(),
        "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into(),
    )]
}
