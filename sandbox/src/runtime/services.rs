//! Services as pods see them: DNS names and ClusterIPs that reach ready endpoints.
//!
//! On the bridge address of the sandbox's pod network (the pods' gateway and nameserver) the
//! sandbox answers DNS for `SERVICE.NAMESPACE.svc.cluster.local` (the ClusterIP, or the ready
//! pods' addresses of a headless Service) and `HOST.SERVICE.NAMESPACE.svc.cluster.local` (a
//! StatefulSet's pod), and nothing else: there is no upstream to ask. A connection from a pod
//! to a ClusterIP (10.43.0.0/16) is redirected by a `nat` rule to a proxy on the same address,
//! which reads where it was headed (`SO_ORIGINAL_DST`) and carries it to a ready endpoint, as
//! kube-proxy's userspace mode did.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Packet, PacketFlag, QTYPE, RCODE, ResourceRecord, TYPE};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::{Runtime, podman};
use crate::store::Store;

/// The Services' address range (k3s's service CIDR).
pub const SERVICE_CIDR: &str = "10.43.0.0/16";
/// What marks the sandbox's rules in iptables.
const COMMENT: &str = "kip sandbox";
/// Answers are computed from the store each time; clients may keep them this long.
const TTL: u32 = 5;

/// Starts DNS and the ClusterIP proxy on the bridge, and the rules that confine the pod network
/// and redirect ClusterIP traffic. The bridge exists once a pod joined it.
pub async fn start(runtime: &Arc<Runtime>, store: &Store) -> Result<(), String> {
    let bridge = podman::run(
        &runtime.containers,
        &[
            "network",
            "inspect",
            &runtime.network.name,
            "--format",
            "{{.NetworkInterface}}",
        ],
    )
    .await?
    .trim()
    .to_string();
    let gateway = runtime.network.gateway();
    let dns = UdpSocket::bind((gateway, 53))
        .await
        .map_err(|e| format!("cannot serve DNS on {gateway}:53: {e}"))?;
    let proxy = TcpListener::bind((gateway, 0))
        .await
        .map_err(|e| format!("cannot listen on {gateway} for ClusterIPs: {e}"))?;
    let proxy_port = proxy.local_addr().map_err(|e| e.to_string())?.port();
    rules(&bridge, &runtime.network.cidr(), gateway, proxy_port).await?;
    tokio::spawn(serve_dns(dns, store.clone()));
    tokio::spawn(serve_cluster_ips(proxy, store.clone(), runtime.clone()));
    Ok(())
}

/// Replaces the sandbox's rules for `bridge`: ClusterIP traffic goes to the proxy, anything
/// else bound outside the pod network is dropped before it could be routed on.
async fn rules(bridge: &str, cidr: &str, gateway: Ipv4Addr, port: u16) -> Result<(), String> {
    for table in ["mangle", "nat"] {
        let listed = iptables(&["-t", table, "-S", "PREROUTING"]).await?;
        for rule in listed.lines() {
            if rule.contains(COMMENT) && rule.contains(&format!("-i {bridge} ")) {
                let mut args: Vec<&str> = vec!["-t", table];
                let words: Vec<&str> = shell_words(rule);
                args.push("-D");
                args.extend(words.iter().skip(1));
                iptables(&args).await?;
            }
        }
    }
    // Each rule's match and target; the comment that marks it goes between them.
    let target = format!("{gateway}:{port}");
    let added = [
        (
            "mangle",
            format!("-i {bridge} -d {SERVICE_CIDR}"),
            "ACCEPT".to_string(),
        ),
        (
            "mangle",
            format!("-i {bridge} ! -d {cidr}"),
            "DROP".to_string(),
        ),
        (
            "nat",
            format!("-i {bridge} -d {SERVICE_CIDR} -p tcp"),
            format!("DNAT --to-destination {target}"),
        ),
    ];
    for (table, matched, jump) in &added {
        let mut rule = vec!["-t", table, "-A", "PREROUTING"];
        rule.extend(matched.split_whitespace());
        rule.extend(["-m", "comment", "--comment", COMMENT, "-j"]);
        rule.extend(jump.split_whitespace());
        iptables(&rule).await?;
    }
    Ok(())
}

/// The words of a rule as `iptables -S` prints it (a quoted comment is one word).
fn shell_words(rule: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut rest = rule.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            words.push(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
    }
    words
}

