//! Name, label and object-metadata validation.
//!
//! The checks and the wording follow `k8s.io/apimachinery/pkg/util/validation` and the apiserver's
//! `ValidateObjectMeta`, because clients (and people) recognise those messages and some tools match
//! on them.

use serde::Serialize;
use serde_json::{Map, Value};

const DNS1123_LABEL_MAX_LEN: usize = 63;
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;
const QUALIFIED_NAME_MAX_LEN: usize = 63;
const LABEL_VALUE_MAX_LEN: usize = 63;
/// The apiserver's `TotalAnnotationSizeLimitB`: keys plus values, in bytes.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";

/// Builds the apiserver's `RegexError` text, including its quirky double space between examples.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = String::from(msg);
    if examples.is_empty() {
        out.push_str(" (regex used for validation is '");
    } else {
        out.push_str(" (e.g. ");
        for (i, example) in examples.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            out.push('\'');
            out.push_str(example);
            out.push_str("', ");
        }
        out.push_str("regex used for validation is '");
    }
    out.push_str(fmt);
    out.push_str("')");
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_dns1123_label_shape(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && s.iter().all(|&b| is_lower_alnum(b) || b == b'-')
        }
        _ => false,
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_shape(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&first), Some(&last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && s.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

pub(crate) fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LEN {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LEN));
    }
    if !is_dns1123_label_shape(value.as_bytes()) {
        errs.push(regex_error(
            DNS1123_LABEL_MSG,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

pub(crate) fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LEN));
    }
    if !value
        .as_bytes()
        .split(|&b| b == b'.')
        .all(is_dns1123_label_shape)
    {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

pub(crate) fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LEN {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LEN)
        ));
    }
    if !is_qualified_name_shape(name.as_bytes()) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

pub(crate) fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LEN {
        errs.push(max_len_error(LABEL_VALUE_MAX_LEN));
    }
    if !value.is_empty() && !is_qualified_name_shape(value.as_bytes()) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Checks for path-segment-safe names (RBAC objects allow `:` in names, e.g. `system:admin`).
fn path_segment_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value == "." || value == ".." {
        errs.push(format!("may not be '{value}'"));
        return errs;
    }
    for bad in ["/", "%"] {
        if value.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

fn join(errs: Vec<String>) -> Result<(), String> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// Validates a DNS-1123 subdomain (most object names): at most 253 characters of lowercase
/// alphanumerics, `-` and `.`, starting and ending with an alphanumeric.
pub fn dns1123_subdomain(name: &str) -> Result<(), String> {
    join(dns1123_subdomain_errors(name))
}

/// Validates a DNS-1123 label (namespaces, services): at most 63 lowercase alphanumerics or `-`,
/// starting and ending with an alphanumeric.
pub fn dns1123_label(name: &str) -> Result<(), String> {
    join(dns1123_label_errors(name))
}

/// Validates a label (or annotation) key: an optional DNS-subdomain prefix and `/`, then a name of
/// at most 63 alphanumerics, `-`, `_` or `.`.
pub fn label_key(key: &str) -> Result<(), String> {
    join(qualified_name_errors(key))
}

/// Validates a label value: empty, or at most 63 alphanumerics, `-`, `_` or `.` starting and
/// ending with an alphanumeric.
pub fn label_value(v: &str) -> Result<(), String> {
    join(label_value_errors(v))
}

/// Which rule an object's `metadata.name` must follow; it depends on the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: most resources.
    Subdomain,
    /// DNS-1123 label: namespaces, services.
    Label,
    /// Only "not `.`/`..`, no `/` or `%`": RBAC roles and bindings, whose names carry colons.
    PathSegment,
}

impl NameRule {
    /// Mirrors the apiserver's name validators, which in `prefix` mode (for `generateName`) tolerate
    /// a trailing dash because random characters will follow it.
    fn errors(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = if prefix && name.len() > 1 && name.ends_with('-') {
            // The apiserver's maskTrailingDash drops the last two bytes and appends 'a'.
            masked = format!("{}a", name.get(..name.len() - 2).unwrap_or(""));
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Subdomain => dns1123_subdomain_errors(name),
            NameRule::Label => dns1123_label_errors(name),
            NameRule::PathSegment => path_segment_errors(name),
        }
    }
}

