//! The kinds a platform and its users touch, through the real `kubectl` and kube-rs: discovery
//! rows as a real cluster lists them, DaemonSet rollouts, CronJobs and the jobs made from them,
//! ReplicationControllers, EndpointSlices beside Endpoints, storage classes and provisioned
//! volumes, disruption budgets, network policies, leases, both versions of Events, API
//! services and the review kinds behind `kubectl auth`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Kubectl, LocalSandbox, ServedSandbox, eventually as eventually_async};

/// Polls `check` until it yields or 30 seconds pass.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(k: &Kubectl, args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = k.run(&all);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// `kubectl api-resources` rows of a v1.33 cluster for these kinds: name, short names,
/// group/version, namespaced, kind.
const RESOURCES: &[&str] = &[
    "persistentvolumes pv v1 false PersistentVolume",
    "replicationcontrollers rc v1 true ReplicationController",
    "apiservices apiregistration.k8s.io/v1 false APIService",
    "daemonsets ds apps/v1 true DaemonSet",
    "selfsubjectreviews authentication.k8s.io/v1 false SelfSubjectReview",
    "selfsubjectaccessreviews authorization.k8s.io/v1 false SelfSubjectAccessReview",
    "selfsubjectrulesreviews authorization.k8s.io/v1 false SelfSubjectRulesReview",
    "cronjobs cj batch/v1 true CronJob",
    "leases coordination.k8s.io/v1 true Lease",
    "endpointslices discovery.k8s.io/v1 true EndpointSlice",
    "events ev events.k8s.io/v1 true Event",
    "networkpolicies netpol networking.k8s.io/v1 true NetworkPolicy",
    "poddisruptionbudgets pdb policy/v1 true PodDisruptionBudget",
    "storageclasses sc storage.k8s.io/v1 false StorageClass",
];

#[test]
fn api_resources_list_each_kind_as_a_real_cluster_does() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let listed = k.ok(&["api-resources", "--no-headers"]);
    let rows: Vec<String> = listed
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for want in RESOURCES {
        assert!(
            rows.iter().any(|r| r == want),
            "no row {want:?} in\n{listed}"
        );
    }
    let wide = k.ok(&[
        "api-resources",
        "--no-headers",
        "--api-group=authorization.k8s.io",
        "-o",
        "wide",
    ]);
    let review = wide
        .lines()
        .find(|l| l.starts_with("selfsubjectaccessreviews "))
        .unwrap_or_else(|| panic!("{wide}"));
    assert_eq!(review.split_whitespace().nth(4), Some("create"), "{review}");
    let all = k.ok(&["api-resources", "--categories=all", "-o", "name"]);
    for kind in [
        "daemonsets.apps",
        "cronjobs.batch",
        "replicationcontrollers",
    ] {
        assert!(
            all.lines().any(|l| l == kind),
            "{kind} not in category all:\n{all}"
        );
    }
    // One Available, local APIService per served group version.
    let services = k.ok(&["get", "apiservices"]);
    for name in [
        "v1.",
        "v1.apps",
        "v1.batch",
        "v1.events.k8s.io",
        "v1.storage.k8s.io",
    ] {
        let row = services
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no APIService {name} in\n{services}"));
        assert!(row.contains("Local") && row.contains("True"), "{row}");
    }
}

#[test]
fn auth_can_i_and_whoami_answer_for_the_admin() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    assert_eq!(
        k.ok(&["auth", "can-i", "create", "deployments"]).trim(),
        "yes"
    );
    assert_eq!(
        k.ok(&["auth", "can-i", "delete", "nodes", "--all-namespaces"])
            .trim(),
        "yes"
    );
    let rules = k.ok(&["auth", "can-i", "--list"]);
    assert!(rules.contains("*.*"), "{rules}");
    let me = k.ok(&["auth", "whoami"]);
    assert!(me.contains("system:admin"), "{me}");
    assert!(me.contains("system:masters"), "{me}");
    assert!(me.contains("system:authenticated"), "{me}");
    // Reviews are answered, not kept.
    let listed = k.run(&["get", "selfsubjectaccessreviews"]);
    assert!(!listed.status.success());
}

