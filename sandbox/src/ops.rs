//! What the API server does to an object on each kind of write, independent of HTTP: metadata
//! bookkeeping, preconditions, the status split, generation, managedFields and deletion.
//!
//! Everything here runs inside one store write ([`Tx`]), so a read-modify-write is atomic.
//! The HTTP handlers and the simulated controllers share these functions.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::admission;
use crate::apply;
use crate::defaults;
use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::store::{ObjKey, Tx};
use crate::strategy;
use crate::validation::validate_metadata;

/// The timestamp format of metadata fields: RFC 3339 in UTC, whole seconds.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The path a write goes to: each has its own update strategy and managedFields entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
    /// A namespace's `/finalize`, which changes only its `spec.finalizers`.
    Finalize,
}

impl Part {
    /// The subresource named in managedFields entries.
    pub fn subresource(self) -> Option<&'static str> {
        match self {
            Part::Main => None,
            Part::Status => Some("status"),
            Part::Finalize => Some("finalize"),
        }
    }
}

pub fn key(res: &Resource, ns: &str, name: &str) -> ObjKey {
    let ns = if res.namespaced { ns } else { "" };
    ObjKey::new(res.key(), ns, name)
}

/// Checks `apiVersion`/`kind` of a request body against the resource and fills them in when absent.
pub fn check_type(res: &Resource, obj: &mut Value) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the body of a {} must be a JSON object",
            res.kind
        )));
    };
    let expected = res.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(expected));
        }
        Some(v) if v == expected || (res.custom && v.starts_with(&format!("{}/", res.group))) => {
            map.insert("apiVersion".into(), json!(expected));
        }
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(res.kind));
        }
        Some(k) if k == res.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )));
        }
    }
    if !map.get("metadata").is_none_or(Value::is_object) {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    if !map.contains_key("metadata") {
        map.insert("metadata".into(), json!({}));
    }
    Ok(())
}

/// Sets the object's namespace from the request path, refusing a body that names another.
fn place(res: &Resource, ns: &str, obj: &mut Value) -> ApiResult<()> {
    let meta = &mut obj["metadata"];
    if !res.namespaced {
        if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    match meta["namespace"].as_str() {
        Some(given) if !given.is_empty() && given != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta["namespace"] = json!(ns);
            Ok(())
        }
    }
}

fn validate(res: &Resource, obj: &Value) -> ApiResult<()> {
    let causes = validate_metadata(obj, res.name_rule);
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let causes: Vec<(String, String)> = causes.into_iter().map(|c| (c.field, c.message)).collect();
    Err(ApiError::invalid(&res.kind, &res.group, name, &causes))
}

/// A custom resource meets its CRD's structural schema: pruned, defaulted, then validated.
fn admit_schema(res: &Resource, obj: &mut Value) -> ApiResult<()> {
    let Some(schema) = &res.schema else {
        return Ok(());
    };
    let causes = crate::schema::admit(schema, obj);
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    Err(ApiError::invalid_causes(
        &res.kind, &res.group, name, &causes,
    ))
}

/// Namespaced objects need a live namespace, as on a real server.
fn check_namespace(tx: &Tx, res: &Resource, ns: &str, name: &str) -> ApiResult<()> {
    if !res.namespaced {
        return Ok(());
    }
    let Some(namespace) = tx.get(&ObjKey::new(NAMESPACES, "", ns)) else {
        return Err(ApiError::not_found("namespaces", "", ns));
    };
    if namespace["metadata"]["deletionTimestamp"].is_string() {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.qualified(),
            ),
        ));
    }
    Ok(())
}

const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random suffix like the API server's for `generateName`.
pub fn random_suffix(len: usize) -> String {
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(len)
        .map(|b| NAME_ALPHABET[*b as usize % NAME_ALPHABET.len()] as char)
        .collect()
}

/// Creates `obj` (already checked with [`check_type`]) in namespace `ns`.
pub fn create(
    tx: &mut Tx,
    res: &Resource,
    ns: &str,
    mut obj: Value,
    how: WriteKind,
) -> ApiResult<Arc<Value>> {
    place(res, ns, &mut obj)?;
    let meta = &mut obj["metadata"];
    if meta["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = meta["generateName"].as_str()
    {
        meta["name"] = json!(format!("{prefix}{}", random_suffix(5)));
    }
    let name = meta["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(ApiError::invalid(
            &res.kind,
            &res.group,
            "",
            &[(
                "metadata.name".into(),
                "Required value: name or generateName is required".into(),
            )],
        ));
    }
    validate(res, &obj)?;
    check_namespace(tx, res, ns, &name)?;
    let key = key(res, ns, &name);
    if tx.get(&key).is_some() {
        return Err(ApiError::already_exists(&res.plural, &res.group, &name));
    }
    strategy::prepare_for_create(res, &mut obj);
    defaults::apply(&res.key(), &mut obj);
    // A custom resource's schema defaults and prunes as the apiserver decodes it.
    admit_schema(res, &mut obj)?;
    // The writer owns what it sent and the defaults, not what the server generates next (a
    // Job's selector, a Service's addresses): the apiserver records managedFields before its
    // registry fills those in, so a later apply that leaves them out does not remove them.
    let mut obj = match how {
        WriteKind::Update { manager, .. } | WriteKind::Controller { manager, .. } => {
            apply::record_update(None, obj, manager, None, &now())
        }
        WriteKind::Applied { .. } => obj,
    };
    admission::on_create(tx, res, &mut obj)?;
    validate(res, &obj)?;
    Ok(tx.put(key, obj))
}

