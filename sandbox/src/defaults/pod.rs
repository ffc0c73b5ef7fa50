//! Pod specs, wherever they appear (a Pod, or the template of a workload), and their
//! containers, volumes and probes: `SetDefaults_PodSpec`, `SetDefaults_Container` and friends.
//!
//! What only a Pod gets ([`pod`]) is kept apart from what every pod spec gets ([`spec`]), as
//! the real server does: a Deployment's template never shows `enableServiceLinks`.

use serde_json::{Value, json};

use super::{each, set, within};

/// The mode of secret, config map, downward API and projected volumes: 0644.
const VOLUME_MODE: i64 = 0o644;

/// A Pod: its spec, plus what the server adds to pods only (defaulting and the admission
/// plugins every cluster runs: service account, priority, default toleration seconds).
pub fn pod(obj: &mut Value) {
    let pod_spec = &mut obj["spec"];
    if !pod_spec.is_object() {
        return;
    }
    spec(pod_spec);
    set(pod_spec, "enableServiceLinks", json!(true));
    // Requests default to limits, on a Pod only (not in templates), so that a container with
    // limits alone is Guaranteed.
    for field in ["containers", "initContainers"] {
        each(pod_spec, field, requests_from_limits);
    }
    if pod_spec["hostNetwork"].as_bool() == Some(true) {
        for field in ["containers", "initContainers"] {
            each(pod_spec, field, |c| {
                each(c, "ports", |p| {
                    let port = p["containerPort"].clone();
                    set(p, "hostPort", port);
                })
            });
        }
    }
    // The ServiceAccount admission plugin; `serviceAccount` is the deprecated mirror v1 keeps
    // in step (and reads from, when a client only sets the old field).
    let legacy = pod_spec["serviceAccount"].clone();
    if legacy.as_str().is_some_and(|a| !a.is_empty()) {
        set(pod_spec, "serviceAccountName", legacy);
    }
    set(pod_spec, "serviceAccountName", json!("default"));
    let account = pod_spec["serviceAccountName"].clone();
    set(pod_spec, "serviceAccount", account);
    // The Priority admission plugin, with no PriorityClass in the cluster.
    set(pod_spec, "priority", json!(0));
    set(pod_spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    default_tolerations(pod_spec);
}

/// The DefaultTolerationSeconds admission plugin: a pod stays 300s on a node that is not ready
/// or unreachable, unless it says otherwise.
fn default_tolerations(spec: &mut Value) {
    set(spec, "tolerations", json!([]));
    let Some(tolerations) = spec["tolerations"].as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        // An empty key tolerates every taint, an empty effect every effect.
        let tolerated = tolerations.iter().any(|t| {
            t["key"].as_str().is_none_or(|k| k.is_empty() || k == key)
                && t["effect"]
                    .as_str()
                    .is_none_or(|e| e.is_empty() || e == "NoExecute")
        });
        if !tolerated {
            tolerations.push(json!({
                "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300,
            }));
        }
    }
}

fn requests_from_limits(container: &mut Value) {
    let Some(limits) = container["resources"]["limits"].as_object().cloned() else {
        return;
    };
    let requests = &mut container["resources"]["requests"];
    if !requests.is_object() {
        *requests = json!({});
    }
    for (resource, quantity) in limits {
        set(requests, &resource, quantity);
    }
}

/// The QoS class a pod's status shows, from its containers' resources (after defaulting, so
/// limits alone make a pod Guaranteed): `Guaranteed` when every container limits CPU and memory
/// and requests as much, `BestEffort` when none asks for either, `Burstable` otherwise.
/// Quantities are compared as written: `1` and `1000m` count as different.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| spec[*f].as_array())
        .flatten()
        .collect();
    let compute = ["cpu", "memory"];
    let any = containers.iter().any(|c| {
        compute.iter().any(|r| {
            !c["resources"]["requests"][r].is_null() || !c["resources"]["limits"][r].is_null()
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        compute.iter().all(|r| {
            let limit = &c["resources"]["limits"][r];
            !limit.is_null() && c["resources"]["requests"][r] == *limit
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A pod template (`spec.template` of a workload).
pub fn template(template: &mut Value) {
    within(template, "spec", spec);
}

/// Every pod spec: `SetDefaults_PodSpec` and what it contains.
pub fn spec(spec: &mut Value) {
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "securityContext", json!({}));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "schedulerName", json!("default-scheduler"));
    for field in ["containers", "initContainers", "ephemeralContainers"] {
        each(spec, field, container);
    }
    each(spec, "volumes", volume);
}

/// `SetDefaults_Container`, its ports, environment, probes and lifecycle hooks.
pub fn container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    let policy = pull_policy(c["image"].as_str().unwrap_or(""));
    set(c, "imagePullPolicy", json!(policy));
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    // Not a default but what a real server always prints: `resources` is a struct, not a
    // pointer, in the Go types, so an empty one is serialized as `{}`.
    set(c, "resources", json!({}));
    each(c, "ports", |p| set(p, "protocol", json!("TCP")));
    each(c, "env", |e| {
        within(e, "valueFrom", |from| {
            within(from, "fieldRef", |r| set(r, "apiVersion", json!("v1")))
        })
    });
    for probe_field in ["livenessProbe", "readinessProbe", "startupProbe"] {
        within(c, probe_field, probe);
    }
    within(c, "lifecycle", |hooks| {
        for hook in ["postStart", "preStop"] {
            within(hooks, hook, |h| within(h, "httpGet", http_get));
        }
    });
}

/// `Always` for `:latest` or no tag (and no digest), `IfNotPresent` otherwise, as the server
/// reads the tag off the last path segment of the reference (a registry port is not a tag).
pub fn pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, tag)| tag);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn probe(p: &mut Value) {
    set(p, "timeoutSeconds", json!(1));
    set(p, "periodSeconds", json!(10));
    set(p, "successThreshold", json!(1));
    set(p, "failureThreshold", json!(3));
    within(p, "httpGet", http_get);
    within(p, "grpc", |g| set(g, "service", json!("")));
}

fn http_get(action: &mut Value) {
    set(action, "path", json!("/"));
    set(action, "scheme", json!("HTTP"));
}

/// `SetDefaults_Volume` and the defaults of each volume source.
fn volume(v: &mut Value) {
    let Some(map) = v.as_object() else {
        return;
    };
    if map.keys().all(|k| k == "name") {
        set(v, "emptyDir", json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        within(v, source, |s| set(s, "defaultMode", json!(VOLUME_MODE)));
    }
    within(v, "hostPath", |h| set(h, "type", json!("")));
    within(v, "projected", |p| {
        each(p, "sources", |s| {
            within(s, "serviceAccountToken", |t| {
                set(t, "expirationSeconds", json!(3600))
            })
        })
    });
    within(v, "ephemeral", |e| {
        within(e, "volumeClaimTemplate", |t| within(t, "spec", claim_spec))
    });
}

/// `SetDefaults_PersistentVolumeClaimSpec`: a claim is for a filesystem unless it says block.
pub fn claim_spec(spec: &mut Value) {
    set(spec, "volumeMode", json!("Filesystem"));
}
