//! The README's five-minute tour, read from the README itself and run line by line as a
//! newcomer would: a fresh kip home, the real `kip` and the real `kubectl`. A line that fails
//! fails the test with its output, so the tour and the product cannot drift apart.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::kip_bin;

/// The lines of the first `sh` block after the tour's heading; a line that is only a comment
/// (the expected output of the line before) is dropped.
fn tour_lines(readme: &str) -> Vec<String> {
    let tour = readme
        .split("## A five-minute tour")
        .nth(1)
        .expect("the README has a five-minute tour");
    let block = tour
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the tour is a sh block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(String::from)
        .collect()
}

/// A line that runs until Ctrl+C, by the README's own comment on it.
fn until_interrupted(line: &str) -> bool {
    line.contains("Ctrl+C closes")
}

#[test]
fn the_readme_tour_runs_as_written() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(Path::new(root).join("README.md")).unwrap();
    let lines = tour_lines(&readme);
    assert!(lines.len() >= 15, "{lines:?}");

    // A working folder shaped like a checkout: the tour's `cargo build --release` is a no-op
    // (the test already built kip), and target/release/kip is that binary.
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    std::fs::create_dir_all(work.join("target/release")).unwrap();
    std::os::unix::fs::symlink(kip_bin(), work.join("target/release/kip")).unwrap();
    for shared in ["scripts", "examples"] {
        std::os::unix::fs::symlink(Path::new(root).join(shared), work.join(shared)).unwrap();
    }
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();

    // One bash runs every line, so `export` carries over; each line's status is checked on a
    // line of its own (a `||` after the line would be part of its trailing comment). A failing
    // line shows what the cluster was doing.
    let mut script = String::from(
        "set -u\ncargo() { :; }\nfailed() { echo \"TOUR LINE $1 FAILED\"; kubectl get pods -A -o wide; kubectl get events -A | tail -40; exit 1; }\n",
    );
    for (i, line) in lines.iter().enumerate() {
        let quoted = line.replace('\'', r"'\''");
        script.push_str(&format!("echo '>>> {quoted}'\n"));
        if until_interrupted(line) {
            // Runs until Ctrl+C: let it start, then interrupt it as a user would. Job control
            // gives it a process group of its own that takes SIGINT (a plain background job
            // ignores it); the braces keep the line's comment off the `&`.
            script.push_str(&format!(
                "set -m\n{{\n{line}\n}} &\npid=$!\nsleep 3\nkill -INT -$pid\nwait $pid || failed {i}\nset +m\n"
            ));
        } else {
            script.push_str(&format!("{line}\n[ $? -eq 0 ] || failed {i}\n"));
        }
    }
    script.push_str("kip sandbox down\n");

    let mut child = Command::new("bash")
        .args(["-c", &script])
        // Its own process group, so a tour that overruns is stopped whole (sandbox included).
        .process_group(0)
        .current_dir(work)
        .env("HOME", &home)
        .env("KIP_HOME", home.join(".kip"))
        // Pods run as containers, from images prepared once per machine (the tour's
        // `kip sandbox image prepare`) in the store the tests share.
        .env("KIP_CONTAINERS", crate::workloads::shared_containers())
        .env_remove("KIP_SANDBOX_RUNTIME")
        .env_remove("KUBECONFIG")
        .env_remove("KIP_SCRIPTS")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    // The output is read as it comes, so a full pipe never stalls the tour.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // A first `kip sandbox image prepare` on a machine takes minutes (debootstrap).
    let deadline = Instant::now() + Duration::from_secs(900);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            // SAFETY: signalling the process group of our own child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    // Whatever happened, leave no sandbox running (it would hold the output pipes open).
    let _ = crate::common::kip_command()
        .args(["sandbox", "down"])
        .env("KIP_HOME", home.join(".kip"))
        .output();
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "the tour broke:\n{out}\n--- stderr ---\n{err}"
    );

    // What the tour promises along the way.
    for promise in [
        "✔ Deployment unchanged",
        "Promotion pipeline: test → acc → prod",
        "✔ Bound db to web: DB_HOST, DB_NAME, DB_PASSWORD, DB_PORT, DB_USERNAME",
        "✔ Tunnel open: localhost:15432 → db (postgres)",
        "✔ worker rolled out in shop-test",
        "✔ Database web_test created",
        "<title>Welcome to nginx!</title>",
        "Live at http://web-test-sandbox.localhost:18080",
    ] {
        assert!(out.contains(promise), "want {promise:?}:\n{out}\n{err}");
    }
    assert!(
        err.contains("warning: api is simulated: image ghcr.io/acme/api:latest"),
        "{err}"
    );
    assert!(out.to_lowercase().contains("x-instance-id: "), "{out}");
}

#[test]
fn the_tour_is_read_from_the_readme() {
    let lines = tour_lines(
        "x\n## A five-minute tour\ntext\n```sh\nkip a   # one\n   # expected\n\nkip b\n```\n```sh\nkip c\n```\n",
    );
    assert_eq!(lines, ["kip a   # one", "kip b"]);
    assert!(until_interrupted(
        "kip tunnel db # ✔ Tunnel open … Ctrl+C closes"
    ));
}
