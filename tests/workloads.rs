//! Real workloads in the sandbox: pods run as podman containers (runc, vfs) from an image
//! built here, checked with kubectl and with HTTP to the pods' own addresses.
//!
//! The image is busybox (Debian's static build) in an image of its own, built once per machine
//! into a podman store every sandbox of these tests shares (`KIP_CONTAINERS`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Kubectl, ServedSandbox, free_port, raw_request};
use crate::tunnel::Tunnel;

/// The podman store the tests' sandboxes share, so that images are built once per machine.
pub fn shared_containers() -> PathBuf {
    PathBuf::from("/var/tmp/kip-test-containers")
}

/// busybox as an image (`httpd`, `sh`, `nslookup`…) with curl.
pub const BUSYBOX: &str = "localhost/kip-test-busybox:2";

/// Builds [`BUSYBOX`] into the shared store unless it is there.
pub fn busybox_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let containers =
            sandbox::containers::Containers::at(&shared_containers()).expect("shared store");
        let exists = containers
            .command("podman")
            .args(["image", "exists", BUSYBOX])
            .status()
            .expect("podman");
        if exists.success() {
            return;
        }
        let dir = tempfile::tempdir().expect("context");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("bin")).expect("root");
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("copy /bin/busybox (apt-get install busybox-static)");
        // busybox is static, and a static glibc cannot resolve names: curl (dynamic, with the
        // libraries ldd lists) is the client that looks names up as applications do.
        let mut files = vec![PathBuf::from("/usr/bin/curl")];
        let ldd = Command::new("ldd")
            .arg("/usr/bin/curl")
            .output()
            .expect("ldd");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = line.split("=>").last().unwrap_or(line).trim();
            let path = path.split(" (").next().unwrap_or("").trim();
            if path.starts_with('/') {
                files.push(PathBuf::from(path));
            }
        }
        for file in files {
            let target = root.join(file.strip_prefix("/").expect("absolute"));
            std::fs::create_dir_all(target.parent().expect("parent")).expect("folder");
            std::fs::copy(&file, &target).expect("copy a library");
        }
        build_image(
            &[BUSYBOX],
            dir.path(),
            "FROM scratch\nCOPY root/ /\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
        );
    });
    BUSYBOX
}

/// Builds the context `dir` with `dockerfile` into the shared store, tagged `tags`.
pub(crate) fn build_image(tags: &[&str], dir: &std::path::Path, dockerfile: &str) {
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("Dockerfile");
    let containers =
        sandbox::containers::Containers::at(&shared_containers()).expect("shared store");
    let mut bud = containers.command("buildah");
    bud.args(["--storage-driver", "vfs", "bud", "-q"]);
    for tag in tags {
        bud.args(["-t", tag]);
    }
    let out = bud.arg(dir).output().expect("buildah");
    assert!(
        out.status.success(),
        "buildah: {}",
        crate::common::text(&out)
    );
}

/// A sandbox whose pods run as containers; stopped with SIGTERM so it removes them.
pub struct RealSandbox {
    pub sandbox: ServedSandbox,
}

impl RealSandbox {
    pub fn start() -> RealSandbox {
        busybox_image();
        let store = shared_containers();
        let store = store.to_str().expect("utf-8 path");
        RealSandbox {
            sandbox: ServedSandbox::start_with(
                &["--runtime", "podman"],
                &[("KIP_CONTAINERS", store)],
            ),
        }
    }

    pub fn kubectl(&self) -> Kubectl {
        self.sandbox.kubectl()
    }

