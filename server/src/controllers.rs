//! One controller per kind kip owns. Each reconcile hands the resource to its function in
//! `lib/reconcile.rhai` (which applies the objects the resource owns, with the verbs' own
//! functions and field manager) and writes back the status the function returns. Changes to
//! the owned objects (a deleted Deployment, say) bring their owner back for another pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::Scripts;

/// The label on every object kip makes; owned objects are watched through it.
const MANAGED: &str = "app.kubernetes.io/managed-by=kipper";

/// Status keys written by others than the controllers: `buildRequest`, the last build request
/// of a push webhook (crate::webhooks).
const FOREIGN_STATUS: &[&str] = &["buildRequest"];

/// How often a resource that reconciled cleanly is looked at again, for drift no watch saw.
const RESYNC: Duration = Duration::from_secs(300);

/// A kind kip owns and the function of `lib/reconcile.rhai` that reconciles it.
#[derive(Clone, Copy)]
pub(crate) struct KipKind {
    kind: &'static str,
    plural: &'static str,
    func: &'static str,
}

pub(crate) const APP: KipKind = KipKind {
    kind: "App",
    plural: "apps",
    func: "app",
};
const PROJECT: KipKind = KipKind {
    kind: "Project",
    plural: "projects",
    func: "project",
};
const SERVICE: KipKind = KipKind {
    kind: "Service",
    plural: "services",
    func: "service",
};

