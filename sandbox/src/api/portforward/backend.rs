//! Where a forwarded port leads: the loopback server a pod's annotation names.
//!
//! No process runs in a sandbox pod, so a pod forwards only the ports its annotation
//! `sandbox.kipper.run/forward` maps to servers on this machine, for example
//! `"5432=127.0.0.1:15432,6379=127.0.0.1:16379"`. Only loopback addresses are accepted: the
//! sandbox must not become a way to reach other machines.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpStream;

use crate::store::{ObjKey, Store};

/// The annotation mapping a pod's ports to loopback servers.
pub const FORWARD_ANNOTATION: &str = "sandbox.kipper.run/forward";

/// A loopback server answers at once; anything slower is a mistake worth reporting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The loopback address that stands for `port` of `pod`, or why there is none.
pub fn backend(pod: &Value, port: u16) -> Result<SocketAddr, String> {
    let Some(spec) = pod["metadata"]["annotations"][FORWARD_ANNOTATION].as_str() else {
        return Err(format!(
            "the sandbox runs no process in this pod; annotate it with \
             {FORWARD_ANNOTATION}: \"{port}=127.0.0.1:PORT\" to forward to a server on this machine"
        ));
    };
    let mut listed = Vec::new();
    for entry in spec.split([',', ' ', '\n', '\t']).filter(|e| !e.is_empty()) {
        let (from, to) = parse_entry(entry)?;
        if from == port {
            return Ok(to);
        }
        listed.push(from.to_string());
    }
    Err(format!(
        "port {port} is not forwarded: {FORWARD_ANNOTATION} maps only {}",
        if listed.is_empty() {
            "no port".to_string()
        } else {
            listed.join(", ")
        }
    ))
}

fn parse_entry(entry: &str) -> Result<(u16, SocketAddr), String> {
    let invalid = |why: &str| {
        format!(
            "invalid {FORWARD_ANNOTATION} entry \"{entry}\": {why} \
             (expected PORT=127.0.0.1:PORT, entries separated by commas)"
        )
    };
    let (from, to) = entry.split_once('=').ok_or_else(|| invalid("no '='"))?;
    let from = from
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid("the pod port is not a number from 1 to 65535"))?;
    let to = to.trim();
    let address = match to.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
            .map_err(|_| invalid("the local port is not a number from 1 to 65535"))?,
        None => to
            .parse::<SocketAddr>()
            .map_err(|_| invalid("the target is not an IP:PORT address"))?,
    };
    if !address.ip().is_loopback() {
        return Err(invalid(
            "the sandbox forwards only to loopback addresses (127.0.0.0/8, ::1)",
        ));
    }
    if address.port() == 0 {
        return Err(invalid("the local port is not a number from 1 to 65535"));
    }
    Ok((from, address))
}

/// A pod as a forward target. The pod is read again for every connection, so one that stops
/// running or whose annotation changes affects new connections, as on a real node.
#[derive(Clone)]
pub struct Target {
    pub store: Store,
    /// Pods it runs are reached at their own address.
    pub runtime: Option<std::sync::Arc<crate::runtime::Runtime>>,
    pub key: ObjKey,
}

impl Target {
    /// Opens a connection to what stands for `port` of the pod, or says why it cannot, in the
    /// words the kubelet uses on a port-forward error stream.
    pub async fn connect(&self, port: u16) -> Result<TcpStream, String> {
        let pod = self.store.get(&self.key);
        let uid = pod
            .as_ref()
            .and_then(|p| p["metadata"]["uid"].as_str())
            .unwrap_or("")
            .to_string();
        let fail = |why: String| {
            format!(
                "error forwarding port {port} to pod {}/{}, uid {uid}: {why}",
                self.key.ns, self.key.name
            )
        };
        let Some(pod) = pod else {
            return Err(fail("pod not found".into()));
        };
        let phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
        if phase != "Running" {
            return Err(fail(format!("pod is not running (phase {phase})")));
        }
        let running = self.runtime.as_ref().and_then(|r| r.running(&uid));
        let address = match running {
            // A pod of stand-in processes (`runtime::standin`) has no address of its own: 0.0.0.0
            // would be this machine's.
            Some(running) if running.ip.is_unspecified() => {
                return Err(fail(
                    "the pod runs as processes of this machine, without an address of its own"
                        .into(),
                ));
            }
            Some(running) => SocketAddr::from((running.ip, port)),
            None => backend(&pod, port).map_err(fail)?,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                // Interactive protocols (psql, redis-cli) exchange small messages.
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(fail(format!(
                "dial tcp {address}: connect: connection refused"
            ))),
            Ok(Err(e)) => Err(fail(format!("dial tcp {address}: {e}"))),
            Err(_) => Err(fail(format!("dial tcp {address}: timed out"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotation: &str) -> Value {
        json!({"metadata": {"annotations": {FORWARD_ANNOTATION: annotation}}})
    }

    #[test]
    fn maps_listed_ports() {
        let p = pod("5432=127.0.0.1:15432, 6379=localhost:16379,80=[::1]:8080");
        assert_eq!(
            backend(&p, 5432),
            Ok("127.0.0.1:15432".parse().expect("addr"))
        );
        assert_eq!(
            backend(&p, 6379),
            Ok("127.0.0.1:16379".parse().expect("addr"))
        );
        assert_eq!(backend(&p, 80), Ok("[::1]:8080".parse().expect("addr")));
    }

    #[test]
    fn unlisted_ports_and_missing_annotations_say_what_to_do() {
        let err = backend(&pod("5432=127.0.0.1:15432"), 80).expect_err("unlisted");
        assert!(err.contains("port 80 is not forwarded"), "{err}");
        assert!(err.contains("5432"), "{err}");
        let err = backend(&json!({"metadata": {}}), 80).expect_err("no annotation");
        assert!(err.contains(FORWARD_ANNOTATION), "{err}");
    }

    #[test]
    fn refuses_malformed_entries_and_other_machines() {
        for bad in [
            "5432",
            "x=127.0.0.1:1",
            "0=127.0.0.1:1",
            "1=127.0.0.1",
            "1=127.0.0.1:0",
            "1=localhost:x",
            "1=10.0.0.1:5432",
            "1=example.com:80",
        ] {
            let err = backend(&pod(bad), 1).expect_err(bad);
            assert!(err.contains("invalid"), "{bad}: {err}");
        }
    }
}
