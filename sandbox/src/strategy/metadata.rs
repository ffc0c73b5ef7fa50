//! The metadata the server sets and a client cannot: uid, creationTimestamp, the deletion
//! fields, resourceVersion and selfLink (generation is [`super::generation`]'s).

use serde_json::{Value, json};

use crate::ops::now;

/// Fields a create never takes from the client.
const CLEARED_ON_CREATE: &[&str] = &[
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// A new object's server-set metadata: a fresh uid and creation time, nothing else.
pub fn on_create(obj: &mut Value) {
    let Some(meta) = obj["metadata"].as_object_mut() else {
        return;
    };
    for field in CLEARED_ON_CREATE {
        meta.remove(*field);
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
}

/// Why an update's metadata was refused: the field and the apiserver's message.
pub type Refusal = (String, String);

/// An update's server-set metadata, from the stored object. A client may leave them out; one
/// that changes uid or the deletion fields, or adds a finalizer to an object being deleted,
/// is refused as by the apiserver's ValidateObjectMetaUpdate.
pub fn on_update(old: &Value, new: &mut Value) -> Result<(), Vec<Refusal>> {
    let mut refused = Vec::new();
    let old_meta = &old["metadata"];
    for field in ["uid", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        let given = &new["metadata"][field];
        let sent = !given.is_null() && given.as_str() != Some("");
        if sent && Some(given) != old_meta.get(field) {
            refused.push(immutable(field, given));
        }
    }
    if old_meta["deletionTimestamp"].is_string() {
        let before = crate::ops::finalizers(old);
        let added: Vec<String> = crate::ops::finalizers(new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            refused.push((
                "metadata.finalizers".into(),
                format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                ),
            ));
        }
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    let Some(meta) = new["metadata"].as_object_mut() else {
        return Ok(());
    };
    meta.remove("selfLink");
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    Ok(())
}

pub fn immutable(field: &str, given: &Value) -> Refusal {
    (
        format!("metadata.{field}"),
        format!("Invalid value: {given}: field is immutable"),
    )
}
