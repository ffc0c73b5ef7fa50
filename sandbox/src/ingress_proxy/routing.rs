//! Which Ingress rule answers a request: host first (exact, then `*.` wildcard, then rules
//! without a host), then the longest matching path, `Exact` before `Prefix` on a tie, and an
//! Ingress's `defaultBackend` when no rule matches.

use serde_json::Value;

use crate::store::State;

/// The store key of Ingresses.
const INGRESSES: &str = "networking.k8s.io/ingresses";
/// Traefik's annotation naming the Middlewares of every router an Ingress makes.
pub(super) const MIDDLEWARES_ANNOTATION: &str = "traefik.ingress.kubernetes.io/router.middlewares";

/// A Service port as an Ingress backend names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PortRef {
    Number(i64),
    Name(String),
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(name) => f.write_str(name),
        }
    }
}

/// Where a matched request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    /// The Ingress's namespace, where its Service and Middlewares live.
    pub namespace: String,
    pub ingress: String,
    pub service: String,
    pub port: PortRef,
    /// The annotation's entries, in order (`<namespace>-<name>@kubernetescrd`).
    pub middlewares: Vec<String>,
}

/// How well a rule matches; the greatest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// 2 for an exact host, 1 for a wildcard, 0 for a rule without host.
    host: u8,
    path_len: usize,
    exact: bool,
}

/// The route for `host` (lower case, no port) and `path`, if any Ingress has one.
pub(super) fn route(state: &State, host: &str, path: &str) -> Option<Route> {
    let mut best: Option<(Rank, Route)> = None;
    let mut fallback: Option<Route> = None;
    for (key, ingress) in state.list(INGRESSES, None) {
        for (rank, backend) in matches(ingress, host, path) {
            if best.as_ref().is_none_or(|(b, _)| rank > *b)
                && let Some(route) = to_route(&key.ns, &key.name, ingress, backend)
            {
                best = Some((rank, route));
            }
        }
        if fallback.is_none() {
            fallback = to_route(
                &key.ns,
                &key.name,
                ingress,
                &ingress["spec"]["defaultBackend"],
            );
        }
    }
    best.map(|(_, route)| route).or(fallback)
}

/// Every path of `ingress` matching the request, with its backend.
fn matches<'a>(ingress: &'a Value, host: &str, path: &str) -> Vec<(Rank, &'a Value)> {
    let mut found = Vec::new();
    for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
        let Some(host_rank) = host_rank(rule["host"].as_str(), host) else {
            continue;
        };
        for candidate in rule["http"]["paths"].as_array().into_iter().flatten() {
            let rule_path = candidate["path"].as_str().unwrap_or("/");
            let exact = candidate["pathType"].as_str() == Some("Exact");
            let matched = if exact {
                rule_path == path
            } else {
                prefix_matches(rule_path, path)
            };
            if matched {
                let rank = Rank {
                    host: host_rank,
                    path_len: rule_path.trim_end_matches('/').len(),
                    exact,
                };
                found.push((rank, &candidate["backend"]));
            }
        }
    }
    found
}

/// How a rule's host matches the request's: `None` when it does not.
fn host_rank(rule_host: Option<&str>, host: &str) -> Option<u8> {
    let Some(rule_host) = rule_host.filter(|h| !h.is_empty()) else {
        return Some(0);
    };
    let rule_host = rule_host.to_ascii_lowercase();
    if rule_host == host {
        return Some(2);
    }
    // `*.example.com` covers exactly one more label: not `example.com`, not `a.b.example.com`.
    let suffix = rule_host.strip_prefix("*.")?;
    let (label, rest) = host.split_once('.')?;
    (!label.is_empty() && rest == suffix).then_some(1)
}

/// Kubernetes's `Prefix`: the rule's path elements (split by `/`) begin the request's, so
/// `/api` matches `/api` and `/api/x` but not `/apix`; a trailing `/` on either is ignored.
pub(super) fn prefix_matches(rule_path: &str, path: &str) -> bool {
    let mut wanted = rule_path.split('/').filter(|s| !s.is_empty());
    let mut given = path.split('/').filter(|s| !s.is_empty());
    wanted.all(|element| given.next() == Some(element))
}

/// The route a backend object names, if it names a Service.
fn to_route(ns: &str, name: &str, ingress: &Value, backend: &Value) -> Option<Route> {
    let service = &backend["service"];
    let port = match (&service["port"]["number"], service["port"]["name"].as_str()) {
        (Value::Number(n), _) => PortRef::Number(n.as_i64()?),
        (_, Some(port)) => PortRef::Name(port.to_string()),
        _ => return None,
    };
    Some(Route {
        namespace: ns.to_string(),
        ingress: name.to_string(),
        service: service["name"].as_str()?.to_string(),
        port,
        middlewares: middleware_names(ingress),
    })
}

fn middleware_names(ingress: &Value) -> Vec<String> {
    ingress["metadata"]["annotations"][MIDDLEWARES_ANNOTATION]
        .as_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The request's host as rules compare it: lower case, without port.
pub(super) fn normalize_host(raw: &str) -> String {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal keeps its brackets' content, and its colons.
        rest.split(']').next().unwrap_or(rest)
    } else {
        raw.rsplit_once(':').map_or(raw, |(host, _)| host)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_element_wise() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/"));
        assert!(prefix_matches("/api/", "/api"));
        assert!(prefix_matches("/api", "/api/v1"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/aaa/bb", "/aaa/bbb"));
        assert!(!prefix_matches("/api/v1", "/api"));
    }

    #[test]
    fn hosts_match_exactly_or_by_one_wildcard_label() {
        assert_eq!(
            host_rank(Some("Shop.Example.com"), "shop.example.com"),
            Some(2)
        );
        assert_eq!(
            host_rank(Some("*.example.com"), "shop.example.com"),
            Some(1)
        );
        assert_eq!(host_rank(Some("*.example.com"), "example.com"), None);
        assert_eq!(host_rank(Some("*.example.com"), "a.b.example.com"), None);
        assert_eq!(host_rank(None, "whatever"), Some(0));
        assert_eq!(host_rank(Some("other.com"), "shop.example.com"), None);
    }

    #[test]
    fn hosts_lose_their_port_and_case() {
        assert_eq!(normalize_host("Shop.Example.com:8080"), "shop.example.com");
        assert_eq!(normalize_host("shop.example.com"), "shop.example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
    }
}
