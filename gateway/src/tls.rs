//! TLS termination with rustls (ring) from a certificate and key in PEM files.
//!
//! The certificate lives behind a resolver rather than in the `ServerConfig`, so replacing it
//! touches only new handshakes: established connections keep their session. [`watch`] polls
//! the files' modification times and swaps in a new pair only when it parses and the key
//! matches the certificate; a half-written pair (cert renewed, key not yet) is retried on the
//! next tick while the old one keeps serving. An ACME client would be one more writer of
//! [`CertStore::replace`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

/// The current certificate, swappable while serving.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads a PEM chain and key and checks that they belong together.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|err| {
            format!(
                "cannot read the TLS certificate {}: {err}",
                cert_path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|err| {
        format!(
            "cannot read the TLS private key {}: {err}",
            key_path.display()
        )
    })?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|err| {
        format!(
            "the key {} does not fit the certificate {}: {err}",
            key_path.display(),
            cert_path.display()
        )
    })
}

impl CertStore {
    /// Loads the pair once; an error here stops start-up.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<CertStore, String> {
        let stamps = (modified(cert_path), modified(key_path));
        let pair = load_pair(cert_path, key_path)?;
        Ok(CertStore {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Arc::new(pair)),
            stamps: Mutex::new(stamps),
        })
    }

    /// Serves `pair` to every new handshake from now on.
    pub fn replace(&self, pair: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
    }

    /// Reloads if either file changed since the last successful load.
    pub fn reload_if_changed(&self) {
        let now = (modified(&self.cert_path), modified(&self.key_path));
        let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        if *stamps == now {
            return;
        }
        match load_pair(&self.cert_path, &self.key_path) {
            Ok(pair) => {
                self.replace(pair);
                *stamps = now;
                info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
            }
            Err(err) => warn!("keeping the current TLS certificate: {err}"),
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Polls the files every `interval` for the life of the process.
pub async fn watch(store: Arc<CertStore>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let store = store.clone();
        let _ = tokio::task::spawn_blocking(move || store.reload_if_changed()).await;
    }
}

/// The acceptor: TLS 1.2 and 1.3, ALPN h2 then http/1.1, certificates from `store`.
pub fn acceptor(store: Arc<CertStore>) -> Result<tokio_rustls::TlsAcceptor, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("cannot set up TLS: {err}"))?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