const CLAIMS: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: fast}
spec:
  storageClassName: fast
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;

const FAST_CLASS: &str = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: example.com/fast
reclaimPolicy: Retain
"#;

#[test]
fn claims_get_provisioned_volumes_of_their_class() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let classes = k.ok(&["get", "storageclass"]);
    let row = classes
        .lines()
        .find(|l| l.starts_with("local-path"))
        .unwrap_or_else(|| panic!("{classes}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..6],
        [
            "local-path",
            "(default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ],
        "{classes}"
    );
    k.ok_stdin(&["apply", "-f", "-"], CLAIMS);
    let data = eventually("the claim bound", || {
        get(&k, &["get", "pvc", "data"]).filter(|c| c["status"]["phase"] == "Bound")
    });
    assert_eq!(data["spec"]["storageClassName"], "local-path");
    let volume = data["spec"]["volumeName"].as_str().unwrap().to_string();
    let pv = get(&k, &["get", "pv", &volume]).expect("the volume");
    assert_eq!(pv["status"]["phase"], "Bound");
    assert_eq!(pv["spec"]["claimRef"]["name"], "data");
    assert_eq!(pv["spec"]["claimRef"]["uid"], data["metadata"]["uid"]);
    assert_eq!(pv["spec"]["capacity"]["storage"], "2Gi");
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    let pvs = k.ok(&["get", "pv"]);
    assert!(
        pvs.contains("default/data") && pvs.contains("Bound"),
        "{pvs}"
    );

    // A claim of a class that does not exist waits, and says why.
    let fast = get(&k, &["get", "pvc", "fast"]).unwrap();
    assert_eq!(fast["status"]["phase"], "Pending");
    let events = eventually("the provisioning failure", || {
        let out = k.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=fast",
        ]);
        out.contains("ProvisioningFailed").then_some(out)
    });
    assert!(
        events.contains("storageclass.storage.k8s.io \"fast\" not found"),
        "{events}"
    );
    k.ok_stdin(&["apply", "-f", "-"], FAST_CLASS);
    let fast = eventually("the claim bound once its class exists", || {
        get(&k, &["get", "pvc", "fast"]).filter(|c| c["status"]["phase"] == "Bound")
    });
    let fast_volume = fast["spec"]["volumeName"].as_str().unwrap().to_string();

    // Deleting the claims: Delete removes the volume, Retain releases it.
    k.ok(&["delete", "pvc", "data", "fast"]);
    eventually("the volume deleted", || {
        (!k.run(&["get", "pv", &volume]).status.success()).then_some(())
    });
    eventually("the retained volume released", || {
        get(&k, &["get", "pv", &fast_volume]).filter(|v| v["status"]["phase"] == "Released")
    });
}

const DAEMON_SET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: busybox:1.36
"#;

