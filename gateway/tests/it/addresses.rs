//! Which cluster addresses the gateway accepts (SSRF): public ones only by default, private
//! ones with `--allow-private-clusters`, its own listeners never; on registration, on update
//! by a cluster's own token, and for entries already in the registry file at start.

use std::net::{SocketAddr, UdpSocket};

use crate::support::*;

/// The error message of a refused registration.
fn refused(reply: &Reply, what: &str) -> String {
    assert_eq!(reply.status, 400, "{what}: {reply:?}");
    reply.json()["error"].as_str().unwrap().to_owned()
}

fn mapped(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("[::ffff:{}]:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => v6.to_string(),
    }
}

/// This machine's address towards the outside, if it has one besides loopback: asked of the
/// kernel with a UDP `connect`, which sends nothing.
fn own_outside_ip() -> Option<std::net::IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn cluster_ids(gw: &Gateway) -> Vec<String> {
    let list = admin(gw.admin, "GET", "/v1/clusters", Some(ADMIN_TOKEN), b"").json();
    list["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn private_loopback_link_local_and_own_addresses_are_refused_by_default() {
    let gw = Gateway::start_for(&[], Clusters::PublicOnly);
    let admin_listener = gw.admin.to_string();
    let admin_mapped = mapped(gw.admin);
    let mut addresses = vec![
        "127.0.0.1:19090",
        "127.1.2.3:80",
        "[::1]:18081",
        "169.254.169.254:80",
        "[::ffff:169.254.169.254]:80",
        "10.0.0.1:80",
        "172.16.0.1:80",
        "172.31.255.254:80",
        "192.168.1.1:80",
        "100.64.0.1:80",
        "[fc00::1]:80",
        "[fd00:abcd::1]:80",
        "[fe80::1]:80",
        "[::ffff:127.0.0.1]:80",
        "[::ffff:10.0.0.1]:80",
        "[::ffff:192.168.0.1]:80",
        "[64:ff9b::a9fe:a9fe]:80",
    ];
    let outside = own_outside_ip().map(|ip| SocketAddr::new(ip, 8080).to_string());
    addresses.extend(outside.as_deref());
    for address in addresses {
        let message = refused(&gw.put("shop", address, ADMIN_TOKEN), address);
        assert!(
            message.contains(address)
                && message.contains("--allow-private-clusters")
                && message.contains("KIP_GATEWAY_ALLOW_PRIVATE_CLUSTERS"),
            "{address}: {message}"
        );
    }
    for address in [&admin_listener, &admin_mapped] {
        let message = refused(&gw.put("shop", address, ADMIN_TOKEN), address);
        assert!(
            message.contains("own admin listener") && message.contains("not even with"),
            "{address}: {message}"
        );
    }
    for address in [
        "0.0.0.0:80",
        "[::]:80",
        "[::ffff:0.0.0.0]:80",
        "224.0.0.1:80",
        "[ff02::1]:80",
        "255.255.255.255:80",
        "[::ffff:255.255.255.255]:80",
    ] {
        let message = refused(&gw.put("shop", address, ADMIN_TOKEN), address);
        assert!(message.contains("cannot receive"), "{address}: {message}");
    }
    // Names are refused too: one could resolve to anything when the gateway connects.
    let message = refused(&gw.put("shop", "localhost:80", ADMIN_TOKEN), "a name");
    assert!(message.contains("must be an IP address"), "{message}");
    assert!(cluster_ids(&gw).is_empty(), "nothing was stored");

    // A cluster at a public address cannot move its own entry inside either. (Nothing here
    // connects to it: the documentation address only sits in the registry.)
    let created = gw.register("203-0-113-10", "203.0.113.10:80".parse().unwrap());
    let token = created.json()["token"].as_str().unwrap().to_owned();
    for address in [
        admin_listener.as_str(),
        "127.0.0.1:80",
        "169.254.169.254:80",
    ] {
        let message = refused(&gw.put("203-0-113-10", address, &token), address);
        assert!(message.contains("--allow-private-clusters"), "{message}");
    }
    let entry = admin(
        gw.admin,
        "GET",
        "/v1/clusters/203-0-113-10",
        Some(&token),
        b"",
    );
    assert_eq!(entry.json()["address"], "203.0.113.10:80");
    // …while a move to another public address is still the cluster's to make.
    assert_eq!(
        gw.put("203-0-113-10", "198.51.100.7:443", &token).status,
        200
    );
    gw.log_line(&["registration refused", "203-0-113-10", "169.254.169.254:80"]);
}

#[test]
fn with_private_clusters_allowed_the_gateways_own_listeners_stay_refused() {
    let a = Backend::start("a");
    // The proxy listener on a wildcard address: every local address reaches it.
    let gw = Gateway::start(&["--listen", "0.0.0.0:0"]);
    let token = gw.register("127-0-0-1", a.addr).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let http_port = gw.http.port();
    let mut own = vec![
        gw.admin.to_string(),
        mapped(gw.admin),
        format!("127.0.0.1:{http_port}"),
        format!("127.0.0.2:{http_port}"),
        format!("[::ffff:127.0.0.1]:{http_port}"),
        format!("[::1]:{http_port}"),
    ];
    own.extend(own_outside_ip().map(|ip| SocketAddr::new(ip, http_port).to_string()));
    for address in &own {
        for caller in [ADMIN_TOKEN, &token] {
            let message = refused(&gw.put("127-0-0-1", address, caller), address);
            assert!(
                message.contains("own") && message.contains("not even with"),
                "{address}: {message}"
            );
        }
        let message = refused(&gw.put("other", address, ADMIN_TOKEN), address);
        assert!(message.contains("listener"), "{message}");
    }
    assert_eq!(cluster_ids(&gw), ["127-0-0-1"]);

    // The attack of the issue: the entry never moved to the admin listener, so a public
    // request for /metrics reaches the cluster, not the gateway's metrics.
    let reply = gw.get("app-127-0-0-1.kipper.test", "/metrics");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["backend"], "a");
    assert!(!reply.text().contains("kip_gateway"), "{}", reply.text());
}