/// Replaces an object (PUT). `part` picks the main resource or its status.
pub fn update(
    tx: &mut Tx,
    res: &Resource,
    ns: &str,
    name: &str,
    mut obj: Value,
    how: WriteKind,
) -> ApiResult<Arc<Value>> {
    place(res, ns, &mut obj)?;
    if let Some(body_name) = obj["metadata"]["name"].as_str()
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    obj["metadata"]["name"] = json!(name);
    let key = key(res, ns, name);
    let Some(old) = tx.get(&key) else {
        return Err(ApiError::not_found(&res.plural, &res.group, name));
    };
    // A PUT's uid is a precondition: the object it was read from must be the stored one.
    if let Some(uid) = obj["metadata"]["uid"].as_str()
        && !uid.is_empty()
        && Some(uid) != old["metadata"]["uid"].as_str()
    {
        return Err(ApiError::conflict(
            &res.plural,
            &res.group,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                old["metadata"]["uid"].as_str().unwrap_or("")
            ),
        ));
    }
    finish_write(tx, res, key, old, obj, how)
}

/// How a new version of an object came to be, for managedFields.
pub enum WriteKind<'a> {
    Update {
        manager: &'a str,
        part: Part,
    },
    /// Server-side apply already updated managedFields.
    Applied {
        part: Part,
    },
    /// A controller writes the status (or metadata) with its own manager name.
    Controller {
        manager: &'a str,
        part: Part,
    },
}

/// The common tail of every write to an existing object.
pub fn finish_write(
    tx: &mut Tx,
    res: &Resource,
    key: ObjKey,
    old: Arc<Value>,
    new: Value,
    how: WriteKind,
) -> ApiResult<Arc<Value>> {
    let name = key.name.clone();
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str()
        && !rv.is_empty()
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::conflict(
            &res.plural,
            &res.group,
            &name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let part = match &how {
        WriteKind::Update { part, .. }
        | WriteKind::Controller { part, .. }
        | WriteKind::Applied { part } => *part,
    };
    let mut new = strategy::prepare_for_update(res, part, &old, new);
    strategy::metadata::on_update(&old, &mut new)
        .map_err(|causes| ApiError::invalid(&res.kind, &res.group, &name, &causes))?;
    if !matches!(how, WriteKind::Applied { .. }) && new["metadata"].get("managedFields").is_none() {
        new["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    }
    // Before comparing specs, as a real server defaults on decoding: a client that leaves out
    // a defaulted field changes nothing.
    defaults::apply(&res.key(), &mut new);
    admission::on_update(tx, res, &old, &mut new)?;
    admit_schema(res, &mut new)?;
    strategy::update_generation(res, part, &old, &mut new);
    validate(res, &new)?;
    // Controllers stand in for subresources a real cluster has (pods/binding…): only a
    // client's write meets the immutable fields.
    if part == Part::Main && !matches!(how, WriteKind::Controller { .. }) {
        let causes = strategy::immutable::check(res, &old, &new);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&res.kind, &res.group, &name, &causes));
        }
    }
    let new = match how {
        WriteKind::Update { manager, part } | WriteKind::Controller { manager, part } => {
            apply::record_update(Some(&old), new, manager, part.subresource(), &now())
        }
        WriteKind::Applied { .. } => new,
    };
    if new == *old || only_times_differ(&old, &new) {
        return Ok(old);
    }
    if new["metadata"]["deletionTimestamp"].is_string()
        && finalizers(&new).is_empty()
        && !namespace_held(&key, &new)
    {
        return remove_now(tx, &key, res);
    }
    Ok(tx.put(key, new))
}