#[test]
fn daemon_sets_run_a_pod_on_the_node_and_roll_out() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], DAEMON_SET);
    let out = k.ok(&["rollout", "status", "ds/agent", "--timeout=30s"]);
    assert!(
        out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    let ds = get(&k, &["get", "ds", "agent"]).unwrap();
    for field in [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
    ] {
        assert_eq!(ds["status"][field], 1, "{field}: {}", ds["status"]);
    }
    let pods = get(&k, &["get", "pods", "-l", "app=agent"]).unwrap();
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["spec"]["nodeName"], "sandbox");

    k.ok(&["set", "image", "ds/agent", "agent=busybox:1.37"]);
    let out = k.ok(&["rollout", "status", "ds/agent", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    eventually("one pod of the new template", || {
        let pods = get(&k, &["get", "pods", "-l", "app=agent"])?;
        let live: Vec<&Value> = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        (live.len() == 1 && live[0]["spec"]["containers"][0]["image"] == "busybox:1.37")
            .then_some(())
    });
    let table = k.ok(&["get", "ds", "agent"]);
    assert!(
        table.contains("DESIRED") && table.contains("UP-TO-DATE"),
        "{table}"
    );
}

const CRON_JOB: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    metadata:
      labels: {task: tick}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: tick
            image: busybox:1.36
            command: [date]
"#;

#[test]
fn cron_jobs_are_created_and_run_by_hand() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], CRON_JOB);
    let cj = get(&k, &["get", "cronjob", "tick"]).unwrap();
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    let table = k.ok(&["get", "cj", "tick"]);
    assert!(
        table.contains("*/5 * * * *") && table.contains("False"),
        "{table}"
    );

    k.ok(&["create", "job", "tick-now", "--from=cronjob/tick"]);
    let job = get(&k, &["get", "job", "tick-now"]).unwrap();
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(job["metadata"]["labels"]["task"], "tick");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"][0],
        "date"
    );
    eventually("the job complete", || {
        let job = get(&k, &["get", "job", "tick-now"])?;
        (job["status"]["succeeded"] == 1).then_some(())
    });
    // The CronJob counts it as its own: its success is recorded.
    eventually("the last success recorded", || {
        get(&k, &["get", "cronjob", "tick"])
            .filter(|c| c["status"]["lastSuccessfulTime"].is_string())
    });
    let bad = CRON_JOB.replace("*/5 * * * *", "61 * * * *");
    let bad = k.run_with_stdin(&["apply", "-f", "-"], Some(&bad));
    let bad = String::from_utf8_lossy(&bad.stderr).to_string();
    assert!(bad.contains("spec.schedule"), "{bad}");
}

const REPLICATION_CONTROLLER: &str = r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 2
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 8080, name: http}]
"#;

fn pod_names(k: &Kubectl, selector: &str) -> Vec<String> {
    let pods = get(k, &["get", "pods", "-l", selector]).unwrap_or_default();
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect()
}

#[test]
fn replication_controllers_and_endpoint_slices() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], REPLICATION_CONTROLLER);
    let rc = get(&k, &["get", "rc", "web"]).unwrap();
    assert_eq!(rc["spec"]["selector"]["app"], "web", "selector defaulted");
    eventually("two pods", || {
        (pod_names(&k, "app=web").len() == 2).then_some(())
    });
    k.ok(&["scale", "rc", "web", "--replicas=3"]);
    eventually("three ready replicas", || {
        get(&k, &["get", "rc", "web"]).filter(|rc| rc["status"]["readyReplicas"] == 3)
    });
    let table = k.ok(&["get", "rc", "web"]);
    assert!(table.contains("DESIRED"), "{table}");

    k.ok(&["expose", "rc", "web", "--port=80", "--target-port=http"]);
    let slice = eventually("a slice with the three pods", || {
        let slices = get(
            &k,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        )?;
        let slice = slices["items"].as_array()?.first()?.clone();
        (slice["endpoints"].as_array()?.len() == 3).then_some(slice)
    });
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["ports"][0]["port"], 8080);
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    for endpoint in slice["endpoints"].as_array().unwrap() {
        assert_eq!(endpoint["conditions"]["ready"], true);
        assert_eq!(endpoint["targetRef"]["kind"], "Pod");
    }
    // Addresses match the Endpoints object.
    let ep = get(&k, &["get", "endpoints", "web"]).unwrap();
    let mut ep_ips: Vec<String> = ep["subsets"][0]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap().to_string())
        .collect();
    let mut slice_ips: Vec<String> = slice["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["addresses"][0].as_str().unwrap().to_string())
        .collect();
    ep_ips.sort();
    slice_ips.sort();
    assert_eq!(ep_ips, slice_ips);

    k.ok(&["scale", "rc", "web", "--replicas=1"]);
    eventually("the slice shrunk", || {
        let slices = get(
            &k,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        )?;
        (slices["items"][0]["endpoints"].as_array()?.len() == 1).then_some(())
    });
    let listed = k.ok(&["get", "endpointslices"]);
    assert!(
        listed.contains("IPv4") && listed.contains("8080"),
        "{listed}"
    );
    k.ok(&["delete", "service", "web"]);
    eventually("the slices gone with their service", || {
        let slices = get(
            &k,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        )?;
        slices["items"].as_array()?.is_empty().then_some(())
    });
}

