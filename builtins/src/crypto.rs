//! `crypto::…`: secrets and stable short names. Randomness comes from the OS and hashing is
//! SHA-256, both through `ring`, which the TLS stack already brings in.

use crate::errors::Kind;
use base64::Engine as _;
use rhai::{EvalAltResult, INT};
use ring::rand::{SecureRandom, SystemRandom};

use crate::host;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The most a script may ask for in one call: plenty for a secret, bounded for the engine.
const MAX_LEN: INT = 4096;

fn checked_len(what: &str, len: INT) -> Result<usize, Box<EvalAltResult>> {
    if (1..=MAX_LEN).contains(&len) {
        Ok(len as usize)
    } else {
        Err(host::error(
            Kind::Invalid,
            format!("{what} must be between 1 and {MAX_LEN}, got {len}"),
        ))
    }
}

fn random_bytes(len: usize) -> Result<Vec<u8>, Box<EvalAltResult>> {
    let mut bytes = vec![0; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| host::error(Kind::Io, "the operating system gave no randomness"))?;
    Ok(bytes)
}

/// `len` characters from A–Z, a–z, 0–9, uniformly: bytes at or above the largest multiple of
/// 62 are dropped rather than folded, which would favour the first characters.
pub fn password(len: usize) -> Result<String, Box<EvalAltResult>> {
    let limit = (256 / ALPHANUMERIC.len() * ALPHANUMERIC.len()) as u8;
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in random_bytes(len)? {
            if byte < limit && out.len() < len {
                out.push(ALPHANUMERIC[byte as usize % ALPHANUMERIC.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The first 8 hex digits of the SHA-256 of `text`: stable across versions and machines.
pub fn short_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hex(&digest.as_ref()[..4])
}

#[rhai::plugin::export_module]
pub mod crypto_module {
    use super::*;

    /// A random password of `len` letters and digits (A–Z, a–z, 0–9) from the OS's randomness.
    ///
    /// Raises `invalid` unless 1 ≤ `len` ≤ 4096, `io` if the OS has no randomness.
    ///
    /// `let pw = crypto::password(24);`
    #[rhai_fn(return_raw)]
    pub fn password(ctx: rhai::NativeCallContext, len: INT) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            super::password(checked_len("password length", len)?)
        })
    }

    /// `bytes` random bytes from the OS as lowercase hex (twice as many characters).
    ///
    /// Raises `invalid` unless 1 ≤ `bytes` ≤ 4096, `io` if the OS has no
    /// randomness.
    ///
    /// `let secret = crypto::token(32);   // 64 hex characters`
    #[rhai_fn(return_raw)]
    pub fn token(ctx: rhai::NativeCallContext, bytes: INT) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            Ok(hex(&random_bytes(checked_len("token bytes", bytes)?)?))
        })
    }

    /// The first 8 hex characters of the SHA-256 of `text`; the same input gives the same hash
    /// everywhere, so it suits generated names.
    ///
    /// `crypto::short_hash("shop/test") == "…8 hex…"`
    pub fn short_hash(text: &str) -> String {
        super::short_hash(text)
    }

    /// `text` as standard base64 (with padding), as Kubernetes Secrets hold data.
    ///
    /// `crypto::base64_encode("hi") == "aGk="`
    pub fn base64_encode(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    /// Decodes standard base64 into text.
    ///
    /// Raises `invalid` when `encoded` is not base64 or does not decode to UTF-8 text.
    ///
    /// `crypto::base64_decode("aGk=") == "hi"`
    #[rhai_fn(return_raw)]
    pub fn base64_decode(
        ctx: rhai::NativeCallContext,
        encoded: &str,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|err| host::error(Kind::Invalid, format!("not base64: {err}")))?;
            String::from_utf8(bytes).map_err(|_| {
                host::error(
                    Kind::Invalid,
                    "the base64 decodes to bytes that are not UTF-8 text",
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_alphanumeric_and_differ() {
        let a = password(64).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, password(64).unwrap());
    }

    #[test]
    fn lengths_are_bounded() {
        assert!(checked_len("x", 0).is_err());
        assert!(checked_len("x", -3).is_err());
        assert!(checked_len("x", MAX_LEN + 1).is_err());
        assert_eq!(checked_len("x", 12).unwrap(), 12);
    }

    #[test]
    fn short_hash_is_sha256_prefix() {
        // sha256("") = e3b0c442…
        assert_eq!(short_hash(""), "e3b0c442");
        assert_eq!(short_hash("abc"), "ba7816bf");
    }
}
