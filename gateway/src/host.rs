//! The one hostname rule of Kipper: every public name is a single label under the gateway's
//! domain, `<app>[-<env>]-<cluster-id>.<domain>`, so one wildcard certificate covers them all.
//!
//! A cluster id is either an IPv4 address written with dashes (`203-0-113-10`) or a name
//! (`shop`) given at registration. Parsing a label takes the trailing four numeric parts when
//! they form an address, else the longest suffix that is a registered name; what precedes it is
//! the app label (`hello`, `hello-test`, `console`), empty for the cluster itself. With names
//! `shop` and `test-shop` both registered, `hello-test-shop` belongs to `test-shop`: the longest
//! suffix wins, which is why a name cannot end in an address.
//!
//! This module needs no dependencies: `builtins` uses it to build the hosts that the gateway
//! parses, so the rule lives in one place.

use std::borrow::Cow;
use std::fmt;

use crate::punycode;

/// The longest DNS label.
pub const MAX_LABEL: usize = 63;

/// Why a Host cannot be a Kipper hostname. Deliberately says nothing about the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// No Host header or `:authority`, or an empty one.
    Missing,
    /// Not a syntactically valid host (`reason` says which rule).
    Malformed(&'static str),
    /// Not a label directly under the gateway's domain (includes the bare domain itself).
    NotUnderDomain,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Missing => f.write_str("the request has no Host"),
            HostError::Malformed(reason) => write!(f, "malformed host: {reason}"),
            HostError::NotUnderDomain => f.write_str("the host is not a name this gateway serves"),
        }
    }
}

impl std::error::Error for HostError {}

/// A parsed label: the app part (empty for the cluster itself) and the cluster id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split<'a> {
    pub app: &'a str,
    pub cluster: &'a str,
}

/// Lowercases and checks a configured domain (`kipper.run`, `Kipper.Run.` → `kipper.run`).
pub fn normalize_domain(domain: &str) -> Result<String, String> {
    let domain = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| ascii_label(label).is_ok());
    if valid {
        Ok(domain)
    } else {
        Err(format!(
            "`{domain}` is not a domain name: use dot-separated labels of letters, digits and \
             dashes, like kipper.run"
        ))
    }
}

/// Checks an ASCII label: letters, digits and dashes, 1–63 long, no dash at either end.
fn ascii_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("empty label");
    }
    if label.len() > MAX_LABEL {
        return Err("label longer than 63 characters");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err("a label may hold only letters, digits and dashes");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a label cannot start or end with a dash");
    }
    Ok(())
}

/// Checks a lowercase Unicode label (a decoded IDN) and that its encoding fits in a label.
fn unicode_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("empty label");
    }
    if !label.chars().all(|c| c == '-' || c.is_alphanumeric()) {
        return Err("a label may hold only letters, digits and dashes");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a label cannot start or end with a dash");
    }
    match punycode::encode(label) {
        Some(encoded) if encoded.len() + 4 <= MAX_LABEL => Ok(()),
        _ => Err("label longer than 63 characters once encoded"),
    }
}

/// The single label of `host` under `domain` (already normalized), lowercased, with an IDN
/// label (`xn--…` or raw Unicode) decoded to Unicode. A port and one trailing dot are ignored.
pub fn label<'a>(host: &'a str, domain: &str) -> Result<Cow<'a, str>, HostError> {
    if host.is_empty() {
        return Err(HostError::Missing);
    }
    if host.len() > 260 {
        return Err(HostError::Malformed("longer than a DNS name can be"));
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) => {
            let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
            if !numeric || port.parse::<u16>().is_err() {
                return Err(HostError::Malformed(
                    "the port is not a number from 0 to 65535",
                ));
            }
            name
        }
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() <= domain.len() + 1 {
        return Err(HostError::NotUnderDomain);
    }
    let cut = name.len() - domain.len() - 1;
    if !name.is_char_boundary(cut) {
        return Err(HostError::NotUnderDomain);
    }
    let (first, rest) = name.split_at(cut);
    if !(rest.starts_with('.') && rest[1..].eq_ignore_ascii_case(domain)) {
        return Err(HostError::NotUnderDomain);
    }
    if first.contains('.') {
        // A nested name (`a.b.kipper.run`) is not covered by the wildcard certificate.
        return Err(HostError::NotUnderDomain);
    }
    if first.is_ascii() {
        ascii_label(first).map_err(HostError::Malformed)?;
        let lowered: Cow<'a, str> = if first.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(first.to_ascii_lowercase())
        } else {
            Cow::Borrowed(first)
        };
        if !lowered.starts_with("xn--") {
            return Ok(lowered);
        }
        let decoded = punycode::decode(&lowered[4..])
            .filter(|text| !text.is_ascii())
            .ok_or(HostError::Malformed(
                "an xn-- label that is not valid punycode",
            ))?;
        return lowered_unicode(decoded.to_lowercase()).map(Cow::Owned);
    }
    lowered_unicode(first.to_lowercase()).map(Cow::Owned)
}

