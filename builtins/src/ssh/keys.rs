//! The keys offered to the server, in order, and offering them: a key file, the SSH agent, or
//! the default keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::EvalAltResult;
use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::RhaiResult;
use super::connect::unreachable;
use super::host_key::Client;
use super::options::ConnectOptions;
use crate::errors::Kind;
use crate::host::{self, UiSettings};

/// The keys to offer, in order.
pub(super) enum Credentials {
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
pub(super) fn credentials(opts: &ConnectOptions, ui: &UiSettings) -> RhaiResult<Credentials> {
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

pub(super) async fn authenticate(
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
