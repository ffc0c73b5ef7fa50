//! Core v1 Events the controllers record, for `kubectl describe` and `kubectl get events`:
//! Scheduled, Pulled, Created, Started and BackOff for pods, ScalingReplicaSet for
//! Deployments, SuccessfulCreate/SuccessfulDelete for ReplicaSets, StatefulSets and Jobs,
//! Completed and BackoffLimitExceeded for Jobs, SuccessfulRescale for autoscalers.
//!
//! A repeated event (same object, reason and message) is counted on the existing one, as the
//! real event recorder aggregates. Each namespace keeps at most [`MAX_PER_NAMESPACE`] events:
//! the oldest tenth goes when the limit is reached. Recording never fails a reconcile.

use serde_json::{Value, json};

use super::common::{delete, resource, str_of};
use crate::admission::fnv;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

pub const MAX_PER_NAMESPACE: usize = 1000;
const EVENTS: &str = "/events";

/// An event about `obj`, reported by `component`.
pub struct Event<'a> {
    pub warning: bool,
    pub reason: &'a str,
    pub message: String,
    pub component: &'a str,
    /// `spec.containers{name}` for container events.
    pub field_path: Option<String>,
}

pub fn normal<'a>(component: &'a str, reason: &'a str, message: String) -> Event<'a> {
    Event {
        warning: false,
        reason,
        message,
        component,
        field_path: None,
    }
}

pub fn warning<'a>(component: &'a str, reason: &'a str, message: String) -> Event<'a> {
    Event {
        warning: true,
        ..normal(component, reason, message)
    }
}

impl Event<'_> {
    pub fn at(mut self, field_path: String) -> Self {
        self.field_path = Some(field_path);
        self
    }
}

/// Records `event` about `obj`; failures are only logged.
pub fn record(tx: &mut Tx, obj: &Value, event: Event) {
    if let Err(e) = try_record(tx, obj, &event) {
        tracing::debug!("cannot record event {}: {}", event.reason, e.message);
    }
}

fn try_record(tx: &mut Tx, obj: &Value, event: &Event) -> crate::error::ApiResult<()> {
    let res = resource(tx, "", "events")?;
    let ns = match str_of(obj, "/metadata/namespace") {
        "" => "default",
        ns => ns,
    }
    .to_string();
    let obj_name = str_of(obj, "/metadata/name");
    let obj_uid = str_of(obj, "/metadata/uid");
    let id = fnv(&format!(
        "{obj_uid}/{}/{}/{}",
        event.reason,
        event.message,
        event.field_path.as_deref().unwrap_or("")
    ));
    let name = format!("{obj_name}.{id:016x}");
    let key = ObjKey::new(EVENTS, &ns, &name);
    let now = ops::now();
    if let Some(old) = tx.get(&key) {
        let mut again = (*old).clone();
        again["count"] = json!(old["count"].as_i64().unwrap_or(1) + 1);
        again["lastTimestamp"] = json!(now);
        let how = WriteKind::Controller {
            manager: event.component,
            part: Part::Main,
        };
        ops::finish_write(tx, &res, key, old, again, how)?;
        return Ok(());
    }
    prune(tx, &ns)?;
    let mut involved = json!({
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj_name,
        "uid": obj_uid,
        "resourceVersion": obj["metadata"]["resourceVersion"],
    });
    if !str_of(obj, "/metadata/namespace").is_empty() {
        involved["namespace"] = json!(ns);
    }
    if let Some(path) = &event.field_path {
        involved["fieldPath"] = json!(path);
    }
    let mut source = json!({"component": event.component});
    if event.component == super::pod::KUBELET {
        source["host"] = json!(super::pod::NODE);
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": involved,
        "reason": event.reason,
        "message": event.message,
        "type": if event.warning { "Warning" } else { "Normal" },
        "source": source,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "eventTime": null,
        "reportingComponent": event.component,
        "reportingInstance": if event.component == super::pod::KUBELET { super::pod::NODE } else { "" },
    });
    let how = WriteKind::Controller {
        manager: event.component,
        part: Part::Main,
    };
    ops::create(tx, &res, &ns, body, how)?;
    Ok(())
}

/// Makes room in a full namespace by deleting its oldest tenth of events.
fn prune(tx: &mut Tx, ns: &str) -> crate::error::ApiResult<()> {
    let count = tx.state().list(EVENTS, Some(ns)).count();
    if count < MAX_PER_NAMESPACE {
        return Ok(());
    }
    let res = resource(tx, "", "events")?;
    let mut all: Vec<(String, ObjKey)> = tx
        .state()
        .list(EVENTS, Some(ns))
        .map(|(k, e)| (str_of(e, "/lastTimestamp").to_string(), k.clone()))
        .collect();
    all.sort();
    for (_, key) in all
        .into_iter()
        .take(count - MAX_PER_NAMESPACE + MAX_PER_NAMESPACE / 10)
    {
        delete(tx, &res, &key)?;
    }
    Ok(())
}
