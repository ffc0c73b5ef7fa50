//! Versions of one stored object served in another group's shape. A real apiserver stores a
//! core Event once and converts it for `events.k8s.io/v1`; the sandbox does the same, so an
//! event a controller records is listed by both `kubectl get events` and clients of the new
//! API, and one written through either is the same object.

use serde_json::{Map, Value};

use crate::registry::Resource;

/// Field renames between `events.k8s.io/v1` (left) and core `v1` (right).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// The stored object as `res` shows it.
pub fn to_version(res: &Resource, mut obj: Value) -> Value {
    if res.converted() {
        rename(&mut obj, |(version, stored)| (stored, version));
    }
    obj["apiVersion"] = Value::String(res.api_version());
    obj
}

/// An object written through `res` as it is stored.
pub fn to_storage(res: &Resource, mut obj: Value) -> Value {
    if !res.converted() {
        return obj;
    }
    rename(&mut obj, |(version, stored)| (version, stored));
    obj["apiVersion"] = Value::String(storage_api_version(res));
    obj
}

fn storage_api_version(res: &Resource) -> String {
    if res.storage_group.is_empty() {
        res.version.clone()
    } else {
        format!("{}/{}", res.storage_group, res.version)
    }
}

/// Moves each field from the first name of `pick(pair)` to the second.
fn rename(
    obj: &mut Value,
    pick: impl Fn((&'static str, &'static str)) -> (&'static str, &'static str),
) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let mut moved = Map::new();
    for pair in EVENT_FIELDS {
        let (from, to) = pick(*pair);
        if let Some(v) = map.remove(from) {
            moved.insert(to.to_string(), v);
        }
    }
    map.extend(moved);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::Registry;

    #[test]
    fn events_round_trip_between_versions() {
        let registry = Registry::new();
        let new = registry.find("events.k8s.io", "v1", "events").unwrap();
        let core = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "count": 2,
            "reason": "Started", "reportingComponent": "kubelet",
        });
        let shown = to_version(&new, core.clone());
        assert_eq!(shown["apiVersion"], "events.k8s.io/v1");
        assert_eq!(shown["regarding"]["name"], "p");
        assert_eq!(shown["note"], "hi");
        assert_eq!(shown["deprecatedCount"], 2);
        assert_eq!(shown["reportingController"], "kubelet");
        assert!(shown.get("involvedObject").is_none());
        assert_eq!(to_storage(&new, shown), core);
    }
}
