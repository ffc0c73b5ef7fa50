//! The cluster registry: cluster id → backend, a hash map in memory and a JSON file on disk.
//!
//! Every change is written to the file (temp file, fsync, rename, fsync of the directory)
//! *before* it becomes visible and before the API acknowledges it, so a crash at any moment
//! leaves the old file or the new one and never loses an acknowledged registration.
//!
//! Every address is checked against the [`Policy`] when it is registered. An entry in the file
//! whose address the policy refuses (written by an older gateway, or by one started with
//! `--allow-private-clusters`) is quarantined at load: it stays in the registry and in the file
//! with its token, gets no traffic, and shows its reason in the API and the log, until it is
//! registered again with an allowed address or deleted. Refusing to start over it would let
//! one entry take every cluster offline; dropping it would lose its token.
//!
//! The file holds token hashes, so it is written mode 0600, and a directory the gateway
//! creates for it (`--init`) mode 0700.
//!
//! File format (`version` 1), sorted by id so diffs stay readable:
//!
//! ```json
//! {"version":1,"clusters":[
//!   {"id":"203-0-113-10","address":"203.0.113.10:443","tls":false,"token_sha256":"…64 hex…"}]}
//! ```

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use hyper::http::uri::Authority;
use ring::rand::SecureRandom as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use tracing::warn;

use crate::host;
use crate::policy::{self, Policy};

/// One registered cluster, shared by every request that goes to it.
#[derive(Debug)]
pub struct Backend {
    pub id: Box<str>,
    pub address: SocketAddr,
    /// Connect to the cluster with TLS (verified against the system roots).
    pub tls: bool,
    /// `address` as a URI authority, made once so requests do not format it.
    pub authority: Authority,
    token_sha256: [u8; 32],
    /// Requests routed here; kept across updates of the entry.
    pub requests: Arc<AtomicU64>,
    /// Why the policy refuses `address`, for an entry quarantined at load: it gets no traffic.
    pub refused: Option<Box<str>>,
}

impl Backend {
    /// Whether `token` is this cluster's token, in constant time.
    pub fn token_matches(&self, token: &str) -> bool {
        sha256(token.as_bytes()).ct_eq(&self.token_sha256).into()
    }
}

/// A validated registration body: `{"address": "203.0.113.10:443", "tls": false}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    pub address: SocketAddr,
    pub tls: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrationBody {
    address: String,
    #[serde(default)]
    tls: bool,
}

impl Registration {
    /// Parses and checks a JSON body; the error names the problem and what to send instead.
    pub fn parse(body: &[u8]) -> Result<Registration, String> {
        let body: RegistrationBody = serde_json::from_slice(body).map_err(|err| {
            format!(
                "the body is not a registration ({err}); send JSON like \
                 {{\"address\": \"203.0.113.10:443\", \"tls\": false}}"
            )
        })?;
        let address = check_address(&body.address)?;
        Ok(Registration {
            address,
            tls: body.tls,
        })
    }
}

/// An address a gateway can forward to: an IP literal and a non-zero port, not a wildcard,
/// multicast or broadcast address. Names are refused: a name would be resolved when the gateway
/// connects, and could then lead anywhere the [`Policy`] refuses. Whether the address is
/// allowed here is the policy's call ([`Policy::check`]).
pub fn check_address(text: &str) -> Result<SocketAddr, String> {
    let address = parse_address(text)?;
    policy::check_receivable(address)?;
    Ok(address)
}

fn parse_address(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "`address` must be an IP address and port like 203.0.113.10:443 or [2001:db8::1]:443, \
             got `{text}`"
        )
    })
}

/// What a registration did.
#[derive(Debug)]
pub struct Upserted {
    pub backend: Arc<Backend>,
    /// The new cluster's token, returned once when the entry is created.
    pub token: Option<String>,
}

/// Why a registry operation failed.
#[derive(Debug)]
pub enum RegistryError {
    /// The policy refuses the address (the reason and what to do); nothing changed.
    Refused(String),
    /// The file could not be written; nothing changed.
    Io(String),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::Refused(msg) | RegistryError::Io(msg) => f.write_str(msg),
        }
    }
}

/// Cluster id → backend; replaced whole on every change, so a snapshot never changes.
pub type Map = HashMap<Box<str>, Arc<Backend>>;

