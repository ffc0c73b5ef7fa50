//! What the stand-in for alpine/git lets a container ask of this machine's git: git runs as the
//! sandbox's user, outside any container, so neither its arguments nor its environment may make
//! it run another program (`core.fsmonitor`, `core.sshCommand`, filters, aliases, hooks,
//! `--upload-pack`, `LD_PRELOAD`, `GIT_SSH_COMMAND`…) or read configuration from elsewhere.

/// The subcommands a build's steps (and a curious user) need; none runs a program of the
/// container's choosing.
const SUBCOMMANDS: &[&str] = &[
    "clone",
    "fetch",
    "checkout",
    "switch",
    "init",
    "status",
    "rev-parse",
    "log",
    "show",
    "ls-remote",
    "describe",
    "reset",
    "version",
];

/// The configuration a container may set (`-c`, `GIT_CONFIG_KEY_n`): none names a program.
fn config_allowed(key: &str) -> bool {
    // Section and variable names are case-insensitive; a subsection (a URL) is kept.
    let (section, rest) = key.split_once('.').unwrap_or((key, ""));
    let section = section.to_ascii_lowercase();
    let variable = rest.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let has_subsection = rest.contains('.');
    match section.as_str() {
        "advice" => true,
        "http" => matches!(
            variable.as_str(),
            "extraheader" | "sslverify" | "postbuffer"
        ),
        _ if has_subsection => false,
        "protocol" => variable == "version",
        "user" => matches!(variable.as_str(), "name" | "email"),
        "init" => variable == "defaultbranch",
        "fetch" | "transfer" => variable == "fsckobjects",
        "checkout" => variable == "workers",
        "core" => matches!(variable.as_str(), "autocrlf" | "longpaths" | "quotepath"),
        _ => false,
    }
}

fn config(setting: &str) -> Result<(), String> {
    let key = setting.split_once('=').map_or(setting, |(k, _)| k);
    if config_allowed(key) {
        Ok(())
    } else {
        Err(format!(
            "git configuration {key} refused: git runs on this machine, and the sandbox lets \
             containers set only advice.*, http[.URL].extraHeader/sslVerify/postBuffer, \
             protocol.version, user.name/email and a few others that run nothing"
        ))
    }
}

/// Refuses arguments that would make git run something else or read other configuration.
pub fn git_args(args: &[String]) -> Result<(), String> {
    let mut i = 0;
    let mut subcommand: Option<&str> = None;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        match subcommand {
            None => match arg {
                "-c" => {
                    config(args.get(i).map_or("", String::as_str))?;
                    i += 1;
                }
                "-C" | "--git-dir" | "--work-tree" | "--namespace" => i += 1,
                _ if arg.starts_with("--config-env")
                    || arg.starts_with("--exec-path")
                    || arg.starts_with("--super-prefix") =>
                {
                    return Err(format!("git option {arg} refused"));
                }
                _ if arg.starts_with('-') => {}
                _ => {
                    if !SUBCOMMANDS.contains(&arg) {
                        return Err(format!(
                            "git {arg} refused: the stand-in for alpine/git runs only git {}",
                            SUBCOMMANDS.join(", ")
                        ));
                    }
                    subcommand = Some(arg);
                }
            },
            Some(_) => {
                if arg == "--" {
                    break;
                }
                if arg == "-c" || arg == "--config" {
                    config(args.get(i).map_or("", String::as_str))?;
                    i += 1;
                } else if let Some(setting) = arg.strip_prefix("--config=") {
                    config(setting)?;
                } else if [
                    "-u",
                    "--upload-pack",
                    "--receive-pack",
                    "--exec",
                    "--template",
                ]
                .iter()
                .any(|o| arg == *o || arg.starts_with(&format!("{o}=")))
                {
                    return Err(format!(
                        "git option {arg} refused: it names a program or hooks"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Whether the container's variable `key` may reach git: not the loader's, not git's own that
/// name programs or configuration files, and no tracing (a trace prints credentials).
pub fn git_env(key: &str, value: &str) -> Result<(), String> {
    if key.starts_with("LD_") {
        return Err("the dynamic loader's variables do not reach this machine's git".into());
    }
    if key.starts_with("GIT_TRACE") || key == "GIT_CURL_VERBOSE" || key == "GIT_REDACT_COOKIES" {
        return Err("the sandbox never traces git (a trace shows credentials)".into());
    }
    if let Some(n) = key.strip_prefix("GIT_CONFIG_KEY_") {
        if n.parse::<u32>().is_err() {
            return Err("not a GIT_CONFIG_KEY_<n>".into());
        }
        return config(value);
    }
    let allowed = matches!(
        key,
        "GIT_TERMINAL_PROMPT"
            | "GIT_CONFIG_COUNT"
            | "GIT_AUTHOR_NAME"
            | "GIT_AUTHOR_EMAIL"
            | "GIT_COMMITTER_NAME"
            | "GIT_COMMITTER_EMAIL"
            | "GIT_HTTP_LOW_SPEED_LIMIT"
            | "GIT_HTTP_LOW_SPEED_TIME"
            | "GIT_HTTP_USER_AGENT"
    ) || key.starts_with("GIT_CONFIG_VALUE_");
    if key.starts_with("GIT_") && !allowed {
        return Err(
            "git's variables that name programs or files do not reach this machine's git".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_templates_steps_pass_and_what_runs_programs_does_not() {
        for ok in [
            &[
                "clone",
                "--single-branch",
                "--depth",
                "1",
                "--branch",
                "main",
                "--",
                "http://h/r.git",
                "/workspace/src",
            ][..],
            &[
                "-C",
                "/workspace/src",
                "fetch",
                "--depth",
                "1",
                "origin",
                "abc",
            ],
            &[
                "-C",
                "/workspace/src",
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--detach",
                "abc",
            ],
            &[
                "-c",
                "http.http://127.0.0.1:1/.extraHeader=Authorization: Basic x",
                "clone",
                "u",
                "d",
            ],
        ] {
            assert_eq!(git_args(&strings(ok)), Ok(()), "{ok:?}");
        }
        for bad in [
            &["-c", "core.fsmonitor=touch /tmp/x", "status"][..],
            &["-c", "core.sshCommand=sh", "fetch"],
            &["-c", "alias.x=!sh", "x"],
            &["config", "core.fsmonitor", "sh"],
            &["clone", "--upload-pack=sh", "u", "d"],
            &["clone", "-c", "filter.x.smudge=sh", "u", "d"],
            &["clone", "--template=/workspace/t", "u", "d"],
            &["--exec-path=/workspace", "status"],
            &["-c", "include.path=/workspace/c", "status"],
            &["-c", "http.proxy=http://x", "status"],
        ] {
            assert!(git_args(&strings(bad)).is_err(), "{bad:?}");
        }
        assert!(git_env("GIT_CONFIG_KEY_0", "http.https://h/.extraHeader").is_ok());
        assert!(git_env("GIT_CONFIG_VALUE_0", "Authorization: Basic x").is_ok());
        assert!(git_env("GIT_CONFIG_KEY_0", "core.pager").is_err());
        for bad in [
            "LD_PRELOAD",
            "GIT_SSH_COMMAND",
            "GIT_TRACE",
            "GIT_CONFIG_GLOBAL",
            "GIT_DIR",
        ] {
            assert!(git_env(bad, "x").is_err(), "{bad}");
        }
    }
}
