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

use crate::errors::Kind;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PropagationPolicy,
};
use kube::discovery::{self, ApiCapabilities, ApiResource, Discovery, Scope};
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map};
use serde::de::DeserializeSeed;
use serde_json::Value;

use crate::host::{self, Host};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// The field manager of every write kip makes.
const MANAGER: &str = "kip";

/// The Kubernetes primitives, registered as the `k8s` namespace.
#[export_module]
pub mod k8s_module {
    use super::*;

    /// Server-side applies `obj` (field manager `kip`, without force) and returns the object as
    /// stored. A namespaced object without `metadata.namespace` goes to the client's default
    /// namespace.
    ///
    /// Errors: `conflict` (reason `Conflict` when another manager owns a field), or the kind of the API server's status (`invalid`, `denied`, `refused`…),
    /// `invalid` when `obj` has no `apiVersion`, `kind` or `metadata.name`.
    ///
    /// Example: `let cm = k8s::apply(#{apiVersion: "v1", kind: "ConfigMap", metadata: #{name: "a", namespace: "default"}});`
    #[rhai_fn(return_raw)]
    pub fn apply(ctx: rhai::NativeCallContext, obj: Map) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let stored = k.run(k.apply(to_object(obj)?, false))?;
            to_map(&stored)
        })
    }

    /// Like `k8s::apply`, but takes ownership of fields other managers own (`force`). Use only
    /// behind an explicit flag of the verb.
    ///
    /// Example: `if force { k8s::apply_force(obj) } else { k8s::apply(obj) }`
    #[rhai_fn(return_raw)]
    pub fn apply_force(ctx: rhai::NativeCallContext, obj: Map) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let stored = k.run(k.apply(to_object(obj)?, true))?;
            to_map(&stored)
        })
    }

    /// Applies every object of `objs` in order (as `k8s::apply`) and returns the stored objects.
    /// Stops at the first failure, which it raises.
    ///
    /// Example: `let stored = k8s::apply_all([deployment, service]);`
    #[rhai_fn(return_raw)]
    pub fn apply_all(ctx: rhai::NativeCallContext, objs: Array) -> RhaiResult<Array> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let objects = objs
                .into_iter()
                .map(|o| match o.try_cast::<Map>() {
                    Some(map) => to_object(map),
                    None => Err(host::error(
                        Kind::Invalid,
                        "k8s::apply_all takes an array of maps",
                    )),
                })
                .collect::<RhaiResult<Vec<_>>>()?;
            k.apply_each(objects)
        })
    }

    /// Parses `text` as multi-document YAML and applies every document (as `k8s::apply_all`);
    /// empty documents are skipped.
    ///
    /// Errors: `invalid` when the YAML does not parse, then as `k8s::apply`.
    ///
    /// Example: `k8s::apply_yaml(tmpl::render("app/deployment.yaml.j2", ctx));`
    #[rhai_fn(return_raw)]
    pub fn apply_yaml(ctx: rhai::NativeCallContext, text: &str) -> RhaiResult<Array> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let docs: Vec<Value> = serde_saphyr::from_multiple(text)
                .map_err(|e| host::error(Kind::Invalid, format!("cannot parse YAML: {e}")))?;
            let objects = docs
                .into_iter()
                .filter(|d| !d.is_null())
                .map(|d| serde_json::from_value(d).map_err(|e| invalid_object(&e)))
                .collect::<RhaiResult<Vec<DynamicObject>>>()?;
            k.apply_each(objects)
        })
    }

    /// Applies `obj` (as `k8s::apply`) and says what happened: `#{object, action}` where action
    /// is `"created"` (it did not exist), `"configured"` (its resourceVersion changed) or
    /// `"unchanged"`. Costs one extra GET before the apply.
    ///
    /// Example: `let r = k8s::apply_report(obj); ui::step(`${r.action} ${r.object.metadata.name}`);`
    #[rhai_fn(return_raw)]
    pub fn apply_report(ctx: rhai::NativeCallContext, obj: Map) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let obj = to_object(obj)?;
            let (before, after) = k.run(async {
                let (api, name) = k.api_of(&obj).await?;
                let before = api.get_opt(&name).await.map_err(kube_error)?;
                Ok((before, k.apply(obj, false).await?))
            })?;
            let action = match before {
                None => "created",
                Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
                    "unchanged"
                }
                Some(_) => "configured",
            };
            let mut report = Map::new();
            report.insert("object".into(), to_map(&after)?.into());
            report.insert("action".into(), action.into());
            Ok(report)
        })
    }

    /// Checks `obj` as the server would apply it, storing nothing (server-side apply with
    /// `dryRun=All`): names, labels and fields are validated and defaults filled in. Returns
    /// the object as it would be stored. Verbs check everything they are about to write
    /// first, so a bad derived name fails before anything exists.
    ///
    /// Errors: as `k8s::apply` (reason `Invalid` naming the field the server refuses).
    ///
    /// Example: `for obj in objects { k8s::dry_run(obj); }`
    #[rhai_fn(return_raw)]
    pub fn dry_run(ctx: rhai::NativeCallContext, obj: Map) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let mut params = PatchParams::apply(MANAGER);
            params.dry_run = true;
            let checked = k.run(k.apply_with(to_object(obj)?, &params))?;
            to_map(&checked)
        })
    }

    /// The object `name` of `kind` in `ns` ("" for cluster-scoped kinds, or the default
    /// namespace).
    ///
    /// Errors: `not-found` when it does not exist.
    ///
    /// Example: `let d = k8s::get("apps/v1", "Deployment", "shop-prod", "web");`
    #[rhai_fn(return_raw)]
    pub fn get(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let obj = k.run(async {
                let api = k.api(api_version, kind, ns, false).await?;
                api.get(name).await.map_err(kube_error)
            })?;
            to_map(&obj)
        })
    }

    /// Like `k8s::get`, but returns `()` when the object does not exist.
    ///
    /// Example: `let s = k8s::get_opt("v1", "Secret", ns, "db"); if s == () { /* … */ }`
    #[rhai_fn(return_raw)]
    pub fn get_opt(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> RhaiResult<Dynamic> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let obj = k.run(async {
                let api = k.api(api_version, kind, ns, false).await?;
                api.get_opt(name).await.map_err(kube_error)
            })?;
            obj.map_or(Ok(Dynamic::UNIT), |o| to_map(&o).map(Dynamic::from_map))
        })
    }

    /// Whether the object exists.
    ///
    /// Example: `if !k8s::exists("v1", "Namespace", "", ns) { /* … */ }`
    #[rhai_fn(return_raw)]
    pub fn exists(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> RhaiResult<bool> {
        crate::host::at_call(ctx.call_position(), || {
            get_opt(ctx, api_version, kind, ns, name).map(|o| !o.is_unit())
        })
    }

    /// Whether the cluster serves `kind` in `api_version` (a CRD's kind once it is applied).
    /// Built-in kinds are known without a request; others are discovered once per group
    /// version and command.
    ///
    /// Example: `if !k8s::has_kind("kipper.run/v1alpha1", "App") { /* apply the CRD */ }`
    #[rhai_fn(return_raw)]
    pub fn has_kind(
        ctx: rhai::NativeCallContext,
        api_version: &str,
        kind: &str,
    ) -> RhaiResult<bool> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            match k.run(k.resolve(api_version, kind)) {
                Ok(_) => Ok(true),
                Err(e) if is_no_kind(&e) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    /// Every object of `kind` in `ns` ("" = all namespaces, or a cluster-scoped kind), whole.
    /// Read 500 at a time; a script that reads a few fields of many objects takes
    /// `k8s::select`, which keeps only those.
    ///
    /// Example: `for ns in k8s::list("v1", "Namespace", "") { print(ns.metadata.name); }`
    #[rhai_fn(name = "list", return_raw)]
    pub fn list(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
    ) -> RhaiResult<Array> {
        crate::host::at_call(ctx.call_position(), || {
            list_selected(ctx, api_version, kind, ns, "")
        })
    }

    /// The objects of `kind` in `ns` ("" = all namespaces) whose labels match `label_selector`
    /// (`app.kubernetes.io/name=web,tier!=db`).
    ///
    /// Example: `let apps = k8s::list("apps/v1", "Deployment", ns, "app.kubernetes.io/managed-by=kipper");`
    #[rhai_fn(name = "list", return_raw)]
    pub fn list_selected(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        label_selector: &str,
    ) -> RhaiResult<Array> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            k.run(k.list(api_version, kind, ns, label_selector))
        })
    }

    /// Deletes the object with background propagation. Returns `true` if something was
    /// deleted, `false` if it was already gone.
    ///
    /// Example: `if k8s::delete("v1", "ConfigMap", ns, "old") { ui::step("deleted"); }`
    #[rhai_fn(name = "delete", return_raw)]
    pub fn delete(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> RhaiResult<bool> {
        crate::host::at_call(ctx.call_position(), || {
            delete_with(ctx, api_version, kind, ns, name, "Background")
        })
    }

    /// Deletes the object with the given propagation: `"Background"`, `"Foreground"` or
    /// `"Orphan"`. Returns `true` if something was deleted, `false` if it was already gone.
    ///
    /// Example: `k8s::delete("kipper.run/v1alpha1", "App", ns, "web", "Foreground");`
    #[rhai_fn(name = "delete", return_raw)]
    pub fn delete_with(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        propagation: &str,
    ) -> RhaiResult<bool> {
        crate::host::at_call(ctx.call_position(), || {
            let policy = match propagation {
                "Background" => PropagationPolicy::Background,
                "Foreground" => PropagationPolicy::Foreground,
                "Orphan" => PropagationPolicy::Orphan,
                other => {
                    return Err(host::error(
                        Kind::Invalid,
                        format!("propagation `{other}` is not Background, Foreground or Orphan"),
                    ));
                }
            };
            let params = DeleteParams {
                propagation_policy: Some(policy),
                ..DeleteParams::default()
            };
            let k = Cluster::of(&ctx)?;
            k.run(async {
                let api = k.api(api_version, kind, ns, false).await?;
                match api.delete(name, &params).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
                    Err(e) => Err(kube_error(e)),
                }
            })
        })
    }

    /// Applies `patch` to the object as a JSON merge patch (RFC 7386: maps merge, `()` removes
    /// a key, arrays are replaced) and returns the patched object.
    ///
    /// Example: `k8s::patch("apps/v1", "Deployment", ns, "web", #{spec: #{replicas: 0}});`
    #[rhai_fn(return_raw)]
    pub fn patch(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        patch: Map,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let obj = k.run(k.patch(api_version, kind, ns, name, Patch::Merge(to_json(patch)?)))?;
            to_map(&obj)
        })
    }

    /// Applies `patch` as a strategic merge patch (lists merge by key, e.g. containers by
    /// name). Built-in kinds only; custom resources take `k8s::patch`.
    ///
    /// Example: `k8s::patch_strategic("apps/v1", "Deployment", ns, "web", #{spec: #{template: #{spec: #{containers: [#{name: "web", image: img}]}}}});`
    #[rhai_fn(return_raw)]
    pub fn patch_strategic(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        patch: Map,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let patch = Patch::Strategic(to_json(patch)?);
            let obj = k.run(k.patch(api_version, kind, ns, name, patch))?;
            to_map(&obj)
        })
    }

    /// Waits until the Deployment `name` in `ns` has rolled out: its controller observed the
    /// latest generation and all desired replicas (0 included) are updated and available.
    /// Returns the Deployment. A rollout that cannot finish fails within seconds of the cause
    /// showing: a pod stuck in `CrashLoopBackOff`, `ImagePullBackOff` and the like, a pod no
    /// node can take, or the Deployment's own `Progressing: False`.
    ///
    /// Errors: `rollout-failed` naming the pod, the container, the reason and message the
    /// kubelet gave, its last exit and last log lines; `timeout` after `timeout_secs`, saying
    /// how far the rollout got (`2 of 3 replicas updated, 1 available`).
    ///
    /// Example: `k8s::wait_rollout(ns, "web", 120);`
    #[rhai_fn(return_raw)]
    pub fn wait_rollout(
        ctx: NativeCallContext,
        ns: &str,
        name: &str,
        timeout_secs: i64,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let what = format!("the rollout of deployment `{name}` in `{ns}`");
            let _spinner = crate::ui::Spinner::start(&k.host.ui, format!("Waiting for {what}"));
            let timeout = Duration::from_secs(timeout_secs.max(0) as u64);
            let done = k.run(rollout::wait(&k, ns, name, timeout, rolled_out))?;
            let value = serde_json::to_value(&done).map_err(|e| {
                host::error(Kind::Internal, format!("a Deployment did not convert: {e}"))
            })?;
            rhai::serde::to_dynamic(value)?
                .try_cast::<Map>()
                .ok_or_else(|| host::error(Kind::Internal, "a Deployment did not convert to a map"))
        })
    }

    /// Waits until the object's `status.conditions` holds `condition_type` with status
    /// `"True"` (a Job's `"Complete"`, a Pod's `"Ready"`…). Returns the object.
    ///
    /// Errors: `timeout` after `timeout_secs`, with the last observed `status`.
    ///
    /// Example: `k8s::wait_condition("batch/v1", "Job", ns, "migrate", "Complete", 300);`
    #[rhai_fn(return_raw)]
    pub fn wait_condition(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        condition_type: &str,
        timeout_secs: i64,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let what = format!("condition `{condition_type}` of {kind} `{name}`");
            let target = (api_version, kind, ns, name);
            wait_until(&ctx, target, timeout_secs, what, |o| {
                has_condition(o, condition_type)
            })
        })
    }

    /// Waits until the object no longer exists (returns at once if it never did).
    ///
    /// Errors: `timeout` after `timeout_secs`, with the last observed `status`.
    ///
    /// Example: `k8s::delete("v1", "Namespace", "", ns); k8s::wait_deleted("v1", "Namespace", "", ns, 60);`
    #[rhai_fn(return_raw)]
    pub fn wait_deleted(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        timeout_secs: i64,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let what = format!("{kind} `{name}` to be deleted");
            let _spinner = crate::ui::Spinner::start(&k.host.ui, format!("Waiting for {what}"));
            k.run(async {
                let api = k.api(api_version, kind, ns, false).await?;
                wait_for(api, name, timeout_secs, what, |o| o.is_none()).await
            })
            .map(|_| ())
        })
    }

    /// The log of the only (or the named) container of `pod`, as one string.
    ///
    /// Example: `print(k8s::logs(ns, pod));`
    #[rhai_fn(name = "logs", return_raw)]
    pub fn logs(ctx: rhai::NativeCallContext, ns: &str, pod: &str) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || logs_with(ctx, ns, pod, Map::new()))
    }

    /// The log of a container of `pod`. Options: `container` (name; needed when the pod has
    /// several), `tail` (last N lines), `previous` (the previous, crashed instance), `follow`
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
            let params = log_params(&options)?;
            let k = Cluster::of(&ctx)?;
            k.run(async {
                let api: Api<Pod> = match ns {
                    "" => Api::default_namespaced(k.client.clone()),
                    ns => Api::namespaced(k.client.clone(), ns),
                };
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

    /// The Pods in `ns` whose labels match `label_selector`.
    ///
    /// Example: `let pod = k8s::pods_of(ns, "app.kubernetes.io/name=web")[0].metadata.name;`
    #[rhai_fn(return_raw)]
    pub fn pods_of(
        ctx: rhai::NativeCallContext,
        ns: &str,
        label_selector: &str,
    ) -> RhaiResult<Array> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            k.run(k.list("v1", "Pod", ns, label_selector))
        })
    }

    /// Every kind the cluster serves (in each group's preferred version), as
    /// `#{api_version, kind, plural, namespaced}`. Runs discovery afresh.
    ///
    /// Example: `let crds = k8s::kinds().filter(|k| k.api_version.starts_with("kipper.run/"));`
    #[rhai_fn(return_raw)]
    pub fn kinds(ctx: NativeCallContext) -> RhaiResult<Array> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let discovery = k.run(async {
                Discovery::new(k.client.clone())
                    .run()
                    .await
                    .map_err(kube_error)
            })?;
            let mut out = Array::new();
            for group in discovery.groups() {
                for (ar, caps) in group.recommended_resources() {
                    let mut entry = Map::new();
                    entry.insert("api_version".into(), ar.api_version.into());
                    entry.insert("kind".into(), ar.kind.into());
                    entry.insert("plural".into(), ar.plural.into());
                    entry.insert(
                        "namespaced".into(),
                        (caps.scope == Scope::Namespaced).into(),
                    );
                    out.push(entry.into());
                }
            }
            Ok(out)
        })
    }

    /// Talks to the cluster `config.yaml` names as current from now on (after a script made
    /// another cluster current, as `kip install` does), forgetting the client and the kinds
    /// learnt from the previous one. Returns the new cluster's name.
    ///
    /// Errors: `invalid` when `config.yaml` cannot be read or its current entry is incomplete;
    /// `internal` where the host has a fixed cluster.
    ///
    /// Example: `config::save(cfg); k8s::reconnect();`
    #[rhai_fn(return_raw)]
    pub fn reconnect(ctx: NativeCallContext) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let host = host::host(&ctx)?;
            let Some(rechoose) = host.rechoose.clone() else {
                return Err(host::error(
                    Kind::Internal,
                    "this kip cannot switch clusters while a script runs",
                ));
            };
            let choice = rechoose().map_err(|e| host::error(Kind::Invalid, e))?;
            let name = choice.name.clone();
            *host.cluster.write().unwrap_or_else(|e| e.into_inner()) = choice;
            *lock(&state_of(&host)) = State::default();
            Ok(name)
        })
    }

    /// The API server's version, e.g. `"v1.33.1"`.
    ///
    /// Example: `ui::step(`cluster ${k8s::server_version()}`);`
    #[rhai_fn(return_raw)]
    pub fn server_version(ctx: NativeCallContext) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let info = k.run(async { k.client.apiserver_version().await.map_err(kube_error) })?;
            Ok(info.git_version)
        })
    }
}

