//! A decoded protobuf message as Kubernetes JSON. The field names of the generated.proto
//! files are the JSON names; what differs is handled here: the apimachinery types whose JSON
//! is not an object (IntOrString, Quantity, Time, MicroTime, Duration, RawExtension,
//! FieldsV1, the string-list wrappers), 64-bit integers (numbers, not the proto3 strings),
//! the embedded structs JSON inlines (a Volume's `volumeSource`), and zero values: Go's
//! encoder writes every non-pointer field, so a zero scalar is dropped (as `omitempty` would)
//! unless the Go field is a pointer (`replicas: 0`).

use base64::Engine;
use prost_reflect::{DynamicMessage, FieldDescriptor, MapKey, ReflectMessage, Value as Pb};
use serde_json::{Map, Value, json};

use super::schema;

/// `msg` as JSON; `None` for a value Kubernetes JSON leaves out (a zero Time).
pub fn message(msg: &DynamicMessage) -> Result<Option<Value>, String> {
    let name = msg.descriptor().full_name().to_owned();
    let special = match name.strip_prefix("k8s.io.apimachinery.pkg.") {
        Some("util.intstr.IntOrString") => Some(int_or_string(msg)),
        Some("api.resource.Quantity") => Some(Some(json!(string(msg, "string")))),
        Some("apis.meta.v1.Time") => Some(time(msg, false)),
        Some("apis.meta.v1.MicroTime") => Some(time(msg, true)),
        Some("apis.meta.v1.Duration") => Some(Some(json!(go_duration(int(msg, "duration"))))),
        Some("runtime.RawExtension") | Some("apis.meta.v1.FieldsV1") => {
            let field = if name.ends_with("FieldsV1") {
                "Raw"
            } else {
                "raw"
            };
            return raw_json(msg, field);
        }
        Some("apis.meta.v1.Verbs") => Some(Some(items(msg))),
        _ if name.ends_with(".v1.ExtraValue") => Some(Some(items(msg))),
        _ => None,
    };
    if let Some(v) = special {
        return Ok(v);
    }
    let mut out = Map::new();
    for (field, value) in msg.fields() {
        match field_value(&name, &field, value)? {
            Some(Value::Object(fields)) if schema::is_inline(&name, field.name()) => {
                out.extend(fields)
            }
            Some(v) => {
                out.insert(field.name().to_owned(), v);
            }
            None => {}
        }
    }
    Ok(Some(Value::Object(out)))
}

