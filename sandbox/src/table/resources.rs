//! Printers for networking, configuration, storage and other non-workload kinds.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::printers::{
    Printer, age_cell, as_int, at, columns, format_labels, int, list, load_balancer_addresses,
    name_cell, object, or_none, parse_time, quantity, since, text,
};

pub(super) fn service() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Type",
                "string",
                0,
                "type determines how the Service is exposed. Defaults to ClusterIP.",
            ),
            (
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            (
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            (
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            ("Age", "string", 0, ""),
            (
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ]),
        cells: |svc, now| {
            vec![
                name_cell(svc),
                Value::from(service_type(svc)),
                Value::from(cluster_ip(svc)),
                Value::from(external_ip(svc)),
                Value::from(or_none(service_ports(svc))),
                age_cell(svc, now),
                Value::from(format_labels(object(svc, &["spec", "selector"]))),
            ]
        },
    }
}

/// The service type, defaulted as the apiserver would have on create.
fn service_type(svc: &Value) -> &str {
    match text(svc, &["spec", "type"]) {
        "" => "ClusterIP",
        t => t,
    }
}

fn cluster_ip(svc: &Value) -> String {
    let ip = match list(svc, &["spec", "clusterIPs"]).first() {
        Some(first) => first.as_str().unwrap_or(""),
        None => text(svc, &["spec", "clusterIP"]),
    };
    or_none(ip.to_string())
}

fn external_ip(svc: &Value) -> String {
    let external: Vec<&str> = list(svc, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type(svc) {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(svc);
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `80/TCP,443:30443/TCP`: port, node port when allocated, protocol (default TCP).
fn service_ports(svc: &Value) -> String {
    list(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let protocol = match text(p, &["protocol"]) {
                "" => "TCP",
                proto => proto,
            };
            match int(p, &["nodePort"]) {
                n if n > 0 => format!("{}:{n}/{protocol}", int(p, &["port"])),
                _ => format!("{}/{protocol}", int(p, &["port"])),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn ingress() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Class",
                "string",
                0,
                "The name of the IngressClass resource used by this Ingress.",
            ),
            (
                "Hosts",
                "string",
                0,
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            (
                "Address",
                "string",
                0,
                "Address is a list containing ingress points for the load-balancer",
            ),
            (
                "Ports",
                "string",
                0,
                "Ports of TLS configurations that open",
            ),
            ("Age", "string", 0, ""),
        ]),
        cells: |ing, now| {
            let class = match text(ing, &["spec", "ingressClassName"]) {
                "" => "<none>",
                c => c,
            };
            let ports = if list(ing, &["spec", "tls"]).is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                name_cell(ing),
                Value::from(class),
                Value::from(ingress_hosts(ing)),
                Value::from(load_balancer_addresses(ing)),
                Value::from(ports),
                age_cell(ing, now),
            ]
        },
    }
}

/// Up to three rule hosts, `*` when none is set, then `+ N more...` (N counts rules, as
/// kubectl does).
fn ingress_hosts(ing: &Value) -> String {
    const MAX: usize = 3;
    let rules = list(ing, &["spec", "rules"]);
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = text(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    let joined = hosts.join(",");
    if more {
        format!("{joined} + {} more...", rules.len().saturating_sub(MAX))
    } else {
        joined
    }
}

pub(super) fn namespace() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Status", "string", 0, "The status of the namespace"),
            ("Age", "string", 0, ""),
        ]),
        cells: |ns, now| {
            // The apiserver sets the phase itself; derive it when the store has not.
            let phase = match text(ns, &["status", "phase"]) {
                "" if at(ns, &["metadata", "deletionTimestamp"]).is_some() => "Terminating",
                "" => "Active",
                p => p,
            };
            vec![name_cell(ns), Value::from(phase), age_cell(ns, now)]
        },
    }
}

