//! What the console's forms may do: each action is one verb, run with the form's fields as
//! its flags and arguments, exactly as the command line would run it. A destructive one runs
//! only when the form carries the name the user typed to confirm it.

use kip_core::Verb;
use kip_core::verbs::FlagType;

/// One thing a form can ask for.
pub struct Action {
    /// Its name in `/actions/{name}`.
    pub name: &'static str,
    /// The verb it runs.
    pub verb: &'static str,
    /// For a destructive action, the field whose value must be typed into `_confirm`.
    pub confirm: Option<&'static str>,
}

/// Every action the console offers. Verbs that reach beyond the cluster (install over SSH,
/// tunnels) or read files on the server are not among them.
pub const ACTIONS: &[Action] = &[
    Action {
        name: "project-create",
        verb: "project create",
        confirm: None,
    },
    Action {
        name: "project-add-env",
        verb: "project add-env",
        confirm: None,
    },
    Action {
        name: "project-copy-env",
        verb: "project copy-env",
        confirm: None,
    },
    Action {
        name: "project-remove-env",
        verb: "project remove-env",
        confirm: Some("second"),
    },
    Action {
        name: "project-delete",
        verb: "project delete",
        confirm: Some("name"),
    },
    Action {
        name: "app-deploy",
        verb: "app deploy",
        confirm: None,
    },
    Action {
        name: "app-scale",
        verb: "app scale",
        confirm: None,
    },
    Action {
        name: "app-update",
        verb: "app update",
        confirm: None,
    },
    Action {
        name: "app-autoscale",
        verb: "app autoscale",
        confirm: None,
    },
    Action {
        name: "app-restart",
        verb: "app restart",
        confirm: None,
    },
    Action {
        name: "app-env-set",
        verb: "app env set",
        confirm: None,
    },
    Action {
        name: "app-env-delete",
        verb: "app env delete",
        confirm: None,
    },
    Action {
        name: "app-secret-set",
        verb: "app secret set",
        confirm: None,
    },
    Action {
        name: "app-secret-delete",
        verb: "app secret delete",
        confirm: None,
    },
    Action {
        name: "app-link",
        verb: "app link",
        confirm: None,
    },
    Action {
        name: "app-unlink",
        verb: "app unlink",
        confirm: None,
    },
    Action {
        name: "app-rollback",
        verb: "app rollback",
        confirm: None,
    },
    Action {
        name: "app-promote",
        verb: "app promote",
        confirm: None,
    },
    Action {
        name: "app-rebuild",
        verb: "app rebuild",
        confirm: None,
    },
    Action {
        name: "app-build-cancel",
        verb: "app build cancel",
        confirm: None,
    },
    Action {
        name: "app-delete",
        verb: "app delete",
        confirm: Some("name"),
    },
    Action {
        name: "route-update",
        verb: "route update",
        confirm: None,
    },
    Action {
        name: "route-delete",
        verb: "route delete",
        confirm: Some("group"),
    },
    Action {
        name: "service-add",
        verb: "service add",
        confirm: None,
    },
    Action {
        name: "service-bind",
        verb: "service bind",
        confirm: None,
    },
    Action {
        name: "service-unbind",
        verb: "service unbind",
        confirm: None,
    },
    Action {
        name: "service-delete",
        verb: "service delete",
        confirm: Some("name"),
    },
];

/// Flags a form may never set: they read files on the machine the console runs on.
const FILE_FLAGS: &[&str] = &["from-file", "values", "file"];

