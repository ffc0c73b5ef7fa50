//! `k8s::select`, a list that gives the script only the fields it reads, and the reader of list
//! pages both it and `k8s::list` use.
//!
//! A Deployment is a few hundred values once it is a script map; a verb that shows three of
//! them for 10,000 Deployments should not hold the other few million, nor build them only to
//! drop them. A page is read straight from the response text: each object is walked once
//! along the paths asked for, the rest is skipped as it is parsed.
//!
//! Registered into the `k8s` namespace with the rest of the Kubernetes builtins (`k8s/`).

use crate::errors::Kind;
use std::fmt;

use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::host;
use crate::k8s::Cluster;

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
    /// Example: `for d in k8s::select("apps/v1", "Deployment", ns, #{name: "metadata.name", ready: "status.readyReplicas"}) { /* … */ }`
    #[rhai_fn(name = "select", return_raw)]
    pub fn select(
        ctx: NativeCallContext,
        api_version: &str,
        kind: &str,
        ns: &str,
        fields: Map,
    ) -> RhaiResult<Array> {
        crate::host::at_call(ctx.call_position(), || {
            select_selected(ctx, api_version, kind, ns, "", fields)
        })
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
        crate::host::at_call(ctx.call_position(), || {
            let fields = Fields::parse(fields)?;
            let k = Cluster::of(&ctx)?;
            k.run(k.pages(api_version, kind, ns, label_selector, &fields))
        })
    }

    /// Several `k8s::select`s at once: their requests overlap, so the lists a verb joins
    /// (Apps and their Deployments) take about as long as the longest of them. Each query is
    /// `#{api_version, kind, ns, label_selector, fields}`, `ns` and `label_selector` optional
    /// (all namespaces, every object); returns the rows of each query, in order.
    ///
    /// Errors: `invalid` for a query without `api_version`, `kind` or `fields`, or with a bad
    /// path; then as `k8s::list`.
    ///
    /// Example: `let found = k8s::select_many([#{api_version: "kipper.run/v1alpha1", kind: "App", ns: ns, fields: #{name: "metadata.name"}}, #{api_version: "apps/v1", kind: "Deployment", ns: ns, fields: #{name: "metadata.name", ready: "status.readyReplicas"}}]); let apps = found[0];`
    #[rhai_fn(return_raw)]
    pub fn select_many(ctx: rhai::NativeCallContext, queries: Array) -> RhaiResult<Array> {
        crate::host::at_call(ctx.call_position(), || {
            let queries = queries
                .into_iter()
                .map(Query::parse)
                .collect::<RhaiResult<Vec<_>>>()?;
            let k = Cluster::of(&ctx)?;
            let lists = queries
                .iter()
                .map(|q| k.pages(&q.api_version, &q.kind, &q.ns, &q.selector, &q.fields));
            let found = k.run(futures_util::future::try_join_all(lists))?;
            Ok(found.into_iter().map(Dynamic::from_array).collect())
        })
    }
}

/// One query of `k8s::select_many`.
struct Query {
    api_version: String,
    kind: String,
    ns: String,
    selector: String,
    fields: Fields,
}

impl Query {
    fn parse(query: Dynamic) -> RhaiResult<Query> {
        let shown = query.to_string();
        let Some(mut query) = query.try_cast::<Map>() else {
            return Err(bad_query(&shown, "it is not a map"));
        };
        let mut text = |key: &str, required: bool| match query.remove(key) {
            Some(value) if value.is_string() => Ok(value.into_string().unwrap_or_default()),
            None if !required => Ok(String::new()),
            _ => Err(bad_query(
                &shown,
                &format!("`{key}` is missing or not a string"),
            )),
        };
        let (api_version, kind) = (text("api_version", true)?, text("kind", true)?);
        let (ns, selector) = (text("ns", false)?, text("label_selector", false)?);
        let fields = match query.remove("fields").map(Dynamic::try_cast::<Map>) {
            Some(Some(fields)) => Fields::parse(fields)?,
            _ => return Err(bad_query(&shown, "`fields` is not a map")),
        };
        Ok(Query {
            api_version,
            kind,
            ns,
            selector,
            fields,
        })
    }
}

fn bad_query(query: &str, why: &str) -> Box<EvalAltResult> {
    host::error(
        Kind::Invalid,
        format!(
            "k8s::select_many cannot run the query {query}: {why} (a query is \
             #{{api_version, kind, ns, label_selector, fields}})"
        ),
    )
}

/// Reads one page of a list (`{"metadata": {"continue": …}, "items": […]}`), adding each item
/// as `item` reads it to `out`, and calls `more` with the continue token as soon as it is read
/// (the API server sends `metadata` before `items`), so the next page can be asked for while
/// this one is read.
pub(crate) fn read_page<'de, S>(
    text: &'de str,
    item: S,
    out: &mut Array,
    more: impl FnMut(&str),
) -> Result<(), serde_json::Error>
where
    S: DeserializeSeed<'de, Value = Dynamic> + Clone,
{
    let mut reader = serde_json::Deserializer::from_str(text);
    reader.deserialize_map(PageVisitor { item, out, more })?;
    reader.end()
}

struct PageVisitor<'o, S, M> {
    item: S,
    out: &'o mut Array,
    more: M,
}

