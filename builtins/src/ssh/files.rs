//! Files over the session's exec channel (`cat` reading stdin or writing stdout, not SFTP):
//! bytes exact, no subsystem needed, and through `sudo` for root-owned paths.

use rhai::Map;

use super::RhaiResult;
use super::Session;
use super::commands::{ExecOptions, Mode, Output, execute, shell_quote, tail};
use super::options::{Options, invalid};
use crate::errors::Kind;
use crate::host::{self, Host};

pub(super) struct FileOptions {
    pub(super) sudo: bool,
}

impl FileOptions {
    pub(super) fn parse(what: &str, map: &Map) -> RhaiResult<FileOptions> {
        let o = Options::new(what, map, &["sudo"])?;
        Ok(FileOptions {
            sudo: o.bool("sudo")?,
        })
    }
}

fn check_remote_path(what: &str, path: &str) -> RhaiResult<()> {
    if path.is_empty() || path.ends_with('/') || path.contains('\0') {
        return Err(invalid(format!(
            "{what}: `{path}` is not a file path on the server"
        )));
    }
    Ok(())
}

/// Writes `bytes` to `remote_path` with `mode`: into a temporary file beside it, then renamed,
/// so a reader never sees half a file.
pub(super) fn upload(
    host: &Host,
    session: &Session,
    bytes: Vec<u8>,
    remote_path: &str,
    mode: i64,
    opts: FileOptions,
) -> RhaiResult<()> {
    check_remote_path("ssh::upload", remote_path)?;
    if !(0..=0o7777).contains(&mode) {
        return Err(invalid(format!(
            "ssh::upload: mode {mode} is not a file mode; write it in octal, like 0o644"
        )));
    }
    let path = shell_quote(remote_path);
    let temporary = shell_quote(&format!("{remote_path}.kip-upload"));
    let command = format!(
        "umask 077 && cat > {temporary} && chmod {mode:o} {temporary} && mv -f {temporary} {path}"
    );
    let exec = ExecOptions {
        sudo: opts.sudo,
        stdin: Some(bytes),
        timeout: None,
    };
    let output = execute(host, session, &command, &exec, Mode::Collect)?;
    file_result(session, "write", remote_path, output).map(|_| ())
}

/// The output of a file transfer command, or the `failed` error naming the file.
fn file_result(
    session: &Session,
    verb: &str,
    remote_path: &str,
    output: Output,
) -> RhaiResult<Output> {
    if output.status == 0 && output.signal.is_none() {
        return Ok(output);
    }
    let mut map = Map::new();
    let stderr = tail(&output.stderr);
    map.insert("kind".into(), Kind::Failed.name().into());
    map.insert(
        "message".into(),
        format!(
            "cannot {verb} {remote_path} on {}: {}",
            session.target(),
            if stderr.is_empty() {
                format!("status {}", output.status)
            } else {
                stderr.clone()
            }
        )
        .into(),
    );
    map.insert("status".into(), output.status.into());
    map.insert("stderr".into(), stderr.into());
    Err(host::error_map(map))
}

pub(super) fn download(
    host: &Host,
    session: &Session,
    remote_path: &str,
    opts: FileOptions,
) -> RhaiResult<Vec<u8>> {
    check_remote_path("ssh::download", remote_path)?;
    let exec = ExecOptions {
        sudo: opts.sudo,
        stdin: None,
        timeout: None,
    };
    let command = format!("cat -- {}", shell_quote(remote_path));
    let output = execute(host, session, &command, &exec, Mode::Collect)?;
    file_result(session, "read", remote_path, output).map(|output| output.stdout)
}

pub(super) fn read_local(path: &str) -> RhaiResult<Vec<u8>> {
    std::fs::read(path).map_err(|err| host::error(Kind::Io, format!("cannot read {path}: {err}")))
}

pub(super) fn write_local(path: &str, bytes: &[u8]) -> RhaiResult<()> {
    std::fs::write(path, bytes)
        .map_err(|err| host::error(Kind::Io, format!("cannot write {path}: {err}")))
}
