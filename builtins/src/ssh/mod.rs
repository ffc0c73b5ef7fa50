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

pub mod known_hosts;

use crate::errors::Kind;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rhai::{Blob, EvalAltResult, Map, NativeCallContext};
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use crate::host::{self, Host, UiSettings};
use known_hosts::Status;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// How long connecting (TCP, handshake and authentication) may take unless `timeout_secs`.
const CONNECT_TIMEOUT: u64 = 15;
/// How long one command may run unless `exec_timeout_secs` or the call's `timeout_secs`.
const EXEC_TIMEOUT: u64 = 600;
/// How much of stderr a failure quotes.
const TAIL_LINES: usize = 10;
/// How much stderr a streamed command keeps for its error message.
const STREAM_STDERR_KEEP: usize = 16 * 1024;

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

// ---------------------------------------------------------------------------------------------
// Options

fn invalid(message: String) -> Box<EvalAltResult> {
    host::error(Kind::Invalid, message)
}

/// Reads a map of options, refusing keys it does not know (a typo must not pass silently).
struct Options<'a> {
    what: &'a str,
    map: &'a Map,
}

impl<'a> Options<'a> {
    fn new(what: &'a str, map: &'a Map, known: &[&str]) -> RhaiResult<Options<'a>> {
        if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(invalid(format!(
                "{what}: unknown option `{key}`; known: {}",
                known.join(", ")
            )));
        }
        Ok(Options { what, map })
    }

    fn wrong(&self, key: &str, wanted: &str) -> Box<EvalAltResult> {
        invalid(format!("{}: option `{key}` must be {wanted}", self.what))
    }

    fn string(&self, key: &str) -> RhaiResult<Option<String>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => v
                .clone()
                .into_string()
                .map(Some)
                .map_err(|_| self.wrong(key, "a string")),
        }
    }

    fn int(&self, key: &str) -> RhaiResult<Option<i64>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => v
                .as_int()
                .map(Some)
                .map_err(|_| self.wrong(key, "an integer")),
        }
    }

    fn bool(&self, key: &str) -> RhaiResult<bool> {
        match self.map.get(key) {
            None => Ok(false),
            Some(v) if v.is_unit() => Ok(false),
            Some(v) => v.as_bool().map_err(|_| self.wrong(key, "true or false")),
        }
    }

    /// Seconds; 0 means no limit.
    fn seconds(&self, key: &str) -> RhaiResult<Option<Option<Duration>>> {
        match self.int(key)? {
            None => Ok(None),
            Some(0) => Ok(Some(None)),
            Some(s) if s > 0 => Ok(Some(Some(Duration::from_secs(s as u64)))),
            Some(_) => Err(self.wrong(key, "a number of seconds (0 for no limit)")),
        }
    }

    fn bytes(&self, key: &str) -> RhaiResult<Option<Vec<u8>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) if v.is_blob() => Ok(v.clone().try_cast::<Blob>()),
            Some(v) => v
                .clone()
                .into_string()
                .map(|s| Some(s.into_bytes()))
                .map_err(|_| self.wrong(key, "a string or a blob")),
        }
    }
}

struct ConnectOptions {
    host: String,
    port: u16,
    user: String,
    key: Option<PathBuf>,
    passphrase: Option<String>,
    accept_host_key: bool,
    timeout: Duration,
    exec_timeout: Option<Duration>,
}

impl ConnectOptions {
    fn parse(map: &Map) -> RhaiResult<ConnectOptions> {
        let o = Options::new(
            "ssh::connect",
            map,
            &[
                "host",
                "port",
                "user",
                "key",
                "passphrase",
                "accept_host_key",
                "timeout_secs",
                "exec_timeout_secs",
            ],
        )?;
        let host = o
            .string("host")?
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| invalid("ssh::connect: option `host` is required".into()))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let port = match o.int("port")? {
            None => 22,
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| o.wrong("port", "between 1 and 65535"))?,
        };
        let user = o.string("user")?.unwrap_or_else(|| "root".into());
        if user.is_empty() {
            return Err(o.wrong("user", "a user name"));
        }
        let timeout = match o.seconds("timeout_secs")? {
            None => Some(Duration::from_secs(CONNECT_TIMEOUT)),
            Some(t) => t,
        }
        .ok_or_else(|| o.wrong("timeout_secs", "at least 1"))?;
        Ok(ConnectOptions {
            host: host.to_owned(),
            port,
            user,
            key: o.string("key")?.filter(|k| !k.is_empty()).map(expand_home),
            passphrase: o.string("passphrase")?,
            accept_host_key: o.bool("accept_host_key")?,
            timeout,
            exec_timeout: o
                .seconds("exec_timeout_secs")?
                .unwrap_or(Some(Duration::from_secs(EXEC_TIMEOUT))),
        })
    }

    fn address(&self) -> String {
        host_port(&self.host, self.port)
    }
}

