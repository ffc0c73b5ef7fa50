//! Commands on the server: run with their exit status, output collected or streamed line by
//! line, through `sudo -n` for a non-root user, with a time limit.

use std::io::Write as _;
use std::time::Duration;

use rhai::{EvalAltResult, Map};
use russh::ChannelMsg;
use russh::client;

use super::RhaiResult;
use super::options::Options;
use super::{Session, host_port};
use crate::errors::Kind;
use crate::host::{self, Host};

/// How much of stderr a failure quotes.
const TAIL_LINES: usize = 10;

/// How much stderr a streamed command keeps for its error message.
const STREAM_STDERR_KEEP: usize = 16 * 1024;

/// Splits a byte stream into whole lines (each with its `\n`), keeping a partial last line until
/// more arrives or [`Lines::finish`].
#[derive(Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// The complete lines `chunk` finishes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for &byte in chunk {
            self.partial.push(byte);
            if byte == b'\n' {
                lines.push(std::mem::take(&mut self.partial));
            }
        }
        lines
    }

    /// What is left, with a `\n` added, if anything.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.partial.is_empty() {
            None
        } else {
            let mut line = std::mem::take(&mut self.partial);
            line.push(b'\n');
            Some(line)
        }
    }
}

/// Where a command's output goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Kept in memory.
    Collect,
    /// Printed line by line (stdout to stdout, stderr to stderr); stderr's tail kept.
    Stream,
}

pub(super) struct Output {
    pub(super) status: i64,
    pub(super) signal: Option<String>,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

pub(super) struct ExecOptions {
    pub(super) sudo: bool,
    pub(super) stdin: Option<Vec<u8>>,
    pub(super) timeout: Option<Option<Duration>>,
}

impl ExecOptions {
    pub(super) fn parse(what: &str, map: &Map) -> RhaiResult<ExecOptions> {
        let o = Options::new(what, map, &["sudo", "stdin", "timeout_secs"])?;
        Ok(ExecOptions {
            sudo: o.bool("sudo")?,
            stdin: o.bytes("stdin")?,
            timeout: o.seconds("timeout_secs")?,
        })
    }