    /// Stops the sandbox as `kip sandbox down` does (SIGTERM: its containers go, their data
    /// stays), killing it if it takes over 20 s.
    fn stop(&mut self) {
        let Some(mut child) = self.sandbox.child.take() else {
            return;
        };
        // SAFETY: kill takes no pointers; the pid is our own child's.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for RealSandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `kubectl get pod NAME -o json` until `done` holds (at most `limit`); the last pod.
pub fn wait_pod(k: &Kubectl, name: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let pod = k.json(&["get", "pod", name, "-o", "json"]);
        if done(&pod) {
            return pod;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} did not get there in {limit:?}: {}",
            serde_json::to_string_pretty(&pod["status"]).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// GET `path` from `address`: the status and body, or None when nothing answers.
pub fn get(address: &str, path: &str) -> Option<(u16, String)> {
    raw_request(address, "GET", path, None, &[]).ok()
}

#[test]
fn a_pod_runs_with_its_env_config_and_secret_and_answers_at_its_address() {
    let sb = RealSandbox::start();
    let k = sb.kubectl();
    k.ok(&[
        "create",
        "configmap",
        "site",
        "--from-literal=index.html=hello from a configmap",
    ]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=TOKEN=s3cr3t",
    ]);
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "web"}},
        "spec": {{"containers": [{{"name": "web", "image": "{BUSYBOX}",
          "command": ["httpd"], "args": ["-f", "-v", "-p", "$(PORT)", "-h", "/www"],
          "env": [{{"name": "PORT", "value": "8080"}}],
          "envFrom": [{{"secretRef": {{"name": "creds"}}}}],
          "workingDir": "/www",
          "ports": [{{"containerPort": 8080}}],
          "volumeMounts": [{{"name": "site", "mountPath": "/www", "readOnly": true}}]}}],
          "volumes": [{{"name": "site", "configMap": {{"name": "site"}}}}]}}}}"#
    );
    k.ok_stdin(&["apply", "-f", "-"], &manifest);
    let pod = wait_pod(&k, "web", Duration::from_secs(60), ready);
    let ip = pod["status"]["podIP"].as_str().expect("pod IP").to_string();
    assert!(ip.starts_with("10.42."), "{ip}");
    assert!(
        pod["status"]["containerStatuses"][0]["containerID"]
            .as_str()
            .is_some_and(|id| id.starts_with("podman://")),
        "{pod}"
    );
    // HTTP to the pod's own address, from this machine.
    let (status, body) = get(&format!("{ip}:8080"), "/index.html").expect("the pod answers");
    assert_eq!(status, 200);
    assert_eq!(body, "hello from a configmap");
    // exec runs in the container: its environment, its working dir, its hostname.
    let out = k.ok(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo $TOKEN $PORT $(pwd) $(hostname)",
    ]);
    assert_eq!(out.trim(), "s3cr3t 8080 /www web");
    // What the container printed (busybox httpd -v logs each request) is its log.
    let logs = k.ok(&["logs", "web"]);
    assert!(logs.contains("response:200"), "{logs}");
    // port-forward reaches the container.
    let local = free_port();
    let mut forward = Command::new("kubectl")
        .args(["port-forward", "pod/web", &format!("{local}:8080")])
        .env("KUBECONFIG", sb.sandbox.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        if let Some(answer) = get(&format!("127.0.0.1:{local}"), "/index.html") {
            break answer;
        }
        assert!(Instant::now() < deadline, "port-forward never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = forward.kill();
    let _ = forward.wait();
    assert_eq!(answer, (200, "hello from a configmap".to_string()));
    // Deleting the pod stops its container: the address no longer answers.
    k.ok(&["delete", "pod", "web", "--wait=false"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{ip}:8080"), "/index.html").is_some() {
        assert!(Instant::now() < deadline, "the deleted pod still answers");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_crashing_container_loops_with_its_exit_code_and_previous_log() {
    let sb = RealSandbox::start();
    let k = sb.kubectl();
    k.ok(&[
        "run",
        "crash",
        "--image",
        BUSYBOX,
        "--command",
        "--",
        "sh",
        "-c",
        "echo dying loudly; exit 3",
    ]);
    let pod = wait_pod(&k, "crash", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let status = &pod["status"]["containerStatuses"][0];
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 3, "{status}");
    assert_eq!(
        status["lastState"]["terminated"]["reason"], "Error",
        "{status}"
    );
    assert!(status["restartCount"].as_i64() >= Some(1), "{status}");
    assert!(!ready(&pod));
    let previous = k.ok(&["logs", "crash", "--previous"]);
    assert_eq!(previous.trim(), "dying loudly");
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=crash",
    ]);
    assert!(events.contains("BackOff"), "{events}");
    // A pod that must not restart ends Failed with the code.
    k.ok(&[
        "run",
        "once",
        "--image",
        BUSYBOX,
        "--restart",
        "Never",
        "--command",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    let pod = wait_pod(&k, "once", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        7
    );
    k.ok(&[
        "run",
        "fine",
        "--image",
        BUSYBOX,
        "--restart",
        "Never",
        "--command",
        "--",
        "true",
    ]);
    wait_pod(&k, "fine", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Succeeded"
    });
}

#[test]
fn an_image_that_cannot_be_had_leaves_the_pod_simulated_and_says_why() {
    let sb = RealSandbox::start();
    let k = sb.kubectl();
    k.ok(&["run", "ghost", "--image", "nginx:0.0.0-nowhere"]);
    let pod = wait_pod(&k, "ghost", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Running"
    });
    let simulated = pod["status"]["conditions"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["type"] == "sandbox.kipper.run/Simulated")
        })
        .cloned()
        .unwrap_or_else(|| panic!("no Simulated condition: {pod}"));
    assert_eq!(simulated["status"], "True");
    assert_eq!(simulated["reason"], "ImageNotAvailable");
    let message = simulated["message"].as_str().unwrap_or("");
    assert!(message.contains("image nginx:0.0.0-nowhere"), "{message}");
    assert!(message.contains("kip sandbox image build"), "{message}");
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=ghost",
    ]);
    assert!(events.contains("ImageNotAvailable"), "{events}");
    // A registry the sandbox does not reach is named as such.
    k.ok(&["run", "far", "--image", "registry.example.com/team/app:1"]);
    let pod = wait_pod(&k, "far", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Running"
    });
    assert!(
        pod.to_string().contains("sandbox.kipper.run/Simulated"),
        "{pod}"
    );
}