/// The registry: lookups never wait on the disk; writers take turns.
pub struct Registry {
    path: PathBuf,
    policy: Arc<Policy>,
    map: RwLock<Arc<Map>>,
    /// Bumped after every change of `map`, so readers that cache a snapshot (each proxy
    /// worker does) know when to take a new one without touching the lock.
    generation: AtomicU64,
    writer: tokio::sync::Mutex<()>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    version: u32,
    clusters: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    id: String,
    address: String,
    #[serde(default)]
    tls: bool,
    token_sha256: String,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A fresh random token (32 bytes from the OS, as 64 hex characters).
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the operating system gave no randomness for a token".to_owned())?;
    Ok(hex(&bytes))
}

/// A token's hash as the registry file stores it (lowercase hex SHA-256).
pub fn token_hash(token: &str) -> String {
    hex(&sha256(token.as_bytes()))
}

fn backend(
    id: &str,
    reg: Registration,
    token_sha256: [u8; 32],
    requests: Arc<AtomicU64>,
) -> Result<Backend, String> {
    let authority = Authority::try_from(reg.address.to_string())
        .map_err(|err| format!("address {} is not a URI authority: {err}", reg.address))?;
    Ok(Backend {
        id: id.into(),
        address: reg.address,
        tls: reg.tls,
        authority,
        token_sha256,
        requests,
        refused: None,
    })
}

impl Registry {
    /// Loads the registry file. A missing file is an error unless `init` is set, in which case
    /// an empty file is created (and its missing directories, mode 0700); a file that does not
    /// parse is always an error. Entries whose address `policy` refuses are quarantined (see
    /// the module documentation) and each is logged.
    pub fn open(path: &Path, init: bool, policy: Arc<Policy>) -> Result<Registry, String> {
        let new = |map: Map| Registry {
            path: path.to_owned(),
            policy: policy.clone(),
            map: RwLock::new(Arc::new(map)),
            generation: AtomicU64::new(0),
            writer: tokio::sync::Mutex::new(()),
        };
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if !init {
                    return Err(format!(
                        "the registry file {} does not exist; check the path, or pass --init \
                         to start with an empty registry",
                        path.display()
                    ));
                }
                let registry = new(Map::new());
                create_private_dir(path)?;
                write_atomic(path, &registry.serialize(&Map::new())?)
                    .map_err(|err| format!("cannot create {}: {err}", path.display()))?;
                return Ok(registry);
            }
            Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
        };
        let map = parse_file(&text, &policy).map_err(|err| {
            format!(
                "the registry file {} is not valid: {err}; restore it from a backup or fix it \
                 (the gateway never starts with a registry it cannot read)",
                path.display()
            )
        })?;
        let mut quarantined: Vec<&Backend> = map
            .values()
            .filter(|b| b.refused.is_some())
            .map(|b| &**b)
            .collect();
        quarantined.sort_by(|a, b| a.id.cmp(&b.id));
        for backend in &quarantined {
            warn!(
                cluster = %backend.id,
                address = %backend.address,
                "cluster {} is quarantined and gets no traffic: {}. It stays in {} with its \
                 token; register it again with an allowed address (PUT /v1/clusters/{}) or \
                 delete it",
                backend.id,
                backend.refused.as_deref().unwrap_or_default(),
                path.display(),
                backend.id
            );
        }
        tighten_mode(path);
        Ok(new(map))
    }

    /// The address policy every registration and every new cluster connection is checked
    /// against.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The backend of cluster `id`: one hash lookup, whatever the registry size.
    pub fn get(&self, id: &str) -> Option<Arc<Backend>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Whether `id` is registered.
    pub fn contains(&self, id: &str) -> bool {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }

    /// Changes with every change of the registry (see [`Registry::snapshot`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A consistent view of every entry.
    pub fn snapshot(&self) -> Arc<Map> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many clusters are registered.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether no cluster is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creates or updates cluster `id` (already validated) and returns it once it is on disk.
    /// An address the policy refuses changes nothing; a quarantined entry given an allowed
    /// address is released.
    pub async fn upsert(&self, id: &str, reg: Registration) -> Result<Upserted, RegistryError> {
        self.policy
            .check(reg.address)
            .map_err(RegistryError::Refused)?;
        let _turn = self.writer.lock().await;
        let mut next = Map::clone(&self.snapshot());
        let (token_sha256, requests, token) = match next.get(id) {
            Some(old) => (old.token_sha256, old.requests.clone(), None),
            None => {
                let token = new_token().map_err(RegistryError::Io)?;
                (sha256(token.as_bytes()), Arc::default(), Some(token))
            }
        };
        let entry = Arc::new(backend(id, reg, token_sha256, requests).map_err(RegistryError::Io)?);
        next.insert(id.into(), entry.clone());
        self.commit(next).await?;
        Ok(Upserted {
            backend: entry,
            token,
        })
    }

    /// Removes cluster `id`; `false` if it was not there.
    pub async fn remove(&self, id: &str) -> Result<bool, RegistryError> {
        let _turn = self.writer.lock().await;
        let mut next = Map::clone(&self.snapshot());
        if next.remove(id).is_none() {
            return Ok(false);
        }
        self.commit(next).await?;
        Ok(true)
    }

    /// Writes `next` to disk, then makes it the live map.
    async fn commit(&self, next: Map) -> Result<(), RegistryError> {
        let bytes = self.serialize(&next).map_err(RegistryError::Io)?;
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|err| RegistryError::Io(format!("the registry writer failed: {err}")))?;
        written.map_err(|err| {
            RegistryError::Io(format!(
                "cannot write the registry file {}: {err}",
                self.path.display()
            ))
        })?;
        *self.map.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn serialize(&self, map: &Map) -> Result<Vec<u8>, String> {
        let mut clusters: Vec<FileEntry> = map
            .values()
            .map(|b| FileEntry {
                id: b.id.to_string(),
                address: b.address.to_string(),
                tls: b.tls,
                token_sha256: hex(&b.token_sha256),
            })
            .collect();
        clusters.sort_by(|a, b| a.id.cmp(&b.id));
        let mut bytes = serde_json::to_vec_pretty(&FileBody {
            version: 1,
            clusters,
        })
        .map_err(|err| format!("cannot serialize the registry: {err}"))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

fn parse_file(text: &[u8], policy: &Policy) -> Result<Map, String> {
    let body: FileBody = serde_json::from_slice(text).map_err(|err| err.to_string())?;
    if body.version != 1 {
        return Err(format!(
            "version {} is not one this gateway reads (1)",
            body.version
        ));
    }
    let mut map = Map::with_capacity(body.clusters.len());
    for entry in body.clusters {
        host::check_cluster_id(&entry.id)?;
        let address =
            parse_address(&entry.address).map_err(|err| format!("cluster {}: {err}", entry.id))?;
        let hash = unhex32(&entry.token_sha256).ok_or_else(|| {
            format!(
                "cluster {}: token_sha256 is not 64 hex characters",
                entry.id
            )
        })?;
        let reg = Registration {
            address,
            tls: entry.tls,
        };
        let mut backend = backend(&entry.id, reg, hash, Arc::default())?;
        backend.refused = policy.check(address).err().map(Into::into);
        if map
            .insert(entry.id.clone().into(), Arc::new(backend))
            .is_some()
        {
            return Err(format!("cluster {} is listed twice", entry.id));
        }
    }
    Ok(map)
}

/// Creates the missing directories above `path`, mode 0700: only the gateway reads them.
/// Directories that exist are left as they are (they are the operator's).
fn create_private_dir(path: &Path) -> Result<(), String> {
    let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| {
            format!(
                "cannot create the registry directory {}: {err}",
                dir.display()
            )
        })
}

