//! Option maps: unknown keys refused (a typo must not pass silently), values checked by type;
//! the options of `ssh::connect`.

use std::path::PathBuf;
use std::time::Duration;

use rhai::{Blob, EvalAltResult, Map};

use super::RhaiResult;
use super::host_port;
use crate::errors::Kind;
use crate::host;

/// How long connecting (TCP, handshake and authentication) may take unless `timeout_secs`.
const CONNECT_TIMEOUT: u64 = 15;

/// How long one command may run unless `exec_timeout_secs` or the call's `timeout_secs`.
const EXEC_TIMEOUT: u64 = 600;

pub(super) fn invalid(message: String) -> Box<EvalAltResult> {
    host::error(Kind::Invalid, message)
}

/// Reads a map of options, refusing keys it does not know (a typo must not pass silently).
pub(super) struct Options<'a> {
    what: &'a str,
    map: &'a Map,
}

impl<'a> Options<'a> {
    pub(super) fn new(what: &'a str, map: &'a Map, known: &[&str]) -> RhaiResult<Options<'a>> {
        if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(invalid(format!(
                "{what}: unknown option `{key}`; known: {}",
                known.join(", ")
            )));
        }
        Ok(Options { what, map })
    }

    pub(super) fn wrong(&self, key: &str, wanted: &str) -> Box<EvalAltResult> {
        invalid(format!("{}: option `{key}` must be {wanted}", self.what))
    }

    pub(super) fn string(&self, key: &str) -> RhaiResult<Option<String>> {
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

    pub(super) fn int(&self, key: &str) -> RhaiResult<Option<i64>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => v
                .as_int()
                .map(Some)
                .map_err(|_| self.wrong(key, "an integer")),
        }
    }

    pub(super) fn bool(&self, key: &str) -> RhaiResult<bool> {
        match self.map.get(key) {
            None => Ok(false),
            Some(v) if v.is_unit() => Ok(false),
            Some(v) => v.as_bool().map_err(|_| self.wrong(key, "true or false")),
        }
    }

    /// Seconds; 0 means no limit.
    pub(super) fn seconds(&self, key: &str) -> RhaiResult<Option<Option<Duration>>> {
        match self.int(key)? {
            None => Ok(None),
            Some(0) => Ok(Some(None)),
            Some(s) if s > 0 => Ok(Some(Some(Duration::from_secs(s as u64)))),
            Some(_) => Err(self.wrong(key, "a number of seconds (0 for no limit)")),
        }
    }

    pub(super) fn bytes(&self, key: &str) -> RhaiResult<Option<Vec<u8>>> {
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

pub(super) struct ConnectOptions {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) user: String,
    pub(super) key: Option<PathBuf>,
    pub(super) passphrase: Option<String>,
    pub(super) accept_host_key: bool,
    pub(super) timeout: Duration,
    pub(super) exec_timeout: Option<Duration>,
}

impl ConnectOptions {
    pub(super) fn parse(map: &Map) -> RhaiResult<ConnectOptions> {
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

    pub(super) fn address(&self) -> String {
        host_port(&self.host, self.port)
    }
}

fn expand_home(path: String) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::home_dir()) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::Dynamic;

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
