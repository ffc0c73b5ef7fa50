//! `k8s::diff`: what a write would change in an object, field by field, for `--dry-run` plans.

use rhai::plugin::*;
use rhai::{Array, Map};
use serde_json::Value;

use super::RhaiResult;
use super::convert::to_json;

/// Fields the server keeps for itself: a change there is not a change the user asked for.
const NOISE: &[&str] = &[
    "/metadata/managedFields",
    "/metadata/resourceVersion",
    "/metadata/generation",
    "/metadata/uid",
    "/metadata/creationTimestamp",
    "/status",
];

/// The changes from `before` to `after` as `(dotted path, old, new)`, `Value::Null` standing
/// for "absent"; server-kept fields (managedFields, resourceVersion, generation, uid,
/// creationTimestamp, status) left out. Paths come in the order the JSON Patch lists them.
pub fn changes(before: &Value, after: &Value) -> Vec<(String, Value, Value)> {
    let patch = json_patch::diff(before, after);
    patch
        .0
        .iter()
        .filter_map(|op| {
            let (pointer, new) = match op {
                json_patch::PatchOperation::Add(add) => (add.path.to_string(), add.value.clone()),
                json_patch::PatchOperation::Replace(r) => (r.path.to_string(), r.value.clone()),
                json_patch::PatchOperation::Remove(r) => (r.path.to_string(), Value::Null),
                // diff only adds, replaces and removes.
                _ => return None,
            };
            if NOISE
                .iter()
                .any(|n| pointer == *n || pointer.starts_with(&format!("{n}/")))
            {
                return None;
            }
            let old = before.pointer(&pointer).cloned().unwrap_or(Value::Null);
            Some((dotted(&pointer), old, new))
        })
        .collect()
}

/// `/metadata/labels/kipper.run~1project` → `metadata.labels.kipper.run/project`.
fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|step| step.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

// Merged into `k8s` by `super::module`.
#[export_module]
pub mod diff_module {
    use super::*;

    /// What changes from `before` to `after` (two objects, e.g. as read and as a dry run
    /// would store it): `[#{ path, before, after }]`, one entry per changed field, `()` for a
    /// field that is absent on one side. Fields the server keeps (managedFields,
    /// resourceVersion, generation, uid, creationTimestamp, status) are left out, so an empty
    /// array means the write changes nothing.
    ///
    /// Example: `for c in k8s::diff(#{spec: #{replicas: 2}}, #{spec: #{replicas: 3}}) { print(`${c.path}: ${c.before} → ${c.after}`); }`
    #[rhai_fn(return_raw)]
    pub fn diff(before: Map, after: Map) -> RhaiResult<Array> {
        let (before, after) = (to_json(before)?, to_json(after)?);
        changes(&before, &after)
            .into_iter()
            .map(|(path, old, new)| {
                let mut change = Map::new();
                change.insert("path".into(), path.into());
                change.insert("before".into(), rhai::serde::to_dynamic(old)?);
                change.insert("after".into(), rhai::serde::to_dynamic(new)?);
                Ok(change.into())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::changes;
    use serde_json::json;

    #[test]
    fn changes_name_the_field_and_skip_what_the_server_keeps() {
        let before = json!({
            "metadata": {"name": "a", "resourceVersion": "1", "labels": {"kipper.run/project": "x"}},
            "spec": {"replicas": 2, "gone": true},
            "status": {"ready": 1},
        });
        let after = json!({
            "metadata": {"name": "a", "resourceVersion": "2", "labels": {"kipper.run/project": "y"}},
            "spec": {"replicas": 3, "added": "z"},
            "status": {"ready": 3},
        });
        let mut found = changes(&before, &after);
        found.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            found,
            vec![
                (
                    "metadata.labels.kipper.run/project".into(),
                    json!("x"),
                    json!("y")
                ),
                ("spec.added".into(), json!(null), json!("z")),
                ("spec.gone".into(), json!(true), json!(null)),
                ("spec.replicas".into(), json!(2), json!(3)),
            ]
        );
        assert!(changes(&before, &before).is_empty());
    }
}
