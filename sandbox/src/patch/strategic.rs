//! Strategic merge patch, as the apiserver applies it to the built-in kinds.
//!
//! The algorithm follows apimachinery's `strategicpatch.StrategicMergePatch` with `mergeParallelList`
//! semantics (the patch is applied, never merged with another patch). Where apimachinery leaves
//! raw patch fragments in the result (a new item copied with its directives), this applies them to
//! nothing instead, so a directive key never reaches a stored object.

use serde_json::{Map, Value};

use super::keys;
use super::order::apply_element_order;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

type Object = Map<String, Value>;

/// Applies a Kubernetes strategic merge patch to `original`.
///
/// Both must be JSON objects. The error is a message fit for a `400 Bad Request`.
pub fn strategic_merge(original: &Value, patch: &Value) -> Result<Value, String> {
    let Value::Object(patch) = patch else {
        return Err("strategic merge patch must be a JSON object".to_owned());
    };
    let Value::Object(original) = original else {
        return Err("the object to patch is not a JSON object".to_owned());
    };
    merge_object(original.clone(), patch).map(Value::Object)
}

/// What a `$patch` directive asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

fn directive(value: &Value, context: &Object) -> Result<Directive, String> {
    match value.as_str() {
        Some("replace") => Ok(Directive::Replace),
        Some("delete") => Ok(Directive::Delete),
        Some("merge") => Ok(Directive::Merge),
        _ => Err(format!(
            "unknown patch type: {value} in map: {}",
            Value::Object(context.clone())
        )),
    }
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn merge_object(mut original: Object, patch: &Object) -> Result<Object, String> {
    if let Some(value) = patch.get(DIRECTIVE) {
        match directive(value, patch)? {
            Directive::Delete => return Ok(Object::new()),
            Directive::Replace => return replacement(patch),
            Directive::Merge => {}
        }
    }
    retain_keys(&mut original, patch)?;
    delete_from_primitive_lists(&mut original, patch)?;
    for (key, value) in patch {
        if is_directive_key(key) {
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let current = original.get_mut(key).map(Value::take);
        let order = patch.get(&format!("{SET_ELEMENT_ORDER}{key}"));
        let merged = merge_field(key, current, value, order)?;
        original.insert(key.clone(), merged);
    }
    reorder_unpatched_lists(&mut original, patch)?;
    Ok(original)
}

/// `$patch: replace` on an object: the patch is the new value, minus its directives and nulls.
fn replacement(patch: &Object) -> Result<Object, String> {
    let mut patch = patch.clone();
    patch.remove(DIRECTIVE);
    merge_object(Object::new(), &patch)
}

/// `$retainKeys`: drops every original key not listed, so a one-of (like a volume source or a
/// Deployment strategy) can switch branches in a single patch.
fn retain_keys(original: &mut Object, patch: &Object) -> Result<(), String> {
    let Some(retain) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let invalid = || "invalid patch format of retainKeys".to_owned();
    let retain: Vec<&str> = retain
        .as_array()
        .ok_or_else(invalid)?
        .iter()
        .map(|key| key.as_str().ok_or_else(invalid))
        .collect::<Result<_, _>>()?;
    let unlisted = patch.iter().any(|(key, value)| {
        !value.is_null() && !is_directive_key(key) && !retain.contains(&key.as_str())
    });
    if unlisted {
        return Err(invalid());
    }
    original.retain(|key, _| retain.contains(&key.as_str()));
    Ok(())
}

fn delete_from_primitive_lists(original: &mut Object, patch: &Object) -> Result<(), String> {
    for (key, value) in patch {
        let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else {
            continue;
        };
        let Value::Array(doomed) = value else {
            return Err(format!("{key} must be a list, got {value}"));
        };
        if let Some(Value::Array(list)) = original.get_mut(field) {
            list.retain(|item| !doomed.contains(item));
        }
    }
    Ok(())
}

/// `$setElementOrder` for a list the patch reorders without changing any of its items.
fn reorder_unpatched_lists(original: &mut Object, patch: &Object) -> Result<(), String> {
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        if patch.contains_key(field) {
            continue;
        }
        if let Some(Value::Array(list)) = original.get_mut(field) {
            let current = std::mem::take(list);
            let strategy = strategy(field, &current, &[], Some(order));
            *list = ordered(field, current.clone(), Some(order), &current, &strategy)?;
        }
    }
    Ok(())
}

fn merge_field(
    key: &str,
    current: Option<Value>,
    patch: &Value,
    order: Option<&Value>,
) -> Result<Value, String> {
    match (current, patch) {
        (Some(Value::Object(current)), Value::Object(patch)) => {
            merge_object(current, patch).map(Value::Object)
        }
        (Some(Value::Array(current)), Value::Array(patch)) => {
            merge_list(key, current, patch, order).map(Value::Array)
        }
        // Absent or of another type: the patch value replaces it, with its directives applied.
        (_, Value::Array(patch)) => merge_list(key, Vec::new(), patch, order).map(Value::Array),
        (_, patch) => clean(patch),
    }
}

/// A patch value applied to nothing: directives and nulls are resolved away.
fn clean(patch: &Value) -> Result<Value, String> {
    match patch {
        Value::Object(patch) => merge_object(Object::new(), patch).map(Value::Object),
        Value::Array(items) => items
            .iter()
            .map(clean)
            .collect::<Result<_, _>>()
            .map(Value::Array),
        scalar => Ok(scalar.clone()),
    }
}

/// How a list field merges.
enum Strategy {
    Keyed(&'static str),
    Set,
    Atomic,
}

fn strategy(field: &str, original: &[Value], patch: &[Value], order: Option<&Value>) -> Strategy {
    let order_items = order
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let all: Vec<Value> = [original, patch, order_items].concat();
    if let Some(key) = keys::merge_key(field, &all) {
        return Strategy::Keyed(key);
    }
    let primitives = all.iter().all(|item| !item.is_object() && !item.is_array());
    if keys::is_primitive_set(field) && primitives {
        Strategy::Set
    } else {
        Strategy::Atomic
    }
}

fn merge_list(
    field: &str,
    original: Vec<Value>,
    patch: &[Value],
    order: Option<&Value>,
) -> Result<Vec<Value>, String> {
    let strategy = strategy(field, &original, patch, order);
    let merged = match strategy {
        Strategy::Atomic => return patch.iter().map(clean).collect(),
        Strategy::Set => merge_set(original.clone(), patch),
        Strategy::Keyed(key) => merge_keyed(key, original.clone(), patch)?,
    };
    ordered(field, merged, order, &original, &strategy)
}

/// Applies `$setElementOrder` to a merged list, when the patch has one for it.
fn ordered(
    field: &str,
    merged: Vec<Value>,
    order: Option<&Value>,
    original: &[Value],
    strategy: &Strategy,
) -> Result<Vec<Value>, String> {
    let Some(order) = order else {
        return Ok(merged);
    };
    let Value::Array(order) = order else {
        return Err(format!(
            "{SET_ELEMENT_ORDER}{field} must be a list, got {order}"
        ));
    };
    let key = match strategy {
        Strategy::Keyed(key) => Some(*key),
        Strategy::Set => None,
        // A replaced list is already in the patch's order.
        Strategy::Atomic => return Ok(merged),
    };
    Ok(apply_element_order(merged, order, original, key))
}

/// Union, keeping the original's order and appending what the patch adds.
fn merge_set(original: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for item in original.into_iter().chain(patch.iter().cloned()) {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn merge_keyed(key: &str, mut items: Vec<Value>, patch: &[Value]) -> Result<Vec<Value>, String> {
    let mut updates = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(map) = item else {
            return Err(format!(
                "list items merged by {key} must be objects, got {item}"
            ));
        };
        match map
            .get(DIRECTIVE)
            .map(|value| directive(value, map))
            .transpose()?
        {
            None | Some(Directive::Merge) => updates.push(map),
            Some(Directive::Delete) => {
                let wanted = merge_key_of(map, key)?;
                items.retain(|item| item.get(key) != Some(wanted));
            }
            Some(Directive::Replace) => replace = true,
        }
    }
    if replace {
        items.clear();
    }
    for update in updates {
        upsert(&mut items, key, update)?;
    }
    Ok(items)
}

fn upsert(items: &mut Vec<Value>, key: &str, update: &Object) -> Result<(), String> {
    let wanted = merge_key_of(update, key)?;
    let existing = items.iter_mut().find(|item| item.get(key) == Some(wanted));
    match existing {
        Some(item) => {
            let current = match item.take() {
                Value::Object(current) => current,
                _ => Object::new(),
            };
            *item = Value::Object(merge_object(current, update)?);
        }
        None => items.push(Value::Object(merge_object(Object::new(), update)?)),
    }
    Ok(())
}

fn merge_key_of<'a>(item: &'a Object, key: &str) -> Result<&'a Value, String> {
    item.get(key).ok_or_else(|| {
        format!(
            "map: {} does not contain declared merge key: {key}",
            Value::Object(item.clone())
        )
    })
}

#[cfg(test)]
mod tests;