#[test]
fn the_environment_twin_allows_private_clusters() {
    let a = Backend::start("a");
    let dir = tempfile::tempdir().unwrap();
    let mut command = command_for(dir.path(), &["--init"], Clusters::PublicOnly);
    command.env("KIP_GATEWAY_ALLOW_PRIVATE_CLUSTERS", "true");
    let gw = Gateway::spawn(command);
    assert_eq!(gw.register("127-0-0-1", a.addr).status, 201);
    assert_eq!(gw.get("app-127-0-0-1.kipper.test", "/").status, 200);
}

#[test]
fn refused_entries_in_the_registry_file_are_quarantined_at_start_and_kept() {
    let a = Backend::start("a");
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_in(dir.path(), &["--init"]);
    let token = gw.register("127-0-0-1", a.addr).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    gw.register("public", "203.0.113.10:80".parse().unwrap());
    gw.kill();
    // An entry pointing at the port the admin listener will have (written by hand, as an
    // older gateway could have).
    let admin_port = closed_port().port();
    let path = dir.path().join("registry.json");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let hash = file["clusters"][0]["token_sha256"].clone();
    file["clusters"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": "metrics", "address": format!("127.0.0.1:{admin_port}"), "tls": false,
            "token_sha256": hash,
        }));
    std::fs::write(&path, file.to_string()).unwrap();

    // Without the flag: it starts, says loudly which entries it will not serve, and why.
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let gw = Gateway::start_in_for(
        dir.path(),
        &["--admin-listen", &admin_listen],
        Clusters::PublicOnly,
    );
    let line = gw.log_line(&["127-0-0-1", "quarantined"]);
    assert!(line.contains("loopback") && line.contains("PUT"), "{line}");
    gw.log_line(&["metrics", "quarantined", "own admin listener"]);
    assert_eq!(gw.get("app-127-0-0-1.kipper.test", "/").status, 502);
    assert_eq!(gw.get("app-metrics.kipper.test", "/metrics").status, 502);
    assert!(a.paths().is_empty(), "the backend saw {:?}", a.paths());
    let entry = admin(gw.admin, "GET", "/v1/clusters/127-0-0-1", Some(&token), b"").json();
    assert!(
        entry["refused"].as_str().unwrap().contains("loopback"),
        "{entry}"
    );
    assert_eq!(cluster_ids(&gw), ["127-0-0-1", "metrics", "public"]);
    let metrics = admin(gw.admin, "GET", "/metrics", None, b"").text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "kip_gateway_clusters_quarantined 2"),
        "{metrics}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&a.addr.to_string()),
        "kept in the file: {text}"
    );

    // The cluster's token survived: it may move its entry to an allowed address.
    let moved = gw.put("127-0-0-1", "198.51.100.7:80", &token);
    assert_eq!(moved.status, 200, "{moved:?}");
    assert!(moved.json().get("refused").is_none(), "{moved:?}");
    drop(gw);

    // With the flag the loopback entry is served again; the admin listener never is.
    let gw = Gateway::start_in(dir.path(), &["--admin-listen", &admin_listen]);
    gw.put("127-0-0-1", &a.addr.to_string(), ADMIN_TOKEN);
    assert_eq!(gw.get("app-127-0-0-1.kipper.test", "/").status, 200);
    assert_eq!(gw.get("app-metrics.kipper.test", "/metrics").status, 502);
    gw.log_line(&["metrics", "quarantined", "own admin listener"]);
}
