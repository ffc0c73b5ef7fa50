//! Property tests (a fuzz of the parsers with generated input): the host parser and the
//! registration body parser never panic, accept what the hostname rule builds, and reject
//! what it cannot build; the address policy judges IPv4-mapped forms as their IPv4 address.

use std::net::{Ipv4Addr, SocketAddr};

use kip_gateway::host;
use kip_gateway::policy::Policy;
use kip_gateway::registry::Registration;
use proptest::prelude::*;

const D: &str = "kipper.run";

fn part() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?".prop_filter("no double dash", |s| !s.contains("--"))
}

fn octet() -> impl Strategy<Value = u8> {
    any::<u8>()
}

fn cluster_id() -> impl Strategy<Value = String> {
    prop_oneof![
        (octet(), octet(), octet(), octet()).prop_map(|(a, b, c, d)| format!("{a}-{b}-{c}-{d}")),
        "[a-z]([a-z0-9]{0,6})(-[a-z0-9]{1,6}){0,2}",
    ]
}

fn is_named(cluster: &str) -> impl Fn(&str) -> bool + '_ {
    move |name| name == cluster
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// What `app_host` builds, the parser splits back into the same app label and cluster.
    #[test]
    fn built_hosts_parse_back(app in part(), env in prop_oneof![Just(String::new()), part()], cluster in cluster_id()) {
        prop_assume!(host::check_cluster_id(&cluster).is_ok());
        let built = match host::app_host(&app, &env, &cluster, D) {
            Ok(built) => built,
            Err(err) => {
                // Only length may refuse generated parts.
                prop_assert!(err.contains("at most 63"), "{}", err);
                return Ok(());
            }
        };
        let label = host::label(&built, D).unwrap();
        let split = host::split(&label, is_named(&cluster));
        let split = split.expect("splits");
        prop_assert_eq!(split.cluster, cluster.as_str());
        let expected = if env.is_empty() { app.clone() } else { format!("{app}-{env}") };
        prop_assert_eq!(split.app, expected.as_str());
        // Case, a port and a trailing dot change nothing.
        let variant = format!("{}.:443", built.to_ascii_uppercase());
        prop_assert_eq!(host::label(&variant, D).unwrap(), label);
    }

    /// The cluster's own host and the console host parse too.
    #[test]
    fn cluster_and_console_hosts(cluster in cluster_id()) {
        prop_assume!(host::check_cluster_id(&cluster).is_ok());
        let own = host::cluster_host(&cluster, D).unwrap();
        let label = host::label(&own, D).unwrap();
        let split = host::split(&label, is_named(&cluster)).unwrap();
        prop_assert_eq!((split.app, split.cluster), ("", cluster.as_str()));
        let console = host::console_host(&cluster, D).unwrap();
        let label = host::label(&console, D).unwrap();
        let split = host::split(&label, is_named(&cluster)).unwrap();
        prop_assert_eq!((split.app, split.cluster), ("console", cluster.as_str()));
    }

    /// Any string: no panic, and whatever is accepted is one lowercase label.
    #[test]
    fn arbitrary_hosts_never_panic(host in "\\PC{0,80}") {
        if let Ok(label) = host::label(&host, D) {
            prop_assert!(!label.contains('.'));
            prop_assert!(!label.is_empty());
            prop_assert_eq!(label.to_lowercase(), label.to_string());
            let _ = host::split(&label, |name| name.len() % 2 == 0);
        }
    }

    /// Hosts made of host-ish characters, to reach deeper into the parser.
    #[test]
    fn hostish_strings_never_panic(host in "[a-zA-Z0-9.:\\-ü]{0,40}(\\.kipper\\.run)?\\.?(:[0-9]{0,6})?") {
        if let Ok(label) = host::label(&host, D) {
            prop_assert!(!label.contains('.'));
            if let Some(split) = host::split(&label, |_| true) {
                prop_assert!(label.ends_with(split.cluster));
                prop_assert!(!split.app.ends_with('-'));
            }
        }
    }

    /// Nested names are never accepted.
    #[test]
    fn nested_names_are_rejected(a in part(), b in part()) {
        let nested = format!("{a}.{b}.kipper.run");
        prop_assert!(host::label(&nested, D).is_err());
    }

    /// IDN: a Unicode app label parses, and its cluster is found.
    #[test]
    fn unicode_and_punycode_forms_agree(app in "[a-zäöüéß]{1,10}", cluster in cluster_id()) {
        prop_assume!(host::check_cluster_id(&cluster).is_ok());
        let unicode = format!("{app}-{cluster}.kipper.run");
        let label = host::label(&unicode, D).unwrap();
        prop_assert_eq!(label.is_ascii(), app.is_ascii());
        let split = host::split(&label, is_named(&cluster));
        if host::is_address_id(&cluster) {
            prop_assert_eq!(split.map(|s| s.cluster), Some(cluster.as_str()));
        }
    }

    /// Registration bodies: arbitrary bytes never panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Registration::parse(&body);
    }

    /// Valid bodies round-trip; an unknown key, a wrong type or a bad address is refused.
    #[test]
    fn registration_bodies(a in 1u8..=223, b in any::<u8>(), c in any::<u8>(), d in 1u8..=254, port in 1u16.., tls in any::<bool>(), key in "[a-z_]{1,10}") {
        let address = format!("{a}.{b}.{c}.{d}:{port}");
        let body = format!(r#"{{"address":"{address}","tls":{tls}}}"#);
        let reg = Registration::parse(body.as_bytes()).unwrap();
        prop_assert_eq!(reg.address.to_string(), address.clone());
        prop_assert_eq!(reg.tls, tls);
        if key != "address" && key != "tls" {
            let extra = format!(r#"{{"address":"{address}","{key}":1}}"#);
            prop_assert!(Registration::parse(extra.as_bytes()).is_err());
        }
        let wrong_type = format!(r#"{{"address":"{address}","tls":"{tls}"}}"#);
        prop_assert!(Registration::parse(wrong_type.as_bytes()).is_err());
        let no_port = format!(r#"{{"address":"{a}.{b}.{c}.{d}"}}"#);
        prop_assert!(Registration::parse(no_port.as_bytes()).is_err());
    }

    /// The address policy judges an IPv4 address and its IPv4-mapped IPv6 form alike, so the
    /// mapped form is no way around it; whatever it accepts can receive connections.
    #[test]
    fn mapped_addresses_are_judged_as_ipv4(ip in any::<u32>(), port in any::<u16>(), allow in any::<bool>()) {
        let policy = Policy::new(allow, vec![("admin", "127.0.0.1:9090".parse().unwrap())]);
        let v4 = Ipv4Addr::from(ip);
        let plain = SocketAddr::new(v4.into(), port);
        let mapped = SocketAddr::new(v4.to_ipv6_mapped().into(), port);
        prop_assert_eq!(policy.check(plain).is_ok(), policy.check(mapped).is_ok());
        if policy.check(plain).is_ok() {
            prop_assert!(port != 0 && !v4.is_unspecified() && !v4.is_multicast() && !v4.is_broadcast());
            prop_assert!(allow || !(v4.is_private() || v4.is_loopback() || v4.is_link_local()));
        }
    }
}
