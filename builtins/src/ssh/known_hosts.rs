//! The kip home's `known_hosts`, in OpenSSH's format: what a host's key is checked against
//! before `ssh::connect` trusts it, and where a first contact's key is recorded.
//!
//! Lines are `hosts keytype base64 [comment]`; `hosts` is a comma-separated list of names,
//! `[name]:port` for ports other than 22, `*`/`?` patterns, `!negations` and hashed
//! `|1|salt|hash` entries (as `ssh-keygen -H` writes them). `@revoked` lines refuse a key;
//! `@cert-authority` lines are ignored (kip does not check host certificates).
//!
//! The check is strict: a host with any recorded key whose presented key matches none of them is
//! CHANGED, whatever the algorithm. kip asks the server for the algorithms it recorded first, so
//! an honest server presents the same key every time.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use russh::keys::{HashAlg, PublicKey};

/// What `known_hosts` says of a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Recorded for this host.
    Known,
    /// No key is recorded for this host.
    Unknown,
    /// Other keys are recorded for this host: the first such line (1-based) and its key.
    Changed { line: usize, recorded: PublicKey },
    /// An `@revoked` line names this key.
    Revoked { line: usize },
}

/// How a host appears in `known_hosts`: the bare name on port 22, `[name]:port` otherwise.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `ED25519 key SHA256:…`, as OpenSSH names a key to a human.
pub fn describe(key: &PublicKey) -> String {
    let algorithm = key.algorithm();
    let name = algorithm.as_str();
    let short = name
        .strip_prefix("ssh-")
        .unwrap_or(name)
        .split('-')
        .next()
        .unwrap_or(name)
        .to_uppercase();
    format!("{short} key {}", key.fingerprint(HashAlg::Sha256))
}

/// Checks `key`, presented by `host:port`, against the file at `path` (missing: nothing known).
pub fn check(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<Status, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Status::Unknown),
        Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
    };
    Ok(check_text(&text, host, port, key))
}

/// [`check`] over the file's text.
pub fn check_text(text: &str, host: &str, port: u16, key: &PublicKey) -> Status {
    let name = host_pattern(host, port);
    let mut changed = None;
    let mut known = false;
    for (index, entry) in entries(text) {
        if !matches_host(&name, entry.hosts) {
            continue;
        }
        let line = index + 1;
        match entry.marker {
            Some("@revoked") if entry.key == *key => return Status::Revoked { line },
            Some(_) => {}
            None if entry.key == *key => known = true,
            None => {
                changed.get_or_insert(Status::Changed {
                    line,
                    recorded: entry.key,
                });
            }
        }
    }
    if known {
        Status::Known
    } else {
        changed.unwrap_or(Status::Unknown)
    }
}

/// The algorithms of the keys recorded for `host:port`, in file order (to ask the server for
/// those first).
pub fn recorded_algorithms(path: &Path, host: &str, port: u16) -> Vec<russh::keys::Algorithm> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let name = host_pattern(host, port);
    let mut algorithms = Vec::new();
    for (_, entry) in entries(&text) {
        if entry.marker.is_none() && matches_host(&name, entry.hosts) {
            let algorithm = entry.key.algorithm();
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
    }
    algorithms
}

/// Appends `host:port key` to the file at `path`, creating it (and its folder) when missing.
pub fn record(path: &Path, host: &str, port: u16, key: &PublicKey) -> Result<(), String> {
    let fail =
        |err: std::io::Error| format!("cannot record the host key in {}: {err}", path.display());
    if let Some(parent) = path.parent() {
        crate::config::create_private_dirs(parent).map_err(fail)?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let encoded = key
        .to_openssh()
        .map_err(|err| format!("cannot encode the host key: {err}"))?;
    // The comment is the server's business, not ours: keep `keytype base64`.
    let encoded: Vec<&str> = encoded.split_whitespace().take(2).collect();
    let mut line = String::new();
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        line.push('\n');
    }
    line.push_str(&format!(
        "{} {}\n",
        host_pattern(host, port),
        encoded.join(" ")
    ));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .map_err(fail)
}

struct Entry<'a> {
    marker: Option<&'a str>,
    hosts: &'a str,
    key: PublicKey,
}

