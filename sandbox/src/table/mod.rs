//! `meta.k8s.io/v1` Table responses, which `kubectl get` requests (via `Accept: ...;as=Table`)
//! to print columns without knowing the resource.
//!
//! Built-in kinds reproduce the apiserver's printers; custom resources use their CRD's
//! `additionalPrinterColumns`; anything else gets Name and Age.

mod jsonpath;
mod platform;
mod printers;
mod resources;
mod workloads;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use jsonpath::JsonPath;
use printers::{AGE_DESCRIPTION, NAME_DESCRIPTION};

/// One column of a Table, and for CRD columns the JSONPath that fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Header text; kubectl upper-cases it.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// OpenAPI format; `name` marks the column holding the object name.
    pub format: String,
    /// Human-readable description.
    pub description: String,
    /// 0 for default columns, higher for `-o wide`.
    pub priority: i32,
    /// For CRD columns, e.g. `.spec.replicas`; empty for built-in printers.
    pub json_path: String,
}

impl PrinterColumn {
    /// The `columnDefinitions` entry.
    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// Reads a CRD version's `additionalPrinterColumns` array (v1 `jsonPath` or v1beta1 `JSONPath`).
/// Entries without a name or path are skipped; a missing description gets the apiserver's
/// default. Returns an empty list for anything but an array.
pub fn printer_columns_from_crd(cols: &Value) -> Vec<PrinterColumn> {
    let Some(cols) = cols.as_array() else {
        return Vec::new();
    };
    cols.iter()
        .filter_map(|col| {
            let field = |key: &str| col.get(key).and_then(Value::as_str).unwrap_or("");
            let name = field("name");
            let json_path = match field("jsonPath") {
                "" => field("JSONPath"),
                p => p,
            };
            if name.is_empty() || json_path.is_empty() {
                return None;
            }
            let description = match field("description") {
                "" => {
                    format!("Custom resource definition column (in JSONPath format): {json_path}")
                }
                d => d.to_string(),
            };
            Some(PrinterColumn {
                name: name.to_string(),
                type_: field("type").to_string(),
                format: field("format").to_string(),
                description,
                priority: col
                    .get("priority")
                    .and_then(Value::as_i64)
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or(0),
                json_path: json_path.to_string(),
            })
        })
        .collect()
}

/// What each row's `object` carries, from the `includeObject` query parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No `object` field.
    None,
    /// A `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl std::str::FromStr for IncludeObject {
    type Err = String;

    /// Parses `None`, `Metadata` or `Object`; the empty string means the default.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "None" => Ok(IncludeObject::None),
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "Object" => Ok(IncludeObject::Object),
            other => Err(format!(
                "includeObject: Unsupported value: \"{other}\": supported values: \"None\", \"Metadata\", \"Object\""
            )),
        }
    }
}

/// Renders `objects` of `group`/`kind` as a `meta.k8s.io/v1` Table.
///
/// `crd_columns` is only used for kinds without a built-in printer; pass the CRD's parsed
/// columns for custom resources (an empty list yields Name and Age, as for a CRD without
/// `additionalPrinterColumns`). `list_metadata` becomes the Table's `metadata`
/// (`resourceVersion`, `continue`). `now` is the reference time for ages.
pub fn to_table(
    group: &str,
    kind: &str,
    crd_columns: &[PrinterColumn],
    objects: &[&Value],
    include: IncludeObject,
    list_metadata: Value,
    now: Timestamp,
) -> Value {
    let (columns, rows): (Vec<PrinterColumn>, Vec<Value>) = match printers::builtin(group, kind) {
        Some(printer) => {
            let rows = objects
                .iter()
                .map(|obj| {
                    let mut row = new_row((printer.cells)(obj, now), obj, include);
                    if group.is_empty()
                        && kind == "Pod"
                        && let Some(conditions) = workloads::pod_conditions(obj)
                    {
                        row.insert("conditions".to_string(), conditions);
                    }
                    Value::Object(row)
                })
                .collect();
            (printer.columns, rows)
        }
        None => {
            let columns = custom_columns(crd_columns);
            let rows = objects
                .iter()
                .map(|obj| Value::Object(new_row(custom_cells(&columns, obj, now), obj, include)))
                .collect();
            (columns, rows)
        }
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": columns.iter().map(PrinterColumn::definition).collect::<Vec<_>>(),
        "rows": rows,
    })
}

fn new_row(cells: Vec<Value>, obj: &Value, include: IncludeObject) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert("cells".to_string(), Value::Array(cells));
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            row.insert(
                "object".to_string(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                }),
            );
        }
        IncludeObject::Object => {
            row.insert("object".to_string(), obj.clone());
        }
    }
    row
}

/// Name plus the CRD's columns, or Name plus the apiserver's default Age column.
fn custom_columns(crd_columns: &[PrinterColumn]) -> Vec<PrinterColumn> {
    let mut columns = vec![PrinterColumn {
        name: "Name".to_string(),
        type_: "string".to_string(),
        format: "name".to_string(),
        description: NAME_DESCRIPTION.to_string(),
        priority: 0,
        json_path: ".metadata.name".to_string(),
    }];
    if crd_columns.is_empty() {
        columns.push(PrinterColumn {
            name: "Age".to_string(),
            type_: "date".to_string(),
            format: String::new(),
            description: AGE_DESCRIPTION.to_string(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".to_string(),
        });
    } else {
        columns.extend(crd_columns.iter().cloned());
    }
    columns
}

fn custom_cells(columns: &[PrinterColumn], obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![printers::name_cell(obj)];
    cells.extend(columns.iter().skip(1).map(|col| custom_cell(col, obj, now)));
    cells
}

/// A CRD column's cell: the first JSONPath result, converted per the column type like the
/// apiserver's `cellForJSONValue`; `null` when missing or of the wrong type.
fn custom_cell(col: &PrinterColumn, obj: &Value, now: Timestamp) -> Value {
    let Ok(path) = JsonPath::parse(&col.json_path) else {
        return Value::Null;
    };
    let Some(&value) = path.eval(obj).first() else {
        return Value::Null;
    };
    match (col.type_.as_str(), value) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(s)) => Value::from(s.as_str()),
        ("string", Value::Number(n)) => Value::from(go_number(n)),
        ("string", other) => Value::from(other.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(b)) => Value::from(*b),
        ("date", Value::String(s)) => Value::from(date_cell(s, now)),
        _ => Value::Null,
    }
}

/// Prints a JSON number as Go would print the decoded value (`3` rather than `3.0`).
fn go_number(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (_, Some(u), _) => u.to_string(),
        (_, _, Some(f)) => f.to_string(),
        _ => n.to_string(),
    }
}

fn date_cell(s: &str, now: Timestamp) -> String {
    if s.is_empty() || s == "null" {
        return "<unknown>".to_string();
    }
    match printers::parse_time(s) {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<invalid>".to_string(),
    }
}

/// kubectl's `HumanDuration`: two significant units at most, e.g. `45s`, `5m10s`, `3h`, `2d5h`,
/// `400d`, `3y20d`. Slightly negative durations (clock skew) read as `0s`.
pub fn human_duration(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs < -1 {
        return "<invalid>".to_string();
    }
    if secs < 0 {
        return "0s".to_string();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            dy => format!("{years}y{dy}d"),
        };
    }
    format!("{years}y")
}

/// kubectl's age cell for an RFC 3339 timestamp: [`human_duration`] since it, or `<unknown>`
/// when absent or unparseable.
pub fn age(timestamp: Option<&str>, now: Timestamp) -> String {
    printers::since(timestamp.unwrap_or(""), now)
}

#[cfg(test)]
mod tests;
