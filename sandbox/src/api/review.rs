//! The review kinds (`authorization.k8s.io` and `authentication.k8s.io`): a create is a
//! question about the asking user, answered and never stored. `kubectl auth can-i` gets what
//! RBAC grants them (the admin: everything, as a k3s admin kubeconfig does) and `kubectl auth
//! whoami` their name and groups.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Req;
use crate::auth::{Attributes, rbac};
use crate::error::{ApiError, ApiResult};
use crate::http::json_response;
use crate::registry::Resource;
use crate::store::State;

pub fn answer(state: &State, req: &Req, res: &Resource, mut review: Value) -> ApiResult<Response> {
    let user = &req.user;
    let status = match res.kind.as_str() {
        "SelfSubjectAccessReview" => {
            let spec = &review["spec"];
            if !spec["resourceAttributes"].is_object() && !spec["nonResourceAttributes"].is_object()
            {
                return Err(ApiError::invalid(
                    &res.kind,
                    &res.group,
                    "",
                    &[(
                        "spec.resourceAttributes".into(),
                        "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified".into(),
                    )],
                ));
            }
            let a = &spec["resourceAttributes"];
            if a.is_object() {
                let text = |k: &str| a[k].as_str().unwrap_or_default().to_string();
                let resource = match text("subresource") {
                    sub if sub.is_empty() => text("resource"),
                    sub => format!("{}/{sub}", text("resource")),
                };
                let asked = Attributes {
                    verb: text("verb"),
                    group: text("group"),
                    resource,
                    namespace: text("namespace"),
                    name: text("name"),
                };
                json!({"allowed": rbac::allows(state, user, &asked)})
            } else {
                // Discovery and the like are open to every authenticated user.
                json!({"allowed": user.is_admin() || spec["nonResourceAttributes"]["verb"] == "get"})
            }
        }
        "SelfSubjectRulesReview" if user.is_admin() => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        "SelfSubjectRulesReview" => {
            let namespace = review["spec"]["namespace"].as_str().unwrap_or_default();
            json!({
                "resourceRules": rbac::rules_of(state, user, namespace),
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/openapi", "/openapi/*", "/version", "/version/"]}],
                "incomplete": false,
            })
        }
        "SelfSubjectReview" => {
            let mut info = json!({"username": user.name, "groups": user.groups});
            if !user.uid.is_empty() {
                info["uid"] = json!(user.uid);
            }
            json!({"userInfo": info})
        }
        other => return Err(ApiError::internal(format!("no answer for a {other}"))),
    };
    review["status"] = status;
    review["metadata"]["creationTimestamp"] = Value::Null;
    let code = if req.dry_run()? {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_response(code, &review))
}
