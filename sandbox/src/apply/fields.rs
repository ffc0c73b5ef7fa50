//! The fields an object sets, and what changed between two versions of it.
//!
//! This is the sandbox's stand-in for structured-merge-diff's typed values: without schemas, list
//! semantics come from [`crate::patch::keys`], objects are always granular, and a leaf is a scalar,
//! an atomic list or an empty object or list.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::path::{self, Path, PathSet};
use crate::patch::keys;

/// Top-level fields that identify the object rather than configure it.
const IGNORED_TOP_LEVEL: &[&str] = &["apiVersion", "kind"];

/// Metadata the server owns; never tracked, like the real apiserver does.
const IGNORED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// How a list field is tracked and merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Items are identified by this field.
    Keyed(&'static str),
    /// A set of primitives, each value tracked on its own.
    Set,
    /// Replaced and owned as a whole.
    Atomic,
}

/// The kind of list `field` with `items`.
///
/// `strict` is for the applied configuration, where a keyed item without its key or a repeated
/// key is an error; a stored object breaking those rules is merely treated as atomic.
pub(crate) fn list_kind(field: &str, items: &[Value], strict: bool) -> Result<ListKind, String> {
    if let Some(key) = keys::merge_key(field, items) {
        return keyed(field, key, items, strict);
    }
    let primitives = items
        .iter()
        .all(|item| !item.is_object() && !item.is_array());
    if !keys::is_primitive_set(field) || !primitives {
        return Ok(ListKind::Atomic);
    }
    match first_duplicate(items.iter()) {
        Some(value) if strict => Err(format!(".{field}: duplicate entries for value {value}")),
        Some(_) => Ok(ListKind::Atomic),
        None => Ok(ListKind::Set),
    }
}

fn keyed(
    field: &str,
    key: &'static str,
    items: &[Value],
    strict: bool,
) -> Result<ListKind, String> {
    let ids: Option<Vec<&Value>> = items.iter().map(|item| item.get(key)).collect();
    let failure = match ids {
        None => format!(".{field}: every item must have the key field {key}"),
        Some(ids) => match first_duplicate(ids.into_iter()) {
            None => return Ok(ListKind::Keyed(key)),
            Some(value) => format!(".{field}: duplicate entries for key [{key}={value}]"),
        },
    };
    if strict {
        Err(failure)
    } else {
        Ok(ListKind::Atomic)
    }
}

fn first_duplicate<'a>(values: impl Iterator<Item = &'a Value>) -> Option<&'a Value> {
    let mut seen = Vec::new();
    for value in values {
        if seen.contains(&value) {
            return Some(value);
        }
        seen.push(value);
    }
    None
}

/// Every tracked path an object sets: keyed items and set values map to `None` (they are present
/// or not), leaves to their value.
pub(crate) type Fields<'a> = BTreeMap<Path, Option<&'a Value>>;

/// The fields of an applied configuration, rejecting lists that break their keys.
pub(crate) fn collect_strict(object: &Value) -> Result<Fields<'_>, String> {
    let mut collector = Collector {
        strict: true,
        out: Fields::new(),
    };
    collector.root(object)?;
    Ok(collector.out)
}

/// The fields of a stored object.
pub(crate) fn collect(object: &Value) -> Fields<'_> {
    let mut collector = Collector {
        strict: false,
        out: Fields::new(),
    };
    // Only strict collection fails.
    collector
        .root(object)
        .map(|()| collector.out)
        .unwrap_or_default()
}

struct Collector<'a> {
    strict: bool,
    out: Fields<'a>,
}

impl<'a> Collector<'a> {
    fn root(&mut self, object: &'a Value) -> Result<(), String> {
        match object {
            Value::Object(fields) => self.object(fields, &mut Vec::new()),
            _ => Ok(()),
        }
    }

    fn object(&mut self, fields: &'a Map<String, Value>, at: &mut Path) -> Result<(), String> {
        for (name, value) in fields {
            if value.is_null() || ignored(at, name) {
                continue;
            }
            at.push(path::field(name));
            self.value(name, value, at)?;
            at.pop();
        }
        Ok(())
    }

    fn value(&mut self, name: &str, value: &'a Value, at: &mut Path) -> Result<(), String> {
        match value {
            Value::Object(fields) if !fields.is_empty() => self.object(fields, at),
            Value::Array(items) if !items.is_empty() => self.list(name, value, items, at),
            _ => {
                self.out.insert(at.clone(), Some(value));
                Ok(())
            }
        }
    }