const POLICIES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-project}
spec:
  podSelector: {}
  ingress:
  - from:
    - podSelector: {}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader}
spec:
  holderIdentity: replica-a
  leaseDurationSeconds: 15
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: nginx:1.27
"#;

const BUDGET: &str = r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: api}
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: api}
"#;

#[test]
fn budgets_policies_and_leases() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], POLICIES);
    k.ok_stdin(&["apply", "-f", "-"], BUDGET);
    let pdb = eventually("the budget counting the pods", || {
        get(&k, &["get", "pdb", "api"]).filter(|p| p["status"]["currentHealthy"] == 2)
    });
    assert_eq!(pdb["status"]["expectedPods"], 2);
    assert_eq!(pdb["status"]["desiredHealthy"], 1);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 1);
    assert_eq!(pdb["status"]["conditions"][0]["type"], "DisruptionAllowed");
    assert_eq!(pdb["metadata"]["generation"], 1);
    let table = k.ok(&["get", "pdb"]);
    assert!(
        table.contains("ALLOWED DISRUPTIONS") && table.contains("N/A"),
        "{table}"
    );

    let np = get(&k, &["get", "netpol", "same-project"]).unwrap();
    assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress"]));
    let table = k.ok(&["get", "networkpolicies"]);
    assert!(
        table.contains("POD-SELECTOR") && table.contains("<none>"),
        "{table}"
    );

    let lease = get(&k, &["get", "lease", "leader"]).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    k.ok(&[
        "patch",
        "lease",
        "leader",
        "--type=merge",
        "-p",
        r#"{"spec":{"holderIdentity":"replica-b"}}"#,
    ]);
    let table = k.ok(&["get", "leases"]);
    assert!(table.contains("replica-b"), "{table}");
}

const NEW_EVENT: &str = r#"
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: hello.1}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: example.com/ctl
reportingInstance: ctl-0
action: Greet
reason: Hello
note: said hello
type: Normal
regarding: {kind: ConfigMap, name: greeting, namespace: default}
"#;

#[test]
fn events_are_one_object_in_both_versions() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], NEW_EVENT);
    let core = get(&k, &["get", "events.v1.", "hello.1"])
        .or_else(|| get(&k, &["get", "events", "hello.1"]))
        .unwrap();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "greeting");
    assert_eq!(core["message"], "said hello");
    assert_eq!(core["reportingComponent"], "example.com/ctl");
    let new = get(&k, &["get", "events.v1.events.k8s.io", "hello.1"]).unwrap();
    assert_eq!(new["apiVersion"], "events.k8s.io/v1");
    assert_eq!(new["regarding"]["name"], "greeting");
    assert_eq!(new["note"], "said hello");
    assert!(new.get("involvedObject").is_none());

    // A controller's event, recorded as core v1, is listed by the new API too.
    k.ok_stdin(&["apply", "-f", "-"], DAEMON_SET);
    let listed = eventually("the daemon set's event in events.k8s.io", || {
        let list = get(&k, &["get", "events.v1.events.k8s.io"])?;
        list["items"]
            .as_array()?
            .iter()
            .find(|e| e["regarding"]["kind"] == "DaemonSet")
            .cloned()
    });
    assert_eq!(listed["reason"], "SuccessfulCreate");
    assert_eq!(listed["reportingController"], "daemonset-controller");
}

