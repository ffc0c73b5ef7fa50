//! Writing objects: server-side applies (field manager `kip`), dry runs, patches, deletes.

use rhai::plugin::*;
use rhai::{Array, Map};
use serde_json::Value;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};

use super::convert::{invalid_object, to_json, to_map, to_object};
use super::error::kube_error;
use super::{Cluster, RhaiResult};
use crate::errors::Kind;
use crate::host;

/// The field manager of every write kip makes.
pub(super) const MANAGER: &str = "kip";

// Applies, patches and deletes, merged into `k8s` by `super::module`, which holds the namespace's
// doc comment.
#[export_module]
pub mod write_module {
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

    /// Applies `patch` (a map with a `status` key) to the status subresource of the object as
    /// a JSON merge patch and returns the patched object: how a verb records what it observed
    /// (an App's build, say) where a controller would.
    ///
    /// Example: `k8s::patch_status("kipper.run/v1alpha1", "App", "shop-test", "web", #{status: #{build: #{phase: "Succeeded"}}});`
    #[rhai_fn(return_raw)]
    pub fn patch_status(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        patch: Map,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let k = Cluster::of(&ctx)?;
            let patch = Patch::Merge(to_json(patch)?);
            let obj = k.run(k.patch_part(Some("status"), api_version, kind, ns, name, patch))?;
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
}

impl Cluster {
    pub(super) async fn apply(&self, obj: DynamicObject, force: bool) -> RhaiResult<DynamicObject> {
        let mut params = PatchParams::apply(MANAGER);
        params.force = force;
        self.apply_with(obj, &params).await
    }

    pub(super) async fn apply_with(
        &self,
        obj: DynamicObject,
        params: &PatchParams,
    ) -> RhaiResult<DynamicObject> {
        let (api, name) = self.api_of(&obj).await?;
        api.patch(&name, params, &Patch::Apply(&obj))
            .await
            .map_err(kube_error)
    }

    pub(super) fn apply_each(&self, objects: Vec<DynamicObject>) -> RhaiResult<Array> {
        let mut out = Array::new();
        for obj in objects {
            let stored = self.run(self.apply(obj, false))?;
            out.push(to_map(&stored)?.into());
        }
        Ok(out)
    }

    pub(super) async fn patch(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        patch: Patch<Value>,
    ) -> RhaiResult<DynamicObject> {
        self.patch_part(None, api_version, kind, ns, name, patch)
            .await
    }

    /// Patches the object, or its `subresource` (`status`).
    pub(super) async fn patch_part(
        &self,
        subresource: Option<&str>,
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
        match subresource {
            None => api.patch(name, &params, &patch).await,
            Some(part) => api.patch_subresource(part, name, &params, &patch).await,
        }
        .map_err(kube_error)
    }
}
