//! `kip tunnel` and `pg::…` against real servers: a throwaway PostgreSQL and Redis on loopback
//! stand in for a service's pod in the sandbox (annotation `sandbox.kipper.run/forward`), and
//! the real `psql`, `redis-cli` and `kubectl port-forward` are the clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::postgres::{self, Postgres};
use crate::common::redis::{self, Redis};
use crate::common::{ServedSandbox, free_port};

/// Only stops a hung test; nothing here measures speed.
const PATIENCE: Duration = Duration::from_secs(60);

fn kip_command(sb: &ServedSandbox, args: &[&str]) -> Command {
    let mut cmd = sb.kip_command(args);
    cmd.env("NO_COLOR", "1");
    cmd
}

fn kip(sb: &ServedSandbox, args: &[&str]) -> Output {
    kip_command(sb, args).output().expect("run kip")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// A kip `Service` resource `name` with a one-replica StatefulSet whose pod stands for the real
/// server at `127.0.0.1:backend` on `port`; returns once the pod `<name>-0` runs.
fn stand_in(sb: &ServedSandbox, name: &str, kind: &str, port: u16, backend: u16) {
    // kip's Service CRD, as kip applies it.
    let k = sb.kubectl();
    k.ok_stdin(
        &["apply", "-f", "-"],
        include_str!("../templates/crds/services.yaml.j2"),
    );
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/services.kipper.run",
    ]);
    let manifest = format!(
        r#"apiVersion: kipper.run/v1alpha1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{type: {kind}, version: "1", storage: 1Gi, port: {port}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}, namespace: default}}
spec:
  serviceName: {name}
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{sandbox.kipper.run/forward: "{port}=127.0.0.1:{backend}"}}
    spec:
      containers: [{{name: main, image: "{kind}:latest", ports: [{{containerPort: {port}}}]}}]
"#
    );
    k.ok_stdin(&["apply", "-f", "-"], &manifest);
    let pod = format!("{name}-0");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = k.run(&["get", "pod", &pod, "-o", "jsonpath={.status.phase}"]);
        if String::from_utf8_lossy(&out.stdout) == "Running" {
            return;
        }
        assert!(Instant::now() < deadline, "pod {pod} never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `kip tunnel`, its stdout read line by line; killed if the test ends early.
pub(crate) struct Tunnel {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Tunnel {
    /// Starts `kip tunnel ARGS` and returns once it says the tunnel is open.
    pub(crate) fn open(sb: &ServedSandbox, args: &[&str]) -> Tunnel {
        let mut all = vec!["tunnel"];
        all.extend_from_slice(args);
        let mut child = kip_command(sb, &all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kip tunnel");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut tunnel = Tunnel {
            child,
            lines,
            seen: Vec::new(),
        };
        tunnel.expect_line("Press Ctrl+C to close");
        tunnel
    }

    /// Waits for the line `wanted`, failing with all output if it never comes.
    fn expect_line(&mut self, wanted: &str) {
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    let done = line == wanted;
                    self.seen.push(line);
                    if done {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut stderr) = self.child.stderr.take() {
                        let _ = stderr.read_to_string(&mut err);
                    }
                    panic!("no line {wanted:?}; stdout {:?}, stderr {err}", self.seen);
                }
            }
        }
    }

    /// Ctrl+C; returns the exit status, the rest of stdout and stderr.
    fn interrupt(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("kip tunnel did not end after Ctrl+C");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        let rest = self.lines.try_iter().collect();
        (status, rest, err)
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `client` twice at once and returns both outputs.
fn twice_at_once(client: impl Fn() -> Output + Send + Sync + Clone + 'static) -> [Output; 2] {
    let first = {
        let client = client.clone();
        std::thread::spawn(client)
    };
    let second = std::thread::spawn(client);
    [
        first.join().expect("first client"),
        second.join().expect("second client"),
    ]
}

fn assert_psql_through(port: u16) {
    for out in
        twice_at_once(move || postgres::psql(port, "app", "SELECT 40 + 2 AS answer, current_user"))
    {
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "psql through the tunnel: {stderr}");
        assert_eq!(stdout, "42|skipper\n");
    }
}

