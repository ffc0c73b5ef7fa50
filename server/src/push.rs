//! A verified git push, as every provider's endpoint reduces it, and the one place it is handed
//! on. Hook scripts (`on_push(event)`) will be called from `dispatch`; until then it records.

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

/// Hands a verified push on. Kept small on purpose: the hook-script runner plugs in here.
/// Until then the push is said on the server's output, one line, like the controllers' news.
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
}