#[test]
fn readiness_probes_decide_ready_and_liveness_probes_restart() {
    let sb = RealSandbox::start();
    let k = sb.kubectl();
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "probed"}},
        "spec": {{"containers": [{{"name": "web", "image": "{BUSYBOX}",
          "command": ["sh", "-c", "mkdir -p /www && httpd -f -p 8080 -h /www"],
          "readinessProbe": {{"httpGet": {{"path": "/ready", "port": 8080}}, "periodSeconds": 1,
            "timeoutSeconds": 5}},
          "livenessProbe": {{"exec": {{"command": ["test", "!", "-e", "/www/broken"]}},
            "periodSeconds": 1, "failureThreshold": 2, "timeoutSeconds": 5}}}}]}}}}"#
    );
    // Probes get 5 s: on a loaded machine an exec probe can take over the default 1 s, and a
    // timed-out liveness probe would restart the container under the test's feet.
    k.ok_stdin(&["apply", "-f", "-"], &manifest);
    let pod = wait_pod(&k, "probed", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    assert!(!ready(&pod), "ready before its probe passed: {pod}");
    // Not ready while /ready is missing; ready once it is there.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!ready(&k.json(&["get", "pod", "probed", "-o", "json"])));
    k.ok(&["exec", "probed", "--", "touch", "/www/ready"]);
    wait_pod(&k, "probed", Duration::from_secs(30), ready);
    k.ok(&["exec", "probed", "--", "rm", "/www/ready"]);
    wait_pod(&k, "probed", Duration::from_secs(30), |p| !ready(p));
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=probed",
    ]);
    assert!(events.contains("Readiness probe failed"), "{events}");
    // A failing liveness probe restarts the container.
    k.ok(&["exec", "probed", "--", "touch", "/www/broken"]);
    let pod = wait_pod(&k, "probed", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)
    });
    assert!(
        pod["status"]["containerStatuses"][0]["lastState"]["terminated"].is_object(),
        "{pod}"
    );
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=probed",
    ]);
    assert!(
        events.contains("failed liveness probe, will be restarted"),
        "{events}"
    );
}