/// What this module keeps per host: the client, and the kinds resolved so far.
#[derive(Default)]
struct State {
    client: Option<host::ClusterClient>,
    kinds: Vec<(String, String, ApiResource, ApiCapabilities)>,
}

/// Per-host state, without a field on [`Host`]: entries are keyed by the host's allocation,
/// which the `Weak` keeps from being reused while the entry lives; dead hosts are pruned.
static STATES: Mutex<Vec<(Weak<Host>, SharedState)>> = Mutex::new(Vec::new());

type SharedState = Arc<Mutex<State>>;

fn state_of(host: &Arc<Host>) -> SharedState {
    let mut states = STATES.lock().unwrap_or_else(|e| e.into_inner());
    states.retain(|(weak, _)| weak.strong_count() > 0);
    if let Some((_, state)) = states.iter().find(|(w, _)| w.as_ptr() == Arc::as_ptr(host)) {
        return state.clone();
    }
    let state = Arc::new(Mutex::new(State::default()));
    states.push((Arc::downgrade(host), state.clone()));
    state
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A builtin's view of the cluster: the host (for `block_on`), its client and its state. The
/// other modules that talk to pods (`tunnel`, `pg`) use it too.
pub(crate) struct Cluster {
    pub(crate) host: Arc<Host>,
    pub(crate) client: kube::Client,
    server: String,
    state: SharedState,
}

impl Cluster {
    pub(crate) fn of(ctx: &NativeCallContext) -> RhaiResult<Cluster> {
        let host = host::host(ctx)?;
        let state = state_of(&host);
        let cached = lock(&state).client.clone();
        let connected = match cached {
            Some(connected) => connected,
            None => {
                // Making a client spawns its connection task: do it inside the runtime.
                let _runtime = host.runtime.enter();
                let connected =
                    (host.choice().client)().map_err(|e| host::error(Kind::Unreachable, e))?;
                lock(&state).client = Some(connected.clone());
                connected
            }
        };
        Ok(Cluster {
            host,
            client: connected.client,
            server: connected.server,
            state,
        })
    }

    pub(crate) fn run<T>(&self, fut: impl Future<Output = RhaiResult<T>>) -> RhaiResult<T> {
        self.host
            .block_on_interruptible(fut)
            .map_err(|e| self.name_the_server(e))
    }

    /// An `unreachable` error names the server and what to try, which only the host knows.
    fn name_the_server(&self, err: Box<EvalAltResult>) -> Box<EvalAltResult> {
        let EvalAltResult::ErrorRuntime(value, _) = &*err else {
            return err;
        };
        let Some(mut map) = value.read_lock::<Map>().map(|m| m.clone()) else {
            return err;
        };
        if map.get("kind").map(|k| k.to_string()).as_deref() != Some(Kind::Unreachable.name()) {
            return err;
        }
        // Only a connection to the API server failed for want of a server; a pod that could
        // not be reached through it (a refused port-forward) already says why.
        let Some(cause) = map.get("cause").map(|c| c.to_string()) else {
            return err;
        };
        let hint = self.host.choice().unreachable_hint;
        let message = format!("cluster unreachable at {}: {cause} ({hint})", self.server);
        map.insert("message".into(), message.into());
        host::error_map(map)
    }

    /// Resolves `apiVersion` + `kind` through discovery: from the cache, else by asking the
    /// server for that group version (so new CRDs are found).
    async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> RhaiResult<(ApiResource, ApiCapabilities)> {
        let known = lock(&self.state)
            .kinds
            .iter()
            .find(|(v, k, _, _)| v == api_version && k == kind)
            .map(|(_, _, ar, caps)| (ar.clone(), caps.clone()));
        if let Some(found) = known {
            return Ok(found);
        }
        if let Some(found) = kinds::builtin(api_version, kind) {
            return Ok(found);
        }
        // One request learns every kind of the group version (an App and a Project both).
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gv = kube::core::GroupVersion::gv(group, version);
        let served = match discovery::pinned_group(&self.client, &gv).await {
            Ok(served) => served,
            Err(kube::Error::Discovery(_)) => return Err(no_kind(api_version, kind)),
            Err(kube::Error::Api(s)) if s.code == 404 => return Err(no_kind(api_version, kind)),
            Err(e) => return Err(kube_error(e)),
        };
        let resources = served.versioned_resources(version);
        let mut state = lock(&self.state);
        state.kinds.retain(|(v, k, _, _)| {
            v != api_version || !resources.iter().any(|(ar, _)| &ar.kind == k)
        });
        for (ar, caps) in &resources {
            let entry = (
                api_version.to_string(),
                ar.kind.clone(),
                ar.clone(),
                caps.clone(),
            );
            state.kinds.push(entry);
        }
        resources
            .into_iter()
            .find(|(ar, _)| ar.kind == kind)
            .ok_or_else(|| no_kind(api_version, kind))
    }

    /// The API of `kind` in `ns`; an empty `ns` means all namespaces when `all` is set (lists),
    /// else the client's default namespace.
    async fn api(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        all: bool,
    ) -> RhaiResult<Api<DynamicObject>> {
        let (ar, caps) = self.resolve(api_version, kind).await?;
        let client = self.client.clone();
        Ok(match (caps.scope, ns) {
            (Scope::Cluster, _) => Api::all_with(client, &ar),
            (Scope::Namespaced, "") if all => Api::all_with(client, &ar),
            (Scope::Namespaced, "") => Api::default_namespaced_with(client, &ar),
            (Scope::Namespaced, ns) => Api::namespaced_with(client, ns, &ar),
        })
    }

    /// The API and name addressing `obj`.
    async fn api_of(&self, obj: &DynamicObject) -> RhaiResult<(Api<DynamicObject>, String)> {
        let types = obj
            .types
            .as_ref()
            .ok_or_else(|| host::error(Kind::Invalid, "the object has no apiVersion and kind"))?;
        let name = obj.metadata.name.clone().ok_or_else(|| {
            host::error(
                Kind::Invalid,
                format!("the {} has no metadata.name", types.kind),
            )
        })?;
        let ns = obj.metadata.namespace.as_deref().unwrap_or("");
        Ok((
            self.api(&types.api_version, &types.kind, ns, false).await?,
            name,
        ))
    }

    async fn apply(&self, obj: DynamicObject, force: bool) -> RhaiResult<DynamicObject> {
        let mut params = PatchParams::apply(MANAGER);
        params.force = force;
        self.apply_with(obj, &params).await
    }

    async fn apply_with(
        &self,
        obj: DynamicObject,
        params: &PatchParams,
    ) -> RhaiResult<DynamicObject> {
        let (api, name) = self.api_of(&obj).await?;
        api.patch(&name, params, &Patch::Apply(&obj))
            .await
            .map_err(kube_error)
    }

    fn apply_each(&self, objects: Vec<DynamicObject>) -> RhaiResult<Array> {
        let mut out = Array::new();
        for obj in objects {
            let stored = self.run(self.apply(obj, false))?;
            out.push(to_map(&stored)?.into());
        }
        Ok(out)
    }

    /// Every object of `kind` in `ns` ("" = all namespaces) matching `selector`, whole.
    async fn list(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        selector: &str,
    ) -> RhaiResult<Array> {
        self.pages(api_version, kind, ns, selector, PhantomData::<Dynamic>)
            .await
    }

    /// Lists `kind` in `ns` ("" = all namespaces) a page at a time, reading each object of a
    /// page straight from the response text with `item`: neither kip nor the API server
    /// holds the whole answer for 10,000 objects at once, and nothing of an object but what
    /// `item` keeps is ever built.
    pub(crate) async fn pages<S>(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        selector: &str,
        item: S,
    ) -> RhaiResult<Array>
    where
        S: for<'de> DeserializeSeed<'de, Value = Dynamic> + Clone,
    {
        let (ar, caps) = self.resolve(api_version, kind).await?;
        let ns = match caps.scope {
            Scope::Namespaced if !ns.is_empty() => Some(ns),
            _ => None,
        };
        let request =
            kube::core::Request::new(<DynamicObject as kube::Resource>::url_path(&ar, ns));
        let mut params = ListParams::default().limit(PAGE);
        if !selector.is_empty() {
            params = params.labels(selector);
        }
        let fetch = |params: &ListParams| {
            let http = request
                .list(params)
                .map_err(|e| host::error(Kind::Invalid, e.to_string()))?;
            let client = self.client.clone();
            Ok::<_, Box<EvalAltResult>>(tokio::spawn(
                async move { client.request_text(http).await },
            ))
        };
        let mut out = Array::new();
        let mut pending = Some(fetch(&params)?);
        while let Some(page) = pending.take() {
            let text = page
                .await
                .map_err(|e| host::error(Kind::Internal, format!("a list request failed: {e}")))?
                .map_err(kube_error)?;
            let mut refused = None;
            // The server makes the next page while this one is read.
            let read = select::read_page(&text, item.clone(), &mut out, |token| {
                params.continue_token = Some(token.to_string());
                match fetch(&params) {
                    Ok(next) => pending = Some(next),
                    Err(e) => refused = Some(e),
                }
            });
            read.map_err(|e| {
                host::error(
                    Kind::Refused,
                    format!("the list of {kind} in {api_version} does not parse: {e}"),
                )
            })?;
            if let Some(e) = refused {
                return Err(e);
            }
        }
        Ok(out)
    }

    async fn patch(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        patch: Patch<Value>,
    ) -> RhaiResult<DynamicObject> {
        let api = self.api(api_version, kind, ns, false).await?;
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..PatchParams::default()
        };
        api.patch(name, &params, &patch).await.map_err(kube_error)
    }
}

