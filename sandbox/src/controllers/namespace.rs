//! The namespace controller: a terminating namespace has everything in it deleted (every
//! resource, custom ones included), and once it is empty its `spec.finalizers` are cleared so
//! the namespace itself goes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::common::{Cond, CondStyle, conditions, delete, is_deleting, write_part, write_status};
use super::{BURST, Ctx, Outcome};
use crate::error::ApiResult;
use crate::ops;
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-namespace-controller";

pub fn reconcile(tx: &mut Tx, ctx: &Ctx, key: &ObjKey, ns_obj: &Arc<Value>) -> ApiResult<Outcome> {
    if !is_deleting(ns_obj) {
        return super::namespace_setup::reconcile(tx, ctx, &key.name);
    }
    let ns = key.name.clone();
    let inside: Vec<(ObjKey, Arc<Value>)> = tx
        .state()
        .iter()
        .filter(|(k, _)| k.ns == ns)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // A burst per pass, so that one write does not hold a crowded namespace at once.
    let mut budget = BURST;
    for (k, obj) in &inside {
        if is_deleting(obj) {
            continue;
        }
        if budget == 0 {
            break;
        }
        budget -= 1;
        let res = tx
            .state()
            .registry
            .all()
            .find(|r| r.key() == k.res)
            .cloned();
        match res {
            Some(res) => delete(tx, &res, k)?,
            // Objects of a custom resource whose CRD is gone: nothing else can remove them.
            None => {
                tx.remove(k);
            }
        }
    }
    let res = super::common::resource(tx, "", "namespaces")?;
    // What is left holds on to finalizers.
    let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
    let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
    for (k, _) in tx.state().iter().filter(|(k, _)| k.ns == ns) {
        let plural = k.res.rsplit_once('/').map(|(g, p)| {
            if g.is_empty() {
                p.to_string()
            } else {
                format!("{p}.{g}")
            }
        });
        *remaining.entry(plural.unwrap_or_default()).or_default() += 1;
        if let Some(obj) = tx.get(k) {
            for f in ops::finalizers(&obj) {
                *finalizers.entry(f).or_default() += 1;
            }
        }
    }
    let Some(current) = tx.get(key) else {
        return Ok(Outcome::done());
    };
    if remaining.is_empty() {
        let mut new = (*current).clone();
        new["spec"]["finalizers"] = json!([]);
        // Only `/finalize` may change them: the main resource keeps the stored ones.
        write_part(tx, &res, key, &current, new, MANAGER, ops::Part::Finalize)?;
        return Ok(Outcome::done());
    }
    let describe = |m: &BTreeMap<String, usize>, what: &str| {
        m.iter()
            .map(|(k, n)| format!("{k} {what} {n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let content = format!(
        "Some resources are remaining: {}",
        describe(&remaining, "has")
    );
    let (fin_status, fin_reason, fin_message) = if finalizers.is_empty() {
        (
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".to_string(),
        )
    } else {
        (
            "True",
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                describe(&finalizers, "in")
            ),
        )
    };
    let wanted = [
        Cond {
            kind: "NamespaceDeletionDiscoveryFailure",
            status: "False",
            reason: "ResourcesDiscovered",
            message: "All resources successfully discovered".into(),
        },
        Cond {
            kind: "NamespaceDeletionGroupVersionParsingFailure",
            status: "False",
            reason: "ParsedGroupVersions",
            message: "All legacy kube types successfully parsed".into(),
        },
        Cond {
            kind: "NamespaceDeletionContentFailure",
            status: "False",
            reason: "ContentDeleted",
            message: "All content successfully deleted, may be waiting on finalization".into(),
        },
        Cond {
            kind: "NamespaceContentRemaining",
            status: "True",
            reason: "SomeResourcesRemain",
            message: content,
        },
        Cond {
            kind: "NamespaceFinalizersRemaining",
            status: fin_status,
            reason: fin_reason,
            message: fin_message,
        },
    ];
    let mut status = current["status"].clone();
    status["phase"] = json!("Terminating");
    status["conditions"] = conditions(
        &current["status"]["conditions"],
        &wanted,
        CondStyle::Transition,
    );
    write_status(tx, &res, key, status, MANAGER)?;
    Ok(match budget {
        0 => Outcome::after(std::time::Duration::ZERO),
        _ => Outcome::done(),
    })
}
