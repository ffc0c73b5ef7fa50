//! Waiting for an object to reach a state: a rollout, a condition, its deletion.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject};
use rhai::Map;
use rhai::plugin::*;
use serde_json::Value;

use super::convert::to_map;
use super::error::watch_error;
use super::rollout;
use super::{Cluster, RhaiResult};
use crate::errors::Kind;
use crate::host;

// Waits, merged into `k8s` by `super::module`, which holds the namespace's doc comment.
#[export_module]
pub mod wait_module {
    use super::*;

    /// Waits until the Deployment `name` in `ns` has rolled out: its controller observed the
    /// latest generation and all desired replicas (0 included) are updated and available.
    /// Returns the Deployment. A rollout that cannot finish fails within seconds of the cause
    /// showing: a pod stuck in `CrashLoopBackOff`, `ImagePullBackOff` and the like, a pod no
    /// node can take, or the Deployment's own `Progressing: False`.
    ///
    /// Errors: `rollout-failed` naming the pod, the container, the reason and message the
    /// kubelet gave, its last exit and last log lines; `timeout` after `timeout_secs`, saying
    /// how far the rollout got (`2 of 3 replicas updated, 1 available`).
    ///
    /// Example: `k8s::wait_rollout(ns, "web", 120);`
    #[rhai_fn(return_raw)]
    pub fn wait_rollout(
        ctx: NativeCallContext,
        ns: &str,
        name: &str,
        timeout_secs: i64,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let what = format!("the rollout of deployment `{name}` in `{ns}`");
            let _spinner = crate::ui::Spinner::start(&k.host, format!("Waiting for {what}"));
            let timeout = Duration::from_secs(timeout_secs.max(0) as u64);
            let done = k.run(rollout::wait(&k, ns, name, timeout, rolled_out))?;
            let value = serde_json::to_value(&done).map_err(|e| {
                host::error(Kind::Internal, format!("a Deployment did not convert: {e}"))
            })?;
            rhai::serde::to_dynamic(value)?
                .try_cast::<Map>()
                .ok_or_else(|| host::error(Kind::Internal, "a Deployment did not convert to a map"))
        })
    }

    /// Waits until the object's `status.conditions` holds `condition_type` with status
    /// `"True"` (a Job's `"Complete"`, a Pod's `"Ready"`…). Returns the object.
    ///
    /// Errors: `timeout` after `timeout_secs`, with the last observed `status`.
    ///
    /// Example: `k8s::wait_condition("batch/v1", "Job", ns, "migrate", "Complete", 300);`
    #[rhai_fn(return_raw)]
    pub fn wait_condition(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        condition_type: &str,
        timeout_secs: i64,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let what = format!("condition `{condition_type}` of {kind} `{name}`");
            let target = (api_version, kind, ns, name);
            wait_until(&ctx, target, timeout_secs, what, |o| {
                has_condition(o, condition_type)
            })
        })
    }

    /// Waits at most `timeout_secs` for the object to change from `resource_version` (its
    /// `metadata.resourceVersion` as last read) and returns it as it is then, changed or not;
    /// `()` once it is gone. For a script that follows something in a loop and says itself
    /// what it waits for (this draws no spinner).
    ///
    /// Example: `let d = k8s::get("apps/v1", "Deployment", "shop-test", "web"); d = k8s::wait_changed("apps/v1", "Deployment", "shop-test", "web", d.metadata.resourceVersion, 1);`
    #[rhai_fn(return_raw)]
    pub fn wait_changed(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        resource_version: &str,
        timeout_secs: i64,
    ) -> RhaiResult<Dynamic> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let obj = k.run(async {
                let api = k.api(api_version, kind, ns, false).await?;
                let changed = |o: Option<&DynamicObject>| {
                    o.is_none_or(|o| {
                        o.metadata.resource_version.as_deref() != Some(resource_version)
                    })
                };
                let watch = kube::runtime::wait::await_condition(api.clone(), name, changed);
                let timeout = Duration::from_secs(timeout_secs.max(0) as u64);
                match tokio::time::timeout(timeout, watch).await {
                    Ok(Ok(obj)) => Ok(obj),
                    Ok(Err(e)) => Err(watch_error(e)),
                    Err(_) => api
                        .get_opt(name)
                        .await
                        .map_err(super::super::error::kube_error),
                }
            })?;
            match obj {
                Some(obj) => Ok(Dynamic::from_map(to_map(&obj)?)),
                None => Ok(Dynamic::UNIT),
            }
        })
    }

    /// Waits until the object no longer exists (returns at once if it never did).
    ///
    /// Errors: `timeout` after `timeout_secs`, with the last observed `status`.
    ///
    /// Example: `k8s::delete("v1", "Namespace", "", ns); k8s::wait_deleted("v1", "Namespace", "", ns, 60);`
    #[rhai_fn(return_raw)]
    pub fn wait_deleted(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        timeout_secs: i64,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let what = format!("{kind} `{name}` to be deleted");
            let _spinner = crate::ui::Spinner::start(&k.host, format!("Waiting for {what}"));
            k.run(async {
                let api = k.api(api_version, kind, ns, false).await?;
                wait_for(api, name, timeout_secs, what, |o| o.is_none()).await
            })
            .map(|_| ())
        })
    }
}