fn expand_home(path: String) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// The keys to offer, in order.
enum Credentials {
    Keys(Vec<(PathBuf, Arc<PrivateKey>)>),
    Agent,
}

fn auth_error(message: String) -> Box<EvalAltResult> {
    host::error_with_reason(Kind::Denied, "auth", message)
}

/// Reads a private key, asking for its passphrase on the terminal when it is encrypted, none
/// was given and we may ask. `None` when it is encrypted and we may not ask and `quiet`.
fn load_key(
    path: &Path,
    passphrase: Option<&str>,
    ui: &UiSettings,
    quiet: bool,
) -> RhaiResult<Option<PrivateKey>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|err| auth_error(format!("cannot read the SSH key {shown}: {err}")))?;
    let unreadable = |err: russh::keys::Error| {
        auth_error(format!(
            "cannot read the SSH key {shown}: {err} (kip reads OpenSSH and PEM private keys: \
             ed25519, ecdsa, rsa)"
        ))
    };
    let wrong_passphrase = |err: russh::keys::Error| {
        auth_error(format!(
            "cannot decrypt the SSH key {shown}: {err}; is the passphrase right?"
        ))
    };
    match russh::keys::decode_secret_key(&text, passphrase) {
        Ok(key) => Ok(Some(key)),
        Err(russh::keys::Error::KeyIsEncrypted) if passphrase.is_none() => {
            if !ui.interactive {
                if quiet {
                    return Ok(None);
                }
                return Err(auth_error(format!(
                    "the SSH key {shown} is encrypted and there is no terminal to ask its \
                     passphrase: pass it with --ssh-passphrase (the `passphrase` option), or \
                     add the key to ssh-agent and leave out the key"
                )));
            }
            let prompt = format!("Enter passphrase for key {shown}: ");
            let answer = rpassword::prompt_password(prompt).map_err(|err| {
                auth_error(format!("cannot ask the passphrase of {shown}: {err}"))
            })?;
            russh::keys::decode_secret_key(&text, Some(&answer))
                .map(Some)
                .map_err(wrong_passphrase)
        }
        Err(err) if passphrase.is_some() => Err(wrong_passphrase(err)),
        Err(err) => Err(unreadable(err)),
    }
}

/// The given key; else the agent when `SSH_AUTH_SOCK` is set; else `~/.ssh/id_ed25519`,
/// `id_ecdsa`, `id_rsa` (those that exist).
fn credentials(opts: &ConnectOptions, ui: &UiSettings) -> RhaiResult<Credentials> {
    if let Some(path) = &opts.key {
        let key = load_key(path, opts.passphrase.as_deref(), ui, false)?
            .ok_or_else(|| auth_error(format!("cannot read {}", path.display())))?;
        return Ok(Credentials::Keys(vec![(path.clone(), Arc::new(key))]));
    }
    if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty()) {
        return Ok(Credentials::Agent);
    }
    let mut keys = Vec::new();
    if let Some(home) = std::env::home_dir() {
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let path = home.join(".ssh").join(name);
            if path.exists()
                && let Some(key) = load_key(&path, opts.passphrase.as_deref(), ui, true)?
            {
                keys.push((path, Arc::new(key)));
            }
        }
    }
    if keys.is_empty() {
        return Err(auth_error(format!(
            "no SSH key to log in to {} as {}: pass one with --ssh-key (the `key` option), or \
             start ssh-agent (SSH_AUTH_SOCK) holding your key",
            opts.address(),
            opts.user
        )));
    }
    Ok(Credentials::Keys(keys))
}

