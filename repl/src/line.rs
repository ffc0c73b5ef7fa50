//! What one line of the shell asks for: a verb command line, Rhai, or one of the shell's own
//! words.

/// The shell's own words, besides the verbs.
pub const BUILTINS: &[&str] = &["help", "exit", "quit"];

/// One line of input, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Nothing but blanks.
    Empty,
    /// `exit` or `quit`: end the shell.
    Exit,
    /// `help` alone: the verbs and a word on Rhai.
    Help,
    /// A verb command line (or `help VERB…`), split as a POSIX shell splits words.
    Command(Vec<String>),
    /// Rhai code, evaluated in the session's scope.
    Rhai(String),
    /// A command line with an unclosed quote.
    Unsplittable,
}

/// Classifies `text` by its first word: a verb group or verb (as `is_command` says) or `help`
/// makes a command line; anything else is Rhai. So `app list -o json` runs a verb and
/// `apps.len()` or `k8s::list("v1", "Namespace", "")` is Rhai.
pub fn classify(text: &str, is_command: &dyn Fn(&str) -> bool) -> Line {
    let trimmed = text.trim();
    let Some(first) = trimmed.split_whitespace().next() else {
        return Line::Empty;
    };
    if trimmed == "exit" || trimmed == "quit" {
        return Line::Exit;
    }
    if trimmed == "help" {
        return Line::Help;
    }
    if first == "help" || is_command(first) {
        return match shlex::split(trimmed) {
            Some(words) => Line::Command(words),
            None => Line::Unsplittable,
        };
    }
    Line::Rhai(text.to_string())
}

/// Whether Rhai code stops before it is whole (`fn f() {`, an open string, `1 +`), so the shell
/// should read on before evaluating it. Rhai's own parser decides: the code is incomplete when
/// parsing it runs into its end. Any other error (`x }`) is Rhai's to report when it runs.
pub fn is_incomplete(code: &str) -> bool {
    use rhai::{LexError, ParseErrorType};
    static PARSER: std::sync::OnceLock<rhai::Engine> = std::sync::OnceLock::new();
    let parser = PARSER.get_or_init(rhai::Engine::new_raw);
    let Err(err) = parser.compile(code) else {
        return false;
    };
    let at_end = || {
        let (line, column) = end_of(code);
        let pos = err.position();
        pos.is_none() || (pos.line(), pos.position()) >= (Some(line), Some(column))
    };
    match err.err_type() {
        ParseErrorType::UnexpectedEOF | ParseErrorType::BadInput(LexError::UnterminatedString) => {
            true
        }
        ParseErrorType::MissingToken(..) | ParseErrorType::MissingSymbol(..) => at_end(),
        _ => false,
    }
}

/// The line and column just past the last character, as Rhai counts them (from 1).
fn end_of(code: &str) -> (usize, usize) {
    let line = code.split('\n').count();
    let last = code.rsplit('\n').next().unwrap_or("");
    (line, last.chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verbs(word: &str) -> bool {
        ["app", "project", "service", "version"].contains(&word)
    }

    fn words(list: &[&str]) -> Line {
        Line::Command(list.iter().map(|w| w.to_string()).collect())
    }

    #[test]
    fn verbs_are_commands_and_the_rest_is_rhai() {
        assert_eq!(
            classify("app list -o json", &verbs),
            words(&["app", "list", "-o", "json"])
        );
        assert_eq!(
            classify("  project use shop/test  ", &verbs),
            words(&["project", "use", "shop/test"])
        );
        assert_eq!(classify("version", &verbs), words(&["version"]));
        assert_eq!(
            classify(
                r#"app deploy --name api --env "GREETING=hello world""#,
                &verbs
            ),
            words(&[
                "app",
                "deploy",
                "--name",
                "api",
                "--env",
                "GREETING=hello world"
            ])
        );
        for rhai in [
            "let x = 5",
            "x * 2",
            r#"k8s::list("v1", "Namespace", "").len()"#,
            "apps.len()",
            "app.name",
            "#{ a: 1 }",
            "// a comment",
        ] {
            assert_eq!(classify(rhai, &verbs), Line::Rhai(rhai.into()), "{rhai}");
        }
    }

    #[test]
    fn the_shells_own_words() {
        assert_eq!(classify("", &verbs), Line::Empty);
        assert_eq!(classify("   \t", &verbs), Line::Empty);
        assert_eq!(classify("exit", &verbs), Line::Exit);
        assert_eq!(classify(" quit ", &verbs), Line::Exit);
        assert_eq!(classify("help", &verbs), Line::Help);
        assert_eq!(
            classify("help app deploy", &verbs),
            words(&["help", "app", "deploy"])
        );
        // `exit` as part of Rhai stays Rhai.
        assert_eq!(
            classify("exit_code + 1", &verbs),
            Line::Rhai("exit_code + 1".into())
        );
    }

    #[test]
    fn an_unclosed_quote_is_refused() {
        assert_eq!(
            classify("app deploy --name 'api", &verbs),
            Line::Unsplittable
        );
    }

    #[test]
    fn open_brackets_ask_for_more() {
        assert!(is_incomplete("fn double(x) {"));
        assert!(is_incomplete("let m = #{ a: [1, 2,"));
        assert!(is_incomplete("let s = `multi"));
        assert!(!is_incomplete("fn double(x) { x * 2 }"));
        assert!(!is_incomplete(r#"print("{ not a bracket")"#));
        assert!(!is_incomplete("let c = '{';"));
        assert!(!is_incomplete("1 + 1 // (comment"));
        assert!(!is_incomplete("x }"), "too many closers: let Rhai say so");
        assert!(is_incomplete("if ready {\n  print(1);"));
        assert!(is_incomplete("let total = 1 +"));
        assert!(is_incomplete("k8s::get(\"v1\", \"Pod\","));
        assert!(is_incomplete("let s = \"open"));
        assert!(
            !is_incomplete("let = ;"),
            "a syntax error is not incomplete"
        );
        assert!(!is_incomplete("let s = `a {` + \"}\";"));
        assert!(!is_incomplete("/* a comment ( */ 1"));
        assert!(!is_incomplete(""));
    }
}