/// One entry of a 422 Invalid `Status`'s `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// Dotted path of the offending field, e.g. `metadata.name`.
    pub field: String,
    /// The apiserver's `ErrorBody`, e.g. `Invalid value: "Foo": a lowercase RFC 1123 ...`.
    pub message: String,
    /// A `CauseType`: `FieldValueInvalid`, `FieldValueRequired`, `FieldValueTooLong`, ...
    pub reason: String,
}

impl Cause {
    /// A `FieldValueInvalid` cause for `value`, described by `detail`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Cause {
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", format_bad_value(value)),
            reason: "FieldValueInvalid".to_string(),
        }
    }

    /// A `FieldValueRequired` cause; an empty `detail` reads `Required value` alone, as Go's
    /// `field.Required(path, "")` prints.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            field: field.into(),
            message,
            reason: "FieldValueRequired".to_string(),
        }
    }

    /// A `FieldValueTooLong` cause for a value longer than `max` bytes.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Cause {
            field: field.into(),
            message: format!("Too long: may not be more than {max} bytes"),
            reason: "FieldValueTooLong".to_string(),
        }
    }

    /// A `FieldValueTypeInvalid` cause: the JSON has the wrong type for the field.
    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Cause {
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", format_bad_value(value)),
            reason: "FieldValueTypeInvalid".to_string(),
        }
    }
}

/// Renders a bad value like Go's field.Error does: strings `%q`-quoted, scalars bare.
fn format_bad_value(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// Approximates Go's `%q` so messages match the apiserver's byte for byte in the common cases.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds the `message` of a 422 Invalid status, e.g.
/// `Pod "Foo" is invalid: metadata.name: Invalid value: "Foo": ...`; several causes are
/// bracketed and comma-separated, duplicates dropped, as Go's error aggregate prints them.
pub fn invalid_message(qualified_kind: &str, name: &str, causes: &[Cause]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in causes {
        let text = if cause.field.is_empty() {
            cause.message.clone()
        } else {
            format!("{}: {}", cause.field, cause.message)
        };
        if !parts.contains(&text) {
            parts.push(text);
        }
    }
    let body = match parts.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    format!("{qualified_kind} {} is invalid: {body}", go_quote(name))
}

/// Validates the metadata of an object about to be stored and returns the causes for a 422
/// Invalid (empty when the metadata is acceptable).
///
/// Call it after `generateName` has been expanded: a missing name is reported as required.
/// Namespace scoping (whether `metadata.namespace` may be set) is the caller's concern; only the
/// namespace's format is checked here.
pub fn validate_metadata(obj: &Value, name_rule: NameRule) -> Vec<Cause> {
    let empty = Map::new();
    let meta = match obj.get("metadata") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => return vec![Cause::type_invalid("metadata", other, "must be an object")],
    };
    let mut causes = Vec::new();
    validate_names(meta, name_rule, &mut causes);
    validate_labels(meta.get("labels"), &mut causes);
    validate_annotations(meta.get("annotations"), &mut causes);
    validate_owner_references(meta.get("ownerReferences"), &mut causes);
    causes
}

/// Reads an optional string field, reporting a type error if it holds something else.
fn optional_str<'a>(
    meta: &'a Map<String, Value>,
    key: &str,
    causes: &mut Vec<Cause>,
) -> Option<&'a str> {
    match meta.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            causes.push(Cause::type_invalid(
                format!("metadata.{key}"),
                other,
                "must be a string",
            ));
            None
        }
    }
}

fn validate_names(meta: &Map<String, Value>, rule: NameRule, causes: &mut Vec<Cause>) {
    if let Some(generate) = optional_str(meta, "generateName", causes).filter(|g| !g.is_empty()) {
        for msg in rule.errors(generate, true) {
            causes.push(Cause::invalid(
                "metadata.generateName",
                &Value::from(generate),
                &msg,
            ));
        }
    }
    let name_is_string = matches!(
        meta.get("name"),
        None | Some(Value::Null | Value::String(_))
    );
    match optional_str(meta, "name", causes) {
        Some(name) if !name.is_empty() => {
            for msg in rule.errors(name, false) {
                causes.push(Cause::invalid("metadata.name", &Value::from(name), &msg));
            }
        }
        _ if name_is_string => causes.push(Cause::required(
            "metadata.name",
            "name or generateName is required",
        )),
        _ => {}
    }
    if let Some(ns) = optional_str(meta, "namespace", causes).filter(|n| !n.is_empty()) {
        for msg in dns1123_label_errors(ns) {
            causes.push(Cause::invalid("metadata.namespace", &Value::from(ns), &msg));
        }
    }
}

