//! Which addresses the gateway may forward to.
//!
//! Registration is open to every cluster token, and the proxy is open to the whole internet, so
//! a registered address is a place anyone can make the gateway connect to. Without this check a
//! cluster could point its entry at the gateway's own admin listener, at a cloud metadata
//! service (`169.254.169.254`) or at any service on the gateway's private network, and read it
//! through `app-<cluster>.<domain>` (SSRF). So by default only public unicast addresses that do
//! not belong to the gateway's own machine are accepted. `--allow-private-clusters` lifts that
//! for tests and private deployments, but the gateway's own listeners stay refused even then:
//! forwarding to itself is never a cluster.
//!
//! Addresses are IP literals (see [`crate::registry::check_address`]), never names, so what is
//! checked here is exactly what the gateway connects to: no DNS answer can change it later.
//! IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are checked as the IPv4 address they reach,
//! and NAT64 and 6to4 addresses by the IPv4 address they embed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The name of the flag that allows private addresses, for error messages.
pub const ALLOW_FLAG: &str =
    "--allow-private-clusters (environment: KIP_GATEWAY_ALLOW_PRIVATE_CLUSTERS=true)";

/// The addresses registrations may use, and the gateway's own listeners they may never use.
#[derive(Debug, Clone)]
pub struct Policy {
    allow_private: bool,
    /// What each listener serves (for the message) and where it is bound.
    own: Vec<(&'static str, SocketAddr)>,
}

impl Policy {
    /// A policy refusing `own` (the gateway's bound listeners, named for messages) always, and
    /// non-public addresses unless `allow_private`.
    pub fn new(allow_private: bool, own: Vec<(&'static str, SocketAddr)>) -> Policy {
        Policy { allow_private, own }
    }

    /// `Ok` if the gateway may forward to `address`; otherwise why not and what to do, as one
    /// sentence for the registration API and the log.
    pub fn check(&self, address: SocketAddr) -> Result<(), String> {
        check_receivable(address)?;
        for (what, listener) in &self.own {
            if reaches(*listener, address) {
                return Err(format!(
                    "`address` {address} is this gateway's own {what} listener ({listener}): \
                     a cluster can never be the gateway itself, not even with \
                     --allow-private-clusters; register the cluster's own IP and port"
                ));
            }
        }
        if self.allow_private {
            return Ok(());
        }
        let ip = address.ip().to_canonical();
        let kind = match non_public(ip) {
            Some(kind) => kind,
            None if is_local(ip) => "an address of the gateway's own machine",
            None => return Ok(()),
        };
        Err(format!(
            "`address` {address} is {kind}: this gateway forwards only to public addresses, so \
             that a registration cannot reach into its own network; register the cluster's \
             public IP, or start the gateway with {ALLOW_FLAG} if its clusters are on a \
             private network"
        ))
    }
}

/// Refuses what can never answer a connection: port 0, a wildcard, multicast or broadcast
/// (also in their IPv4-mapped forms).
pub fn check_receivable(address: SocketAddr) -> Result<(), String> {
    let ip = address.ip().to_canonical();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if address.port() == 0 || ip.is_unspecified() || ip.is_multicast() || broadcast {
        return Err(format!(
            "`address` {address} cannot receive connections: use the cluster's own IP and a \
             port other than 0"
        ));
    }
    Ok(())
}

/// Whether a connection to `target` would arrive at `listener`: the same port and IP, or any
/// of this machine's addresses when the listener is a wildcard (`0.0.0.0`, `[::]`). A wildcard
/// of either family counts for both, since a dual-stack `[::]` takes IPv4 too.
fn reaches(listener: SocketAddr, target: SocketAddr) -> bool {
    if listener.port() != target.port() {
        return false;
    }
    let (bound, ip) = (listener.ip().to_canonical(), target.ip().to_canonical());
    if bound.is_unspecified() {
        return is_local(ip);
    }
    bound == ip
}

/// Whether `ip` belongs to this machine. Loopback always does; otherwise the kernel is asked
/// which source address it would use to reach `ip` (a UDP `connect` sends nothing): for one of
/// its own addresses that is the address itself. A bind-based test (`bind(ip:0)` succeeds only
/// for local addresses) would call every address local where `ip_nonlocal_bind` is set.
fn is_local(ip: IpAddr) -> bool {
    if ip.is_loopback() {
        return true;
    }
    let any: IpAddr = match ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let Ok(socket) = UdpSocket::bind(SocketAddr::new(any, 0)) else {
        // No socket of that family at all: nothing of it can be reached either.
        return false;
    };
    // Any port: nothing is sent. No route means not local, since local addresses always have
    // one.
    socket.connect(SocketAddr::new(ip, 9)).is_ok()
        && socket
            .local_addr()
            .is_ok_and(|local| local.ip().to_canonical() == ip)
}

/// What kind of non-public address `ip` is (already canonical), or `None` for a public one.
/// Documentation ranges (`192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`)
/// count as public: they lead nowhere inside, and examples use them.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "a \"this network\" address (0.0.0.0/8)",
        (10, _, _) => "a private address (10.0.0.0/8)",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address (100.64.0.0/10)",
        (127, _, _) => "a loopback address (127.0.0.0/8)",
        (169, 254, _) => "a link-local address (169.254.0.0/16, cloud metadata lives there)",
        (172, 16..=31, _) => "a private address (172.16.0.0/12)",
        (192, 0, 0) => "an IETF protocol address (192.0.0.0/24)",
        (192, 168, _) => "a private address (192.168.0.0/16)",
        (198, 18..=19, _) => "a benchmarking address (198.18.0.0/15)",
        (224..=239, _, _) => "a multicast address (224.0.0.0/4)",
        (240..=255, _, _) => "a reserved or broadcast address (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    // Addresses that carry an IPv4 address reach it (NAT64 64:ff9b::/96 through a translator,
    // 6to4 2002::/16 through a relay): they are as private as what they carry.
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && v4_kind(embedded(s[6], s[7])).is_some() {
        return Some("a NAT64 address of a non-public IPv4 address (64:ff9b::/96)");
    }
    if s[0] == 0x2002 && v4_kind(embedded(s[1], s[2])).is_some() {
        return Some("a 6to4 address of a non-public IPv4 address (2002::/16)");
    }
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 1] => "a loopback address (::1)",
        // IPv4-mapped ones were made IPv4 by `to_canonical`.
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible address (::/96, deprecated)",
        [0x64, 0xff9b, 1, ..] => "a local-use NAT64 address (64:ff9b:1::/48)",
        [0x100, 0, 0, 0, ..] => "a discard-only address (100::/64)",
        [first, ..] if first & 0xfe00 == 0xfc00 => "a unique local address (fc00::/7)",
        [first, ..] if first & 0xffc0 == 0xfe80 => "a link-local address (fe80::/10)",
        [first, ..] if first & 0xffc0 == 0xfec0 => "a site-local address (fec0::/10)",
        [first, ..] if first & 0xff00 == 0xff00 => "a multicast address (ff00::/8)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused_by_default() {
        let policy = Policy::new(false, Vec::new());
        for refused in [
            "127.0.0.1:19090",
            "127.255.0.9:80",
            "[::1]:18081",
            "169.254.169.254:80",
            "10.1.2.3:443",
            "172.16.0.1:80",
            "172.31.255.255:80",
            "192.168.1.1:80",
            "100.64.0.1:80",
            "100.127.255.254:80",
            "0.1.2.3:80",
            "198.18.0.1:80",
            "192.0.0.8:80",
            "240.0.0.1:80",
            "[fc00::1]:80",
            "[fd12:3456::1]:80",
            "[fe80::1]:80",
            "[fec0::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:10.0.0.1]:80",
            "[::ffff:169.254.169.254]:80",
            "[::127.0.0.1]:80",
            "[64:ff9b::7f00:1]:80",
            "[64:ff9b::a9fe:a9fe]:80",
            "[64:ff9b:1::1]:80",
            "[2002:7f00:1::1]:80",
            "[2002:c0a8:101::1]:80",
            "[100::1]:80",
        ] {
            let err = policy.check(addr(refused)).unwrap_err();
            assert!(err.contains("--allow-private-clusters"), "{refused}: {err}");
            assert!(err.contains(&addr(refused).to_string()), "{refused}: {err}");
        }
        for public in [
            "203.0.113.10:443",
            "8.8.8.8:53",
            "100.63.255.255:80",
            "100.128.0.1:80",
            "172.15.255.255:80",
            "172.32.0.1:80",
            "169.253.1.1:80",
            "[2001:db8::1]:443",
            "[2606:4700::1111]:443",
            "[::ffff:203.0.113.10]:443",
            "[64:ff9b::808:808]:53",
            "[2002:808:808::1]:80",
        ] {
            assert_eq!(policy.check(addr(public)), Ok(()), "{public}");
        }
    }

    #[test]
    fn what_cannot_receive_is_refused_even_when_private_is_allowed() {
        let policy = Policy::new(true, Vec::new());
        assert_eq!(policy.check(addr("127.0.0.1:8080")), Ok(()));
        assert_eq!(policy.check(addr("[fe80::1]:8080")), Ok(()));
        for refused in [
            "0.0.0.0:80",
            "[::]:80",
            "[::ffff:0.0.0.0]:80",
            "224.0.0.1:80",
            "[::ffff:224.0.0.1]:80",
            "[ff02::1]:80",
            "255.255.255.255:80",
            "[::ffff:255.255.255.255]:80",
            "10.0.0.1:0",
        ] {
            let err = policy.check(addr(refused)).unwrap_err();
            assert!(err.contains("cannot receive"), "{refused}: {err}");
        }
    }

    #[test]
    fn own_listeners_are_refused_always() {
        let own = vec![
            ("admin", addr("127.0.0.1:9090")),
            ("proxy", addr("0.0.0.0:8080")),
            ("TLS proxy", addr("[::]:8443")),
        ];
        for allow_private in [false, true] {
            let policy = Policy::new(allow_private, own.clone());
            for refused in [
                "127.0.0.1:9090",
                "[::ffff:127.0.0.1]:9090",
                "127.0.0.1:8080",
                "127.0.0.2:8080",
                "[::1]:8080",
                "127.0.0.1:8443",
                "[::ffff:127.0.0.1]:8443",
            ] {
                let err = policy.check(addr(refused)).unwrap_err();
                assert!(
                    err.contains("own") && err.contains("listener"),
                    "{refused}: {err}"
                );
            }
        }
        let policy = Policy::new(true, own);
        // Another loopback address than the one the admin listener is bound to does not reach
        // it; other ports are other services.
        assert_eq!(policy.check(addr("127.0.0.2:9090")), Ok(()));
        assert_eq!(policy.check(addr("127.0.0.1:9091")), Ok(()));
        assert_eq!(policy.check(addr("203.0.113.10:8080")), Ok(()));
    }
}
