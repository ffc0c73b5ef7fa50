//! The standard functions that can make, in one call, a value much bigger than their
//! arguments, re-registered with a bound: the heap watch looks only between two operations,
//! and one such call could otherwise ask for more memory than the machine has first.
//!
//! - a size the script names (`blob(n)`, `pad(n, …)`) is refused before anything is made;
//! - a value whose size shows only while it is made (`split`, `replace`, printing a list that
//!   holds one big string many times) is made step by step, checking the run's heap as it grows.
//!
//! Behaviour is otherwise Rhai's own. Every other standard function makes a value no bigger
//! than a small multiple of its arguments, which the watch then sees.

use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, INT, ImmutableString};

use crate::heap;

mod split;
mod text;

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Bytes of one array element.
const ELEMENT: usize = std::mem::size_of::<Dynamic>();

/// What a script may still add to the heap.
#[derive(Debug, Clone, Copy)]
struct Budget {
    limit: usize,
}

impl Budget {
    /// Refuses, before it is made, a value of `len` elements of `unit` bytes that would take
    /// the run past its limit.
    fn allow(&self, len: usize, unit: usize) -> Result<()> {
        let held = heap::grown().max(0) as usize;
        if held.saturating_add(len.saturating_mul(unit)) > self.limit {
            let message = format!(
                "a value of {len} elements would take the script past its {} MiB of memory: {}",
                self.limit / super::MIB,
                super::WAY_OUT
            );
            return Err(limit_reached(super::limit_error(message)));
        }
        Ok(())
    }

    /// Whether the run holds more than its limit.
    fn is_over(&self) -> bool {
        heap::grown() > self.limit as isize
    }

    /// Stops a call that is making a value once the run holds more than its limit.
    fn check(&self) -> Result<()> {
        let grown = heap::grown();
        if grown > self.limit as isize {
            return Err(limit_reached(super::too_much_memory(
                grown as usize,
                self.limit,
            )));
        }
        Ok(())
    }
}

fn limit_reached(error: Dynamic) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(error, rhai::Position::NONE).into()
}

pub(super) fn register(engine: &mut Engine, max_bytes: usize) {
    let budget = Budget { limit: max_bytes };
    register_named_sizes(engine, budget);
    split::register(engine, budget);
    text::register(engine, budget);
}

/// `blob(n)`, `pad(n, …)` and `to_array`: sizes known before the value is made.
fn register_named_sizes(engine: &mut Engine, budget: Budget) {
    let wanted = |len: INT| usize::try_from(len).unwrap_or(0);

    engine.register_fn(
        "pad",
        move |array: &mut Array, len: INT, item: Dynamic| -> Result<()> {
            let len = wanted(len);
            if len <= array.len() {
                return Ok(());
            }
            budget.allow(len, ELEMENT)?;
            if item.is_array() || item.is_map() || item.is_blob() {
                // Each copy is a deep one: bound them as they are made.
                array.reserve_exact(len - array.len());
                while array.len() < len {
                    array.push(item.clone());
                    budget.check()?;
                }
            } else {
                array.resize(len, item);
            }
            Ok(())
        },
    );
    engine.register_fn(
        "pad",
        move |blob: &mut Blob, len: INT, value: INT| -> Result<()> {
            let len = wanted(len);
            if len > blob.len() {
                budget.allow(len, 1)?;
                blob.resize(len, (value & 0xff) as u8);
            }
            Ok(())
        },
    );
    let new_blob = move |len: INT, value: INT| -> Result<Blob> {
        let len = wanted(len);
        budget.allow(len, 1)?;
        Ok(vec![(value & 0xff) as u8; len])
    };
    engine.register_fn("blob", move |len: INT| -> Result<Blob> { new_blob(len, 0) });
    engine.register_fn("blob", new_blob);
    engine.register_fn("to_array", move |blob: &mut Blob| -> Result<Array> {
        budget.allow(blob.len(), ELEMENT)?;
        Ok(blob.iter().map(|&byte| INT::from(byte).into()).collect())
    });
    engine.register_fn(
        "pad",
        move |text: &mut ImmutableString, len: INT, fill: char| -> Result<()> {
            let len = wanted(len);
            let had = text.chars().count();
            if len > had {
                budget.allow(len, fill.len_utf8())?;
                let text = text.make_mut();
                text.extend(std::iter::repeat_n(fill, len - had));
            }
            Ok(())
        },
    );
    engine.register_fn(
        "pad",
        move |text: &mut ImmutableString, len: INT, fill: ImmutableString| -> Result<()> {
            let len = wanted(len);
            let had = text.chars().count();
            if len > had && !fill.is_empty() {
                budget.allow(len, 1)?;
                let text = text.make_mut();
                text.extend(fill.chars().cycle().take(len - had));
            }
            Ok(())
        },
    );
}
