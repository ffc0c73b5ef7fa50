//! The cluster's root certificate authority, as every namespace's `kube-root-ca.crt` shows it.
//!
//! The sandbox serves plain HTTP, so nothing is signed with it yet; it exists because clients
//! and charts read `kube-root-ca.crt` and expect a PEM certificate there. It is made once per
//! sandbox home and kept beside the store, so it stays the same across restarts, as a real
//! cluster's CA does.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// How long the certificate is valid, as k3s makes its CAs.
const VALID_YEARS: i16 = 10;

/// The CA certificate (PEM) kept in `dir`, made there on first use; a new one each time when
/// the sandbox keeps nothing on disk.
pub fn load_or_create(dir: Option<&Path>) -> Result<String, String> {
    let Some(dir) = dir else {
        return generate().map(|(cert, _)| cert);
    };
    let cert_path = dir.join("ca.crt");
    match std::fs::read_to_string(&cert_path) {
        Ok(pem) if pem.contains("BEGIN CERTIFICATE") => return Ok(pem),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", cert_path.display())),
    }
    let (cert, key) = generate()?;
    // The key first: a certificate on disk without its key would be kept for good.
    let key_path = dir.join("ca.key");
    crate::home::write_private(&key_path, key.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
    crate::home::write_private(&cert_path, cert.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    Ok(cert)
}

/// A self-signed CA certificate and its private key, both PEM, named like k3s names its own
/// (`<name>-ca@<unix time>`).
fn generate() -> Result<(String, String), String> {
    let fail = |e: rcgen::Error| format!("cannot make the sandbox's CA certificate: {e}");
    let key = KeyPair::generate().map_err(fail)?;
    let mut params = CertificateParams::default();
    let now = jiff::Timestamp::now();
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        format!("kip-sandbox-ca@{}", now.as_second()),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let (year, month, day) = (today.year(), today.month() as u8, today.day() as u8);
    params.not_before = rcgen::date_time_ymd(year.into(), month, day);
    // The 28th at most, so that a CA made on 29 February ends on a real date.
    params.not_after = rcgen::date_time_ymd((year + VALID_YEARS).into(), month, day.min(28));
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_keeps_its_certificate() {
        let dir = std::env::temp_dir().join(format!("kip-ca-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let first = load_or_create(Some(&dir)).expect("made");
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----"), "{first}");
        assert!(dir.join("ca.key").exists());
        let again = load_or_create(Some(&dir)).expect("read");
        assert_eq!(first, again);
        let elsewhere = load_or_create(None).expect("in memory");
        assert_ne!(first, elsewhere);
        std::fs::remove_dir_all(&dir).ok();
    }
}
