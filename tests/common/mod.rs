//! Shared fixtures: a sandbox run through the real `kip` binary, the real `kubectl`, a kube-rs
//! client, and an in-process sandbox for API-level tests.

#![allow(dead_code)]

pub mod browser;
pub mod containers;
/// The real kip-gateway fixture the builtins' tests use too.
#[path = "../../builtins/tests/common/gateway.rs"]
pub mod gateway;
pub mod git;
pub mod mariadb;
pub mod postgres;
pub mod redis;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn kip_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kip")
}

/// The `kip` binary as a command whose sandboxes simulate their pods (`KIP_SANDBOX_RUNTIME`):
/// only the tests of real workloads (tests/workloads.rs) run containers, where they ask for it.
pub fn kip_command() -> Command {
    let mut cmd = Command::new(kip_bin());
    cmd.env("KIP_SANDBOX_RUNTIME", "none");
    cmd
}

/// `kip` as a user runs it with the kip home `home`: that home as working directory, no
/// override folder (`KIP_SCRIPTS`), stdin closed. Tests add what they need, then run it:
/// `kip_in(home).env("HOME", home).run(&["cluster", "list"])`.
pub struct KipCommand(Command);

pub fn kip_in(home: &Path) -> KipCommand {
    let mut cmd = crate::common::kip_command();
    cmd.env("KIP_HOME", home)
        .env_remove("KIP_SCRIPTS")
        .current_dir(home)
        .stdin(Stdio::null());
    KipCommand(cmd)
}

impl KipCommand {
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> KipCommand {
        self.0.env(key, value);
        self
    }

    /// Without `key` in the environment (`KUBECONFIG`, so no cluster of the machine's is used).
    pub fn without(mut self, key: &str) -> KipCommand {
        self.0.env_remove(key);
        self
    }

    /// Runs `kip ARGS` to the end.
    pub fn run(mut self, args: &[&str]) -> Output {
        self.0.args(args).output().expect("run kip")
    }
}

/// The uid and gid to run a database server as: none when we are not root (it runs as us),
/// else those of the system user `user` its Debian `package` creates, since the servers
/// refuse to run as root (tests run as root in CI).
pub fn server_owner(user: &str, package: &str) -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "no `{user}` user: is the {package} package installed (./test.sh installs it)?"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    Some((id("-u"), id("-g")))
}

/// `program` run as `owner` (the process switches user itself, so its pid is the server's),
/// in the C locale.
pub fn command_as(program: impl AsRef<std::ffi::OsStr>, owner: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = owner {
        std::os::unix::process::CommandExt::uid(&mut cmd, uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, gid);
    }
    cmd.env("LC_ALL", "C");
    cmd
}

