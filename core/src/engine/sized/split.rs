//! `split`, `split_rev`, `to_chars` and `replace`: their results grow with what the text
//! holds, not with its length (`s.split("")` makes a string per character, about 60 bytes
//! each; `s.replace("a", long)` copies `long` once per `a`): their size is counted before
//! they are made, and refused when it would not fit. Each keeps Rhai's own answers for its edge cases (an empty text, a
//! delimiter that is not there, fewer than two segments).

use rhai::{Array, Dynamic, Engine, INT, ImmutableString};

use super::{Budget, ELEMENT, Result};

/// The heap cell of a string value: two reference counts and a 24-byte inline string.
const SHARED_STRING: usize = 40;

pub(super) fn register(engine: &mut Engine, budget: Budget) {
    let whole = |text: &ImmutableString| vec![Dynamic::from(text.clone())];
    let segments = |n: INT| usize::try_from(n).unwrap_or(usize::MAX);

    engine.register_fn(
        "split",
        move |text: ImmutableString, delimiter: &str| -> Result<Array> {
            if text.is_empty() || (!delimiter.is_empty() && !text.contains(delimiter)) {
                return Ok(whole(&text));
            }
            collect(budget, text.split(delimiter))
        },
    );
    engine.register_fn(
        "split",
        move |text: ImmutableString, delimiter: &str, n: INT| -> Result<Array> {
            if n <= 1 || text.is_empty() || (!delimiter.is_empty() && !text.contains(delimiter)) {
                return Ok(whole(&text));
            }
            collect(budget, text.splitn(segments(n), delimiter))
        },
    );
    engine.register_fn(
        "split",
        move |text: ImmutableString, delimiter: char| -> Result<Array> {
            if text.is_empty() || !text.contains(delimiter) {
                return Ok(whole(&text));
            }
            collect(budget, text.split(delimiter))
        },
    );
    engine.register_fn(
        "split",
        move |text: ImmutableString, delimiter: char, n: INT| -> Result<Array> {
            if n <= 1 || text.is_empty() || !text.contains(delimiter) {
                return Ok(whole(&text));
            }
            collect(budget, text.splitn(segments(n), delimiter))
        },
    );
    engine.register_fn("split", move |text: ImmutableString| -> Result<Array> {
        if text.is_empty() {
            return Ok(whole(&text));
        }
        collect(budget, text.split_whitespace())
    });
    engine.register_fn(
        "split_rev",
        move |text: ImmutableString, delimiter: &str| -> Result<Array> {
            if text.is_empty() || (!delimiter.is_empty() && !text.contains(delimiter)) {
                return Ok(whole(&text));
            }
            collect(budget, text.rsplit(delimiter))
        },
    );
    engine.register_fn(
        "split_rev",
        move |text: ImmutableString, delimiter: &str, n: INT| -> Result<Array> {
            if n <= 1 || text.is_empty() || (!delimiter.is_empty() && !text.contains(delimiter)) {
                return Ok(whole(&text));
            }
            collect(budget, text.rsplitn(segments(n), delimiter))
        },
    );
    engine.register_fn(
        "split_rev",
        move |text: ImmutableString, delimiter: char| -> Result<Array> {
            if text.is_empty() || !text.contains(delimiter) {
                return Ok(whole(&text));
            }
            collect(budget, text.rsplit(delimiter))
        },
    );
    engine.register_fn(
        "split_rev",
        move |text: ImmutableString, delimiter: char, n: INT| -> Result<Array> {
            if n <= 1 || text.is_empty() || !text.contains(delimiter) {
                return Ok(whole(&text));
            }
            collect(budget, text.rsplitn(segments(n), delimiter))
        },
    );
    engine.register_fn("to_chars", move |text: ImmutableString| -> Result<Array> {
        // A char is held in the element itself: the size is known before.
        budget.allow(text.chars().count(), ELEMENT)?;
        Ok(text.chars().map(Dynamic::from).collect())
    });

    register_replace(engine, budget);
}

/// The pieces as an array of strings, refused up front when even their smallest size would
/// not fit (so the array never grows by doubling past the limit), stopped once the run holds
/// more than its limit (pieces longer than a string's inline 23 bytes take more).
fn collect<'a>(budget: Budget, pieces: impl Iterator<Item = &'a str> + Clone) -> Result<Array> {
    let count = pieces.clone().count();
    budget.allow(count, ELEMENT + SHARED_STRING)?;
    let mut array = Array::with_capacity(count);
    for piece in pieces {
        array.push(piece.into());
        budget.check()?;
    }
    Ok(array)
}

fn register_replace(engine: &mut Engine, budget: Budget) {
    engine.register_fn(
        "replace",
        move |text: &mut ImmutableString, find: &str, substitute: &str| -> Result<()> {
            replace(budget, text, find, substitute)
        },
    );
    engine.register_fn(
        "replace",
        move |text: &mut ImmutableString, find: &str, substitute: char| -> Result<()> {
            replace(budget, text, find, substitute.encode_utf8(&mut [0; 4]))
        },
    );
    engine.register_fn(
        "replace",
        move |text: &mut ImmutableString, find: char, substitute: &str| -> Result<()> {
            replace(budget, text, find.encode_utf8(&mut [0; 4]), substitute)
        },
    );
    engine.register_fn(
        "replace",
        move |text: &mut ImmutableString, find: char, substitute: char| -> Result<()> {
            let (mut find_buf, mut substitute_buf) = ([0; 4], [0; 4]);
            replace(
                budget,
                text,
                find.encode_utf8(&mut find_buf),
                substitute.encode_utf8(&mut substitute_buf),
            )
        },
    );
}

/// `str::replace`, refused up front when its result would not fit.
fn replace(budget: Budget, text: &mut ImmutableString, find: &str, substitute: &str) -> Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let matches = text.match_indices(find).count();
    let len = (text.len() - matches * find.len())
        .saturating_add(matches.saturating_mul(substitute.len()));
    budget.allow(len, 1)?;
    let mut result = String::with_capacity(len);
    let mut copied = 0;
    for (at, found) in text.match_indices(find) {
        result.push_str(&text[copied..at]);
        result.push_str(substitute);
        copied = at + found.len();
    }
    result.push_str(&text[copied..]);
    *text = result.into();
    Ok(())
}
