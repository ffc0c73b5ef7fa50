//! ServiceAccount tokens: JWTs the sandbox signs (HS256, with a key kept beside its store) and
//! checks. A token names its ServiceAccount and that account's uid, so deleting the account
//! ends its tokens, as bound tokens end on a real cluster.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use ring::rand::SecureRandom;
use serde_json::{Value, json};

use super::User;
use crate::registry::storage_key;
use crate::store::{ObjKey, State};

/// Who signs the tokens, as a k3s API server names itself.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The audience a token has when the request names none.
const DEFAULT_AUDIENCE: &str = ISSUER;
/// How long a token lasts when the request does not say, as `kubectl create token` asks.
pub const DEFAULT_SECONDS: i64 = 3600;
/// The shortest and longest lives a request may ask for (the API server's limits).
pub const MIN_SECONDS: i64 = 600;
pub const MAX_SECONDS: i64 = 48 * 3600;

/// The signing key.
#[derive(Clone)]
pub struct Key(Arc<hmac::Key>);

impl Key {
    /// A key of its own, for a sandbox that keeps nothing on disk.
    pub fn random() -> Key {
        Key::from_bytes(&random_bytes())
    }

    /// The key kept in `dir` (`service-account.key`), made there on first use: tokens stay
    /// valid across restarts.
    pub fn load_or_create(dir: &Path) -> Result<Key, String> {
        let path = dir.join("service-account.key");
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() >= 32 => return Ok(Key::from_bytes(&bytes)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        let bytes = random_bytes();
        crate::home::write_private(&path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Key::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> Key {
        Key(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }
}

fn random_bytes() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source failed");
    bytes
}

/// A token for the ServiceAccount `account` (the stored object) lasting `seconds` from now,
/// for `audiences`; returns it with its expiry (unix seconds).
pub fn issue(key: &Key, account: &Value, seconds: i64, audiences: &[String]) -> (String, i64) {
    let now = jiff::Timestamp::now().as_second();
    let expires = now + seconds;
    let meta = &account["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or_default();
    let name = meta["name"].as_str().unwrap_or_default();
    let audiences: Vec<&str> = if audiences.is_empty() {
        vec![DEFAULT_AUDIENCE]
    } else {
        audiences.iter().map(String::as_str).collect()
    };
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "kip-sandbox"});
    let claims = json!({
        "aud": audiences,
        "exp": expires,
        "iat": now,
        "nbf": now,
        "iss": ISSUER,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": meta["uid"]},
        },
    });
    let signed = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = hmac::sign(&key.0, signed.as_bytes());
    (
        format!("{signed}.{}", B64.encode(signature.as_ref())),
        expires,
    )
}

/// The ServiceAccount `token` authenticates: signed with `key`, not expired, and naming an
/// account that still exists with the same uid.
pub fn verify(state: &State, key: &Key, token: &str) -> Option<User> {
    let mut parts = token.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let signature = B64.decode(signature).ok()?;
    let signed = &token[..header.len() + 1 + claims.len()];
    hmac::verify(&key.0, signed.as_bytes(), &signature).ok()?;
    let claims: Value = serde_json::from_slice(&B64.decode(claims).ok()?).ok()?;
    let now = jiff::Timestamp::now().as_second();
    if claims["exp"].as_i64()? <= now || claims["nbf"].as_i64().unwrap_or(0) > now {
        return None;
    }
    let k8s = &claims["kubernetes.io"];
    let namespace = k8s["namespace"].as_str()?;
    let name = k8s["serviceaccount"]["name"].as_str()?;
    let uid = k8s["serviceaccount"]["uid"].as_str()?;
    let account = state.get(&ObjKey::new(
        storage_key("", "serviceaccounts"),
        namespace,
        name,
    ))?;
    if account["metadata"]["uid"].as_str() != Some(uid) {
        return None;
    }
    Some(User::service_account(namespace, name, uid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::State;

    fn state_with(account: &Value) -> State {
        let mut state = State::new();
        let key = ObjKey::new(storage_key("", "serviceaccounts"), "shop", "dev");
        state.set(key, Some(Arc::new(account.clone())));
        state
    }

    fn account(uid: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "dev", "namespace": "shop", "uid": uid}})
    }

    #[test]
    fn a_token_names_its_account_until_the_account_goes() {
        let key = Key::random();
        let (token, expires) = issue(&key, &account("u1"), DEFAULT_SECONDS, &[]);
        assert!(expires > jiff::Timestamp::now().as_second());
        let user = verify(&state_with(&account("u1")), &key, &token).expect("valid");
        assert_eq!(user.name, "system:serviceaccount:shop:dev");
        assert!(
            user.groups
                .contains(&"system:serviceaccounts:shop".to_string())
        );
        // The account made again under the same name is another account.
        assert_eq!(verify(&state_with(&account("u2")), &key, &token), None);
        assert_eq!(verify(&State::new(), &key, &token), None);
    }

    #[test]
    fn forged_expired_and_garbled_tokens_are_refused() {
        let key = Key::random();
        let state = state_with(&account("u1"));
        let (token, _) = issue(&key, &account("u1"), DEFAULT_SECONDS, &[]);
        // Signed by another sandbox.
        assert_eq!(verify(&state, &Key::random(), &token), None);
        // Claims changed after signing.
        let parts: Vec<&str> = token.split('.').collect();
        let claims = B64.encode(
            json!({"exp": i64::MAX, "kubernetes.io": {"namespace": "shop",
                   "serviceaccount": {"name": "dev", "uid": "u1"}}})
            .to_string(),
        );
        let forged = format!("{}.{claims}.{}", parts[0], parts[2]);
        assert_eq!(verify(&state, &key, &forged), None);
        let (old, _) = issue(&key, &account("u1"), -10, &[]);
        assert_eq!(verify(&state, &key, &old), None);
        for garbage in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            &format!("{token}.x"),
            "é.é.é",
        ] {
            assert_eq!(verify(&state, &key, garbage), None, "{garbage}");
        }
    }

    proptest::proptest! {
        /// Whatever a client sends as a bearer token, checking it neither panics nor lets it
        /// in; and no change of one character of a real token is still a token.
        #[test]
        fn no_made_up_or_altered_token_passes(garbage in "\\PC{0,300}", at in 0usize..1000, with in "[A-Za-z0-9_.-]") {
            let key = Key::random();
            let state = state_with(&account("u1"));
            proptest::prop_assert_eq!(verify(&state, &key, &garbage), None);
            let (token, _) = issue(&key, &account("u1"), DEFAULT_SECONDS, &[]);
            let at = at % token.len();
            let mut altered = token.clone();
            altered.replace_range(at..at + 1, &with);
            if altered != token {
                proptest::prop_assert_eq!(verify(&state, &key, &altered), None, "{}", altered);
            }
        }
    }
}
