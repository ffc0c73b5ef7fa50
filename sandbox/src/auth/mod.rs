//! Who a request comes from, and whether they may do what it asks.
//!
//! The sandbox's own credentials (no `Authorization` header, or the bearer token its kubeconfig
//! holds) are its admin, in `system:masters`, whom nothing is refused, as a k3s admin
//! kubeconfig is. A ServiceAccount token (`kubectl create token`, the TokenRequest
//! subresource) is that ServiceAccount, and what it may do is what the cluster's RBAC objects
//! grant it ([`rbac`]). Any other credential is refused with 401, as a real API server does.

pub mod rbac;
pub mod roles;
pub mod tokens;

use axum::http::{HeaderMap, Method, header};

use crate::api::route::ResourcePath;
use crate::error::ApiError;
use crate::store::State;

/// The bearer token of the kubeconfig the sandbox writes (`home::kubeconfig`).
pub const ADMIN_TOKEN: &str = "kip-sandbox";

/// An authenticated client.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl User {
    /// The sandbox's admin.
    pub fn admin() -> User {
        User {
            name: "system:admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// The ServiceAccount `name` in `namespace`, as its tokens authenticate it.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> User {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            uid: uid.into(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// Whether RBAC is skipped for this user, as the API server skips it for `system:masters`.
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// The user a request acts as: the one its credentials authenticate (401 when they do not),
/// or the one it impersonates (`Impersonate-User`, `-Group`, `-Uid`: `kubectl --as`) when
/// that user may impersonate them (403 otherwise).
pub fn authenticate(
    state: &State,
    key: &tokens::Key,
    headers: &HeaderMap,
) -> Result<User, ApiError> {
    let user = credentials(state, key, headers)?;
    impersonated(state, user, headers)
}

fn credentials(state: &State, key: &tokens::Key, headers: &HeaderMap) -> Result<User, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(User::admin());
    };
    let value = value.to_str().map_err(|_| unauthorized())?;
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return Err(unauthorized());
    };
    let token = token.trim();
    if token == ADMIN_TOKEN {
        return Ok(User::admin());
    }
    tokens::verify(state, key, token).ok_or_else(unauthorized)
}

fn impersonated(state: &State, user: User, headers: &HeaderMap) -> Result<User, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let names = values("impersonate-user");
    let groups = values("impersonate-group");
    let uids = values("impersonate-uid");
    let Some(name) = names.first() else {
        if groups.is_empty() && uids.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups or a uid without a user (Impersonate-User)",
        ));
    };
    // Each thing taken on must be allowed: the user (a ServiceAccount in its namespace),
    // every group, the uid.
    let mut asked = Vec::new();
    let account = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    asked.push(match account {
        Some((ns, sa)) => ("", "serviceaccounts", ns.to_string(), sa.to_string()),
        None => ("", "users", String::new(), name.clone()),
    });
    for group in &groups {
        asked.push(("", "groups", String::new(), group.clone()));
    }
    for uid in &uids {
        asked.push(("authentication.k8s.io", "uids", String::new(), uid.clone()));
    }
    for (group, resource, namespace, object) in asked {
        let a = Attributes {
            verb: "impersonate".into(),
            group: group.into(),
            resource: resource.into(),
            namespace,
            name: object,
        };
        authorize(state, &user, &a)?;
    }
    let mut taken = match account {
        Some((ns, sa)) => User::service_account(ns, sa, ""),
        None => User {
            name: name.clone(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
        },
    };
    if !groups.is_empty() {
        taken.groups = groups;
        taken.groups.push("system:authenticated".into());
    }
    taken.uid = uids.into_iter().next().unwrap_or_default();
    Ok(taken)
}

