//! A verified git push, as every provider's endpoint reduces it, and the one place it is handed
//! on: said on the server's output, then the hooks (`on_push(event)`) of each project whose
//! apps it reached run, in the background, so the provider gets its answer at once.

use serde::Serialize;

use crate::webhooks::State;

/// A push that verified against the webhook secret of at least one App.
#[derive(Debug, Clone, Serialize)]
pub struct PushEvent {
    /// `github`, `gitlab` or `generic`.
    pub provider: &'static str,
    /// The provider's delivery id (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID`), or the generic
    /// body's `delivery`, or one kip made up when the sender gave none.
    pub delivery: String,
    /// The repository as the payload names it (its clone URL).
    pub repo_url: String,
    /// The branch pushed to; empty for a tag push.
    pub branch: String,
    /// The tag pushed, for a tag push.
    pub tag: Option<String>,
    /// The commit the ref points at after the push.
    pub commit: String,
    /// Who made the head commit (`Name <email>`), when the payload says.
    pub author: String,
    /// Files added, modified or removed by the pushed commits, each once, in payload order.
    pub changed_files: Vec<String>,
    /// The Apps (namespace, name) whose secret verified the delivery and whose branch matches
    /// (for a tag push: whose secret verified).
    pub apps: Vec<(String, String)>,
}

/// Hands a verified push on: one line on the server's output, like the controllers' news, then
/// the hooks of the projects of the apps it reached.
pub async fn dispatch(state: &State, event: &PushEvent) {
    state
        .dispatched
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let what = match &event.tag {
        Some(tag) => format!("tag {tag}"),
        None => format!("branch {}", event.branch),
    };
    let apps = event
        .apps
        .iter()
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "push {} {}: {} {what} at {} ({} files changed) for {apps}",
        event.provider,
        event.delivery,
        event.repo_url,
        event.commit,
        event.changed_files.len()
    );
    let Some(runner) = state.hooks.clone() else {
        return;
    };
    for (project, event) in hook_events(state, event) {
        let runner = runner.clone();
        let delivery = event["delivery"].as_str().unwrap_or_default().to_string();
        tokio::spawn(async move {
            runner.on_push(&project, &event, &delivery).await;
        });
    }
}

/// The event each project's hooks get: the push, the project, and its apps the push reached
/// (`name`, `namespace`, `environment`, `image`), by project.
fn hook_events(state: &State, event: &PushEvent) -> Vec<(String, serde_json::Value)> {
    let mut by_project: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        std::collections::BTreeMap::new();
    for (namespace, name) in &event.apps {
        let Some(app) = state.app(namespace, name) else {
            continue;
        };
        let spec = &app.data["spec"];
        let project = spec["project"].as_str().unwrap_or("default").to_string();
        by_project
            .entry(project)
            .or_default()
            .push(serde_json::json!({
                "name": name,
                "namespace": namespace,
                "environment": spec["environment"].as_str().unwrap_or(""),
                "image": spec["image"].as_str().unwrap_or(""),
            }));
    }
    by_project
        .into_iter()
        .map(|(project, apps)| {
            let value = serde_json::json!({
                "provider": event.provider,
                "delivery": event.delivery,
                "repo": event.repo_url,
                "branch": event.branch,
                "tag": event.tag,
                "commit": event.commit,
                "author": event.author,
                "changed_files": event.changed_files,
                "project": project,
                "apps": apps,
            });
            (project, value)
        })
        .collect()
}