/// The usable lines with their 0-based index; comments, blank lines and keys we cannot parse
/// (an algorithm russh does not know) are skipped.
fn entries(text: &str) -> impl Iterator<Item = (usize, Entry<'_>)> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = if first.starts_with('@') {
            let marker = first;
            first = fields.next()?;
            Some(marker)
        } else {
            None
        };
        let _keytype = fields.next()?;
        let key = russh::keys::parse_public_key_base64(fields.next()?).ok()?;
        Some((
            index,
            Entry {
                marker,
                hosts: first,
                key,
            },
        ))
    })
}

/// OpenSSH's rule: some pattern matches and no negated one does.
fn matches_host(name: &str, patterns: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated, name) {
                return false;
            }
        } else if let Some(hashed) = pattern.strip_prefix("|1|") {
            matched |= hashed_matches(hashed, name);
        } else {
            matched |= glob(pattern, name);
        }
    }
    matched
}

/// `salt|hash`, both base64: HMAC-SHA1 of the name keyed with the salt.
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (engine.decode(salt), engine.decode(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// `*` any run, `?` one character; host names compare case-insensitively.
fn glob(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let name: Vec<char> = name.to_lowercase().chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIGv9TDLBsP2Ki5sw0Adi6fcvM3ELpXa3344fOSsl+pp9";
    const B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFcRyJwGUf2/7PIf9VBoIIXt5YsefrVd+BPp2SM7Mr7N";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    #[test]
    fn bracketed_port_and_plain_22() {
        let text = format!("# kip\n\n[10.0.0.1]:2222 ssh-ed25519 {A}\n10.0.0.1 ssh-ed25519 {B}\n");
        assert_eq!(check_text(&text, "10.0.0.1", 2222, &key(A)), Status::Known);
        assert_eq!(check_text(&text, "10.0.0.1", 22, &key(B)), Status::Known);
        assert_eq!(check_text(&text, "10.0.0.2", 22, &key(B)), Status::Unknown);
        assert_eq!(
            check_text(&text, "10.0.0.1", 2222, &key(B)),
            Status::Changed {
                line: 3,
                recorded: key(A)
            }
        );
    }

    #[test]
    fn lists_patterns_negations_and_revocations() {
        let text = format!(
            "a.example,*.lan,!bad.lan ssh-ed25519 {A}\n@revoked * ssh-ed25519 {B}\n@cert-authority * ssh-ed25519 {A}\n"
        );
        assert_eq!(check_text(&text, "box.lan", 22, &key(A)), Status::Known);
        assert_eq!(check_text(&text, "A.example", 22, &key(A)), Status::Known);
        assert_eq!(check_text(&text, "bad.lan", 22, &key(A)), Status::Unknown);
        assert_eq!(
            check_text(&text, "box.lan", 22, &key(B)),
            Status::Revoked { line: 2 }
        );
    }

    #[test]
    fn hashed_names_as_ssh_keygen_writes_them() {
        // `ssh-keygen -H` of `[127.0.0.1]:2222`, salt and HMAC-SHA1 computed with ring here.
        let salt = [7u8; 20];
        let name = "[127.0.0.1]:2222";
        let hmac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt),
            name.as_bytes(),
        );
        let engine = base64::engine::general_purpose::STANDARD;
        let text = format!(
            "|1|{}|{} ssh-ed25519 {A}\n",
            engine.encode(salt),
            engine.encode(hmac.as_ref())
        );
        assert_eq!(check_text(&text, "127.0.0.1", 2222, &key(A)), Status::Known);
        assert_eq!(check_text(&text, "127.0.0.1", 22, &key(A)), Status::Unknown);
    }

    #[test]
    fn record_then_check_with_a_missing_final_newline() {
        let dir = std::env::temp_dir().join(format!("kip-known-hosts-{}", std::process::id()));
        let path = dir.join("known_hosts");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, format!("other ssh-ed25519 {B}")).unwrap();
        record(&path, "127.0.0.1", 2222, &key(A)).unwrap();
        assert_eq!(
            check(&path, "127.0.0.1", 2222, &key(A)).unwrap(),
            Status::Known
        );
        assert_eq!(check(&path, "other", 22, &key(B)).unwrap(), Status::Known);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(1),
            Some(format!("[127.0.0.1]:2222 ssh-ed25519 {A}").as_str())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn glob_rules() {
        assert!(glob("*", "anything"));
        assert!(glob("10.0.?.1", "10.0.5.1"));
        assert!(!glob("10.0.?.1", "10.0.55.1"));
        assert!(glob("*.example.com", "a.b.example.com"));
        assert!(!glob("*.example.com", "example.com"));
    }
}
