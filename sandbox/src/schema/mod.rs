//! CRD structural schemas, applied to custom resources as the API server applies them: fields
//! the schema does not know are pruned (unless `x-kubernetes-preserve-unknown-fields`), nulls
//! of non-nullable fields dropped, `default`s set, and then the object is validated: types,
//! `required`, `enum`, `pattern`, bounds on numbers, lengths and items. Each problem is one
//! cause of a 422 Invalid, worded as the real server words it.
//!
//! The server's order matters and is kept: pruning before defaulting (a default never brings
//! back a pruned field), defaulting before validation (a default satisfies `required`).

mod validate;

use serde_json::{Map, Value};

use crate::validation::Cause;

pub use validate::validate;

/// Prunes, defaults and validates `obj` against the `openAPIV3Schema` of its version; the
/// causes of a 422, empty when the object may be stored. `apiVersion`, `kind` and `metadata`
/// at the root are the server's to check, whatever the schema says of them.
pub fn admit(schema: &Value, obj: &mut Value) -> Vec<Cause> {
    prune_root(schema, obj);
    default(schema, obj);
    let mut causes = Vec::new();
    if let Some(map) = obj.as_object() {
        for (key, value) in map {
            if is_root_meta(key) {
                continue;
            }
            match property(schema, key) {
                Some(sub) => validate(sub, value, key, &mut causes),
                None => continue,
            }
        }
        for key in required(schema) {
            if !map.contains_key(key) && !is_root_meta(key) {
                causes.push(Cause::required(key, ""));
            }
        }
    }
    causes
}

/// The fields of `obj` the schema would prune, as paths (`spec.typo`, `spec.env[0].secret`):
/// what `fieldValidation` reports to the client that sent them. Nulls are not counted: the
/// server drops those without a word.
pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(map) = obj.as_object() {
        for (key, value) in map {
            if is_root_meta(key) {
                continue;
            }
            match property(schema, key) {
                Some(sub) => unknown_within(sub, value, key, &mut found),
                None if !preserves_unknown(schema) => found.push(key.clone()),
                None => {}
            }
        }
    }
    found
}

fn unknown_within(schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let embedded = schema["x-kubernetes-embedded-resource"] == Value::Bool(true);
            let keep_unknown = preserves_unknown(schema) || schema["additionalProperties"] == true;
            for (key, value) in map {
                if embedded && is_root_meta(key) {
                    continue;
                }
                let at = format!("{path}.{key}");
                match property(schema, key) {
                    Some(sub) => unknown_within(sub, value, &at, found),
                    None if !keep_unknown => found.push(at),
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for (index, value) in items.iter().enumerate() {
                    unknown_within(item, value, &format!("{path}[{index}]"), found);
                }
            }
        }
        _ => {}
    }
}

fn is_root_meta(key: &str) -> bool {
    matches!(key, "apiVersion" | "kind" | "metadata")
}

/// Whether the schema keeps fields it does not name at this level.
fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
}

fn is_nullable(schema: &Value) -> bool {
    schema["nullable"] == Value::Bool(true)
}

/// The schema of `key` in an object: a named property, else `additionalProperties` when it
/// is a schema (a map's values).
fn property<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    schema["properties"]
        .get(key)
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

fn required(schema: &Value) -> impl Iterator<Item = &str> {
    schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn prune_root(schema: &Value, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let keep_unknown = preserves_unknown(schema);
    map.retain(|key, value| {
        if is_root_meta(key) {
            return true;
        }
        match property(schema, key) {
            Some(sub) => keep_value(sub, value),
            None => keep_unknown,
        }
    });
}

/// Prunes `value` in place against `schema`; whether to keep it at all (a null of a field
/// that is not nullable goes).
fn keep_value(schema: &Value, value: &mut Value) -> bool {
    if value.is_null() {
        return is_nullable(schema);
    }
    prune(schema, value);
    true
}

/// Drops what `schema` does not describe from `value`, all the way down.
fn prune(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if schema["x-kubernetes-embedded-resource"] == Value::Bool(true) {
                // apiVersion, kind and metadata of an embedded object are always kept.
                prune_object(schema, map, true);
            } else {
                prune_object(schema, map, false);
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for value in items.iter_mut() {
                    if !value.is_null() {
                        prune(item, value);
                    }
                }
            }
        }
        _ => {}
    }
}

fn prune_object(schema: &Value, map: &mut Map<String, Value>, embedded: bool) {
    // A schema that says nothing of an object's fields (no properties, no
    // additionalProperties) keeps none unless it preserves unknown fields.
    let keep_unknown = preserves_unknown(schema) || schema["additionalProperties"] == true;
    map.retain(|key, value| {
        if embedded && is_root_meta(key) {
            return true;
        }
        match property(schema, key) {
            Some(sub) => keep_value(sub, value),
            None => keep_unknown,
        }
    });
}

/// Sets the `default` of every property missing from an object that exists, then goes into
/// what is there (a default of an object is itself defaulted inside).
fn default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (key, sub) in properties {
                    if map.get(key).is_none()
                        && let Some(fallback) = sub.get("default")
                    {
                        map.insert(key.clone(), fallback.clone());
                    }
                }
            }
            for (key, value) in map.iter_mut() {
                if let Some(sub) = property(schema, key) {
                    default(sub, value);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for value in items.iter_mut() {
                    default(item, value);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
