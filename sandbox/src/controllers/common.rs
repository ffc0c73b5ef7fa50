//! Helpers the controllers share: resource lookup, owner references, converging writes,
//! conditions, pod predicates and template hashes.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::admission::fnv;
use crate::error::{ApiError, ApiResult};
use crate::ops::{self, Part, WriteKind};
use crate::registry::Resource;
use crate::store::{ObjKey, Tx};

/// The served resource with this group and plural (any version).
pub fn resource(tx: &Tx, group: &str, plural: &str) -> ApiResult<Arc<Resource>> {
    tx.state()
        .registry
        .find_any_version(group, plural)
        .ok_or_else(|| ApiError::internal(format!("resource {plural}.{group} is not served")))
}

/// The resource an `apiVersion`/`kind` pair names, as in an ownerReference.
pub fn resource_of_kind(tx: &Tx, api_version: &str, kind: &str) -> Option<Arc<Resource>> {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    tx.state()
        .registry
        .all()
        .find(|r| r.group == group && r.kind == kind)
        .cloned()
}

/// Where the object an ownerReference names would be stored.
pub fn owner_key(tx: &Tx, owner_ref: &Value, dependent_ns: &str) -> Option<ObjKey> {
    let res = resource_of_kind(
        tx,
        owner_ref["apiVersion"].as_str()?,
        owner_ref["kind"].as_str()?,
    )?;
    Some(ops::key(&res, dependent_ns, owner_ref["name"].as_str()?))
}

pub fn str_of<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub fn uid(obj: &Value) -> &str {
    str_of(obj, "/metadata/uid")
}

pub fn name(obj: &Value) -> &str {
    str_of(obj, "/metadata/name")
}

pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

pub fn owner_refs(obj: &Value) -> &[Value] {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The ownerReference with `controller: true`, if any.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    owner_refs(obj)
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
}

