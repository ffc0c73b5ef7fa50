//! kip server's image for real: `server/image/build` makes it from this build's `kip` binary and
//! pushes it to a real registry (docker-registry) on loopback; podman pulls it from there and
//! runs it against a sandbox, first with a kubeconfig mounted, then as `kip install`'s Deployment
//! runs it (its args, env and kip home from templates/install/kip-server.yaml.j2), with the
//! service account of a pod, over TLS. Everything listens on loopback; the containers share the
//! host's network so that they reach the sandbox there.
//!
//! Needs root (as CI runs), buildah, podman, runc, docker-registry, socat and openssl
//! (tests/provision.sh installs them). The containers' storage and configuration live in a
//! temporary folder.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::containers::{Engine, Registry};
use crate::common::{ServedSandbox, free_port, kip_bin, raw_request, text};
use crate::server::{BARE_APP, WAIT, app_in_phase, apply, get, until};

/// The uid and gid the image runs as (server/Dockerfile's USER).
const IMAGE_USER: u32 = 65532;

#[test]
fn kip_server_image_builds_pushes_pulls_and_runs_as_installed() {
    let started = Instant::now();
    for tool in [
        "buildah",
        "podman",
        "runc",
        "docker-registry",
        "socat",
        "openssl",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is not installed: tests/provision.sh installs it"
        );
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let engine = Engine::new(scratch.path());
    let registry = Registry::start(scratch.path());

    // Build and push, as a user would.
    let build_started = Instant::now();
    let built = engine
        .command(Path::new(env!("CARGO_MANIFEST_DIR")).join("server/image/build"))
        .args(["kip-server:test", &registry.address])
        .env("KIP_BIN", kip_bin())
        .env("KIP_IMAGE_TLS_VERIFY", "false")
        .output()
        .expect("run server/image/build");
    assert!(
        built.status.success(),
        "server/image/build failed: {}",
        text(&built)
    );
    let reference = format!("{}/kip-server:test", registry.address);
    assert_eq!(
        String::from_utf8_lossy(&built.stdout).lines().last(),
        Some(reference.as_str()),
        "build prints the pushed reference last"
    );
    eprintln!(
        "server/image/build (build and push): {:.1} s",
        build_started.elapsed().as_secs_f64()
    );
    let (code, tags) = raw_request(
        &registry.address,
        "GET",
        "/v2/kip-server/tags/list",
        None,
        &[],
    )
    .expect("ask the registry");
    assert_eq!(code, 200, "the registry has no kip-server: {tags}");
    assert!(tags.contains("\"test\""), "tag test not pushed: {tags}");

    // Only the registry has it now: what runs below is what was pulled.
    engine.ok(&["rmi", "localhost/kip-server:test"]);
    engine.ok(&["pull", "--quiet", "--tls-verify=false", &reference]);
    let image: Value = serde_json::from_str(&engine.ok(&["image", "inspect", &reference]))
        .expect("podman image inspect prints JSON");
    let image = &image[0];
    let config = &image["Config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["Entrypoint"][0], "/usr/local/bin/kip", "{config}");
    let size = image["Size"].as_u64().expect("image size");
    let binary = std::fs::metadata(kip_bin()).expect("kip binary").len();
    eprintln!(
        "image {reference}: {:.1} MiB, of which the kip binary {:.1} MiB",
        mib(size),
        mib(binary)
    );
    // The binary and what it loads, no distribution: libc and friends and the certificates
    // add a few MiB.
    assert!(
        size < binary + 8 * 1024 * 1024,
        "image of {:.1} MiB for a binary of {:.1} MiB",
        mib(size),
        mib(binary)
    );

    let sb = ServedSandbox::start();

    // 1. Beside a cluster: its kubeconfig mounted.
    let kubeconfig = scratch.path().join("kubeconfig");
    std::fs::copy(sb.kubeconfig(), &kubeconfig).expect("copy kubeconfig");
    give_to_image_user(&kubeconfig);
    let listen = format!("127.0.0.1:{}", free_port());
    let beside = engine.run(
        "kubeconfig",
        &[
            "-v",
            &format!("{}:/etc/kip/kubeconfig:ro", kubeconfig.display()),
            "-e",
            "KUBECONFIG=/etc/kip/kubeconfig",
        ],
        &reference,
        &[
            "server",
            "--listen",
            &listen,
            "--identity",
            "image-kubeconfig",
            "--lease-seconds",
            "2",
            // Saved in the image's own kip home: the server's user may write there.
            "--cluster-id",
            "image-test",
            "--domain",
            "kip.test",
        ],
    );
    beside.wait_answering(&listen, "/healthz");
    assert_eq!(
        beside.uids(),
        [IMAGE_USER; 4],
        "the server runs as the image's user"
    );
    apply(&sb, BARE_APP);
    let deployment = until("the container to make App web's Deployment", WAIT, || {
        get(&sb, &["deployment", "web", "-n", "default"])
    });
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    app_in_phase(&sb, "default", "web", "Running");
    let ingress = get(&sb, &["ingress", "web", "-n", "default"]).expect("App web's Ingress");
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "web-image-test.kip.test",
        "{}",
        beside.logs()
    );
    assert_eq!(holder(&sb), "image-kubeconfig", "{}", beside.logs());
    // SIGTERM reaches kip as the container's pid 1 and it stops cleanly (its Lease released).
    let stopped = engine.podman(&["stop", "--time", "20", &beside.name]);
    assert!(stopped.status.success(), "podman stop: {}", text(&stopped));
    let exit = engine.ok(&["inspect", "--format", "{{.State.ExitCode}}", &beside.name]);
    assert_eq!(exit.trim(), "0", "{}", beside.logs());
    drop(beside);

    // 2. As `kip install` runs it: the Deployment's args, env and kip home, in a pod's
    // service account, the API server over TLS.
    let pod = InstalledPod::render(&reference);
    // The image alone runs what the Deployment runs, on the port the Deployment names, with
    // the kip home where the Deployment mounts it.
    assert_eq!(
        config["Cmd"],
        serde_json::json!(pod.args),
        "the image's CMD and the Deployment's args differ"
    );
    assert_eq!(pod.listen(), format!("0.0.0.0:{}", pod.port));
    assert!(
        config["ExposedPorts"]
            .as_object()
            .is_some_and(|p| p.contains_key(&format!("{}/tcp", pod.port))),
        "{config}"
    );
    assert_eq!(pod.env("KIP_HOME"), pod.home, "{:?}", pod.env);
    assert_eq!(
        config["User"],
        format!("{}:{}", pod.user.0, pod.user.1),
        "the pod's user and the image's differ"
    );
    let image_env = config["Env"].to_string();
    assert!(
        image_env.contains(&format!("\"KIP_HOME={}\"", pod.home)),
        "{image_env}"
    );

    let api = TlsProxy::start(scratch.path(), &sb.address);
    let account = scratch.path().join("serviceaccount");
    std::fs::create_dir(&account).expect("service account folder");
    std::fs::copy(&api.ca, account.join("ca.crt")).expect("ca.crt");
    // The pod's ServiceAccount with the RBAC `kip install` gives it, and a token of it: what
    // the server may do is what the install's roles grant, as on a real cluster.
    for access in &pod.access {
        apply(&sb, &access.to_string());
    }
    let token = sb.kubectl().ok(&[
        "create",
        "token",
        "kip-server",
        "-n",
        "kipper-system",
        "--duration=48h",
    ]);
    std::fs::write(account.join("token"), token.trim()).expect("token");
    std::fs::write(account.join("namespace"), "kipper-system").expect("namespace");
    give_to_image_user(&account);
    // The pod's emptyDir.
    let home = scratch.path().join("home");
    std::fs::create_dir(&home).expect("home");
    give_to_image_user(&home);
    // Loopback instead of all addresses: the container shares the host's network.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut run_args = pod.args.clone();
    run_args[pod.listen_at()] = listen.clone();
    let mut options = vec![
        "--user".to_string(),
        format!("{}:{}", pod.user.0, pod.user.1),
        "--cap-drop".to_string(),
        "all".to_string(),
        "--security-opt".to_string(),
        "no-new-privileges".to_string(),
        "--hostname".to_string(),
        "kip-server-7d9f8-x2x4q".to_string(),
        "-v".to_string(),
        format!(
            "{}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
            account.display()
        ),
        "-v".to_string(),
        format!("{}:{}", home.display(), pod.home),
        "-e".to_string(),
        "KUBERNETES_SERVICE_HOST=127.0.0.1".to_string(),
        "-e".to_string(),
        format!("KUBERNETES_SERVICE_PORT={}", api.port),
    ];
    for (name, value) in &pod.env {
        options.extend(["-e".to_string(), format!("{name}={value}")]);
    }
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let installed = engine.run("in-cluster", &options, &reference, &run_args);
    installed.wait_answering(&listen, &pod.probe);
    assert_eq!(
        installed.uids(),
        [IMAGE_USER; 4],
        "the pod's user is the image's"
    );
    let logs = installed.logs();
    assert!(
        logs.contains(&format!(
            "cluster `in-cluster` (https://127.0.0.1:{})",
            api.port
        )),
        "not the pod's service account: {logs}"
    );
    // The identity of a pod: its hostname (the pod's name) and pid.
    until("the pod's server to hold the Lease", WAIT, || {
        holder(&sb)
            .starts_with("kip-server-7d9f8-x2x4q-")
            .then_some(())
    });
    // It reconciles: a deleted Deployment comes back, and the host uses the cluster id and
    // domain the Deployment's env gave.
    let before = deployment["metadata"]["uid"].clone();
    sb.kubectl()
        .ok(&["delete", "deployment", "web", "-n", "default"]);
    until(
        "the pod's server to bring back the Deployment",
        WAIT,
        || {
            get(&sb, &["deployment", "web", "-n", "default"])
                .filter(|d| d["metadata"]["uid"] != before)
                .map(|_| ())
        },
    );
    apply(&sb, &BARE_APP.replace("name: web", "name: shop"));
    let ingress = until("the pod's server to make App shop's Ingress", WAIT, || {
        get(&sb, &["ingress", "shop", "-n", "default"])
    });
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        format!(
            "shop-{}.{}",
            pod.env("KIP_CLUSTER_ID"),
            pod.env("KIP_DOMAIN")
        ),
        "{}",
        installed.logs()
    );
    // Everything an App can own is within the install's roles: a route group's Certificate
    // and prefix Middleware, an autoscaler.
    apply(&sb, ROUTED_APP);
    for what in [
        ["certificate", "route-shop"],
        ["middleware.traefik.io", "routed-strip"],
        ["hpa", "routed"],
    ] {
        until(
            &format!("the pod's server to make App routed's {}", what[0]),
            WAIT,
            || get(&sb, &[what[0], what[1], "-n", "default"]),
        );
    }
    assert!(
        !installed.logs().contains("forbidden"),
        "{}",
        installed.logs()
    );
    assert!(
        installed.answers(&listen, "/healthz"),
        "{}",
        installed.logs()
    );
    drop(installed);
    eprintln!(
        "server image test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// An App in a route group at a path, autoscaled: it owns a Certificate, a Middleware and a
/// HorizontalPodAutoscaler besides the usual.
const ROUTED_APP: &str = "apiVersion: kipper.run/v1alpha1
kind: App
metadata: {name: routed, namespace: default}
spec:
  image: 'nginx:1.27'
  port: 80
  route: {host: shop.image-test.kip.test, path: /api, group: shop}
  autoscale: {min: 1, max: 3, cpu: 70}
";

/// What templates/install/kip-server.yaml.j2's Deployment runs in its pod.
struct InstalledPod {
    /// Its namespace, ServiceAccount and what RBAC grants that account.
    access: Vec<Value>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Where the kip home's emptyDir is mounted.
    home: String,
    port: u64,
    /// The readiness probe's path.
    probe: String,
    /// The pod's runAsUser and runAsGroup.
    user: (u64, u64),
}

impl InstalledPod {
    /// The template rendered as `kip install` renders it, with `image` as the server's image.
    fn render(image: &str) -> InstalledPod {
        let manifest = crate::templates::render(
            "install/kip-server.yaml.j2",
            &crate::templates::INSTALL_CONTEXT
                .replace("registry.example.com/kip-server:0.1.0", image),
        );
        let docs: Vec<Value> = serde_saphyr::from_multiple(&manifest).expect("manifest is YAML");
        let deployment = docs
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("kip-server.yaml.j2 has a Deployment");
        let spec = &deployment["spec"]["template"]["spec"];
        let container = &spec["containers"][0];
        assert_eq!(container["image"], image, "{container}");
        // What the options of `podman run` below stand for.
        assert_eq!(
            container["securityContext"],
            serde_json::json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}),
        );
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{spec}");
        let id = |field: &str| spec["securityContext"][field].as_u64().expect(field);
        let string = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        InstalledPod {
            access: docs
                .iter()
                .filter(|d| {
                    let kind = d["kind"].as_str().unwrap_or_default();
                    kind == "Namespace"
                        || kind == "ServiceAccount"
                        || kind.starts_with("Role")
                        || kind.starts_with("ClusterRole")
                })
                .cloned()
                .collect(),
            args: container["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(string)
                .collect(),
            env: container["env"]
                .as_array()
                .expect("env")
                .iter()
                .map(|e| (string(&e["name"]), string(&e["value"])))
                .collect(),
            home: string(&container["volumeMounts"][0]["mountPath"]),
            port: container["ports"][0]["containerPort"]
                .as_u64()
                .expect("containerPort"),
            probe: string(&container["readinessProbe"]["httpGet"]["path"]),
            user: (id("runAsUser"), id("runAsGroup")),
        }
    }

    fn env(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("the Deployment sets no {name}: {:?}", self.env))
    }

    /// Where `--listen`'s value is in the args.
    fn listen_at(&self) -> usize {
        1 + self
            .args
            .iter()
            .position(|a| a == "--listen")
            .unwrap_or_else(|| panic!("no --listen in {:?}", self.args))
    }

    fn listen(&self) -> &str {
        &self.args[self.listen_at()]
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Who holds the controllers' Lease.
fn holder(sb: &ServedSandbox) -> String {
    get(sb, &["lease", "kip-server", "-n", "kipper-system"])
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Makes `path` (and what a folder holds) the image user's, as a pod's volumes would be.
fn give_to_image_user(path: &Path) {
    let chown = |p: &Path| {
        std::os::unix::fs::chown(p, Some(IMAGE_USER), Some(IMAGE_USER))
            .unwrap_or_else(|e| panic!("chown {}: {e} (the test needs root)", p.display()));
    };
    chown(path);
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read folder") {
            chown(&entry.expect("entry").path());
        }
    }
}