// ---------------------------------------------------------------------------------------------
// Connecting

/// What the host-key check decided when it did not simply accept.
enum Verdict {
    Unknown(PublicKey),
    Changed {
        line: usize,
        recorded: PublicKey,
        presented: PublicKey,
    },
    Revoked {
        line: usize,
        presented: PublicKey,
    },
    Failed(String),
}

/// The russh handler: checks the server's key against `known_hosts`.
pub struct Client {
    known_hosts: PathBuf,
    host: String,
    port: u16,
    accept: bool,
    verdict: Arc<Mutex<Option<Verdict>>>,
}

impl Client {
    fn decide(&self, presented: PublicKey) -> Result<bool, Box<Verdict>> {
        match known_hosts::check(&self.known_hosts, &self.host, self.port, &presented) {
            Err(err) => Err(Box::new(Verdict::Failed(err))),
            Ok(Status::Known) => Ok(true),
            Ok(Status::Changed { line, recorded }) => Err(Box::new(Verdict::Changed {
                line,
                recorded,
                presented,
            })),
            Ok(Status::Revoked { line }) => Err(Box::new(Verdict::Revoked { line, presented })),
            Ok(Status::Unknown) if self.accept => {
                known_hosts::record(&self.known_hosts, &self.host, self.port, &presented)
                    .map_err(|err| Box::new(Verdict::Failed(err)))?;
                Ok(true)
            }
            Ok(Status::Unknown) => Err(Box::new(Verdict::Unknown(presented))),
        }
    }
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        match self.decide(presented) {
            Ok(accepted) => Ok(accepted),
            Err(verdict) => {
                *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(*verdict);
                Ok(false)
            }
        }
    }
}

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

fn unreachable(opts: &ConnectOptions, cause: impl std::fmt::Display) -> Box<EvalAltResult> {
    host::error(
        Kind::Unreachable,
        format!("cannot reach {} over SSH: {cause}", opts.address()),
    )
}

fn host_key_error(message: String) -> Box<EvalAltResult> {
    host::error_with_reason(Kind::Denied, "host-key", message)
}

