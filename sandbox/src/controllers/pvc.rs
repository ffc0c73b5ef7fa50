//! The volume binder and a provisioner like k3s's local-path: a Pending claim of an existing
//! StorageClass gets a PersistentVolume `pvc-{claim uid}` (a host path on the node, the
//! class's reclaim policy, the claim's size and access modes, a `claimRef` back) and both are
//! Bound. A claim naming an existing volume (`spec.volumeName`) is bound to it instead. A
//! claim whose class does not exist, or that has no class and there is no default, stays
//! Pending with a Warning event; creating the class brings it back here.
//!
//! Simplified: provisioning is immediate whatever the class's `volumeBindingMode` (k3s's
//! `local-path` says WaitForFirstConsumer), and only `rancher.io/local-path`-like host paths
//! are made, whatever the provisioner.

use std::sync::Arc;

use serde_json::{Value, json};

use super::common::{resource, str_of, uid, write_main, write_status};
use super::{Outcome, events, pod::NODE};
use crate::admission::default_class;
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-volume-binder";
pub const PROVISIONER: &str = "rancher.io/local-path";
const BINDER: &str = "persistentvolume-controller";
pub const DEFAULT_CLASS: &str = "local-path";

pub fn reconcile(tx: &mut Tx, key: &ObjKey, pvc: Arc<Value>) -> ApiResult<Outcome> {
    if pvc["status"]["phase"].as_str() == Some("Bound") {
        return Ok(Outcome::done());
    }
    let pv_res = resource(tx, "", "persistentvolumes")?;
    let named_volume = str_of(&pvc, "/spec/volumeName").to_string();
    let volume = if named_volume.is_empty() {
        let class = match pvc["spec"]["storageClassName"].as_str() {
            Some(class) => Some(class.to_string()),
            // A claim made before any default class existed gets the default afterwards.
            None => default_class(tx),
        };
        let Some(class) = class.filter(|c| !c.is_empty()) else {
            let message =
                "no persistent volumes available for this claim and no storage class is set";
            events::record(
                tx,
                &pvc,
                events::normal(BINDER, "FailedBinding", message.into()),
            );
            return Ok(Outcome::done());
        };
        let Some(sc) = tx.get(&ObjKey::new("storage.k8s.io/storageclasses", "", &class)) else {
            let message = format!("storageclass.storage.k8s.io \"{class}\" not found");
            events::record(
                tx,
                &pvc,
                events::warning(BINDER, "ProvisioningFailed", message),
            );
            return Ok(Outcome::done());
        };
        provision(tx, key, &pvc, &class, &sc)?
    } else {
        match tx.get(&ops::key(&pv_res, "", &named_volume)) {
            Some(pv) if claimable(&pv, key, &pvc) => pv,
            _ => {
                let message = format!("volume \"{named_volume}\" not found or already bound");
                events::record(tx, &pvc, events::warning(BINDER, "FailedBinding", message));
                return Ok(Outcome::done());
            }
        }
    };
    bind(tx, key, &pvc, &volume)
}

/// Whether a volume may take this claim: unclaimed, or claimed for it already.
fn claimable(pv: &Value, key: &ObjKey, pvc: &Value) -> bool {
    let claim = &pv["spec"]["claimRef"];
    claim.is_null()
        || (claim["namespace"] == key.ns.as_str()
            && claim["name"] == key.name.as_str()
            && claim["uid"].as_str().is_none_or(|u| u == uid(pvc)))
}

