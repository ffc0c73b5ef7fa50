//! The garbage collector.
//!
//! - Background: a dependent whose owners (checked by kind, namespace, name and uid) are all
//!   gone is deleted in the background. When only some are gone, the references to them are
//!   removed.
//! - Foreground: an owner being deleted with the `foregroundDeletion` finalizer has its
//!   dependents deleted (in the foreground themselves when their reference to it has
//!   `blockOwnerDeletion`), and loses the finalizer once no blocking dependent is left.
//! - Orphan: an owner being deleted with the `orphan` finalizer has the references to it
//!   removed from its dependents, then loses the finalizer.

use std::sync::Arc;

use serde_json::{Value, json};

use super::common::{delete_with, is_deleting, owner_key, owner_refs, uid, write_main};
use crate::error::ApiResult;
use crate::ops::{self, FOREGROUND, ORPHAN, Propagation};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-garbage-collector";

/// What an ownerReference points to.
#[derive(Debug, PartialEq, Eq)]
enum Owner {
    /// Exists (or cannot be checked: its kind is not served).
    Solid,
    /// Gone, or replaced by another object with the same name.
    Dangling,
    /// Being deleted in the foreground: waits for its dependents.
    Waiting,
}

fn classify(tx: &Tx, owner_ref: &Value, ns: &str) -> Owner {
    let Some(key) = owner_key(tx, owner_ref, ns) else {
        return Owner::Solid;
    };
    match tx.get(&key) {
        Some(owner) if owner["metadata"]["uid"] == owner_ref["uid"] => {
            if is_deleting(&owner) && ops::finalizers(&owner).iter().any(|f| f == FOREGROUND) {
                Owner::Waiting
            } else {
                Owner::Solid
            }
        }
        _ => Owner::Dangling,
    }
}

/// Garbage collection for one object; returns true when the object was deleted by it.
pub fn reconcile(tx: &mut Tx, key: &ObjKey, obj: &Arc<Value>) -> ApiResult<bool> {
    if collect_dependent(tx, key, obj)? {
        return Ok(true);
    }
    let Some(obj) = tx.get(key) else {
        return Ok(true);
    };
    if is_deleting(&obj) {
        let finalizers = ops::finalizers(&obj);
        if finalizers.iter().any(|f| f == ORPHAN) {
            orphan_dependents(tx, key, &obj)?;
        } else if finalizers.iter().any(|f| f == FOREGROUND) {
            delete_dependents(tx, key, &obj)?;
        }
    }
    Ok(tx.get(key).is_none())
}

/// Deletes `obj` when none of its owners remain, or drops references to the vanished ones.
fn collect_dependent(tx: &mut Tx, key: &ObjKey, obj: &Arc<Value>) -> ApiResult<bool> {
    let refs = owner_refs(obj);
    if refs.is_empty() || is_deleting(obj) {
        return Ok(false);
    }
    let kinds: Vec<Owner> = refs.iter().map(|r| classify(tx, r, &key.ns)).collect();
    if kinds.iter().all(|k| *k == Owner::Solid) {
        return Ok(false);
    }
    let Some(res) = dependent_resource(tx, key) else {
        return Ok(false);
    };
    if kinds.contains(&Owner::Solid) {
        let kept: Vec<Value> = refs
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k == Owner::Solid)
            .map(|(r, _)| r.clone())
            .collect();
        let mut new = (**obj).clone();
        new["metadata"]["ownerReferences"] = json!(kept);
        write_main(tx, &res, key, obj, new, MANAGER)?;
        return Ok(false);
    }
    let blocking = refs
        .iter()
        .zip(&kinds)
        .any(|(r, k)| *k == Owner::Waiting && r["blockOwnerDeletion"].as_bool() == Some(true));
    let propagation = if blocking {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    delete_with(tx, &res, key, propagation)?;
    Ok(true)
}

fn orphan_dependents(tx: &mut Tx, key: &ObjKey, owner: &Value) -> ApiResult<()> {
    let owner_uid = uid(owner).to_string();
    for dep_key in tx.state().dependents_of(&owner_uid) {
        let Some(dep) = tx.get(&dep_key) else {
            continue;
        };
        let Some(res) = dependent_resource(tx, &dep_key) else {
            continue;
        };
        let kept: Vec<Value> = owner_refs(&dep)
            .iter()
            .filter(|r| r["uid"].as_str() != Some(owner_uid.as_str()))
            .cloned()
            .collect();
        let mut new = (*dep).clone();
        if kept.is_empty() {
            if let Some(meta) = new["metadata"].as_object_mut() {
                meta.remove("ownerReferences");
            }
        } else {
            new["metadata"]["ownerReferences"] = json!(kept);
        }
        write_main(tx, &res, &dep_key, &dep, new, MANAGER)?;
    }
    if let Some(res) = dependent_resource(tx, key) {
        ops::remove_finalizer(tx, &res, key, ORPHAN, MANAGER)?;
    }
    Ok(())
}

fn delete_dependents(tx: &mut Tx, key: &ObjKey, owner: &Value) -> ApiResult<()> {
    let owner_uid = uid(owner).to_string();
    for dep_key in tx.state().dependents_of(&owner_uid) {
        if let Some(dep) = tx.get(&dep_key) {
            collect_dependent(tx, &dep_key, &dep)?;
        }
    }
    let blocked = tx.state().dependents_of(&owner_uid).iter().any(|k| {
        tx.get(k).is_some_and(|dep| {
            owner_refs(&dep).iter().any(|r| {
                r["uid"].as_str() == Some(owner_uid.as_str())
                    && r["blockOwnerDeletion"].as_bool() == Some(true)
            })
        })
    });
    if !blocked && let Some(res) = dependent_resource(tx, key) {
        ops::remove_finalizer(tx, &res, key, FOREGROUND, MANAGER)?;
    }
    Ok(())
}

/// The resource stored under `key` (any served version).
fn dependent_resource(tx: &Tx, key: &ObjKey) -> Option<Arc<crate::registry::Resource>> {
    tx.state()
        .registry
        .all()
        .find(|r| r.key() == key.res)
        .cloned()
}
