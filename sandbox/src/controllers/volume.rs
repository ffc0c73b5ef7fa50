//! PersistentVolumes after their claims: a new unclaimed volume becomes Available; one whose
//! claim is gone is deleted (reclaim policy Delete, what provisioned volumes get from
//! `local-path`) or Released (Retain), as the persistent volume controller does.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Outcome;
use super::common::{delete, resource, str_of, write_status};
use crate::error::ApiResult;
use crate::ops;
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-volume-binder";
const CLAIMS: &str = "/persistentvolumeclaims";
const VOLUMES: &str = "/persistentvolumes";

pub fn reconcile(tx: &mut Tx, key: &ObjKey, pv: Arc<Value>) -> ApiResult<Outcome> {
    let res = resource(tx, "", "persistentvolumes")?;
    let claim = &pv["spec"]["claimRef"];
    let phase = str_of(&pv, "/status/phase");
    if claim.is_null() {
        if phase == "Pending" || phase.is_empty() {
            set_phase(tx, key, "Available")?;
        }
        return Ok(Outcome::done());
    }
    let claim_key = ObjKey::new(
        CLAIMS,
        claim["namespace"].as_str().unwrap_or(""),
        claim["name"].as_str().unwrap_or(""),
    );
    let claimed = tx.get(&claim_key).is_some_and(|c| {
        claim["uid"]
            .as_str()
            .is_none_or(|u| u == str_of(&c, "/metadata/uid"))
    });
    // A claim that names the volume binds it itself; one that went releases it.
    if claimed || phase == "Released" || claim["uid"].is_null() {
        return Ok(Outcome::done());
    }
    if pv["spec"]["persistentVolumeReclaimPolicy"].as_str() == Some("Delete") {
        delete(tx, &res, key)?;
    } else {
        set_phase(tx, key, "Released")?;
    }
    Ok(Outcome::done())
}

/// The claim `key` was deleted: its volumes follow their reclaim policy.
pub fn claim_gone(tx: &mut Tx, claim: &ObjKey) -> ApiResult<()> {
    let volumes: Vec<(ObjKey, Arc<Value>)> = tx
        .state()
        .list(VOLUMES, None)
        .filter(|(_, v)| {
            v["spec"]["claimRef"]["namespace"] == claim.ns.as_str()
                && v["spec"]["claimRef"]["name"] == claim.name.as_str()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, pv) in volumes {
        reconcile(tx, &key, pv)?;
    }
    Ok(())
}

fn set_phase(tx: &mut Tx, key: &ObjKey, phase: &str) -> ApiResult<()> {
    let res = resource(tx, "", "persistentvolumes")?;
    let status = json!({"phase": phase, "lastPhaseTransitionTime": ops::now()});
    write_status(tx, &res, key, status, MANAGER)
}