/// Objects per page of a list, as kubectl asks for them.
const PAGE: u32 = 500;

/// Waits until `cond` holds for the object `(api_version, kind, ns, name)` and returns it.
fn wait_until(
    ctx: &NativeCallContext,
    (api_version, kind, ns, name): (&str, &str, &str, &str),
    timeout_secs: i64,
    what: String,
    cond: impl Fn(&Value) -> bool + Send,
) -> RhaiResult<Map> {
    let k = Cluster::of(ctx)?;
    let _spinner = crate::ui::Spinner::start(&k.host.ui, format!("Waiting for {what}"));
    let obj = k.run(async {
        let api = k.api(api_version, kind, ns, false).await?;
        let found = move |o: Option<&DynamicObject>| o.is_some_and(|o| cond(&o.data));
        wait_for(api, name, timeout_secs, what, found).await
    })?;
    match obj {
        Some(obj) => to_map(&obj),
        None => Err(host::error(
            Kind::Refused,
            format!("{kind} `{name}` is gone"),
        )),
    }
}

/// Watches the object until `cond` holds; on timeout raises `timeout` naming `what` and the
/// last status seen.
async fn wait_for(
    api: Api<DynamicObject>,
    name: &str,
    timeout_secs: i64,
    what: String,
    cond: impl Fn(Option<&DynamicObject>) -> bool + Send,
) -> RhaiResult<Option<DynamicObject>> {
    let last: Arc<Mutex<Option<Value>>> = Arc::default();
    let seen = last.clone();
    let watched = move |o: Option<&DynamicObject>| {
        *seen.lock().unwrap_or_else(|e| e.into_inner()) = o.map(|o| o.data["status"].clone());
        cond(o)
    };
    let timeout = Duration::from_secs(timeout_secs.max(0) as u64);
    let waited = tokio::time::timeout(
        timeout,
        kube::runtime::wait::await_condition(api, name, watched),
    )
    .await;
    match waited {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(e)) => Err(watch_error(e)),
        Err(_) => {
            let status = last.lock().unwrap_or_else(|e| e.into_inner()).take();
            let shown = match &status {
                None => "the object does not exist".to_string(),
                Some(s) => format!("last status: {s}"),
            };
            let mut map = Map::new();
            map.insert("kind".into(), Kind::Timeout.name().into());
            map.insert(
                "message".into(),
                format!("timed out after {timeout_secs}s waiting for {what} ({shown})").into(),
            );
            map.insert(
                "status".into(),
                rhai::serde::to_dynamic(&status).unwrap_or_default(),
            );
            Err(host::error_map(map))
        }
    }
}

