//! `kip server` against a sandbox over HTTP: resources applied with kubectl get the objects
//! the verbs would make, drift is repaired, status is written back, a failing script becomes a
//! condition, one server works at a time and a killed one's work converges after a restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{ServedSandbox, stderr as err, stdout as out};

/// A `kip server` process against a sandbox, its output collected as it prints.
pub(crate) struct Server {
    child: Child,
    pub(crate) address: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// `kip server` on the sandbox's kip home, with a short lease so tests of takeover are
    /// quick; `scripts` is an override folder (KIP_SCRIPTS), if any.
    pub(crate) fn start(sb: &ServedSandbox, scripts: Option<&std::path::Path>) -> Server {
        Server::start_with(sb, scripts, &[])
    }

    /// [`Server::start`] with `env` added to the server's environment.
    fn start_with(
        sb: &ServedSandbox,
        scripts: Option<&std::path::Path>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut cmd = crate::common::kip_command();
        cmd.args(["server", "--listen", "127.0.0.1:0", "--lease-seconds", "2"])
            .env("KIP_HOME", sb.kip_home())
            .env("KUBECONFIG", sb.kubeconfig())
            .env_remove("KIP_SCRIPTS")
            .current_dir(sb.kip_home())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = scripts {
            cmd.env("KIP_SCRIPTS", dir);
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("start kip server");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (pipe, tx) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, Some(tx)),
            (Box::new(stderr), None),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(tx) = &tx {
                        let _ = tx.send(line.clone());
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("kip server printed nothing: {}", log.lock().unwrap()));
        let address = first
            .rsplit("http://")
            .next()
            .filter(|_| first.contains("kip server listening on"))
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_string();
        Server {
            child,
            address,
            log,
        }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the server's output contains `text`.
    fn said(&self, text: &str, timeout: Duration) {
        until(&format!("the server to say {text:?}"), timeout, || {
            self.log().contains(text).then_some(())
        });
    }

    pub(crate) fn healthy(&self) -> bool {
        let Ok(mut stream) = std::net::TcpStream::connect(&self.address) else {
            return false;
        };
        use std::io::{Read, Write};
        let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n")
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `check` every 50 ms until it returns Some; fails naming `what` after `timeout`.
pub(crate) fn until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// The object as kubectl reads it, if it exists.
pub(crate) fn get(sb: &ServedSandbox, args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    let o = sb.kubectl().run(&all);
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).expect("kubectl JSON"))
}

pub(crate) fn apply(sb: &ServedSandbox, yaml: &str) {
    sb.kubectl().ok_stdin(&["apply", "-f", "-"], yaml);
}

/// The App's status once its phase is `phase`.
pub(crate) fn app_in_phase(sb: &ServedSandbox, ns: &str, name: &str, phase: &str) -> Value {
    until(&format!("app {ns}/{name} to be {phase}"), WAIT, || {
        let app = get(sb, &["app", name, "-n", ns])?;
        (app["status"]["phase"] == phase).then(|| app["status"].clone())
    })
}

pub(crate) const BARE_APP: &str = "apiVersion: kipper.run/v1alpha1
kind: App
metadata: {name: web, namespace: default}
spec: {image: 'nginx:1.27', port: 80}
";

#[test]
fn a_bare_app_applied_with_kubectl_gets_its_objects_and_status() {
    let sb = ServedSandbox::start();
    let server = Server::start(&sb, None);
    assert!(server.healthy(), "GET /healthz: {}", server.log());
    server.said("holding the lease kipper-system/kip-server", WAIT);
    apply(&sb, BARE_APP);
    let status = app_in_phase(&sb, "default", "web", "Running");
    assert_eq!(status["observedGeneration"], 1, "{status}");
    assert_eq!(status["replicas"], 1, "{status}");
    assert_eq!(status["readyReplicas"], 1, "{status}");
    let ready = &status["conditions"][0];
    assert_eq!(ready["type"], "Ready", "{status}");
    assert_eq!(ready["status"], "True", "{status}");
    assert_eq!(ready["reason"], "AllReplicasReady", "{status}");
    assert!(ready["lastTransitionTime"].is_string(), "{status}");
    // The objects `kip app deploy` makes, with the defaults it would give.
    let deployment = get(&sb, &["deployment", "web", "-n", "default"]).expect("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(
        deployment["metadata"]["labels"]["kipper.run/project"],
        "default"
    );
    assert_eq!(deployment["metadata"]["ownerReferences"][0]["kind"], "App");
    assert!(get(&sb, &["service", "web", "-n", "default"]).is_some());
    let ingress = get(&sb, &["ingress", "web", "-n", "default"]).expect("Ingress");
    let host = ingress["spec"]["rules"][0]["host"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(host.starts_with("web-"), "{host}");
    // kip reads what the server made as its own.
    let listed = sb.kip(&["app", "list", "-o", "json"]);
    assert!(listed.status.success(), "{}", err(&listed));
    let apps: Value = serde_json::from_str(&out(&listed)).expect("JSON");
    assert_eq!(apps[0]["name"], "web", "{apps}");
    assert_eq!(apps[0]["host"], host.as_str(), "{apps}");
    assert_eq!(status["host"], host.as_str(), "{status}");
    assert!(
        server.log().contains("App default/web: Running"),
        "{}",
        server.log()
    );
    // A deleted App takes its objects with it and the server does not bring them back.
    sb.kubectl().ok(&["delete", "app", "web", "-n", "default"]);
    until("the Deployment to go with its App", WAIT, || {
        get(&sb, &["deployment", "web", "-n", "default"])
            .is_none()
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(get(&sb, &["deployment", "web", "-n", "default"]).is_none());
    assert!(server.healthy());
}

#[test]
fn drift_is_repaired_and_spec_changes_roll_out() {
    let sb = ServedSandbox::start();
    let _server = Server::start(&sb, None);
    apply(&sb, BARE_APP);
    app_in_phase(&sb, "default", "web", "Running");
    let uid_of = |kind: &str| {
        get(&sb, &[kind, "web", "-n", "default"]).map(|o| o["metadata"]["uid"].clone())
    };
    for kind in ["deployment", "service", "ingress"] {
        let before = uid_of(kind).expect("made");
        sb.kubectl().ok(&["delete", kind, "web", "-n", "default"]);
        until(&format!("the {kind} to come back"), WAIT, || {
            uid_of(kind).filter(|uid| *uid != before)
        });
    }
    // A hand edit of an owned object is put back.
    sb.kubectl().ok(&[
        "patch",
        "deployment",
        "web",
        "-n",
        "default",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"evil:1"}]}}}}"#,
    ]);
    until("the image to be put back", WAIT, || {
        let d = get(&sb, &["deployment", "web", "-n", "default"])?;
        (d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27").then_some(())
    });
    // Changing the App rolls out.
    sb.kubectl().ok(&[
        "patch",
        "app",
        "web",
        "-n",
        "default",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"image":"nginx:1.28","replicas":2}}"#,
    ]);
    until("the new image and replicas", WAIT, || {
        let d = get(&sb, &["deployment", "web", "-n", "default"])?;
        (d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
            && d["spec"]["replicas"] == 2)
            .then_some(())
    });
    let status = until("the status of generation 2", WAIT, || {
        let app = get(&sb, &["app", "web", "-n", "default"])?;
        (app["status"]["observedGeneration"] == 2 && app["status"]["phase"] == "Running")
            .then(|| app["status"].clone())
    });
    assert_eq!(status["replicas"], 2, "{status}");
    sb.kubectl().ok(&[
        "patch",
        "app",
        "web",
        "-n",
        "default",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":0}}"#,
    ]);
    let stopped = app_in_phase(&sb, "default", "web", "Stopped");
    assert_eq!(
        stopped["conditions"][0]["reason"], "ScaledToZero",
        "{stopped}"
    );
}