fn changed_message(
    name: &str,
    path: &Path,
    line: usize,
    recorded: &PublicKey,
    presented: &PublicKey,
) -> String {
    let file = path.display();
    format!(
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @@@ WARNING: the host key of {name} has CHANGED! @@@\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         Someone could be eavesdropping on you right now (a possible man-in-the-middle attack),\n\
         or the server was reinstalled and has a new host key.\n\
         The server now presents {}; line {line} of {file} records {}.\n\
         kip did not connect. If you know why the key changed, remove line {line} of {file} and \
         connect again.",
        known_hosts::describe(presented),
        known_hosts::describe(recorded),
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

/// Two names of one key type (`rsa-sha2-512` and `ssh-rsa` are both RSA keys).
fn same_key_type(a: &russh::keys::Algorithm, b: &russh::keys::Algorithm) -> bool {
    a == b || (a.clone().is_rsa() && b.clone().is_rsa())
}

async fn authenticate(
    handle: &mut Handle<Client>,
    opts: &ConnectOptions,
    credentials: &Credentials,
) -> RhaiResult<()> {
    let fix = |tried: &str| {
        format!(
            "{} refused {tried} for user {}: add the matching public key to ~{}/.ssh/authorized_keys \
             on the server (ssh-copy-id does it), or pass the right key with --ssh-key and user \
             with --ssh-user",
            opts.address(),
            opts.user,
            opts.user
        )
    };
    let failed = |err: russh::Error| {
        unreachable(
            opts,
            format!("the connection failed while logging in: {err}"),
        )
    };
    match credentials {
        Credentials::Keys(keys) => {
            for (_, key) in keys {
                let hash = if key.algorithm().is_rsa() {
                    match handle.best_supported_rsa_hash().await {
                        Ok(Some(hash)) => hash,
                        _ => Some(HashAlg::Sha256),
                    }
                } else {
                    None
                };
                let offered = PrivateKeyWithHashAlg::new(key.clone(), hash);
                let result = handle
                    .authenticate_publickey(&opts.user, offered)
                    .await
                    .map_err(failed)?;
                if result.success() {
                    return Ok(());
                }
            }
            let tried: Vec<String> = keys
                .iter()
                .map(|(path, _)| path.display().to_string())
                .collect();
            let what = if tried.len() == 1 {
                format!("the key {}", tried[0])
            } else {
                format!("the keys {}", tried.join(", "))
            };
            Err(auth_error(fix(&what)))
        }
        Credentials::Agent => {
            let mut agent = AgentClient::connect_env().await.map_err(|err| {
                auth_error(format!(
                    "cannot use the SSH agent (SSH_AUTH_SOCK): {err}; pass a key with --ssh-key"
                ))
            })?;
            let identities = agent
                .request_identities()
                .await
                .map_err(|err| auth_error(format!("the SSH agent did not list its keys: {err}")))?;
            for identity in identities {
                let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = identity else {
                    continue;
                };
                let hash = if key.algorithm().is_rsa() {
                    match handle.best_supported_rsa_hash().await {
                        Ok(Some(hash)) => hash,
                        _ => Some(HashAlg::Sha256),
                    }
                } else {
                    None
                };
                if let Ok(result) = handle
                    .authenticate_publickey_with(&opts.user, key, hash, &mut agent)
                    .await
                    && result.success()
                {
                    return Ok(());
                }
            }
            Err(auth_error(fix("every key of the SSH agent")))
        }
    }
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

fn connect(
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

// ---------------------------------------------------------------------------------------------
// Commands

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
enum Mode {
    /// Kept in memory.
    Collect,
    /// Printed line by line (stdout to stdout, stderr to stderr); stderr's tail kept.
    Stream,
}

struct Output {
    status: i64,
    signal: Option<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

struct ExecOptions {
    sudo: bool,
    stdin: Option<Vec<u8>>,
    timeout: Option<Option<Duration>>,
}

impl ExecOptions {
    fn parse(what: &str, map: &Map) -> RhaiResult<ExecOptions> {
        let o = Options::new(what, map, &["sudo", "stdin", "timeout_secs"])?;
        Ok(ExecOptions {
            sudo: o.bool("sudo")?,
            stdin: o.bytes("stdin")?,
            timeout: o.seconds("timeout_secs")?,
        })
    }

    fn plain() -> ExecOptions {
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
fn tail(stderr: &[u8]) -> String {
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
fn execute(
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

fn result_map(output: Output) -> Map {
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
fn run_checked(
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

// ---------------------------------------------------------------------------------------------
// Files

struct FileOptions {
    sudo: bool,
}

impl FileOptions {
    fn parse(what: &str, map: &Map) -> RhaiResult<FileOptions> {
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
fn upload(
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

fn download(
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

fn read_local(path: &str) -> RhaiResult<Vec<u8>> {
    std::fs::read(path).map_err(|err| host::error(Kind::Io, format!("cannot read {path}: {err}")))
}

fn write_local(path: &str, bytes: &[u8]) -> RhaiResult<()> {
    std::fs::write(path, bytes)
        .map_err(|err| host::error(Kind::Io, format!("cannot write {path}: {err}")))
}

fn close(host: &Host, session: &Session) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::Dynamic;

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

    #[test]
    fn connect_options_default_and_refuse_typos() {
        let mut map = Map::new();
        map.insert("host".into(), "[::1]".into());
        let opts = ConnectOptions::parse(&map).unwrap_or_else(|_| panic!("parse"));
        assert_eq!(
            (opts.host.as_str(), opts.port, opts.user.as_str()),
            ("::1", 22, "root")
        );
        assert_eq!(opts.address(), "[::1]:22");
        assert_eq!(opts.timeout, Duration::from_secs(CONNECT_TIMEOUT));
        map.insert("prot".into(), Dynamic::from(2222_i64));
        assert!(ConnectOptions::parse(&map).is_err());
        map.remove("prot");
        map.insert("port".into(), Dynamic::from(70000_i64));
        assert!(ConnectOptions::parse(&map).is_err());
    }
}
