//! Reading and writing `metadata.managedFields`.

use serde_json::{Map, Value};

use super::path::{self, PathSet};

/// The operation of an entry written by server-side apply.
pub(crate) const APPLY: &str = "Apply";
/// The operation of an entry written by create, update or patch.
pub(crate) const UPDATE: &str = "Update";

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) manager: String,
    pub(crate) operation: String,
    pub(crate) api_version: Option<String>,
    pub(crate) time: Option<String>,
    pub(crate) subresource: Option<String>,
    pub(crate) fields: PathSet,
}

impl Entry {
    /// Whether this is the entry of `manager` for `operation` on `subresource`.
    pub(crate) fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    fn from_json(entry: &Value) -> Option<Self> {
        let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            manager: text("manager")?,
            operation: text("operation")?,
            api_version: text("apiVersion"),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            fields: entry
                .get("fieldsV1")
                .map(path::from_fields_v1)
                .unwrap_or_default(),
        })
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("manager".to_owned(), Value::from(self.manager.as_str()));
        out.insert("operation".to_owned(), Value::from(self.operation.as_str()));
        if let Some(api_version) = &self.api_version {
            out.insert("apiVersion".to_owned(), Value::from(api_version.as_str()));
        }
        if let Some(time) = &self.time {
            out.insert("time".to_owned(), Value::from(time.as_str()));
        }
        out.insert("fieldsType".to_owned(), Value::from("FieldsV1"));
        out.insert("fieldsV1".to_owned(), path::to_fields_v1(&self.fields));
        if let Some(subresource) = &self.subresource {
            out.insert("subresource".to_owned(), Value::from(subresource.as_str()));
        }
        Value::Object(out)
    }
}

/// The entries of `object`'s managedFields; malformed ones are left out.
pub(crate) fn read(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

/// Whether `object` asks to clear its managedFields: a list of exactly one empty entry.
pub(crate) fn is_reset(object: &Value) -> bool {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|entries| matches!(entries.as_slice(), [Value::Object(e)] if e.is_empty()))
}

/// A copy of `object` without managedFields.
pub(crate) fn strip(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

/// Stores `entries` in `object`, dropping empty ones, in the apiserver's order: Apply before
/// Update, then oldest first. A stable order is what keeps repeated writes byte-for-byte equal.
pub(crate) fn write(object: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|entry| !entry.fields.is_empty());
    entries.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        if let Some(metadata) = fields.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        return;
    }
    let metadata = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(metadata) = metadata.as_object_mut() {
        let entries = entries.iter().map(Entry::to_json).collect();
        metadata.insert("managedFields".to_owned(), Value::Array(entries));
    }
}

fn sort_key(entry: &Entry) -> (&str, Option<&str>, &str, Option<&str>, Option<&str>) {
    (
        entry.operation.as_str(),
        entry.time.as_deref(),
        entry.manager.as_str(),
        entry.api_version.as_deref(),
        entry.subresource.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_sorts() {
        let object = json!({"metadata": {"managedFields": [
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:x": {}}}, "subresource": "status"},
            {"manager": "a", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-02T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:y": {}}}},
            {"manager": "broken"},
            {"manager": "empty", "operation": "Update", "fieldsV1": {}}
        ]}});
        let entries = read(&object);
        assert_eq!(entries.len(), 3);
        let mut out = json!({"metadata": {"name": "x"}});
        write(&mut out, entries);
        let managed = &out["metadata"]["managedFields"];
        assert_eq!(managed[0]["manager"], "a");
        assert_eq!(managed[1], object["metadata"]["managedFields"][0]);
        assert_eq!(managed.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn no_entries_means_no_key() {
        let mut object = json!({"metadata": {"name": "x", "managedFields": []}});
        write(&mut object, Vec::new());
        assert_eq!(object, json!({"metadata": {"name": "x"}}));
    }
}