/// The action named `name`.
pub fn find(name: &str) -> Option<&'static Action> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// The command line (without `kip`) that runs `verb` with the form's `fields`: each field
/// named like a flag becomes `--flag=value` (a checked box a bare `--flag`), each named like
/// an argument a positional in the verb's order; a repeatable one may come several times and
/// its lines are values of their own. Fields starting with `_` are the console's own; any
/// other field is refused, naming it.
pub fn command_line(verb: &Verb, fields: &[(String, String)]) -> Result<Vec<String>, String> {
    let mut argv = verb.words.clone();
    let mut positionals = Vec::new();
    let values = |name: &str, repeatable: bool| -> Vec<String> {
        fields
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| {
                if repeatable {
                    v.lines().map(str::to_string).collect::<Vec<_>>()
                } else {
                    vec![v.clone()]
                }
            })
            .map(|v| v.trim_end_matches('\r').to_string())
            .filter(|v| !v.trim().is_empty())
            .collect()
    };
    for (key, _) in fields {
        let known = key.starts_with('_')
            || verb.flags.iter().any(|f| f.name == *key)
            || verb.args.iter().any(|a| a.name == *key);
        if !known {
            return Err(format!(
                "`kip {}` has no flag or argument `{key}`",
                verb.name()
            ));
        }
        if FILE_FLAGS.contains(&key.as_str()) {
            return Err(format!(
                "--{key} reads a file on the server: the console does not pass it"
            ));
        }
    }
    for flag in &verb.flags {
        let given = values(&flag.name, flag.repeatable);
        if flag.ty == FlagType::Bool {
            if given
                .iter()
                .any(|v| matches!(v.as_str(), "on" | "true" | "1" | "yes"))
            {
                argv.push(format!("--{}", flag.name));
            }
            continue;
        }
        if !flag.repeatable && given.len() > 1 {
            return Err(format!("--{} was given {} times", flag.name, given.len()));
        }
        for value in given {
            argv.push(format!("--{}={value}", flag.name));
        }
    }
    for arg in &verb.args {
        let given = values(&arg.name, arg.repeatable);
        if !arg.repeatable && given.len() > 1 {
            return Err(format!("{} was given {} times", arg.name, given.len()));
        }
        positionals.extend(given);
    }
    if verb.destructive {
        argv.push("--yes".into());
    }
    if !positionals.is_empty() {
        argv.push("--".into());
        argv.extend(positionals);
    }
    Ok(argv)
}

/// Flags whose values are secret: the page shows them masked.
const SECRET_FLAGS: &[&str] = &["--git-token=", "--password="];

/// The command line as a user would type it, for the page to show what ran; secret values
/// (`app secret set`'s values, tokens) are masked.
pub fn shown(argv: &[String]) -> String {
    let secret_items = argv.starts_with(&["app".into(), "secret".into(), "set".into()]);
    let positional_from = argv.iter().position(|w| w == "--");
    let words: Vec<String> = argv
        .iter()
        .enumerate()
        .filter(|(_, w)| *w != "--")
        .map(|(i, w)| {
            if let Some(flag) = SECRET_FLAGS.iter().find(|f| w.starts_with(**f)) {
                return format!("{flag}********");
            }
            // The app's name comes first, then KEY=VALUE items.
            if secret_items
                && positional_from.is_some_and(|p| i > p + 1)
                && let Some((key, _)) = w.split_once('=')
            {
                return format!("{key}=********");
            }
            w.clone()
        })
        .map(|w| {
            if w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect();
    format!("kip {}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn secret_values_are_masked_in_what_the_page_shows() {
        let set = argv(&[
            "app",
            "secret",
            "set",
            "--project=shop",
            "--",
            "web",
            "API_KEY=s3cret",
            "B=x y",
        ]);
        assert_eq!(
            shown(&set),
            "kip app secret set --project=shop web 'API_KEY=********' 'B=********'"
        );
        let deploy = argv(&["app", "deploy", "--git-token=ghp_abc", "--name=web"]);
        assert_eq!(
            shown(&deploy),
            "kip app deploy '--git-token=********' --name=web"
        );
        let env = argv(&["app", "env", "set", "--", "web", "GREETING=hello world"]);
        assert_eq!(shown(&env), "kip app env set web 'GREETING=hello world'");
    }
}
