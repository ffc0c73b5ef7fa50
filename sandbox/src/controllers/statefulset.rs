//! The StatefulSet controller.
//!
//! Pods `{sts}-0` … `{sts}-{n-1}` with the labels `statefulset.kubernetes.io/pod-name`,
//! `apps.kubernetes.io/pod-index` and `controller-revision-hash`, created in order (each once
//! the previous one is Ready) with `podManagementPolicy: OrderedReady`, all at once with
//! `Parallel`, and removed from the highest ordinal when scaling down. Each
//! volumeClaimTemplate gives every pod a PVC `{template}-{sts}-{ordinal}` that its volumes
//! reference; PVCs are owned by the StatefulSet only when
//! `persistentVolumeClaimRetentionPolicy.whenDeleted` is `Delete`, and removed on scale-down
//! when `whenScaled` is `Delete`. A template change (`RollingUpdate`) replaces pods of the old
//! revision one at a time from the highest ordinal, down to `partition`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::common::{
    controlled, controller_ref, controller_ref_to, delete, int, is_deleting, owner_refs, phase,
    pod_from_template, pod_ready, resource, template_hash, uid, write_main, write_status,
};
use super::{Outcome, events};
use crate::error::{ApiError, ApiResult};
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-statefulset-controller";
const COMPONENT: &str = "statefulset-controller";
const POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
const POD_INDEX: &str = "apps.kubernetes.io/pod-index";
const REVISION: &str = "controller-revision-hash";

fn ordinal(sts_name: &str, pod_name: &str) -> Option<usize> {
    pod_name
        .strip_prefix(sts_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn revision_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION].as_str().unwrap_or("")
}

pub fn reconcile(tx: &mut Tx, key: &ObjKey, sts: Arc<Value>) -> ApiResult<Outcome> {
    let res = resource(tx, "apps", "statefulsets")?;
    let pods_res = resource(tx, "", "pods")?;
    let want = int(&sts["spec"]["replicas"], 1).max(0) as usize;
    let parallel = sts["spec"]["podManagementPolicy"].as_str() == Some("Parallel");
    let update_revision = format!("{}-{}", key.name, template_hash(&sts["spec"]["template"]));
    let pods = |tx: &Tx| -> Vec<(usize, ObjKey, Arc<Value>)> {
        let mut pods: Vec<_> = controlled(tx, uid(&sts), "/pods")
            .into_iter()
            .filter_map(|(k, p)| Some((ordinal(&key.name, &k.name)?, k, p)))
            .collect();
        pods.sort_by_key(|(i, _, _)| *i);
        pods
    };
    // Finished pods are replaced, as the real controller does.
    for (_, k, p) in pods(tx) {
        if matches!(phase(&p), "Succeeded" | "Failed") && !is_deleting(&p) {
            delete(tx, &pods_res, &k)?;
        }
    }
    let current = pods(tx);
    let terminating = current.iter().any(|(_, _, p)| is_deleting(p));
    // Scale up: create missing ordinals.
    for i in 0..want {
        match current.iter().find(|(o, _, _)| *o == i) {
            Some((_, _, p)) => {
                if !parallel && !pod_ready(p) {
                    break;
                }
            }
            None => {
                if terminating && !parallel {
                    break;
                }
                create_pod(tx, &sts, key, i, &update_revision)?;
                if !parallel {
                    break;
                }
            }
        }
    }
    // Scale down: highest ordinals first, one at a time unless Parallel.
    let extra: Vec<(usize, ObjKey)> = current
        .iter()
        .rev()
        .filter(|(o, _, p)| *o >= want && !is_deleting(p))
        .map(|(o, k, _)| (*o, k.clone()))
        .collect();
    let mut removed = Vec::new();
    for (o, k) in extra {
        if !parallel && (terminating || !removed.is_empty()) {
            break;
        }
        delete(tx, &pods_res, &k)?;
        let message = format!(
            "delete Pod {} in StatefulSet {} successful",
            k.name, key.name
        );
        events::record(
            tx,
            &sts,
            events::normal(COMPONENT, "SuccessfulDelete", message),
        );
        removed.push(o);
    }
    if sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"].as_str() == Some("Delete")
    {
        delete_claims_above(tx, &sts, key, want)?;
    }
    // Rolling update: once everything is ready, replace the highest pod of an old revision.
    let current = pods(tx);
    let rolling = sts["spec"]["updateStrategy"]["type"]
        .as_str()
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let partition = int(
        &sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
        0,
    )
    .max(0) as usize;
    let all_ready = current.len() == want
        && current
            .iter()
            .all(|(_, _, p)| pod_ready(p) && !is_deleting(p));
    if rolling && all_ready {
        let stale = current
            .iter()
            .rev()
            .find(|(o, _, p)| *o >= partition && revision_of(p) != update_revision);
        if let Some((_, k, _)) = stale {
            delete(tx, &pods_res, k)?;
            let message = format!(
                "delete Pod {} in StatefulSet {} successful",
                k.name, key.name
            );
            events::record(
                tx,
                &sts,
                events::normal(COMPONENT, "SuccessfulDelete", message),
            );
        }
    }
    let status = status(&sts, &pods(tx), want, &update_revision);
    write_status(tx, &res, key, status, MANAGER)?;
    Ok(Outcome::done())
}

