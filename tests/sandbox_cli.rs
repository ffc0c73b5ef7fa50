//! `kip sandbox up|status|kubeconfig|down|reset` as a user runs them, the files they leave
//! in the kip home, and kips that find the sandbox stopped all at once.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{Kubectl, kip_in, stderr, text};

fn kip(home: &std::path::Path, args: &[&str]) -> Output {
    kip_in(home).run(args)
}

#[test]
fn up_status_down_reset() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    let out = kip(h, &["sandbox", "kubeconfig"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("kip sandbox up"), "{}", text(&out));

    let out = kip(h, &["sandbox", "up"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("✔ Sandbox running at http://127.0.0.1:"),
        "{}",
        text(&out)
    );
    let out = kip(h, &["sandbox", "up"]);
    assert!(
        text(&out).contains("already running"),
        "up is idempotent: {}",
        text(&out)
    );

    let out = kip(h, &["sandbox", "status"]);
    assert!(
        out.status.success() && text(&out).contains("Sandbox running"),
        "{}",
        text(&out)
    );
    let path = String::from_utf8_lossy(&kip(h, &["sandbox", "kubeconfig"]).stdout)
        .trim()
        .to_string();
    let kubeconfig = std::fs::read_to_string(&path).expect("kubeconfig exists");
    assert!(kubeconfig.contains("current-context: kip-sandbox"));

    let k = Kubectl::new(std::path::Path::new(&path), h);
    k.ok_stdin(
        &["create", "-f", "-"],
        "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"keep\"}}",
    );
    assert!(
        k.ok(&["get", "configmap", "keep", "-o", "name"])
            .contains("configmap/keep")
    );

    let out = kip(h, &["sandbox", "reset"]);
    assert!(
        !out.status.success(),
        "reset without --yes and without a terminal refuses"
    );
    assert!(text(&out).contains("--yes"), "{}", text(&out));
    assert!(
        k.ok(&["get", "configmap", "keep", "-o", "name"])
            .contains("configmap/keep"),
        "nothing was lost"
    );

    let out = kip(h, &["sandbox", "reset", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = k.fails(&["get", "configmap", "keep"]);
    assert!(
        err.contains("NotFound"),
        "reset deleted the objects and restarted on the same port: {err}"
    );

    let out = kip(h, &["sandbox", "down"]);
    assert!(text(&out).contains("✔ Sandbox stopped"), "{}", text(&out));
    let out = kip(h, &["sandbox", "status"]);
    assert!(
        !out.status.success() && text(&out).contains("not running"),
        "{}",
        text(&out)
    );
}

/// `kip ARGS` as a newcomer runs it: a kip home (maybe not made yet), no `KUBECONFIG` and no
/// `~/.kube/config`, so that verbs talk to the sandbox.
fn newcomer(home: &Path, args: &[&str]) -> Command {
    let mut cmd = crate::common::kip_command();
    cmd.args(args)
        .env("KIP_HOME", home)
        .env("HOME", home.parent().expect("a parent"))
        .env_remove("KUBECONFIG")
        .env_remove("KIP_SCRIPTS")
        .current_dir(home.parent().expect("a parent"))
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run kip");
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// Stops the sandbox of a kip home when the test ends, passed or not.
struct StopSandbox(PathBuf);

impl Drop for StopSandbox {
    fn drop(&mut self) {
        let _ = newcomer(&self.0, &["sandbox", "down"]).output();
    }
}

/// The permission bits of `path` that let its group or others in.
fn open_to_others(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o077
}

/// What holds a secret or a credential in a kip home, and every file of the sandbox's folder.
fn secret_holders(home: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = [
        "",
        "config.yaml",
        "clusters",
        "clusters/lab.kubeconfig",
        "sandbox",
        "sandbox/kubeconfig",
        "sandbox/data",
        "sandbox/data/store.redb",
    ]
    .iter()
    .map(|p| home.join(p))
    .collect();
    for entry in std::fs::read_dir(home.join("sandbox")).expect("the sandbox folder") {
        paths.push(entry.expect("an entry").path());
    }
    paths
}

const LAB_KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: https://203.0.113.10:6443\nusers:\n- name: lab\n  user:\n    token: s3cret\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\ncurrent-context: lab\n";

/// The sandbox's store holds Secret data, config.yaml and clusters/*.kubeconfig hold tokens:
/// none of it, nor the folders it lives in, may be read by anyone but the owner.
#[test]
fn the_kip_home_keeps_secrets_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("kip");
    let _stop = StopSandbox(home.clone());
    let save_kubeconfig = format!("config::save_kubeconfig(\"lab\", {LAB_KUBECONFIG:?})");
    let verbs = |home: &Path| {
        run(newcomer(home, &["sandbox", "up"]));
        let mut add = newcomer(home, &["cluster", "add", "lab"]);
        add.args(["--server", "https://203.0.113.10:6443", "--token", "s3cret"]);
        run(add);
        run(newcomer(home, &["eval", &save_kubeconfig]));
        run(newcomer(home, &["app", "list"]));
    };
    verbs(&home);
    for path in secret_holders(&home) {
        assert_eq!(
            open_to_others(&path),
            0,
            "{} is open to others",
            path.display()
        );
    }

    // An older kip left them readable to all: the next kip that writes or opens them tightens.
    run(newcomer(&home, &["sandbox", "down"]));
    for path in secret_holders(&home) {
        let dir = path.is_dir();
        let mode = if dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    verbs(&home);
    for path in secret_holders(&home) {
        if path == home {
            // The home keeps the mode its owner gave it; what is in it is private on its own.
            continue;
        }
        assert_eq!(
            open_to_others(&path),
            0,
            "{} was not tightened",
            path.display()
        );
    }
}

/// The `kip sandbox serve` processes serving the kip home `home`.
fn sandbox_processes(home: &Path) -> Vec<u32> {
    let wanted = format!("KIP_HOME={}", home.display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let read = |what: &str| std::fs::read(entry.path().join(what)).unwrap_or_default();
        let args: Vec<Vec<u8>> = read("cmdline")
            .split(|b| *b == 0)
            .map(<[u8]>::to_vec)
            .collect();
        let serves = args
            .windows(2)
            .any(|w| w[0] == b"sandbox" && w[1] == b"serve");
        let ours = read("environ")
            .split(|b| *b == 0)
            .any(|v| v == wanted.as_bytes());
        if serves && ours {
            pids.push(pid);
        }
    }
    pids
}

/// Ten first commands at once on a fresh kip home with no cluster configured: one of them
/// starts the sandbox, the others wait for it, and every one succeeds.
#[test]
fn ten_first_commands_at_once_start_one_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("kip");
    let _stop = StopSandbox(home.clone());
    let children: Vec<_> = (0..10)
        .map(|_| {
            newcomer(&home, &["app", "list"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn kip")
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("kip output"))
        .collect();
    for out in &outs {
        assert!(out.status.success(), "{}", text(out));
        for line in stderr(out).lines() {
            assert!(
                line.starts_with("No cluster configured: started the local sandbox at http://")
                    || line == "Waiting for the local sandbox another kip is starting…",
                "unexpected: {}",
                text(out)
            );
        }
    }
    let starters = outs
        .iter()
        .filter(|o| stderr(o).contains("started the local sandbox"))
        .count();
    assert_eq!(starters, 1, "one kip started the sandbox");
    let pids = sandbox_processes(&home);
    assert_eq!(pids.len(), 1, "one sandbox process: {pids:?}");
    let log = std::fs::read_to_string(home.join("sandbox/sandbox.log")).expect("the log");
    assert_eq!(
        log.matches("Sandbox listening on").count(),
        1,
        "one start in the log: {log}"
    );
}

/// Two `kip sandbox up` at once both end with the sandbox running; `kip sandbox serve` beside
/// a running sandbox says so instead of failing on a locked store.
#[test]
fn up_twice_at_once_then_serve_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("kip");
    let _stop = StopSandbox(home.clone());
    let ups: Vec<_> = (0..2)
        .map(|_| {
            newcomer(&home, &["sandbox", "up"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn kip")
        })
        .collect();
    let outs: Vec<Output> = ups
        .into_iter()
        .map(|c| c.wait_with_output().expect("kip output"))
        .collect();
    for out in &outs {
        assert!(out.status.success(), "{}", text(out));
    }
    let said = |word: &str| {
        outs.iter()
            .filter(|o| text(o).contains(&format!("✔ Sandbox {word} at http://")))
            .count()
    };
    assert_eq!(
        (said("running"), said("already running")),
        (1, 1),
        "{}\n{}",
        text(&outs[0]),
        text(&outs[1])
    );
    assert_eq!(sandbox_processes(&home).len(), 1);

    let out = newcomer(&home, &["sandbox", "serve"])
        .output()
        .expect("run kip");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).starts_with("error: the sandbox of this kip home already runs at http://"),
        "{}",
        text(&out)
    );
    assert!(stderr(&out).contains("kip sandbox down"), "{}", text(&out));
    assert_eq!(sandbox_processes(&home).len(), 1);
}
