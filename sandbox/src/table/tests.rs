use super::*;
use serde_json::json;

fn now() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().unwrap()
}

/// `now` minus `secs`, as an RFC 3339 string.
fn ago(secs: i64) -> String {
    now()
        .checked_sub(SignedDuration::from_secs(secs))
        .unwrap()
        .to_string()
}

fn table(group: &str, kind: &str, objects: &[Value]) -> Value {
    let refs: Vec<&Value> = objects.iter().collect();
    to_table(
        group,
        kind,
        &[],
        &refs,
        IncludeObject::None,
        json!({"resourceVersion": "7"}),
        now(),
    )
}

fn header(t: &Value) -> Vec<(String, i64)> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn names(t: &Value) -> Vec<String> {
    header(t).into_iter().map(|(n, _)| n).collect()
}

fn cells(t: &Value, row: usize) -> Vec<Value> {
    t["rows"][row]["cells"].as_array().unwrap().clone()
}

fn one_row(group: &str, kind: &str, obj: Value) -> Vec<Value> {
    let t = table(group, kind, &[obj]);
    assert_eq!(
        cells(&t, 0).len(),
        header(&t).len(),
        "cells must line up with columns"
    );
    cells(&t, 0)
}

#[test]
fn human_durations() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (310, "5m10s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400 + 5 * 3600, "2d5h"),
        (3 * 86400, "3d"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (730 * 86400, "2y"),
        (3 * 365 * 86400 + 20 * 86400, "3y20d"),
        (10 * 365 * 86400, "10y"),
    ];
    for (secs, want) in cases {
        assert_eq!(
            human_duration(SignedDuration::from_secs(secs)),
            want,
            "{secs}"
        );
    }
    assert_eq!(age(None, now()), "<unknown>");
    assert_eq!(age(Some("yesterday"), now()), "<unknown>");
    assert_eq!(age(Some(&ago(90)), now()), "90s");
}

#[test]
fn table_envelope_and_include_object() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default", "creationTimestamp": ago(45)},
        "data": {"a": "1", "b": "2"}});
    let refs = [&cm];
    let t = to_table(
        "",
        "ConfigMap",
        &[],
        &refs,
        IncludeObject::Metadata,
        json!({"resourceVersion": "9"}),
        now(),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({"resourceVersion": "9"}));
    assert_eq!(
        t["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name",
               "description": NAME_DESCRIPTION, "priority": 0})
    );
    assert_eq!(names(&t), ["Name", "Data", "Age"]);
    assert_eq!(cells(&t, 0), [json!("cfg"), json!(2), json!("45s")]);
    assert_eq!(t["columnDefinitions"][1]["type"], "string");
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": cm["metadata"]})
    );

    let full = to_table(
        "",
        "ConfigMap",
        &[],
        &refs,
        IncludeObject::Object,
        json!({}),
        now(),
    );
    assert_eq!(full["rows"][0]["object"], cm);
    let none = table("", "ConfigMap", &[cm]);
    assert!(none["rows"][0].get("object").is_none());
    assert_eq!(table("", "ConfigMap", &[])["rows"], json!([]));
}

#[test]
fn include_object_parsing() {
    assert_eq!("".parse(), Ok(IncludeObject::Metadata));
    assert_eq!("None".parse(), Ok(IncludeObject::None));
    assert_eq!("Object".parse(), Ok(IncludeObject::Object));
    assert!("object".parse::<IncludeObject>().is_err());
    assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
}

