//! The instance-ID sidecar's image for real: `instance-id/image/build` makes it from this
//! build's `kip-instance-id` binary and pushes it to a real registry (docker-registry) on
//! loopback; podman pulls it back and runs it, as a pod would (the pod's name in POD_NAME, the
//! app's port in KIP_UPSTREAM_PORT), in front of a real HTTP server (Python's http.server).
//! Everything listens on loopback; the container shares the host's network.
//!
//! Needs root, buildah, podman, runc and docker-registry (tests/provision.sh installs them),
//! and the sidecar's binary beside kip's (`cargo test --workspace` builds it; alone:
//! `cargo build -p kip-instance-id`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::containers::{Engine, Registry};
use crate::common::{free_port, kip_bin, text};

/// The sidecar's binary, built into the same folder as the test's kip.
fn sidecar_bin() -> PathBuf {
    let bin = Path::new(kip_bin()).with_file_name("kip-instance-id");
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p kip-instance-id (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// Header names (lowercase) and values, in the order received.
type Headers = Vec<(String, String)>;

/// A GET of `path` on `port`: the status line's code, the headers and the body; `None` while
/// nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, Headers, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let code = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Some((code, headers, body.to_string()))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The first 8 hex digits of the SHA-256 of `text`, by coreutils' sha256sum.
fn short_sha256(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("sha256sum ran");
    String::from_utf8_lossy(&out.stdout)[..8].to_string()
}

/// Python's http.server on a free loopback port, serving `dir`; killed when dropped.
struct Upstream {
    child: Child,
    port: u16,
}

impl Upstream {
    fn start(dir: &Path) -> Upstream {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(port, "/").is_none() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Upstream { child, port }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_sidecar_image_runs_in_front_of_a_real_server() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let engine = Engine::new(scratch.path());
    let registry = Registry::start(scratch.path());
    let built = engine
        .command(Path::new(env!("CARGO_MANIFEST_DIR")).join("instance-id/image/build"))
        .args(["kip-instance-id:test", &registry.address])
        .env("KIP_INSTANCE_ID_BIN", sidecar_bin())
        .env("KIP_IMAGE_TLS_VERIFY", "false")
        .output()
        .expect("run instance-id/image/build");
    assert!(
        built.status.success(),
        "instance-id/image/build failed: {}",
        text(&built)
    );
    let reference = format!("{}/kip-instance-id:test", registry.address);
    // Only the registry has it now: what runs below is what was pulled.
    engine.ok(&["rmi", "localhost/kip-instance-id:test"]);
    engine.ok(&["pull", "--quiet", "--tls-verify=false", &reference]);
    let size: u64 = engine
        .ok(&["image", "inspect", "--format", "{{.Size}}", &reference])
        .trim()
        .parse()
        .expect("image size");
    eprintln!(
        "image {reference}: {:.1} MiB",
        size as f64 / (1024.0 * 1024.0)
    );

    let site = scratch.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("hello.txt"), "hello from the app\n").unwrap();
    let upstream = Upstream::start(&site);
    let listen = free_port();
    let pod = "web-7d4b9c6f5-x2kqz";
    let sidecar = engine.run(
        "instance-id",
        &[
            "-e",
            &format!("KIP_UPSTREAM_PORT={}", upstream.port),
            "-e",
            &format!("KIP_LISTEN_PORT={listen}"),
            "-e",
            &format!("POD_NAME={pod}"),
        ],
        &reference,
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, headers, body) = loop {
        if let Some(answer) = get(listen, "/hello.txt") {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar never answered: {}",
            sidecar.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 200, "{headers:?} {body}");
    assert_eq!(body, "hello from the app\n");
    assert_eq!(
        header(&headers, "x-instance-id"),
        Some(short_sha256(pod).as_str())
    );
    assert_eq!(sidecar.uids(), [65532; 4], "the image's user, not root");

    // The app gone: a 502 that still says which instance answered.
    drop(upstream);
    let (code, headers, _) = get(listen, "/hello.txt").expect("the sidecar answers alone");
    assert_eq!(code, 502);
    assert_eq!(
        header(&headers, "x-instance-id"),
        Some(short_sha256(pod).as_str())
    );
}
