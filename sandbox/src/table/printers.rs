//! Shared pieces of the built-in printers and the (group, kind) dispatch.
//!
//! The printers mirror `k8s.io/kubernetes/pkg/printers/internalversion`, which is what a real
//! apiserver uses to answer `kubectl get`. The server always renders the wide columns; kubectl
//! hides `priority > 0` ones unless `-o wide`.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{PrinterColumn, platform, resources, workloads};
use crate::selector::from_label_selector_json;

/// `ObjectMeta.name`'s API documentation, which the apiserver uses as the column description.
pub(super) const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// `ObjectMeta.creationTimestamp`'s API documentation.
pub(super) const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// Columns and a row renderer for one built-in kind.
pub(super) struct Printer {
    pub(super) columns: Vec<PrinterColumn>,
    pub(super) cells: fn(&Value, Timestamp) -> Vec<Value>,
}

/// The printer for a built-in kind, or `None` for kinds printed generically.
pub(super) fn builtin(group: &str, kind: &str) -> Option<Printer> {
    let printer = match (group, kind) {
        ("", "Pod") => workloads::pod(),
        ("apps" | "extensions", "Deployment") => workloads::deployment(),
        ("apps" | "extensions", "ReplicaSet") => workloads::replica_set(),
        ("apps", "StatefulSet") => workloads::stateful_set(),
        ("apps" | "extensions", "DaemonSet") => workloads::daemon_set(),
        ("batch", "Job") => workloads::job(),
        ("batch", "CronJob") => platform::cron_job(),
        ("", "ReplicationController") => platform::replication_controller(),
        ("storage.k8s.io", "StorageClass") => platform::storage_class(),
        ("", "PersistentVolume") => platform::persistent_volume(),
        ("policy", "PodDisruptionBudget") => platform::pod_disruption_budget(),
        ("networking.k8s.io", "NetworkPolicy") => platform::network_policy(),
        ("discovery.k8s.io", "EndpointSlice") => platform::endpoint_slice(),
        ("coordination.k8s.io", "Lease") => platform::lease(),
        ("apiregistration.k8s.io", "APIService") => platform::api_service(),
        ("", "Service") => resources::service(),
        ("networking.k8s.io" | "extensions", "Ingress") => resources::ingress(),
        ("", "Namespace") => resources::namespace(),
        ("", "Node") => resources::node(),
        ("", "ConfigMap") => resources::config_map(),
        ("", "Secret") => resources::secret(),
        ("", "ServiceAccount") => resources::service_account(),
        ("", "PersistentVolumeClaim") => resources::persistent_volume_claim(),
        ("" | "events.k8s.io", "Event") => resources::event(),
        ("autoscaling", "HorizontalPodAutoscaler") => resources::horizontal_pod_autoscaler(),
        ("", "Endpoints") => resources::endpoints(),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            resources::custom_resource_definition()
        }
        _ => return None,
    };
    Some(printer)
}

/// Builds column definitions from `(name, type, priority, description)`; the column called
/// "Name" gets the `name` format kubectl uses to find the object name, "Age" gets its
/// standard description.
pub(super) fn columns(defs: &[(&str, &str, i32, &str)]) -> Vec<PrinterColumn> {
    defs.iter()
        .map(|&(name, type_, priority, description)| {
            let description = match name {
                "Name" => NAME_DESCRIPTION,
                "Age" => AGE_DESCRIPTION,
                _ => description,
            };
            PrinterColumn {
                name: name.to_string(),
                type_: type_.to_string(),
                format: if name == "Name" { "name" } else { "" }.to_string(),
                description: description.to_string(),
                priority,
                json_path: String::new(),
            }
        })
        .collect()
}

/// The value at `path`, treating JSON `null` as absent.
pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |cur, key| cur.get(*key))
        .filter(|v| !v.is_null())
}

/// The string at `path`, or `""` (Go's zero value, which the printers rely on).
pub(super) fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `path`, or 0.
pub(super) fn int(v: &Value, path: &[&str]) -> i64 {
    at(v, path).map(as_int).unwrap_or(0)
}

pub(super) fn as_int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or(0)
}

/// The array at `path`, or an empty slice.
pub(super) fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object at `path`, if any.
pub(super) fn object<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    at(v, path).and_then(Value::as_object)
}

pub(super) fn name_cell(obj: &Value) -> Value {
    Value::from(text(obj, &["metadata", "name"]))
}

pub(super) fn age_cell(obj: &Value, now: Timestamp) -> Value {
    Value::from(since(text(obj, &["metadata", "creationTimestamp"]), now))
}

pub(super) fn parse_time(ts: &str) -> Option<Timestamp> {
    ts.parse().ok()
}

/// kubectl's `translateTimestampSince`: a human duration, or `<unknown>` for a missing time.
pub(super) fn since(ts: &str, now: Timestamp) -> String {
    match parse_time(ts) {
        Some(t) => super::human_duration(now.duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

pub(super) fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

/// `labels.FormatLabels`: sorted `k=v` pairs, or `<none>`.
pub(super) fn format_labels(map: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    or_none(pairs.join(","))
}

/// The desired replica count, defaulting to 1 as the apiserver does for workloads.
pub(super) fn replicas(obj: &Value) -> i64 {
    at(obj, &["spec", "replicas"]).map(as_int).unwrap_or(1)
}

/// The "Containers" and "Images" wide cells for a pod template's containers.
pub(super) fn container_cells(containers: &[Value]) -> [Value; 2] {
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    [Value::from(names.join(",")), Value::from(images.join(","))]
}

/// The Deployment "Selector" wide cell: `selector.String()`, `<invalid>` when unparseable.
pub(super) fn selector_cell(obj: &Value, path: &[&str]) -> Value {
    let text = match at(obj, path) {
        None => String::new(),
        Some(v) => from_label_selector_json(v)
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "<invalid>".to_string()),
    };
    Value::from(text)
}

/// `metav1.FormatLabelSelector`, which the other workload printers use: like
/// [`selector_cell`] but `<none>` when empty and `<error>` when unparseable.
pub(super) fn formatted_selector_cell(obj: &Value, path: &[&str]) -> Value {
    let text = match at(obj, path).map(from_label_selector_json) {
        None => String::new(),
        Some(Ok(s)) => s.to_string(),
        Some(Err(_)) => "<error>".to_string(),
    };
    Value::from(or_none(text))
}

/// Whether `conditions` (at `path`) has `type_` with status `True`.
pub(super) fn condition_true(obj: &Value, path: &[&str], type_: &str) -> bool {
    list(obj, path)
        .iter()
        .any(|c| text(c, &["type"]) == type_ && text(c, &["status"]) == "True")
}

/// A quantity (string or number in JSON) as printed; `0` when unset, like Go's zero Quantity.
pub(super) fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}

/// The addresses in a `loadBalancer.ingress` list: IP, else hostname; sorted and de-duplicated.
pub(super) fn load_balancer_addresses(obj: &Value) -> String {
    let mut addrs: Vec<&str> = list(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .map(|i| match text(i, &["ip"]) {
            "" => text(i, &["hostname"]),
            ip => ip,
        })
        .filter(|a| !a.is_empty())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs.join(",")
}