/// `kubectl get nodes`: readiness from the Ready condition, roles from the
/// `node-role.kubernetes.io/<role>` labels, the kubelet's version; with `-o wide` the addresses
/// and what `nodeInfo` says of the machine.
pub(super) fn node() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Status", "string", 0, "The status of the node"),
            ("Roles", "string", 0, "The roles of the node"),
            ("Age", "string", 0, ""),
            (
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            (
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            (
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            (
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            (
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            (
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ]),
        cells: |node, now| {
            let ready = at(node, &["status", "conditions"])
                .and_then(Value::as_array)
                .and_then(|all| all.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"] == "True");
            let status = match ready {
                Some(true) => "Ready",
                _ => "NotReady",
            };
            let roles: Vec<&str> = object(node, &["metadata", "labels"])
                .map(|labels| {
                    labels
                        .keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect()
                })
                .unwrap_or_default();
            let roles = if roles.is_empty() {
                "<none>".to_string()
            } else {
                roles.join(",")
            };
            vec![
                name_cell(node),
                Value::from(status),
                Value::from(roles),
                age_cell(node, now),
                Value::from(text(node, &["status", "nodeInfo", "kubeletVersion"])),
                Value::from(node_address(node, "InternalIP")),
                Value::from(node_address(node, "ExternalIP")),
                Value::from(or_unknown(text(node, &["status", "nodeInfo", "osImage"]))),
                Value::from(or_unknown(text(
                    node,
                    &["status", "nodeInfo", "kernelVersion"],
                ))),
                Value::from(or_unknown(text(
                    node,
                    &["status", "nodeInfo", "containerRuntimeVersion"],
                ))),
            ]
        },
    }
}

/// The node's first address of `kind`, `<none>` without one (as kubectl prints it).
fn node_address(node: &Value, kind: &str) -> String {
    at(node, &["status", "addresses"])
        .and_then(Value::as_array)
        .and_then(|all| all.iter().find(|a| a["type"] == kind))
        .and_then(|a| a["address"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

/// What kubectl prints for a `nodeInfo` field a node leaves empty.
fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "<unknown>" } else { s }
}

fn key_count(obj: &Value, fields: &[&str]) -> i64 {
    let keys: BTreeSet<&String> = fields
        .iter()
        .filter_map(|f| object(obj, &[f]))
        .flat_map(|m| m.keys())
        .collect();
    i64::try_from(keys.len()).unwrap_or(i64::MAX)
}

pub(super) fn config_map() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Data", "string", 0, "Data contains the configuration data."),
            ("Age", "string", 0, ""),
        ]),
        cells: |cm, now| {
            vec![
                name_cell(cm),
                Value::from(key_count(cm, &["data", "binaryData"])),
                age_cell(cm, now),
            ]
        },
    }
}

pub(super) fn secret() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Type",
                "string",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            ("Data", "string", 0, "Data contains the secret data."),
            ("Age", "string", 0, ""),
        ]),
        cells: |secret, now| {
            let type_ = match text(secret, &["type"]) {
                "" => "Opaque",
                t => t,
            };
            // stringData is merged into data on write; count it in case the store kept it apart.
            vec![
                name_cell(secret),
                Value::from(type_),
                Value::from(key_count(secret, &["data", "stringData"])),
                age_cell(secret, now),
            ]
        },
    }
}

pub(super) fn service_account() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Secrets",
                "string",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            ("Age", "string", 0, ""),
        ]),
        cells: |sa, now| {
            let secrets = i64::try_from(list(sa, &["secrets"]).len()).unwrap_or(i64::MAX);
            vec![name_cell(sa), Value::from(secrets), age_cell(sa, now)]
        },
    }
}

pub(super) fn persistent_volume_claim() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Status",
                "string",
                0,
                "phase represents the current phase of PersistentVolumeClaim.",
            ),
            (
                "Volume",
                "string",
                0,
                "volumeName is the binding reference to the PersistentVolume backing this claim.",
            ),
            (
                "Capacity",
                "string",
                0,
                "capacity represents the actual resources of the underlying volume.",
            ),
            (
                "Access Modes",
                "string",
                0,
                "accessModes contains the desired access modes the volume should have.",
            ),
            (
                "StorageClass",
                "string",
                0,
                "storageClassName is the name of the StorageClass required by the claim.",
            ),
            (
                "VolumeAttributesClass",
                "string",
                0,
                "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.",
            ),
            ("Age", "string", 0, ""),
            (
                "VolumeMode",
                "string",
                1,
                "volumeMode defines what type of volume is required by the claim.",
            ),
        ]),
        cells: pvc_cells,
    }
}

fn pvc_cells(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if at(pvc, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else {
        // The apiserver defaults an unset phase to Pending.
        match text(pvc, &["status", "phase"]) {
            "" => "Pending",
            p => p,
        }
    };
    let volume = text(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(at(pvc, &["status", "capacity", "storage"])),
            access_modes(list(pvc, &["status", "accessModes"])),
        )
    };
    let class = match text(
        pvc,
        &[
            "metadata",
            "annotations",
            "volume.beta.kubernetes.io/storage-class",
        ],
    ) {
        "" => text(pvc, &["spec", "storageClassName"]),
        c => c,
    };
    // Unlike most fields these are pointers upstream: only absence reads as `<unset>`.
    let unset = |field: &str| match at(pvc, &["spec", field]) {
        Some(v) => Value::from(v.as_str().unwrap_or("")),
        None => Value::from("<unset>"),
    };
    vec![
        name_cell(pvc),
        Value::from(phase),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        Value::from(class),
        unset("volumeAttributesClassName"),
        age_cell(pvc, now),
        unset("volumeMode"),
    ]
}