#[test]
fn running_pod() {
    let pod = json!({
        "metadata": {"name": "web-1", "creationTimestamp": ago(310)},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": ago(300)}}}]}
    });
    let t = table("", "Pod", std::slice::from_ref(&pod));
    assert_eq!(
        header(&t),
        [
            ("Name".to_string(), 0),
            ("Ready".to_string(), 0),
            ("Status".to_string(), 0),
            ("Restarts".to_string(), 0),
            ("Age".to_string(), 0),
            ("IP".to_string(), 1),
            ("Node".to_string(), 1),
            ("Nominated Node".to_string(), 1),
            ("Readiness Gates".to_string(), 1),
        ]
    );
    assert_eq!(
        cells(&t, 0),
        [
            json!("web-1"),
            json!("1/1"),
            json!("Running"),
            json!("0"),
            json!("5m10s"),
            json!("10.0.0.5"),
            json!("node-a"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    assert!(t["rows"][0].get("conditions").is_none());
}

#[test]
fn crashlooping_pod() {
    let pod = json!({
        "metadata": {"name": "bad", "creationTimestamp": ago(3 * 3600)},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "podIPs": [{"ip": "fd00::1"}],
            "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 4,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(60)}}},
                {"name": "b", "ready": true, "restartCount": 1,
                 "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}}
            ]}
    });
    let row = one_row("", "Pod", pod);
    assert_eq!(row[1], "1/2");
    assert_eq!(row[2], "CrashLoopBackOff");
    assert_eq!(row[3], "5 (60s ago)");
    assert_eq!(row[4], "3h");
    assert_eq!(row[5], "fd00::1");
    assert_eq!(row[6], "<none>");
}

#[test]
fn pod_status_variants() {
    let base = |status: Value| {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}],
            "initContainers": [{"name": "i1"}, {"name": "i2"}]}, "status": status})
    };
    let status_of = |pod: Value| one_row("", "Pod", pod)[2].clone();

    assert_eq!(status_of(base(json!({"phase": "Pending"}))), "Pending");
    assert_eq!(status_of(base(Value::Null)), "Pending");
    let huge = base(json!({"phase": "Running", "containerStatuses": [
        {"name": "c", "restartCount": i64::MAX, "state": {"running": {}}},
        {"name": "d", "restartCount": i64::MAX, "state": {"running": {}}}
    ]}));
    assert_eq!(one_row("", "Pod", huge)[3], i64::MAX.to_string());
    assert_eq!(
        status_of(base(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}
        ]}))),
        "Init:1/2"
    );
    assert_eq!(
        status_of(base(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
        ]}))),
        "Init:ImagePullBackOff"
    );
    assert_eq!(
        status_of(base(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 2}}}
        ]}))),
        "Init:ExitCode:2"
    );
    assert_eq!(
        status_of(base(json!({"phase": "Failed", "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
        ]}))),
        "OOMKilled"
    );
    assert_eq!(
        status_of(base(json!({"phase": "Running", "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 0, "signal": 9}}}
        ]}))),
        "Signal:9"
    );
    assert_eq!(
        status_of(base(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
        ]}))),
        "SchedulingGated"
    );
    let mut terminating = base(json!({"phase": "Running"}));
    terminating["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(status_of(terminating), "Terminating");
    let mut done = base(json!({"phase": "Succeeded"}));
    done["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(status_of(done), "Succeeded");
}

#[test]
fn pod_sidecars_count_towards_ready() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}],
                 "initContainers": [{"name": "proxy", "restartPolicy": "Always"}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true,
                "restartCount": 2, "state": {"running": {}}}],
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
                "state": {"running": {}}}]}
    });
    let row = one_row("", "Pod", pod);
    assert_eq!(row[1], "2/2");
    assert_eq!(row[2], "Running");
    assert_eq!(row[3], "2");
}

#[test]
fn finished_pods_carry_row_conditions() {
    let pod = json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}});
    let t = table("", "Pod", &[pod]);
    assert_eq!(
        t["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
    );
}

#[test]
fn deployment() {
    let d = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(2 * 86400 + 5 * 3600)},
        "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"},
                         "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
            "template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1.27"},
                {"name": "log", "image": "busybox"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    let t = table("apps", "Deployment", std::slice::from_ref(&d));
    assert_eq!(
        names(&t),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        cells(&t, 0),
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("2d5h"),
            json!("app,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web,tier in (a,b)")
        ]
    );
    let fresh = json!({"metadata": {"name": "new"}, "spec": {}});
    let row = one_row("apps", "Deployment", fresh);
    assert_eq!(row[1], "0/1", "replicas defaults to 1");
    assert_eq!(row[4], "<unknown>");
    assert_eq!(row[7], "");
}

