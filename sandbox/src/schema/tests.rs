use proptest::prelude::*;
use serde_json::{Value, json};

use super::{admit, unknown_fields};

/// A schema with one of each rule, shaped like a CRD's.
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "string", "minLength": 1},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 80},
                    "replicas": {"type": "integer", "minimum": 0, "default": 1},
                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                    "mode": {"type": "string", "enum": ["fast", "safe"]},
                    "ratio": {"type": "number", "exclusiveMaximum": true, "maximum": 1},
                    "target": {"x-kubernetes-int-or-string": true},
                    "note": {"type": "string", "nullable": true},
                    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                    "env": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}, "value": {"type": "string"}}
                        }
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "route": {
                        "type": "object",
                        "default": {},
                        "properties": {"path": {"type": "string", "default": "/"}}
                    }
                }
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
    })
}

fn object(spec: Value) -> Value {
    json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "a", "labels": {"k": "v"}}, "spec": spec})
}

fn messages(obj: &mut Value) -> Vec<String> {
    admit(&schema(), obj)
        .into_iter()
        .map(|c| format!("{}: {} ({})", c.field, c.message, c.reason))
        .collect()
}

#[test]
fn unknown_fields_are_pruned_where_the_schema_does_not_keep_them() {
    let mut obj = object(json!({
        "image": "nginx", "typo": 1,
        "env": [{"name": "A", "value": "1", "secret": true}],
        "extra": {"anything": {"goes": 1}},
        "labels": {"team": "shop"},
    }));
    obj["stray"] = json!(true);
    obj["status"] = json!({"phase": "Running"});
    assert!(messages(&mut obj).is_empty());
    assert_eq!(obj["spec"].get("typo"), None);
    assert_eq!(obj.get("stray"), None);
    assert_eq!(obj["spec"]["env"][0], json!({"name": "A", "value": "1"}));
    assert_eq!(obj["spec"]["extra"], json!({"anything": {"goes": 1}}));
    assert_eq!(obj["spec"]["labels"], json!({"team": "shop"}));
    assert_eq!(obj["status"], json!({"phase": "Running"}));
    assert_eq!(
        obj["metadata"]["labels"],
        json!({"k": "v"}),
        "metadata is the server's"
    );
}

#[test]
fn unknown_fields_are_named_by_path_for_the_client() {
    let mut obj = object(json!({
        "image": "nginx", "typo": 1,
        "env": [{"name": "A"}, {"name": "B", "secret": true}],
        "extra": {"anything": 1},
        "labels": {"free": "form"},
    }));
    obj["stray"] = json!(true);
    assert_eq!(
        unknown_fields(&schema(), &obj),
        ["spec.typo", "spec.env[1].secret", "stray"],
        "in the order the client sent them"
    );
    admit(&schema(), &mut obj);
    assert!(
        unknown_fields(&schema(), &obj).is_empty(),
        "pruning removes exactly those"
    );
}

#[test]
fn defaults_fill_what_is_missing_and_nulls_of_non_nullable_fields_go() {
    let mut obj = object(json!({"image": "nginx", "replicas": null, "note": null}));
    assert!(messages(&mut obj).is_empty());
    assert_eq!(obj["spec"]["port"], 80);
    assert_eq!(
        obj["spec"]["replicas"], 1,
        "a null is pruned, then defaulted"
    );
    assert_eq!(obj["spec"]["note"], Value::Null, "nullable keeps its null");
    assert_eq!(
        obj["spec"]["route"],
        json!({"path": "/"}),
        "a default is defaulted inside"
    );
    let mut set = object(json!({"image": "nginx", "port": 8080}));
    assert!(messages(&mut set).is_empty());
    assert_eq!(set["spec"]["port"], 8080, "a value given is kept");
}

#[test]
fn each_rule_is_a_cause_worded_as_the_server_words_it() {
    let mut obj = object(json!({
        "port": "80", "replicas": -1, "name": "Web", "mode": "slow", "ratio": 1,
        "target": true, "tags": ["a", "b", "c"], "env": [{"value": "x"}], "image": "",
    }));
    let got = messages(&mut obj);
    let expected = [
        "spec.port: Invalid value: \"string\": spec.port in body must be of type integer: \"string\" (FieldValueTypeInvalid)",
        "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0 (FieldValueInvalid)",
        "spec.name: Invalid value: \"Web\": spec.name in body should match '^[a-z]+$' (FieldValueInvalid)",
        "spec.mode: Unsupported value: \"slow\": supported values: \"fast\", \"safe\" (FieldValueNotSupported)",
        "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1 (FieldValueInvalid)",
        "spec.target: Invalid value: \"boolean\": spec.target in body must be of type integer,string: \"boolean\" (FieldValueTypeInvalid)",
        "spec.tags: Too many: 3: must have at most 2 items (FieldValueTooMany)",
        "spec.env[0].name: Required value:  (FieldValueRequired)",
        "spec.image: Invalid value: \"\": spec.image in body should be at least 1 chars long (FieldValueInvalid)",
    ];
    for line in expected {
        assert!(got.iter().any(|g| g == line), "missing {line}\nin {got:#?}");
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
}

#[test]
fn required_is_met_by_a_default_but_not_by_nothing() {
    let mut obj = object(json!({"port": 81}));
    assert_eq!(
        messages(&mut obj),
        ["spec.image: Required value:  (FieldValueRequired)"]
    );
    let schema =
        json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}});
    let mut bare = json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "a"}});
    let causes = admit(&schema, &mut bare);
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, "spec");
}

#[test]
fn a_preserving_root_keeps_everything_and_checks_what_it_names() {
    let schema = json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"port": {"type": "integer"}}}}
    });
    let mut obj = object(json!({"port": 1, "free": {"form": true}}));
    obj["top"] = json!(1);
    assert!(admit(&schema, &mut obj).is_empty());
    assert_eq!(obj["top"], 1);
    assert_eq!(obj["spec"]["free"], json!({"form": true}));
    let mut bad = object(json!({"port": "x"}));
    assert_eq!(admit(&schema, &mut bad).len(), 1);
}

/// Any JSON a client sends: admission never panics, and what it stores is stable (admitting
/// the stored object again changes nothing and finds the same causes).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-zA-Z/^$]{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("image".to_string()),
                    Just("port".to_string()),
                    Just("env".to_string()),
                    Just("name".to_string()),
                    Just("route".to_string()),
                    "[a-z]{1,5}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn admission_is_total_and_idempotent(spec in any_json()) {
        let mut obj = object(spec);
        let first = admit(&schema(), &mut obj);
        let once = obj.clone();
        let second = admit(&schema(), &mut obj);
        prop_assert_eq!(&obj, &once);
        prop_assert_eq!(first, second);
    }
}