fn claim_name(template: &Value, sts: &str, i: usize) -> String {
    format!(
        "{}-{sts}-{i}",
        template["metadata"]["name"].as_str().unwrap_or("")
    )
}

fn claim_templates(sts: &Value) -> &[Value] {
    sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn create_pod(tx: &mut Tx, sts: &Value, key: &ObjKey, i: usize, revision: &str) -> ApiResult<()> {
    let res = resource(tx, "apps", "statefulsets")?;
    let pods_res = resource(tx, "", "pods")?;
    let pvc_res = resource(tx, "", "persistentvolumeclaims")?;
    let owned_claims = sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"].as_str()
        == Some("Delete");
    let selector_labels = sts["spec"]["selector"]["matchLabels"].clone();
    let mut volumes: Vec<Value> = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for template in claim_templates(sts) {
        let claim = claim_name(template, &key.name, i);
        let vol_name = template["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        volumes.retain(|v| v["name"].as_str() != Some(vol_name.as_str()));
        volumes.push(json!({"name": vol_name, "persistentVolumeClaim": {"claimName": claim}}));
        if tx.get(&ops::key(&pvc_res, &key.ns, &claim)).is_some() {
            continue;
        }
        let mut labels = template["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if let Some(sel) = selector_labels.as_object() {
            labels.extend(sel.clone());
        }
        let mut meta = json!({"name": claim, "labels": labels});
        if let Some(a) = template["metadata"]["annotations"].as_object() {
            meta["annotations"] = json!(a);
        }
        if owned_claims {
            meta["ownerReferences"] = json!([controller_ref_to(&res, sts)]);
        }
        let pvc = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta,
            "spec": template["spec"].clone(),
        });
        let how = WriteKind::Controller {
            manager: MANAGER,
            part: Part::Main,
        };
        ops::create(tx, &pvc_res, &key.ns, pvc, how)?;
        let message = format!(
            "create Claim {claim} Pod {}-{i} in StatefulSet {} success",
            key.name, key.name
        );
        events::record(
            tx,
            sts,
            events::normal(COMPONENT, "SuccessfulCreate", message),
        );
    }
    let name = format!("{}-{i}", key.name);
    let pod_key = ops::key(&pods_res, &key.ns, &name);
    if let Some(existing) = tx.get(&pod_key) {
        // An orphan with our name (left by an orphaning delete) is adopted.
        if controller_ref(&existing).is_none() {
            let mut adopted = (*existing).clone();
            let mut refs = owner_refs(&existing).to_vec();
            refs.push(controller_ref_to(&res, sts));
            adopted["metadata"]["ownerReferences"] = json!(refs);
            write_main(tx, &pods_res, &pod_key, &existing, adopted, MANAGER)?;
            return Ok(());
        }
        return Err(ApiError::already_exists("pods", "", &name));
    }
    let mut pod = pod_from_template(
        &sts["spec"]["template"],
        &name,
        "",
        controller_ref_to(&res, sts),
    );
    let labels = &mut pod["metadata"]["labels"];
    labels[POD_NAME] = json!(name);
    labels[POD_INDEX] = json!(i.to_string());
    labels[REVISION] = json!(revision);
    pod["spec"]["hostname"] = json!(name);
    if let Some(service) = sts["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        pod["spec"]["subdomain"] = json!(service);
    }
    if !volumes.is_empty() {
        pod["spec"]["volumes"] = json!(volumes);
    }
    let how = WriteKind::Controller {
        manager: MANAGER,
        part: Part::Main,
    };
    ops::create(tx, &pods_res, &key.ns, pod, how)?;
    let message = format!("create Pod {name} in StatefulSet {} successful", key.name);
    events::record(
        tx,
        sts,
        events::normal(COMPONENT, "SuccessfulCreate", message),
    );
    Ok(())
}