/// What a request asks to do, in RBAC's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    /// The plural, or `plural/subresource`.
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Attributes {
    /// What a request with `method` and `watch` (the query's or the path's) on `t` asks.
    pub fn of(method: &Method, t: &ResourcePath, watch: bool) -> Attributes {
        let sub = t.subresource.as_deref();
        let verb = match (method, t.name.is_some(), sub) {
            // Streams into a pod are created, whatever method opens them.
            (_, _, Some("exec" | "attach" | "portforward")) => "create",
            (&Method::GET, _, _) if watch => "watch",
            (&Method::GET, true, _) => "get",
            (&Method::GET, false, _) => "list",
            (&Method::POST, _, _) => "create",
            (&Method::PUT, _, _) => "update",
            (&Method::PATCH, _, _) => "patch",
            (&Method::DELETE, true, _) => "delete",
            (&Method::DELETE, false, _) => "deletecollection",
            _ => "unknown",
        };
        let resource = match sub {
            Some(sub) => format!("{}/{sub}", t.plural),
            None => t.plural.clone(),
        };
        // A namespace is its own namespace, as the API server's request info says.
        let namespace = match (&t.namespace, t.plural.as_str(), &t.name) {
            (Some(ns), _, _) => ns.clone(),
            (None, "namespaces", Some(name)) => name.clone(),
            _ => String::new(),
        };
        Attributes {
            verb: verb.into(),
            group: t.group.clone(),
            resource,
            namespace,
            name: t.name.clone().unwrap_or_default(),
        }
    }
}

/// Refuses `attributes` unless `user` may, with the message a real API server gives.
pub fn authorize(state: &State, user: &User, attributes: &Attributes) -> Result<(), ApiError> {
    if rbac::allows(state, user, attributes) {
        return Ok(());
    }
    Err(forbidden(user, attributes))
}

fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// `pods "web" is forbidden: User "…" cannot get resource "pods" in API group "" in the
/// namespace "shop"`, as the API server words it.
pub fn forbidden(user: &User, a: &Attributes) -> ApiError {
    let plural = a.resource.split('/').next().unwrap_or_default();
    let qualified = if a.group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{}", a.group)
    };
    let subject = if a.name.is_empty() {
        qualified.clone()
    } else {
        format!("{qualified} \"{}\"", a.name)
    };
    let mut message = format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{}\"",
        user.name, a.verb, a.resource
    );
    message.push_str(&format!(" in API group \"{}\"", a.group));
    if a.namespace.is_empty() {
        message.push_str(" at the cluster scope");
    } else {
        message.push_str(&format!(" in the namespace \"{}\"", a.namespace));
    }
    let mut err = ApiError::new(403, "Forbidden", message);
    let mut details = serde_json::json!({ "kind": plural });
    if !a.name.is_empty() {
        details["name"] = a.name.clone().into();
    }
    if !a.group.is_empty() {
        details["group"] = a.group.clone().into();
    }
    err.details = Some(details);
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(ns: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>) -> ResourcePath {
        ResourcePath {
            group: "apps".into(),
            version: "v1".into(),
            namespace: ns.map(String::from),
            plural: plural.into(),
            name: name.map(String::from),
            subresource: sub.map(String::from),
            watch: false,
        }
    }

    #[test]
    fn verbs_follow_method_and_shape() {
        let one = path(Some("shop"), "deployments", Some("web"), None);
        let all = path(Some("shop"), "deployments", None, None);
        let cases = [
            (Method::GET, &one, false, "get"),
            (Method::GET, &all, false, "list"),
            (Method::GET, &all, true, "watch"),
            (Method::POST, &all, false, "create"),
            (Method::PUT, &one, false, "update"),
            (Method::PATCH, &one, false, "patch"),
            (Method::DELETE, &one, false, "delete"),
            (Method::DELETE, &all, false, "deletecollection"),
        ];
        for (method, t, watch, verb) in cases {
            assert_eq!(
                Attributes::of(&method, t, watch).verb,
                verb,
                "{method} {t:?}"
            );
        }
        let exec = path(Some("shop"), "pods", Some("web"), Some("exec"));
        let a = Attributes::of(&Method::GET, &exec, false);
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str()),
            ("create", "pods/exec")
        );
        let ns = ResourcePath {
            group: String::new(),
            ..path(None, "namespaces", Some("shop"), None)
        };
        assert_eq!(Attributes::of(&Method::GET, &ns, false).namespace, "shop");
    }

    #[test]
    fn the_refusal_names_user_verb_resource_and_scope() {
        let user = User::service_account("shop", "dev", "u1");
        let a = Attributes {
            verb: "patch".into(),
            group: "apps".into(),
            resource: "deployments/scale".into(),
            namespace: "shop".into(),
            name: "web".into(),
        };
        let err = forbidden(&user, &a);
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:shop:dev\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"shop\""
        );
        let a = Attributes {
            verb: "list".into(),
            group: String::new(),
            resource: "namespaces".into(),
            namespace: String::new(),
            name: String::new(),
        };
        assert!(
            forbidden(&user, &a)
                .message
                .ends_with("in API group \"\" at the cluster scope")
        );
    }
}
