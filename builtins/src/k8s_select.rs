//! `k8s::select`: a list that gives the script only the fields it reads.
//!
//! A Deployment is a few hundred values once it is a script map; a verb that shows three of
//! them for 10,000 Deployments should not hold the other few million. The whole objects stay
//! JSON in kip, a page at a time, and each becomes a small map of the fields asked for.
//!
//! Registered into the `k8s` namespace with the rest of the Kubernetes builtins (`k8s.rs`).

use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map};
use serde_json::Value;

use crate::host;
use crate::k8s::{Cluster, json_to_dynamic};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

#[export_module]
pub mod select_module {
    use super::*;

    /// Every object of `kind` in `ns` ("" = all namespaces, or a cluster-scoped kind), each as
    /// a map of only the `fields` asked for, `#{key: path}`. A path is dotted, a number
    /// stepping into a list (`"spec.template.spec.containers.0.image"`), or an array of steps
    /// for keys that hold dots (`["metadata", "labels", "kipper.run/project"]`); where it
    /// leads nowhere the key is `()`. Objects are read 500 at a time and only the fields are
    /// kept, so 10,000 Deployments cost the script 10,000 small maps.
    ///
    /// Errors: `invalid` for a path that is neither a string nor an array of steps; then as
    /// `k8s::list`.
    ///
    /// Example: `for d in k8s::select("apps/v1", "Deployment", ns, #{name: "metadata.name", ready: "status.readyReplicas"}) { … }`
    #[rhai_fn(name = "select", return_raw)]
    pub fn select(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        fields: Map,
    ) -> RhaiResult<Array> {
        select_selected(ctx, api_version, kind, ns, "", fields)
    }

    /// Like `k8s::select`, for the objects whose labels match `label_selector`.
    ///
    /// Example: `let apps = k8s::select("apps/v1", "Deployment", "", "app.kubernetes.io/managed-by=kipper", #{name: "metadata.name", ns: "metadata.namespace"});`
    #[rhai_fn(name = "select", return_raw)]
    pub fn select_selected(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        label_selector: &str,
        fields: Map,
    ) -> RhaiResult<Array> {
        let fields = Fields::parse(fields)?;
        let k = Cluster::of(&ctx)?;
        let mut rows = Array::new();
        k.run(k.pages(api_version, kind, ns, label_selector, |items| {
            rows.extend(items.iter().map(|item| fields.of(item)));
            Ok(())
        }))?;
        Ok(rows)
    }
}

/// The fields a script asked for: each key with the steps of its path.
struct Fields(Vec<(String, Vec<String>)>);

impl Fields {
    fn parse(fields: Map) -> RhaiResult<Fields> {
        let mut parsed = Vec::with_capacity(fields.len());
        for (key, path) in fields {
            let steps = if path.is_string() {
                let path = path.into_string().unwrap_or_default();
                path.split('.').map(String::from).collect()
            } else if path.is_array() {
                path.into_array()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|step| step.to_string())
                    .collect()
            } else {
                return Err(bad_path(&key, &path.to_string()));
            };
            let steps: Vec<String> = steps;
            if steps.is_empty() || steps.iter().any(String::is_empty) {
                return Err(bad_path(&key, &format!("{steps:?}")));
            }
            parsed.push((key.to_string(), steps));
        }
        Ok(Fields(parsed))
    }

    /// The row of `object`: each key with the value its path leads to, or `()`.
    fn of(&self, object: &Value) -> Dynamic {
        let row: Map = self
            .0
            .iter()
            .map(|(key, steps)| {
                let found = steps.iter().try_fold(object, |at, step| match at {
                    Value::Object(fields) => fields.get(step),
                    Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                });
                let value = found.map_or(Dynamic::UNIT, |v| json_to_dynamic(v.clone()));
                (key.as_str().into(), value)
            })
            .collect();
        row.into()
    }
}

fn bad_path(key: &str, path: &str) -> Box<EvalAltResult> {
    host::error(
        "invalid",
        format!(
            "field `{key}` of k8s::select has the path {path}: use a dotted string like \
             \"status.readyReplicas\" or an array of steps like [\"metadata\", \"labels\", \"app\"]"
        ),
    )
}
