//! Merging an applied configuration into the live object, and removing what an applier gave up.

use std::collections::VecDeque;

use serde_json::{Map, Value};

use super::fields::{ListKind, list_kind};
use super::path::{self, Path, PathSet, Step};

/// The live object with the applied configuration merged in: objects merge, keyed lists and sets
/// merge item by item, anything else is taken from the configuration.
pub(crate) fn merge(live: &Value, config: &Value) -> Value {
    merge_value(None, live, config)
}

fn merge_value(field: Option<&str>, live: &Value, config: &Value) -> Value {
    match (live, config, field) {
        (Value::Object(live), Value::Object(config), _) => {
            Value::Object(merge_object(live, config))
        }
        (Value::Array(live), Value::Array(config), Some(field)) => {
            Value::Array(merge_list(field, live, config))
        }
        _ => config.clone(),
    }
}

fn merge_object(live: &Map<String, Value>, config: &Map<String, Value>) -> Map<String, Value> {
    let mut out = live.clone();
    for (name, value) in config {
        let merged = match live.get(name) {
            Some(current) => merge_value(Some(name), current, value),
            None => value.clone(),
        };
        out.insert(name.clone(), merged);
    }
    out
}

fn merge_list(field: &str, live: &[Value], config: &[Value]) -> Vec<Value> {
    let live_kind = list_kind(field, live, false);
    let config_kind = list_kind(field, config, false);
    match (live_kind, config_kind) {
        (Ok(ListKind::Keyed(a)), Ok(ListKind::Keyed(b))) if a == b => {
            interleave(live, config, |item| item.get(a).unwrap_or(&Value::Null))
        }
        (Ok(ListKind::Set), Ok(ListKind::Set)) => interleave(live, config, |item| item),
        // Atomic, or the two sides disagree (only when one is empty or broken): take the config.
        _ => config.to_vec(),
    }
}

/// Merges two associative lists the way structured-merge-diff orders them: the configuration's
/// items keep their relative order, and items only the live object has stay next to the shared
/// items they followed, so an apply never shuffles what others added.
fn interleave<'a>(
    live: &'a [Value],
    config: &'a [Value],
    id: impl Fn(&'a Value) -> &'a Value,
) -> Vec<Value> {
    let live_ids: Vec<&Value> = live.iter().map(&id).collect();
    let config_ids: Vec<&Value> = config.iter().map(&id).collect();
    let mut shared: VecDeque<&Value> = config_ids
        .iter()
        .copied()
        .filter(|c| live_ids.contains(c))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut taken: Vec<&Value> = Vec::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let (mut l, mut c) = (0, 0);
    while l < live.len() || c < config.len() {
        if l < live.len() && c < config.len() {
            if live_ids[l] == config_ids[c] {
                out.push(merge_value(None, &live[l], &config[c]));
                taken.push(config_ids[c]);
                (l, c) = (l + 1, c + 1);
                next_shared = shared.pop_front();
                continue;
            }
            let in_config = config_ids.contains(&live_ids[l]);
            if in_config && next_shared.is_some_and(|next| next != live_ids[l]) {
                // A shared item out of the configuration's order: it is placed when config reaches it.
                l += 1;
                continue;
            }
        }
        if l < live.len() {
            if !config_ids.contains(&live_ids[l]) {
                out.push(live[l].clone());
                l += 1;
                continue;
            }
            if taken.contains(&live_ids[l]) {
                l += 1;
                continue;
            }
        }
        if c < config.len() {
            let item = match live_ids.iter().position(|id| *id == config_ids[c]) {
                Some(i) => merge_value(None, &live[i], &config[c]),
                None => config[c].clone(),
            };
            out.push(item);
            taken.push(config_ids[c]);
            if next_shared == Some(config_ids[c]) {
                next_shared = shared.pop_front();
            }
            c += 1;
            continue;
        }
        // Only reachable for a shared item that config never placed; progress regardless.
        l += 1;
    }
    out
}

/// Removes each path of `abandoned` from `object`, except those that a set of `keep` holds (or
/// holds something below), and empties the objects that held only removed fields.
pub(crate) fn prune(object: &mut Value, abandoned: &PathSet, keep: &[&PathSet]) {
    let kept = |path: &Path| keep.iter().any(|set| path::covers(set, path));
    for path in abandoned {
        if kept(path) || is_item_key(path) {
            continue;
        }
        if remove(object, path) {
            drop_emptied_parents(object, path, &kept);
        }
    }
}

/// Whether `path` is the key field of a keyed list item: it goes with the item, never alone.
fn is_item_key(path: &[String]) -> bool {
    let [.., item, field] = path else {
        return false;
    };
    match (path::parse(item), path::parse(field)) {
        (Some(Step::Key(key)), Some(Step::Field(name))) => key.contains_key(&name),
        _ => false,
    }
}

