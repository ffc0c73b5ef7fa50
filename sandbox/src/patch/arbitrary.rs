//! Random JSON for property tests, biased towards the keys and values the patch and apply code
//! treats specially so that the interesting branches are reached.

use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "spec",
    "containers",
    "image",
    "env",
    "value",
    "ports",
    "port",
    "containerPort",
    "finalizers",
    "conditions",
    "type",
    "labels",
    "managedFields",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/finalizers",
    "$deleteFromPrimitiveList/finalizers",
];

const STRINGS: &[&str] = &["replace", "delete", "merge", "a", "b", "v1", "Pod", "web"];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z$/.]{0,5}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..100).prop_map(Value::from),
        proptest::sample::select(STRINGS).prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::from),
    ]
}

/// Arbitrary JSON values nested at most `depth` deep.
pub(crate) fn json(depth: u32) -> impl Strategy<Value = Value> {
    leaf().prop_recursive(depth, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Arbitrary JSON objects, the shape every patch and object has at the top.
pub(crate) fn object(depth: u32) -> impl Strategy<Value = Value> {
    proptest::collection::vec((key(), json(depth)), 0..6)
        .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>()))
}