/// Makes a registry file that group or others may read private again: it holds token hashes.
/// Failing to is only logged, since the next write replaces the file with a private one anyway.
fn tighten_mode(path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700)) {
        Ok(()) => warn!(
            "the registry file {} had mode {mode:04o}; it holds token hashes, so it is now {:04o}",
            path.display(),
            mode & 0o700
        ),
        Err(err) => warn!(
            "the registry file {} has mode {mode:04o} and holds token hashes; it could not be \
             made private ({err}): run `chmod 600 {}`",
            path.display(),
            path.display()
        ),
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content: a
/// temporary file in the same directory, fsync, rename over, fsync of the directory so the
/// rename itself is durable. The file is mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "registry".to_owned());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        // `mode` applies only to a file it creates: a leftover temporary file of a crashed run
        // (same pid, as in a container) keeps the mode it had.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Private addresses allowed, no listeners: what the tests here register is private.
    fn permissive() -> Arc<Policy> {
        Arc::new(Policy::new(true, Vec::new()))
    }

    #[test]
    fn registration_bodies() {
        let reg = Registration::parse(br#"{"address":"203.0.113.10:443"}"#).unwrap();
        assert_eq!(reg.address, "203.0.113.10:443".parse().unwrap());
        assert!(!reg.tls);
        assert!(
            Registration::parse(br#"{"address":"[2001:db8::1]:8443","tls":true}"#)
                .unwrap()
                .tls
        );
        for (body, needle) in [
            (
                &br#"{"address":"example.com:443"}"#[..],
                "must be an IP address and port",
            ),
            (
                br#"{"address":"10.0.0.1"}"#,
                "must be an IP address and port",
            ),
            (br#"{"address":"10.0.0.1:0"}"#, "cannot receive"),
            (br#"{"address":"0.0.0.0:80"}"#, "cannot receive"),
            (br#"{"address":"255.255.255.255:80"}"#, "cannot receive"),
            (br#"{"address":"10.0.0.1:80","extra":1}"#, "unknown field"),
            (br#"{"tls":true}"#, "missing field `address`"),
            (br#"not json"#, "not a registration"),
            (br#"{"address":80}"#, "invalid type"),
        ] {
            let err = Registration::parse(body).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[tokio::test]
    async fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        assert!(
            Registry::open(&path, false, permissive())
                .err()
                .unwrap()
                .contains("does not exist")
        );
        let registry = Registry::open(&path, true, permissive()).unwrap();
        let reg = Registration::parse(br#"{"address":"10.0.0.1:80"}"#).unwrap();
        let created = registry.upsert("10-0-0-1", reg).await.unwrap();
        let token = created.token.unwrap();
        assert!(created.backend.token_matches(&token));
        assert!(!created.backend.token_matches("wrong"));
        let again = registry.upsert("10-0-0-1", reg).await.unwrap();
        assert!(again.token.is_none(), "an update keeps the token");
        registry.upsert("shop", reg).await.unwrap();
        assert!(registry.remove("shop").await.unwrap());
        assert!(!registry.remove("shop").await.unwrap());

        let reopened = Registry::open(&path, false, permissive()).unwrap();
        assert_eq!(reopened.len(), 1);
        assert!(reopened.get("10-0-0-1").unwrap().token_matches(&token));
        assert!(reopened.get("shop").is_none());
    }

    #[test]
    fn corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        let entry = |id: &str| {
            format!(
                r#"{{"id":"{id}","address":"10.0.0.1:80","token_sha256":"{}"}}"#,
                "0".repeat(64)
            )
        };
        for (text, needle) in [
            (String::new(), "EOF"),
            ("{\"version\":1,\"clusters\":[".to_owned(), "EOF"),
            (r#"{"version":2,"clusters":[]}"#.to_owned(), "version 2"),
            (
                format!(r#"{{"version":1,"clusters":[{}]}}"#, entry("Bad_Id")),
                "cluster id",
            ),
            (
                format!(
                    r#"{{"version":1,"clusters":[{},{}]}}"#,
                    entry("shop"),
                    entry("shop")
                ),
                "listed twice",
            ),
        ] {
            std::fs::write(&path, &text).unwrap();
            let err = Registry::open(&path, true, permissive()).err().unwrap();
            assert!(
                err.contains(needle) && err.contains("not valid"),
                "{text}: {err}"
            );
        }
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[tokio::test]
    async fn refused_addresses_are_not_stored_and_quarantined_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        let open = Arc::new(Policy::new(true, Vec::new()));
        let strict = Arc::new(Policy::new(false, Vec::new()));
        let loopback = Registration::parse(br#"{"address":"127.0.0.1:8080"}"#).unwrap();
        let public = Registration::parse(br#"{"address":"203.0.113.10:80"}"#).unwrap();

        let registry = Registry::open(&path, true, open).unwrap();
        let token = registry
            .upsert("shop", loopback)
            .await
            .unwrap()
            .token
            .unwrap();
        drop(registry);

        let registry = Registry::open(&path, false, strict).unwrap();
        let shop = registry.get("shop").unwrap();
        let reason = shop.refused.as_deref().unwrap();
        assert!(reason.contains("loopback"), "{reason}");
        assert!(
            shop.token_matches(&token),
            "a quarantined entry keeps its token"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("127.0.0.1:8080"), "still in the file: {text}");

        match registry.upsert("shop", loopback).await {
            Err(RegistryError::Refused(msg)) => assert!(msg.contains("--allow-private-clusters")),
            other => panic!("{other:?}"),
        }
        assert!(registry.get("shop").unwrap().refused.is_some());
        let moved = registry.upsert("shop", public).await.unwrap();
        assert!(moved.token.is_none() && moved.backend.refused.is_none());
        assert!(registry.get("shop").unwrap().token_matches(&token));
    }

    #[test]
    fn the_directory_is_created_private_and_the_file_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/kip/registry.json");
        Registry::open(&path, true, Arc::new(Policy::new(false, Vec::new()))).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Registry::open(&path, false, Arc::new(Policy::new(false, Vec::new()))).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
