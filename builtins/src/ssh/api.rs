//! The `ssh::…` functions scripts call; the work is done in the other files of this module.

use std::sync::Arc;

use rhai::{Blob, Map, NativeCallContext};

use super::RhaiResult;
use super::Session;
use super::commands::{ExecOptions, Mode, execute, result_map, run_checked, shell_quote};
use super::connect::{close, connect};
use super::files::{FileOptions, download, read_local, upload, write_local};
use super::options::ConnectOptions;
use crate::host::{self, Host};

fn host_of(ctx: &NativeCallContext) -> RhaiResult<Arc<Host>> {
    host::host(ctx)
}

#[rhai::plugin::export_module]
pub mod ssh_module {
    use super::*;

    /// A connected SSH session, from `ssh::connect`.
    pub type SshSession = super::Session;

    /// Connects and logs in; returns a session for the other `ssh::` functions. Options:
    /// `host` (required), `port` (22), `user` ("root"), `key` (a private key file; without it
    /// the SSH agent when `SSH_AUTH_SOCK` is set, else `~/.ssh/id_ed25519`, `id_ecdsa`,
    /// `id_rsa`), `passphrase` (for an encrypted key; asked on the terminal when missing and
    /// there is one), `accept_host_key` (trust an unknown host key without asking),
    /// `timeout_secs` (15, for connecting), `exec_timeout_secs` (600, for each command; 0 for
    /// none).
    ///
    /// The server's host key is checked against `known_hosts` in the kip home (OpenSSH format,
    /// `[host]:port` for ports other than 22). An unknown key is shown with its SHA256
    /// fingerprint and asked about (without a terminal: refused unless `accept_host_key`;
    /// `--yes` does not trust hosts), then recorded. A CHANGED key is refused, never connected.
    ///
    /// Raises `unreachable`, `denied` (reason `host-key`), `denied` (reason `auth`) or `invalid`.
    ///
    /// `let s = ssh::connect(#{ host: "203.0.113.10", user: "ubuntu", key: "~/.ssh/id_ed25519" });`
    #[rhai_fn(return_raw)]
    pub fn connect(ctx: NativeCallContext, opts: Map) -> RhaiResult<SshSession> {
        crate::host::at_call(ctx.call_position(), || {
            host_of(&ctx)?.reach.everything("ssh::connect")?;
            let options = ConnectOptions::parse(&opts)?;
            let mut stdin = std::io::stdin().lock();
            super::connect(
                &*host_of(&ctx)?,
                options,
                &mut stdin,
                &mut std::io::stderr(),
            )
        })
    }