#[test]
fn replica_set_stateful_set_daemon_set() {
    let rs = json!({"metadata": {"name": "web-5d"}, "spec": {"replicas": 2},
        "status": {"replicas": 2, "readyReplicas": 1}});
    let row = one_row("apps", "ReplicaSet", rs);
    assert_eq!(&row[..4], [json!("web-5d"), json!(2), json!(2), json!(1)]);
    assert_eq!(
        row[7], "<none>",
        "FormatLabelSelector of a missing selector"
    );
    let bad = json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"-": "x"}}}});
    assert_eq!(one_row("apps", "ReplicaSet", bad)[7], "<error>");

    let ss = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3},
        "status": {"readyReplicas": 3}});
    let t = table("apps", "StatefulSet", &[ss]);
    assert_eq!(names(&t), ["Name", "Ready", "Age", "Containers", "Images"]);
    assert_eq!(cells(&t, 0)[1], "3/3");

    let ds = json!({"metadata": {"name": "agent"},
        "spec": {"template": {"spec": {"nodeSelector": {"os": "linux"}}}},
        "status": {"desiredNumberScheduled": 2, "numberReady": 1}});
    let row = one_row("apps", "DaemonSet", ds);
    assert_eq!(row[1], 2);
    assert_eq!(row[3], 1);
    assert_eq!(row[6], "os=linux");
}

#[test]
fn service_with_ports() {
    let svc = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(45)},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "selector": {"tier": "front", "app": "web"},
            "ports": [{"port": 80, "protocol": "TCP"},
                      {"port": 443, "nodePort": 30443},
                      {"port": 53, "protocol": "UDP"}]}
    });
    let t = table("", "Service", &[svc]);
    assert_eq!(
        names(&t),
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(
        cells(&t, 0),
        [
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80/TCP,443:30443/TCP,53/UDP"),
            json!("45s"),
            json!("app=web,tier=front")
        ]
    );
}

