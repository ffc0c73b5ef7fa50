//! `kip install` end to end over a real OpenSSH server on loopback, with the k3s installer
//! replaced (`--k3s-installer`) by `tests/fixtures/k3s-stand-in.sh`, which starts a kip sandbox
//! as the cluster's API server and writes its kubeconfig where k3s would. Then an app is
//! deployed to the cluster install registered, and `kip status` checks it.
//!
//! Needs root (sshd) and the users test.sh creates: `kiptest` (passwordless sudo) and
//! `kipnosudo`.

#[path = "../builtins/tests/common/sshd.rs"]
#[allow(dead_code)]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::gateway::Gateway;
use crate::common::{Kubectl, kip_bin, stderr, stdout};
use sshd::Sshd;

/// A server to install on (sshd), a kip home on "this machine", and where the stand-in keeps
/// the server side (its sandbox home, the kubeconfig k3s would write).
struct Site {
    sshd: Sshd,
    client_home: tempfile::TempDir,
    server: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let server = tempfile::tempdir().expect("server dir");
        // sudo runs the installer as root; the preflight runs as the login user and must see
        // whether the kubeconfig exists.
        std::fs::set_permissions(
            server.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        Site {
            sshd: Sshd::start(),
            client_home: tempfile::tempdir().expect("kip home"),
            server,
        }
    }

    fn server_home(&self) -> PathBuf {
        self.server.path().join("k3s-home")
    }

    fn remote_kubeconfig(&self) -> PathBuf {
        self.server.path().join("k3s.yaml")
    }

