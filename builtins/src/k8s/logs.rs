//! Container logs, read whole or followed.

use futures_util::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use rhai::plugin::*;
use rhai::{EvalAltResult, Map};

use super::error::kube_error;
use super::{Cluster, RhaiResult};
use crate::errors::Kind;
use crate::host;

// Logs, merged into `k8s` by `super::module`, which holds the namespace's doc comment.
#[export_module]
pub mod logs_module {
    use super::*;

    /// The log of the only container of `pod` (or of the one its
    /// `kubectl.kubernetes.io/default-container` annotation names), as one string.
    ///
    /// Example: `print(k8s::logs(ns, pod));`
    #[rhai_fn(name = "logs", return_raw)]
    pub fn logs(ctx: rhai::NativeCallContext, ns: &str, pod: &str) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || logs_with(ctx, ns, pod, Map::new()))
    }

    /// The log of a container of `pod`. Options: `container` (name; without it, the pod's
    /// only container or the one its `kubectl.kubernetes.io/default-container` annotation names), `tail` (last N lines), `previous` (the previous, crashed instance), `follow`
    /// (print lines to stdout as they come until the container ends or the stream closes, then
    /// return `""`).
    ///
    /// Example: `k8s::logs(ns, pod, #{tail: 100, follow: true});`
    #[rhai_fn(name = "logs", return_raw)]
    pub fn logs_with(
        ctx: NativeCallContext,
        ns: &str,
        pod: &str,
        options: Map,
    ) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let mut params = log_params(&options)?;
            let k = Cluster::of(&ctx)?;
            k.host.reach.namespace(ns, "pod logs")?;
            k.run(async {
                let api: Api<Pod> = match ns {
                    "" => Api::default_namespaced(k.client.clone()),
                    ns => Api::namespaced(k.client.clone(), ns),
                };
                if params.container.is_none() {
                    // As kubectl: a pod of several containers may name the one meant.
                    let found = api.get(pod).await.map_err(kube_error)?;
                    params.container = found
                        .metadata
                        .annotations
                        .and_then(|a| a.get(DEFAULT_CONTAINER).cloned());
                }
                if !params.follow {
                    return api.logs(pod, &params).await.map_err(kube_error);
                }
                let mut lines = api
                    .log_stream(pod, &params)
                    .await
                    .map_err(kube_error)?
                    .lines();
                while let Some(line) = lines
                    .try_next()
                    .await
                    .map_err(|e| host::error(Kind::Io, e.to_string()))?
                {
                    println!("{line}");
                }
                Ok(String::new())
            })
        })
    }
}

/// The annotation kubectl reads for the container a command means when none is named.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

fn log_params(options: &Map) -> RhaiResult<LogParams> {
    let bool_opt = |key: &str| {
        options.get(key).map_or(Ok(false), |v| {
            v.as_bool().map_err(|_| bad_option(key, "a bool"))
        })
    };
    let container = match options.get("container") {
        None => None,
        Some(v) => Some(
            v.clone()
                .into_string()
                .map_err(|_| bad_option("container", "a string"))?,
        ),
    };
    let tail_lines = match options.get("tail") {
        None => None,
        Some(v) => Some(v.as_int().map_err(|_| bad_option("tail", "an integer"))?),
    };
    Ok(LogParams {
        container,
        tail_lines,
        follow: bool_opt("follow")?,
        previous: bool_opt("previous")?,
        ..LogParams::default()
    })
}

fn bad_option(key: &str, wanted: &str) -> Box<EvalAltResult> {
    host::error(
        Kind::Invalid,
        format!("log option `{key}` must be {wanted}"),
    )
}