/// Creates the claim's volume (or finds it made by an earlier pass).
fn provision(
    tx: &mut Tx,
    key: &ObjKey,
    pvc: &Value,
    class: &str,
    sc: &Value,
) -> ApiResult<Arc<Value>> {
    let pv_res = resource(tx, "", "persistentvolumes")?;
    let name = format!("pvc-{}", uid(pvc));
    if let Some(pv) = tx.get(&ops::key(&pv_res, "", &name)) {
        return Ok(pv);
    }
    let access = match &pvc["spec"]["accessModes"] {
        Value::Null => json!(["ReadWriteOnce"]),
        modes => modes.clone(),
    };
    let mut spec = json!({
        "accessModes": access,
        "claimRef": claim_ref(key, pvc),
        "hostPath": {
            "path": format!("/var/lib/rancher/k3s/storage/{name}_{}_{}", key.ns, key.name),
            "type": "DirectoryOrCreate",
        },
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]},
        ]}]}},
        "persistentVolumeReclaimPolicy": sc["reclaimPolicy"].as_str().unwrap_or("Delete"),
        "storageClassName": class,
        "volumeMode": pvc["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
    });
    if let Some(storage) = pvc["spec"]["resources"]["requests"]["storage"].as_str() {
        spec["capacity"] = json!({"storage": storage});
    }
    let pv = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {
                "local.path.provisioner/selected-node": NODE,
                "pv.kubernetes.io/provisioned-by": sc["provisioner"].as_str().unwrap_or(PROVISIONER),
            },
        },
        "spec": spec,
    });
    let how = WriteKind::Controller {
        manager: MANAGER,
        part: Part::Main,
    };
    let pv = ops::create(tx, &pv_res, "", pv, how)?;
    let message = format!("Successfully provisioned volume {name}");
    let provisioner = sc["provisioner"].as_str().unwrap_or(PROVISIONER);
    events::record(
        tx,
        pvc,
        events::normal(provisioner, "ProvisioningSucceeded", message),
    );
    Ok(pv)
}

fn claim_ref(key: &ObjKey, pvc: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": key.ns,
        "name": key.name,
        "uid": uid(pvc),
        "resourceVersion": pvc["metadata"]["resourceVersion"],
    })
}

/// Points the volume and the claim at each other, and marks both Bound.
fn bind(tx: &mut Tx, key: &ObjKey, pvc: &Arc<Value>, pv: &Arc<Value>) -> ApiResult<Outcome> {
    let pv_res = resource(tx, "", "persistentvolumes")?;
    let pvc_res = resource(tx, "", "persistentvolumeclaims")?;
    let pv_key = ops::key(&pv_res, "", str_of(pv, "/metadata/name"));
    if pv["spec"]["claimRef"]["uid"].as_str() != Some(uid(pvc)) {
        let mut claimed = (**pv).clone();
        claimed["spec"]["claimRef"] = claim_ref(key, pvc);
        write_main(tx, &pv_res, &pv_key, pv, claimed, MANAGER)?;
    }
    let phase = json!({"phase": "Bound", "lastPhaseTransitionTime": ops::now()});
    if tx
        .get(&pv_key)
        .is_some_and(|v| v["status"]["phase"] != "Bound")
    {
        write_status(tx, &pv_res, &pv_key, phase, MANAGER)?;
    }
    let pv = tx.get(&pv_key).unwrap_or_else(|| pv.clone());
    let mut bound = (**pvc).clone();
    let spec = &mut bound["spec"];
    spec["volumeName"] = pv["metadata"]["name"].clone();
    if spec["storageClassName"].is_null()
        && let Some(class) = pv["spec"]["storageClassName"].as_str()
    {
        spec["storageClassName"] = json!(class);
    }
    if spec["volumeMode"].is_null() {
        spec["volumeMode"] = json!("Filesystem");
    }
    let annotations = &mut bound["metadata"]["annotations"];
    annotations["pv.kubernetes.io/bind-completed"] = json!("yes");
    annotations["pv.kubernetes.io/bound-by-controller"] = json!("yes");
    if let Some(provisioner) = annotation_of(&pv, "pv.kubernetes.io/provisioned-by") {
        annotations["volume.kubernetes.io/storage-provisioner"] = json!(provisioner);
        annotations["volume.beta.kubernetes.io/storage-provisioner"] = json!(provisioner);
    }
    let pvc = write_main(tx, &pvc_res, key, pvc, bound, MANAGER)?;
    let mut status = json!({"phase": "Bound", "accessModes": pv["spec"]["accessModes"]});
    if let Some(capacity) = pv["spec"]["capacity"].as_object() {
        status["capacity"] = json!(capacity);
    } else if let Some(storage) = pvc["spec"]["resources"]["requests"]["storage"].as_str() {
        status["capacity"] = json!({"storage": storage});
    }
    write_status(tx, &pvc_res, key, status, MANAGER)?;
    Ok(Outcome::done())
}

fn annotation_of(obj: &Value, name: &str) -> Option<String> {
    obj["metadata"]["annotations"][name]
        .as_str()
        .map(String::from)
}