#[test]
fn init_containers_run_first_and_claims_keep_their_data() {
    let sb = RealSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}"#,
    );
    let pod = |name: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
            "spec": {{"restartPolicy": "Never",
              "initContainers": [
                {{"name": "first", "image": "{BUSYBOX}", "command": ["sh", "-c", "echo first >> /work/order"],
                  "volumeMounts": [{{"name": "work", "mountPath": "/work"}}]}},
                {{"name": "second", "image": "{BUSYBOX}", "command": ["sh", "-c", "echo second >> /work/order"],
                  "volumeMounts": [{{"name": "work", "mountPath": "/work"}}]}}],
              "containers": [{{"name": "main", "image": "{BUSYBOX}",
                "command": ["sh", "-c", "cat /work/order; echo {name} >> /data/runs; cat /data/runs"],
                "volumeMounts": [{{"name": "work", "mountPath": "/work"}}, {{"name": "data", "mountPath": "/data"}}]}}],
              "volumes": [{{"name": "work", "emptyDir": {{}}}},
                {{"name": "data", "persistentVolumeClaim": {{"claimName": "data"}}}}]}}}}"#
        )
    };
    k.ok_stdin(&["apply", "-f", "-"], &pod("one"));
    let done = wait_pod(&k, "one", Duration::from_secs(90), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    let inits = done["status"]["initContainerStatuses"]
        .as_array()
        .expect("init statuses");
    assert_eq!(inits.len(), 2);
    assert!(
        inits
            .iter()
            .all(|c| c["state"]["terminated"]["exitCode"] == 0),
        "{inits:?}"
    );
    assert_eq!(k.ok(&["logs", "one"]), "first\nsecond\none\n");
    // A second pod sees what the first wrote on the claim; its emptyDir starts empty.
    k.ok_stdin(&["apply", "-f", "-"], &pod("two"));
    wait_pod(&k, "two", Duration::from_secs(90), |p| {
        p["status"]["phase"] == "Succeeded"
    });
    assert_eq!(k.ok(&["logs", "two"]), "first\nsecond\none\ntwo\n");
}

#[test]
fn pods_reach_services_by_dns_name_and_cluster_ip_and_nothing_else() {
    let sb = RealSandbox::start();
    let k = sb.kubectl();
    k.ok(&["create", "namespace", "shop-test"]);
    k.ok(&[
        "-n",
        "shop-test",
        "run",
        "api",
        "--image",
        BUSYBOX,
        "--labels",
        "app=api",
        "--command",
        "--",
        "sh",
        "-c",
        "mkdir /www && echo api here > /www/index.html && httpd -f -p 8080 -h /www",
    ]);
    k.ok(&[
        "-n",
        "shop-test",
        "expose",
        "pod",
        "api",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    k.ok(&[
        "-n",
        "shop-test",
        "run",
        "client",
        "--image",
        BUSYBOX,
        "--command",
        "--",
        "sleep",
        "3600",
    ]);
    let kn = |args: &[&str]| {
        let mut all = vec!["-n", "shop-test"];
        all.extend(args);
        k.ok(&all)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(&k.json(&["-n", "shop-test", "get", "pod", "api", "-o", "json"]))
        || !ready(&k.json(&["-n", "shop-test", "get", "pod", "client", "-o", "json"]))
    {
        assert!(Instant::now() < deadline, "pods not ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let cluster_ip = kn(&["get", "service", "api", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(cluster_ip.starts_with("10.43."), "{cluster_ip}");
    // The full name, the short name (the pod's search domains) and the ClusterIP all answer.
    for url in [
        "http://api.shop-test.svc.cluster.local/".to_string(),
        "http://api/".to_string(),
        format!("http://{cluster_ip}/"),
    ] {
        let out = kn(&[
            "exec",
            "client",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "5",
            &url,
        ]);
        assert_eq!(out.trim(), "api here", "{url}");
    }
    let resolved = kn(&[
        "exec",
        "client",
        "--",
        "nslookup",
        "api.shop-test.svc.cluster.local",
    ]);
    assert!(resolved.contains(&cluster_ip), "{resolved}");
    // Names outside the cluster are unknown: there is no upstream to ask.
    let out = k.run(&[
        "-n",
        "shop-test",
        "exec",
        "client",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        "http://example.com/",
    ]);
    assert!(!out.status.success(), "{}", crate::common::text(&out));
    assert!(
        crate::common::text(&out).contains("Could not resolve host"),
        "{}",
        crate::common::text(&out)
    );
    // The pod network is confined by the sandbox's rules (checked by reading them: no packet
    // is sent anywhere to find out).
    let rules = Command::new("iptables")
        .args(["-t", "mangle", "-S", "PREROUTING"])
        .output()
        .expect("iptables");
    let rules = String::from_utf8_lossy(&rules.stdout).to_string();
    assert!(
        rules.contains("kip sandbox") && rules.contains("-j DROP"),
        "{rules}"
    );
}

/// An app image: busybox's httpd on `$PORT` (8080) with a CGI that echoes the path it was
/// asked for and the pod's name.
pub const APP: &str = "localhost/kip-test-app:1";
/// The same app under another tag: a new version to roll out.
pub const APP_NEXT: &str = "localhost/kip-test-app:2";

/// Builds [`APP`] (and the busybox image under it) into the shared store unless it is there.
pub fn app_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        busybox_image();
        let dir = tempfile::tempdir().expect("context");
        std::fs::write(
            dir.path().join("echo"),
            "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"path=$REQUEST_URI pod=$(hostname)\"\n",
        )
        .expect("cgi");
        build_image(
            &[APP, APP_NEXT],
            dir.path(),
            &format!(
                "FROM {BUSYBOX}\nCOPY echo /www/cgi-bin/echo\nRUN chmod 755 /www/cgi-bin/echo && echo home > /www/index.html\n\
                 CMD [\"sh\", \"-c\", \"exec httpd -f -p ${{PORT:-8080}} -h /www\"]\n"
            ),
        );
    });
    APP
}

/// The instance-ID sidecar's image, under the name kip gives it by default, in the shared
/// store: built by `kip sandbox image prepare instance-id` from this build's kip-instance-id
/// (forced, so that each run tests that path and runs the sidecar it just built).
pub fn sidecar_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let home = tempfile::tempdir().expect("kip home");
        let out = crate::common::kip_command()
            .args(["sandbox", "image", "prepare", "instance-id", "--force"])
            .env("KIP_HOME", home.path())
            .env("KIP_CONTAINERS", shared_containers())
            .output()
            .expect("kip sandbox image prepare");
        let said = crate::common::text(&out);
        assert!(out.status.success(), "{said}");
        let tag = format!(
            "ghcr.io/kipper-run/kip-instance-id:{}",
            env!("CARGO_PKG_VERSION")
        );
        assert!(said.contains(&format!("✔ Built {tag}")), "{said}");
    });
}