    fn list(
        &mut self,
        name: &str,
        list: &'a Value,
        items: &'a [Value],
        at: &mut Path,
    ) -> Result<(), String> {
        match list_kind(name, items, self.strict)? {
            ListKind::Atomic => {
                self.out.insert(at.clone(), Some(list));
            }
            ListKind::Set => {
                for item in items {
                    self.member(at, path::value(item));
                }
            }
            ListKind::Keyed(key) => {
                for item in items {
                    if let (Some(id), Value::Object(fields)) = (item.get(key), item) {
                        at.push(path::key(key, id));
                        self.out.insert(at.clone(), None);
                        self.object(fields, at)?;
                        at.pop();
                    }
                }
            }
        }
        Ok(())
    }

    fn member(&mut self, at: &Path, step: String) {
        let mut member = at.clone();
        member.push(step);
        self.out.insert(member, None);
    }
}

fn ignored(at: &Path, name: &str) -> bool {
    match at.as_slice() {
        [] => IGNORED_TOP_LEVEL.contains(&name),
        [parent] => parent == "f:metadata" && IGNORED_METADATA.contains(&name),
        _ => false,
    }
}

/// What a write did to the tracked fields of an object.
#[derive(Debug, Default)]
pub(crate) struct Diff {
    /// Fields added or given another value.
    pub(crate) changed: PathSet,
    /// Fields that are gone.
    pub(crate) removed: PathSet,
}

/// Compares two versions of an object field by field.
pub(crate) fn diff(old: &Value, new: &Value) -> Diff {
    let old = collect(old);
    let new = collect(new);
    let changed = new
        .iter()
        .filter(|(path, value)| old.get(*path) != Some(*value))
        .map(|(path, _)| path.clone())
        .collect();
    let removed = old
        .keys()
        .filter(|path| !new.contains_key(*path))
        .cloned()
        .collect();
    Diff { changed, removed }
}

/// All tracked paths of an object.
pub(crate) fn paths(fields: Fields<'_>) -> PathSet {
    fields.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths_of(object: &Value) -> Vec<String> {
        collect(object).keys().map(path::display).collect()
    }

    #[test]
    fn identity_fields_are_not_tracked() {
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "d", "uid": "u", "resourceVersion": "1", "labels": {"a": "b"}},
            "data": {"k": "v"}
        });
        assert_eq!(paths_of(&object), [".data.k", ".metadata.labels.a"]);
    }

    #[test]
    fn lists_by_kind() {
        let object = json!({
            "metadata": {"finalizers": ["f1"]},
            "spec": {"containers": [{"name": "web", "args": ["a"], "resources": {}}], "tolerations": [{"key": "k"}]}
        });
        assert_eq!(
            paths_of(&object),
            [
                ".metadata.finalizers[=\"f1\"]",
                ".spec.containers[name=\"web\"]",
                ".spec.containers[name=\"web\"].args",
                ".spec.containers[name=\"web\"].name",
                ".spec.containers[name=\"web\"].resources",
                ".spec.tolerations",
            ]
        );
    }

    #[test]
    fn strict_rejects_broken_keyed_lists() {
        let missing = json!({"spec": {"containers": [{"image": "x"}]}});
        assert!(collect_strict(&missing).is_err());
        let duplicate = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
        assert!(collect_strict(&duplicate).is_err());
        assert_eq!(paths_of(&duplicate), [".spec.containers"]);
        let duplicate_set = json!({"metadata": {"finalizers": ["a", "a"]}});
        assert!(collect_strict(&duplicate_set).is_err());
    }

    #[test]
    fn diff_reports_changes_and_removals() {
        let old = json!({"spec": {"replicas": 1, "paused": true, "containers": [{"name": "a", "image": "1"}]}});
        let new = json!({"spec": {"replicas": 2, "containers": [{"name": "a", "image": "1"}, {"name": "b"}]}});
        let diff = diff(&old, &new);
        let changed: Vec<String> = diff.changed.iter().map(path::display).collect();
        let removed: Vec<String> = diff.removed.iter().map(path::display).collect();
        assert_eq!(
            changed,
            [
                ".spec.containers[name=\"b\"]",
                ".spec.containers[name=\"b\"].name",
                ".spec.replicas"
            ]
        );
        assert_eq!(removed, [".spec.paused"]);
    }
}
