//! The server's HTTP endpoint: health checks, git push webhooks (`/hooks/*`) and, when it
//! has one, the web console under `/`.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::webhooks;

/// Serves until `stop` is raised.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hooks: Arc<webhooks::State>,
    console: Option<Arc<crate::console::Console>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(webhooks::router(hooks));
    if let Some(console) = console {
        app = app.merge(crate::console::router(console));
    }
    let stopped = async move { crate::leader::stopped(&mut stop).await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
        eprintln!("kip server: the HTTP endpoint stopped: {e}");
    }
}