/// `GET path` at the sandbox's ingress (`port`) with `Host: host`: status, headers, body.
pub fn through_ingress(port: u16, host: &str, path: &str) -> (u16, String, String) {
    crate::common::raw_exchange(&format!("127.0.0.1:{port}"), host, "GET", path, None, &[])
        .expect("the ingress answers")
}

/// The `http://HOST:PORT/PATH` of a "Live at" line.
pub(crate) fn live_url(said: &str) -> (String, u16, String) {
    let url = said
        .lines()
        .find_map(|l| l.split("Live at ").nth(1))
        .unwrap_or_else(|| panic!("no Live at line: {said}"))
        .trim();
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not http: {url}"));
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let (host, port) = authority.rsplit_once(':').expect("a port");
    (host.to_string(), port.parse().expect("port"), path)
}

#[test]
fn a_deployed_app_answers_at_its_live_url_with_the_instance_header() {
    app_image();
    sidecar_image();
    let sb = RealSandbox::start();
    let said = sb.sandbox.kip_ok(&[
        "app", "deploy", "--name", "web", "--image", APP, "--port", "8080",
    ]);
    let (host, port, path) = live_url(&said);
    assert_eq!(host, "web-sandbox.localhost", "{said}");
    assert!(!said.contains("simulated"), "{said}");
    let (status, head, body) = through_ingress(port, &host, &format!("{path}cgi-bin/echo"));
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body.contains("path=/cgi-bin/echo"), "{body}");
    let pod = sb.kubectl().ok(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    assert!(body.contains(&format!("pod={pod}")), "{body}");
    // The sidecar names the pod that answered: the first 8 hex digits of SHA-256(pod name).
    let digest = {
        let out = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(pod.as_bytes())?;
                c.wait_with_output()
            })
            .expect("sha256sum");
        String::from_utf8_lossy(&out.stdout)[..8].to_string()
    };
    let header = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("x-instance-id: ")
                .or(l.strip_prefix("X-Instance-ID: "))
        })
        .unwrap_or_else(|| panic!("no X-Instance-ID: {head}"));
    assert_eq!(header.trim(), digest, "{head}");
    // An unknown host is not routed; the app's status reads Running.
    let (status, _, body) = through_ingress(port, "nope-sandbox.localhost", "/");
    assert_eq!(status, 404, "{body}");
    let listed = sb.sandbox.kip_ok(&["app", "list"]);
    assert!(listed.contains("web") && listed.contains("1/1"), "{listed}");
}

