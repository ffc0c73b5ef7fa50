//! What the API server does to some kinds when they are written, beyond field defaults (see
//! [`crate::defaults`], applied before): cluster IPs, node ports, namespace finalizers, generated
//! Job selectors, CRD status, and the checks that go with them.

mod storage;
mod workloads;

pub use storage::{DEFAULT_CLASS_ANNOTATION, default_class};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::registry::{Resource, resources_of_crd};
use crate::store::Tx;

pub fn on_create(tx: &mut Tx, res: &Resource, obj: &mut Value) -> ApiResult<()> {
    match res.key().as_str() {
        "/namespaces" => namespace(obj),
        "/services" => service(tx, None, obj),
        "/secrets" => secret(obj),
        "/pods" => pod(obj),
        "/persistentvolumeclaims" => storage::claim(tx, obj),
        "/persistentvolumes" => storage::volume(obj, true),
        "storage.k8s.io/storageclasses" => storage::class(obj),
        "networking.k8s.io/networkpolicies" => network_policy(obj),
        "apps/daemonsets" => workloads::daemon_set(obj),
        "batch/cronjobs" => workloads::cron_job(obj),
        "/replicationcontrollers" => workloads::replication_controller(obj),
        "apps/deployments" => deployment(obj),
        "apps/statefulsets" => require_selector_matches("StatefulSet", obj),
        "batch/jobs" => job(obj),
        "apiextensions.k8s.io/customresourcedefinitions" => crd(tx, obj),
        _ => Ok(()),
    }
}

pub fn on_update(tx: &mut Tx, res: &Resource, old: &Value, new: &mut Value) -> ApiResult<()> {
    match res.key().as_str() {
        "/namespaces" => {
            namespace_label(new);
            Ok(())
        }
        "/services" => service(tx, Some(old), new),
        "/secrets" => secret(new),
        "apps/deployments" => deployment(new),
        "/persistentvolumes" => storage::volume(new, false),
        "storage.k8s.io/storageclasses" => storage::class(new),
        "networking.k8s.io/networkpolicies" => network_policy(new),
        "apps/daemonsets" => workloads::daemon_set(new),
        "batch/cronjobs" => workloads::cron_job(new),
        "/replicationcontrollers" => workloads::replication_controller(new),
        "apps/statefulsets" => require_selector_matches("StatefulSet", new),
        "apiextensions.k8s.io/customresourcedefinitions" => crd(tx, new),
        _ => Ok(()),
    }
}

/// Sets `obj[field]` when absent.
pub(super) fn default(obj: &mut Value, field: &str, value: Value) {
    if obj.get(field).is_none_or(Value::is_null) && obj.is_object() {
        obj[field] = value;
    }
}

/// On create: active, with the name label. `spec.finalizers` is the strategy's.
fn namespace(obj: &mut Value) -> ApiResult<()> {
    namespace_label(obj);
    obj["status"] = json!({"phase": "Active"});
    Ok(())
}

/// The label every namespace carries, set again on each write as the apiserver's defaulting does.
fn namespace_label(obj: &mut Value) {
    let name = obj["metadata"]["name"].clone();
    if !obj["metadata"]["labels"].is_object() {
        obj["metadata"]["labels"] = json!({});
    }
    obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
}

/// Allocates a service's cluster IP and node ports (its defaults already set).
fn service(tx: &Tx, old: Option<&Value>, obj: &mut Value) -> ApiResult<()> {
    if !obj["spec"].is_object() {
        return Ok(());
    }
    if let Some(old) = old {
        crate::defaults::service::drop_type_dependent(old, obj);
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let spec = &mut obj["spec"];
    // An ExternalName service is a DNS alias: no address, no ports on the node.
    if spec["type"] == "ExternalName" {
        if let Some(map) = spec.as_object_mut() {
            map.remove("clusterIP");
            map.remove("clusterIPs");
        }
    } else {
        cluster_ip(tx, old, &ns, &name, spec);
    }
    let key = crate::store::ObjKey::new("/services", ns.as_str(), name.as_str());
    let causes = crate::defaults::node_ports::assign(tx, &key, old, obj);
    if !causes.is_empty() {
        let causes: Vec<(String, String)> =
            causes.into_iter().map(|c| (c.field, c.message)).collect();
        return Err(ApiError::invalid("Service", "", &name, &causes));
    }
    Ok(())
}

fn cluster_ip(tx: &Tx, old: Option<&Value>, ns: &str, name: &str, spec: &mut Value) {
    // An update keeps what was allocated, as a real server refuses to change it.
    if let Some(old_ip) = old.and_then(|o| o["spec"]["clusterIP"].as_str()) {
        default(spec, "clusterIP", json!(old_ip));
    }
    if spec["clusterIP"].as_str().is_none_or(str::is_empty) {
        spec["clusterIP"] = json!(allocate_cluster_ip(tx, ns, name));
    }
    let ip = spec["clusterIP"].clone();
    spec["clusterIPs"] = json!([ip]);
}

/// A stable, unused address in 10.43.0.0/16 (k3s's service range).
fn allocate_cluster_ip(tx: &Tx, ns: &str, name: &str) -> String {
    let used: std::collections::HashSet<String> = tx
        .state()
        .list("/services", None)
        .filter_map(|(_, s)| s["spec"]["clusterIP"].as_str().map(String::from))
        .collect();
    let mut seed = fnv(&format!("{ns}/{name}"));
    loop {
        let host = (seed % 65_000) as u32 + 10;
        let ip = format!("10.43.{}.{}", host / 256, host % 256);
        if !used.contains(&ip) {
            return ip;
        }
        seed = seed.wrapping_mul(31).wrapping_add(7);
    }
}

/// A small stable hash for deterministic allocations.
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Folds `stringData` into base64 `data`, as the API server does.
fn secret(obj: &mut Value) -> ApiResult<()> {
    default(obj, "type", json!("Opaque"));
    if let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    Ok(())
}

fn pod(obj: &mut Value) -> ApiResult<()> {
    if obj["spec"]["containers"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        return Err(ApiError::invalid(
            "Pod",
            "",
            &name,
            &[("spec.containers".into(), "Required value".into())],
        ));
    }
    let qos = crate::defaults::pod::qos_class(&obj["spec"]);
    obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    Ok(())
}

/// A Deployment's selector, and a strategy that says one thing: the defaults give a
/// RollingUpdate strategy its bounds, so a client that switches to Recreate must drop them
/// (`rollingUpdate: null`), as a real server insists.
fn deployment(obj: &Value) -> ApiResult<()> {
    require_selector_matches("Deployment", obj)?;
    let strategy = &obj["spec"]["strategy"];
    if strategy["type"] == "Recreate" && !strategy["rollingUpdate"].is_null() {
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        return Err(ApiError::invalid(
            "Deployment",
            "apps",
            name,
            &[(
                "spec.strategy.rollingUpdate".into(),
                "Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
            )],
        ));
    }
    Ok(())
}

pub(super) fn require_selector_matches(kind: &str, obj: &Value) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let selector = &obj["spec"]["selector"];
    if !selector.is_object() {
        return Err(ApiError::invalid(
            kind,
            "apps",
            name,
            &[("spec.selector".into(), "Required value".into())],
        ));
    }
    let labels = obj["spec"]["template"]["metadata"]["labels"].as_object();
    let matches = crate::selector::from_label_selector_json(selector)
        .map(|s| !s.is_empty() && s.matches(labels))
        .unwrap_or(false);
    if !matches {
        return Err(ApiError::invalid(
            kind,
            "apps",
            name,
            &[(
                "spec.template.metadata.labels".into(),
                "Invalid value: selector does not match template labels".into(),
            )],
        ));
    }
    Ok(())
}

