//! Tab completion from the same command tree the CLI parses (so from the verbs' declarations):
//! verb words, then the chosen verb's `--flags` and their values; for Rhai lines, the builtin
//! modules (`k8s::`, `tmpl::`…) and their functions.

use clap::Command;
use reedline::{CompletionResult, Span, Suggestion};

use crate::line::BUILTINS;

/// One completion: the text that replaces the word being typed, and a word on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub description: Option<String>,
    /// Whether a space follows (a whole word), or the user goes on typing (`k8s::`).
    pub space: bool,
}

/// Completes shell lines.
pub struct KipCompleter {
    tree: Command,
    /// `k8s::list`, `tmpl::render`… (see `Kip::module_functions`).
    functions: Vec<String>,
    /// `k8s::`, `tmpl::`…
    modules: Vec<String>,
}

impl KipCompleter {
    /// `tree` is the verbs' command tree; `functions` the module functions Rhai can call.
    pub fn new(tree: Command, functions: Vec<String>) -> KipCompleter {
        let mut modules: Vec<String> = functions
            .iter()
            .filter_map(|f| f.split_once("::").map(|(m, _)| format!("{m}::")))
            .collect();
        modules.sort();
        modules.dedup();
        KipCompleter {
            tree,
            functions,
            modules,
        }
    }

    /// The byte offset where the word being completed starts, and what may replace it.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Candidate>) {
        let Some(before) = line.get(..pos.min(line.len())) else {
            return (pos, Vec::new());
        };
        let first = before.split_whitespace().next().unwrap_or("");
        let past_first = before.trim_start().len() > first.len();
        if past_first && (first == "help" || self.tree.find_subcommand(first).is_some()) {
            return self.command_candidates(before);
        }
        self.rhai_candidates(before)
    }

    fn command_candidates(&self, before: &str) -> (usize, Vec<Candidate>) {
        let start = before
            .rfind(char::is_whitespace)
            .map(|i| i + before[i..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(0);
        let word = &before[start..];
        let previous: Vec<&str> = before[..start].split_whitespace().collect();
        let mut node = &self.tree;
        for w in previous.iter().skip_while(|w| **w == "help") {
            if let Some(sub) = node.find_subcommand(w) {
                node = sub;
            }
        }
        // The value of a flag: its possible values, if it declares them.
        if let Some(flag) = previous.last().filter(|w| w.starts_with('-'))
            && let Some(arg) = find_flag(node, flag)
            && arg.get_action().takes_values()
        {
            let values = arg
                .get_possible_values()
                .into_iter()
                .map(|v| v.get_name().to_string())
                .filter(|v| v.starts_with(word))
                .map(|v| Candidate {
                    value: v,
                    description: None,
                    space: true,
                })
                .collect();
            return (start, values);
        }
        let mut out = Vec::new();
        if word.starts_with('-') {
            for arg in node.get_arguments() {
                if let Some(long) = arg.get_long() {
                    let flag = format!("--{long}");
                    if flag.starts_with(word) {
                        out.push(Candidate {
                            value: flag,
                            description: arg.get_help().map(|h| h.to_string()),
                            space: true,
                        });
                    }
                }
            }
            if "--help".starts_with(word) {
                out.push(Candidate {
                    value: "--help".into(),
                    description: Some("Print help".into()),
                    space: true,
                });
            }
        } else {
            for sub in node.get_subcommands() {
                if sub.get_name().starts_with(word) {
                    out.push(Candidate {
                        value: sub.get_name().to_string(),
                        description: sub.get_about().map(|a| a.to_string()),
                        space: true,
                    });
                }
            }
        }
        (start, out)
    }

    fn rhai_candidates(&self, before: &str) -> (usize, Vec<Candidate>) {
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == ':')
            .last()
            .map_or(before.len(), |(i, _)| i);
        let word = &before[start..];
        let mut out = Vec::new();
        if before[..start].trim().is_empty() {
            // The first word: a verb, the shell's own words, or Rhai.
            for sub in self.tree.get_subcommands() {
                if sub.get_name().starts_with(word) {
                    out.push(Candidate {
                        value: sub.get_name().to_string(),
                        description: sub.get_about().map(|a| a.to_string()),
                        space: true,
                    });
                }
            }
            for builtin in BUILTINS {
                if builtin.starts_with(word) {
                    out.push(Candidate {
                        value: builtin.to_string(),
                        description: Some("shell".into()),
                        space: true,
                    });
                }
            }
        }
        if word.is_empty() {
            return (start, out);
        }
        let names = if word.contains("::") {
            &self.functions
        } else {
            &self.modules
        };
        for name in names {
            if name.starts_with(word) {
                out.push(Candidate {
                    value: name.clone(),
                    description: None,
                    space: false,
                });
            }
        }
        (start, out)
    }
}