#[test]
fn a_route_group_strips_each_apps_prefix_on_one_host() {
    app_image();
    sidecar_image();
    let sb = RealSandbox::start();
    let deploy = |name: &str, route: &str| {
        sb.sandbox.kip_ok(&[
            "app",
            "deploy",
            "--name",
            name,
            "--image",
            APP,
            "--port",
            "8080",
            "--route",
            route,
            "--no-instance-header",
        ])
    };
    let said = deploy("webapp", "shop/");
    let (host, port, _) = live_url(&said);
    deploy("domain-service", "shop/domains-api/");
    let (status, _, body) = through_ingress(port, &host, "/domains-api/cgi-bin/echo?x=1");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("path=/cgi-bin/echo?x=1") && body.contains("pod=domain-service-"),
        "{body}"
    );
    let (status, _, body) = through_ingress(port, &host, "/cgi-bin/echo");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("path=/cgi-bin/echo") && body.contains("pod=webapp-"),
        "{body}"
    );
}

/// An image whose command prints a line and exits 2.
pub const CRASHING: &str = "localhost/kip-test-crash:1";

fn crashing_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        busybox_image();
        let dir = tempfile::tempdir().expect("context");
        build_image(
            &[CRASHING],
            dir.path(),
            &format!(
                "FROM {BUSYBOX}\nCMD [\"sh\", \"-c\", \"echo cannot start: no config; exit 2\"]\n"
            ),
        );
    });
}

#[test]
fn a_crash_looping_app_is_reported_by_kip_app_update_and_the_old_pods_keep_serving() {
    app_image();
    crashing_image();
    let sb = RealSandbox::start();
    let said = sb.sandbox.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "api",
        "--image",
        APP,
        "--port",
        "8080",
        "--no-instance-header",
    ]);
    let (host, port, _) = live_url(&said);
    let e = sb
        .sandbox
        .kip_refused(&["app", "update", "api", "--image", CRASHING]);
    assert!(e.contains("CrashLoopBackOff"), "{e}");
    assert!(e.contains("kip app logs api"), "{e}");
    // The running version stays: the new pod never became ready.
    let (status, _, body) = through_ingress(port, &host, "/cgi-bin/echo");
    assert_eq!(status, 200, "{body}");
}

impl RealSandbox {
    /// `kip ARGS` against this sandbox, with the shared image store; fails unless it succeeds.
    pub fn kip_ok(&self, args: &[&str]) -> String {
        let out = self
            .sandbox
            .kip_command(args)
            .env("KIP_CONTAINERS", shared_containers())
            .output()
            .expect("run kip");
        assert!(
            out.status.success(),
            "kip {args:?}: {}",
            crate::common::text(&out)
        );
        crate::common::text(&out)
    }

    /// Stops the sandbox as `kip sandbox down` does (its containers go, their data stays) and
    /// starts it again on the same home.
    pub fn restart(&mut self) {
        self.stop();
        self.sandbox.restart();
    }
}

/// `psql` through a local port as the service's user; its tuples-only output, or what failed.
fn psql(port: u16, password: &str, database: &str, sql: &str) -> Result<String, String> {
    let out = crate::common::postgres::psql_as(port, "skipper", password, database, sql);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(crate::common::text(&out))
    }
}

