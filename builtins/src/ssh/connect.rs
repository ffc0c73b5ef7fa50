//! Connecting: TCP, the handshake with the host-key check (asking about an unknown key when
//! there is a terminal), authentication.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{EvalAltResult, Map};
use russh::client::{self, Handle};
use russh::keys::PublicKey;

use super::RhaiResult;
use super::host_key::{Client, Verdict, changed_message, host_key_error, same_key_type};
use super::keys::{Credentials, authenticate, credentials};
use super::known_hosts;
use super::options::ConnectOptions;
use super::{Inner, Session};
use crate::errors::Kind;
use crate::host::{self, Host, UiSettings};

/// Why one connection attempt did not give a session.
enum Refusal {
    Error(Box<EvalAltResult>),
    /// The host is unknown and the user may be asked about this key.
    Ask(PublicKey),
}

impl From<Box<EvalAltResult>> for Refusal {
    fn from(err: Box<EvalAltResult>) -> Self {
        Refusal::Error(err)
    }
}

pub(super) fn unreachable(
    opts: &ConnectOptions,
    cause: impl std::fmt::Display,
) -> Box<EvalAltResult> {
    host::error(
        Kind::Unreachable,
        format!("cannot reach {} over SSH: {cause}", opts.address()),
    )
}

/// One connection: TCP, handshake with the host-key check, authentication.
async fn connect_once(
    opts: &ConnectOptions,
    known_hosts_path: &Path,
    credentials: &Credentials,
    accept: bool,
) -> Result<Handle<Client>, Refusal> {
    let name = known_hosts::host_pattern(&opts.host, opts.port);
    let addresses = tokio::net::lookup_host((opts.host.as_str(), opts.port))
        .await
        .map_err(|err| unreachable(opts, format!("cannot resolve {}: {err}", opts.host)))?;
    // Each address in turn (a name may have IPv6 and IPv4 ones); the last error tells why.
    let mut last_error = format!("{} has no address", opts.host);
    let mut connected = None;
    for address in addresses {
        match tokio::net::TcpStream::connect(address).await {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(err) => last_error = err.to_string(),
        }
    }
    let stream = connected.ok_or_else(|| unreachable(opts, last_error))?;
    let _ = stream.set_nodelay(true);

    let mut config = client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        ..Default::default()
    };
    // Ask for the algorithms of the keys we recorded first, so an honest server presents the
    // key we know (OpenSSH does the same).
    let recorded = known_hosts::recorded_algorithms(known_hosts_path, &opts.host, opts.port);
    if !recorded.is_empty() {
        let mut preferred: Vec<_> = config
            .preferred
            .key
            .iter()
            .filter(|a| recorded.iter().any(|r| same_key_type(r, a)))
            .cloned()
            .collect();
        preferred.extend(
            config
                .preferred
                .key
                .iter()
                .filter(|a| !recorded.iter().any(|r| same_key_type(r, a)))
                .cloned(),
        );
        config.preferred.key = preferred.into();
    }
    let verdict = Arc::new(Mutex::new(None));
    let handler = Client {
        known_hosts: known_hosts_path.to_path_buf(),
        host: opts.host.clone(),
        port: opts.port,
        accept,
        verdict: verdict.clone(),
    };
    let connected = client::connect_stream(Arc::new(config), stream, handler).await;
    let taken = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
    let mut handle = match (connected, taken) {
        (Ok(handle), None) => handle,
        (_, Some(Verdict::Unknown(key))) => return Err(Refusal::Ask(key)),
        (
            _,
            Some(Verdict::Changed {
                line,
                recorded,
                presented,
            }),
        ) => {
            return Err(host_key_error(changed_message(
                &name,
                known_hosts_path,
                line,
                &recorded,
                &presented,
            ))
            .into());
        }
        (_, Some(Verdict::Revoked { line, presented })) => {
            return Err(host_key_error(format!(
                "the host key of {name} ({}) is REVOKED on line {line} of {}; kip did not connect",
                known_hosts::describe(&presented),
                known_hosts_path.display()
            ))
            .into());
        }
        (_, Some(Verdict::Failed(err))) => return Err(host_key_error(err).into()),
        (Err(err), None) => {
            return Err(unreachable(opts, format!("the SSH handshake failed: {err}")).into());
        }
    };
    authenticate(&mut handle, opts, credentials).await?;
    Ok(handle)
}

/// `ssh::connect` with the terminal given: the host-key question is written to `out` and its
/// answer read from `input` (when `host.ui.interactive`). Rust callers and tests use this one.
pub fn connect_with_terminal(
    host: &Host,
    opts: &Map,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
) -> RhaiResult<Session> {
    connect(host, ConnectOptions::parse(opts)?, input, out)
}

pub(super) fn connect(
    host: &Host,
    opts: ConnectOptions,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
) -> RhaiResult<Session> {
    let known_hosts_path = host.kip_home.join("known_hosts");
    let credentials = credentials(&opts, &host.ui)?;
    let timed_out = || {
        unreachable(
            &opts,
            format!("no answer within {}s", opts.timeout.as_secs()),
        )
    };
    let attempt = |accept: bool| {
        host.block_on(async {
            tokio::time::timeout(
                opts.timeout,
                connect_once(&opts, &known_hosts_path, &credentials, accept),
            )
            .await
        })
    };
    let handle = match attempt(opts.accept_host_key).map_err(|_| timed_out())? {
        Ok(handle) => handle,
        Err(Refusal::Error(err)) => return Err(err),
        Err(Refusal::Ask(key)) => {
            let name = known_hosts::host_pattern(&opts.host, opts.port);
            let described = known_hosts::describe(&key);
            if !host.ui.interactive {
                return Err(host_key_error(format!(
                    "the authenticity of host {name} cannot be established: it presents \
                     {described}, which is not in {}; refusing without a terminal. Check the \
                     fingerprint on the server (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) \
                     and pass --accept-host-key (the `accept_host_key` option) to trust it",
                    known_hosts_path.display()
                )));
            }
            let question = format!(
                "The authenticity of host {name} cannot be established.\n{described}.\n\
                 Trust it and record it in {}? [y/N] ",
                known_hosts_path.display()
            );
            // `--yes` answers confirmations, not this: trusting a host is its own decision.
            let ui = UiSettings {
                yes: false,
                ..host.ui.clone()
            };
            let trusted = crate::ui::confirm_with(
                &ui,
                "trust the host key",
                &question,
                crate::ui::Expect::Yes,
                input,
                out,
            )?;
            if !trusted {
                return Err(host_key_error(format!(
                    "the host key of {name} ({described}) was not trusted; kip did not connect \
                     and recorded nothing"
                )));
            }
            known_hosts::record(&known_hosts_path, &opts.host, opts.port, &key)
                .map_err(host_key_error)?;
            match attempt(false).map_err(|_| timed_out())? {
                Ok(handle) => handle,
                Err(Refusal::Error(err)) => return Err(err),
                Err(Refusal::Ask(_)) => {
                    return Err(host_key_error(format!(
                        "the host key of {name} changed while connecting; kip did not connect"
                    )));
                }
            }
        }
    };
    Ok(Session(Arc::new(Inner {
        host: opts.host,
        port: opts.port,
        user: opts.user,
        exec_timeout: opts.exec_timeout,
        handle: Mutex::new(Some(Arc::new(handle))),
    })))
}

pub(super) fn close(host: &Host, session: &Session) {
    let handle = session
        .0
        .handle
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(handle) = handle {
        host.block_on(async {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                handle.disconnect(russh::Disconnect::ByApplication, "", "en"),
            )
            .await;
        });
    }
}