/// socat terminating TLS in front of the sandbox's plain HTTP, as a cluster's API server
/// answers a pod: a certificate for 127.0.0.1 from a throwaway CA (`ca`, the pod's ca.crt).
struct TlsProxy {
    child: Child,
    port: u16,
    ca: PathBuf,
}

impl TlsProxy {
    fn start(scratch: &Path, backend: &str) -> TlsProxy {
        let dir = scratch.join("tls");
        std::fs::create_dir_all(&dir).expect("tls folder");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdin(Stdio::null())
                .output()
                .expect("run openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
        };
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca_args = vec!["req", "-x509", "-days", "1", "-subj", "/CN=kip test CA"];
        ca_args.extend(key);
        ca_args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(&ca_args);
        let mut csr_args = vec!["req", "-subj", "/CN=127.0.0.1"];
        csr_args.extend(key);
        csr_args.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&csr_args);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write extensions");
        openssl(&[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        let pem = [
            std::fs::read_to_string(dir.join("server.crt")).expect("server.crt"),
            std::fs::read_to_string(dir.join("server.key")).expect("server.key"),
        ]
        .concat();
        std::fs::write(dir.join("server.pem"), pem).expect("server.pem");
        let port = free_port();
        let log = std::fs::File::create(dir.join("socat.log")).expect("socat log");
        let mut child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={}",
                dir.join("server.pem").display()
            ))
            .arg(format!("TCP:{backend}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own group, so that the children it forks per connection go with it.
            .process_group(0)
            .spawn()
            .expect("start socat");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(dir.join("socat.log")).unwrap_or_default();
                panic!("socat exited ({status}): {said}");
            }
            assert!(Instant::now() < deadline, "socat never listened on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsProxy {
            child,
            port,
            ca: dir.join("ca.crt"),
        }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        // SAFETY: signalling the process group of our own child.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