async fn iptables(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("iptables")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "iptables {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn serve_dns(socket: UdpSocket, store: Store) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&store, &buf[..n]) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// The reply to one DNS query, or None for what is not a query.
fn answer(store: &Store, query: &[u8]) -> Option<Vec<u8>> {
    let query = Packet::parse(query).ok()?;
    let mut reply = Packet::new_reply(query.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    let mut known = false;
    for question in &query.questions {
        reply.questions.push(question.clone());
        let name = question
            .qname
            .to_string()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let Some(addresses) = resolve(store, &name) else {
            continue;
        };
        known = true;
        if !matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY) {
            continue;
        }
        for ip in addresses {
            reply.answers.push(ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                TTL,
                RData::A(A {
                    address: u32::from(ip),
                }),
            ));
        }
    }
    if !known {
        *reply.rcode_mut() = RCODE::NameError;
    }
    reply.build_bytes_vec().ok()
}

/// The addresses of a cluster name, or None when it names nothing.
pub fn resolve(store: &Store, name: &str) -> Option<Vec<Ipv4Addr>> {
    let rest = name.strip_suffix(".svc.cluster.local")?;
    let parts: Vec<&str> = rest.split('.').collect();
    let (host, service, ns) = match parts.as_slice() {
        [service, ns] => (None, *service, *ns),
        [host, service, ns] => (Some(*host), *service, *ns),
        _ => return None,
    };
    let svc = super::volumes::get(store, "services", ns, service)?;
    let endpoints = super::volumes::get(store, "endpoints", ns, service);
    let ready = || {
        endpoints
            .iter()
            .flat_map(|e| e["subsets"].as_array().cloned().unwrap_or_default())
            .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
            .collect::<Vec<Value>>()
    };
    let ip = |a: &Value| a["ip"].as_str().and_then(|ip| ip.parse::<Ipv4Addr>().ok());
    match host {
        Some(host) => Some(
            ready()
                .iter()
                .filter(|a| a["hostname"].as_str() == Some(host))
                .filter_map(ip)
                .collect(),
        ),
        None => match svc["spec"]["clusterIP"].as_str() {
            Some("None") | None => Some(ready().iter().filter_map(ip).collect()),
            Some(cluster_ip) => Some(cluster_ip.parse().ok().into_iter().collect()),
        },
    }
}

async fn serve_cluster_ips(listener: TcpListener, store: Store, runtime: Arc<Runtime>) {
    let turn = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let (store, runtime, turn) = (store.clone(), runtime.clone(), turn.clone());
        tokio::spawn(async move {
            let Some(headed) = original_destination(&conn) else {
                return;
            };
            let Some(endpoint) = endpoint(&store, &runtime, headed, &turn) else {
                return;
            };
            let Ok(mut upstream) = TcpStream::connect(endpoint).await else {
                return;
            };
            let mut conn = conn;
            let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
        });
    }
}

/// Where a redirected connection was headed before the `nat` rule.
fn original_destination(conn: &TcpStream) -> Option<SocketAddrV4> {
    // SAFETY: sockaddr_in is plain integers, for which all zeroes is a valid value.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the buffer is a sockaddr_in of the length given; the fd is the open socket's.
    let done = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    };
    (done == 0).then(|| {
        SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
            u16::from_be(addr.sin_port),
        )
    })
}

/// A ready endpoint of the Service at `headed` that runs for real, taking turns.
fn endpoint(
    store: &Store,
    runtime: &Runtime,
    headed: SocketAddrV4,
    turn: &AtomicUsize,
) -> Option<SocketAddr> {
    let ip = headed.ip().to_string();
    let state = store.read();
    let (_, svc) = state
        .list("/services", None)
        .find(|(_, s)| s["spec"]["clusterIP"].as_str() == Some(ip.as_str()))?;
    let svc = svc.clone();
    drop(state);
    let ns = svc["metadata"]["namespace"].as_str().unwrap_or("");
    let name = svc["metadata"]["name"].as_str().unwrap_or("");
    let port = svc["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| p["port"].as_u64() == Some(u64::from(headed.port())))?
        .clone();
    let endpoints = super::volumes::get(store, "endpoints", ns, name)?;
    let mut candidates = Vec::new();
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let ports = subset["ports"].as_array().cloned().unwrap_or_default();
        let target = ports
            .iter()
            .find(|p| p["name"] == port["name"] || ports.len() == 1)
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        let Some(target) = target else { continue };
        for address in subset["addresses"].as_array().into_iter().flatten() {
            if let Some(ip) = address["ip"]
                .as_str()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                && runtime.runs_address(ip.into())
            {
                candidates.push(SocketAddr::from((ip, target)));
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    Some(candidates[turn.fetch_add(1, Ordering::Relaxed) % candidates.len()])
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn a_listed_rule_splits_into_its_words() {
        assert_eq!(
            shell_words(
                r#"-A PREROUTING -i cni-podman2 -m comment --comment "kip sandbox" -j DROP"#
            ),
            [
                "-A",
                "PREROUTING",
                "-i",
                "cni-podman2",
                "-m",
                "comment",
                "--comment",
                "kip sandbox",
                "-j",
                "DROP"
            ]
        );
    }
}