/// An ownerReference to `owner` marking it as the controller.
pub fn controller_ref_to(res: &Resource, owner: &Value) -> Value {
    json!({
        "apiVersion": res.api_version(),
        "kind": res.kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The objects of resource `res_key` whose controller is the object with `owner_uid`.
pub fn controlled(tx: &Tx, owner_uid: &str, res_key: &str) -> Vec<(ObjKey, Arc<Value>)> {
    let state = tx.state();
    state
        .dependents_of(owner_uid)
        .into_iter()
        .filter(|k| k.res == res_key)
        .filter_map(|k| {
            let obj = state.get(&k)?;
            let controlled =
                controller_ref(&obj).is_some_and(|r| r["uid"].as_str() == Some(owner_uid));
            controlled.then_some((k, obj))
        })
        .collect()
}

/// Makes the owner the controller of the objects of `res` in its namespace that have no
/// controller, are not being deleted and match `selector` (a LabelSelector), as controllers
/// adopt orphans. `also` filters further.
pub fn adopt_orphans(
    tx: &mut Tx,
    res: &Resource,
    owner: &Value,
    owner_res: &Resource,
    selector: &Value,
    manager: &str,
    also: impl Fn(&Value) -> bool,
) -> ApiResult<()> {
    let Ok(selector) = crate::selector::from_label_selector_json(selector) else {
        return Ok(());
    };
    if selector.is_empty() {
        return Ok(());
    }
    let ns = str_of(owner, "/metadata/namespace").to_string();
    let orphans: Vec<(ObjKey, Arc<Value>)> = tx
        .state()
        .list(&res.key(), Some(&ns))
        .filter(|(_, o)| {
            controller_ref(o).is_none()
                && !is_deleting(o)
                && selector.matches(o["metadata"]["labels"].as_object())
                && also(o)
        })
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (key, orphan) in orphans {
        let mut refs: Vec<Value> = owner_refs(&orphan)
            .iter()
            .filter(|r| r["uid"].as_str() != Some(uid(owner)))
            .cloned()
            .collect();
        refs.push(controller_ref_to(owner_res, owner));
        let mut adopted = (*orphan).clone();
        adopted["metadata"]["ownerReferences"] = json!(refs);
        write_main(tx, res, &key, &orphan, adopted, manager)?;
    }
    Ok(())
}

/// Whether the namespace of a namespaced object is being deleted (nothing may be created there).
pub fn namespace_terminating(tx: &Tx, ns: &str) -> bool {
    !ns.is_empty()
        && tx
            .get(&ObjKey::new(ops::NAMESPACES, "", ns))
            .is_none_or(|n| is_deleting(&n))
}

/// Writes `new` over the main resource when it differs from `old`.
pub fn write_main(
    tx: &mut Tx,
    res: &Resource,
    key: &ObjKey,
    old: &Arc<Value>,
    new: Value,
    manager: &str,
) -> ApiResult<Arc<Value>> {
    write_part(tx, res, key, old, new, manager, Part::Main)
}

/// Writes `new` through `part` (whose strategy keeps what that path may not change) when it
/// differs from `old`.
pub fn write_part(
    tx: &mut Tx,
    res: &Resource,
    key: &ObjKey,
    old: &Arc<Value>,
    new: Value,
    manager: &str,
    part: Part,
) -> ApiResult<Arc<Value>> {
    if new == **old {
        return Ok(old.clone());
    }
    ops::finish_write(
        tx,
        res,
        key.clone(),
        old.clone(),
        new,
        WriteKind::Controller { manager, part },
    )
}

/// Sets the status of the object at `key` when it differs from the stored one.
pub fn write_status(
    tx: &mut Tx,
    res: &Resource,
    key: &ObjKey,
    status: Value,
    manager: &str,
) -> ApiResult<()> {
    let Some(old) = tx.get(key) else {
        return Ok(());
    };
    if old.get("status") == Some(&status) {
        return Ok(());
    }
    let mut new = (*old).clone();
    new["status"] = status;
    ops::finish_write(
        tx,
        res,
        key.clone(),
        old,
        new,
        WriteKind::Controller {
            manager,
            part: Part::Status,
        },
    )?;
    Ok(())
}

/// Deletes an object in the background, ignoring one that is already gone.
pub fn delete(tx: &mut Tx, res: &Resource, key: &ObjKey) -> ApiResult<()> {
    delete_with(tx, res, key, ops::Propagation::Background)
}

pub fn delete_with(
    tx: &mut Tx,
    res: &Resource,
    key: &ObjKey,
    propagation: ops::Propagation,
) -> ApiResult<()> {
    if tx.get(key).is_none() {
        return Ok(());
    }
    let opts = ops::DeleteOptions {
        propagation: Some(propagation),
        ..Default::default()
    };
    ops::delete(tx, res, &key.ns, &key.name, &opts).map(|_| ())
}

/// One wanted condition; timestamps are carried over from the old one when nothing changed.
pub struct Cond<'a> {
    pub kind: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
    pub message: String,
}

/// The style of a kind's conditions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum CondStyle {
    /// `lastTransitionTime` only.
    Transition,
    /// `lastUpdateTime` and `lastTransitionTime` (Deployments).
    Update,
    /// `lastProbeTime: null` and `lastTransitionTime` (Pods, Jobs).
    Probe,
}

/// Builds a conditions array from `wanted`, keeping the timestamps of `old` conditions whose
/// status (and, for the update time, reason and message) did not change, so that a reconcile
/// that changes nothing writes nothing.
pub fn conditions(old: &Value, wanted: &[Cond], style: CondStyle) -> Value {
    let now = ops::now();
    let old = old.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let out: Vec<Value> = wanted
        .iter()
        .map(|c| {
            let prev = old.iter().find(|o| o["type"].as_str() == Some(c.kind));
            let same_status = prev.is_some_and(|p| p["status"].as_str() == Some(c.status));
            let same_all = same_status
                && prev.is_some_and(|p| {
                    p["reason"].as_str().unwrap_or("") == c.reason
                        && p["message"].as_str().unwrap_or("") == c.message
                });
            let keep = |field: &str, same: bool| match prev {
                Some(p) if same && p[field].is_string() => p[field].clone(),
                _ => json!(now),
            };
            let mut cond = Map::new();
            cond.insert("type".into(), json!(c.kind));
            cond.insert("status".into(), json!(c.status));
            match style {
                CondStyle::Update => {
                    cond.insert("lastUpdateTime".into(), keep("lastUpdateTime", same_all));
                }
                CondStyle::Probe => {
                    cond.insert("lastProbeTime".into(), Value::Null);
                }
                CondStyle::Transition => {}
            }
            cond.insert(
                "lastTransitionTime".into(),
                keep("lastTransitionTime", same_status),
            );
            if !c.reason.is_empty() {
                cond.insert("reason".into(), json!(c.reason));
            }
            if !c.message.is_empty() {
                cond.insert("message".into(), json!(c.message));
            }
            Value::Object(cond)
        })
        .collect();
    Value::Array(out)
}

/// Whether a condition of this type has status True.
pub fn condition_true(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"].as_str() == Some(kind) && c["status"].as_str() == Some("True"))
}

pub fn phase(pod: &Value) -> &str {
    str_of(pod, "/status/phase")
}

/// A pod that counts toward its controller's replicas: not finished and not being deleted.
pub fn pod_active(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !is_deleting(pod)
}

pub fn pod_ready(pod: &Value) -> bool {
    condition_true(pod, "Ready")
}

/// Sets an integer field only when it is not zero, like Go's `omitempty`.
pub fn put_nonzero(map: &mut Map<String, Value>, field: &str, n: i64) {
    if n != 0 {
        map.insert(field.into(), json!(n));
    }
}

pub fn int(v: &Value, default: i64) -> i64 {
    v.as_i64().unwrap_or(default)
}

/// JSON with object keys sorted, whatever the map implementation, for stable hashes.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A hash of a pod template like the `pod-template-hash` label: up to 10 characters of the
/// alphabet the API server uses for generated names.
pub fn template_hash(template: &Value) -> String {
    salted_template_hash(template, 0)
}

/// [`template_hash`] with a collision count mixed in, as the Deployment controller does when
/// the name it would use is taken.
pub fn salted_template_hash(template: &Value, salt: u32) -> String {
    let mut text = canonical(&normalized_template(template));
    if salt > 0 {
        text.push_str(&salt.to_string());
    }
    let h = fnv(&text);
    let h32 = (h ^ (h >> 32)) as u32;
    h32.to_string()
        .bytes()
        .map(|b| SAFE[b as usize % SAFE.len()] as char)
        .collect()
}

/// A template without what does not make it different: the `pod-template-hash` label, the
/// creation timestamp and empty values (`resources: {}` as Go clients send it).
fn normalized_template(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
    }
    if let Some(meta) = t.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        meta.remove("creationTimestamp");
    }
    prune(&t)
}