    pub(super) fn plain() -> ExecOptions {
        ExecOptions {
            sudo: false,
            stdin: None,
            timeout: None,
        }
    }
}

/// `'text'` for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `command` as root: as it is for root, else through `sudo -n` (never asks a password).
fn privileged(session: &Session, command: &str) -> String {
    if session.0.user == "root" {
        command.to_owned()
    } else {
        format!("sudo -n -- sh -c {}", shell_quote(command))
    }
}

/// `command` shortened for a message.
fn shown(command: &str) -> String {
    let one_line = command.replace('\n', "; ");
    if one_line.chars().count() > 80 {
        format!("{}…", one_line.chars().take(79).collect::<String>())
    } else {
        one_line
    }
}

/// The last lines of `stderr`, trimmed.
pub(super) fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

async fn pump(
    channel: &mut russh::Channel<client::Msg>,
    mode: Mode,
) -> Result<Output, russh::Error> {
    let mut output = Output {
        status: -1,
        signal: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let (mut out_lines, mut err_lines) = (Lines::default(), Lines::default());
    let print = |to_stderr: bool, lines: Vec<Vec<u8>>| {
        // A closed terminal must not stop the remote command: printing is best effort.
        let bytes: Vec<u8> = lines.concat();
        if to_stderr {
            let _ = std::io::stderr().lock().write_all(&bytes);
        } else {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
        }
    };
    let mut exit_seen = false;
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Data { data } => match mode {
                Mode::Collect => output.stdout.extend_from_slice(&data),
                Mode::Stream => print(false, out_lines.push(&data)),
            },
            ChannelMsg::ExtendedData { data, ext: 1 } => {
                output.stderr.extend_from_slice(&data);
                if mode == Mode::Stream {
                    print(true, err_lines.push(&data));
                    if output.stderr.len() > STREAM_STDERR_KEEP * 2 {
                        output
                            .stderr
                            .drain(..output.stderr.len() - STREAM_STDERR_KEEP);
                    }
                }
            }
            ChannelMsg::ExitStatus { exit_status } => {
                output.status = i64::from(exit_status);
                exit_seen = true;
            }
            ChannelMsg::ExitSignal { signal_name, .. } => {
                output.signal = Some(format!("{signal_name:?}"));
                exit_seen = true;
            }
            // The server refused the exec request itself (it closes nothing then).
            ChannelMsg::Failure if !exit_seen => {
                output
                    .stderr
                    .extend_from_slice(b"the server refused to run the command\n");
                break;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    if mode == Mode::Stream {
        print(false, out_lines.finish().into_iter().collect());
        print(true, err_lines.finish().into_iter().collect());
    }
    if !exit_seen {
        output
            .signal
            .get_or_insert_with(|| "unknown (no exit status)".into());
    }
    Ok(output)
}

/// Runs `command` on `session`, its stdin fed from `opts.stdin` (then closed).
pub(super) fn execute(
    host: &Host,
    session: &Session,
    command: &str,
    opts: &ExecOptions,
    mode: Mode,
) -> RhaiResult<Output> {
    let handle = session.handle()?;
    let command = if opts.sudo {
        privileged(session, command)
    } else {
        command.to_owned()
    };
    let limit = opts.timeout.unwrap_or(session.0.exec_timeout);
    let lost = |err: russh::Error| {
        host::error(
            Kind::Unreachable,
            format!(
                "the SSH connection to {} failed while running `{}`: {err}",
                session.target(),
                shown(&command)
            ),
        )
    };
    let output = host.block_on_interruptible(async {
        let mut channel = handle.channel_open_session().await.map_err(lost)?;
        let work = async {
            channel.exec(true, command.as_bytes()).await?;
            if let Some(stdin) = &opts.stdin {
                channel.data(stdin.as_slice()).await?;
            }
            channel.eof().await?;
            pump(&mut channel, mode).await
        };
        let result = match limit {
            None => Ok(work.await),
            Some(limit) => tokio::time::timeout(limit, work).await,
        };
        match result {
            Ok(output) => output.map_err(lost),
            Err(_) => {
                // Best effort: ask the server to kill the command, then close the channel; the
                // session stays usable. OpenSSH honours the signal only for non-root logins
                // ("session signalling requires privilege separation"): as root the command
                // may run on, detached from us.
                let _ = channel.signal(russh::Sig::KILL).await;
                let _ = channel.close().await;
                Err(host::error(
                    Kind::Timeout,
                    format!(
                        "`{}` on {} did not finish within {}s",
                        shown(&command),
                        session.target(),
                        limit.unwrap_or_default().as_secs()
                    ),
                ))
            }
        }
    })?;
    if opts.sudo && session.0.user != "root" && output.status != 0 {
        sudo_refused(session, &output)?;
    }
    Ok(output)
}

/// The `denied` (reason `sudo`) error when sudo itself, not the command, failed.
fn sudo_refused(session: &Session, output: &Output) -> RhaiResult<()> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let user = &session.0.user;
    let first = stderr.lines().next().unwrap_or("").trim();
    let needs_password = first.starts_with("sudo:")
        && (first.contains("password is required")
            || first.contains("not in the sudoers")
            || first.contains("may not run sudo"));
    if needs_password {
        return Err(host::error_with_reason(
            Kind::Denied,
            "sudo",
            format!(
                "user {user} on {} cannot use sudo without a password ({first}); give it \
                 passwordless sudo (a line `{user} ALL=(ALL) NOPASSWD:ALL` in \
                 /etc/sudoers.d/{user}) or connect as root",
                host_port(&session.0.host, session.0.port)
            ),
        ));
    }
    if output.status == 127 && stderr.contains("sudo") && stderr.contains("not found") {
        return Err(host::error_with_reason(
            Kind::Denied,
            "sudo",
            format!(
                "sudo is not installed on {}; install it or connect as root",
                session.target()
            ),
        ));
    }
    Ok(())
}

pub(super) fn result_map(output: Output) -> Map {
    let mut map = Map::new();
    map.insert("status".into(), output.status.into());
    map.insert(
        "stdout".into(),
        String::from_utf8_lossy(&output.stdout).into_owned().into(),
    );
    map.insert(
        "stderr".into(),
        String::from_utf8_lossy(&output.stderr).into_owned().into(),
    );
    if let Some(signal) = output.signal {
        map.insert("signal".into(), signal.into());
    }
    map
}

/// The `failed` error of a failed command: `kind`, `message`, `status`, `stderr`.
fn failed(session: &Session, command: &str, output: &Output) -> Box<EvalAltResult> {
    let how = match &output.signal {
        Some(signal) => format!("was ended by signal {signal}"),
        None => format!("failed with status {}", output.status),
    };
    let stderr = tail(&output.stderr);
    let mut message = format!("`{}` on {} {how}", shown(command), session.target());
    if !stderr.is_empty() {
        message = format!("{message}:\n{stderr}");
    }
    let mut map = Map::new();
    map.insert("kind".into(), Kind::Failed.name().into());
    map.insert("message".into(), message.into());
    map.insert("status".into(), output.status.into());
    map.insert("stderr".into(), stderr.into());
    host::error_map(map)
}

/// Runs `command`, raising when it fails; its output.
pub(super) fn run_checked(
    host: &Host,
    session: &Session,
    command: &str,
    opts: &ExecOptions,
) -> RhaiResult<Output> {
    let output = execute(host, session, command, opts, Mode::Collect)?;
    if output.status != 0 || output.signal.is_some() {
        return Err(failed(session, command, &output));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_partial_lines_until_finished() {
        let mut lines = Lines::default();
        assert!(lines.push(b"par").is_empty());
        assert_eq!(
            lines.push(b"tial\nnext\nla"),
            vec![b"partial\n".to_vec(), b"next\n".to_vec()]
        );
        assert_eq!(lines.push(b"st"), Vec::<Vec<u8>>::new());
        assert_eq!(lines.finish(), Some(b"last\n".to_vec()));
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = tail(text.as_bytes());
        assert!(tail.starts_with("line 21\n"), "{tail}");
        assert!(tail.ends_with("line 30"), "{tail}");
    }
}