/// Jobs get the controller-uid selector and labels a real server adds.
fn job(obj: &mut Value) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
    // The pod defaults made an absent policy `Always`, which a Job cannot use.
    let restart = &obj["spec"]["template"]["spec"]["restartPolicy"];
    if !matches!(restart.as_str(), Some("Never" | "OnFailure")) {
        let value = crate::validation::go_quote(restart.as_str().unwrap_or(""));
        return Err(ApiError::invalid(
            "Job",
            "batch",
            &name,
            &[(
                "spec.template.spec.restartPolicy".into(),
                format!("Unsupported value: {value}: supported values: \"OnFailure\", \"Never\""),
            )],
        ));
    }
    let spec = &mut obj["spec"];
    let labels = json!({
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    });
    if !spec["selector"].is_object() {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    }
    let template_labels = &mut spec["template"]["metadata"]["labels"];
    if !template_labels.is_object() {
        *template_labels = Value::Object(Map::new());
    }
    if let (Some(target), Some(extra)) = (template_labels.as_object_mut(), labels.as_object()) {
        for (k, v) in extra {
            target.insert(k.clone(), v.clone());
        }
    }
    // `SetDefaults_Job` gives a Job without labels its template's; a real server runs it again
    // on reading from etcd, after the ones above were added, so those show on the Job too.
    let own = &obj["metadata"]["labels"];
    if own.as_object().is_none_or(|l| l.is_empty()) {
        obj["metadata"]["labels"] = obj["spec"]["template"]["metadata"]["labels"].clone();
    }
    Ok(())
}

/// A CRD is accepted at once: its names are checked and it is marked Established.
fn crd(tx: &Tx, obj: &mut Value) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let group = obj["spec"]["group"].as_str().unwrap_or("");
    let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or("");
    let invalid = |field: &str, msg: &str| {
        ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            &name,
            &[(field.to_string(), msg.to_string())],
        )
    };
    if group.is_empty() || plural.is_empty() || obj["spec"]["names"]["kind"].as_str().is_none() {
        return Err(invalid(
            "spec",
            "Required value: spec.group, spec.names.plural and spec.names.kind are required",
        ));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name",
            &format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if resources_of_crd(obj).is_empty() {
        return Err(invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let builtin_clash = tx
        .state()
        .registry
        .all()
        .any(|r| !r.custom && r.group == group);
    if builtin_clash {
        return Err(invalid(
            "spec.group",
            "Invalid value: the group is served by the API server itself",
        ));
    }
    let versions: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|v| v["storage"].as_bool().unwrap_or(false))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let now = crate::ops::now();
    obj["status"] = json!({
        "acceptedNames": obj["spec"]["names"].clone(),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": versions,
    });
    Ok(())
}

/// `policyTypes` defaults to Ingress, plus Egress when egress rules are given.
pub fn network_policy(obj: &mut Value) -> ApiResult<()> {
    let spec = &mut obj["spec"];
    if !spec.is_object()
        || spec["policyTypes"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    {
        return Ok(());
    }
    let mut types = vec![json!("Ingress")];
    if spec["egress"].as_array().is_some_and(|e| !e.is_empty()) {
        types.push(json!("Egress"));
    }
    spec["policyTypes"] = json!(types);
    Ok(())
}
