//! The few standard functions that make a value of a size the script names (`blob(n)`,
//! `pad(n, …)`), re-registered with a check first: one such call could ask for more memory than
//! the machine has before the heap watch gets to look between two operations. Behaviour is
//! otherwise Rhai's own.

use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, INT, ImmutableString};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

pub(super) fn register(engine: &mut Engine, max_bytes: usize) {
    let check = move |len: usize, unit: usize| -> Result<()> {
        if len.saturating_mul(unit) > max_bytes {
            let message = format!(
                "a value of {len} elements is more than the {} MiB a script may hold",
                max_bytes / super::MIB
            );
            return Err(EvalAltResult::ErrorRuntime(
                super::limit_error(message),
                rhai::Position::NONE,
            )
            .into());
        }
        Ok(())
    };
    let wanted = |len: INT| usize::try_from(len).unwrap_or(0);
    let dynamic = std::mem::size_of::<Dynamic>();

    engine.register_fn(
        "pad",
        move |array: &mut Array, len: INT, item: Dynamic| -> Result<()> {
            let len = wanted(len);
            if len > array.len() {
                check(len, dynamic)?;
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
                check(len, 1)?;
                blob.resize(len, (value & 0xff) as u8);
            }
            Ok(())
        },
    );
    let new_blob = move |len: INT, value: INT| -> Result<Blob> {
        let len = wanted(len);
        check(len, 1)?;
        Ok(vec![(value & 0xff) as u8; len])
    };
    engine.register_fn("blob", move |len: INT| -> Result<Blob> { new_blob(len, 0) });
    engine.register_fn("blob", new_blob);
    engine.register_fn(
        "pad",
        move |text: &mut ImmutableString, len: INT, fill: char| -> Result<()> {
            let len = wanted(len);
            let had = text.chars().count();
            if len > had {
                check(len, fill.len_utf8())?;
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
                check(len, 1)?;
                let text = text.make_mut();
                text.extend(fill.chars().cycle().take(len - had));
            }
            Ok(())
        },
    );
}