    /// Runs `command` (through the login shell of the user) and returns
    /// `#{ status, stdout, stderr }` whatever its exit status; `signal` is added when a signal
    /// ended it. Output is decoded as UTF-8 (invalid bytes replaced).
    ///
    /// Raises `timeout` past the session's `exec_timeout_secs` (the session stays usable; the
    /// command is sent SIGKILL, which OpenSSH delivers only for non-root logins), `unreachable`
    /// when the connection is lost.
    ///
    /// `let r = ssh::exec(s, "uname -m"); if r.status == 0 { print(r.stdout) }`
    #[rhai_fn(return_raw)]
    pub fn exec(ctx: NativeCallContext, session: SshSession, command: &str) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let output = execute(
                &*host_of(&ctx)?,
                &session,
                command,
                &ExecOptions::plain(),
                Mode::Collect,
            )?;
            Ok(result_map(output))
        })
    }

    /// `ssh::exec` with options: `sudo` (run as root, see `ssh::sudo`), `stdin` (a string or
    /// blob fed to the command), `timeout_secs` (this command's limit; 0 for none).
    ///
    /// Raises like `ssh::exec`, and `denied` (reason `sudo`) when sudo itself refuses.
    ///
    /// `let r = ssh::exec(s, "sh -s", #{ stdin: "echo hi", timeout_secs: 30 });`
    #[rhai_fn(name = "exec", return_raw)]
    pub fn exec_with(
        ctx: NativeCallContext,
        session: SshSession,
        command: &str,
        opts: Map,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = ExecOptions::parse("ssh::exec", &opts)?;
            let output = execute(&*host_of(&ctx)?, &session, command, &opts, Mode::Collect)?;
            Ok(result_map(output))
        })
    }

    /// Runs `command`, printing its output line by line as it arrives (stdout to stdout,
    /// stderr to stderr); returns the exit status (-1 when a signal ended it).
    ///
    /// Raises `timeout` or `unreachable` like `ssh::exec`.
    ///
    /// `let status = ssh::exec_stream(s, "apt-get update");`
    #[rhai_fn(return_raw)]
    pub fn exec_stream(
        ctx: NativeCallContext,
        session: SshSession,
        command: &str,
    ) -> RhaiResult<i64> {
        crate::host::at_call(ctx.call_position(), || {
            let output = execute(
                &*host_of(&ctx)?,
                &session,
                command,
                &ExecOptions::plain(),
                Mode::Stream,
            )?;
            Ok(output.status)
        })
    }

    /// `ssh::exec_stream` with the options of `ssh::exec` (`sudo`, `stdin`, `timeout_secs`).
    ///
    /// `let status = ssh::exec_stream(s, "sh /tmp/install-k3s.sh", #{ sudo: true, timeout_secs: 1800 });`
    #[rhai_fn(name = "exec_stream", return_raw)]
    pub fn exec_stream_with(
        ctx: NativeCallContext,
        session: SshSession,
        command: &str,
        opts: Map,
    ) -> RhaiResult<i64> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = ExecOptions::parse("ssh::exec_stream", &opts)?;
            let output = execute(&*host_of(&ctx)?, &session, command, &opts, Mode::Stream)?;
            Ok(output.status)
        })
    }

    /// Runs `command` and returns its stdout; a non-zero exit raises.
    ///
    /// Raises `failed` (with `status` and the tail of `stderr` in the error and its message),
    /// `timeout`, `unreachable`.
    ///
    /// `let release = ssh::run(s, "cat /etc/os-release");`
    #[rhai_fn(return_raw)]
    pub fn run(ctx: NativeCallContext, session: SshSession, command: &str) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let output = run_checked(&*host_of(&ctx)?, &session, command, &ExecOptions::plain())?;
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        })
    }

    /// `ssh::run` with the options of `ssh::exec` (`sudo`, `stdin`, `timeout_secs`).
    ///
    /// `ssh::run(s, "tee /tmp/note", #{ stdin: "hello\n" });`
    #[rhai_fn(name = "run", return_raw)]
    pub fn run_with(
        ctx: NativeCallContext,
        session: SshSession,
        command: &str,
        opts: Map,
    ) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = ExecOptions::parse("ssh::run", &opts)?;
            let output = run_checked(&*host_of(&ctx)?, &session, command, &opts)?;
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        })
    }

    /// Runs `command` as root and returns its stdout, like `ssh::run`: directly when the
    /// session's user is root, else as `sudo -n -- sh -c '<command>'` (passwordless sudo; sudo
    /// never waits for a password).
    ///
    /// Raises `denied` (reason `sudo`) when the user may not use sudo without a password or sudo is missing,
    /// else like `ssh::run`.
    ///
    /// `ssh::sudo(s, "systemctl restart k3s");`
    #[rhai_fn(return_raw)]
    pub fn sudo(ctx: NativeCallContext, session: SshSession, command: &str) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = ExecOptions {
                sudo: true,
                ..ExecOptions::plain()
            };
            let output = run_checked(&*host_of(&ctx)?, &session, command, &opts)?;
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        })
    }

    /// Writes `content` (a string) to `remote_path` on the server with `mode` (write it in
    /// octal: `0o644`), replacing the file at once (a temporary file beside it, renamed). The
    /// folder must exist.
    ///
    /// Raises `failed` when the server cannot write it, `invalid` for a bad path or mode.
    ///
    /// `ssh::upload(s, "hello\n", "/tmp/hello.txt", 0o644);`
    #[rhai_fn(return_raw)]
    pub fn upload(
        ctx: NativeCallContext,
        session: SshSession,
        content: &str,
        remote_path: &str,
        mode: i64,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = FileOptions { sudo: false };
            let bytes = content.as_bytes().to_vec();
            super::upload(&*host_of(&ctx)?, &session, bytes, remote_path, mode, opts)
        })
    }

    /// `ssh::upload` with options: `sudo` (write as root, for paths the user cannot write).
    ///
    /// `ssh::upload(s, config_yaml, "/etc/rancher/k3s/config.yaml", 0o600, #{ sudo: true });`
    #[rhai_fn(name = "upload", return_raw)]
    pub fn upload_with(
        ctx: NativeCallContext,
        session: SshSession,
        content: &str,
        remote_path: &str,
        mode: i64,
        opts: Map,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = FileOptions::parse("ssh::upload", &opts)?;
            let bytes = content.as_bytes().to_vec();
            super::upload(&*host_of(&ctx)?, &session, bytes, remote_path, mode, opts)
        })
    }

    /// `ssh::upload` of bytes (a blob), exactly as they are.
    ///
    /// `ssh::upload(s, blob(16, 0), "/tmp/zeros", 0o600);`
    #[rhai_fn(name = "upload", return_raw)]
    pub fn upload_blob(
        ctx: NativeCallContext,
        session: SshSession,
        content: Blob,
        remote_path: &str,
        mode: i64,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = FileOptions { sudo: false };
            super::upload(&*host_of(&ctx)?, &session, content, remote_path, mode, opts)
        })
    }

    /// `ssh::upload` of bytes (a blob) with options (`sudo`).
    ///
    /// `ssh::upload(s, bytes, "/usr/local/bin/tool", 0o755, #{ sudo: true });`
    #[rhai_fn(name = "upload", return_raw)]
    pub fn upload_blob_with(
        ctx: NativeCallContext,
        session: SshSession,
        content: Blob,
        remote_path: &str,
        mode: i64,
        opts: Map,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = FileOptions::parse("ssh::upload", &opts)?;
            super::upload(&*host_of(&ctx)?, &session, content, remote_path, mode, opts)
        })
    }

    /// Copies the local file `local_path` to `remote_path` on the server with `mode`, bytes
    /// exact, like `ssh::upload`.
    ///
    /// Raises `io` when the local file cannot be read, else like `ssh::upload`.
    ///
    /// `ssh::upload_file(s, "dist/k3s-install.sh", "/tmp/k3s-install.sh", 0o755);`
    #[rhai_fn(return_raw)]
    pub fn upload_file(
        ctx: NativeCallContext,
        session: SshSession,
        local_path: &str,
        remote_path: &str,
        mode: i64,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let bytes = read_local(local_path)?;
            let opts = FileOptions { sudo: false };
            super::upload(&*host_of(&ctx)?, &session, bytes, remote_path, mode, opts)
        })
    }

    /// `ssh::upload_file` with options (`sudo`).
    ///
    /// `ssh::upload_file(s, "k3s", "/usr/local/bin/k3s", 0o755, #{ sudo: true });`
    #[rhai_fn(name = "upload_file", return_raw)]
    pub fn upload_file_with(
        ctx: NativeCallContext,
        session: SshSession,
        local_path: &str,
        remote_path: &str,
        mode: i64,
        opts: Map,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let bytes = read_local(local_path)?;
            let opts = FileOptions::parse("ssh::upload_file", &opts)?;
            super::upload(&*host_of(&ctx)?, &session, bytes, remote_path, mode, opts)
        })
    }

    /// The content of `remote_path` on the server, as a string (invalid UTF-8 replaced; use
    /// `ssh::download_file` for binary files).
    ///
    /// Raises `failed` when the file cannot be read (with the server's reason).
    ///
    /// `let hostname = ssh::download(s, "/etc/hostname");`
    #[rhai_fn(return_raw)]
    pub fn download(
        ctx: NativeCallContext,
        session: SshSession,
        remote_path: &str,
    ) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = FileOptions { sudo: false };
            let bytes = super::download(&*host_of(&ctx)?, &session, remote_path, opts)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        })
    }

    /// `ssh::download` with options: `sudo` (read as root).
    ///
    /// `let kubeconfig = ssh::download(s, "/etc/rancher/k3s/k3s.yaml", #{ sudo: true });`
    #[rhai_fn(name = "download", return_raw)]
    pub fn download_with(
        ctx: NativeCallContext,
        session: SshSession,
        remote_path: &str,
        opts: Map,
    ) -> RhaiResult<String> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = FileOptions::parse("ssh::download", &opts)?;
            let bytes = super::download(&*host_of(&ctx)?, &session, remote_path, opts)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        })
    }

    /// Copies `remote_path` on the server to the local file `local_path`, bytes exact.
    ///
    /// Raises `failed` when the remote file cannot be read, `io` when the local one cannot be
    /// written.
    ///
    /// `ssh::download_file(s, "/var/log/k3s.log", "k3s.log");`
    #[rhai_fn(return_raw)]
    pub fn download_file(
        ctx: NativeCallContext,
        session: SshSession,
        remote_path: &str,
        local_path: &str,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = FileOptions { sudo: false };
            let bytes = super::download(&*host_of(&ctx)?, &session, remote_path, opts)?;
            write_local(local_path, &bytes)
        })
    }

    /// `ssh::download_file` with options (`sudo`).
    ///
    /// `ssh::download_file(s, "/etc/rancher/k3s/k3s.yaml", "k3s.yaml", #{ sudo: true });`
    #[rhai_fn(name = "download_file", return_raw)]
    pub fn download_file_with(
        ctx: NativeCallContext,
        session: SshSession,
        remote_path: &str,
        local_path: &str,
        opts: Map,
    ) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            let opts = FileOptions::parse("ssh::download_file", &opts)?;
            let bytes = super::download(&*host_of(&ctx)?, &session, remote_path, opts)?;
            write_local(local_path, &bytes)
        })
    }

    /// Closes the session (also closed when the last copy of it is dropped); using it
    /// afterwards raises `failed`. Closing twice is fine.
    ///
    /// `ssh::close(s);`
    #[rhai_fn(return_raw)]
    pub fn close(ctx: NativeCallContext, session: SshSession) -> RhaiResult<()> {
        crate::host::at_call(ctx.call_position(), || {
            super::close(&*host_of(&ctx)?, &session);
            Ok(())
        })
    }

    /// `'text'`, quoted for the server's POSIX shell, to build commands from values.
    ///
    /// `ssh::run(s, "cat " + ssh::quote(path));`
    pub fn quote(text: &str) -> String {
        shell_quote(text)
    }

    /// The host a session is connected to.
    ///
    /// `let s = ssh::connect(opts); print(s.host);`
    #[rhai_fn(get = "host", pure)]
    pub fn get_host(session: &mut SshSession) -> String {
        session.0.host.clone()
    }

    /// The port a session is connected to.
    ///
    /// `let s = ssh::connect(opts); print(s.port);`
    #[rhai_fn(get = "port", pure)]
    pub fn get_port(session: &mut SshSession) -> i64 {
        i64::from(session.0.port)
    }

    /// The user a session is logged in as.
    ///
    /// `let s = ssh::connect(opts); if s.user != "root" { ssh::sudo(s, "id -u") }`
    #[rhai_fn(get = "user", pure)]
    pub fn get_user(session: &mut SshSession) -> String {
        session.0.user.clone()
    }

    /// `ssh://user@host:port`, how a session prints.
    ///
    /// `let s = ssh::connect(opts); print(s);  // ssh://root@203.0.113.10:22`
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn describe(session: &mut SshSession) -> String {
        format!("ssh://{}", session.target())
    }
}