/// A Deployment has rolled out: generation observed, every desired replica updated and
/// available, no old ones left.
fn rolled_out(d: &Value) -> bool {
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let status = &d["status"];
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let generation = int(&d["metadata"]["generation"]);
    int(&status["observedGeneration"]) >= generation
        && int(&status["updatedReplicas"]) == want
        && int(&status["replicas"]) == want
        && int(&status["availableReplicas"]) == want
}

fn has_condition(obj: &Value, condition_type: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|all| {
        all.iter()
            .any(|c| c["type"] == condition_type && c["status"] == "True")
    })
}

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

fn to_object(obj: Map) -> RhaiResult<DynamicObject> {
    rhai::serde::from_dynamic(&Dynamic::from_map(obj)).map_err(|e| invalid_object(&e))
}

fn invalid_object(e: &dyn std::fmt::Display) -> Box<EvalAltResult> {
    host::error(Kind::Invalid, format!("not a Kubernetes object: {e}"))
}

fn to_json(map: Map) -> RhaiResult<Value> {
    rhai::serde::from_dynamic(&Dynamic::from_map(map))
        .map_err(|e| host::error(Kind::Invalid, format!("not a JSON value: {e}")))
}

fn to_map(obj: &DynamicObject) -> RhaiResult<Map> {
    rhai::serde::to_dynamic(obj)?
        .try_cast::<Map>()
        .ok_or_else(|| host::error(Kind::Internal, "an object did not convert to a map"))
}

fn is_no_kind(err: &EvalAltResult) -> bool {
    let EvalAltResult::ErrorRuntime(value, _) = err else {
        return false;
    };
    value
        .read_lock::<Map>()
        .and_then(|m| m.get("reason").map(|r| r.to_string()))
        .is_some_and(|r| r == "NoKindMatch")
}

fn no_kind(api_version: &str, kind: &str) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("kind".into(), Kind::NotFound.name().into());
    map.insert(
        "message".into(),
        format!("the cluster serves no kind `{kind}` in `{api_version}` (is its CRD applied?)")
            .into(),
    );
    map.insert("code".into(), Dynamic::from_int(404));
    map.insert("reason".into(), "NoKindMatch".into());
    host::error_map(map)
}

fn watch_error(e: kube::runtime::wait::Error) -> Box<EvalAltResult> {
    use kube::runtime::watcher::Error as W;
    let kube::runtime::wait::Error::ProbeFailed(e) = e;
    match e {
        W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => kube_error(e),
        W::WatchError(status) => kube_error(kube::Error::Api(status)),
        other => host::error(Kind::Refused, other.to_string()),
    }
}

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