impl<'de, S, M> Visitor<'de> for PageVisitor<'_, S, M>
where
    S: DeserializeSeed<'de, Value = Dynamic> + Clone,
    M: FnMut(&str),
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes list")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        #[derive(serde::Deserialize)]
        struct ListMeta {
            #[serde(rename = "continue")]
            next: Option<String>,
        }
        while let Some(key) = map.next_key::<PageKey>()? {
            match key {
                PageKey::Metadata => {
                    if let Some(token) = map.next_value::<ListMeta>()?.next
                        && !token.is_empty()
                    {
                        (self.more)(&token);
                    }
                }
                PageKey::Items => map.next_value_seed(Items {
                    item: self.item.clone(),
                    out: &mut *self.out,
                })?,
                PageKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum PageKey {
    Metadata,
    Items,
    #[serde(other)]
    Other,
}

struct Items<'o, S> {
    item: S,
    out: &'o mut Array,
}

impl<'de, S> DeserializeSeed<'de> for Items<'_, S>
where
    S: DeserializeSeed<'de, Value = Dynamic> + Clone,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S> Visitor<'de> for Items<'_, S>
where
    S: DeserializeSeed<'de, Value = Dynamic> + Clone,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the items of a list")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element_seed(self.item.clone())? {
            self.out.push(item);
        }
        Ok(())
    }
}

/// The fields a script asked for: their keys, and the steps of all their paths as one tree,
/// so one walk over an object finds every field.
struct Fields {
    keys: Vec<String>,
    root: Node,
}

#[derive(Default)]
struct Node {
    /// The fields whose path ends here, by their index in `Fields::keys`.
    ends: Vec<usize>,
    children: Vec<Child>,
}

struct Child {
    step: String,
    /// The step as a list index, when it is a number.
    index: Option<usize>,
    node: Node,
}

impl Node {
    fn add(&mut self, steps: &[String], field: usize) {
        let Some((step, rest)) = steps.split_first() else {
            self.ends.push(field);
            return;
        };
        let at = match self.children.iter().position(|c| &c.step == step) {
            Some(at) => at,
            None => {
                self.children.push(Child {
                    step: step.clone(),
                    index: step.parse().ok(),
                    node: Node::default(),
                });
                self.children.len() - 1
            }
        };
        self.children[at].node.add(rest, field);
    }

    fn key(&self, key: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.step == key)
            .map(|c| &c.node)
    }

    fn index(&self, index: usize) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.index == Some(index))
            .map(|c| &c.node)
    }

    /// Fills `row` from a value already read whole (a path ended at it, and others go on).
    fn fill(&self, value: &Dynamic, row: &mut [Dynamic]) {
        for &field in &self.ends {
            row[field] = value.clone();
        }
        for child in &self.children {
            let inner = if let Some(map) = value.read_lock::<Map>() {
                map.get(child.step.as_str()).cloned()
            } else if let (Some(list), Some(i)) = (value.read_lock::<Array>(), child.index) {
                list.get(i).cloned()
            } else {
                None
            };
            if let Some(inner) = inner {
                child.node.fill(&inner, row);
            }
        }
    }
}

impl Fields {
    fn parse(fields: Map) -> RhaiResult<Fields> {
        let mut keys = Vec::with_capacity(fields.len());
        let mut root = Node::default();
        for (key, path) in fields {
            let steps: Vec<String> = if path.is_string() {
                let path = path.into_string().unwrap_or_default();
                path.split('.').map(String::from).collect()
            } else if path.is_array() {
                let steps = path.into_array().unwrap_or_default();
                steps.into_iter().map(|step| step.to_string()).collect()
            } else {
                return Err(bad_path(&key, &path.to_string()));
            };
            if steps.is_empty() || steps.iter().any(String::is_empty) {
                return Err(bad_path(&key, &format!("{steps:?}")));
            }
            root.add(&steps, keys.len());
            keys.push(key.to_string());
        }
        Ok(Fields { keys, root })
    }
}

/// Reads one object into the row of the fields asked for.
impl<'de> DeserializeSeed<'de> for &Fields {
    type Value = Dynamic;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Dynamic, D::Error> {
        let mut row = vec![Dynamic::UNIT; self.keys.len()];
        Walk {
            node: &self.root,
            row: &mut row,
        }
        .deserialize(d)?;
        let row: Map = self
            .keys
            .iter()
            .zip(row)
            .map(|(key, value)| (key.as_str().into(), value))
            .collect();
        Ok(row.into())
    }
}

/// Walks one JSON value along `node`'s paths, filling `row`; skips whatever no path leads to.
struct Walk<'a> {
    node: &'a Node,
    row: &'a mut [Dynamic],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.node.ends.is_empty() {
            return d.deserialize_any(self);
        }
        let value = <Dynamic as serde::Deserialize>::deserialize(d)?;
        self.node.fill(&value, self.row);
        Ok(())
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(child) = map.next_key_seed(KeyOf(self.node))? {
            match child {
                Some(node) => map.next_value_seed(Walk {
                    node,
                    row: &mut *self.row,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for i in 0.. {
            let more = match self.node.index(i) {
                Some(node) => seq
                    .next_element_seed(Walk {
                        node,
                        row: &mut *self.row,
                    })?
                    .is_some(),
                None => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                break;
            }
        }
        Ok(())
    }

    // A path that goes on past a plain value leads nowhere.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A key of an object, looked up among `node`'s steps without copying it.
struct KeyOf<'a>(&'a Node);

impl<'de, 'a> DeserializeSeed<'de> for KeyOf<'a> {
    type Value = Option<&'a Node>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<&'a Node>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'a> Visitor<'de> for KeyOf<'a> {
    type Value = Option<&'a Node>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<&'a Node>, E> {
        Ok(self.0.key(key))
    }
}

fn bad_path(key: &str, path: &str) -> Box<EvalAltResult> {
    host::error(
        Kind::Invalid,
        format!(
            "field `{key}` of k8s::select has the path {path}: use a dotted string like \
             \"status.readyReplicas\" or an array of steps like [\"metadata\", \"labels\", \"app\"]"
        ),
    )
}
