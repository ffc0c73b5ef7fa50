//! `k8s::…`: the Kubernetes API for scripts.
//!
//! Objects cross the boundary as maps (`#{apiVersion: "v1", kind: "ConfigMap", metadata: #{…}}`),
//! never typed structs, and any kind the cluster serves is addressable, custom resources
//! included: `apiVersion` + `kind` are resolved through API discovery, cached per host, and asked
//! again on a miss so a CRD applied a moment ago is found. Writes are server-side applies with the
//! field manager `kip`.
//!
//! Errors are maps: `#{kind, message, code, reason}` for a `Status` the API server returned,
//! its `kind` from the HTTP status (`not-found` 404, `conflict` 409, `invalid` 400/422, `denied`
//! 401/403, `timeout` 504, `refused` otherwise; `reason` is `NotFound`, `AlreadyExists`,
//! `Conflict`…, or `NoKindMatch` when the cluster does not serve the kind),
//! `#{kind: "unreachable", message}` when no connection could be made,
//! `#{kind: "timeout", message, status}` when a wait ran out, `#{kind: "invalid", message}` for a
//! malformed argument.

pub mod exec;
pub mod kinds;
pub mod rollout;
pub mod select;

mod cluster;
mod convert;
mod diff;
mod discovery;
mod error;
mod logs;
mod quantity;
mod read;
mod wait;
mod write;

pub(crate) use cluster::Cluster;
pub use cluster::State;
pub(crate) use error::kube_error;

use rhai::EvalAltResult;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// The `k8s` namespace: the builtins of every file of this module in one.
pub fn module() -> rhai::Module {
    let mut k8s = rhai::exported_module!(write::write_module);
    k8s.combine(rhai::exported_module!(read::read_module));
    k8s.combine(rhai::exported_module!(wait::wait_module));
    k8s.combine(rhai::exported_module!(logs::logs_module));
    k8s.combine(rhai::exported_module!(discovery::discovery_module));
    k8s.combine(rhai::exported_module!(cluster::cluster_module));
    // The namespace's doc comment, set once the modules without one are in: `combine` adds a
    // line break to a non-empty doc for every module it merges.
    k8s.set_doc("/// The Kubernetes primitives, registered as the `k8s` namespace.");
    k8s.combine(rhai::exported_module!(exec::exec_module));
    k8s.combine(rhai::exported_module!(select::select_module));
    k8s.combine(rhai::exported_module!(diff::diff_module));
    k8s.combine(rhai::exported_module!(quantity::quantity_module));
    k8s
}