#[test]
fn postgres_is_bound_reached_through_kip_tunnel_and_keeps_its_data() {
    app_image();
    let mut sb = RealSandbox::start();
    sb.kip_ok(&["sandbox", "image", "prepare", "postgres"]);
    sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "api",
        "--image",
        APP,
        "--port",
        "8080",
        "--no-instance-header",
    ]);
    sb.kip_ok(&["service", "add", "postgres", "--name", "db"]);
    let k = sb.kubectl();
    wait_pod(&k, "db-0", Duration::from_secs(120), ready);
    let bound = sb.kip_ok(&["service", "bind", "db", "api"]);
    assert!(bound.contains("Database api created"), "{bound}");
    let secret = k.json(&["get", "secret", "db-credentials", "-o", "json"]);
    let password = crate::common::secret_value(&secret, "password");
    let port = free_port();
    let port_text = port.to_string();
    {
        let _tunnel = Tunnel::open(&sb.sandbox, &["db", "--local-port", &port_text]);
        let databases =
            psql(port, &password, "app", "SELECT datname FROM pg_database").expect("psql");
        assert!(databases.lines().any(|d| d == "api"), "{databases}");
        psql(
            port,
            &password,
            "api",
            "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('still here')",
        )
        .expect("write");
        // A wrong password is refused by the real server.
        let refused = psql(port, "wrong", "api", "SELECT 1").expect_err("wrong password");
        assert!(
            refused.contains("password authentication failed"),
            "{refused}"
        );
    }
    // The data lives on the claim's folder: a stopped and restarted sandbox still has it.
    sb.restart();
    let k = sb.kubectl();
    wait_pod(&k, "db-0", Duration::from_secs(120), ready);
    let _tunnel = Tunnel::open(&sb.sandbox, &["db", "--local-port", &port_text]);
    let kept = psql(port, &password, "api", "SELECT note FROM kept").expect("read after restart");
    assert_eq!(kept.trim(), "still here");
}

#[test]
fn a_rolling_update_drops_no_request() {
    app_image();
    let sb = RealSandbox::start();
    let said = sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "api",
        "--image",
        APP,
        "--port",
        "8080",
        "--replicas",
        "2",
        "--no-instance-header",
    ]);
    let (host, port, _) = live_url(&said);
    let k = sb.kubectl();
    let pods_before = k.ok(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=api",
        "-o",
        "name",
    ]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let (stop, host) = (stop.clone(), host.clone());
        std::thread::spawn(move || {
            let mut answers: Vec<(u16, String)> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(180);
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && Instant::now() < deadline
                && answers.len() < 20_000
            {
                let (status, _, body) = through_ingress(port, &host, "/cgi-bin/echo");
                answers.push((status, body));
            }
            answers
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    sb.kip_ok(&["app", "update", "api", "--image", APP_NEXT]);
    // Until the old pods are gone, and a little after.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = k.ok(&[
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=api",
            "-o",
            "name",
        ]);
        if pods.lines().all(|p| !pods_before.contains(p)) {
            break;
        }
        assert!(Instant::now() < deadline, "old pods never went: {pods}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = looping.join().expect("request loop");
    let failed: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(answers.len() > 20, "only {} requests", answers.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}",
        failed.len(),
        answers.len(),
        failed.first()
    );
    let pods_after = k.ok(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=api",
        "-o",
        "name",
    ]);
    let last = &answers.last().expect("answers").1;
    let served_by_new = pods_after
        .lines()
        .any(|p| last.contains(&format!("pod={}", p.trim_start_matches("pod/"))));
    assert!(served_by_new, "last answer {last:?} not from {pods_after}");
    eprintln!("rolling update: {} requests, none failed", answers.len());
}

#[test]
fn the_gateway_proxies_to_the_sandboxs_ingress_end_to_end() {
    app_image();
    let sb = RealSandbox::start();
    sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "web",
        "--image",
        APP,
        "--port",
        "8080",
        "--no-instance-header",
    ]);
    let gateway =
        crate::common::gateway::Gateway::start_for("localhost", "admin-token-for-the-sandbox-test");
    let ingress = sb.kubectl().ok(&[
        "-n",
        "kube-system",
        "get",
        "configmap",
        "kip-sandbox",
        "-o",
        "jsonpath={.data.ingress}",
    ]);
    // Registered as any cluster is, with kip's own builtin.
    let register = format!(
        "gateway::register(\"http://{}\", \"admin-token-for-the-sandbox-test\", \"sandbox\", \"{ingress}\").address",
        gateway.admin
    );
    let said = sb.kip_ok(&["eval", &register]);
    assert!(said.contains(&ingress), "{said}");
    // A request for the app's public host at the gateway reaches the app's pod.
    let (status, head, body) = through_ingress(
        gateway.http.port(),
        "web-sandbox.localhost",
        "/cgi-bin/echo",
    );
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        body.contains("path=/cgi-bin/echo") && body.contains("pod=web-"),
        "{body}"
    );
    let (status, _, _) = through_ingress(gateway.http.port(), "nope-sandbox.localhost", "/");
    assert_eq!(status, 404);
}