#[test]
fn the_verbs_and_the_server_write_with_one_field_manager() {
    let sb = ServedSandbox::start();
    let server = Server::start(&sb, None);
    server.said("holding the lease", WAIT);
    let deployed = sb.kip(&[
        "app",
        "deploy",
        "--name",
        "api",
        "--image",
        "nginx:1.27",
        "--port",
        "80",
    ]);
    assert!(deployed.status.success(), "{}", err(&deployed));
    app_in_phase(&sb, "default", "api", "Running");
    let updated = sb.kip(&["app", "update", "api", "--image", "nginx:1.29"]);
    assert!(updated.status.success(), "{}", err(&updated));
    let d = get(
        &sb,
        &[
            "deployment",
            "api",
            "-n",
            "default",
            "--show-managed-fields",
        ],
    )
    .expect("Deployment");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.29"
    );
    // The spec has one writer: the verbs and the server both apply as `kip`.
    let spec_managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter(|m| m.get("subresource").is_none())
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(spec_managers, ["kip"], "{}", d["metadata"]["managedFields"]);
    let status = app_in_phase(&sb, "default", "api", "Running");
    assert_eq!(status["observedGeneration"], 2, "{status}");
}

#[test]
fn projects_make_and_remove_their_namespaces() {
    let sb = ServedSandbox::start();
    let _server = Server::start(&sb, None);
    apply(
        &sb,
        "apiVersion: kipper.run/v1alpha1
kind: Project
metadata: {name: shop}
spec: {environments: [test, prod]}
",
    );
    let namespaces = |sb: &ServedSandbox| {
        let list = sb
            .kubectl()
            .json(&["get", "namespaces", "-l", "kipper.run/project=shop"]);
        let mut names: Vec<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|ns| ns["metadata"]["deletionTimestamp"].is_null())
            .map(|ns| ns["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    until("both namespaces", WAIT, || {
        (namespaces(&sb) == ["shop-prod", "shop-test"]).then_some(())
    });
    let project = until("the project's status", WAIT, || {
        let p = get(&sb, &["project", "shop"])?;
        (p["status"]["phase"] == "Ready").then_some(p)
    });
    assert_eq!(
        project["status"]["namespaces"],
        serde_json::json!(["shop-test", "shop-prod"])
    );
    // kip sees the project the server made.
    let used = sb.kip(&["project", "use", "shop/prod"]);
    assert!(used.status.success(), "{}", err(&used));
    // An environment dropped from the Project takes its namespace with it.
    sb.kubectl().ok(&[
        "patch",
        "project",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"environments":["test"]}}"#,
    ]);
    until("shop-prod to go", WAIT, || {
        (namespaces(&sb) == ["shop-test"]).then_some(())
    });
    // The verb that adds one works with the server running, and the server leaves it be.
    let added = sb.kip(&["project", "add-env", "shop", "acc"]);
    assert!(added.status.success(), "{}", err(&added));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(namespaces(&sb), ["shop-acc", "shop-test"]);
    // A namespace the project does not own is never touched.
    apply(
        &sb,
        "apiVersion: v1
kind: Namespace
metadata:
  name: shop-mine
  labels: {app.kubernetes.io/managed-by: kipper, kipper.run/project: shop}
",
    );
    sb.kubectl()
        .ok(&["annotate", "project", "shop", "touched=yes", "--overwrite"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(get(&sb, &["namespace", "shop-mine"]).is_some());
}

#[test]
fn a_service_applied_with_kubectl_gets_its_statefulset_and_credentials() {
    let sb = ServedSandbox::start();
    let _server = Server::start(&sb, None);
    apply(
        &sb,
        "apiVersion: kipper.run/v1alpha1
kind: Service
metadata: {name: db, namespace: default}
spec: {type: postgres}
",
    );
    let set = until("the StatefulSet", WAIT, || {
        get(&sb, &["statefulset", "db", "-n", "default"])
    });
    let image = set["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(image.starts_with("postgres:"), "{image}");
    let secret = get(&sb, &["secret", "db-credentials", "-n", "default"]);
    assert!(secret.is_some(), "no credentials Secret");
    let before = set["metadata"]["uid"].clone();
    sb.kubectl()
        .ok(&["delete", "statefulset", "db", "-n", "default"]);
    until("the StatefulSet to come back", WAIT, || {
        let set = get(&sb, &["statefulset", "db", "-n", "default"])?;
        (set["metadata"]["uid"] != before).then_some(())
    });
    // kip's own read verb shows the service the server made.
    let info = sb.kip(&["service", "list", "-o", "json"]);
    assert!(info.status.success(), "{}", err(&info));
    assert!(out(&info).contains("\"db\""), "{}", out(&info));
}

/// A user's override of lib/reconcile.rhai and of a template changes what the server does; a
/// script that throws becomes a Failed status naming its file and line, the server goes on,
/// and the resource recovers once the cause is gone.
#[test]
fn overrides_steer_the_server_and_a_failing_script_becomes_a_condition() {
    let sb = ServedSandbox::start();
    let scripts = tempfile::tempdir().expect("scripts");
    std::fs::create_dir_all(scripts.path().join("lib")).unwrap();
    std::fs::write(
        scripts.path().join("lib/reconcile.rhai"),
        r#"import "lib/apps" as apps;

fn app(app) {
    if app.metadata.labels?.broken == "yes" {
        throw kip::error("invalid", "this app is marked broken");
    }
    apps::apply_objects(app);
    apps::status(app, k8s::get_opt("apps/v1", "Deployment", app.metadata.namespace, app.metadata.name))
}
"#,
    )
    .unwrap();
    // The stdlib's Deployment template, with one label more.
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/app/deployment.yaml.j2"),
    )
    .expect("template");
    let with_label = template.replacen("  labels:\n", "  labels:\n    team: blue\n", 1);
    assert_ne!(with_label, template, "the template has a labels block");
    std::fs::create_dir_all(scripts.path().join("templates/app")).unwrap();
    std::fs::write(
        scripts.path().join("templates/app/deployment.yaml.j2"),
        with_label,
    )
    .unwrap();
    let server = Server::start(&sb, Some(scripts.path()));
    apply(&sb, BARE_APP);
    app_in_phase(&sb, "default", "web", "Running");
    let d = get(&sb, &["deployment", "web", "-n", "default"]).expect("Deployment");
    assert_eq!(d["metadata"]["labels"]["team"], "blue", "{}", d["metadata"]);

    apply(
        &sb,
        "apiVersion: kipper.run/v1alpha1
kind: App
metadata: {name: bad, namespace: default, labels: {broken: 'yes'}}
spec: {image: 'nginx:1.27', port: 80}
",
    );
    let failed = app_in_phase(&sb, "default", "bad", "Failed");
    let message = failed["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let file = scripts.path().join("lib/reconcile.rhai");
    assert!(
        message.contains(&format!("{}:5:", file.display()))
            && message.contains("this app is marked broken"),
        "{message}"
    );
    assert_eq!(failed["conditions"][0]["reason"], "ReconcileFailed");
    assert!(get(&sb, &["deployment", "bad", "-n", "default"]).is_none());
    assert!(server.healthy(), "{}", server.log());
    assert!(
        server.log().contains("App default/bad:"),
        "{}",
        server.log()
    );
    // The other app is still looked after.
    sb.kubectl()
        .ok(&["delete", "deployment", "web", "-n", "default"]);
    until("web's Deployment to come back", WAIT, || {
        get(&sb, &["deployment", "web", "-n", "default"])
    });
    // Fixed: the next try (backoff, or the change itself) brings it up.
    sb.kubectl()
        .ok(&["label", "app", "bad", "-n", "default", "broken-"]);
    app_in_phase(&sb, "default", "bad", "Running");
}

#[test]
fn one_server_works_at_a_time_and_another_takes_over_from_a_killed_one() {
    let sb = ServedSandbox::start();
    let mut first = Server::start(&sb, None);
    first.said("holding the lease", WAIT);
    let second = Server::start(&sb, None);
    second.said("waiting for the lease kipper-system/kip-server", WAIT);
    let lease = get(&sb, &["lease", "kip-server", "-n", "kipper-system"]).expect("Lease");
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!holder.is_empty());
    apply(&sb, BARE_APP);
    app_in_phase(&sb, "default", "web", "Running");
    assert!(first.log().contains("App default/web"), "{}", first.log());
    assert!(
        !second.log().contains("App default/web"),
        "{}",
        second.log()
    );

    first.kill9();
    second.said(
        "holding the lease kipper-system/kip-server: reconciling",
        WAIT,
    );
    let lease = get(&sb, &["lease", "kip-server", "-n", "kipper-system"]).expect("Lease");
    assert_ne!(lease["spec"]["holderIdentity"], holder.as_str());
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
    sb.kubectl()
        .ok(&["delete", "deployment", "web", "-n", "default"]);
    until("the second server to repair the Deployment", WAIT, || {
        get(&sb, &["deployment", "web", "-n", "default"])
    });
}

/// A server killed while it works through many resources leaves some unreconciled; the next
/// one (after the lease expires) finishes them.
#[test]
fn a_server_killed_mid_reconcile_converges_after_restart() {
    let sb = ServedSandbox::start();
    let mut server = Server::start(&sb, None);
    server.said("holding the lease", WAIT);
    let mut yaml = String::new();
    for i in 0..30 {
        yaml.push_str(&format!(
            "---\napiVersion: kipper.run/v1alpha1\nkind: App\nmetadata: {{name: app{i}, namespace: default}}\nspec: {{image: 'nginx:1.27', port: 80}}\n"
        ));
    }
    apply(&sb, &yaml);
    server.said("App default/app", WAIT);
    server.kill9();
    let running = |sb: &ServedSandbox| {
        sb.kubectl()
            .json(&["get", "apps.kipper.run", "-n", "default"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"]["phase"] == "Running")
            .count()
    };
    let at_kill = running(&sb);
    let restarted = Server::start(&sb, None);
    restarted.said("holding the lease", WAIT);
    until("all 30 apps to run", Duration::from_secs(60), || {
        (running(&sb) == 30).then_some(())
    });
    let deployments = sb.kubectl().json(&["get", "deployments", "-n", "default"]);
    assert_eq!(
        deployments["items"].as_array().unwrap().len(),
        30,
        "{at_kill} were running when the first server was killed"
    );
}

#[test]
fn bad_invocations_say_what_is_wrong() {
    let sb = ServedSandbox::start();
    let help = sb.kip(&["server", "--help"]);
    assert!(help.status.success(), "{}", err(&help));
    for flag in ["--listen", "--lease-seconds", "--concurrency", "--identity"] {
        assert!(out(&help).contains(flag), "{}", out(&help));
    }
    let bad = sb.kip(&["server", "--lease-seconds", "1"]);
    assert_eq!(bad.status.code(), Some(2), "{}", err(&bad));
    assert!(err(&bad).contains("--lease-seconds"), "{}", err(&bad));
    // The address is taken: said at once, with the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let busy = sb.kip(&["server", "--listen", &address]);
    assert_eq!(busy.status.code(), Some(1), "{}", err(&busy));
    assert!(
        err(&busy).contains(&format!("cannot listen on {address}")),
        "{}",
        err(&busy)
    );
    // No cluster to talk to: said at once, naming it.
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.yaml");
    std::fs::write(
        &config,
        "current-cluster: gone\nclusters:\n- name: gone\n  server: http://127.0.0.1:9\n",
    )
    .unwrap();
    let unreachable = crate::common::kip_command()
        .args(["server", "--listen", "127.0.0.1:0"])
        .env("KIP_HOME", home.path())
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    assert!(err(&unreachable).contains("gone"), "{}", err(&unreachable));
}

/// In a pod, `kip install` tells the server the cluster's id and domain: an App applied
/// without a host gets `<app>-<cluster-id>.<domain>`, as `kip app deploy` gives it.
#[test]
fn the_cluster_id_and_domain_name_bare_apps_hosts() {
    let sb = ServedSandbox::start();
    let _server = Server::start_with(
        &sb,
        None,
        &[
            ("KIP_CLUSTER_ID", "203-0-113-10"),
            ("KIP_DOMAIN", "kipper.run"),
        ],
    );
    apply(&sb, BARE_APP);
    let status = app_in_phase(&sb, "default", "web", "Running");
    assert_eq!(status["host"], "web-203-0-113-10.kipper.run", "{status}");
    let ingress = get(&sb, &["ingress", "web", "-n", "default"]).expect("Ingress");
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "web-203-0-113-10.kipper.run"
    );
}

/// `kip sandbox up --server` starts kip server beside the sandbox and says so; `status` shows
/// it, a second `up --server` finds it, and `down` stops both.
#[test]
fn sandbox_up_with_server_runs_it_beside_the_sandbox() {
    let home = tempfile::tempdir().unwrap();
    let kip = |args: &[&str]| {
        crate::common::kip_in(home.path())
            .without("KUBECONFIG")
            .run(args)
    };
    let up = kip(&["sandbox", "up", "--server"]);
    assert!(up.status.success(), "{}", err(&up));
    assert!(
        out(&up).contains("✔ kip server running beside it at http://127.0.0.1:"),
        "{}",
        out(&up)
    );
    let kubeconfig = home.path().join("sandbox/kubeconfig");
    let kubectl = crate::common::Kubectl::new(&kubeconfig, home.path());
    kubectl.ok_stdin(&["apply", "-f", "-"], BARE_APP);
    until("the server beside the sandbox to run the app", WAIT, || {
        let app = kubectl.json(&["get", "app", "web", "-n", "default"]);
        (app["status"]["phase"] == "Running").then_some(())
    });
    let status = kip(&["sandbox", "status"]);
    assert!(
        out(&status).contains("kip server: http://127.0.0.1:"),
        "{}",
        out(&status)
    );
    let again = kip(&["sandbox", "up", "--server"]);
    assert!(
        out(&again).contains("kip server already running beside it"),
        "{}",
        out(&again)
    );
    let pid: i32 = std::fs::read_to_string(home.path().join("sandbox/server.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let down = kip(&["sandbox", "down"]);
    assert!(
        out(&down).contains("✔ kip server stopped"),
        "{}",
        out(&down)
    );
    // SAFETY: signal 0 only checks whether the process exists.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the server still runs");
}

/// Features turned on and off by editing the App with kubectl: the server makes the objects
/// of an autoscaler and a route group prefix, records them in `status.parts`, and removes them
/// when the App no longer asks for them.
#[test]
fn optional_objects_follow_the_app_both_ways() {
    let sb = ServedSandbox::start();
    let _server = Server::start(&sb, None);
    apply(&sb, BARE_APP);
    app_in_phase(&sb, "default", "web", "Running");
    let patch = |body: &str| {
        sb.kubectl().ok(&[
            "patch", "app", "web", "-n", "default", "--type", "merge", "-p", body,
        ]);
    };
    patch(
        r#"{"spec":{"autoscale":{"min":2,"max":4},"route":{"group":"shop","path":"/web","host":"shop-sandbox.localhost"}}}"#,
    );
    until("the autoscaler and the prefix Middleware", WAIT, || {
        let hpa = get(&sb, &["hpa", "web", "-n", "default"])?;
        get(
            &sb,
            &["middleware.traefik.io", "web-strip", "-n", "default"],
        )?;
        (hpa["spec"]["maxReplicas"] == 4).then_some(())
    });
    until("status.parts", WAIT, || {
        let app = get(&sb, &["app", "web", "-n", "default"])?;
        (app["status"]["parts"]
            == serde_json::json!(["HorizontalPodAutoscaler/web", "Middleware/web-strip"]))
        .then_some(())
    });
    let cert = get(
        &sb,
        &["certificate.cert-manager.io", "route-shop", "-n", "default"],
    )
    .expect("the group's certificate");
    assert_eq!(cert["metadata"]["ownerReferences"][0]["name"], "web");
    patch(r#"{"spec":{"autoscale":null,"route":{"group":null,"path":"/","host":null}}}"#);
    until("the autoscaler and the Middleware to go", WAIT, || {
        let gone = get(&sb, &["hpa", "web", "-n", "default"]).is_none()
            && get(
                &sb,
                &["middleware.traefik.io", "web-strip", "-n", "default"],
            )
            .is_none();
        gone.then_some(())
    });
    until("the Deployment to keep its own replicas", WAIT, || {
        let d = get(&sb, &["deployment", "web", "-n", "default"])?;
        d["spec"]["replicas"].is_number().then_some(())
    });
}

#[test]
fn kip_server_serves_the_console_with_the_clusters_token() {
    let sb = ServedSandbox::start();
    sb.kip_ok(&["project", "create", "shop", "--environments", "test"]);
    let server = Server::start(&sb, None);
    // The token is made once, in a Secret an admin reads with kubectl; a restarted server
    // keeps it.
    let secret = sb.kubectl().json(&[
        "get",
        "secret",
        "kip-console",
        "-n",
        "kipper-system",
        "-o",
        "json",
    ]);
    let token = crate::common::secret_value(&secret, "token");
    assert_eq!(token.len(), 64, "{secret}");
    let raw = |path: &str, cookie: Option<&str>| {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
        crate::common::raw_exchange_with(
            &server.address,
            &server.address,
            "GET",
            path,
            &headers,
            b"",
        )
        .expect("kip server answers")
    };
    assert_eq!(raw("/projects", None).0, 303);
    assert_eq!(raw("/login?token=wrong", None).0, 401);
    let (code, head, _) = raw(&format!("/login?token={token}"), None);
    assert_eq!(code, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (code, _, page) = raw("/projects", Some(&cookie));
    assert_eq!(code, 200);
    assert!(page.contains("href=\"/projects/shop\""), "{page}");
    assert!(
        server.log().contains("console at http://"),
        "{}",
        server.log()
    );
    drop(server);
    let again = Server::start(&sb, None);
    let secret = sb.kubectl().json(&[
        "get",
        "secret",
        "kip-console",
        "-n",
        "kipper-system",
        "-o",
        "json",
    ]);
    assert_eq!(crate::common::secret_value(&secret, "token"), token);
    drop(again);
    // A token given to the server (--console-token, KIP_CONSOLE_TOKEN) opens it instead.
    let chosen = Server::start_with(
        &sb,
        None,
        &[("KIP_CONSOLE_TOKEN", "chosen-token-0123456789")],
    );
    let login = |token: &str| {
        crate::common::raw_exchange_with(
            &chosen.address,
            &chosen.address,
            "GET",
            &format!("/login?token={token}"),
            &[],
            b"",
        )
        .expect("kip server answers")
        .0
    };
    assert_eq!(login("chosen-token-0123456789"), 303);
    assert_eq!(login(&token), 401);
    assert!(
        chosen.log().contains("(token: --console-token)"),
        "{}",
        chosen.log()
    );
    drop(chosen);
    let short = sb.kip(&["server", "--console-token", "short"]);
    assert!(!short.status.success());
    assert!(
        crate::common::stderr(&short).contains("--console-token is too short"),
        "{}",
        crate::common::stderr(&short)
    );
}
