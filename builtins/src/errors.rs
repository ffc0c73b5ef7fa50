//! The one set of error kinds. Builtins, the stdlib and user scripts raise errors as maps
//! `#{ kind, message, … }` whose `kind` is one of these; the CLI picks its exit code and how
//! much to show from it. Finer detail goes in other keys: `reason` (the Kubernetes reason,
//! `host-key`, `auth`…), `code` (an HTTP status or SQLSTATE), `cause`.
//!
//! Scripts make one with `kip::error(kind, message)`, which refuses a kind not in this set.

use std::fmt;

/// What went wrong, as a closed set. The doc comment of each variant is its documentation for
/// script authors (`kip doc errors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A flag, argument, name or value is wrong; the message names it and what is allowed.
    /// Exit code 2, like a command line clap refuses.
    Invalid,
    /// Something named does not exist: an app, project, cluster, object, file.
    NotFound,
    /// It exists already, is in a state that forbids this, or another writer kept changing it.
    Conflict,
    /// A destructive verb ran without a terminal to ask on and without `--yes`. Exit code 2.
    ConfirmationRequired,
    /// The user answered no.
    Declined,
    /// A rollout's pods are failing; the message names the pod, its reason and what to run.
    RolloutFailed,
    /// Waited past a deadline.
    Timeout,
    /// A server could not be reached: the cluster, an SSH host, the gateway, a database.
    Unreachable,
    /// A server refused our credentials (HTTP 401/403, SSH authentication, a changed host key).
    Denied,
    /// A server refused the request for another reason (`code` and `reason` say which).
    Refused,
    /// A step that was run failed: a command's exit code, a preflight check, a component that
    /// is not healthy.
    Failed,
    /// This machine's files, terminal or ports.
    Io,
    /// A template did not render.
    Template,
    /// A script hit one of its limits (operations, memory, time).
    Limit,
    /// The user pressed Ctrl-C. Exit code 130.
    Interrupted,
    /// Whoever read kip's output went away (`kip app list | head -1`): kip ends quietly, exit 0.
    OutputClosed,
    /// A bug in kip.
    Internal,
}

impl Kind {
    pub const ALL: [Kind; 17] = [
        Kind::Invalid,
        Kind::NotFound,
        Kind::Conflict,
        Kind::ConfirmationRequired,
        Kind::Declined,
        Kind::RolloutFailed,
        Kind::Timeout,
        Kind::Unreachable,
        Kind::Denied,
        Kind::Refused,
        Kind::Failed,
        Kind::Io,
        Kind::Template,
        Kind::Limit,
        Kind::Interrupted,
        Kind::OutputClosed,
        Kind::Internal,
    ];

    /// The name scripts see (`e.kind == "not-found"`).
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid",
            Kind::NotFound => "not-found",
            Kind::Conflict => "conflict",
            Kind::ConfirmationRequired => "confirmation-required",
            Kind::Declined => "declined",
            Kind::RolloutFailed => "rollout-failed",
            Kind::Timeout => "timeout",
            Kind::Unreachable => "unreachable",
            Kind::Denied => "denied",
            Kind::Refused => "refused",
            Kind::Failed => "failed",
            Kind::Io => "io",
            Kind::Template => "template",
            Kind::Limit => "limit",
            Kind::Interrupted => "interrupted",
            Kind::OutputClosed => "output-closed",
            Kind::Internal => "internal",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The process's exit code when a command ends with this error.
    pub const fn exit_code(self) -> i32 {
        match self {
            Kind::Invalid | Kind::ConfirmationRequired => 2,
            Kind::Interrupted => 130,
            Kind::OutputClosed => 0,
            _ => 1,
        }
    }

    /// Whether the message is all a user needs when kip's own scripts raise it: the place in
    /// the stdlib would only be noise. Errors in a user's script always show their place.
    pub const fn speaks_for_itself(self) -> bool {
        !matches!(self, Kind::Template | Kind::Limit | Kind::Internal)
    }

    /// What the kind means, in one line, for `kip doc` and the script reference (the README's
    /// table of kinds is tested against it).
    pub fn meaning(self) -> &'static str {
        match self {
            Kind::Invalid => {
                "a flag, argument, name or value is wrong; the message names it and what is allowed"
            }
            Kind::NotFound => {
                "something named does not exist: an app, project, cluster, object, file"
            }
            Kind::Conflict => {
                "it exists already, is in a state that forbids this, or another writer kept changing it"
            }
            Kind::ConfirmationRequired => {
                "a destructive verb ran without a terminal and without `--yes`"
            }
            Kind::Declined => "the user answered no",
            Kind::RolloutFailed => "a rollout's pods are failing",
            Kind::Timeout => "waited past a deadline",
            Kind::Unreachable => {
                "a server could not be reached: the cluster, an SSH host, the gateway, a database"
            }
            Kind::Denied => {
                "a server refused our credentials (401/403, SSH authentication, a changed host key)"
            }
            Kind::Refused => {
                "a server refused the request for another reason (`code` and `reason` say which)"
            }
            Kind::Failed => {
                "a step that was run failed: a command's exit code, a preflight check, an unhealthy component"
            }
            Kind::Io => "this machine's files, terminal or ports",
            Kind::Template => "a template did not render",
            Kind::Limit => "a script hit one of its limits",
            Kind::Interrupted => "Ctrl-C",
            Kind::OutputClosed => {
                "whoever read kip's output went away (`kip app list | head -1`); kip ends quietly"
            }
            Kind::Internal => "a bug in kip",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `kind` a Kubernetes API status becomes; `reason` and `code` stay on the error.
pub fn of_http_status(code: u16) -> Kind {
    match code {
        404 => Kind::NotFound,
        // 410: a list's continue token or a watch's resourceVersion expired: list afresh.
        409 | 410 => Kind::Conflict,
        400 | 422 => Kind::Invalid,
        401 | 403 => Kind::Denied,
        408 | 504 => Kind::Timeout,
        _ => Kind::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
            assert!(!kind.meaning().is_empty());
        }
        let mut names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
        assert_eq!(Kind::from_name("kubernetes"), None);
    }

    /// The README's table of kinds is this list, so script authors read what kip does.
    #[test]
    fn the_readme_lists_every_kind() {
        let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(readme).unwrap();
        for kind in Kind::ALL {
            let meaning = kind.meaning().replace('|', "\\|");
            let row = format!("| `{kind}` | {meaning} | {} |", kind.exit_code());
            assert!(readme.contains(&row), "the README lacks {row}");
        }
    }
}