#[test]
fn memory_limits_kill_with_oom_killed_and_logs_follow_a_running_container() {
    let sb = RealSandbox::start();
    let k = sb.kubectl();
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "hungry"}},
        "spec": {{"restartPolicy": "Never", "containers": [{{"name": "eat", "image": "{BUSYBOX}",
          "command": ["tail", "/dev/zero"],
          "resources": {{"limits": {{"memory": "16Mi"}}}}}}]}}}}"#
    );
    k.ok_stdin(&["apply", "-f", "-"], &manifest);
    let pod = wait_pod(&k, "hungry", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Failed"
    });
    let ended = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(ended["reason"], "OOMKilled", "{ended}");
    assert_eq!(ended["exitCode"], 137, "{ended}");
    // `logs -f` streams what a running container prints, as it prints it.
    k.ok(&[
        "run",
        "ticker",
        "--image",
        BUSYBOX,
        "--command",
        "--",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
    ]);
    wait_pod(&k, "ticker", Duration::from_secs(60), ready);
    let mut follow = Command::new("kubectl")
        .args(["logs", "-f", "ticker"])
        .env("KUBECONFIG", sb.sandbox.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    while seen.len() < 8 {
        seen.push(lines.next().expect("a line").expect("text"));
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let numbers: Vec<u32> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 8, "{seen:?}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
}

#[test]
fn images_are_pulled_from_the_sandboxs_registry_and_unknown_ones_are_said_at_deploy() {
    busybox_image();
    let sb = RealSandbox::start();
    // A name of this test's own, so that removing it from the shared store disturbs no one.
    let name = format!("pulled-{}", std::process::id());
    let dir = tempfile::tempdir().expect("context");
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {BUSYBOX}\nCMD [\"sh\", \"-c\", \"echo pulled and running; sleep 3600\"]\n"),
    )
    .expect("Dockerfile");
    let built = sb.kip_ok(&[
        "sandbox",
        "image",
        "build",
        &format!("{name}:1"),
        dir.path().to_str().expect("path"),
    ]);
    assert!(built.contains("✔ Pushed"), "{built}");
    let containers = sandbox::containers::Containers::at(&shared_containers()).expect("store");
    let removed = containers
        .command("podman")
        .args(["rmi", "-f", &format!("localhost/{name}:1")])
        .output()
        .expect("podman rmi");
    assert!(
        removed.status.success(),
        "{}",
        crate::common::text(&removed)
    );
    let k = sb.kubectl();
    k.ok(&["run", "fetched", "--image", &format!("{name}:1")]);
    wait_pod(&k, "fetched", Duration::from_secs(60), ready);
    let logs = k.ok(&["logs", "fetched"]);
    assert_eq!(logs.trim(), "pulled and running");
    let pod = k.json(&["get", "pod", "fetched", "-o", "json"]);
    let image_id = pod["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap_or("");
    assert!(
        image_id.starts_with("127.0.0.1:") && image_id.ends_with(&format!("/{name}:1")),
        "{image_id}"
    );
    // An image nowhere to be had: the deploy says so in one line, and still succeeds.
    let said = sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "ghost",
        "--image",
        "nginx:0.0.0-nowhere",
        "--port",
        "80",
    ]);
    let line = said
        .lines()
        .find(|l| l.contains("ghost is simulated"))
        .unwrap_or_else(|| panic!("no simulated line: {said}"));
    assert!(line.contains("image nginx:0.0.0-nowhere"), "{line}");
    let _ = containers
        .command("podman")
        .args([
            "rmi",
            "-f",
            &format!("{}/{name}:1", image_id.split('/').next().unwrap_or("")),
        ])
        .output();
}
