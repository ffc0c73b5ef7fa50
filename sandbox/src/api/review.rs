//! The review kinds (`authorization.k8s.io` and `authentication.k8s.io`): a create is a
//! question, answered and never stored. The sandbox has one user, its admin, whom nothing is
//! refused: `kubectl auth can-i` says yes and `kubectl auth whoami` names the admin, as a k3s
//! admin kubeconfig does.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Req;
use crate::error::{ApiError, ApiResult};
use crate::http::json_response;
use crate::registry::Resource;

/// Who the sandbox's clients are.
pub const USER: &str = "system:admin";
pub const GROUPS: &[&str] = &["system:masters", "system:authenticated"];

pub fn answer(req: &Req, res: &Resource, mut review: Value) -> ApiResult<Response> {
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
            json!({"allowed": true})
        }
        "SelfSubjectRulesReview" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        "SelfSubjectReview" => json!({"userInfo": {"username": USER, "groups": GROUPS}}),
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