/// A Unicode label after lowercasing. Some letters lowercase to ASCII (the Kelvin sign to `k`):
/// a label that became ASCII is held to the ASCII rule and may not spell an `xn--` label, so
/// the label written back under the domain parses to itself.
fn lowered_unicode(lowered: String) -> Result<String, HostError> {
    if lowered.is_ascii() {
        if lowered.starts_with("xn--") {
            return Err(HostError::Malformed(
                "a label that lowercases to an xn-- label",
            ));
        }
        ascii_label(&lowered).map_err(HostError::Malformed)?;
    } else {
        unicode_label(&lowered).map_err(HostError::Malformed)?;
    }
    Ok(lowered)
}

fn octet(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 3
        && part.bytes().all(|b| b.is_ascii_digit())
        && (part == "0" || !part.starts_with('0'))
        && part.parse::<u16>().is_ok_and(|v| v <= 255)
}

/// Where the trailing four-octet address starts in `label`, if it ends with one.
fn address_start(label: &str) -> Option<usize> {
    let mut start = label.len();
    for _ in 0..4 {
        let head = &label[..start];
        let dash = head.rfind('-');
        let part = &head[dash.map_or(0, |d| d + 1)..];
        if !octet(part) {
            return None;
        }
        start = dash.map_or(0, |d| d + 1);
        if start == 0 {
            // Fewer than four parts, or exactly four with nothing before them.
            return (label[start..].split('-').count() == 4).then_some(0);
        }
        start -= 1;
    }
    Some(start + 1)
}

/// Splits a label from [`label`] into app and cluster id. `is_named` says whether a name is a
/// registered cluster; it is asked about at most one suffix per dash in the label, longest
/// first, so the cost does not depend on how many clusters exist.
pub fn split<'a>(label: &'a str, is_named: impl Fn(&str) -> bool) -> Option<Split<'a>> {
    if let Some(start) = address_start(label) {
        return with_app(label, start);
    }
    let mut start = 0;
    loop {
        let suffix = &label[start..];
        if suffix.starts_with(|c: char| c.is_ascii_lowercase()) && is_named(suffix) {
            return with_app(label, start);
        }
        start += suffix.find('-')? + 1;
    }
}

fn with_app(label: &str, start: usize) -> Option<Split<'_>> {
    if start == 0 {
        return Some(Split {
            app: "",
            cluster: label,
        });
    }
    let app = &label[..start - 1];
    if app.is_empty() || app.ends_with('-') {
        return None;
    }
    Some(Split {
        app,
        cluster: &label[start..],
    })
}

/// Whether `id` is an IPv4 address written with dashes (`203-0-113-10`).
pub fn is_address_id(id: &str) -> bool {
    address_start(id) == Some(0)
}

/// The cluster id of a server reached at `ip`: its IPv4 address with dashes
/// (`203.0.113.10` → `203-0-113-10`). IPv6 addresses have no id of this form: such a cluster
/// is registered under a name.
pub fn cluster_id_for_ip(ip: std::net::IpAddr) -> Option<String> {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            Some(format!("{a}-{b}-{c}-{d}"))
        }
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .and_then(|v4| cluster_id_for_ip(std::net::IpAddr::V4(v4))),
    }
}