#[test]
fn service_types() {
    let row = |spec: Value, status: Value| {
        one_row(
            "",
            "Service",
            json!({"metadata": {"name": "s"}, "spec": spec, "status": status}),
        )
    };
    let plain = row(json!({"clusterIP": "None"}), json!({}));
    assert_eq!(
        &plain[1..5],
        [
            json!("ClusterIP"),
            json!("None"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    assert_eq!(plain[6], "<none>");
    assert_eq!(
        row(json!({"type": "LoadBalancer"}), json!({}))[3],
        "<pending>"
    );
    assert_eq!(
        row(
            json!({"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"}]}})
        )[3],
        "5.6.7.8,lb.example,1.2.3.4"
    );
    let external = row(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    assert_eq!(external[2], "<none>");
    assert_eq!(external[3], "db.example.com");
}

#[test]
fn ingress() {
    let ing = json!({"metadata": {"name": "web"},
        "spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example"}, {"host": "b.example"}],
            "tls": [{"hosts": ["a.example"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.1"}]}}});
    let row = one_row("networking.k8s.io", "Ingress", ing);
    assert_eq!(
        &row[..5],
        [
            json!("web"),
            json!("nginx"),
            json!("a.example,b.example"),
            json!("192.168.1.1"),
            json!("80, 443")
        ]
    );
    let bare = one_row(
        "networking.k8s.io",
        "Ingress",
        json!({"metadata": {"name": "x"}, "spec": {"rules": [{}]}}),
    );
    assert_eq!(
        &bare[1..5],
        [json!("<none>"), json!("*"), json!(""), json!("80")]
    );
    let many = json!({"metadata": {"name": "m"}, "spec": {"rules": [
        {"host": "a"}, {"host": "b"}, {"host": "c"}, {"host": "d"}, {"host": "e"}]}});
    assert_eq!(
        one_row("networking.k8s.io", "Ingress", many)[2],
        "a,b,c + 2 more..."
    );
}

#[test]
fn jobs() {
    let done = json!({"metadata": {"name": "once", "creationTimestamp": ago(600)},
        "spec": {"completions": 1},
        "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(590),
            "conditions": [{"type": "Complete", "status": "True"}]}});
    let t = table("batch", "Job", &[done]);
    assert_eq!(
        names(&t)[..5],
        ["Name", "Status", "Completions", "Duration", "Age"]
    );
    assert_eq!(
        cells(&t, 0)[..5],
        [
            json!("once"),
            json!("Complete"),
            json!("1/1"),
            json!("10s"),
            json!("10m")
        ]
    );
    let running = json!({"metadata": {"name": "r"}, "spec": {"parallelism": 3},
        "status": {"startTime": ago(30)}});
    let row = one_row("batch", "Job", running);
    assert_eq!(
        &row[1..4],
        [json!("Running"), json!("0/1 of 3"), json!("30s")]
    );
    let failed = json!({"metadata": {"name": "f"}, "spec": {"completions": 2},
        "status": {"succeeded": 1, "conditions": [{"type": "Failed", "status": "True"}]}});
    let row = one_row("batch", "Job", failed);
    assert_eq!(&row[1..4], [json!("Failed"), json!("1/2"), json!("")]);
}

#[test]
fn namespace_config_secret_service_account() {
    let ns = one_row(
        "",
        "Namespace",
        json!({"metadata": {"name": "dev"}, "status": {"phase": "Active"}}),
    );
    assert_eq!(ns, [json!("dev"), json!("Active"), json!("<unknown>")]);
    assert_eq!(
        one_row("", "Namespace", json!({"metadata": {"name": "x"}}))[1],
        "Active"
    );

    let cm = one_row(
        "",
        "ConfigMap",
        json!({"metadata": {"name": "c"}, "binaryData": {"b": ""}}),
    );
    assert_eq!(cm[1], 1);

    let secret = one_row(
        "",
        "Secret",
        json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"a": "x", "b": "y"}}),
    );
    assert_eq!(&secret[1..3], [json!("Opaque"), json!(2)]);
    let tls = one_row(
        "",
        "Secret",
        json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls"}),
    );
    assert_eq!(&tls[1..3], [json!("kubernetes.io/tls"), json!(0)]);

    let sa = one_row(
        "",
        "ServiceAccount",
        json!({"metadata": {"name": "default"}, "secrets": [{"name": "tok"}]}),
    );
    assert_eq!(sa[1], 1);
}

#[test]
fn persistent_volume_claims() {
    let bound = json!({"metadata": {"name": "data"},
        "spec": {"volumeName": "pv-1", "storageClassName": "standard", "volumeMode": "Filesystem",
                 "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "2Gi"},
                   "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}});
    let t = table("", "PersistentVolumeClaim", &[bound]);
    assert_eq!(
        names(&t),
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
            "VolumeMode"
        ]
    );
    assert_eq!(
        cells(&t, 0),
        [
            json!("data"),
            json!("Bound"),
            json!("pv-1"),
            json!("2Gi"),
            json!("RWO,RWX"),
            json!("standard"),
            json!("<unset>"),
            json!("<unknown>"),
            json!("Filesystem")
        ]
    );
    let pending = one_row(
        "",
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "p"}, "spec": {"accessModes": ["ReadWriteOnce"]}}),
    );
    assert_eq!(
        &pending[1..9],
        [
            json!("Pending"),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
            json!("<unset>"),
            json!("<unknown>"),
            json!("<unset>")
        ]
    );
}

