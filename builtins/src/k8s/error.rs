//! Kubernetes failures as script errors: a `Status` the API server returned keeps its code and
//! reason; a connection that could not be made is `unreachable`.

use rhai::{Dynamic, EvalAltResult, Map};

use crate::errors::Kind;
use crate::host;

/// A kube error as a script error: the `Status` of an API failure, `unreachable` when no
/// connection could be made.
pub(crate) fn kube_error(e: kube::Error) -> Box<EvalAltResult> {
    let mut map = Map::new();
    match e {
        kube::Error::Api(status) => {
            let kind = crate::errors::of_http_status(status.code);
            map.insert("kind".into(), kind.name().into());
            map.insert("message".into(), status.message.into());
            map.insert("code".into(), Dynamic::from_int(status.code.into()));
            map.insert("reason".into(), status.reason.into());
        }
        e @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => {
            map.insert("kind".into(), Kind::Unreachable.name().into());
            map.insert("message".into(), unreachable_message(&e).into());
            map.insert("cause".into(), root_cause(&e).into());
        }
        e => {
            map.insert("kind".into(), Kind::Refused.name().into());
            map.insert("message".into(), e.to_string().into());
            map.insert("code".into(), Dynamic::from_int(0));
            map.insert("reason".into(), "".into());
        }
    }
    host::error_map(map)
}

pub(super) fn watch_error(e: kube::runtime::wait::Error) -> Box<EvalAltResult> {
    use kube::runtime::watcher::Error as W;
    let kube::runtime::wait::Error::ProbeFailed(e) = e;
    match e {
        W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => kube_error(e),
        W::WatchError(status) => kube_error(kube::Error::Api(status)),
        other => host::error(Kind::Refused, other.to_string()),
    }
}

/// `cluster unreachable: <cause>`; [`Cluster::run`] adds the server and what to try.
fn unreachable_message(e: &kube::Error) -> String {
    format!("cluster unreachable: {}", root_cause(e))
}

/// The innermost cause of `e`, starting lowercase and without the OS error number.
fn root_cause(e: &kube::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let cause = cause.to_string();
    let cause = cause.split(" (os error").next().unwrap_or_default();
    let mut letters = cause.chars();
    letters
        .next()
        .map(|c| c.to_lowercase().chain(letters).collect())
        .unwrap_or_default()
}