/// Whether `new` is `old` but for the times of its managedFields entries: an apply that the
/// server's defaults make a no-op (a StatefulSet's claim templates, an allocated node port)
/// still dates its entry. The apiserver keeps the old managedFields then
/// (`IgnoreManagedFieldsTimestampsTransformer`), so the write changes nothing.
fn only_times_differ(old: &Value, new: &Value) -> bool {
    let (Some(old_map), Some(new_map)) = (old.as_object(), new.as_object()) else {
        return false;
    };
    let (Some(old_meta), Some(new_meta)) =
        (old["metadata"].as_object(), new["metadata"].as_object())
    else {
        return false;
    };
    let same_except =
        |a: &serde_json::Map<String, Value>, b: &serde_json::Map<String, Value>, skip: &str| {
            a.len() == b.len()
                && a.contains_key(skip) == b.contains_key(skip)
                && a.iter().all(|(k, v)| k == skip || b.get(k) == Some(v))
        };
    if !same_except(old_map, new_map, "metadata")
        || !same_except(old_meta, new_meta, "managedFields")
    {
        return false;
    }
    let (Some(old_entries), Some(new_entries)) = (
        old_meta.get("managedFields").and_then(Value::as_array),
        new_meta.get("managedFields").and_then(Value::as_array),
    ) else {
        return false;
    };
    old_entries.len() == new_entries.len()
        && old_entries
            .iter()
            .zip(new_entries)
            .all(|(a, b)| match (a.as_object(), b.as_object()) {
                (Some(a), Some(b)) => same_except(a, b, "time"),
                _ => a == b,
            })
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            "Orphan" => Ok(Propagation::Orphan),
            other => Err(ApiError::bad_request(format!(
                "unsupported propagationPolicy {other:?}: expected Background, Foreground or Orphan"
            ))),
        }
    }
}

/// The options of a DELETE, from its body and query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// Deletes an object: at once when nothing holds it, otherwise marks it with a
/// deletionTimestamp and leaves the rest to finalizers and the garbage collector.
pub fn delete(
    tx: &mut Tx,
    res: &Resource,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Arc<Value>> {
    let key = key(res, ns, name);
    let Some(old) = tx.get(&key) else {
        return Err(ApiError::not_found(&res.plural, &res.group, name));
    };
    if key.res == NAMESPACES && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        ));
    }
    let meta = &old["metadata"];
    if let Some(uid) = &opts.precondition_uid
        && meta["uid"].as_str() != Some(uid.as_str())
    {
        return Err(ApiError::conflict(
            &res.plural,
            &res.group,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta["uid"].as_str().unwrap_or("")
            ),
        ));
    }
    if let Some(rv) = &opts.precondition_rv
        && meta["resourceVersion"].as_str() != Some(rv.as_str())
    {
        return Err(ApiError::conflict(
            &res.plural,
            &res.group,
            name,
            "Precondition failed: the resourceVersion in the precondition does not match",
        ));
    }
    let mut marked = (*old).clone();
    let mut holds = finalizers(&old);
    let extra = match opts.propagation {
        Some(Propagation::Foreground) => Some(FOREGROUND),
        Some(Propagation::Orphan) => Some(ORPHAN),
        _ => None,
    };
    if let Some(f) = extra
        && !holds.iter().any(|h| h == f)
        && !meta["deletionTimestamp"].is_string()
    {
        holds.push(f.to_string());
        marked["metadata"]["finalizers"] = json!(holds);
    }
    let is_namespace = key.res == NAMESPACES;
    if holds.is_empty() && !namespace_held(&key, &old) {
        return remove_now(tx, &key, res);
    }
    if meta["deletionTimestamp"].is_string() {
        if marked == *old {
            return Ok(old);
        }
    } else {
        marked["metadata"]["deletionTimestamp"] = json!(now());
        marked["metadata"]["deletionGracePeriodSeconds"] =
            json!(opts.grace_period_seconds.unwrap_or(0));
    }
    if is_namespace {
        marked["status"]["phase"] = json!("Terminating");
    }
    Ok(tx.put(key, marked))
}

/// A namespace stays while its `spec.finalizers` are there: the namespace controller empties it first.
fn namespace_held(key: &ObjKey, obj: &Value) -> bool {
    key.res == NAMESPACES
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
}

pub const NAMESPACES: &str = "/namespaces";
/// Namespaces the API server refuses to delete.
pub const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

fn remove_now(tx: &mut Tx, key: &ObjKey, res: &Resource) -> ApiResult<Arc<Value>> {
    tx.remove(key)
        .ok_or_else(|| ApiError::not_found(&res.plural, &res.group, &key.name))
}

/// Removes one finalizer from an object (a controller finishing its part of a deletion).
pub fn remove_finalizer(
    tx: &mut Tx,
    res: &Resource,
    key: &ObjKey,
    finalizer: &str,
    manager: &str,
) -> ApiResult<Option<Arc<Value>>> {
    let Some(old) = tx.get(key) else {
        return Ok(None);
    };
    let kept: Vec<String> = finalizers(&old)
        .into_iter()
        .filter(|f| f != finalizer)
        .collect();
    let mut new = (*old).clone();
    new["metadata"]["finalizers"] = json!(kept);
    if kept.is_empty()
        && let Some(m) = new["metadata"].as_object_mut()
    {
        m.remove("finalizers");
    }
    finish_write(
        tx,
        res,
        key.clone(),
        old,
        new,
        WriteKind::Controller {
            manager,
            part: Part::Main,
        },
    )
    .map(Some)
}
