//! `ssh::…`: sessions to a server over SSH, for `kip install` and host checks. A thin adapter
//! over the russh client (ring crypto): connect with a key file, the SSH agent or the default
//! keys; host keys checked against the kip home's `known_hosts`; commands with their exit
//! status, streamed or collected; sudo for a non-root user; file upload and download.
//!
//! Files travel over the session's exec channel (`cat` on the server reading the channel's
//! stdin or writing its stdout), not SFTP: that needs no subsystem on the server, keeps bytes
//! exact, and works through `sudo` for root-owned paths such as `/etc/rancher/k3s/k3s.yaml`.
//!
//! Errors are maps with a `kind`: `unreachable` (no connection: host, port and cause),
//! `denied` with `reason` `host-key` (unknown key declined, or a CHANGED key), `auth` (the key
//! was refused or cannot be read) or `sudo` (sudo needs a password or is missing), `failed` (a
//! command failed: also `status` and `stderr`), `timeout` (a command ran past its limit),
//! `invalid`.

mod api;
mod commands;
mod connect;
mod files;
mod host_key;
mod keys;
pub mod known_hosts;
mod options;

pub use api::ssh_module;
pub use commands::{Lines, shell_quote};
pub use connect::connect_with_terminal;
pub use host_key::Client;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::EvalAltResult;
use russh::client::Handle;

use crate::errors::Kind;
use crate::host;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

// `Session` is defined here, not in a file of its own: its path, `builtins::ssh::Session`, is
// in the script API's metadata (the custom type `SshSession`).
/// A connected, authenticated SSH session; copies share the connection, which closes with the
/// last copy or at `ssh::close`.
#[derive(Clone)]
pub struct Session(Arc<Inner>);

struct Inner {
    host: String,
    port: u16,
    user: String,
    exec_timeout: Option<Duration>,
    handle: Mutex<Option<Arc<Handle<Client>>>>,
}

impl Session {
    /// `user@host:port`.
    pub fn target(&self) -> String {
        format!("{}@{}", self.0.user, host_port(&self.0.host, self.0.port))
    }

    fn handle(&self) -> RhaiResult<Arc<Handle<Client>>> {
        let guard = self.0.handle.lock().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or_else(|| {
            host::error(
                Kind::Invalid,
                format!("the SSH session to {} is closed", self.target()),
            )
        })
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
