//! Who may use the console: the console token, or a token the cluster accepts (a
//! ServiceAccount's, `kubectl create token`), exchanged at `/login` for a session. A console
//! token's session acts with the console's own credentials; a cluster token's acts as its
//! user, so the cluster's RBAC decides each thing it does, as it does for that user's `kip`;
//! it ends when the cluster no longer takes the token (expired, or its account deleted).
//! The session lives in an HttpOnly, SameSite=Strict, Secure cookie; every form carries the
//! session's CSRF token, and a POST whose token or Origin does not match is refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http;
use ring::rand::SecureRandom;

/// The session cookie's name.
pub const COOKIE: &str = "kip_console";
/// How long a session lasts without use.
pub const IDLE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions kept at most; the least recently used goes first.
const MOST_SESSIONS: usize = 1000;

/// Whom a cluster token signed in, and the cluster as them.
#[derive(Clone)]
pub struct ClusterUser {
    /// Their name as the cluster says it (`system:serviceaccount:shop:dev`).
    pub name: String,
    /// The cluster with their token as its credentials.
    pub cluster: builtins::ClusterChoice,
}

impl std::fmt::Debug for ClusterUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterUser")
            .field("name", &self.name)
            .finish()
    }
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token every form of this session carries.
    pub csrf: String,
    /// With a cluster token: its user; with the console token, `None`.
    pub user: Option<ClusterUser>,
    /// What the last action said, shown once on the next page.
    pub flash: Option<Flash>,
    used: Instant,
}

/// An action's outcome, carried to the page the browser is sent back to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Flash {
    pub ok: bool,
    pub title: String,
    pub output: String,
}

/// The console's sessions and the token that opens one.
pub struct Sessions {
    token: String,
    sessions: Mutex<HashMap<String, Session>>,
}

/// A random value of `bytes` bytes, as URL-safe hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the system's random source failed");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two secrets are equal, in time that does not tell how much of them matched.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

impl Sessions {
    /// Sessions opened by `token`.
    pub fn new(token: String) -> Sessions {
        Sessions {
            token,
            sessions: Mutex::default(),
        }
    }

    /// Opens a session when `token` is the console's; returns its id.
    pub fn login(&self, token: &str) -> Option<String> {
        if self.token.is_empty() || !same_secret(token.trim(), &self.token) {
            return None;
        }
        Some(self.open(None))
    }

    /// Opens a session for `user` (`None`: the console token's); returns its id.
    pub fn open(&self, user: Option<ClusterUser>) -> String {
        let id = random_hex(32);
        let mut sessions = self.lock();
        if sessions.len() >= MOST_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                csrf: random_hex(32),
                user,
                flash: None,
                used: Instant::now(),
            },
        );
        id
    }

    /// The live session `id`, marked used; an idle one is ended.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut sessions = self.lock();
        let session = sessions.get_mut(id)?;
        if session.used.elapsed() > IDLE {
            sessions.remove(id);
            return None;
        }
        session.used = Instant::now();
        Some(session.clone())
    }

    /// Takes the session's flash (it is shown once).
    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        self.lock().get_mut(id).and_then(|s| s.flash.take())
    }

    pub fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(session) = self.lock().get_mut(id) {
            session.flash = Some(flash);
        }
    }

    pub fn logout(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session id in a `Cookie` header, if any.
pub fn session_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The `Set-Cookie` value that keeps session `id` (an empty id ends it).
pub fn set_cookie(id: &str) -> String {
    let age = if id.is_empty() { 0 } else { IDLE.as_secs() };
    format!("{COOKIE}={id}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict; Secure")
}

/// Whether a POST comes from the console's own pages: its Origin (or, without one, its
/// Referer) names the host it was sent to. Browsers send Origin on every POST; a request
/// with neither header is not from a browser form and is judged by its CSRF token alone.
pub fn same_origin(headers: &http::HeaderMap) -> bool {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let from = headers
        .get(http::header::ORIGIN)
        .or_else(|| headers.get(http::header::REFERER))
        .and_then(|h| h.to_str().ok());
    let Some(from) = from else {
        return true;
    };
    let rest = from
        .strip_prefix("https://")
        .or_else(|| from.strip_prefix("http://"));
    match rest {
        Some(rest) => rest.split('/').next() == Some(host),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_needs_the_token() {
        let sessions = Sessions::new("abc".into());
        assert!(sessions.login("abd").is_none());
        assert!(sessions.login("").is_none());
        let id = sessions.login("abc").unwrap();
        assert!(sessions.get(&id).is_some());
        sessions.logout(&id);
        assert!(sessions.get(&id).is_none());
        assert!(Sessions::new(String::new()).login("").is_none());
    }

    #[test]
    fn origins_must_match_the_host() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert(
            http::header::ORIGIN,
            "http://127.0.0.1:8080".parse().unwrap(),
        );
        assert!(same_origin(&headers));
        headers.insert(http::header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert(http::header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert(
            http::header::ORIGIN,
            "http://127.0.0.1:8080.evil.example".parse().unwrap(),
        );
        assert!(!same_origin(&headers));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "a=1; kip_console=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("xyz"));
        assert!(set_cookie("xyz").contains("HttpOnly; SameSite=Strict; Secure"));
    }
}
