//! How a command fails: one error type for what kip's own code reports and for script errors,
//! each with the exit code of its kind (`builtins::Kind`): 2 when the command line must change,
//! 130 after Ctrl-C, 0 when the reader of the output went away, 1 otherwise.

use std::fmt::Display;

use builtins::Kind;
use kip_core::ScriptError;

#[derive(Debug)]
pub struct CliError {
    code: i32,
    /// What goes to stderr, ending in a newline (empty when nothing is to be said).
    text: String,
}

impl CliError {
    /// `error: MESSAGE`, with the exit code of `kind`.
    pub fn new(kind: Kind, message: impl Display) -> CliError {
        CliError {
            code: kind.exit_code(),
            text: format!("error: {message}\n"),
        }
    }

    /// A script's error as the user reads it: `sources` finds a script's text by its name.
    pub fn script(err: &ScriptError, sources: &dyn Fn(&str) -> Option<String>) -> CliError {
        CliError {
            code: err.exit_code(),
            text: err.render(sources),
        }
    }

    /// An exit code with nothing more to say (each failing line of `kip shell` has printed
    /// its own error).
    pub fn silent(code: i32) -> CliError {
        CliError {
            code,
            text: String::new(),
        }
    }

    /// Adds a line to what is printed.
    pub fn with_note(mut self, note: &str) -> CliError {
        self.text.push_str(note);
        self.text.push('\n');
        self
    }

    /// What would be printed, for a caller that prints it itself (`kip shell`).
    pub fn into_text(self) -> String {
        self.text
    }

    /// Prints the error and ends the process with its code.
    pub fn exit(self) -> ! {
        eprint!("{}", self.text);
        std::process::exit(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_kinds() {
        assert_eq!(CliError::new(Kind::Invalid, "x").code, 2);
        assert_eq!(CliError::new(Kind::NotFound, "x").code, 1);
        assert_eq!(CliError::new(Kind::Interrupted, "x").code, 130);
        let err = CliError::new(Kind::Io, "cannot read `f`").with_note("  = try this");
        assert_eq!(err.text, "error: cannot read `f`\n  = try this\n");
    }
}
