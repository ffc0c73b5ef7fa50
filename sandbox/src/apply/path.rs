//! Field paths, spelled as in `fieldsV1` so that they round-trip through managedFields unchanged.
//!
//! A path is the list of steps from the object root: `f:<field>` into an object, `k:{"name":"web"}`
//! to the item of a keyed list, `v:"value"` to a value of a primitive set. Sets of paths are plain
//! sorted sets: a path's descendants sort right after it, which makes "anything below" cheap.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// A path from the object root.
pub(crate) type Path = Vec<String>;

/// A set of paths, each naming a field (or list item, or set value) that is owned or changed.
pub(crate) type PathSet = BTreeSet<Path>;

/// One step of a path, decoded.
pub(crate) enum Step {
    Field(String),
    Key(Map<String, Value>),
    Value(Value),
}

/// The step into object field `name`.
pub(crate) fn field(name: &str) -> String {
    format!("f:{name}")
}

/// The step to the item of a keyed list whose `key` is `value`.
pub(crate) fn key(key: &str, value: &Value) -> String {
    let mut fields = Map::new();
    fields.insert(key.to_owned(), value.clone());
    format!("k:{}", Value::Object(fields))
}

/// The step to `value` in a primitive set.
pub(crate) fn value(value: &Value) -> String {
    format!("v:{value}")
}

/// Decodes a step; `None` for spellings the sandbox never produces (such as `i:` indices).
pub(crate) fn parse(step: &str) -> Option<Step> {
    if let Some(name) = step.strip_prefix("f:") {
        return Some(Step::Field(name.to_owned()));
    }
    if let Some(json) = step.strip_prefix("k:") {
        return serde_json::from_str(json).ok().map(Step::Key);
    }
    let json = step.strip_prefix("v:")?;
    serde_json::from_str(json).ok().map(Step::Value)
}

/// Whether `set` holds `path` or anything below it.
pub(crate) fn covers(set: &PathSet, path: &Path) -> bool {
    set.range(path.clone()..)
        .next()
        .is_some_and(|next| next.starts_with(path))
}

/// The paths of a `fieldsV1` value. Malformed parts are skipped: ownership records are advisory,
/// and a broken one must not make the object unwritable.
pub(crate) fn from_fields_v1(fields: &Value) -> PathSet {
    let mut out = PathSet::new();
    collect_fields_v1(fields, &mut Vec::new(), &mut out);
    out
}

fn collect_fields_v1(fields: &Value, prefix: &mut Path, out: &mut PathSet) {
    let Value::Object(children) = fields else {
        return;
    };
    let member = children.is_empty() || children.contains_key(".");
    if member && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (step, child) in children.iter().filter(|(step, _)| *step != ".") {
        prefix.push(step.clone());
        collect_fields_v1(child, prefix, out);
        prefix.pop();
    }
}

/// The `fieldsV1` value for `set`: a tree of steps where `{}` marks a leaf and `".": {}` marks a
/// member that also has members below it, exactly as the apiserver writes it.
pub(crate) fn to_fields_v1(set: &PathSet) -> Value {
    let mut root = Node::default();
    for path in set {
        let node = path.iter().fold(&mut root, |node, step| {
            node.children.entry(step.clone()).or_default()
        });
        node.member = true;
    }
    root.encode()
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn encode(&self) -> Value {
        let mut out = Map::new();
        if self.member && !self.children.is_empty() {
            out.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (step, child) in &self.children {
            out.insert(step.clone(), child.encode());
        }
        Value::Object(out)
    }
}

/// A path as the apiserver prints it in conflict messages: `.spec.containers[name="web"].image`.
pub(crate) fn display(path: &Path) -> String {
    path.iter().map(|step| display_step(step)).collect()
}

fn display_step(step: &str) -> String {
    match parse(step) {
        Some(Step::Field(name)) => format!(".{name}"),
        Some(Step::Key(fields)) => {
            let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("[{}]", pairs.join(","))
        }
        Some(Step::Value(value)) => format!("[={value}]"),
        None => format!("[{}]", step.strip_prefix("i:").unwrap_or(step)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(steps: &[&str]) -> Path {
        steps.iter().map(|step| (*step).to_owned()).collect()
    }

    #[test]
    fn fields_v1_round_trip() {
        let fields = json!({
            "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"x\"": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}
        });
        let set = from_fields_v1(&fields);
        assert!(set.contains(&path(&["f:metadata", "f:labels", "f:app"])));
        assert!(set.contains(&path(&["f:spec", "f:containers", "k:{\"name\":\"web\"}"])));
        assert!(!set.contains(&path(&["f:spec"])));
        assert_eq!(set.len(), 5);
        assert_eq!(to_fields_v1(&set), fields);
    }

    #[test]
    fn malformed_fields_v1_is_skipped() {
        let set = from_fields_v1(&json!({"f:a": 1, "f:b": {}, ".": {}}));
        assert_eq!(set, PathSet::from([path(&["f:b"])]));
        assert!(from_fields_v1(&json!("nope")).is_empty());
    }

    #[test]
    fn steps_round_trip() {
        assert_eq!(key("containerPort", &json!(80)), "k:{\"containerPort\":80}");
        assert_eq!(value(&json!("a")), "v:\"a\"");
        assert!(matches!(parse(&key("name", &json!("x"))), Some(Step::Key(k)) if k["name"] == "x"));
    }

    #[test]
    fn displays_like_the_apiserver() {
        let p = vec![
            field("spec"),
            field("containers"),
            key("name", &json!("web")),
            field("image"),
        ];
        assert_eq!(display(&p), ".spec.containers[name=\"web\"].image");
        assert_eq!(
            display(&vec![
                field("metadata"),
                field("finalizers"),
                value(&json!("f"))
            ]),
            ".metadata.finalizers[=\"f\"]"
        );
    }

    #[test]
    fn covers_descendants() {
        let set = PathSet::from([path(&["f:spec", "f:template", "f:x"])]);
        assert!(covers(&set, &path(&["f:spec"])));
        assert!(covers(&set, &path(&["f:spec", "f:template", "f:x"])));
        assert!(!covers(&set, &path(&["f:spec", "f:replicas"])));
        assert!(!covers(&set, &path(&["f:status"])));
    }
}
