//! The API server's registry strategies: on every write, which fields of the client's object the
//! server takes and which it keeps from the stored one or sets itself.
//!
//! A real apiserver gives each kind a create strategy and one update strategy per path it
//! serves (the main resource, `/status`, a namespace's `/finalize`). Modelled here:
//! - the main resource never changes the status (nor a namespace's `spec.finalizers`);
//! - `/status` changes only the status, plus the metadata that kind's status strategy lets
//!   through; `/finalize` only `spec.finalizers`;
//! - on create, status is the server's to set;
//! - `metadata.generation` exists only on kinds that track it and moves only on spec changes;
//! - server-set metadata ([`metadata`]) and per-kind immutable fields ([`immutable`]).

mod generation;
pub mod immutable;
pub mod metadata;

use serde_json::{Map, Value, json};

use crate::ops::Part;
use crate::registry::Resource;

/// What a write to `/status` may change besides the status, per kind's status strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusWrite {
    /// The spec is reset; the metadata is the client's (Services, Jobs, Namespaces…).
    Metadata,
    /// As [`StatusWrite::Metadata`], but the labels are kept too (Deployments).
    MetadataButLabels,
    /// As [`StatusWrite::Metadata`], but the owner references are kept too (Pods: old kubelets
    /// corrupted them through `/status` and broke garbage collection).
    MetadataButOwners,
    /// Only the status changes (custom resources, CRDs).
    StatusOnly,
}

fn status_write(res: &Resource) -> StatusWrite {
    match res.key().as_str() {
        _ if res.custom => StatusWrite::StatusOnly,
        "apiextensions.k8s.io/customresourcedefinitions" => StatusWrite::StatusOnly,
        "apps/deployments" => StatusWrite::MetadataButLabels,
        "/pods" => StatusWrite::MetadataButOwners,
        _ => StatusWrite::Metadata,
    }
}

/// Whether a create drops the status the client sent. Nodes are the exception: a kubelet
/// registers its node with a status.
fn clears_status_on_create(res: &Resource) -> bool {
    res.has_subresource("status") && res.key() != "/nodes"
}

fn is_namespace(res: &Resource) -> bool {
    res.key() == crate::ops::NAMESPACES
}

/// PrepareForCreate: the server-set metadata, no client status, generation 1 where tracked.
/// Kind defaults and allocations are [`crate::admission`]'s, which runs after this.
pub fn prepare_for_create(res: &Resource, obj: &mut Value) {
    metadata::on_create(obj);
    generation::on_create(res, obj);
    if clears_status_on_create(res)
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    if is_namespace(res) {
        // The server insists on its own finalizer, after any the client asked for.
        let mut finalizers = obj["spec"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == "kubernetes") {
            finalizers.push(json!("kubernetes"));
        }
        obj["spec"]["finalizers"] = Value::Array(finalizers);
    }
}

/// PrepareForUpdate of the path `part`: `new` keeps from `old` whatever that path may not change.
pub fn prepare_for_update(res: &Resource, part: Part, old: &Value, mut new: Value) -> Value {
    match part {
        Part::Main => {
            if res.has_subresource("status") {
                copy_field(old, &mut new, "status");
            }
            if is_namespace(res) {
                copy_finalizers(old, &mut new);
            }
        }
        Part::Status => new = status_update(res, old, new),
        Part::Finalize => {
            let mut kept = old.clone();
            copy_finalizers(&new, &mut kept);
            new = kept;
        }
    }
    new
}

/// The generation of an updated object, once it is defaulted: the stored one, one up when a
/// write to the main resource changed what the kind tracks (a subresource's strategy never
/// moves it, even where it lets annotations through).
pub fn update_generation(res: &Resource, part: Part, old: &Value, new: &mut Value) {
    generation::on_update(res, part == Part::Main, old, new);
}

/// A write to `/status`: the client's status (and metadata where the kind allows), the rest
/// of the stored object.
fn status_update(res: &Resource, old: &Value, new: Value) -> Value {
    let rule = status_write(res);
    if rule == StatusWrite::StatusOnly {
        let mut kept = old.clone();
        copy_field(&new, &mut kept, "status");
        if let Some(managed) = new["metadata"].get("managedFields") {
            kept["metadata"]["managedFields"] = managed.clone();
        }
        return kept;
    }
    // Everything but metadata and status is the spec, whatever the kind calls it.
    let mut kept = new;
    let spec_fields = |obj: &Value| -> Vec<String> {
        obj.as_object()
            .map(|m| m.keys().filter(|k| is_spec(k)).cloned().collect())
            .unwrap_or_default()
    };
    let mut fields = spec_fields(old);
    fields.extend(spec_fields(&kept));
    for field in fields {
        copy_field(old, &mut kept, &field);
    }
    let meta_kept: &[&str] = match rule {
        StatusWrite::MetadataButLabels => &["labels"],
        StatusWrite::MetadataButOwners => &["ownerReferences"],
        _ => &[],
    };
    for field in meta_kept {
        copy_meta(old, &mut kept, field);
    }
    kept
}

/// The top-level fields that make up an object's spec: all but its type, metadata and status.
pub fn is_spec(field: &str) -> bool {
    !matches!(field, "metadata" | "status" | "apiVersion" | "kind")
}

/// The paths server-side apply must neither merge nor own on `part` (the apiserver's
/// ResetFields): what that path's strategy resets anyway.
pub fn strip_reset_fields(res: &Resource, part: Part, config: &mut Value) {
    let Some(map) = config.as_object_mut() else {
        return;
    };
    match part {
        Part::Main => {
            if res.has_subresource("status") {
                map.remove("status");
            }
            if is_namespace(res)
                && let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.remove("finalizers");
            }
        }
        Part::Status | Part::Finalize => {
            let spec: Vec<String> = map.keys().filter(|k| is_spec(k)).cloned().collect();
            for field in spec {
                map.remove(&field);
            }
        }
    }
}

/// Sets `to[field]` to `from[field]`, or removes it when `from` has none.
fn copy_field(from: &Value, to: &mut Value, field: &str) {
    let Some(to) = to.as_object_mut() else {
        return;
    };
    match from.get(field) {
        Some(v) => {
            to.insert(field.to_string(), v.clone());
        }
        None => {
            to.remove(field);
        }
    }
}

fn copy_meta(from: &Value, to: &mut Value, field: &str) {
    if !to["metadata"].is_object() {
        to["metadata"] = Value::Object(Map::new());
    }
    copy_field(&from["metadata"], &mut to["metadata"], field);
}

/// A namespace's `spec.finalizers` from `from` into `to`.
fn copy_finalizers(from: &Value, to: &mut Value) {
    match from["spec"].get("finalizers") {
        Some(f) => {
            if !to["spec"].is_object() {
                to["spec"] = Value::Object(Map::new());
            }
            to["spec"]["finalizers"] = f.clone();
        }
        None => {
            if let Some(spec) = to.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
        }
    }
}

#[cfg(test)]
mod tests;
