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

/// Whether Rhai code leaves a bracket open (`fn f() {`), so the shell should read on before
/// evaluating it. Brackets inside string literals and comments do not count.
pub fn is_incomplete(code: &str) -> bool {
    let mut depth: i64 = 0;
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' | '\'' => {
                // Skip to the closing quote; an unclosed string is incomplete too.
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed && c != '\'' {
                    return true;
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                // A comment runs to the end of its line.
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    depth > 0
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
    }
}