impl KipKind {
    pub(crate) fn resource(self) -> ApiResource {
        ApiResource {
            group: "kipper.run".into(),
            version: "v1alpha1".into(),
            api_version: "kipper.run/v1alpha1".into(),
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }
}

/// What every reconcile of one kind shares.
struct Context {
    client: Client,
    scripts: Scripts,
    kind: KipKind,
    /// Failures in a row per resource (by uid), for the backoff before the next try.
    failures: Mutex<HashMap<String, u32>>,
}

/// Why a reconcile failed, in words (a script's `file:line: message`, or the API's answer).
#[derive(Debug)]
pub struct Failed(String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

/// Runs the controllers of App, Project and Service until one of them ends (it does not,
/// unless the client is gone). kip's CRDs are applied first when the cluster lacks them.
pub async fn run(client: Client, scripts: Scripts, concurrency: u16) -> Result<(), String> {
    scripts
        .call("lib/kipper", "ensure_crds", Vec::new())
        .await
        .map_err(|e| format!("cannot install kip's CRDs: {e}"))?;
    let config = Config::default().concurrency(concurrency);
    let managed = || watcher::Config::default().labels(MANAGED);
    let context = |kind| {
        Arc::new(Context {
            client: client.clone(),
            scripts: scripts.clone(),
            kind,
            failures: Mutex::default(),
        })
    };
    let main = |kind: KipKind| {
        let resource = kind.resource();
        Controller::new_with(
            Api::<DynamicObject>::all_with(client.clone(), &resource),
            watcher::Config::default(),
            resource,
        )
        .with_config(config.clone())
    };
    let apps = main(APP)
        .owns(Api::<Deployment>::all(client.clone()), managed())
        .owns(Api::<Service>::all(client.clone()), managed())
        .owns(Api::<Ingress>::all(client.clone()), managed())
        // A build's Job: its end rolls the image out.
        .owns(Api::<Job>::all(client.clone()), managed())
        .run(reconcile, error_policy, context(APP));
    let projects = main(PROJECT)
        .owns(Api::<Namespace>::all(client.clone()), managed())
        .run(reconcile, error_policy, context(PROJECT));
    let services = main(SERVICE)
        .owns(Api::<StatefulSet>::all(client.clone()), managed())
        .owns(Api::<Secret>::all(client.clone()), managed())
        .run(reconcile, error_policy, context(SERVICE));
    let report = |result: Result<_, kube::runtime::controller::Error<Failed, watcher::Error>>| async move {
        match result {
            Ok(_) => {}
            Err(kube::runtime::controller::Error::ReconcilerFailed(why, object)) => {
                eprintln!(
                    "{} {}: {why}",
                    object.dyntype.kind,
                    name_of(&object.namespace, &object.name)
                );
            }
            Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
            Err(e) => tracing::warn!("controller: {e}"),
        }
    };
    tokio::join!(
        apps.for_each(report),
        projects.for_each(report),
        services.for_each(report)
    );
    Ok(())
}

fn name_of(namespace: &Option<String>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Failed> {
    // Owned objects go with their owner (garbage collection): nothing to do while it goes.
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let value = serde_json::to_value(&*obj).map_err(|e| Failed(e.to_string()))?;
    let previous = value.get("status").cloned().unwrap_or(Value::Null);
    let outcome = ctx
        .scripts
        .call("lib/reconcile", ctx.kind.func, vec![value])
        .await;
    let (status, failed) = match outcome {
        Ok(status) => (status, None),
        Err(why) => (failed_status(&previous, &why), Some(why)),
    };
    write_status(&ctx, &obj, &previous, status).await?;
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    match failed {
        Some(why) => {
            *failures.entry(uid).or_default() += 1;
            Err(Failed(why))
        }
        None => {
            failures.remove(&uid);
            Ok(Action::requeue(RESYNC))
        }
    }
}

/// The next try after a failure: 1 s, doubling with every failure in a row, at most 5 min.
fn error_policy(obj: Arc<DynamicObject>, _: &Failed, ctx: Arc<Context>) -> Action {
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let n = failures.get(&uid).copied().unwrap_or(1).clamp(1, 10);
    Action::requeue(Duration::from_secs(1 << (n - 1)).min(RESYNC))
}

/// The status of a resource whose script failed: what it had, now Failed, with the script's
/// error as the Ready condition's message.
fn failed_status(previous: &Value, why: &str) -> Value {
    let mut status = previous.as_object().cloned().unwrap_or_default();
    status.insert("phase".into(), json!("Failed"));
    status.insert(
        "conditions".into(),
        json!([{ "type": "Ready", "status": "False", "reason": "ReconcileFailed", "message": why }]),
    );
    Value::Object(status)
}

/// Writes `status` to `obj`'s status subresource when it differs from `previous`, with
/// `observedGeneration` and each condition's `lastTransitionTime` (kept while the condition's
/// status stays the same).
async fn write_status(
    ctx: &Context,
    obj: &DynamicObject,
    previous: &Value,
    status: Value,
) -> Result<(), Failed> {
    let Value::Object(mut status) = status else {
        return Err(Failed(format!(
            "lib/reconcile.rhai: {}() returned {status}, not a status map",
            ctx.kind.func
        )));
    };
    // Keys other writers own (the webhooks' `buildRequest`) are compared as they are and left out of
    // the patch, so a reconcile racing a webhook neither nulls nor reverts them.
    let foreign: Vec<&str> = FOREIGN_STATUS
        .iter()
        .copied()
        .filter(|key| !status.contains_key(*key))
        .collect();
    for key in &foreign {
        if let Some(value) = previous.get(*key) {
            status.insert((*key).into(), value.clone());
        }
    }
    if let Some(generation) = obj.metadata.generation {
        status.insert("observedGeneration".into(), json!(generation));
    }
    if let Some(Value::Array(conditions)) = status.get_mut("conditions") {
        for condition in conditions.iter_mut() {
            stamp_transition(condition, previous);
        }
    }
    let status = Value::Object(status);
    if &status == previous {
        return Ok(());
    }
    let resource = ctx.kind.resource();
    let api: Api<DynamicObject> = match &obj.metadata.namespace {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    let name = obj.metadata.name.clone().unwrap_or_default();
    // A merge patch keeps keys it does not name: the ones the new status dropped are nulled.
    let mut patch = status.clone();
    if let (Value::Object(patch), Value::Object(old)) = (&mut patch, previous) {
        for key in old.keys() {
            patch.entry(key.clone()).or_insert(Value::Null);
        }
        for key in &foreign {
            patch.remove(*key);
        }
    }
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": patch })),
    )
    .await
    .map_err(|e| Failed(format!("cannot write the status: {e}")))?;
    let phase = status.get("phase").and_then(Value::as_str).unwrap_or("?");
    let message = status
        .pointer("/conditions/0/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    println!(
        "{} {}: {phase} ({message})",
        ctx.kind.kind,
        name_of(&obj.metadata.namespace, &name)
    );
    Ok(())
}

/// Keeps a condition's `lastTransitionTime` from the previous status while its status is the
/// same; stamps it now otherwise.
fn stamp_transition(condition: &mut Value, previous: &Value) {
    let Value::Object(condition) = condition else {
        return;
    };
    let same = previous
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|old| old.get("type") == condition.get("type"))
        .filter(|old| old.get("status") == condition.get("status"));
    let time = match same.and_then(|old| old.get("lastTransitionTime")) {
        Some(time) => time.clone(),
        None => json!(
            jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
        ),
    };
    condition.insert("lastTransitionTime".into(), time);
}
