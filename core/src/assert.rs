//! `assert::…`: checks for script tests (`kip test`) and pipelines. A failed check raises a
//! `failed` error whose message shows what was expected and what was found; `kip test`
//! reports it with the line of the check.

use rhai::plugin::*;
use rhai::{Dynamic, EvalAltResult, NativeCallContext};

#[export_module]
pub mod assert_module {
    use super::{equal, failed, shorten, shown};
    use rhai::{Dynamic, EvalAltResult, FnPtr, NativeCallContext};

    /// Raises unless `condition` is true; `message` says what should have held.
    ///
    /// Example: `assert::that(apps.len() > 0, "an app is listed");`
    #[rhai_fn(return_raw)]
    pub fn that(
        ctx: NativeCallContext,
        condition: bool,
        message: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        if condition {
            Ok(())
        } else {
            Err(failed(&ctx, format!("assertion failed: {message}")))
        }
    }

    /// Raises unless `actual == expected` (Rhai's `==`: `1 == 1`, `"a" == "a"`, maps and
    /// arrays by content).
    ///
    /// Example: `assert::eq(deployment.spec.replicas, 2);`
    #[rhai_fn(return_raw)]
    pub fn eq(
        ctx: NativeCallContext,
        actual: Dynamic,
        expected: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        if equal(&ctx, &actual, &expected)? {
            Ok(())
        } else {
            Err(failed(
                &ctx,
                format!("expected {}, found {}", shown(&expected), shown(&actual)),
            ))
        }
    }

    /// Raises if `actual == unexpected`.
    ///
    /// Example: `assert::ne(app.host, "");`
    #[rhai_fn(return_raw)]
    pub fn ne(
        ctx: NativeCallContext,
        actual: Dynamic,
        unexpected: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        if equal(&ctx, &actual, &unexpected)? {
            Err(failed(
                &ctx,
                format!("expected anything but {}", shown(&unexpected)),
            ))
        } else {
            Ok(())
        }
    }

    /// Raises unless the string `text` contains `part`.
    ///
    /// Example: `assert::contains(logs, "listening on :80");`
    #[rhai_fn(return_raw)]
    pub fn contains(
        ctx: NativeCallContext,
        text: &str,
        part: &str,
    ) -> Result<(), Box<EvalAltResult>> {
        if text.contains(part) {
            Ok(())
        } else {
            Err(failed(
                &ctx,
                format!("expected {part:?} in {}", shorten(text)),
            ))
        }
    }

    /// Calls `f` and raises unless it raises an error of `kind` (`"not-found"`, `"invalid"`…);
    /// returns that error, for further checks.
    ///
    /// Example: `let e = assert::throws(|| k8s::get("v1", "ConfigMap", "default", "nope"), "not-found");`
    #[rhai_fn(return_raw)]
    pub fn throws(
        ctx: NativeCallContext,
        f: FnPtr,
        kind: &str,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let err = match f.call_within_context::<Dynamic>(&ctx, ()) {
            Ok(value) => {
                return Err(failed(
                    &ctx,
                    format!(
                        "expected an error of kind `{kind}`, but it returned {}",
                        shown(&value)
                    ),
                ));
            }
            Err(err) => err,
        };
        // The error as thrown, from inside the calls it passed through.
        let mut err = err;
        let value = loop {
            match *err {
                EvalAltResult::ErrorRuntime(value, _) => break value,
                EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
                | EvalAltResult::ErrorInModule(_, inner, _) => err = inner,
                other => break Dynamic::from(other.to_string()),
            }
        };
        let found = value
            .read_lock::<rhai::Map>()
            .and_then(|m| m.get("kind").map(|k| k.to_string()));
        if found.as_deref() == Some(kind) {
            Ok(value)
        } else {
            Err(failed(
                &ctx,
                format!("expected an error of kind `{kind}`, got {}", shown(&value)),
            ))
        }
    }
}

fn equal(ctx: &NativeCallContext, a: &Dynamic, b: &Dynamic) -> Result<bool, Box<EvalAltResult>> {
    // Values of different types are simply unequal (Rhai has no `==` between them).
    if a.type_id() != b.type_id() {
        return Ok(false);
    }
    ctx.call_native_fn::<bool>("==", (a.clone(), b.clone()))
}

fn shown(value: &Dynamic) -> String {
    let text = if value.is_string() {
        format!("{:?}", value.to_string())
    } else if value.is_unit() {
        "()".to_string()
    } else {
        value.to_string()
    };
    shorten(&text)
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A failed check, at the line of the call (Rhai leaves errors of module functions without
/// one).
fn failed(ctx: &NativeCallContext, message: String) -> Box<EvalAltResult> {
    let mut err = builtins::host::error(builtins::Kind::Failed, message);
    err.set_position(ctx.call_position());
    err
}
