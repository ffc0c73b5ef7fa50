//! A Service's defaults: `SetDefaults_Service`, and the IP family fields the service registry
//! fills in on a single-stack IPv4 cluster (k3s's default). Allocations (cluster IP, node
//! ports) need the store and are made in `admission` once these are set.

use serde_json::{Value, json};

use super::{each, set};

pub fn service(obj: &mut Value) {
    if obj["spec"].is_null() {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return;
    }
    set(spec, "type", json!("ClusterIP"));
    set(spec, "sessionAffinity", json!("None"));
    match spec["sessionAffinity"].as_str() {
        Some("None") => {
            if let Some(map) = spec.as_object_mut() {
                map.remove("sessionAffinityConfig");
            }
        }
        Some("ClientIP")
            if spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"].is_null() =>
        {
            spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
        }
        _ => {}
    }
    each(spec, "ports", |port| {
        set(port, "protocol", json!("TCP"));
        // A target port of 0 or "" means "the same as port".
        let unset = match &port["targetPort"] {
            Value::Null => true,
            Value::Number(n) => n.as_i64() == Some(0),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        if unset && port.is_object() {
            port["targetPort"] = port["port"].clone();
        }
    });
    let kind = spec["type"].as_str().unwrap_or("").to_string();
    let external_ips = spec["externalIPs"]
        .as_array()
        .is_some_and(|ips| !ips.is_empty());
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") || external_ips {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(kind.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if kind != "ExternalName" {
        // A headless service without a selector may front addresses of both families, so
        // its policy asks for both; the cluster only has IPv4 to give.
        let headless = spec["clusterIP"].as_str() == Some("None");
        let policy = if headless && spec["selector"].as_object().is_none_or(|s| s.is_empty()) {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        set(spec, "ipFamilyPolicy", json!(policy));
        set(spec, "ipFamilies", json!(["IPv4"]));
    }
    set(obj, "status", json!({"loadBalancer": {}}));
}

/// On an update that changes the type, drops the fields the old type needed and the new one
/// cannot have, when the client left them as they were (`dropTypeDependentFields`): a
/// `kubectl edit` from NodePort to ClusterIP need not clear them by hand. Node ports are
/// dropped where they are checked (`node_ports`).
pub fn drop_type_dependent(old: &Value, new: &mut Value) {
    let external = |spec: &Value| {
        matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
            || spec["externalIPs"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    };
    let (old, spec) = (&old["spec"], &mut new["spec"]);
    let unchanged = |spec: &Value, field: &str| spec[field] == old[field];
    let mut dropped = Vec::new();
    if external(old) && !external(spec) && unchanged(spec, "externalTrafficPolicy") {
        dropped.push("externalTrafficPolicy");
    }
    if old["type"] == "LoadBalancer" && spec["type"] != "LoadBalancer" {
        for field in [
            "allocateLoadBalancerNodePorts",
            "healthCheckNodePort",
            "loadBalancerClass",
        ] {
            if unchanged(spec, field) {
                dropped.push(field);
            }
        }
    }
    if let Some(map) = spec.as_object_mut() {
        for field in dropped {
            map.remove(field);
        }
    }
}