/// Returns the map under `field`, reporting a type error if it is not an object.
fn optional_map<'a>(
    value: Option<&'a Value>,
    field: &str,
    causes: &mut Vec<Cause>,
) -> Option<&'a Map<String, Value>> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            causes.push(Cause::type_invalid(field, other, "must be an object"));
            None
        }
    }
}

fn validate_labels(labels: Option<&Value>, causes: &mut Vec<Cause>) {
    const FIELD: &str = "metadata.labels";
    let Some(labels) = optional_map(labels, FIELD, causes) else {
        return;
    };
    for (key, value) in labels {
        for msg in qualified_name_errors(key) {
            causes.push(Cause::invalid(FIELD, &Value::from(key.as_str()), &msg));
        }
        match value {
            Value::String(v) => {
                for msg in label_value_errors(v) {
                    causes.push(Cause::invalid(FIELD, value, &msg));
                }
            }
            other => causes.push(Cause::type_invalid(
                format!("{FIELD}[{key}]"),
                other,
                "must be a string",
            )),
        }
    }
}

fn validate_annotations(annotations: Option<&Value>, causes: &mut Vec<Cause>) {
    const FIELD: &str = "metadata.annotations";
    let Some(annotations) = optional_map(annotations, FIELD, causes) else {
        return;
    };
    let mut total = 0usize;
    for (key, value) in annotations {
        // Annotation keys follow the label-key rule except that case does not matter.
        for msg in qualified_name_errors(&key.to_lowercase()) {
            causes.push(Cause::invalid(FIELD, &Value::from(key.as_str()), &msg));
        }
        total = total.saturating_add(key.len());
        match value {
            Value::String(v) => total = total.saturating_add(v.len()),
            other => causes.push(Cause::type_invalid(
                format!("{FIELD}[{key}]"),
                other,
                "must be a string",
            )),
        }
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        causes.push(Cause::too_long(FIELD, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn validate_owner_references(refs: Option<&Value>, causes: &mut Vec<Cause>) {
    const FIELD: &str = "metadata.ownerReferences";
    let refs = match refs {
        None | Some(Value::Null) => return,
        Some(Value::Array(refs)) => refs,
        Some(other) => {
            causes.push(Cause::type_invalid(FIELD, other, "must be an array"));
            return;
        }
    };
    let mut first_controller: Option<String> = None;
    for reference in refs {
        let Some(r) = reference.as_object() else {
            causes.push(Cause::type_invalid(FIELD, reference, "must be an object"));
            continue;
        };
        let text = |key: &str| r.get(key).and_then(Value::as_str).unwrap_or("");
        // Field paths are not indexed, matching the apiserver's validateOwnerReference.
        let api_version = text("apiVersion");
        let (group, version) = split_api_version(api_version);
        if version.is_empty() {
            causes.push(Cause::invalid(
                format!("{FIELD}.apiVersion"),
                &Value::from(api_version),
                "version must not be empty",
            ));
        }
        let kind = text("kind");
        for (key, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if text(key).is_empty() {
                causes.push(Cause::invalid(
                    format!("{FIELD}.{key}"),
                    &Value::from(text(key)),
                    &format!("{what} must not be empty"),
                ));
            }
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            causes.push(Cause::invalid(
                FIELD,
                reference,
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{kind}/{}", text("name"));
            match &first_controller {
                Some(first) => causes.push(Cause::invalid(
                    FIELD,
                    &Value::Array(refs.clone()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
}

/// Splits `group/version` like Go's `schema.ParseGroupVersion`, yielding empty parts for
/// malformed input.
fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.matches('/').count() {
        0 => ("", api_version),
        1 => api_version.split_once('/').unwrap_or(("", "")),
        _ => ("", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain("example.com").is_ok());
        assert!(dns1123_subdomain("a").is_ok());
        assert!(dns1123_subdomain("a-b.c-d.e").is_ok());
        for bad in ["", "Foo", "-a", "a-", "a..b", ".a", "a.", "a_b", "é"] {
            let err = dns1123_subdomain(bad).unwrap_err();
            assert_eq!(
                err,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "{bad}"
            );
        }
        assert!(dns1123_subdomain(&"a".repeat(253)).is_ok());
        assert_eq!(
            dns1123_subdomain(&"a".repeat(254)).unwrap_err(),
            "must be no more than 253 characters"
        );
    }

    #[test]
    fn labels() {
        assert!(dns1123_label("my-name").is_ok());
        assert!(dns1123_label("123-abc").is_ok());
        assert!(dns1123_label(&"a".repeat(63)).is_ok());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert_eq!(
            dns1123_label("a.b").unwrap_err(),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        );
    }

    #[test]
    fn label_keys_and_values() {
        for ok in [
            "app",
            "App_1.x",
            "example.com/name",
            "app.kubernetes.io/name",
        ] {
            assert!(label_key(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            label_key("a/b/c").unwrap_err(),
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        );
        let err = label_key("/x").unwrap_err();
        assert!(err.starts_with("prefix part must be non-empty"), "{err}");
        let err = label_key("Example.com/x").unwrap_err();
        assert!(err.starts_with("prefix part a lowercase RFC 1123"), "{err}");
        let err = label_key("").unwrap_err();
        assert!(
            err.starts_with("name part must be non-empty; name part must consist"),
            "{err}"
        );
        assert!(label_key(&"a".repeat(64)).is_err());

        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_3-x").is_ok());
        assert!(label_value("-x").is_err());
        assert_eq!(
            label_value(&"a".repeat(64)).unwrap_err(),
            "must be no more than 63 characters"
        );
        assert!(
            label_value("a b")
                .unwrap_err()
                .contains("'MyValue',  or 'my_value'")
        );
    }

    #[test]
    fn valid_metadata_has_no_causes() {
        let obj = json!({"metadata": {
            "name": "web", "namespace": "default",
            "labels": {"app": "web", "example.com/tier": ""},
            "annotations": {"Example.com/Note": "anything goes here: ,= /"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1", "controller": true}]
        }});
        assert_eq!(validate_metadata(&obj, NameRule::Subdomain), vec![]);
    }

    #[test]
    fn names_per_rule() {
        let obj = json!({"metadata": {"name": "a.b"}});
        assert!(validate_metadata(&obj, NameRule::Subdomain).is_empty());
        let causes = validate_metadata(&obj, NameRule::Label);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "metadata.name");
        assert_eq!(causes[0].reason, "FieldValueInvalid");
        assert!(
            causes[0]
                .message
                .starts_with("Invalid value: \"a.b\": a lowercase RFC 1123 label")
        );

        let rbac = json!({"metadata": {"name": "system:controller:x"}});
        assert!(validate_metadata(&rbac, NameRule::PathSegment).is_empty());
        assert_eq!(
            validate_metadata(&json!({"metadata": {"name": "a/b"}}), NameRule::PathSegment)[0]
                .message,
            "Invalid value: \"a/b\": may not contain '/'"
        );
    }

    #[test]
    fn missing_name_is_required() {
        for obj in [
            json!({}),
            json!({"metadata": {}}),
            json!({"metadata": {"name": ""}}),
        ] {
            let causes = validate_metadata(&obj, NameRule::Subdomain);
            assert_eq!(
                causes,
                vec![Cause {
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                    reason: "FieldValueRequired".into(),
                }]
            );
        }
    }

    #[test]
    fn generate_name_tolerates_trailing_dash() {
        let obj = json!({"metadata": {"name": "web-x7k2p", "generateName": "web-"}});
        assert!(validate_metadata(&obj, NameRule::Subdomain).is_empty());
        let obj = json!({"metadata": {"name": "ok", "generateName": "Web-"}});
        assert_eq!(
            validate_metadata(&obj, NameRule::Subdomain)[0].field,
            "metadata.generateName"
        );
    }

    #[test]
    fn type_errors() {
        let causes = validate_metadata(&json!({"metadata": "x"}), NameRule::Subdomain);
        assert_eq!(causes[0].field, "metadata");
        assert_eq!(causes[0].reason, "FieldValueTypeInvalid");

        let causes = validate_metadata(&json!({"metadata": {"name": 5}}), NameRule::Subdomain);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].message, "Invalid value: 5: must be a string");

        let obj =
            json!({"metadata": {"name": "a", "labels": {"n": 1}, "annotations": {"b": true}}});
        let fields: Vec<_> = validate_metadata(&obj, NameRule::Subdomain)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["metadata.labels[n]", "metadata.annotations[b]"]);

        let obj = json!({"metadata": {"name": "a", "labels": []}});
        assert_eq!(
            validate_metadata(&obj, NameRule::Subdomain)[0].field,
            "metadata.labels"
        );
    }

    #[test]
    fn bad_labels() {
        let obj = json!({"metadata": {"name": "a", "labels": {"-bad": "ok", "good": "not ok"}}});
        let causes = validate_metadata(&obj, NameRule::Subdomain);
        assert_eq!(causes.len(), 2);
        assert!(causes.iter().all(|c| c.field == "metadata.labels"));
        assert!(
            causes
                .iter()
                .any(|c| c.message.starts_with("Invalid value: \"-bad\": name part"))
        );
        assert!(causes.iter().any(|c| {
            c.message
                .starts_with("Invalid value: \"not ok\": a valid label")
        }));
    }

    #[test]
    fn annotation_size_limit() {
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let obj = json!({"metadata": {"name": "a", "annotations": {"k": big}}});
        let causes = validate_metadata(&obj, NameRule::Subdomain);
        assert_eq!(
            causes,
            vec![Cause {
                field: "metadata.annotations".into(),
                message: "Too long: may not be more than 262144 bytes".into(),
                reason: "FieldValueTooLong".into(),
            }]
        );
        let ok = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1);
        let obj = json!({"metadata": {"name": "a", "annotations": {"k": ok}}});
        assert!(validate_metadata(&obj, NameRule::Subdomain).is_empty());
    }

    #[test]
    fn owner_references() {
        let obj = json!({"metadata": {"name": "a", "ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": ""}]}});
        let fields: Vec<_> = validate_metadata(&obj, NameRule::Subdomain)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "metadata.ownerReferences.apiVersion",
                "metadata.ownerReferences.kind",
                "metadata.ownerReferences.name",
                "metadata.ownerReferences.uid"
            ]
        );
        let two = json!({"metadata": {"name": "a", "ownerReferences": [
            {"apiVersion": "v1", "kind": "A", "name": "x", "uid": "1", "controller": true},
            {"apiVersion": "v1", "kind": "B", "name": "y", "uid": "2", "controller": true}
        ]}});
        let causes = validate_metadata(&two, NameRule::Subdomain);
        assert_eq!(causes.len(), 1);
        assert!(causes[0].message.ends_with("references for A/x and B/y"));
        let event = json!({"metadata": {"name": "a", "ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"}]}});
        assert_eq!(validate_metadata(&event, NameRule::Subdomain).len(), 1);
        let not_array = json!({"metadata": {"name": "a", "ownerReferences": {}}});
        assert_eq!(
            validate_metadata(&not_array, NameRule::Subdomain)[0].reason,
            "FieldValueTypeInvalid"
        );
    }

    #[test]
    fn status_message() {
        let one = [Cause::invalid("metadata.name", &json!("Foo"), "bad")];
        assert_eq!(
            invalid_message("Pod", "Foo", &one),
            "Pod \"Foo\" is invalid: metadata.name: Invalid value: \"Foo\": bad"
        );
        let two = [
            Cause::required("metadata.name", "x"),
            Cause::too_long("metadata.annotations", 3),
            Cause::required("metadata.name", "x"),
        ];
        assert_eq!(
            invalid_message("deployments.apps", "", &two),
            "deployments.apps \"\" is invalid: [metadata.name: Required value: x, metadata.annotations: Too long: may not be more than 3 bytes]"
        );
    }

    #[test]
    fn cause_serializes_like_status_cause() {
        let cause = Cause::required("metadata.name", "x");
        assert_eq!(
            serde_json::to_value(&cause).unwrap(),
            json!({"field": "metadata.name", "message": "Required value: x", "reason": "FieldValueRequired"})
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\x01\"");
    }
}
