//! Port forwarding through the sandbox to real loopback servers standing in for pods: kube-rs
//! `Api::portforward` (WebSocket) and the real `kubectl port-forward` (SPDY tunnelled in a
//! WebSocket, and plain SPDY).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{LocalSandbox, ServedSandbox, eventually};

const WAIT: Duration = Duration::from_secs(15);
/// Bounds reads so a lost byte fails the test instead of hanging it; not a speed assertion.
const PATIENCE: Duration = Duration::from_secs(20);

/// A loopback server that echoes every connection until the client closes it.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
    let address = listener.local_addr().expect("echo address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let Ok(mut reader) = conn.try_clone() else {
                    return;
                };
                let _ = std::io::copy(&mut reader, &mut conn);
                let _ = conn.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    address
}

/// A loopback server that greets each connection and hangs up, like a server with a banner.
fn banner_server(banner: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind banner server");
    let address = listener.local_addr().expect("banner address");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(banner);
        }
    });
    address
}

/// A loopback address where nothing listens.
fn refusing_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn pod(name: &str, forward: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"sandbox.kipper.run/forward": forward}},
        "spec": {"containers": [{"name": "main", "image": "postgres:17", "ports": [{"containerPort": 5432}]}]},
    }))
    .expect("pod")
}

async fn running_pod(pods: &Api<Pod>, name: &str, forward: &str) {
    pods.create(&PostParams::default(), &pod(name, forward))
        .await
        .expect("create pod");
    eventually(WAIT, "the pod to run", || async {
        let pod = pods.get(name).await.ok()?;
        (pod.status?.phase? == "Running").then_some(())
    })
    .await;
}

/// Sends `data` through `stream` and reads as many bytes back.
async fn echo_through(stream: &mut tokio::io::DuplexStream, data: &[u8]) -> Vec<u8> {
    let (mut read, mut write) = tokio::io::split(stream);
    let send = async {
        write.write_all(data).await.expect("write to the forward");
    };
    let receive = async {
        let mut back = vec![0u8; data.len()];
        read.read_exact(&mut back).await.expect("read the echo");
        back
    };
    let ((), back) = tokio::time::timeout(PATIENCE, async { tokio::join!(send, receive) })
        .await
        .expect("the echo in time");
    back
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_forwards_to_the_backing_server() {
    let sb = LocalSandbox::start().await;
    let echo = echo_server();
    let pods: Api<Pod> = Api::namespaced(sb.client(), "default");
    running_pod(&pods, "db", &format!("5432={echo},6379={echo}")).await;

    // Two forwarders at once (two WebSockets), each with enough data to need many frames.
    let (one, two) = (payload(1, 300_000), payload(2, 300_000));
    let forward = |data: Vec<u8>| {
        let pods = pods.clone();
        async move {
            let mut pf = pods.portforward("db", &[5432]).await.expect("portforward");
            let mut stream = pf.take_stream(5432).expect("stream for 5432");
            let back = echo_through(&mut stream, &data).await;
            drop(stream);
            pf.join().await.expect("the forwarder ends cleanly");
            back == data
        }
    };
    let (a, b) = tokio::join!(forward(one), forward(two));
    assert!(a && b, "both forwards echoed their own bytes");

    // Two ports through one WebSocket.
    let mut pf = pods
        .portforward("db", &[5432, 6379])
        .await
        .expect("portforward two ports");
    let mut first = pf.take_stream(5432).expect("5432");
    let mut second = pf.take_stream(6379).expect("6379");
    assert_eq!(echo_through(&mut second, b"second").await, b"second");
    assert_eq!(echo_through(&mut first, b"first").await, b"first");
    drop((first, second));
    pf.join().await.expect("clean end");
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_sees_the_backend_hang_up() {
    let sb = LocalSandbox::start().await;
    let banner = banner_server(b"220 hello from the stand-in\r\n");
    let pods: Api<Pod> = Api::namespaced(sb.client(), "default");
    running_pod(&pods, "mail", &format!("25={banner}")).await;
    let mut pf = pods.portforward("mail", &[25]).await.expect("portforward");
    let mut stream = pf.take_stream(25).expect("stream");
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut got))
        .await
        .expect("the end of the stream in time")
        .expect("read");
    assert_eq!(got, b"220 hello from the stand-in\r\n");
    // The sandbox closed the WebSocket, as the kubelet does when every port's connection has
    // ended. (kube-rs 5 then reports SendAfterClosing from `join`, because it sends its own
    // Close after answering ours; the data and the end of the stream are what matter.)
    drop(stream);
    let _ = pf.join().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_errors_surface_and_the_sandbox_keeps_serving() {
    let sb = LocalSandbox::start().await;
    let echo = echo_server();
    let refused = refusing_address();
    let pods: Api<Pod> = Api::namespaced(sb.client(), "default");
    running_pod(&pods, "db", &format!("5432={echo},6379={refused}")).await;

    match pods.portforward("nope", &[5432]).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.message, "pods \"nope\" not found");
        }
        Err(other) => panic!("expected a 404 Status, got {other:?}"),
        Ok(_) => panic!("a forward to a missing pod was accepted"),
    }

    for (port, expected) in [
        (6379, "connection refused"),
        (80, "port 80 is not forwarded"),
    ] {
        let mut pf = pods.portforward("db", &[port]).await.expect("upgrade");
        let error = tokio::time::timeout(PATIENCE, pf.take_error(port).expect("error future"))
            .await
            .expect("the error in time")
            .expect("an error message");
        assert!(
            error.contains(&format!("error forwarding port {port} to pod default/db"))
                && error.contains(expected),
            "{error}"
        );
        let mut stream = pf.take_stream(port).expect("stream");
        let mut rest = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest))
            .await
            .expect("the stream ends")
            .expect("read");
        assert!(rest.is_empty());
    }

    let mut pf = pods.portforward("db", &[5432]).await.expect("portforward");
    let mut stream = pf.take_stream(5432).expect("stream");
    assert_eq!(
        echo_through(&mut stream, b"still serving").await,
        b"still serving"
    );
}