/// Whether two pod templates are equal apart from what [`normalized_template`] drops.
pub fn same_template(a: &Value, b: &Value) -> bool {
    normalized_template(a) == normalized_template(b)
}

/// `v` without nulls, empty objects and empty arrays, at any depth.
fn prune(v: &Value) -> Value {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), prune(v)))
                .filter(|(_, v)| !empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(prune).collect()),
        other => other.clone(),
    }
}

/// A pod (or other object) made from a template: its labels, annotations and finalizers, its
/// spec, and an owner reference to the controller.
pub fn pod_from_template(template: &Value, name: &str, generate: &str, owner: Value) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    if !generate.is_empty() {
        meta.insert("generateName".into(), json!(generate));
    }
    for field in ["labels", "annotations", "finalizers"] {
        let v = &template["metadata"][field];
        if !v.is_null() {
            meta.insert(field.into(), v.clone());
        }
    }
    meta.insert("ownerReferences".into(), json!([owner]));
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template["spec"].clone(),
    })
}

/// A name `{prefix}{5 random characters}` that is not taken yet.
pub fn fresh_name(tx: &Tx, res_key: &str, ns: &str, prefix: &str) -> String {
    loop {
        let name = format!("{prefix}{}", ops::random_suffix(5));
        if tx.get(&ObjKey::new(res_key, ns, &name)).is_none() {
            return name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": "x"}});
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn template_hash_is_stable_and_ignores_the_hash_label() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let mut labeled = t.clone();
        labeled["metadata"]["labels"]["pod-template-hash"] = json!("abc");
        let h = template_hash(&t);
        assert!(!h.is_empty() && h.len() <= 10);
        assert_eq!(h, template_hash(&labeled));
        assert!(same_template(&t, &labeled));
        let mut other = t.clone();
        other["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_ne!(h, template_hash(&other));
        assert!(!same_template(&t, &other));
        let mut sent = t.clone();
        sent["metadata"]["creationTimestamp"] = Value::Null;
        sent["spec"]["containers"][0]["resources"] = json!({});
        assert!(same_template(&t, &sent));
    }

    #[test]
    fn conditions_keep_timestamps_when_unchanged() {
        let old = json!([{"type": "Ready", "status": "True", "reason": "A", "lastTransitionTime": "2020-01-01T00:00:00Z", "lastUpdateTime": "2020-01-01T00:00:00Z"}]);
        let same = conditions(
            &old,
            &[Cond {
                kind: "Ready",
                status: "True",
                reason: "A",
                message: String::new(),
            }],
            CondStyle::Update,
        );
        assert_eq!(same[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(same[0]["lastUpdateTime"], "2020-01-01T00:00:00Z");
        let reason = conditions(
            &old,
            &[Cond {
                kind: "Ready",
                status: "True",
                reason: "B",
                message: String::new(),
            }],
            CondStyle::Update,
        );
        assert_eq!(reason[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_ne!(reason[0]["lastUpdateTime"], "2020-01-01T00:00:00Z");
        let flipped = conditions(
            &old,
            &[Cond {
                kind: "Ready",
                status: "False",
                reason: "A",
                message: String::new(),
            }],
            CondStyle::Transition,
        );
        assert_ne!(flipped[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert!(flipped[0].get("lastUpdateTime").is_none());
    }
}
