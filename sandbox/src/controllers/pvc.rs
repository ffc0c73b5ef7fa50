//! The volume binder: a Pending PersistentVolumeClaim is bound at once to a made-up volume
//! `pvc-{uid}` (no PersistentVolume object is created) with the requested capacity, in the
//! storage class `local-path` (k3s's default) when none is named.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Outcome;
use super::common::{resource, uid, write_main, write_status};
use crate::error::ApiResult;
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-volume-binder";
pub const DEFAULT_CLASS: &str = "local-path";

pub fn reconcile(tx: &mut Tx, key: &ObjKey, pvc: Arc<Value>) -> ApiResult<Outcome> {
    if pvc["status"]["phase"].as_str() == Some("Bound") {
        return Ok(Outcome::done());
    }
    let res = resource(tx, "", "persistentvolumeclaims")?;
    let mut bound = (*pvc).clone();
    let spec = &mut bound["spec"];
    if spec["storageClassName"].as_str().is_none() {
        spec["storageClassName"] = json!(DEFAULT_CLASS);
    }
    if spec["volumeMode"].is_null() {
        spec["volumeMode"] = json!("Filesystem");
    }
    if spec["volumeName"].as_str().is_none_or(str::is_empty) {
        spec["volumeName"] = json!(format!("pvc-{}", uid(&pvc)));
    }
    let annotations = &mut bound["metadata"]["annotations"];
    annotations["pv.kubernetes.io/bind-completed"] = json!("yes");
    annotations["pv.kubernetes.io/bound-by-controller"] = json!("yes");
    annotations["volume.kubernetes.io/storage-provisioner"] = json!("rancher.io/local-path");
    let pvc = write_main(tx, &res, key, &pvc, bound, MANAGER)?;
    let mut access = pvc["spec"]["accessModes"].clone();
    if access.is_null() {
        access = json!(["ReadWriteOnce"]);
    }
    let mut status = json!({"phase": "Bound", "accessModes": access});
    if let Some(storage) = pvc["spec"]["resources"]["requests"]["storage"].as_str() {
        status["capacity"] = json!({"storage": storage});
    }
    write_status(tx, &res, key, status, MANAGER)?;
    Ok(Outcome::done())
}
