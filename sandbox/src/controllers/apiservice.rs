//! The aggregator's autoregistration: an APIService `{version}.{group}` (`v1.` for the core
//! group) for every group version the sandbox serves, built in or from a CRD, each Local and
//! Available; those of a group no longer served go. Run at start and whenever a CRD or an
//! APIService changes.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::common::{delete, resource};
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-apiservice-autoregistration";
const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";
const SERVICES: &str = "apiregistration.k8s.io/apiservices";

pub fn sync(tx: &mut Tx) -> ApiResult<()> {
    let res = resource(tx, "apiregistration.k8s.io", "apiservices")?;
    let registry = tx.state().registry.clone();
    let mut wanted = BTreeSet::new();
    for (group, versions) in registry.groups() {
        let custom = registry.all().any(|r| r.group == group && r.custom);
        for (i, version) in versions.iter().enumerate() {
            let name = format!("{version}.{group}");
            wanted.insert(name.clone());
            if tx.get(&ObjKey::new(SERVICES, "", &name)).is_some() {
                continue;
            }
            let (managed, group_priority, version_priority) = if custom {
                ("true", 1000, 100 - i as i64)
            } else {
                ("onstart", 18000, 15 - i as i64)
            };
            let service = json!({
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": name, "labels": {AUTOMANAGED: managed}},
                "spec": {
                    "group": group,
                    "version": version,
                    "groupPriorityMinimum": group_priority,
                    "versionPriority": version_priority,
                },
            });
            let how = WriteKind::Controller {
                manager: MANAGER,
                part: Part::Main,
            };
            ops::create(tx, &res, "", service, how)?;
            let status = json!({"conditions": [{
                "type": "Available",
                "status": "True",
                "reason": "Local",
                "message": "Local APIServices are always available",
                "lastTransitionTime": ops::now(),
            }]});
            let key = ObjKey::new(SERVICES, "", &name);
            super::common::write_status(tx, &res, &key, status, MANAGER)?;
        }
    }
    let gone: Vec<ObjKey> = tx
        .state()
        .list(SERVICES, None)
        .filter(|(k, s)| !wanted.contains(&k.name) && is_automanaged(s))
        .map(|(k, _)| k.clone())
        .collect();
    for key in gone {
        delete(tx, &res, &key)?;
    }
    Ok(())
}

fn is_automanaged(service: &Value) -> bool {
    service["metadata"]["labels"][AUTOMANAGED].is_string()
}