/// `RWO,ROX,RWX,RWOP` in that fixed order, like kubectl's GetAccessModesAsString.
pub(super) fn access_modes(modes: &[Value]) -> String {
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.iter().any(|m| m.as_str() == Some(mode)))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

pub(super) fn event() -> Printer {
    Printer {
        columns: columns(&[
            (
                "Last Seen",
                "string",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            (
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future",
            ),
            (
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            (
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            (
                "Subobject",
                "string",
                1,
                "The subobject that this event is about.",
            ),
            (
                "Source",
                "string",
                1,
                "The component reporting this event. Should be a short machine understandable string.",
            ),
            (
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            (
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            ),
            (
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            ("Name", "string", 1, ""),
        ]),
        cells: event_cells,
    }
}

/// Reads the first non-empty string among core/v1 and events.k8s.io/v1 spellings of a field.
fn first_text<'a>(obj: &'a Value, paths: &[&[&str]]) -> &'a str {
    paths
        .iter()
        .map(|p| text(obj, p))
        .find(|s| !s.is_empty())
        .unwrap_or("")
}

fn event_cells(e: &Value, now: Timestamp) -> Vec<Value> {
    let first_ts = first_text(e, &[&["firstTimestamp"], &["deprecatedFirstTimestamp"]]);
    let first = if parse_time(first_ts).is_some() {
        since(first_ts, now)
    } else {
        since(text(e, &["eventTime"]), now)
    };
    let last_ts = first_text(e, &[&["lastTimestamp"], &["deprecatedLastTimestamp"]]);
    let mut last = if parse_time(last_ts).is_some() {
        since(last_ts, now)
    } else {
        first.clone()
    };
    let mut count = at(e, &["count"])
        .or_else(|| at(e, &["deprecatedCount"]))
        .map(as_int)
        .unwrap_or(0);
    if let Some(series) = at(e, &["series"]) {
        last = since(text(series, &["lastObservedTime"]), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        // Singleton events in the new API carry no count.
        count = 1;
    }
    let involved = at(e, &["involvedObject"])
        .or_else(|| at(e, &["regarding"]))
        .unwrap_or(&Value::Null);
    let kind = text(involved, &["kind"]).to_lowercase();
    let target = match text(involved, &["name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let component = first_text(
        e,
        &[
            &["source", "component"],
            &["deprecatedSource", "component"],
            &["reportingComponent"],
            &["reportingController"],
        ],
    );
    let host = first_text(
        e,
        &[
            &["source", "host"],
            &["deprecatedSource", "host"],
            &["reportingInstance"],
        ],
    );
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        Value::from(last),
        Value::from(text(e, &["type"])),
        Value::from(text(e, &["reason"])),
        Value::from(target),
        Value::from(text(involved, &["fieldPath"])),
        Value::from(source),
        Value::from(first_text(e, &[&["message"], &["note"]]).trim()),
        Value::from(first),
        Value::from(count),
        name_cell(e),
    ]
}

pub(super) fn horizontal_pod_autoscaler() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Reference",
                "string",
                0,
                "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource.",
            ),
            (
                "Targets",
                "string",
                0,
                "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).",
            ),
            (
                "MinPods",
                "string",
                0,
                "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
            ),
            (
                "MaxPods",
                "string",
                0,
                "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
            ),
            (
                "Replicas",
                "string",
                0,
                "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
            ),
            ("Age", "string", 0, ""),
        ]),
        cells: |hpa, now| {
            let reference = format!(
                "{}/{}",
                text(hpa, &["spec", "scaleTargetRef", "kind"]),
                text(hpa, &["spec", "scaleTargetRef", "name"])
            );
            // minReplicas defaults to 1 in every autoscaling version.
            let min = at(hpa, &["spec", "minReplicas"]).map(as_int).unwrap_or(1);
            vec![
                name_cell(hpa),
                Value::from(reference),
                Value::from(hpa_targets(hpa)),
                Value::from(min.to_string()),
                Value::from(int(hpa, &["spec", "maxReplicas"])),
                Value::from(int(hpa, &["status", "currentReplicas"])),
                age_cell(hpa, now),
            ]
        },
    }
}