/// Waits until `cond` holds for the object `(api_version, kind, ns, name)` and returns it.
fn wait_until(
    ctx: &NativeCallContext,
    (api_version, kind, ns, name): (&str, &str, &str, &str),
    timeout_secs: i64,
    what: String,
    cond: impl Fn(&Value) -> bool + Send,
) -> RhaiResult<Map> {
    let k = Cluster::of(ctx)?;
    let _spinner = crate::ui::Spinner::start(&k.host, format!("Waiting for {what}"));
    let obj = k.run(async {
        let api = k.api(api_version, kind, ns, false).await?;
        let found = move |o: Option<&DynamicObject>| o.is_some_and(|o| cond(&o.data));
        wait_for(api, name, timeout_secs, what, found).await
    })?;
    match obj {
        Some(obj) => to_map(&obj),
        None => Err(host::error(
            Kind::Refused,
            format!("{kind} `{name}` is gone"),
        )),
    }
}

/// Watches the object until `cond` holds; on timeout raises `timeout` naming `what` and the
/// last status seen.
async fn wait_for(
    api: Api<DynamicObject>,
    name: &str,
    timeout_secs: i64,
    what: String,
    cond: impl Fn(Option<&DynamicObject>) -> bool + Send,
) -> RhaiResult<Option<DynamicObject>> {
    let last: Arc<Mutex<Option<Value>>> = Arc::default();
    let seen = last.clone();
    let watched = move |o: Option<&DynamicObject>| {
        *seen.lock().unwrap_or_else(|e| e.into_inner()) = o.map(|o| o.data["status"].clone());
        cond(o)
    };
    let timeout = Duration::from_secs(timeout_secs.max(0) as u64);
    let waited = tokio::time::timeout(
        timeout,
        kube::runtime::wait::await_condition(api, name, watched),
    )
    .await;
    match waited {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(e)) => Err(watch_error(e)),
        Err(_) => {
            let status = last.lock().unwrap_or_else(|e| e.into_inner()).take();
            let shown = match &status {
                None => "the object does not exist".to_string(),
                Some(s) => format!("last status: {s}"),
            };
            let mut map = Map::new();
            map.insert("kind".into(), Kind::Timeout.name().into());
            map.insert(
                "message".into(),
                format!("timed out after {timeout_secs}s waiting for {what} ({shown})").into(),
            );
            map.insert(
                "status".into(),
                rhai::serde::to_dynamic(&status).unwrap_or_default(),
            );
            Err(host::error_map(map))
        }
    }
}

/// A Deployment has rolled out: generation observed, every desired replica updated and
/// available, no old ones left.
fn rolled_out(d: &Value) -> bool {
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let status = &d["status"];
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let generation = int(&d["metadata"]["generation"]);
    int(&status["observedGeneration"]) >= generation
        && int(&status["updatedReplicas"]) == want
        && int(&status["replicas"]) == want
        && int(&status["availableReplicas"]) == want
}

fn has_condition(obj: &Value, condition_type: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|all| {
        all.iter()
            .any(|c| c["type"] == condition_type && c["status"] == "True")
    })
}