/// What a process printed on stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Everything a process printed, stdout then stderr, for failure messages.
pub fn text(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// Stops a server child: `signal` first (its clean shutdown), a kill after 20 s.
pub fn stop(child: &mut Child, signal: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The arguments of `kip app deploy` of `name` (nginx:1.27 on port 80) into `environment` of
/// `project`.
pub fn nginx_deploy<'a>(name: &'a str, project: &'a str, environment: &'a str) -> [&'a str; 12] {
    [
        "app",
        "deploy",
        "--name",
        name,
        "--image",
        "nginx:1.27",
        "--port",
        "80",
        "--project",
        project,
        "--environment",
        environment,
    ]
}

/// What a process printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A `kip sandbox serve` process with its own kip home.
pub struct ServedSandbox {
    pub home: tempfile::TempDir,
    pub child: Option<Child>,
    pub address: String,
    /// Extra arguments of `kip sandbox serve` and variables of its environment.
    serve_args: Vec<String>,
    serve_env: Vec<(String, String)>,
}

impl ServedSandbox {
    pub fn start() -> ServedSandbox {
        ServedSandbox::start_with(&[], &[])
    }

    /// A sandbox that runs exec commands on this machine for pods annotated
    /// `sandbox.kipper.run/exec: host`.
    pub fn with_host_exec() -> ServedSandbox {
        ServedSandbox::start_with(&["--allow-host-exec"], &[])
    }

    /// `kip sandbox serve ARGS` with `env` added to its environment.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> ServedSandbox {
        let home = tempfile::tempdir().expect("temp kip home");
        let mut sandbox = ServedSandbox {
            home,
            child: None,
            address: String::new(),
            serve_args: args.iter().map(|a| a.to_string()).collect(),
            serve_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        sandbox.restart();
        sandbox
    }

    /// `kip sandbox serve` on this home, and the first line it printed (empty if it exited).
    fn spawn_serve(&self) -> (Child, String) {
        let mut child = crate::common::kip_command()
            .args(["sandbox", "serve"])
            .args(&self.serve_args)
            .envs(self.serve_env.iter().map(|(k, v)| (k, v)))
            .env("KIP_HOME", self.home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kip sandbox serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read first line");
        (child, first)
    }

    pub fn kip_home(&self) -> &Path {
        self.home.path()
    }

    /// `kip ARGS` as a user runs it against this sandbox: its kip home and kubeconfig, no
    /// override folder, no terminal.
    pub fn kip_command(&self, args: &[&str]) -> Command {
        let mut cmd = crate::common::kip_command();
        cmd.args(args)
            .env("KIP_HOME", self.kip_home())
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("KIP_SCRIPTS")
            .current_dir(self.kip_home())
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// `kip ARGS` (one shell line) on a pseudo-terminal: `script` runs it and copies what it
    /// draws to stdout; stdin and stdout are piped for the caller to use.
    pub fn kip_on_terminal(&self, args: &str) -> Command {
        let mut cmd = Command::new("script");
        cmd.args([
            "-q",
            "-e",
            "-c",
            &format!("{} {args}", kip_bin()),
            "/dev/null",
        ])
        .env("KIP_HOME", self.kip_home())
        .env("KUBECONFIG", self.kubeconfig())
        .env("NO_COLOR", "1")
        .env_remove("KIP_SCRIPTS")
        .current_dir(self.kip_home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    }

    /// Runs `kip ARGS` against this sandbox to the end.
    pub fn kip(&self, args: &[&str]) -> Output {
        self.kip_command(args).output().expect("run kip")
    }

    /// Runs `kip ARGS`, fails the test unless it succeeds, and returns what it printed:
    /// stdout, then stderr.
    pub fn kip_ok(&self, args: &[&str]) -> String {
        let o = self.kip(args);
        assert!(
            o.status.success(),
            "kip {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o) + stderr(&o).as_str()
    }

    /// Runs `kip ARGS`, fails the test unless it fails, and returns its stderr.
    pub fn kip_refused(&self, args: &[&str]) -> String {
        let o = self.kip(args);
        assert!(
            !o.status.success(),
            "kip {args:?} should fail: {}",
            stdout(&o)
        );
        stderr(&o)
    }

    /// Starts (again) the server on this home and waits until it answers.
    pub fn restart(&mut self) {
        // A restart takes the address the sandbox had; while it was down, another test may
        // have probed that port for a free one. Such a probe lets go at once: try again.
        let (mut child, mut first) = self.spawn_serve();
        for _ in 0..5 {
            if !first.is_empty() {
                break;
            }
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(300));
            (child, first) = self.spawn_serve();
        }
        let address = first
            .trim()
            .rsplit("http://")
            .next()
            .expect("address in first line")
            .to_string();
        assert!(
            first.contains("Sandbox listening on"),
            "unexpected first line: {first:?}"
        );
        self.address = address;
        self.child = Some(child);
        wait_healthy(&self.address);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.home.path().join("sandbox").join("kubeconfig")
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            let _ = child.wait();
        }
    }

    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig(), self.home.path())
    }

    pub async fn client(&self) -> kube::Client {
        client_for(&self.url())
    }
}

impl Drop for ServedSandbox {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn wait_healthy(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok((200, _)) = raw_request(address, "GET", "/healthz", None, &[]) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("sandbox at {address} never became healthy");
}

/// One HTTP/1.1 request over a plain socket: for requests a client library would refuse to send.
pub fn raw_request(
    address: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    raw_exchange(address, address, method, path, content_type, body)
        .map(|(code, _head, body)| (code, body))
}

/// [`raw_request`] with `Host: host` (an ingress routes by it): the status, the head and the
/// body.
pub fn raw_exchange(
    address: &str,
    host: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| ("Content-Type", ct))
        .into_iter()
        .collect();
    raw_exchange_with(address, host, method, path, &headers, body)
}

/// [`raw_exchange`] with any request `headers`.
pub fn raw_exchange_with(
    address: &str,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let addr: SocketAddr = address.parse().map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // The server may answer (413) before reading a large body; a failed write is fine then.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((code, head.to_string(), body.to_string()))
}

/// The real kubectl, pointed at a kubeconfig, with its own discovery cache.
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path, scratch: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            cache: scratch.join("kubectl-cache"),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        // kubectl's own flags go before a `--`: what follows it is a command (`kubectl exec`).
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let mut child = Command::new("kubectl")
            .args(&args[..split])
            .arg(format!("--cache-dir={}", self.cache.display()))
            .args(&args[split..])
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl on the PATH");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns its stdout, failing the test with its output if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    /// `kubectl get WHAT NAME -n NS -o jsonpath=PATH`, which must succeed.
    pub fn jsonpath(&self, what: &str, name: &str, ns: &str, path: &str) -> String {
        self.ok(&[
            "get",
            what,
            name,
            "-n",
            ns,
            "-o",
            &format!("jsonpath={path}"),
        ])
    }

    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        succeeded(args, self.run_with_stdin(args, Some(stdin)))
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl -o json prints JSON")
    }
}

/// The stdout of a kubectl run, failing the test with its output if it failed.
fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn client_for(url: &str) -> kube::Client {
    let config = kube::Config::new(url.parse().expect("sandbox url"));
    kube::Client::try_from(config).expect("kube client")
}

/// An in-process sandbox on a loopback port, backed by a temp folder.
pub struct LocalSandbox {
    pub dir: tempfile::TempDir,
    pub sandbox: sandbox::Sandbox,
    pub address: SocketAddr,
}

impl LocalSandbox {
    pub async fn start() -> LocalSandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let sandbox = sandbox::Sandbox::open(dir.path())
            .await
            .expect("open sandbox");
        let address = sandbox
            .spawn("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        LocalSandbox {
            dir,
            sandbox,
            address,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn client(&self) -> kube::Client {
        client_for(&self.url())
    }
}

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A loopback port that was free a moment ago (the OS may hand it out again; good enough for
/// servers a test starts at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The value of `key` in a Secret as kubectl prints it (base64 in `data`), as text.
pub fn secret_value(secret: &serde_json::Value, key: &str) -> String {
    use base64::Engine as _;
    let encoded = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}: {secret}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|e| panic!("{key} is not base64: {e}"));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{key} is not text: {e}"))
}