#[test]
fn events() {
    let ev = json!({"metadata": {"name": "web.17a"},
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "type": "Normal", "message": " Pulled image \n",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 3});
    let t = table("", "Event", &[ev]);
    assert_eq!(
        header(&t),
        [
            ("Last Seen".to_string(), 0),
            ("Type".to_string(), 0),
            ("Reason".to_string(), 0),
            ("Object".to_string(), 0),
            ("Subobject".to_string(), 1),
            ("Source".to_string(), 1),
            ("Message".to_string(), 0),
            ("First Seen".to_string(), 1),
            ("Count".to_string(), 1),
            ("Name".to_string(), 1),
        ]
    );
    assert_eq!(
        cells(&t, 0),
        [
            json!("30s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web"),
            json!("spec.containers{app}"),
            json!("kubelet, node-a"),
            json!("Pulled image"),
            json!("10m"),
            json!(3),
            json!("web.17a")
        ]
    );
    let new_api = json!({"metadata": {"name": "e"}, "regarding": {"kind": "Deployment", "name": "api"},
        "note": "Scaled up", "reason": "ScalingReplicaSet", "type": "Normal",
        "eventTime": ago(5), "reportingController": "deployment-controller"});
    let row = one_row("events.k8s.io", "Event", new_api);
    assert_eq!(
        row,
        [
            json!("5s"),
            json!("Normal"),
            json!("ScalingReplicaSet"),
            json!("deployment/api"),
            json!(""),
            json!("deployment-controller"),
            json!("Scaled up"),
            json!("5s"),
            json!(1),
            json!("e")
        ]
    );
}

#[test]
fn horizontal_pod_autoscalers() {
    let hpa = json!({"metadata": {"name": "web"},
    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
             "minReplicas": 2, "maxReplicas": 10,
             "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}
             ]},
    "status": {"currentReplicas": 3, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "120m"}}}
    ]}});
    let t = table("autoscaling", "HorizontalPodAutoscaler", &[hpa]);
    assert_eq!(
        names(&t),
        [
            "Name",
            "Reference",
            "Targets",
            "MinPods",
            "MaxPods",
            "Replicas",
            "Age"
        ]
    );
    assert_eq!(
        cells(&t, 0)[..6],
        [
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: 45%/80%, memory: <unknown>/500Mi + 1 more..."),
            json!("2"),
            json!(10),
            json!(3)
        ]
    );
    let v1 = json!({"metadata": {"name": "old"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "old"}, "maxReplicas": 4,
                 "targetCPUUtilizationPercentage": 50}});
    let row = one_row("autoscaling", "HorizontalPodAutoscaler", v1);
    assert_eq!(&row[2..4], [json!("cpu: <unknown>/50%"), json!("1")]);
}

