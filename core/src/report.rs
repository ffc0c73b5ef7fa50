//! Script errors as users read them: what failed, then where (file, line, column, the source
//! line and a caret), then the chain of calls that led there.

use rhai::{EvalAltResult, ParseError, Position};

use builtins::Kind;

use crate::search::Origin;

/// What kind of failure, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The script is wrong (syntax, a bad declaration): exit 2.
    Script,
    /// The verb ran and failed: exit 1.
    Runtime,
}

/// A place in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub source: String,
    pub line: usize,
    pub column: usize,
}

/// A script error, ready to print.
#[derive(Debug, Clone)]
pub struct ScriptError {
    pub message: String,
    pub location: Option<Location>,
    /// Outermost call first: `in call to \`deploy\` at stdlib/app.rhai:40:3`.
    pub calls: Vec<String>,
    pub failure: Failure,
    /// The error's `kind` when it is one of kip's (see [`Kind`]): it picks the exit code, and
    /// whether the message speaks for itself when kip's own scripts raised it.
    pub kind: Option<Kind>,
}

fn locate(source: &str, pos: Position) -> Option<Location> {
    Some(Location {
        source: source.to_string(),
        line: pos.line()?,
        column: pos.position().unwrap_or(1),
    })
}

impl ScriptError {
    pub fn parse(origin: &Origin, _source: &str, err: &ParseError) -> ScriptError {
        ScriptError {
            message: format!("syntax error: {}", err.err_type()),
            location: locate(&origin.display(), err.position()),
            calls: Vec::new(),
            failure: Failure::Script,
            kind: None,
        }
    }

    pub fn declaration(origin: &Origin, message: &str) -> ScriptError {
        ScriptError {
            message: format!("bad verb declaration in {}: {message}", origin.display()),
            location: None,
            calls: Vec::new(),
            failure: Failure::Script,
            kind: None,
        }
    }

    /// A failure while running, unwound through the function calls that led to it.
    pub fn runtime(err: &EvalAltResult) -> ScriptError {
        Self::runtime_in(err, "")
    }

    /// Like [`ScriptError::runtime`], for a script whose own source name is `source`.
    pub fn runtime_in(err: &EvalAltResult, source: &str) -> ScriptError {
        let mut calls = Vec::new();
        let mut current = source.to_string();
        let mut err = err;
        loop {
            match err {
                EvalAltResult::ErrorInFunctionCall(name, fn_source, inner, pos) => {
                    calls.push(match locate(&current, *pos) {
                        Some(at) => format!(
                            "in call to `{name}` at {}:{}:{}",
                            at.source, at.line, at.column
                        ),
                        None => format!("in call to `{name}`"),
                    });
                    if !fn_source.is_empty() {
                        current = fn_source.clone();
                    }
                    err = inner;
                }
                EvalAltResult::ErrorInModule(path, inner, _) => {
                    calls.push(format!("in module `{path}`"));
                    current = path.clone();
                    err = inner;
                }
                _ => break,
            }
        }
        let failure = match err {
            EvalAltResult::ErrorParsing(..) => Failure::Script,
            _ => Failure::Runtime,
        };
        ScriptError {
            message: message_of(err),
            location: locate(&current, err.position()),
            calls,
            failure,
            kind: error_kind(err).as_deref().and_then(Kind::from_name),
        }
    }

    /// Whoever read our output stopped reading (`kip app list | head -1`): nothing to report.
    pub fn output_closed(&self) -> bool {
        self.kind == Some(Kind::OutputClosed)
    }

    /// Whether the message is all the user needs: an error of one of kip's kinds that kip's
    /// own scripts raised. A user's script always gets its file, line and calls shown.
    fn speaks_for_itself(&self) -> bool {
        let in_stdlib = self
            .location
            .as_ref()
            .is_none_or(|at| at.source.starts_with("stdlib/"));
        in_stdlib && self.kind.is_some_and(Kind::speaks_for_itself)
    }

    /// The kind's exit code (0 when the output was closed); 2 for a script that is wrong.
    pub fn exit_code(&self) -> i32 {
        match (self.failure, self.kind) {
            (Failure::Script, _) => 2,
            (Failure::Runtime, Some(kind)) => kind.exit_code(),
            (Failure::Runtime, None) => 1,
        }
    }

    /// The error as printed: `sources` finds a script's text by its source name.
    pub fn render(&self, sources: &dyn Fn(&str) -> Option<String>) -> String {
        if self.output_closed() {
            return String::new();
        }
        let mut out = format!("error: {}\n", self.message);
        if self.speaks_for_itself() {
            return out;
        }
        if let Some(at) = &self.location {
            out.push_str(&format!("  --> {}:{}:{}\n", at.source, at.line, at.column));
            if let Some(line) =
                sources(&at.source).and_then(|s| s.lines().nth(at.line - 1).map(String::from))
            {
                let number = at.line.to_string();
                let pad = " ".repeat(number.len());
                out.push_str(&format!(
                    "{pad} |\n{number} | {line}\n{pad} | {}^\n",
                    " ".repeat(at.column.saturating_sub(1))
                ));
            }
        }
        for call in &self.calls {
            out.push_str(&format!("  = {call}\n"));
        }
        out
    }
}

/// The `kind` of a thrown error map.
fn error_kind(err: &EvalAltResult) -> Option<String> {
    let EvalAltResult::ErrorRuntime(value, _) = err else {
        return None;
    };
    value
        .read_lock::<rhai::Map>()
        .and_then(|map| map.get("kind").map(|k| k.to_string()))
}

/// The message of the innermost error: a thrown map's `message`, or the error without its
/// position (which is printed apart).
fn message_of(err: &EvalAltResult) -> String {
    if let EvalAltResult::ErrorRuntime(value, _) | EvalAltResult::ErrorTerminated(value, _) = err {
        if let Some(map) = value.read_lock::<rhai::Map>()
            && let Some(message) = map.get("message")
        {
            return message.to_string();
        }
        return value.to_string();
    }
    // A script stopped by its host (Ctrl-C in `kip shell`) carries the host's reason.
    if let EvalAltResult::ErrorTerminated(token, _) = err
        && token.is_string()
    {
        return token.to_string();
    }
    // The position is printed apart, so drop the " (line 3, position 5)" Display adds.
    let text = err.to_string();
    match text.rfind(" (line ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}