/// Checks a cluster id for registration: an IPv4 address with dashes, or a name of lowercase
/// letters, digits and single dashes that starts with a letter and does not end in an address
/// (which would make hosts ambiguous).
pub fn check_cluster_id(id: &str) -> Result<(), String> {
    if is_address_id(id) {
        return Ok(());
    }
    let name_ok = id.len() <= MAX_LABEL
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && !id.contains("--")
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && address_start(id).is_none();
    if name_ok {
        Ok(())
    } else {
        Err(format!(
            "cluster id `{id}` is neither an IPv4 address written with dashes (like \
             203-0-113-10) nor a name (lowercase letters, digits and single dashes, starting \
             with a letter, at most 63 characters, not ending in an address)"
        ))
    }
}

fn check_part(what: &str, part: &str) -> Result<(), String> {
    let ok = !part.is_empty()
        && !part.starts_with('-')
        && !part.ends_with('-')
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{part}` cannot be part of a hostname: use lowercase letters, digits and \
             dashes, not starting or ending with a dash"
        ))
    }
}

fn join(label: String, domain: &str) -> Result<String, String> {
    if label.len() > MAX_LABEL {
        return Err(format!(
            "the hostname label `{label}` is {} characters long; DNS allows at most 63, so \
             shorten the app or environment name",
            label.len()
        ));
    }
    Ok(format!("{label}.{}", normalize_domain(domain)?))
}

/// The public host of an app: `<app>[-<env>]-<cluster>.<domain>` (no environment part when
/// `environment` is empty).
pub fn app_host(
    app: &str,
    environment: &str,
    cluster: &str,
    domain: &str,
) -> Result<String, String> {
    check_part("app name", app)?;
    check_cluster_id(cluster)?;
    let label = if environment.is_empty() {
        format!("{app}-{cluster}")
    } else {
        check_part("environment", environment)?;
        format!("{app}-{environment}-{cluster}")
    };
    join(label, domain)
}

/// The host of the cluster itself: `<cluster>.<domain>`.
pub fn cluster_host(cluster: &str, domain: &str) -> Result<String, String> {
    check_cluster_id(cluster)?;
    join(cluster.to_owned(), domain)
}

/// The host of the cluster's console: `console-<cluster>.<domain>`.
pub fn console_host(cluster: &str, domain: &str) -> Result<String, String> {
    app_host("console", "", cluster, domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "kipper.run";

    fn parse(host: &str) -> Result<(String, String), String> {
        let label = label(host, D).map_err(|e| e.to_string())?;
        let split = split(&label, |name| {
            ["shop", "my-shop", "sandbox"].contains(&name)
        })
        .ok_or_else(|| "unknown".to_owned())?;
        Ok((split.app.to_owned(), split.cluster.to_owned()))
    }

    #[test]
    fn cluster_ids_derive_from_ipv4_addresses() {
        let id = |ip: &str| cluster_id_for_ip(ip.parse().unwrap());
        assert_eq!(id("203.0.113.10").as_deref(), Some("203-0-113-10"));
        assert_eq!(id("127.0.0.1").as_deref(), Some("127-0-0-1"));
        assert_eq!(id("::ffff:10.1.2.3").as_deref(), Some("10-1-2-3"));
        assert_eq!(id("2001:db8::10"), None);
        for ip in ["0.0.0.0", "255.255.255.255", "203.0.113.10"] {
            let derived = id(ip).unwrap();
            assert!(is_address_id(&derived), "{derived}");
            assert!(check_cluster_id(&derived).is_ok());
            let host = app_host("hello", "test", &derived, D).unwrap();
            assert_eq!(parse(&host), ok("hello-test", &derived));
        }
    }

    fn ok(app: &str, cluster: &str) -> Result<(String, String), String> {
        Ok((app.to_owned(), cluster.to_owned()))
    }

    #[test]
    fn the_seed_table() {
        assert_eq!(parse("203-0-113-10.kipper.run"), ok("", "203-0-113-10"));
        assert_eq!(
            parse("console-203-0-113-10.kipper.run"),
            ok("console", "203-0-113-10")
        );
        assert_eq!(
            parse("hello-203-0-113-10.kipper.run"),
            ok("hello", "203-0-113-10")
        );
        assert_eq!(
            parse("hello-test-203-0-113-10.kipper.run"),
            ok("hello-test", "203-0-113-10")
        );
    }

    #[test]
    fn case_port_and_trailing_dot() {
        assert_eq!(
            parse("Hello-203-0-113-10.KIPPER.run.:8443"),
            ok("hello", "203-0-113-10")
        );
    }

    #[test]
    fn named_clusters_take_the_longest_suffix() {
        assert_eq!(parse("shop.kipper.run"), ok("", "shop"));
        assert_eq!(parse("api-my-shop.kipper.run"), ok("api", "my-shop"));
        assert_eq!(parse("api-shop.kipper.run"), ok("api", "shop"));
        assert_eq!(parse("api-nope.kipper.run"), Err("unknown".into()));
    }

    #[test]
    fn idn_labels_are_decoded_before_splitting() {
        assert_eq!(
            parse("xn--bcher-203-0-113-10-m6b.kipper.run"),
            ok("bücher", "203-0-113-10")
        );
        assert_eq!(
            parse("Bücher-203-0-113-10.kipper.run"),
            ok("bücher", "203-0-113-10")
        );
        assert!(parse("xn--!!.kipper.run").is_err());
        assert!(parse("xn--abc.kipper.run").is_err());
    }

    /// Found by the fuzzer: the Kelvin sign (U+212A) lowercases to ASCII `k`, so a decoded or
    /// raw Unicode label could become an ASCII `xn--` label that parses to something else.
    #[test]
    fn labels_that_lowercase_to_ascii_parse_to_themselves() {
        let kelvin = "xn--xn----------RRITTPTTT-----RR1p.kipper.Run";
        assert!(label(kelvin, "kipper.run").is_err(), "{kelvin}");
        assert!(label("xn--\u{212A}.kipper.run", "kipper.run").is_err());
        assert_eq!(
            label("\u{212A}ab.kipper.run", "kipper.run").as_deref(),
            Ok("kab")
        );
        assert_eq!(label("kab.kipper.run", "kipper.run").as_deref(), Ok("kab"));
    }

    #[test]
    fn rejects() {
        for host in [
            "",
            "kipper.run",
            ".kipper.run",
            "a.b-1-2-3-4.kipper.run",
            "hello-203-0-113-10.kipper.run.evil.com",
            "hello-203-0-113-10.evilkipper.run",
            "hello_x-1-2-3-4.kipper.run",
            "-1-2-3-4.kipper.run",
            "a--1-2-3-4.kipper.run",
            "hello-1-2-3-4.kipper.run:99999",
            "hello-1-2-3-4.kipper.run:",
            "[::1]:80",
            "hello-256-0-0-1.kipper.run",
        ] {
            assert!(
                parse(host).is_err(),
                "{host:?} was accepted: {:?}",
                parse(host)
            );
        }
    }

    #[test]
    fn cluster_ids() {
        for good in ["203-0-113-10", "0-0-0-0", "shop", "my-shop2"] {
            assert_eq!(check_cluster_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Shop",
            "1shop",
            "shop-",
            "my--shop",
            "shop-1-2-3-4",
            "203-0-113-010",
            "a.b",
            "203-0-113",
            "1-2-3-4-5",
        ] {
            assert!(check_cluster_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn building_hosts() {
        assert_eq!(
            app_host("hello", "", "203-0-113-10", "kipper.run").unwrap(),
            "hello-203-0-113-10.kipper.run"
        );
        assert_eq!(
            app_host("hello", "test", "sandbox", "Localhost.").unwrap(),
            "hello-test-sandbox.localhost"
        );
        assert_eq!(cluster_host("shop", D).unwrap(), "shop.kipper.run");
        assert_eq!(console_host("shop", D).unwrap(), "console-shop.kipper.run");
        assert!(app_host("Hello", "", "shop", D).is_err());
        assert!(app_host("hello", "-x", "shop", D).is_err());
        assert!(app_host(&"a".repeat(60), "", "shop", D).is_err());
        assert!(app_host("hello", "", "shop", "bad domain").is_err());
    }
}