/// A `kubectl port-forward` process, killed when dropped.
struct PortForward {
    child: Child,
    local: SocketAddr,
}

impl PortForward {
    /// Starts kubectl forwarding a free local port to `remote` of `target`; waits until it
    /// listens. `websockets: false` makes kubectl use its plain SPDY upgrade.
    fn start(sb: &ServedSandbox, target: &str, remote: u16, websockets: bool) -> PortForward {
        let mut child = Command::new("kubectl")
            .args(["port-forward", target, &format!(":{remote}")])
            .arg(format!(
                "--cache-dir={}",
                sb.kip_home().join("kubectl-cache").display()
            ))
            .env("KUBECONFIG", sb.kubeconfig())
            .env(
                "KUBECTL_PORT_FORWARD_WEBSOCKETS",
                if websockets { "true" } else { "false" },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl on the PATH");
        // kubectl prints a second line and more later: keep its stdout open and drained.
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line).expect("kubectl output");
        if read == 0 {
            let mut err = String::new();
            let _ = child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err);
            let _ = child.kill();
            panic!("kubectl port-forward printed nothing: {err}");
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        // "Forwarding from 127.0.0.1:40123 -> 5432"
        let local = line
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no local address in {line:?}"));
        PortForward { child, local }
    }

    fn connect(&self) -> TcpStream {
        let conn = TcpStream::connect(self.local).expect("connect to kubectl's port");
        conn.set_read_timeout(Some(PATIENCE)).expect("timeout");
        conn
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo_blocking(conn: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = conn.try_clone().expect("clone");
    let data = data.to_vec();
    let len = data.len();
    let sender = std::thread::spawn(move || writer.write_all(&data));
    let mut back = vec![0u8; len];
    conn.read_exact(&mut back).expect("read the echo");
    sender.join().expect("sender").expect("write");
    back
}

fn kubectl_pod(sb: &ServedSandbox, name: &str, forward: &str) {
    let kubectl = sb.kubectl();
    kubectl.ok(&[
        "run",
        name,
        "--image=postgres:17",
        &format!("--annotations=sandbox.kipper.run/forward={forward}"),
    ]);
    kubectl.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Running",
        &format!("pod/{name}"),
        "--timeout=30s",
    ]);
}

#[test]
fn kubectl_port_forward_over_websocket_and_spdy() {
    let sb = ServedSandbox::start();
    let echo = echo_server();
    kubectl_pod(&sb, "db", &format!("5432={echo}"));
    for websockets in [true, false] {
        let pf = PortForward::start(&sb, "pod/db", 5432, websockets);
        // Two client connections at once through one kubectl.
        let (one, two) = (payload(3, 200_000), payload(4, 200_000));
        let mut c1 = pf.connect();
        let mut c2 = pf.connect();
        let t1 = std::thread::spawn(move || echo_blocking(&mut c1, &one) == one);
        let t2 = std::thread::spawn(move || echo_blocking(&mut c2, &two) == two);
        assert!(
            t1.join().expect("first") && t2.join().expect("second"),
            "websockets={websockets}: both connections echoed their own bytes"
        );
        // A later connection on the same kubectl still works.
        let mut c3 = pf.connect();
        assert_eq!(echo_blocking(&mut c3, b"again"), b"again");
    }
}

#[test]
fn kubectl_port_forward_reports_what_the_sandbox_cannot_forward() {
    let sb = ServedSandbox::start();
    let echo = echo_server();
    kubectl_pod(&sb, "db", &format!("5432={echo}"));
    let mut pf = PortForward::start(&sb, "pod/db", 80, true);
    let mut conn = pf.connect();
    let mut got = Vec::new();
    // The forward ends without a byte...
    let _ = conn.read_to_end(&mut got);
    assert!(got.is_empty(), "{got:?}");
    // ...and kubectl reports the sandbox's message (read line by line: kubectl may go on).
    let stderr = pf.child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = lines_rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no error reported; kubectl said {seen:?}"));
        if line.contains("error forwarding port 80 to pod default/db") {
            assert!(line.contains("port 80 is not forwarded"), "{line}");
            break;
        }
        seen.push(line);
    }
}
