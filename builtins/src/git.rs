//! `git::…`: asking a git server what a branch points at, with the machine's `git` (the same
//! client the build's clone step uses, so what works here works there). A hook's own code may
//! not use it; an app verb a hook runs may.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rhai::plugin::*;

use crate::errors::Kind;
use crate::host;

/// How long `git ls-remote` may take: a git host that does not answer in this time is down.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The transports git may use: no `file://` (a repository of this machine), no `ext::` (a
/// command).
const PROTOCOLS: &str = "http:https:git:ssh";

#[export_module]
pub mod git_module {
    use super::*;

    /// The commit (40 hex digits) the branch `branch` of the repository `url` points at now,
    /// read with `git ls-remote`. `header` is an HTTP header line for the repository's host
    /// (`Authorization: Basic …`), or `""` for a public repository; it reaches git
    /// through its environment, never its command line or the URL, and never appears in an
    /// error.
    ///
    /// Errors: `not-found` when the repository has no such branch; `denied` when the server
    /// refuses the credentials (or asks for some); `unreachable` when git is not installed or
    /// the server does not answer within 30 s; `invalid` for an URL git refuses.
    ///
    /// Example: `let sha = git::remote_head("https://github.com/acme/api.git", "main", "");`
    #[rhai_fn(return_raw)]
    pub fn remote_head(
        ctx: NativeCallContext,
        url: &str,
        branch: &str,
        header: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            host::host(&ctx)?.reach.everything("git::remote_head")?;
            super::remote_head(url, branch, header).map_err(|(kind, msg)| host::error(kind, msg))
        })
    }

    /// The value of the `http.<scope>.extraHeader` key that scopes a token to the host of
    /// `url`: `scheme://host[:port]/`. Throws `invalid` for an URL that is not http(s).
    ///
    /// Example: `git::header_scope("https://github.com/acme/api.git")` is `"https://github.com/"`.
    #[rhai_fn(return_raw)]
    pub fn header_scope(url: &str) -> Result<String, Box<EvalAltResult>> {
        super::header_scope(url).ok_or_else(|| {
            host::error(
                Kind::Invalid,
                format!("`{url}` is not an http(s) URL: a token is sent only over http(s)"),
            )
        })
    }
}

/// `scheme://host[:port]/` of an http(s) URL, without any user part.
pub fn header_scope(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split('/').next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}/"))
}

fn remote_head(url: &str, branch: &str, header: &str) -> Result<String, (Kind, String)> {
    if url.starts_with('-') || branch.starts_with('-') || branch.is_empty() {
        return Err((
            Kind::Invalid,
            format!("`{url}` (branch `{branch}`) is not a repository and branch git accepts"),
        ));
    }
    let mut cmd = Command::new("git");
    cmd.args(["ls-remote", "--heads", "--", url])
        .arg(format!("refs/heads/{branch}"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", PROTOCOLS)
        // ssh must not ask about an unknown host key on a terminal kip does not show.
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !header.is_empty() {
        let scope = header_scope(url).ok_or_else(|| {
            (
                Kind::Invalid,
                format!("`{url}` is not an http(s) URL: a token is sent only over http(s)"),
            )
        })?;
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", format!("http.{scope}.extraHeader"))
            .env("GIT_CONFIG_VALUE_0", header);
    }
    let mut child = cmd.spawn().map_err(|e| {
        (
            Kind::Unreachable,
            format!("cannot run git ({e}): install git, or pass --commit SHA"),
        )
    })?;
    let mut stdout = child.stdout.take().map(reader);
    let mut stderr = child.stderr.take().map(reader);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err((
                    Kind::Unreachable,
                    format!("{url} did not answer within {}s", TIMEOUT.as_secs()),
                ));
            }
        }
    };
    let out = stdout
        .take()
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let err = stderr
        .take()
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let err = redact(&err, header);
    if !status.success() {
        return Err(explain(url, err.trim()));
    }
    let wanted = format!("refs/heads/{branch}");
    out.lines()
        .filter_map(|line| line.split_once('\t'))
        .find(|(_, name)| *name == wanted)
        .map(|(sha, _)| sha.to_string())
        .ok_or_else(|| {
            (
                Kind::NotFound,
                format!("{url} has no branch `{branch}` (pass --branch, or push the branch)"),
            )
        })
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = r.read_to_string(&mut text);
        text
    })
}

/// git's complaint in kip's words: the kind and a message naming the repository.
fn explain(url: &str, said: &str) -> (Kind, String) {
    let lower = said.to_lowercase();
    let kind = if lower.contains("authentication failed")
        || lower.contains("could not read username")
        || lower.contains("403")
        || lower.contains("401")
        || lower.contains("permission denied")
    {
        Kind::Denied
    } else if lower.contains("not found") || lower.contains("does not appear to be a git") {
        Kind::NotFound
    } else {
        Kind::Unreachable
    };
    let hint = match kind {
        Kind::Denied => {
            " (check the token: kip app deploy NAME --git URL --git-token TOKEN replaces it)"
        }
        _ => "",
    };
    let said = said.lines().last().unwrap_or("no answer");
    (kind, format!("cannot read {url}: {said}{hint}"))
}

/// `text` with every appearance of the header's secret part replaced, should git ever echo it.
fn redact(text: &str, header: &str) -> String {
    let secret = header.split_whitespace().last().unwrap_or("");
    if secret.len() < 4 {
        return text.to_string();
    }
    text.replace(secret, "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_of_a_token_is_the_scheme_and_host() {
        assert_eq!(
            header_scope("https://github.com/acme/api.git").as_deref(),
            Some("https://github.com/")
        );
        assert_eq!(
            header_scope("http://u:p@127.0.0.1:8080/r.git").as_deref(),
            Some("http://127.0.0.1:8080/")
        );
        assert_eq!(header_scope("git@github.com:acme/api.git"), None);
        assert_eq!(header_scope("git://host/r.git"), None);
        assert_eq!(header_scope("https://"), None);
    }

    #[test]
    fn refusals_say_which_kind() {
        assert!(matches!(
            explain("u", "fatal: Authentication failed for 'u'").0,
            Kind::Denied
        ));
        assert!(matches!(
            explain("u", "fatal: repository 'u' not found").0,
            Kind::NotFound
        ));
        assert!(matches!(
            explain("u", "fatal: unable to connect").0,
            Kind::Unreachable
        ));
        assert_eq!(
            redact("a sekrit b", "Authorization: Basic sekrit"),
            "a [redacted] b"
        );
    }
}
