//! The server's HTTP endpoint: health checks and git push webhooks (`/hooks/*`).

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::webhooks;

/// Serves until `stop` is raised.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hooks: Arc<webhooks::State>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(webhooks::router(hooks));
    let stopped = async move { crate::leader::stopped(&mut stop).await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
        eprintln!("kip server: the HTTP endpoint stopped: {e}");
    }
}
