//! Parsing Kubernetes API paths into what they address.

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`
    GroupVersion {
        group: String,
        version: String,
    },
    OpenApiV2,
    OpenApiV3Root,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`
    OpenApiV3 {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
}

/// A path under a group/version that names a resource, and maybe an object and subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    /// Set for namespaced paths (`/namespaces/{ns}/{plural}`).
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// A legacy `/watch/` path.
    pub watch: bool,
}

pub fn parse(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let parts: Vec<&str> = if parts == [""] { Vec::new() } else { parts };
    match parts.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => Some(Route::Health),
        ["api"] => Some(Route::CoreVersions),
        ["apis"] => Some(Route::Groups),
        ["apis", group] => Some(Route::Group(group.to_string())),
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        ["openapi", "v3"] => Some(Route::OpenApiV3Root),
        ["openapi", "v3", "api", version] => Some(Route::OpenApiV3 {
            group: String::new(),
            version: version.to_string(),
        }),
        ["openapi", "v3", "apis", group, version] => Some(Route::OpenApiV3 {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => None,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    if rest.is_empty() {
        return Some(Route::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        });
    }
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let path = |namespace: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Some(Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            namespace: namespace.map(String::from),
            plural: plural.to_string(),
            name: name.map(String::from),
            subresource: sub.map(String::from),
            watch,
        }))
    };
    match rest {
        // `/namespaces/{ns}` and its subresources address the namespace itself...
        ["namespaces"] => path(None, "namespaces", None, None),
        ["namespaces", name] => path(None, "namespaces", Some(name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] => {
            path(None, "namespaces", Some(name), Some(sub))
        }
        // ...anything longer addresses resources inside it.
        ["namespaces", ns, plural] => path(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => path(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => path(Some(ns), plural, Some(name), Some(sub)),
        [plural] => path(None, plural, None, None),
        [plural, name] => path(None, plural, Some(name), None),
        [plural, name, sub] => path(None, plural, Some(name), Some(sub)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(route: Option<Route>) -> ResourcePath {
        match route {
            Some(Route::Resource(r)) => r,
            other => panic!("not a resource route: {other:?}"),
        }
    }

    #[test]
    fn namespaced_object_with_subresource() {
        let r = res(parse("/apis/apps/v1/namespaces/web/deployments/api/scale"));
        assert_eq!(r.group, "apps");
        assert_eq!(r.namespace.as_deref(), Some("web"));
        assert_eq!(r.plural, "deployments");
        assert_eq!(r.name.as_deref(), Some("api"));
        assert_eq!(r.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn namespace_itself_and_its_status() {
        let r = res(parse("/api/v1/namespaces/web"));
        assert_eq!(
            (r.namespace, r.plural.as_str(), r.name.as_deref()),
            (None, "namespaces", Some("web"))
        );
        let r = res(parse("/api/v1/namespaces/web/finalize"));
        assert_eq!(r.subresource.as_deref(), Some("finalize"));
        let r = res(parse("/api/v1/namespaces/web/pods"));
        assert_eq!(
            (r.namespace.as_deref(), r.plural.as_str()),
            (Some("web"), "pods")
        );
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse("/api"), Some(Route::CoreVersions));
        assert_eq!(parse("/apis/"), Some(Route::Groups));
        assert_eq!(
            parse("/api/v1"),
            Some(Route::GroupVersion {
                group: String::new(),
                version: "v1".into()
            })
        );
        assert_eq!(parse("/nope"), None);
        assert_eq!(parse("/"), None);
    }

    #[test]
    fn legacy_watch_path() {
        let r = res(parse("/api/v1/watch/namespaces/a/pods"));
        assert!(r.watch);
        assert_eq!(r.plural, "pods");
    }
}