fn drop_emptied_parents(object: &mut Value, path: &[String], kept: &impl Fn(&Path) -> bool) {
    for len in (1..path.len()).rev() {
        let parent = path[..len].to_vec();
        let is_field = parent.last().is_some_and(|step| step.starts_with("f:"));
        let empty = find_mut(object, &parent)
            .is_some_and(|value| value.as_object().is_some_and(Map::is_empty));
        // metadata always stays: an object without it is not an object the apiserver would store.
        if !is_field || !empty || kept(&parent) || parent == [path::field("metadata")] {
            return;
        }
        remove(object, &parent);
    }
}

/// Removes the field, keyed item or set value at `path`; whether it was there.
pub(crate) fn remove(object: &mut Value, path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let (Some(step), Some(parent)) = (path::parse(last), find_mut(object, parent)) else {
        return false;
    };
    match (step, parent) {
        (Step::Field(name), Value::Object(fields)) => fields.remove(&name).is_some(),
        (step, Value::Array(items)) => {
            let before = items.len();
            items.retain(|item| !step_matches(&step, item));
            items.len() != before
        }
        _ => false,
    }
}

fn find_mut<'a>(object: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut current = object;
    for step in path {
        current = match (path::parse(step)?, current) {
            (Step::Field(name), Value::Object(fields)) => fields.get_mut(&name)?,
            (step, Value::Array(items)) => {
                items.iter_mut().find(|item| step_matches(&step, item))?
            }
            _ => return None,
        };
    }
    Some(current)
}

fn step_matches(step: &Step, item: &Value) -> bool {
    match step {
        Step::Key(key) => key
            .iter()
            .all(|(name, value)| item.get(name) == Some(value)),
        Step::Value(value) => item == value,
        Step::Field(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &Value) -> Vec<&str> {
        list.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item["name"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn keyed_lists_merge_deeply() {
        let live = json!({"containers": [{"name": "a", "image": "1", "ports": [{"containerPort": 80}]}, {"name": "x"}]});
        let config = json!({"containers": [{"name": "a", "image": "2"}, {"name": "b"}]});
        let merged = merge(&live, &config);
        assert_eq!(
            merged["containers"][0],
            json!({"name": "a", "image": "2", "ports": [{"containerPort": 80}]})
        );
        assert_eq!(names(&merged["containers"]), ["a", "x", "b"]);
    }

    #[test]
    fn config_order_wins_and_live_only_items_stay_near() {
        let live = json!({"env": [{"name": "a"}, {"name": "x"}, {"name": "b"}]});
        let config = json!({"env": [{"name": "b"}, {"name": "a"}]});
        assert_eq!(names(&merge(&live, &config)["env"]), ["x", "b", "a"]);
    }

    #[test]
    fn sets_union_and_atomics_replace() {
        let live = json!({"finalizers": ["a", "b"], "args": ["x", "y"]});
        let config = json!({"finalizers": ["c", "a"], "args": ["z"]});
        assert_eq!(
            merge(&live, &config),
            json!({"finalizers": ["c", "a", "b"], "args": ["z"]})
        );
    }

    #[test]
    fn remove_by_step() {
        let mut object = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}, "metadata": {"finalizers": ["f", "g"]}});
        let image = vec![
            path::field("spec"),
            path::field("containers"),
            path::key("name", &json!("a")),
            path::field("image"),
        ];
        assert!(remove(&mut object, &image));
        assert!(!remove(&mut object, &image));
        let item = vec![
            path::field("spec"),
            path::field("containers"),
            path::key("name", &json!("b")),
        ];
        assert!(remove(&mut object, &item));
        let finalizer = vec![
            path::field("metadata"),
            path::field("finalizers"),
            path::value(&json!("f")),
        ];
        assert!(remove(&mut object, &finalizer));
        assert_eq!(
            object,
            json!({"spec": {"containers": [{"name": "a"}]}, "metadata": {"finalizers": ["g"]}})
        );
    }

    #[test]
    fn prune_keeps_what_others_own_and_item_keys() {
        let mut object = json!({"spec": {"containers": [{"name": "a", "image": "1", "resources": {"limits": {"cpu": "1"}}}]}});
        let item = vec![
            path::field("spec"),
            path::field("containers"),
            path::key("name", &json!("a")),
        ];
        let under = |step: &str| {
            let mut p = item.clone();
            p.push(step.to_owned());
            p
        };
        let abandoned = PathSet::from([item.clone(), under("f:image"), under("f:name")]);
        let mut resources = under("f:resources");
        resources.extend([path::field("limits"), path::field("cpu")]);
        let others = PathSet::from([resources]);
        prune(&mut object, &abandoned, &[&others]);
        assert_eq!(
            object,
            json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}]}})
        );
    }

    #[test]
    fn prune_drops_emptied_objects_but_not_metadata() {
        let mut object = json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": "v"}});
        let abandoned = PathSet::from([
            vec![
                path::field("metadata"),
                path::field("labels"),
                path::field("a"),
            ],
            vec![path::field("data"), path::field("k")],
        ]);
        prune(&mut object, &abandoned, &[]);
        assert_eq!(object, json!({"metadata": {}}));
    }
}
