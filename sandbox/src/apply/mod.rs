//! Server-side apply and the managedFields bookkeeping of every write.
//!
//! This follows structured-merge-diff, the library behind the real apiserver, without its schemas:
//! which lists are keyed comes from [`crate::patch::keys`], every object is granular, and every
//! other list is atomic. Ownership is what makes apply safe to run from several places: a manager
//! may only change a field another manager set if it forces it, and dropping a field from an
//! applied configuration deletes it only when nobody else still wants it.

mod fields;
mod managed;
mod merge;
mod path;

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use fields::Diff;
use managed::{APPLY, Entry, UPDATE};
use path::{Path, PathSet};

/// The manager that owns whatever an object held before its first apply, as in the apiserver.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Why a server-side apply was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields the configuration changes are owned by other managers; apply with force to take them.
    Conflict(Vec<Conflict>),
    /// The applied configuration is malformed; the message is fit for a `400 Bad Request`.
    Invalid(String),
}

/// One field another manager owns and the applied configuration would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager owning the field.
    pub manager: String,
    /// The field, as the apiserver prints it: `.spec.replicas`, `.spec.containers[name="web"].image`.
    pub field: String,
}

impl fmt::Display for ApplyError {
    /// The apiserver's message, which kubectl shows as is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(message) => f.write_str(message),
            Self::Conflict(conflicts) => match conflicts.as_slice() {
                [only] => write!(
                    f,
                    "Apply failed with 1 conflict: conflict with {:?}: {}",
                    only.manager, only.field
                ),
                _ => write!(
                    f,
                    "Apply failed with {} conflicts: {}",
                    conflicts.len(),
                    conflicts_by_manager(conflicts)
                ),
            },
        }
    }
}

impl std::error::Error for ApplyError {}

fn conflicts_by_manager(conflicts: &[Conflict]) -> String {
    let managers: BTreeSet<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager:?}:"));
        let fields = conflicts.iter().filter(|c| c.manager == manager);
        lines.extend(fields.map(|c| format!("- {}", c.field)));
    }
    lines.join("\n")
}

/// Server-side apply of `config` (the applied configuration, a full object with
/// apiVersion/kind/metadata.name) by `manager`.
/// Returns the new object with metadata.managedFields updated.
///
/// `live` is the stored object, or `None` to create. `now` is the RFC 3339 time recorded in the
/// manager's entry when it changes. Server-set metadata (uid, resourceVersion, …) is merged like any
/// field and left for the caller to overwrite; so is `status`, which the caller should reset for
/// kinds with a status subresource.
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    let config = applied_configuration(config)?;
    let configured = fields::collect_strict(&config).map_err(ApplyError::Invalid)?;
    let configured = fields::paths(configured);
    let (live, mut entries) = split_live(live, now)?;
    let previous = take_entry(&mut entries, manager, APPLY, None);
    let mut object = merge::merge(&live, &config);
    let last = previous
        .as_ref()
        .map(|entry| entry.fields.clone())
        .unwrap_or_default();
    let abandoned: PathSet = last.difference(&configured).cloned().collect();
    let mut keep: Vec<&PathSet> = entries.iter().map(|entry| &entry.fields).collect();
    keep.push(&configured);
    merge::prune(&mut object, &abandoned, &keep);
    let diff = fields::diff(&live, &object);
    take_ownership(&mut entries, &diff, manager, force)?;
    let changed = live != object;
    entries.push(applier_entry(
        previous, configured, &config, manager, now, changed,
    ));
    managed::write(&mut object, entries);
    Ok(object)
}

/// Records a non-apply write (create/update/patch) by `manager` in new's managedFields (operation "Update"),
/// taking ownership of changed fields away from other managers. `old` is None on create.
///
/// Managed fields sent with `new` replace the stored ones, as the apiserver lets clients rewrite
/// them, unless the write is to a subresource or they are absent, empty or unreadable (a client
/// unaware of them must not wipe them). A list of one empty entry, `[{}]`, is the documented
/// way to clear them: this write's changes are then all that is recorded.
pub fn record_update(
    old: Option<&Value>,
    new: Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) -> Value {
    if !new.is_object() {
        return new;
    }
    let stored = || old.map(managed::read).unwrap_or_default();
    let entries = if subresource.is_some() {
        stored()
    } else if managed::is_reset(&new) {
        Vec::new()
    } else {
        let sent = managed::read(&new);
        if sent.is_empty() { stored() } else { sent }
    };
    let mut entries = entries;
    let before = old
        .map(managed::strip)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let mut new = managed::strip(&new);
    let diff = fields::diff(&before, &new);
    disown(&mut entries, &diff);
    if !diff.changed.is_empty() {
        let entry = take_entry(&mut entries, manager, UPDATE, subresource);
        let api_version = api_version(&new);
        entries.push(updater_entry(
            entry,
            diff.changed,
            manager,
            subresource,
            api_version,
            now,
        ));
    }
    managed::write(&mut new, entries);
    new
}

