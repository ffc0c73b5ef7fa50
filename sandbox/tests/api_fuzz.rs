//! Property test over request paths, methods, content types and bodies: every answer is a
//! proper `Status` with a client-error code, failed writes store nothing, and the server keeps
//! serving.

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use proptest::prelude::*;
use sandbox::Sandbox;
use sandbox::api::{Api, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const PATHS: &[&str] = &[
    "/api/v1/namespaces/default/configmaps",
    "/api/v1/namespaces/default/configmaps/x",
    "/api/v1/namespaces/default/pods/x/log",
    "/api/v1/namespaces/default/pods/x/status",
    "/api/v1/namespaces",
    "/api/v1/namespaces/default",
    "/api/v1/namespaces/default/finalize",
    "/apis/apps/v1/namespaces/default/deployments",
    "/apis/apps/v1/namespaces/default/deployments/web",
    "/apis/apps/v1/namespaces/default/deployments/web/scale",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "/apis/nope/v1/things",
    "/api/v1/namespaces/missing/secrets",
    "/openapi/v3/apis/apps/v1",
    "/api/v1/nodes",
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9$/_.-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_string()),
                    Just("name".to_string()),
                    Just("spec".to_string()),
                    Just("$patch".to_string()),
                    Just("op".to_string()),
                    Just("path".to_string()),
                    "[a-z]{1,6}".prop_map(String::from)
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies: valid-looking objects with a random twist, random JSON, or raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        (json_value(), "[a-zA-Z0-9_.-]{0,70}").prop_map(|(spec, name)| {
            serde_json::to_vec(&json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name}, "data": spec,
            }))
            .unwrap_or_default()
        }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::PATCH),
        Just(Method::DELETE),
        Just(Method::OPTIONS),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(PATHS).prop_map(String::from),
        1 => prop::collection::vec("[a-zA-Z0-9._%-]{0,8}", 0..7).prop_map(|parts| format!("/{}", parts.join("/"))),
    ]
}

async fn send(api: &Api, method: Method, path: &str, ct: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(Body::from(body));
    let Ok(request) = request else {
        return (0, Vec::new());
    };
    let response = router(api.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let code = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    (code, bytes)
}

/// Waits for the controllers to set up the namespaces a sandbox starts with (a ServiceAccount
/// and a ConfigMap in each), so that what a request stores is all that changes afterwards.
async fn settled(sandbox: &Sandbox) {
    let namespaces = ["default", "kube-system", "kube-public", "kube-node-lease"];
    let set_up = || {
        let state = sandbox.store.read();
        let ready = |res: &str, name: &str| {
            namespaces.iter().all(|ns| {
                state
                    .get(&sandbox::store::ObjKey::new(res, *ns, name))
                    .is_some()
            })
        };
        ready("/serviceaccounts", "default") && ready("/configmaps", "kube-root-ca.crt")
    };
    for _ in 0..500 {
        if set_up() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the namespaces were not set up");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_request_gets_a_proper_answer(method in method(), path in path(), ct in prop::sample::select(CONTENT_TYPES), body in body()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let sandbox = Sandbox::in_memory().await.expect("sandbox");
            let api = Api::new(sandbox.store.clone());
            settled(&sandbox).await;
            let before = sandbox.store.read().len();
            let (code, bytes) = send(&api, method.clone(), &path, ct, body).await;
            if code == 0 {
                return Ok(());
            }
            prop_assert!(code < 500, "{method} {path} ({ct}) answered {code}: {}", String::from_utf8_lossy(&bytes));
            if code >= 400 {
                let status: Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(format!("error body is not JSON: {e}")))?;
                prop_assert_eq!(&status["kind"], "Status");
                prop_assert_eq!(status["code"].as_u64(), Some(code as u64));
                prop_assert_eq!(sandbox.store.read().len(), before, "a failed request stored something");
            }
            let (alive, _) = send(&api, Method::GET, "/api/v1/namespaces/default", "application/json", Vec::new()).await;
            prop_assert_eq!(alive, 200);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn oversized_body_is_413() {
    let sandbox = Sandbox::in_memory().await.expect("sandbox");
    let api = Api::new(sandbox.store.clone());
    let big = vec![b' '; 3 * 1024 * 1024 + 1];
    let (code, bytes) = send(
        &api,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        big,
    )
    .await;
    assert_eq!(code, 413);
    let status: Value = serde_json::from_slice(&bytes).expect("Status");
    assert_eq!(status["reason"], "RequestEntityTooLarge");
}

#[tokio::test]
async fn wrong_content_type_is_415_and_malformed_json_400() {
    let sandbox = Sandbox::in_memory().await.expect("sandbox");
    let api = Api::new(sandbox.store.clone());
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, _) = send(&api, Method::POST, path, "text/plain", b"{}".to_vec()).await;
    assert_eq!(code, 415);
    let (code, bytes) = send(
        &api,
        Method::POST,
        path,
        "application/json",
        b"{\"metadata\":".to_vec(),
    )
    .await;
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&bytes));
    let (code, _) = send(&api, Method::GET, "/apis/nope/v1/things", "", Vec::new()).await;
    assert_eq!(code, 404);
}
