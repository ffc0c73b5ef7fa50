//! The `$setElementOrder/<field>` directive of strategic merge patch.
//!
//! kubectl's three-way patches send the full desired order of a merged list next to the changed
//! items only; without honouring it, a reordered list in a manifest would never reach the server.

use serde_json::Value;

/// Reorders `merged` by `order`, the way apimachinery does: items named in `order` follow it, and
/// items only the server has keep their place relative to those, as they stood in `original`.
///
/// `key` is the list's merge key, or `None` for a list of primitives.
pub(crate) fn apply_element_order(
    merged: Vec<Value>,
    order: &[Value],
    original: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let order_ids: Vec<&Value> = order
        .iter()
        .filter_map(|item| identity(item, key))
        .collect();
    let server_order: Vec<&Value> = original
        .iter()
        .filter_map(|item| identity(item, key))
        .collect();
    let (mut listed, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position(&order_ids, item, key).is_some());
    listed.sort_by_key(|item| position(&order_ids, item, key));
    interleave(server_only, listed, &server_order, key)
}

/// Merges two lists that are each already in order, putting a server-only item (`left`) before a
/// listed one (`right`) only when the original list had it there, so neither side is reordered.
fn interleave(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[&Value],
    key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l, key), position(server_order, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

fn position(ids: &[&Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(item, key)?;
    ids.iter().position(|candidate| *candidate == id)
}

fn identity<'a>(item: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(key) => item.get(key),
        None => Some(item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter()
            .filter_map(|item| item["name"].as_str())
            .collect()
    }

    fn named(names: &[&str]) -> Vec<Value> {
        names.iter().map(|name| json!({"name": name})).collect()
    }

    #[test]
    fn follows_the_given_order() {
        let merged = named(&["a", "b", "c"]);
        let out = apply_element_order(
            merged.clone(),
            &named(&["c", "a", "b"]),
            &merged,
            Some("name"),
        );
        assert_eq!(names(&out), ["c", "a", "b"]);
    }

    #[test]
    fn server_only_items_keep_their_place() {
        let original = named(&["a", "sidecar", "b"]);
        let out = apply_element_order(
            original.clone(),
            &named(&["a", "b"]),
            &original,
            Some("name"),
        );
        assert_eq!(names(&out), ["a", "sidecar", "b"]);
    }

    #[test]
    fn primitives() {
        let merged = vec![json!("x"), json!("y"), json!("z")];
        let out = apply_element_order(merged.clone(), &[json!("z"), json!("x")], &merged, None);
        assert_eq!(out, [json!("y"), json!("z"), json!("x")]);
    }
}
