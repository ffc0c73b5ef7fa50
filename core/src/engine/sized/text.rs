//! Arrays and maps as text (`to_string`, `print`, `debug`, `to_debug`, `${list}`, `"" + list`,
//! `to_json`): a list may hold one string many times at the cost of one, yet prints it each
//! time, so a list of a few megabytes can print as gigabytes. The text is written in Rhai's
//! own format, looking at the budget after each element.

use std::fmt::Write;

use rhai::{Array, Dynamic, Engine, ImmutableString, Map, NativeCallContext};

use super::{Budget, Result};
use crate::engine::MIB;
use crate::heap;

const NAMES: [&str; 4] = ["to_string", "print", "debug", "to_debug"];

pub(super) fn register(engine: &mut Engine, budget: Budget) {
    for name in NAMES {
        engine.register_fn(
            name,
            move |ctx: NativeCallContext, array: &mut Array| -> ImmutableString {
                let mut text = String::from("[");
                let last = array.len().saturating_sub(1);
                for (i, item) in array.iter_mut().enumerate() {
                    text.push_str(&debug_text(&ctx, item));
                    if i < last {
                        text.push_str(", ");
                    }
                    if budget.is_over() {
                        return too_big(budget, text);
                    }
                }
                text.push(']');
                text.into()
            },
        );
        engine.register_fn(
            name,
            move |ctx: NativeCallContext, map: &mut Map| -> ImmutableString {
                let mut text = String::from("#{");
                let last = map.len().saturating_sub(1);
                for (i, (key, value)) in map.iter_mut().enumerate() {
                    let value = debug_text(&ctx, value);
                    let comma = if i < last { ", " } else { "" };
                    let _ = write!(text, "{key:?}: {value}{comma}");
                    if budget.is_over() {
                        return too_big(budget, text);
                    }
                }
                text.push('}');
                text.into()
            },
        );
    }
    engine.register_fn("to_json", move |map: &mut Map| -> Result<String> {
        let mut json = Bounded {
            bytes: Vec::new(),
            budget,
        };
        // Rhai's own order: the keys sorted, as the map holds them.
        let entries: std::collections::BTreeMap<&str, &Dynamic> = map
            .iter()
            .map(|(key, value)| (key.as_str(), value))
            .collect();
        match serde_json::to_writer(&mut json, &entries) {
            Ok(()) => Ok(String::from_utf8(json.bytes).unwrap_or_else(|_| "ERROR".into())),
            // Rhai's own answer when a value cannot be JSON; the budget's error is passed on.
            Err(_) => budget.check().map(|()| "ERROR".into()),
        }
    });
}

/// The text of a list too big to print. Failing would not stop the script: Rhai answers a
/// failed `to_string` inside `${…}` or `"" + list` by printing the value its own way, without
/// bound. So the run is marked as past its limit, which stops it at its next operation.
fn too_big(budget: Budget, text: String) -> ImmutableString {
    heap::report_over(heap::grown());
    drop(text);
    format!(
        "<not printed: more than the {} MiB a script may hold>",
        budget.limit / MIB
    )
    .into()
}

/// One element as `to_debug` prints it, as Rhai's own list printing does.
fn debug_text(ctx: &NativeCallContext, item: &mut Dynamic) -> ImmutableString {
    match ctx.call_native_fn_raw("to_debug", true, &mut [item]) {
        Ok(text) if text.is_string() => text.into_immutable_string().unwrap_or_default(),
        Ok(other) => ctx.engine().map_type_name(other.type_name()).into(),
        // Rhai prints the value its own way here; that way has no bound, and no value kip
        // scripts hold fails `to_debug`.
        Err(_) => ctx.engine().map_type_name(item.type_name()).into(),
    }
}

/// A JSON buffer that refuses to grow once the run holds more than its limit.
struct Bounded {
    bytes: Vec<u8>,
    budget: Budget,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.budget
            .check()
            .map_err(|_| std::io::Error::other("the script's memory limit"))?;
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
