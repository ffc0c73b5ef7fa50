//! Traefik's Middlewares (`traefik.io/v1alpha1`) that kip's templates use: `stripPrefix` and
//! `redirectRegex`, with Traefik's semantics.

use hyper::StatusCode;
use hyper::http::Method;
use regex::Regex;
use serde_json::Value;

use crate::store::{ObjKey, State};

/// The store key of Traefik's Middlewares.
const MIDDLEWARES: &str = "traefik.io/middlewares";
/// The provider suffix of Middlewares defined as Kubernetes objects.
const CRD_PROVIDER: &str = "@kubernetescrd";

/// One Middleware, ready to apply.
#[derive(Debug)]
pub(super) enum Middleware {
    StripPrefix(Vec<String>),
    RedirectRegex {
        regex: Regex,
        replacement: String,
        permanent: bool,
    },
    /// A kind of Middleware the sandbox does not implement; passed over.
    Other,
}

/// The Middlewares an Ingress's annotation names, in order, or why one cannot be used.
pub(super) fn resolve(
    state: &State,
    ingress_ns: &str,
    entries: &[String],
) -> Result<Vec<Middleware>, String> {
    entries
        .iter()
        .map(|entry| {
            let object = find(state, ingress_ns, entry)?;
            parse(entry, &object["spec"])
        })
        .collect()
}

/// The Middleware `<namespace>-<name>@kubernetescrd` names. Both parts may contain dashes, so
/// the Ingress's own namespace is tried first, then every Middleware's full name.
fn find(state: &State, ingress_ns: &str, entry: &str) -> Result<std::sync::Arc<Value>, String> {
    let Some(qualified) = entry.strip_suffix(CRD_PROVIDER) else {
        return Err(format!(
            "middleware {entry:?} is not a Kubernetes Middleware (only `<namespace>-<name>{CRD_PROVIDER}` is served here)"
        ));
    };
    let own = qualified
        .strip_prefix(ingress_ns)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|name| state.get(&ObjKey::new(MIDDLEWARES, ingress_ns, name)));
    own.or_else(|| {
        state
            .list(MIDDLEWARES, None)
            .find(|(key, _)| format!("{}-{}", key.ns, key.name) == qualified)
            .map(|(_, object)| object.clone())
    })
    .ok_or_else(|| format!("middleware {entry:?} does not exist (no Middleware <namespace>/<name> makes {qualified:?})"))
}

fn parse(entry: &str, spec: &Value) -> Result<Middleware, String> {
    if let Some(prefixes) = spec["stripPrefix"]["prefixes"].as_array() {
        let prefixes = prefixes
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string);
        return Ok(Middleware::StripPrefix(prefixes.collect()));
    }
    let redirect = &spec["redirectRegex"];
    if let Some(pattern) = redirect["regex"].as_str() {
        let regex = Regex::new(pattern)
            .map_err(|e| format!("middleware {entry:?} has an invalid redirectRegex.regex: {e}"))?;
        return Ok(Middleware::RedirectRegex {
            regex,
            replacement: redirect["replacement"].as_str().unwrap_or("").to_string(),
            permanent: redirect["permanent"].as_bool() == Some(true),
        });
    }
    tracing::debug!("middleware {entry:?} is of a kind the sandbox's ingress does not apply");
    Ok(Middleware::Other)
}

/// Takes the first of `prefixes` that begins `path` off it (a string prefix, as Traefik does),
/// returning the new path and the prefix taken.
pub(super) fn strip_prefix(prefixes: &[String], path: &str) -> Option<(String, String)> {
    prefixes
        .iter()
        .find(|p| path.starts_with(p.as_str()))
        .map(|prefix| {
            let rest = &path[prefix.len()..];
            let stripped = if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{rest}")
            };
            (stripped, prefix.trim().to_string())
        })
}

/// Where a `redirectRegex` sends the request whose full URL is `url`, with which status; `None`
/// when the regex does not match or the URL stays the same (Traefik then passes it on).
pub(super) fn redirect(
    regex: &Regex,
    replacement: &str,
    permanent: bool,
    method: &Method,
    url: &str,
) -> Option<(StatusCode, String)> {
    if !regex.is_match(url) {
        return None;
    }
    let target = regex.replace_all(url, replacement).into_owned();
    (target != url).then(|| (redirect_status(permanent, method), target))
}

/// Traefik's choice: 302/307 or, permanent, 301/308; the method-keeping codes for all but GET.
fn redirect_status(permanent: bool, method: &Method) -> StatusCode {
    match (permanent, method == Method::GET) {
        (true, true) => StatusCode::MOVED_PERMANENTLY,
        (true, false) => StatusCode::PERMANENT_REDIRECT,
        (false, true) => StatusCode::FOUND,
        (false, false) => StatusCode::TEMPORARY_REDIRECT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_keeps_a_leading_slash() {
        let prefixes = vec!["/domains-api".to_string()];
        let strip = |p: &str| strip_prefix(&prefixes, p).map(|(path, _)| path);
        assert_eq!(strip("/domains-api/v1/x").as_deref(), Some("/v1/x"));
        assert_eq!(strip("/domains-api").as_deref(), Some("/"));
        assert_eq!(strip("/other"), None);
    }

    #[test]
    fn redirects_as_traefik_does() {
        let regex = Regex::new("^https?://[^/]+(.*)").expect("regex");
        let to = |permanent, method: Method| {
            redirect(
                &regex,
                "https://new.example.com${1}",
                permanent,
                &method,
                "http://old.example.com/a?b=1",
            )
        };
        let target = "https://new.example.com/a?b=1".to_string();
        assert_eq!(
            to(true, Method::GET),
            Some((StatusCode::MOVED_PERMANENTLY, target.clone()))
        );
        assert_eq!(
            to(true, Method::POST),
            Some((StatusCode::PERMANENT_REDIRECT, target.clone()))
        );
        assert_eq!(
            to(false, Method::GET),
            Some((StatusCode::FOUND, target.clone()))
        );
        assert_eq!(
            to(false, Method::PUT),
            Some((StatusCode::TEMPORARY_REDIRECT, target))
        );
        let same = redirect(
            &regex,
            "http://old.example.com${1}",
            true,
            &Method::GET,
            "http://old.example.com/a",
        );
        assert_eq!(same, None);
    }
}