/// The applied configuration, checked, without nulls: apply has no use for them, and dropping them
/// keeps `null` from being owned or stored.
fn applied_configuration(config: &Value) -> Result<Value, ApplyError> {
    let invalid = |message: &str| Err(ApplyError::Invalid(message.to_owned()));
    if !config.is_object() {
        return invalid("the applied configuration must be a JSON object");
    }
    let present = |pointer: &str| {
        config
            .pointer(pointer)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if !present("/apiVersion") {
        return invalid("apiVersion must be set in the applied configuration");
    }
    if !present("/kind") {
        return invalid("kind must be set in the applied configuration");
    }
    if !present("/metadata/name") {
        return invalid("metadata.name must be set in the applied configuration");
    }
    let managed = config.pointer("/metadata/managedFields");
    if managed.is_some_and(|m| !m.is_null() && m.as_array().is_none_or(|items| !items.is_empty())) {
        return invalid("metadata.managedFields must be nil");
    }
    Ok(managed::strip(&without_nulls(config)))
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(name, value)| (name.clone(), without_nulls(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        scalar => scalar.clone(),
    }
}

/// The live object without its managedFields, and its entries. An object that was never tracked
/// gets everything it holds owned by `before-first-apply`, so the first apply cannot silently
/// overwrite it.
fn split_live(live: Option<&Value>, now: &str) -> Result<(Value, Vec<Entry>), ApplyError> {
    let Some(live) = live else {
        return Ok((Value::Object(Map::new()), Vec::new()));
    };
    if !live.is_object() {
        return Err(ApplyError::Invalid(
            "the live object is not a JSON object".to_owned(),
        ));
    }
    let mut entries = managed::read(live);
    let live = managed::strip(live);
    if entries.is_empty() {
        entries.push(Entry {
            manager: BEFORE_FIRST_APPLY.to_owned(),
            operation: UPDATE.to_owned(),
            api_version: api_version(&live),
            time: Some(now.to_owned()),
            subresource: None,
            fields: fields::paths(fields::collect(&live)),
        });
    }
    Ok((live, entries))
}

fn take_entry(
    entries: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    subresource: Option<&str>,
) -> Option<Entry> {
    let index = entries
        .iter()
        .position(|entry| entry.is(manager, operation, subresource))?;
    Some(entries.remove(index))
}

/// Fails on fields other managers own and the apply changes, unless forced; then (or when there
/// are none) the other entries give up whatever changed or disappeared.
///
/// Another entry of the same manager (its Update entry, say) never conflicts: a manager cannot
/// fight itself.
fn take_ownership(
    entries: &mut [Entry],
    diff: &Diff,
    manager: &str,
    force: bool,
) -> Result<(), ApplyError> {
    if !force {
        let conflicts = conflicts(entries, &diff.changed, manager);
        if !conflicts.is_empty() {
            return Err(ApplyError::Conflict(conflicts));
        }
    }
    disown(entries, diff);
    Ok(())
}

fn conflicts(entries: &[Entry], changed: &PathSet, manager: &str) -> Vec<Conflict> {
    let owned: BTreeSet<(&str, &Path)> = entries
        .iter()
        .filter(|entry| entry.manager != manager)
        .flat_map(|entry| {
            entry
                .fields
                .intersection(changed)
                .map(|path| (entry.manager.as_str(), path))
        })
        .collect();
    owned
        .into_iter()
        .map(|(manager, field)| Conflict {
            manager: manager.to_owned(),
            field: path::display(field),
        })
        .collect()
}

fn disown(entries: &mut [Entry], diff: &Diff) {
    for entry in entries {
        entry
            .fields
            .retain(|path| !diff.changed.contains(path) && !diff.removed.contains(path));
    }
}

/// The applier's new entry. Its time moves only when the apply did something, so that applying
/// the same configuration again returns the very same object.
fn applier_entry(
    previous: Option<Entry>,
    fields: PathSet,
    config: &Value,
    manager: &str,
    now: &str,
    object_changed: bool,
) -> Entry {
    let api_version = api_version(config);
    match previous {
        Some(previous)
            if !object_changed
                && previous.fields == fields
                && previous.api_version == api_version =>
        {
            previous
        }
        _ => Entry {
            manager: manager.to_owned(),
            operation: APPLY.to_owned(),
            api_version,
            time: Some(now.to_owned()),
            subresource: None,
            fields,
        },
    }
}

/// The updater's entry: what it owned before, plus what this write changed.
fn updater_entry(
    previous: Option<Entry>,
    changed: PathSet,
    manager: &str,
    subresource: Option<&str>,
    api_version: Option<String>,
    now: &str,
) -> Entry {
    let mut fields = previous.map(|entry| entry.fields).unwrap_or_default();
    fields.extend(changed);
    Entry {
        manager: manager.to_owned(),
        operation: UPDATE.to_owned(),
        api_version,
        time: Some(now.to_owned()),
        subresource: subresource.map(str::to_owned),
        fields,
    }
}

fn api_version(object: &Value) -> Option<String> {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
