//! Which kinds the cluster serves: `apiVersion` + `kind` resolved to an API, built-in kinds
//! from [`kinds`](super::kinds), others through discovery, cached per host.

use kube::api::{Api, DynamicObject};
use kube::discovery::{self, ApiCapabilities, ApiResource, Discovery, Scope};
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map};

use super::cluster::lock;
use super::error::kube_error;
use super::{Cluster, RhaiResult};
use crate::errors::Kind;
use crate::host;

// Discovery, merged into `k8s` by `super::module`, which holds the namespace's doc comment.
#[export_module]
pub mod discovery_module {
    use super::*;

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
}

impl Cluster {
    /// Resolves `apiVersion` + `kind` through discovery: from the cache, else by asking the
    /// server for that group version (so new CRDs are found).
    pub(super) async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> RhaiResult<(ApiResource, ApiCapabilities)> {
        let known = lock(&self.host.k8s)
            .kinds
            .iter()
            .find(|(v, k, _, _)| v == api_version && k == kind)
            .map(|(_, _, ar, caps)| (ar.clone(), caps.clone()));
        if let Some(found) = known {
            return Ok(found);
        }
        if let Some(found) = super::kinds::builtin(api_version, kind) {
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
        let mut state = lock(&self.host.k8s);
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
    pub(super) async fn api(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        all: bool,
    ) -> RhaiResult<Api<DynamicObject>> {
        let (ar, caps) = self.resolve(api_version, kind).await?;
        let within = match caps.scope {
            Scope::Cluster => "",
            Scope::Namespaced => ns,
        };
        self.host.reach.namespace(within, kind)?;
        let client = self.client.clone();
        Ok(match (caps.scope, ns) {
            (Scope::Cluster, _) => Api::all_with(client, &ar),
            (Scope::Namespaced, "") if all => Api::all_with(client, &ar),
            (Scope::Namespaced, "") => Api::default_namespaced_with(client, &ar),
            (Scope::Namespaced, ns) => Api::namespaced_with(client, ns, &ar),
        })
    }

    /// The API and name addressing `obj`.
    pub(super) async fn api_of(
        &self,
        obj: &DynamicObject,
    ) -> RhaiResult<(Api<DynamicObject>, String)> {
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

pub(super) fn no_kind(api_version: &str, kind: &str) -> Box<EvalAltResult> {
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
