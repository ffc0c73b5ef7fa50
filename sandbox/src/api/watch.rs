//! Watch streams: newline-delimited JSON events, resumable from a resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::objects::{Filter, include_object, present};
use super::{Api, Req, channel_body, streaming};
use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::store::{Event, EventType, Store};
use crate::table::{IncludeObject, to_table};

/// How often an idle watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);
/// How long before its end a watch that asked for bookmarks gets its last one.
const BOOKMARK_BEFORE_END: Duration = Duration::from_secs(2);
/// How long a watch lasts when the client sets no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Watch {
    res: Arc<Resource>,
    ns: Option<String>,
    filter: Filter,
    bookmarks: bool,
    /// The newest resourceVersion the client has seen.
    last: u64,
    store: Store,
    /// `kubectl get -w` asks for each object as a one-row Table.
    table: Option<IncludeObject>,
    out: mpsc::Sender<Bytes>,
}

pub fn serve(api: &Api, res: Arc<Resource>, ns: Option<String>, req: &Req) -> ApiResult<Response> {
    let filter = Filter::from_req(req, &res)?;
    let timeout = match req.param("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let from = match req.param("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let send_initial = req.param("sendInitialEvents") == Some("true") || from.is_none();
    // Subscribe before reading the state so no event falls between the two.
    let events = api.store.subscribe();
    let (out, body) = mpsc::channel::<Bytes>(256);
    let mut watch = Watch {
        res,
        ns,
        filter,
        bookmarks: req.flag("allowWatchBookmarks"),
        last: 0,
        store: api.store.clone(),
        table: req.wants_table().then(|| include_object(req)),
        out,
    };
    let mut first = Vec::new();
    {
        let state = api.store.read();
        match from {
            Some(rv) if !send_initial => match state.history_since(rv) {
                Some(history) => {
                    watch.last = rv;
                    first.extend(history);
                }
                None => {
                    let gone = ApiError::gone(format!(
                        "too old resource version: {rv} (the sandbox keeps the last {} events)",
                        crate::store::HISTORY_LEN
                    ));
                    let frame = frame("ERROR", &gone.to_status());
                    return Ok(streaming("application/json", Body::from(frame)));
                }
            },
            _ => {
                watch.last = state.resource_version();
                for (key, obj) in state.list(&watch.res.key(), watch.ns.as_deref()) {
                    if watch.filter.matches(obj) {
                        first.push(Arc::new(Event {
                            rv: 0,
                            kind: crate::store::EventType::Added,
                            key: key.clone(),
                            object: obj.clone(),
                            previous: None,
                        }));
                    }
                }
            }
        }
    }
    let initial_end = req.param("sendInitialEvents") == Some("true") && watch.bookmarks;
    let deadline = tokio::time::Instant::now() + timeout;
    tokio::spawn(async move {
        let run = watch.run(first, initial_end, events, deadline);
        let _ = tokio::time::timeout_at(deadline, run).await;
    });
    Ok(streaming("application/json", channel_body(body)))
}

fn frame(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

impl Watch {
    async fn run(
        &mut self,
        first: Vec<Arc<Event>>,
        initial_end: bool,
        mut events: broadcast::Receiver<Arc<Event>>,
        deadline: tokio::time::Instant,
    ) -> Option<()> {
        for event in first {
            self.send(&event).await?;
        }
        if initial_end {
            self.bookmark(true).await?;
        }
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        // As the real watch cache: one more bookmark just before the watch times out, so a
        // client resumes from the newest version rather than one a quiet stream left behind.
        let before_end = tokio::time::sleep_until(
            deadline
                .checked_sub(BOOKMARK_BEFORE_END)
                .unwrap_or_else(tokio::time::Instant::now),
        );
        tokio::pin!(before_end);
        let mut ending = self.bookmarks;
        loop {
            tokio::select! {
                received = events.recv() => match received {
                    Ok(event) => self.send(&event).await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await?,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = ticker.tick() => {
                    if self.bookmarks {
                        self.bookmark(false).await?;
                    }
                }
                () = &mut before_end, if ending => {
                    ending = false;
                    self.bookmark(false).await?;
                }
                _ = self.out.closed() => return None,
            }
        }
    }

    async fn send(&mut self, event: &Event) -> Option<()> {
        // Replayed or initial events carry rv 0; live ones must be newer than what was sent.
        if event.rv != 0 && event.rv <= self.last {
            return Some(());
        }
        if event.rv != 0 {
            self.last = event.rv;
        }
        if event.key.res != self.res.key()
            || self.ns.as_deref().is_some_and(|ns| ns != event.key.ns)
        {
            return Some(());
        }
        let Some(kind) = self.seen_as(event) else {
            return Some(());
        };
        let object = present(&self.res, &event.object);
        let line = match &self.table {
            Some(include) => frame(
                kind,
                &to_table(
                    &self.res.group,
                    &self.res.kind,
                    &self.res.printer_columns,
                    &[object.as_ref()],
                    *include,
                    json!({"resourceVersion": object["metadata"]["resourceVersion"]}),
                    jiff::Timestamp::now(),
                ),
            ),
            None => frame(kind, &object),
        };
        self.out.send(line).await.ok()
    }

    /// How the event looks through the filter: an object that starts matching is ADDED for
    /// this watch, one that stops matching is DELETED, as on a real server.
    fn seen_as(&self, event: &Event) -> Option<&'static str> {
        let now = self.filter.matches(&event.object);
        if event.kind != EventType::Modified {
            return now.then_some(event.kind.as_str());
        }
        let before = event
            .previous
            .as_ref()
            .map_or(now, |p| self.filter.matches(p));
        match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        }
    }

    async fn bookmark(&mut self, initial_end: bool) -> Option<()> {
        let mut metadata = json!({"resourceVersion": self.last.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({
            "kind": self.res.kind,
            "apiVersion": self.res.api_version(),
            "metadata": metadata,
        });
        self.out.send(frame("BOOKMARK", &object)).await.ok()
    }

    /// The live channel overflowed: replay from the history, or end with 410 when even the
    /// history no longer reaches back far enough.
    async fn catch_up(&mut self) -> Option<()> {
        let missed = self.store.read().history_since(self.last);
        match missed {
            Some(events) => {
                for event in events {
                    self.send(&event).await?;
                }
                Some(())
            }
            None => self.gone().await,
        }
    }

    /// The client fell too far behind the live events; it must list again.
    async fn gone(&mut self) -> Option<()> {
        let gone = ApiError::gone(
            "the watch fell behind: list again and resume from the new resourceVersion",
        );
        let _ = self.out.send(frame("ERROR", &gone.to_status())).await;
        None
    }
}