/// The argument of `node` that `flag` (`--output`, `-o`) names.
fn find_flag<'a>(node: &'a Command, flag: &str) -> Option<&'a clap::Arg> {
    node.get_arguments().find(|arg| {
        if let Some(long) = flag.strip_prefix("--") {
            arg.get_long() == Some(long)
        } else {
            let mut chars = flag.chars().skip(1);
            matches!((chars.next(), chars.next()), (Some(c), None) if arg.get_short() == Some(c))
        }
    })
}

impl reedline::Completer for KipCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let (start, candidates) = self.candidates(line, pos);
        let suggestions: Vec<Suggestion> = candidates
            .into_iter()
            .map(|c| Suggestion {
                value: c.value,
                description: c.description,
                span: Span::new(start, pos),
                append_whitespace: c.space,
                ..Suggestion::default()
            })
            .collect();
        CompletionResult::fresh(suggestions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kip_core::{Kip, Limits, SearchPath};

    /// A completer over the stdlib's verbs and kip's real builtin modules.
    fn completer() -> KipCompleter {
        let kip = Kip::load(SearchPath::stdlib_only(), &Limits::CLI);
        let tree = kip_core::cli::add_verbs(Command::new("kip"), &kip.verbs, &[]);
        KipCompleter::new(tree, kip.module_functions())
    }

    fn values(c: &KipCompleter, line: &str) -> Vec<String> {
        c.candidates(line, line.len())
            .1
            .into_iter()
            .map(|c| c.value)
            .collect()
    }

    #[test]
    fn verb_words_then_flags() {
        let c = completer();
        assert_eq!(values(&c, "ap"), ["app"]);
        assert_eq!(c.candidates("ap", 2).0, 0);
        assert_eq!(values(&c, "app de"), ["deploy", "delete"]);
        assert_eq!(c.candidates("app de", 6).0, 4, "replaces only `de`");
        assert_eq!(values(&c, "app deploy --na"), ["--name"]);
        let flags = values(&c, "app deploy --");
        for flag in ["--name", "--image", "--port", "--replicas", "--help"] {
            assert!(flags.contains(&flag.to_string()), "{flag} in {flags:?}");
        }
        assert!(values(&c, "app delete --y").contains(&"--yes".to_string()));
        assert_eq!(values(&c, "app list -o j"), ["json"]);
        assert_eq!(values(&c, "app list --output "), ["table", "json", "yaml"]);
        assert_eq!(values(&c, "help app dep"), ["deploy"]);
        // Completing in the middle of a line looks only at what comes before the cursor.
        assert_eq!(c.candidates("app de --name x", 6).1.len(), 2);
    }

    #[test]
    fn first_words_and_rhai() {
        let c = completer();
        assert_eq!(values(&c, "ex"), ["exit"]);
        assert!(values(&c, "").contains(&"service".to_string()));
        assert!(values(&c, "k8").contains(&"k8s::".to_string()));
        let in_k8s = values(&c, "let n = k8s::li");
        assert!(in_k8s.contains(&"k8s::list".to_string()), "{in_k8s:?}");
        assert!(
            in_k8s.iter().all(|f| f.starts_with("k8s::li")),
            "{in_k8s:?}"
        );
        assert_eq!(c.candidates("let n = k8s::li", 15).0, 8);
        assert!(values(&c, "tm").contains(&"tmpl::".to_string()));
        // Verb words are not offered in the middle of Rhai.
        assert!(!values(&c, "let x = ap").contains(&"app".to_string()));
        // No panic on a cursor inside a multibyte character.
        assert!(c.candidates("é", 1).1.is_empty());
    }
}