/// Removes the claims of ordinals at or above `want` whose pods are gone.
fn delete_claims_above(tx: &mut Tx, sts: &Value, key: &ObjKey, want: usize) -> ApiResult<()> {
    let pvc_res = resource(tx, "", "persistentvolumeclaims")?;
    let templates: Vec<String> = claim_templates(sts)
        .iter()
        .filter_map(|t| t["metadata"]["name"].as_str().map(String::from))
        .collect();
    let claims: Vec<ObjKey> = tx
        .state()
        .list("/persistentvolumeclaims", Some(&key.ns))
        .filter(|(k, _)| {
            templates.iter().any(|t| {
                k.name
                    .strip_prefix(&format!("{t}-"))
                    .and_then(|rest| ordinal(&key.name, rest))
                    .is_some_and(|i| i >= want)
            })
        })
        .map(|(k, _)| k.clone())
        .collect();
    for claim in claims {
        let pod_name = claim
            .name
            .rsplit_once('-')
            .map(|(_, i)| format!("{}-{i}", key.name));
        let pod_left =
            pod_name.is_some_and(|n| tx.get(&ObjKey::new("/pods", &key.ns, n)).is_some());
        if !pod_left {
            delete(tx, &pvc_res, &claim)?;
        }
    }
    Ok(())
}

fn status(
    sts: &Value,
    pods: &[(usize, ObjKey, Arc<Value>)],
    want: usize,
    update_revision: &str,
) -> Value {
    let live: Vec<&Arc<Value>> = pods
        .iter()
        .map(|(_, _, p)| p)
        .filter(|p| !is_deleting(p))
        .collect();
    let ready = live.iter().filter(|p| pod_ready(p)).count();
    let updated = live
        .iter()
        .filter(|p| revision_of(p) == update_revision)
        .count();
    let old_current = sts["status"]["currentRevision"].as_str().unwrap_or("");
    let current_revision = if old_current.is_empty() || (updated == want && live.len() == want) {
        update_revision.to_string()
    } else {
        old_current.to_string()
    };
    let current = live
        .iter()
        .filter(|p| revision_of(p) == current_revision)
        .count();
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        sts["metadata"]["generation"].clone(),
    );
    status.insert("replicas".into(), json!(live.len()));
    for (field, n) in [
        ("readyReplicas", ready),
        ("currentReplicas", current),
        ("updatedReplicas", updated),
    ] {
        if n != 0 {
            status.insert(field.into(), json!(n));
        }
    }
    status.insert("availableReplicas".into(), json!(ready));
    status.insert("currentRevision".into(), json!(current_revision));
    status.insert("updateRevision".into(), json!(update_revision));
    status.insert("collisionCount".into(), json!(0));
    Value::Object(status)
}
