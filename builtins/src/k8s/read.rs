//! Reading objects: one by name, or every one of a kind read a page at a time.

use std::marker::PhantomData;

use kube::api::{DynamicObject, ListParams};
use kube::discovery::Scope;
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map};
use serde::de::DeserializeSeed;

use super::convert::to_map;
use super::error::kube_error;
use super::{Cluster, RhaiResult};
use crate::errors::Kind;
use crate::host;

// Gets and lists, merged into `k8s` by `super::module`, which holds the namespace's doc comment.
#[export_module]
pub mod read_module {
    use super::*;

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
}

impl Cluster {
    /// Every object of `kind` in `ns` ("" = all namespaces) matching `selector`, whole.
    pub(super) async fn list(
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
        let own = super::kinds::kipper_own(api_version, kind);
        let (ar, caps) = match own.clone() {
            Some(found) => found,
            None => self.resolve(api_version, kind).await?,
        };
        let ns = match caps.scope {
            Scope::Namespaced if !ns.is_empty() => Some(ns),
            _ => None,
        };
        self.host.reach.namespace(ns.unwrap_or(""), kind)?;
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
                .map_err(|e| match e {
                    // Known without discovery, yet not served: its CRD is not applied.
                    kube::Error::Api(s) if s.code == 404 && own.is_some() => {
                        super::discovery::no_kind(api_version, kind)
                    }
                    e => kube_error(e),
                })?;
            let mut refused = None;
            // The server makes the next page while this one is read.
            let read = super::select::read_page(&text, item.clone(), &mut out, |token| {
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
}

/// Objects per page of a list, as kubectl asks for them.
const PAGE: u32 = 500;
