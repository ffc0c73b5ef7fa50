//! The web console: server-rendered pages (minijinja templates in `templates/console/`) over
//! the same verbs the command line runs. A page reads by running read verbs with `-o json`;
//! a form runs one verb (`actions.rs`), so an override of a verb changes the console too.
//! Served by `kip server` under `/` and by `kip console` on a workstation.

pub mod actions;
mod assets;
pub mod auth;
mod logs;
mod pages;
pub mod render;
pub mod runner;
pub mod wizard;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use auth::Sessions;
pub use runner::Runner;

/// How to reach the cluster as the user a bearer token authenticates.
pub type AsUser = Arc<dyn Fn(&str) -> Result<builtins::ClusterClient, String> + Send + Sync>;

/// A console: how it runs verbs, who may use it, and which cluster it shows.
pub struct Console {
    /// Runs verbs with the console's own credentials (a console-token session's; a cluster
    /// user's session gets one of its own, `pages::Signed::runner`).
    pub runner: Runner,
    pub sessions: Sessions,
    /// Set when the cluster's tokens may sign in too.
    as_user: Option<AsUser>,
}

impl Console {
    /// A console on `runner`'s cluster that `token` opens.
    pub fn new(runner: Runner, token: String) -> Console {
        Console {
            runner,
            sessions: Sessions::new(token),
            as_user: None,
        }
    }

    /// Lets a token the cluster accepts sign in too, as its user: `as_user` reaches the
    /// cluster with it.
    pub fn with_cluster_sign_in(mut self, as_user: AsUser) -> Console {
        self.as_user = Some(as_user);
        self
    }

    /// How `session` runs verbs: as its cluster user, or with the console's credentials.
    pub fn runner_for(&self, session: &auth::Session) -> Runner {
        match &session.user {
            Some(user) => Runner {
                cluster: user.cluster.clone(),
                ..self.runner.clone()
            },
            None => self.runner.clone(),
        }
    }

    /// The user the cluster says `token` is, with the cluster as them: `Ok(None)` when the
    /// cluster does not accept it (or cluster sign-in is off), `Err` when it cannot be asked.
    pub async fn cluster_user(&self, token: &str) -> Result<Option<auth::ClusterUser>, String> {
        let token = token.trim();
        let plausible = !token.is_empty()
            && token.len() <= 16 * 1024
            && token.bytes().all(|b| b.is_ascii_graphic());
        let Some(as_user) = self.as_user.as_ref().filter(|_| plausible) else {
            return Ok(None);
        };
        let client = as_user(token)?;
        let Some(name) = who(&client).await? else {
            return Ok(None);
        };
        let fixed = client.clone();
        Ok(Some(auth::ClusterUser {
            name,
            cluster: builtins::ClusterChoice {
                client: Arc::new(move || Ok(fixed.clone())),
                ..self.runner.cluster.clone()
            },
        }))
    }
}

/// Whether the cluster still takes `user`'s token (expired and revoked tokens end their
/// sessions); a cluster that cannot be asked is given the benefit of the doubt.
pub async fn still_accepted(user: &auth::ClusterUser) -> bool {
    let Ok(client) = (user.cluster.client)() else {
        return true;
    };
    !matches!(who(&client).await, Ok(None))
}

/// Whom `client`'s credentials are, as the cluster says (a SelfSubjectReview): `Ok(None)`
/// when it does not accept them.
async fn who(client: &builtins::ClusterClient) -> Result<Option<String>, String> {
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
    });
    let request = axum::http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(review.to_string().into_bytes())
        .map_err(|e| e.to_string())?;
    match client.client.request::<serde_json::Value>(request).await {
        Ok(answer) => Ok(answer["status"]["userInfo"]["username"]
            .as_str()
            .map(str::to_string)),
        Err(kube::Error::Api(status)) if status.code == 401 => Ok(None),
        Err(e) => Err(format!(
            "cannot ask {} who the token is: {e}",
            client.server
        )),
    }
}

/// The console's routes, to merge into a server's router.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/assets/{name}", get(assets::serve))
        .route("/projects", get(pages::projects))
        .route("/switcher", get(pages::switcher))
        .route("/switch", get(pages::switch))
        .route("/projects/{project}", get(pages::project))
        .route(
            "/projects/{project}/copy",
            get(pages::copy_wizard_start).post(pages::copy_wizard),
        )
        .route("/projects/{project}/add-env", post(pages::add_environment))
        .route("/projects/{project}/{env}", get(pages::environment))
        .route("/projects/{project}/{env}/apps/{app}", get(pages::app))
        .route(
            "/projects/{project}/{env}/apps/{app}/logs/ws",
            get(logs::stream),
        )
        .route(
            "/projects/{project}/{env}/services/{service}",
            get(pages::service),
        )
        .route("/projects/{project}/{env}/routes", get(pages::routes))
        .route("/actions/{action}", post(pages::act))
        .with_state(console)
}

/// Serves `console` alone (with `/healthz`) on `listener` until `shutdown` resolves: what
/// `kip console` runs on a workstation.
pub async fn serve(
    listener: tokio::net::TcpListener,
    console: Console,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(router(Arc::new(console)));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("the console stopped: {e}"))
}

/// The console token of a cluster: the Secret `kipper-system/kip-console` (key `token`), made
/// with a random token the first time a server needs it, so every replica shares it and an
/// admin reads it with kubectl.
pub async fn cluster_token(client: &kube::Client) -> Result<String, String> {
    use k8s_openapi::api::core::v1::Secret;
    use kube::Api;
    use kube::api::PostParams;
    let api: Api<Secret> = Api::namespaced(client.clone(), crate::hooks::NAMESPACE);
    let read = |secret: &Secret| -> Option<String> {
        let bytes = secret.data.as_ref()?.get(TOKEN_KEY)?;
        String::from_utf8(bytes.0.clone())
            .ok()
            .filter(|t| !t.is_empty())
    };
    let existing = api.get_opt(TOKEN_SECRET).await.map_err(|e| {
        format!(
            "cannot read Secret {}/{TOKEN_SECRET}: {e}",
            crate::hooks::NAMESPACE
        )
    })?;
    if let Some(token) = existing.as_ref().and_then(read) {
        return Ok(token);
    }
    // A fresh cluster (the sandbox) may not have the namespace yet.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = k8s_openapi::api::core::v1::Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(crate::hooks::NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => {
            return Err(format!(
                "cannot make namespace {}: {e}",
                crate::hooks::NAMESPACE
            ));
        }
    }
    let token = auth::random_hex(32);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(TOKEN_SECRET.into()),
            namespace: Some(crate::hooks::NAMESPACE.into()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "kipper".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        string_data: Some([(TOKEN_KEY.to_string(), token.clone())].into()),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(token),
        // Another replica made it first: use theirs.
        Err(kube::Error::Api(status)) if status.code == 409 => api
            .get(TOKEN_SECRET)
            .await
            .ok()
            .as_ref()
            .and_then(read)
            .ok_or_else(|| "the console token Secret has no token".into()),
        Err(e) => Err(format!(
            "cannot make Secret {}/{TOKEN_SECRET}: {e}",
            crate::hooks::NAMESPACE
        )),
    }
}

/// The Secret holding a cluster's console token, and its key.
pub const TOKEN_SECRET: &str = "kip-console";
pub const TOKEN_KEY: &str = "token";
