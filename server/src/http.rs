//! The server's HTTP endpoint: health checks now; git push webhooks next.

use axum::Router;
use axum::routing::get;

/// Serves until `stop` is raised.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let app = Router::new().route("/healthz", get(|| async { "ok\n" }));
    let stopped = async move { crate::leader::stopped(&mut stop).await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
        eprintln!("kip server: the HTTP endpoint stopped: {e}");
    }
}
