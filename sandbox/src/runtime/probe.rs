//! Readiness, liveness and startup probes, as the kubelet runs them: an HTTP GET or a TCP
//! connect to the pod's address, or a command run in the container.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Runtime;

/// A probe's timing, with the Kubernetes defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Value) -> Timing {
        let secs = |field: &str, default: u64| {
            Duration::from_secs(probe[field].as_u64().unwrap_or(default))
        };
        let count = |field: &str, default: u32| {
            probe[field]
                .as_u64()
                .map(|n| n.clamp(1, 1000) as u32)
                .unwrap_or(default)
        };
        Timing {
            initial_delay: secs("initialDelaySeconds", 0),
            period: secs("periodSeconds", 10).max(Duration::from_secs(1)),
            timeout: secs("timeoutSeconds", 1).max(Duration::from_secs(1)),
            success_threshold: count("successThreshold", 1),
            failure_threshold: count("failureThreshold", 3),
        }
    }
}

/// Runs `probe` once against the container `podman_name` of a pod at `ip`; why it failed if
/// it did.
pub async fn check(
    runtime: &Runtime,
    ip: Ipv4Addr,
    container: &Value,
    podman_name: &str,
    probe: &Value,
) -> Result<(), String> {
    let timeout = Timing::of(probe).timeout;
    let run = async {
        if probe["httpGet"].is_object() {
            http(ip, container, &probe["httpGet"]).await
        } else if probe["tcpSocket"].is_object() {
            let port = port(container, &probe["tcpSocket"]["port"])?;
            TcpStream::connect(SocketAddr::from((ip, port)))
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp {ip}:{port}: {e}"))
        } else if let Some(command) = probe["exec"]["command"].as_array() {
            exec(runtime, podman_name, command).await
        } else {
            // gRPC probes and probes of no known kind: nothing to ask, so they pass.
            Ok(())
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

/// A port number, or the container port of that name.
fn port(container: &Value, port: &Value) -> Result<u16, String> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).map_err(|_| format!("probe port {n} is out of range"));
    }
    let name = port.as_str().unwrap_or("");
    if let Ok(n) = name.parse::<u16>() {
        return Ok(n);
    }
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("probe port {name} names no port of the container"))
}

/// An HTTP GET answered with a status from 200 to 399.
async fn http(ip: Ipv4Addr, container: &Value, get: &Value) -> Result<(), String> {
    let port = port(container, &get["port"])?;
    let path = get["path"]
        .as_str()
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for header in get["httpHeaders"].as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (header["name"].as_str(), header["value"].as_str()) else {
            continue;
        };
        if !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");
    let url = format!("http://{ip}:{port}{path}");
    let mut stream = TcpStream::connect(SocketAddr::from((ip, port)))
        .await
        .map_err(|e| format!("Get \"{url}\": dial tcp {ip}:{port}: {e}"))?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": not an HTTP answer"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// A command in the container that exits 0.
async fn exec(runtime: &Runtime, podman_name: &str, command: &[Value]) -> Result<(), String> {
    let command: Vec<&str> = command.iter().filter_map(Value::as_str).collect();
    if command.is_empty() {
        return Err("exec probe without a command".into());
    }
    let mut cmd = runtime.containers.command("podman");
    cmd.arg("exec").arg(podman_name).args(&command);
    // Waited for on a blocking thread, as `podman::run` does.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| format!("cannot run podman exec: {e}"))?
        .map_err(|e| format!("cannot run podman exec: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Err(format!(
        "command {:?} exited with {}{}",
        command.join(" "),
        out.status.code().unwrap_or(-1),
        if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        }
    ))
}
