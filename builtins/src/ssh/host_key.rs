//! The server's host key checked against the kip home's `known_hosts`, and the words for a key
//! that is unknown, changed or revoked.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rhai::EvalAltResult;
use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};

use super::known_hosts::{self, Status};
use crate::errors::Kind;
use crate::host;

/// What the host-key check decided when it did not simply accept.
pub(super) enum Verdict {
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
    pub(super) known_hosts: PathBuf,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) accept: bool,
    pub(super) verdict: Arc<Mutex<Option<Verdict>>>,
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

pub(super) fn host_key_error(message: String) -> Box<EvalAltResult> {
    host::error_with_reason(Kind::Denied, "host-key", message)
}

pub(super) fn changed_message(
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

/// Two names of one key type (`rsa-sha2-512` and `ssh-rsa` are both RSA keys).
pub(super) fn same_key_type(a: &russh::keys::Algorithm, b: &russh::keys::Algorithm) -> bool {
    a == b || (a.clone().is_rsa() && b.clone().is_rsa())
}