#[test]
fn tunnel_to_postgres_serves_psql_and_closes_on_ctrl_c() {
    let pg = Postgres::start();
    let sb = ServedSandbox::start();
    stand_in(&sb, "mydb", "postgres", 5432, pg.port);
    let local = free_port();
    let local_text = local.to_string();
    let tunnel = Tunnel::open(&sb, &["mydb", "--local-port", &local_text]);
    assert_eq!(
        tunnel.seen,
        [
            format!("✔ Tunnel open: localhost:{local} → mydb (postgres)"),
            "Press Ctrl+C to close".to_string(),
        ]
    );
    assert_psql_through(local);
    // A session that writes and reads back, through the tunnel, lands in the real server.
    let out = postgres::psql(
        local,
        "app",
        "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('through the tunnel')",
    );
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        pg.psql("app", "SELECT body FROM notes"),
        "through the tunnel\n"
    );

    let (status, rest, stderr) = tunnel.interrupt();
    assert_eq!(rest, ["✔ Tunnel closed"], "stderr: {stderr}");
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stderr, "", "healthy connections report nothing");
    // The port is free again.
    TcpListener::bind(("127.0.0.1", local)).expect("the tunnel let go of its port");
}

#[test]
fn tunnel_refuses_a_taken_port_and_an_unknown_service() {
    let pg = Postgres::start();
    let sb = ServedSandbox::start();
    // The service's own port is taken on this machine: the default local port.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    stand_in(&sb, "mydb", "postgres", port, pg.port);
    let out = kip(&sb, &["tunnel", "mydb"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "localhost:{port} is already in use on this machine: pick another with --local-port"
        )),
        "{stderr}"
    );
    assert!(!stdout.contains("Tunnel open"), "{stdout}");

    let out = kip(&sb, &["tunnel", "nope"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("no service `nope` in default (see `kip service list`)"),
        "{stderr}"
    );

    let out = kip(&sb, &["tunnel", "mydb", "--local-port", "70000"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid local port 70000"), "{stderr}");
}

#[test]
fn tunnel_reports_a_backend_that_refuses_and_keeps_serving() {
    let sb = ServedSandbox::start();
    // Nothing listens behind the pod: each connection fails, the tunnel says so and lives on.
    let refused = free_port();
    stand_in(&sb, "mydb", "postgres", 5432, refused);
    let local = free_port();
    let local_text = local.to_string();
    let tunnel = Tunnel::open(&sb, &["mydb", "--local-port", &local_text]);
    for _ in 0..2 {
        let out = postgres::psql(local, "app", "SELECT 1");
        assert!(!out.status.success(), "{:?}", text(&out));
    }
    let (status, rest, stderr) = tunnel.interrupt();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(rest, ["✔ Tunnel closed"]);
    // Reported once, however many connections failed the same way.
    assert_eq!(stderr.matches("connection refused").count(), 1, "{stderr}");
    assert!(
        stderr.contains("warning: tunnel to default/mydb-0 port 5432: "),
        "{stderr}"
    );
}

#[test]
fn kubectl_port_forward_reaches_the_same_postgres() {
    let pg = Postgres::start();
    let sb = ServedSandbox::start();
    stand_in(&sb, "mydb", "postgres", 5432, pg.port);
    let local = free_port();
    let mut child = Command::new("kubectl")
        .args(["port-forward", "pod/mydb-0", &format!("{local}:5432")])
        .arg(format!(
            "--cache-dir={}",
            sb.kip_home().join("kubectl-cache").display()
        ))
        .env("KUBECONFIG", sb.kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl on the PATH");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let child = Kill(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(PATIENCE).expect("kubectl says it forwards");
    assert!(
        first.starts_with(&format!("Forwarding from 127.0.0.1:{local} -> 5432")),
        "{first}"
    );
    assert_psql_through(local);
    drop(child);
}

#[test]
fn tunnel_to_redis_serves_redis_cli() {
    let server = Redis::start();
    let sb = ServedSandbox::start();
    stand_in(&sb, "cache", "redis", 6379, server.port);
    let local = free_port();
    let local_text = local.to_string();
    let tunnel = Tunnel::open(&sb, &["cache", "--local-port", &local_text]);
    assert_eq!(
        tunnel.seen[0],
        format!("✔ Tunnel open: localhost:{local} → cache (redis)")
    );
    for out in twice_at_once(move || redis::redis_cli(local, &["PING"])) {
        assert_eq!(text(&out).0, "PONG\n", "{:?}", text(&out));
    }
    let out = redis::redis_cli(local, &["SET", "greeting", "through the tunnel"]);
    assert_eq!(text(&out).0, "OK\n", "{:?}", text(&out));
    // Straight to the server: the value is there.
    let out = redis::redis_cli(server.port, &["GET", "greeting"]);
    assert_eq!(text(&out).0, "through the tunnel\n");

    // A client that stays connected (an open desktop client) does not hold up Ctrl+C, and
    // sees its connection end.
    let mut held = std::net::TcpStream::connect(("127.0.0.1", local)).expect("connect");
    held.set_read_timeout(Some(PATIENCE)).expect("timeout");
    held.write_all(format!("AUTH {}\r\n", redis::PASSWORD).as_bytes())
        .expect("write");
    let mut ok = [0u8; 5];
    held.read_exact(&mut ok).expect("the answer to AUTH");
    assert_eq!(&ok, b"+OK\r\n");
    let (status, rest, stderr) = tunnel.interrupt();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(rest, ["✔ Tunnel closed"]);
    let mut after = Vec::new();
    held.read_to_end(&mut after)
        .expect("the held connection ends (EOF, not a timeout)");
    assert!(after.is_empty(), "{after:?}");
}

#[test]
fn pg_ensure_database_creates_once_and_refuses_bad_names() {
    let pg = Postgres::start();
    let sb = ServedSandbox::start();
    stand_in(&sb, "mydb", "postgres", 5432, pg.port);
    let script = sb.kip_home().join("provision.rhai");
    std::fs::write(
        &script,
        format!(
            r#"
let conn = #{{ namespace: "default", pod: "mydb-0", port: 5432, username: "{user}", password: "{password}", database: "app" }};
let name = ARGS[0];
print(`created=${{pg::ensure_database(conn, name)}}`);
print(`again=${{pg::ensure_database(conn, name)}}`);
let rows = pg::query(conn, "SELECT datname FROM pg_database WHERE datname = '" + name + "'");
print(`rows=${{rows.len()}} ${{rows[0].datname}}`);
print(`affected=${{pg::execute(conn, "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")}}`);
print(`null=${{pg::query(conn, "SELECT NULL AS x")[0].x == ()}}`);
"#,
            user = postgres::USER,
            password = postgres::PASSWORD,
        ),
    )
    .expect("write script");
    let script = script.display().to_string();
    assert!(!pg.databases().contains(&"shop_api_test".to_string()));
    let out = kip(&sb, &["run", &script, "shop_api_test"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "created=true\nagain=false\nrows=1 shop_api_test\naffected=2\nnull=true\n"
    );
    // Straight to the server: the database exists, and the table went to `app`.
    assert!(
        pg.databases().contains(&"shop_api_test".to_string()),
        "{:?}",
        pg.databases()
    );
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t"), "2\n");

    for bad in ["shop-api", "Shop", "x\"; DROP DATABASE app; --"] {
        let out = kip(&sb, &["run", &script, bad]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{bad}: {stdout}");
        assert!(
            stderr.contains(&format!("invalid database name `{bad}`")),
            "{stderr}"
        );
    }
    assert!(pg.databases().contains(&"app".to_string()));
}

#[test]
fn pg_reports_what_postgres_says() {
    let pg = Postgres::start();
    let sb = ServedSandbox::start();
    stand_in(&sb, "mydb", "postgres", 5432, pg.port);
    let conn = |password: &str| {
        format!(
            r#"#{{ namespace: "default", pod: "mydb-0", port: 5432, username: "{}", password: "{password}", database: "app" }}"#,
            postgres::USER
        )
    };
    let cases = [
        (
            format!(r#"pg::query({}, "SELECT 1")"#, conn("wrong")),
            r#"denied: password authentication failed for user "skipper""#,
        ),
        (
            format!(r#"pg::execute({}, "SELEC 1")"#, conn(postgres::PASSWORD)),
            r#"refused: syntax error at or near "SELEC""#,
        ),
    ];
    for (code, expected) in cases {
        let script = format!(
            "let r = \"no error\"; try {{ {code}; }} catch (e) {{ r = `${{e.kind}}: ${{e.message}}`; }} r"
        );
        let out = kip(&sb, &["eval", &script]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stdout.trim(), expected);
    }
}
