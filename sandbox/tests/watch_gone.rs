//! A watch from a resourceVersion older than the kept history ends with 410 Expired, as on a
//! real server, so clients know to list again.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use sandbox::Sandbox;
use sandbox::api::{Api, router};
use sandbox::store::{HISTORY_LEN, ObjKey};
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test]
async fn too_old_resource_version_is_gone() {
    let sandbox = Sandbox::in_memory().await.expect("sandbox");
    sandbox
        .store
        .write(|tx| {
            for i in 0..HISTORY_LEN + 10 {
                let name = format!("cm-{i}");
                let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}});
                tx.put(ObjKey::new("/configmaps", "default", name), obj);
            }
            Ok(())
        })
        .await
        .expect("fill the history past its length");
    let app = router(Api::new(sandbox.store.clone()));
    let request =
        Request::get("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=2")
            .body(Body::empty())
            .expect("request");
    let response = app.oneshot(request).await.expect("answer");
    assert_eq!(
        response.status(),
        200,
        "watch errors arrive as events in the stream"
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let first: Value =
        serde_json::from_slice(body.split(|b| *b == b'\n').next().unwrap_or_default())
            .expect("one JSON event");
    assert_eq!(first["type"], "ERROR");
    assert_eq!(first["object"]["code"], 410);
    assert_eq!(first["object"]["reason"], "Expired");
}