#[test]
fn endpoints() {
    let ep = json!({"metadata": {"name": "web"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}]},
        {"addresses": [{"ip": "fd00::3"}], "ports": [{"port": 8080}]}
    ]});
    assert_eq!(
        one_row("", "Endpoints", ep)[1],
        "10.0.0.1:80,10.0.0.2:80,[fd00::3]:8080"
    );
    let more = json!({"metadata": {"name": "m"}, "subsets": [
        {"addresses": [{"ip": "1.1.1.1"}, {"ip": "1.1.1.2"}], "ports": [{"port": 80}, {"port": 443}]}
    ]});
    assert_eq!(
        one_row("", "Endpoints", more)[1],
        "1.1.1.1:80,1.1.1.2:80,1.1.1.1:443 + 1 more..."
    );
    let headless =
        json!({"metadata": {"name": "h"}, "subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]});
    assert_eq!(one_row("", "Endpoints", headless)[1], "1.1.1.1");
    assert_eq!(
        one_row("", "Endpoints", json!({"metadata": {"name": "e"}}))[1],
        "<none>"
    );
}

#[test]
fn custom_resource_definitions() {
    let crd = json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2024-01-02T03:04:05Z"}});
    let t = table("apiextensions.k8s.io", "CustomResourceDefinition", &[crd]);
    assert_eq!(names(&t), ["Name", "Created At"]);
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert_eq!(
        cells(&t, 0),
        [json!("widgets.example.com"), json!("2024-01-02T03:04:05Z")]
    );
}

#[test]
fn custom_resource_with_printer_columns() {
    let crd_columns = printer_columns_from_crd(&json!([
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status",
         "description": "Readiness"},
        {"name": "Size", "type": "string", "jsonPath": ".spec.size", "priority": 1},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"},
        {"name": "Wrong", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Broken", "type": "string"}
    ]));
    assert_eq!(
        crd_columns.len(),
        8,
        "entries without a jsonPath are skipped"
    );
    assert_eq!(crd_columns[2].priority, 1);
    assert_eq!(
        crd_columns[0].description,
        "Custom resource definition column (in JSONPath format): .spec.replicas"
    );

    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "creationTimestamp": ago(2 * 86400 + 5 * 3600)},
        "spec": {"replicas": 3, "size": 7, "ratio": 0.5, "paused": false},
        "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
    let refs = [&widget];
    let t = to_table(
        "example.com",
        "Widget",
        &crd_columns,
        &refs,
        IncludeObject::Metadata,
        json!({}),
        now(),
    );
    assert_eq!(
        names(&t),
        [
            "Name", "Replicas", "Ready", "Size", "Ratio", "Paused", "Missing", "Wrong", "Age"
        ]
    );
    assert_eq!(t["columnDefinitions"][2]["description"], "Readiness");
    assert_eq!(t["columnDefinitions"][3]["priority"], 1);
    assert_eq!(
        cells(&t, 0),
        [
            json!("w1"),
            json!(3),
            json!("True"),
            json!("7"),
            json!(0.5),
            json!(false),
            Value::Null,
            json!(7),
            json!("2d5h")
        ]
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[test]
fn custom_resource_without_printer_columns() {
    let widget = json!({"metadata": {"name": "w1", "creationTimestamp": ago(45)}});
    let t = table("example.com", "Widget", &[widget]);
    assert_eq!(names(&t), ["Name", "Age"]);
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert_eq!(cells(&t, 0), [json!("w1"), json!("45s")]);

    let bad_date = json!({"metadata": {"name": "w2", "creationTimestamp": "soon"}});
    assert_eq!(
        cells(&table("example.com", "Widget", &[bad_date]), 0)[1],
        "<invalid>"
    );
}

#[test]
fn unknown_builtin_kinds_get_name_and_age() {
    let role = json!({"metadata": {"name": "reader", "creationTimestamp": ago(7200)}});
    let t = table("rbac.authorization.k8s.io", "Role", &[role]);
    assert_eq!(names(&t), ["Name", "Age"]);
    assert_eq!(cells(&t, 0), [json!("reader"), json!("120m")]);
    // A custom resource that happens to be called Pod is not printed as a pod.
    let t = table("example.com", "Pod", &[json!({"metadata": {"name": "x"}})]);
    assert_eq!(names(&t), ["Name", "Age"]);
}

#[test]
fn printer_columns_tolerate_junk() {
    assert!(printer_columns_from_crd(&json!(null)).is_empty());
    assert!(printer_columns_from_crd(&json!({"name": "x"})).is_empty());
    let cols = printer_columns_from_crd(&json!([
        5, {"name": "Old", "type": "string", "JSONPath": ".spec.x", "priority": 99999999999_i64}
    ]));
    assert_eq!(cols.len(), 1);
    assert_eq!(cols[0].json_path, ".spec.x");
    assert_eq!(cols[0].priority, 0);
}

#[test]
fn malformed_objects_do_not_panic() {
    let junk = [
        json!(null),
        json!(5),
        json!("x"),
        json!([]),
        json!({"metadata": 5, "spec": [], "status": "x"}),
        json!({"spec": {"containers": 5, "ports": [5, null, {"port": "x"}], "rules": [1]},
               "status": {"containerStatuses": [null, 1, {"state": 5}], "conditions": {}}}),
    ];
    for (group, kind) in [
        ("", "Pod"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("batch", "Job"),
        ("", "Service"),
        ("networking.k8s.io", "Ingress"),
        ("", "Namespace"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "ServiceAccount"),
        ("", "PersistentVolumeClaim"),
        ("", "Event"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("", "Endpoints"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("example.com", "Widget"),
    ] {
        let t = table(group, kind, &junk);
        let width = header(&t).len();
        for row in t["rows"].as_array().unwrap() {
            assert_eq!(row["cells"].as_array().unwrap().len(), width, "{kind}");
        }
    }
}