    /// How many times the stand-in installer ran.
    fn installer_runs(&self) -> usize {
        let runs = self.server.path().join("k3s-home.runs");
        std::fs::read_to_string(runs)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    fn installer(&self) -> String {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        format!(
            "{} {} {} {} {}",
            fixtures.join("k3s-stand-in.sh").display(),
            kip_bin(),
            self.server_home().display(),
            self.remote_kubeconfig().display(),
            fixtures.display()
        )
    }

    /// `kip ARGS` on this machine: its own kip home, no kubeconfig, no terminal.
    fn kip_command(&self, args: &[&str]) -> Command {
        let mut cmd = crate::common::kip_command();
        cmd.args(args)
            .env("KIP_HOME", self.client_home.path())
            .env("KUBECONFIG", self.client_home.path().join("no-kubeconfig"))
            .env("HOME", self.client_home.path())
            .env_remove("KIP_SCRIPTS")
            .env_remove("SSH_AUTH_SOCK")
            .current_dir(self.client_home.path())
            .stdin(std::process::Stdio::null());
        cmd
    }

    fn kip(&self, args: &[&str]) -> Output {
        self.kip_command(args).output().expect("run kip")
    }

    /// `kip install` as `user` with the server's client key; `extra` flags after.
    fn install_args(&self, user: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "install",
            "--host",
            "127.0.0.1",
            "--ssh-port",
            &self.sshd.port.to_string(),
            "--ssh-user",
            user,
            "--ssh-key",
            &self.sshd.client_key().display().to_string(),
            "--k3s-installer",
            &self.installer(),
            "--k3s-kubeconfig",
            &self.remote_kubeconfig().display().to_string(),
            "--k3s-registries",
            &self
                .server
                .path()
                .join("rancher/registries.yaml")
                .display()
                .to_string(),
            "--domain",
            "kipper.test",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn install(&self, user: &str, extra: &[&str]) -> Output {
        let args = self.install_args(user, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.kip(&args)
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.client_home.path().join("config.yaml")).unwrap_or_default()
    }

    fn saved_kubeconfig(&self) -> PathBuf {
        self.client_home
            .path()
            .join("clusters")
            .join("127-0-0-1.kubeconfig")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if self.server_home().exists() {
            let _ = crate::common::kip_command()
                .args(["sandbox", "down"])
                .env("KIP_HOME", self.server_home())
                .output();
        }
    }
}

const GATEWAY_ADMIN: &str = "admin-token-for-install-tests";

fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Asserts a failed run left this machine's configuration and the server as they were.
fn nothing_created(site: &Site) {
    assert!(
        !site.config().contains("127-0-0-1"),
        "config.yaml: {}",
        site.config()
    );
    assert!(!site.saved_kubeconfig().exists());
    assert_eq!(site.installer_runs(), 0, "the installer ran");
}

#[test]
fn install_over_ssh_then_deploy_then_rerun_changes_nothing() {
    let site = Site::new();
    let started = Gateway::start(GATEWAY_ADMIN);
    let (gateway_dir, gateway) = (&started.dir, format!("http://{}", started.admin));
    let out = site.install(
        "kiptest",
        &[
            "--accept-host-key",
            "--gateway",
            &gateway,
            "--gateway-token",
            GATEWAY_ADMIN,
        ],
    );
    let text = ok("kip install", &out);
    for line in [
        "✔ Connected to kiptest@127.0.0.1:",
        "✔ Operating system: Debian GNU/Linux 12",
        "✔ Architecture: x86_64",
        "✔ Memory: ",
        "✔ Disk: ",
        "✔ Ports: 6443, 10250, 80, 443 free",
        "[INFO]  k3s stand-in is up",
        "✔ k3s v1.33.5+k3s1 installed (",
        "✔ Kubeconfig saved to ",
        "✔ Cluster \"127-0-0-1\" added and current",
        "✔ Node sandbox Ready",
        "✔ Kipper's CRDs applied",
        "✔ Traefik configured (",
        "✔ cert-manager installed (",
        "✔ Let's Encrypt ClusterIssuer installed (",
        "✔ Longhorn installed (",
        "✔ Registry installed (",
        "- kip server: skipped, no image of it is published: build and push one with server/image/build TAG REGISTRY and pass the reference it prints as --kip-server-image",
        "✔ Gateway: 127-0-0-1.kipper.test → 127.0.0.1:80",
        "Console: https://console-127-0-0-1.kipper.test",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // The gateway knows the cluster, and kip keeps the cluster's own token for updates.
    let registry = std::fs::read_to_string(gateway_dir.path().join("registry.json")).unwrap();
    assert!(
        registry.contains("127-0-0-1") && registry.contains("127.0.0.1:80"),
        "{registry}"
    );
    assert!(
        site.config().contains("gateway-token:"),
        "{}",
        site.config()
    );
    // The node pulls what builds push to the in-cluster registry through its loopback port,
    // set before k3s starts (as root: the folder is made).
    let mirrors =
        std::fs::read_to_string(site.server.path().join("rancher/registries.yaml")).unwrap();
    assert!(
        mirrors.contains("\"registry.kipper-system.svc.cluster.local:5000\":")
            && mirrors.contains("- \"http://127.0.0.1:5000\""),
        "{mirrors}"
    );
    assert!(text.contains("✔ Registry mirror written to "), "{text}");
    assert_eq!(site.installer_runs(), 1);
    let runs = std::fs::read_to_string(site.server.path().join("k3s-home.runs")).unwrap();
    assert!(
        runs.contains("run as root"),
        "the installer ran through sudo: {runs}"
    );

    // The saved kubeconfig is named after the cluster and works for an independent client.
    let saved = std::fs::read_to_string(site.saved_kubeconfig()).expect("saved kubeconfig");
    assert!(saved.contains("current-context: 127-0-0-1"), "{saved}");
    let config = site.config();
    assert!(config.contains("current-cluster: 127-0-0-1"), "{config}");
    assert!(config.contains("cluster-id: 127-0-0-1"), "{config}");
    assert!(config.contains("domain: kipper.test"), "{config}");
    let kubectl = Kubectl::new(&site.saved_kubeconfig(), site.client_home.path());
    let nodes = kubectl.ok(&["get", "nodes"]);
    assert!(
        nodes.contains("sandbox   Ready    control-plane"),
        "{nodes}"
    );
    let charts = kubectl.ok(&["get", "helmcharts", "-n", "kube-system", "-o", "name"]);
    for chart in ["cert-manager", "longhorn", "traefik"] {
        assert!(charts.contains(chart), "{chart} in {charts}");
    }
    let issuer = kubectl.ok(&[
        "get",
        "clusterissuer",
        "letsencrypt",
        "-o",
        "jsonpath={.spec.acme.server}",
    ]);
    assert!(issuer.contains("letsencrypt.org"), "{issuer}");
    kubectl.ok(&[
        "rollout",
        "status",
        "-n",
        "kipper-system",
        "deployment/registry",
    ]);
    kubectl.ok(&["get", "crd", "apps.kipper.run"]);

    // kip now talks to the installed cluster.
    let deployed = ok(
        "kip app deploy",
        &site.kip(&[
            "app",
            "deploy",
            "--name",
            "hello",
            "--image",
            "nginx:1.27",
            "--port",
            "80",
        ]),
    );
    assert!(
        deployed.contains("Live at https://hello-127-0-0-1.kipper.test"),
        "{deployed}"
    );
    let image = kubectl.ok(&[
        "get",
        "deployment",
        "hello",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "nginx:1.27");

    let status = ok("kip status", &site.kip(&["status"]));
    for line in [
        "✔ API: reachable",
        "✔ Node sandbox: Ready",
        "✔ cert-manager: chart installed",
        "✔ Registry: 1/1 available",
        "✔ kip server: not installed: no image of it is published: build and push one with server/image/build TAG REGISTRY and pass the reference it prints as --kip-server-image",
    ] {
        assert!(status.contains(line), "missing {line:?} in:\n{status}");
    }

    // Again: every step finds its work done; the installer does not run again.
    let again = ok("kip install (again)", &site.install("kiptest", &[]));
    for line in [
        "✔ Ports: in use by the k3s already installed",
        "✔ Registry mirror already in ",
        "✔ k3s already installed",
        "✔ Cluster \"127-0-0-1\" unchanged",
        "✔ Traefik already installed",
        "✔ cert-manager already installed",
        "✔ Let's Encrypt ClusterIssuer already installed",
        "✔ Registry already installed",
        "✔ Gateway: 127-0-0-1 already registered at 127.0.0.1:80",
    ] {
        assert!(again.contains(line), "missing {line:?} in:\n{again}");
    }
    assert_eq!(site.installer_runs(), 1, "the installer ran again");
    assert_eq!(site.config(), config, "config.yaml changed on a re-run");
}

#[test]
fn status_over_ssh_reports_the_host_and_the_org_is_set_once() {
    let site = Site::new();
    let text = ok(
        "kip install",
        &site.install(
            "kiptest",
            &["--accept-host-key", "--skip", "longhorn", "--org", "acme"],
        ),
    );
    assert!(
        text.contains("- Gateway: none configured, skipped"),
        "{text}"
    );
    assert!(!text.contains("Longhorn"), "{text}");

    // The org, set once, prefixes every project namespace; it cannot change later.
    ok(
        "kip project create",
        &site.kip(&["project", "create", "shop", "--environments", "test"]),
    );
    let kubectl = Kubectl::new(&site.saved_kubeconfig(), site.client_home.path());
    kubectl.ok(&["get", "namespace", "acme-shop-test"]);
    let out = site.install("kiptest", &["--org", "other"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("was installed with --org acme; the org cannot change"),
        "{}",
        stderr(&out)
    );
    let out = site.kip(&["status", "--ssh", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&out), stderr(&out)));
    let checks = json["checks"].as_array().expect("checks");
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no check {name} in {json}"))
    };
    assert_eq!(check("API")["ok"], true);
    assert_eq!(check("Host disk")["ok"], true, "{json}");
    assert_eq!(check("Host memory")["ok"], true, "{json}");
    // The stand-in runs no k3s service, and Longhorn was skipped: both are reported.
    assert_eq!(check("k3s service")["ok"], false);
    assert_eq!(check("Longhorn")["ok"], false);
    assert_eq!(json["healthy"], false);
    assert!(!out.status.success(), "status must fail when a check fails");
    assert!(stderr(&out).contains("checks failed"), "{}", stderr(&out));
}

#[test]
fn a_failing_preflight_names_the_check_and_changes_nothing() {
    let site = Site::new();
    // An override of the preflight template reporting another OS, as a server would.
    let scripts = site.client_home.path().join("scripts");
    std::fs::create_dir_all(scripts.join("templates/install")).unwrap();
    std::fs::write(
        scripts.join("templates/install/preflight.sh.j2"),
        "echo os_id=alpine; echo os_version=3.20; echo 'os_name=Alpine Linux v3.20'\n\
         echo arch=x86_64; echo mem_kb=1048576; echo disk_dir=/var/lib; echo disk_kb=99999999\n",
    )
    .unwrap();
    let args = site.install_args("kiptest", &["--accept-host-key"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = site
        .kip_command(&args)
        .env("KIP_SCRIPTS", &scripts)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(
        text.contains("✘ Operating system: Alpine Linux v3.20 is not supported: use Ubuntu"),
        "{text}"
    );
    assert!(
        text.contains("✘ Memory: 1.0 GB, need at least 4 GB"),
        "{text}"
    );
    assert!(text.contains("✔ Disk: "), "{text}");
    assert!(
        err.contains("preflight failed: Operating system, Memory")
            && err.contains("--skip-preflight"),
        "{err}"
    );
    nothing_created(&site);
}

#[test]
fn ssh_failures_are_clear_and_change_nothing() {
    let mut site = Site::new();

    // An unknown host key is not trusted without a terminal to ask on.
    let out = site.install("kiptest", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--accept-host-key"),
        "{}",
        stderr(&out)
    );
    nothing_created(&site);

    // A key the server does not know.
    let other = site.client_home.path().join("other_key");
    sshd::keygen(&other, "");
    let args = site.install_args("kiptest", &["--accept-host-key"]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let key_at = args.iter().position(|a| *a == "--ssh-key").unwrap() + 1;
    let other = other.display().to_string();
    args[key_at] = &other;
    let out = site.kip(&args);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refused the key"), "{}", stderr(&out));
    nothing_created(&site);

    // A user without sudo gets past preflight and is stopped before anything is installed.
    let out = site.install("kipnosudo", &["--accept-host-key"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sudo"), "{}", stderr(&out));
    nothing_created(&site);

    // The host key changed since kip recorded it: refused, loudly.
    site.sshd.restart_with_new_host_key();
    let out = site.install("kiptest", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).to_uppercase().contains("CHANGED"),
        "{}",
        stderr(&out)
    );
    nothing_created(&site);
}

#[test]
fn unreachable_hosts_and_bad_flags_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let kip = |args: &[&str]| {
        crate::common::kip_command()
            .args(args)
            .env("KIP_HOME", home.path())
            .env("KUBECONFIG", home.path().join("none"))
            .env_remove("SSH_AUTH_SOCK")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let port = sshd::free_port().to_string();
    let key = home.path().join("key");
    sshd::keygen(&key, "");
    let key = key.display().to_string();
    let out = kip(&[
        "install",
        "--host",
        "127.0.0.1",
        "--ssh-port",
        &port,
        "--ssh-key",
        &key,
        "--accept-host-key",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("cannot reach 127.0.0.1:{port} over SSH")),
        "{}",
        stderr(&out)
    );
    for (args, message) in [
        (
            vec!["--host", "a b"],
            "invalid value 'a b' for '--host': use an IP address or DNS name",
        ),
        (
            vec!["--host", "10.0.0.1", "--ssh-port", "0"],
            "invalid value '0' for '--ssh-port': a port is between 1 and 65535",
        ),
        (
            vec!["--host", "10.0.0.1", "--name", "Bad_Name"],
            "invalid cluster name",
        ),
        (
            vec!["--host", "10.0.0.1", "--k3s-version", "latest; rm -rf /"],
            "invalid value 'latest; rm -rf /' for '--k3s-version': use a k3s release",
        ),
        (
            vec!["--host", "10.0.0.1", "--skip", "nginx"],
            "invalid value 'nginx' for '--skip': no such component",
        ),
        (vec!["--host", "2001:db8::1"], "give the cluster a name"),
    ] {
        let mut all = vec!["install"];
        all.extend(args.iter());
        let out = kip(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{all:?}: {}", stderr(&out));
    }
    assert!(!home.path().join("config.yaml").exists());
}

#[test]
fn dry_run_prints_commands_and_manifests_and_connects_nowhere() {
    let home = tempfile::tempdir().unwrap();
    let port = sshd::free_port().to_string();
    let out = crate::common::kip_command()
        .args([
            "install",
            "--host",
            "203.0.113.10",
            "--ssh-port",
            &port,
            "--dry-run",
            "--k3s-version",
            "v1.32.9+k3s1",
            "--org",
            "acme",
        ])
        .env("KIP_HOME", home.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = ok("kip install --dry-run", &out);
    for part in [
        "cluster 203-0-113-10 on root@203.0.113.10",
        "/etc/os-release",
        "INSTALL_K3S_VERSION='v1.32.9+k3s1'",
        "cat /etc/rancher/k3s/k3s.yaml",
        "name: apps.kipper.run",
        "kind: HelmChart",
        "chart: cert-manager",
        "kind: ClusterIssuer",
        "chart: longhorn",
        "ghcr.io/project-zot/zot:v2",
        "# kip server: skipped, no image of it is published: build and push one with server/image/build TAG REGISTRY and pass the reference it prints as --kip-server-image",
        "none configured",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    assert!(!home.path().join("config.yaml").exists());
    // Given an image of kip server, it is installed: least-privilege RBAC, the Lease's Role in
    // kipper-system, and an Ingress for webhooks on the console host.
    let out = crate::common::kip_command()
        .args([
            "install",
            "--host",
            "203.0.113.10",
            "--ssh-port",
            &port,
            "--dry-run",
            "--kip-server-image",
            "registry.example.com/kip-server:1",
        ])
        .env("KIP_HOME", home.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = ok("kip install --dry-run --kip-server-image", &out);
    for part in [
        "registry.example.com/kip-server:1",
        "args: [\"server\", \"--listen\", \"0.0.0.0:8080\"]",
        "kind: Role\nmetadata:\n  name: kip-server-lease",
        "console-203-0-113-10.kipper.run",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    assert!(!text.contains("# kip server: skipped"), "{text}");
    assert!(
        !text.contains("verbs: [\"*\"]"),
        "no wildcard rights:\n{text}"
    );
}

#[test]
fn an_unknown_host_key_shown_on_a_terminal_and_declined_stops_the_install() {
    let site = Site::new();
    let args = site.install_args("kiptest", &[]);
    let command = std::iter::once(kip_bin().to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    // `script` gives kip a terminal; the answer to the host-key question is "n".
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("KIP_HOME", site.client_home.path())
        .env("KUBECONFIG", site.client_home.path().join("no-kubeconfig"))
        .env("HOME", site.client_home.path())
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run script");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let drawn = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{drawn}");
    let fingerprint = sshd::fingerprint(&site.sshd.host_public_key());
    assert!(drawn.contains(&fingerprint), "{fingerprint} in {drawn}");
    assert!(drawn.contains("was not trusted"), "{drawn}");
    nothing_created(&site);
}

#[test]
fn status_of_a_cluster_without_the_platform_says_so_and_passes() {
    let sandbox = crate::common::ServedSandbox::start();
    let out = sandbox.kip(&["status"]);
    let text = ok("kip status", &out);
    for line in [
        "✔ API: reachable",
        "✔ Node sandbox: Ready",
        "✔ Platform: not installed (kip install sets it up on a server)",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // A platform half there is reported component by component, and fails.
    sandbox.kubectl().ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kipper-system}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: registry, namespace: kipper-system}\n\
         spec:\n  selector: {matchLabels: {app: r}}\n  template:\n    metadata: {labels: {app: r}}\n\
         \x20   spec: {containers: [{name: zot, image: zot}]}\n",
    );
    let out = sandbox.kip(&["status"]);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("✘ cert-manager: job helm-install-cert-manager missing"),
        "{text}"
    );
    assert!(text.contains("Registry: "), "{text}");
}
