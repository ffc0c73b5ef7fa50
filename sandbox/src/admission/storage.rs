//! Defaults of the storage kinds, and the DefaultStorageClass admission plugin: a claim that
//! names no class gets the class annotated as the default.

use serde_json::{Value, json};

use super::default;
use crate::error::ApiResult;
use crate::store::Tx;

pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
const CLASSES: &str = "storage.k8s.io/storageclasses";

/// The default class's name: the newest of those annotated, as the plugin picks.
pub fn default_class(tx: &Tx) -> Option<String> {
    tx.state()
        .list(CLASSES, None)
        .filter(|(_, c)| c["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "true")
        .max_by(|(_, a), (_, b)| {
            let created = |c: &Value| {
                c["metadata"]["creationTimestamp"]
                    .as_str()
                    .map(String::from)
            };
            created(a).cmp(&created(b))
        })
        .map(|(k, _)| k.name.clone())
}

pub fn claim(tx: &Tx, obj: &mut Value) -> ApiResult<()> {
    obj["status"] = json!({"phase": "Pending"});
    if obj["spec"]["storageClassName"].is_null()
        && let Some(class) = default_class(tx)
    {
        obj["spec"]["storageClassName"] = json!(class);
    }
    if obj["spec"].is_object() {
        default(&mut obj["spec"], "volumeMode", json!("Filesystem"));
    }
    Ok(())
}

pub fn volume(obj: &mut Value, create: bool) -> ApiResult<()> {
    if obj["spec"].is_object() {
        default(
            &mut obj["spec"],
            "persistentVolumeReclaimPolicy",
            json!("Retain"),
        );
        default(&mut obj["spec"], "volumeMode", json!("Filesystem"));
    }
    if create {
        obj["status"] = json!({"phase": "Pending", "lastPhaseTransitionTime": crate::ops::now()});
    }
    Ok(())
}

pub fn class(obj: &mut Value) -> ApiResult<()> {
    default(obj, "reclaimPolicy", json!("Delete"));
    default(obj, "volumeBindingMode", json!("Immediate"));
    Ok(())
}