/// The objects deserialize into k8s-openapi's types, and the reviews answer through kube-rs.
#[tokio::test(flavor = "multi_thread")]
async fn kube_reads_each_kind_typed() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{
        PersistentVolume, PersistentVolumeClaim, ReplicationController,
    };
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::events::v1::Event;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::storage::v1::StorageClass;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
    use kube::api::{Api, ListParams, PostParams};

    let sb = LocalSandbox::start().await;
    let client = sb.client();
    let create = |api_version: &str, kind: &str, body: serde_json::Value| {
        let mut obj = body;
        obj["apiVersion"] = api_version.into();
        obj["kind"] = kind.into();
        obj
    };
    let ds: DaemonSet = serde_json::from_value(create("apps/v1", "DaemonSet", serde_json::json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "busybox"}]}}},
    }))).unwrap();
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    daemon_sets
        .create(&PostParams::default(), &ds)
        .await
        .unwrap();
    let cj: CronJob = serde_json::from_value(create("batch/v1", "CronJob", serde_json::json!({
        "metadata": {"name": "tick"},
        "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "busybox"}]}}}}},
    }))).unwrap();
    Api::<CronJob>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &cj)
        .await
        .unwrap();
    let rc: ReplicationController = serde_json::from_value(create("v1", "ReplicationController", serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "nginx"}]}}},
    }))).unwrap();
    Api::<ReplicationController>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &rc)
        .await
        .unwrap();
    let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap();
    let pdb: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"}, "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
    })).unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pdb)
        .await
        .unwrap();
    let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "deny"}, "spec": {"podSelector": {}, "egress": [{}]},
    }))
    .unwrap();
    let np = Api::<NetworkPolicy>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &np)
        .await
        .unwrap();
    assert_eq!(
        np.spec.unwrap().policy_types,
        Some(vec!["Ingress".to_string(), "Egress".to_string()])
    );
    let lease: Lease = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "me"}}),
    )
    .unwrap();
    Api::<Lease>::namespaced(client.clone(), "kube-system")
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();

    let ready: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    eventually_async(Duration::from_secs(20), "the daemon set ready", || {
        let ready = ready.clone();
        async move {
            let ds = ready.get("agent").await.ok()?;
            (ds.status?.number_ready == 1).then_some(())
        }
    })
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let volume = eventually_async(Duration::from_secs(20), "the claim bound", || {
        let claims = claims.clone();
        async move { claims.get("data").await.ok()?.spec?.volume_name }
    })
    .await;
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&volume)
        .await
        .unwrap();
    assert_eq!(
        pv.spec.unwrap().claim_ref.unwrap().name.as_deref(),
        Some("data")
    );
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    eventually_async(
        Duration::from_secs(20),
        "the service's slice with its pod",
        || {
            let slices = slices.clone();
            async move {
                let list = slices
                    .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                    .await
                    .ok()?;
                (list.items.first()?.endpoints.len() == 1).then_some(())
            }
        },
    )
    .await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    eventually_async(Duration::from_secs(20), "the budget's status", || {
        let pdbs = pdbs.clone();
        async move { (pdbs.get("web").await.ok()?.status?.expected_pods == 1).then_some(()) }
    })
    .await;
    Api::<CronJob>::namespaced(client.clone(), "default")
        .get("tick")
        .await
        .unwrap();
    Api::<ReplicationController>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    Api::<Lease>::namespaced(client.clone(), "kube-system")
        .get("leader")
        .await
        .unwrap();
    let classes = Api::<StorageClass>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(classes.items[0].provisioner, "rancher.io/local-path");
    let events = Api::<Event>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
    );
    let services = Api::<APIService>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        services
            .items
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some("v1.apps"))
    );

    let review: SelfSubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {"resourceAttributes": {"verb": "create", "group": "apps", "resource": "deployments", "namespace": "default"}},
    })).unwrap();
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    assert!(answer.status.unwrap().allowed);
    let me = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = me.status.unwrap().user_info.unwrap();
    assert_eq!(user.username.as_deref(), Some("system:admin"));
}