/// The "Targets" cell: `current/target` per metric, at most two, then `+ N more...`.
fn hpa_targets(hpa: &Value) -> String {
    const MAX: usize = 2;
    let specs = list(hpa, &["spec", "metrics"]);
    if specs.is_empty() {
        // autoscaling/v1 keeps one CPU target outside `metrics`; v2 defaults to 80% CPU.
        let current = at(hpa, &["status", "currentCPUUtilizationPercentage"])
            .map(|c| format!("{}%", as_int(c)))
            .unwrap_or_else(|| "<unknown>".to_string());
        let target = at(hpa, &["spec", "targetCPUUtilizationPercentage"])
            .map(as_int)
            .unwrap_or(80);
        return format!("cpu: {current}/{target}%");
    }
    let statuses = list(hpa, &["status", "currentMetrics"]);
    let mut shown: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| hpa_metric(spec, statuses.get(i)))
        .collect();
    if shown.len() > MAX {
        let more = shown.len() - MAX;
        shown.truncate(MAX);
        format!("{} + {more} more...", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    let current = |source: &str, field: &str| -> String {
        status
            .and_then(|s| at(s, &[source, "current", field]))
            .map(|v| quantity(Some(v)))
            .unwrap_or_else(|| "<unknown>".to_string())
    };
    match text(spec, &["type"]) {
        kind @ ("External" | "Object") => {
            let source = if kind == "External" {
                "external"
            } else {
                "object"
            };
            match at(spec, &[source, "target", "averageValue"]) {
                Some(avg) => format!(
                    "{}/{} (avg)",
                    current(source, "averageValue"),
                    quantity(Some(avg))
                ),
                None => format!(
                    "{}/{}",
                    current(source, "value"),
                    quantity(at(spec, &[source, "target", "value"]))
                ),
            }
        }
        "Pods" => format!(
            "{}/{}",
            current("pods", "averageValue"),
            quantity(at(spec, &["pods", "target", "averageValue"]))
        ),
        kind @ ("Resource" | "ContainerResource") => {
            let source = if kind == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let name = text(spec, &[source, "name"]);
            match at(spec, &[source, "target", "averageValue"]) {
                Some(avg) => format!(
                    "{name}: {}/{}",
                    current(source, "averageValue"),
                    quantity(Some(avg))
                ),
                None => {
                    let utilization = status
                        .and_then(|s| at(s, &[source, "current", "averageUtilization"]))
                        .map(|u| format!("{}%", as_int(u)))
                        .unwrap_or_else(|| "<unknown>".to_string());
                    let target = at(spec, &[source, "target", "averageUtilization"])
                        .map(|u| format!("{}%", as_int(u)))
                        .unwrap_or_else(|| "<auto>".to_string());
                    format!("{name}: {utilization}/{target}")
                }
            }
        }
        _ => "<unknown type>".to_string(),
    }
}

pub(super) fn endpoints() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Endpoints",
                "string",
                0,
                "Endpoints is the list of endpoints for the service.",
            ),
            ("Age", "string", 0, ""),
        ]),
        cells: |ep, now| {
            vec![
                name_cell(ep),
                Value::from(format_endpoints(ep)),
                age_cell(ep, now),
            ]
        },
    }
}

/// Up to three `ip:port` pairs across subsets, then `+ N more...`; `<none>` without subsets.
fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = list(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut shown = Vec::new();
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        // Headless services may have no ports: list bare addresses.
        let port_numbers: Vec<Option<i64>> = if ports.is_empty() {
            vec![None]
        } else {
            ports.iter().map(|p| Some(int(p, &["port"]))).collect()
        };
        for port in port_numbers {
            count += addresses.len();
            for addr in addresses {
                if shown.len() == MAX {
                    break;
                }
                let ip = text(addr, &["ip"]);
                shown.push(match port {
                    None => ip.to_string(),
                    Some(port) if ip.contains(':') => format!("[{ip}]:{port}"),
                    Some(port) => format!("{ip}:{port}"),
                });
            }
        }
    }
    let joined = shown.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

pub(super) fn custom_resource_definition() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Created At", "date", 0, super::printers::AGE_DESCRIPTION),
        ]),
        cells: |crd, _now| {
            // The apiserver's default table convertor prints an RFC 3339 time, not an age.
            let created = parse_time(text(crd, &["metadata", "creationTimestamp"]))
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
            vec![name_cell(crd), Value::from(created)]
        },
    }
}