fn field_value(
    message_name: &str,
    field: &FieldDescriptor,
    value: &Pb,
) -> Result<Option<Value>, String> {
    Ok(match value {
        Pb::List(items) => {
            let items = items.iter().map(element).collect::<Result<Vec<_>, _>>()?;
            (!items.is_empty()).then(|| Value::Array(items))
        }
        Pb::Map(entries) => {
            // Sorted by key, as Go writes maps.
            let mut sorted: Vec<_> = entries.iter().map(|(k, v)| (map_key(k), v)).collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in sorted {
                out.insert(k, element(v)?);
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        // An IntOrString or a Quantity is zero as its JSON is (the real server defaults a
        // zero `targetPort` as an unset one).
        Pb::Message(m) if is_scalar_like(m) => {
            message(m)?.filter(|v| !is_zero(v) || schema::is_pointer(message_name, field.name()))
        }
        Pb::Message(m) => message(m)?,
        scalar => {
            let v = self::scalar(scalar);
            (!is_zero(&v) || schema::is_pointer(message_name, field.name())).then_some(v)
        }
    })
}

fn is_scalar_like(msg: &DynamicMessage) -> bool {
    matches!(
        msg.descriptor().full_name(),
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
            | "k8s.io.apimachinery.pkg.api.resource.Quantity"
    )
}

fn is_zero(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.is_empty())
        || *v == json!(0)
        || *v == json!(0.0)
        || *v == json!(false)
}

/// A list or map element: kept whatever its value (a zero Time in a list is still null).
fn element(value: &Pb) -> Result<Value, String> {
    Ok(match value {
        Pb::Message(m) => message(m)?.unwrap_or(Value::Null),
        scalar => self::scalar(scalar),
    })
}

fn scalar(value: &Pb) -> Value {
    match value {
        Pb::Bool(b) => json!(b),
        Pb::I32(n) | Pb::EnumNumber(n) => json!(n),
        Pb::I64(n) => json!(n),
        Pb::U32(n) => json!(n),
        Pb::U64(n) => json!(n),
        Pb::F32(n) => json!(n),
        Pb::F64(n) => json!(n),
        Pb::String(s) => json!(s),
        // []byte is base64 in Go's JSON too (Secret data).
        Pb::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Pb::Message(_) | Pb::List(_) | Pb::Map(_) => Value::Null,
    }
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::String(s) => s.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

fn get(msg: &DynamicMessage, field: &str) -> Option<Pb> {
    msg.get_field_by_name(field).map(|v| v.into_owned())
}

fn string(msg: &DynamicMessage, field: &str) -> String {
    match get(msg, field) {
        Some(Pb::String(s)) => s,
        _ => String::new(),
    }
}

fn int(msg: &DynamicMessage, field: &str) -> i64 {
    match get(msg, field) {
        Some(Pb::I64(n)) => n,
        Some(Pb::I32(n)) => n.into(),
        _ => 0,
    }
}

/// IntOrString: `type` 0 is the int, 1 the string.
fn int_or_string(msg: &DynamicMessage) -> Option<Value> {
    Some(if int(msg, "type") == 1 {
        json!(string(msg, "strVal"))
    } else {
        json!(int(msg, "intVal"))
    })
}

/// Time as RFC 3339 in seconds, MicroTime in microseconds, both UTC; the zero time is left
/// out (Go writes it as null).
fn time(msg: &DynamicMessage, micro: bool) -> Option<Value> {
    let (seconds, nanos) = (int(msg, "seconds"), int(msg, "nanos"));
    if seconds == 0 && nanos == 0 {
        return None;
    }
    let t = jiff::Timestamp::from_second(seconds).ok()?;
    let mut text = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micro {
        text.push_str(&format!(".{:06}", nanos / 1000));
    }
    text.push('Z');
    Some(json!(text))
}

/// The JSON held in a RawExtension or FieldsV1 (protobuf clients fill them with JSON).
fn raw_json(msg: &DynamicMessage, field: &str) -> Result<Option<Value>, String> {
    match get(msg, field) {
        Some(Pb::Bytes(b)) if !b.is_empty() => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("{} does not hold JSON: {e}", msg.descriptor().name())),
        _ => Ok(None),
    }
}

/// The wrappers of a string list (`ExtraValue`, `Verbs`) are the list itself in JSON.
fn items(msg: &DynamicMessage) -> Value {
    match get(msg, "items") {
        Some(Pb::List(items)) => items.iter().map(scalar).collect(),
        _ => json!([]),
    }
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    if n < SECOND {
        let (scale, unit) = match n {
            ..1_000 => (1, "ns"),
            1_000..1_000_000 => (1_000, "µs"),
            _ => (1_000_000, "ms"),
        };
        return format!("{sign}{}{unit}", decimal(n, scale));
    }
    let (hours, minutes) = (n / (3600 * SECOND), n / (60 * SECOND) % 60);
    let seconds = decimal(n % (60 * SECOND), SECOND);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// `value / scale` with the fraction's trailing zeros dropped.
fn decimal(value: u64, scale: u64) -> String {
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(name: &str, fields: &[(&str, Pb)]) -> DynamicMessage {
        let mut m = DynamicMessage::new(schema::message(name).unwrap());
        for (f, v) in fields {
            m.set_field_by_name(f, v.clone());
        }
        m
    }

    const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";
    const INTSTR: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";

    #[test]
    fn int_or_string_is_a_number_or_a_string() {
        let n = msg(INTSTR, &[("type", Pb::I64(0)), ("intVal", Pb::I32(8080))]);
        assert_eq!(message(&n).unwrap(), Some(json!(8080)));
        let s = msg(
            INTSTR,
            &[("type", Pb::I64(1)), ("strVal", Pb::String("50%".into()))],
        );
        assert_eq!(message(&s).unwrap(), Some(json!("50%")));
    }

    #[test]
    fn quantity_is_its_string() {
        let q = msg(
            "k8s.io.apimachinery.pkg.api.resource.Quantity",
            &[("string", Pb::String("500m".into()))],
        );
        assert_eq!(message(&q).unwrap(), Some(json!("500m")));
    }

    #[test]
    fn times_are_rfc3339_in_utc_and_the_zero_time_is_left_out() {
        let fields = [
            ("seconds", Pb::I64(1_796_310_000)),
            ("nanos", Pb::I32(123_456_789)),
        ];
        let t = msg(&format!("{META}.Time"), &fields);
        assert_eq!(message(&t).unwrap(), Some(json!("2026-12-03T15:00:00Z")));
        let micro = msg(&format!("{META}.MicroTime"), &fields);
        assert_eq!(
            message(&micro).unwrap(),
            Some(json!("2026-12-03T15:00:00.123456Z"))
        );
        assert_eq!(message(&msg(&format!("{META}.Time"), &[])).unwrap(), None);
    }

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(-2_500_000_000), "-2.5s");
        let d = msg(
            &format!("{META}.Duration"),
            &[("duration", Pb::I64(5_000_000_000))],
        );
        assert_eq!(message(&d).unwrap(), Some(json!("5s")));
    }

    #[test]
    fn raw_extensions_hold_json() {
        let name = "k8s.io.apimachinery.pkg.runtime.RawExtension";
        let raw = msg(name, &[("raw", Pb::Bytes(br#"{"a":1}"#.to_vec().into()))]);
        assert_eq!(message(&raw).unwrap(), Some(json!({"a": 1})));
        let bad = msg(name, &[("raw", Pb::Bytes(b"\x01".to_vec().into()))]);
        assert!(message(&bad).is_err());
    }

    #[test]
    fn bytes_are_base64_and_64_bit_integers_numbers() {
        let secret = msg(
            "k8s.io.api.core.v1.Secret",
            &[(
                "data",
                Pb::Map([(MapKey::String("p".into()), Pb::Bytes(b"q".to_vec().into()))].into()),
            )],
        );
        assert_eq!(
            message(&secret).unwrap(),
            Some(json!({"data": {"p": "cQ=="}}))
        );
        let spec = msg(
            "k8s.io.api.core.v1.PodSpec",
            &[("terminationGracePeriodSeconds", Pb::I64(30))],
        );
        assert_eq!(
            message(&spec).unwrap(),
            Some(json!({"terminationGracePeriodSeconds": 30}))
        );
    }

    #[test]
    fn zero_scalars_are_kept_only_for_pointer_fields() {
        let spec = msg(
            "k8s.io.api.apps.v1.DeploymentSpec",
            &[("replicas", Pb::I32(0)), ("minReadySeconds", Pb::I32(0))],
        );
        assert_eq!(message(&spec).unwrap(), Some(json!({"replicas": 0})));
        let port = msg(
            "k8s.io.api.core.v1.ContainerPort",
            &[
                ("name", Pb::String(String::new())),
                ("containerPort", Pb::I32(80)),
            ],
        );
        assert_eq!(message(&port).unwrap(), Some(json!({"containerPort": 80})));
    }

    #[test]
    fn a_zero_int_or_string_is_unset_unless_a_pointer() {
        let zero = || Pb::Message(msg(INTSTR, &[("type", Pb::I64(0)), ("intVal", Pb::I32(0))]));
        let port = msg(
            "k8s.io.api.core.v1.ServicePort",
            &[("port", Pb::I32(80)), ("targetPort", zero())],
        );
        assert_eq!(message(&port).unwrap(), Some(json!({"port": 80})));
        let spec = msg(
            "k8s.io.api.policy.v1.PodDisruptionBudgetSpec",
            &[("maxUnavailable", zero())],
        );
        assert_eq!(message(&spec).unwrap(), Some(json!({"maxUnavailable": 0})));
    }

    #[test]
    fn embedded_structs_are_inlined() {
        let reference = msg(
            "k8s.io.api.core.v1.LocalObjectReference",
            &[("name", Pb::String("conf".into()))],
        );
        let selector = msg(
            "k8s.io.api.core.v1.ConfigMapKeySelector",
            &[
                ("localObjectReference", Pb::Message(reference)),
                ("key", Pb::String("k".into())),
            ],
        );
        assert_eq!(
            message(&selector).unwrap(),
            Some(json!({"name": "conf", "key": "k"}))
        );
    }

    #[test]
    fn string_list_wrappers_are_lists() {
        let extra = msg(
            "k8s.io.api.authorization.v1.ExtraValue",
            &[("items", Pb::List(vec![Pb::String("a".into())]))],
        );
        assert_eq!(message(&extra).unwrap(), Some(json!(["a"])));
    }
}
