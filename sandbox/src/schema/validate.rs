//! Validation of a pruned and defaulted value against its structural schema, in the words of
//! the API server's OpenAPI validator (`spec.port in body must be of type integer: "string"`).

use serde_json::Value;

use super::{is_nullable, property, required};
use crate::validation::{Cause, go_quote};

/// Checks `value`, found at `path` (dotted: `spec.route.host`, `spec.env[0].name`), against
/// `schema`, adding a cause per problem.
pub fn validate(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        if !is_nullable(schema) && schema.get("type").is_some() {
            causes.push(wrong_type(path, value, schema));
        }
        return;
    }
    if !type_matches(schema, value) {
        causes.push(wrong_type(path, value, schema));
        return;
    }
    check_enum(schema, value, path, causes);
    match value {
        Value::String(text) => check_string(schema, text, path, causes),
        Value::Number(_) => check_number(schema, value, path, causes),
        Value::Array(items) => {
            check_items(schema, items, path, causes);
            if let Some(item) = schema.get("items").filter(|i| i.is_object()) {
                for (index, value) in items.iter().enumerate() {
                    validate(item, value, &format!("{path}[{index}]"), causes);
                }
            }
        }
        Value::Object(map) => {
            for (key, value) in map {
                if let Some(sub) = property(schema, key) {
                    validate(sub, value, &format!("{path}.{key}"), causes);
                }
            }
            for key in required(schema) {
                if !map.contains_key(key) {
                    causes.push(Cause::required(format!("{path}.{key}"), ""));
                }
            }
            check_properties_count(schema, map.len(), path, causes);
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// The schema's type name for a JSON value, as the validator reports what it got.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(schema: &Value, value: &Value) -> bool {
    if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        return value.is_string() || value.is_i64() || value.is_u64();
    }
    match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("number") => value.is_number(),
        // A whole number written as 3.0 is an integer to Go's JSON decoder.
        Some("integer") => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        Some(_) => true,
    }
}

fn wrong_type(path: &str, value: &Value, schema: &Value) -> Cause {
    let expected = if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        "integer,string"
    } else {
        schema["type"].as_str().unwrap_or("object")
    };
    let got = type_name(value);
    Cause::type_invalid(
        path,
        &Value::String(got.to_string()),
        &format!(
            "{path} in body must be of type {expected}: {}",
            go_quote(got)
        ),
    )
}

fn check_enum(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(allowed) = schema["enum"].as_array() else {
        return;
    };
    if allowed.contains(value) {
        return;
    }
    let listed: Vec<String> = allowed.iter().map(shown).collect();
    causes.push(Cause {
        field: path.to_string(),
        message: format!(
            "Unsupported value: {}: supported values: {}",
            shown(value),
            listed.join(", ")
        ),
        reason: "FieldValueNotSupported".to_string(),
    });
}

/// A value as Go's `%q`/`%v` shows it in a message: strings quoted, the rest as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        other => other.to_string(),
    }
}

fn check_string(schema: &Value, text: &str, path: &str, causes: &mut Vec<Cause>) {
    let length = text.chars().count() as u64;
    if let Some(max) = schema["maxLength"].as_u64()
        && length > max
    {
        causes.push(Cause {
            field: path.to_string(),
            message: format!("Too long: may not be more than {max} bytes"),
            reason: "FieldValueTooLong".to_string(),
        });
    }
    if let Some(min) = schema["minLength"].as_u64()
        && length < min
    {
        causes.push(invalid(
            path,
            text,
            &format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        // The CRD's own validation refuses a pattern that does not compile; one that
        // slipped through (an old CRD) checks nothing rather than refusing every object.
        if let Ok(re) = regex::Regex::new(pattern)
            && !re.is_match(text)
        {
            causes.push(invalid(
                path,
                text,
                &format!("{path} in body should match '{pattern}'"),
            ));
        }
    }
}

fn invalid(path: &str, text: &str, detail: &str) -> Cause {
    Cause::invalid(path, &Value::String(text.to_string()), detail)
}

fn check_number(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(n) = value.as_f64() else {
        return;
    };
    let exclusive = |key: &str| schema[key] == Value::Bool(true);
    if let Some(min) = schema["minimum"].as_f64() {
        let (fails, words) = if exclusive("exclusiveMinimum") {
            (n <= min, "greater than")
        } else {
            (n < min, "greater than or equal to")
        };
        if fails {
            causes.push(Cause::invalid(
                path,
                value,
                &format!(
                    "{path} in body should be {words} {}",
                    bound(&schema["minimum"])
                ),
            ));
        }
    }
    if let Some(max) = schema["maximum"].as_f64() {
        let (fails, words) = if exclusive("exclusiveMaximum") {
            (n >= max, "less than")
        } else {
            (n > max, "less than or equal to")
        };
        if fails {
            causes.push(Cause::invalid(
                path,
                value,
                &format!(
                    "{path} in body should be {words} {}",
                    bound(&schema["maximum"])
                ),
            ));
        }
    }
    if let Some(step) = schema["multipleOf"].as_f64()
        && step > 0.0
        && (n / step).fract() != 0.0
    {
        causes.push(Cause::invalid(
            path,
            value,
            &format!(
                "{path} in body should be a multiple of {}",
                bound(&schema["multipleOf"])
            ),
        ));
    }
}

/// A bound as the validator prints it: `1`, not `1.0`.
fn bound(value: &Value) -> String {
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => value.to_string(),
    }
}

fn check_items(schema: &Value, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    let count = items.len() as u64;
    if let Some(max) = schema["maxItems"].as_u64()
        && count > max
    {
        causes.push(Cause {
            field: path.to_string(),
            message: format!("Too many: {count}: must have at most {max} items"),
            reason: "FieldValueTooMany".to_string(),
        });
    }
    if let Some(min) = schema["minItems"].as_u64()
        && count < min
    {
        causes.push(Cause::invalid(
            path,
            &Value::from(count),
            &format!("{path} in body should have at least {min} items"),
        ));
    }
    if schema["x-kubernetes-list-type"] == "set" || schema["uniqueItems"] == Value::Bool(true) {
        for (index, item) in items.iter().enumerate() {
            if items[..index].contains(item) {
                causes.push(Cause {
                    field: format!("{path}[{index}]"),
                    message: format!("Duplicate value: {}", shown(item)),
                    reason: "FieldValueDuplicate".to_string(),
                });
            }
        }
    }
}

fn check_properties_count(schema: &Value, count: usize, path: &str, causes: &mut Vec<Cause>) {
    let count = count as u64;
    if let Some(max) = schema["maxProperties"].as_u64()
        && count > max
    {
        causes.push(Cause {
            field: path.to_string(),
            message: format!("Too many: {count}: must have at most {max} items"),
            reason: "FieldValueTooMany".to_string(),
        });
    }
    if let Some(min) = schema["minProperties"].as_u64()
        && count < min
    {
        causes.push(Cause::invalid(
            path,
            &Value::from(count),
            &format!("{path} in body should have at least {min} properties"),
        ));
    }
}
