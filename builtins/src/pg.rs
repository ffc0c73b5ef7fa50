//! `pg::…`: SQL inside a PostgreSQL pod, for verbs that provision what lives in a database
//! (`service bind` creates the per-app database).
//!
//! There is no network path from kip to a database pod, so each call opens a port-forward
//! stream to the pod through the Kubernetes API (as `tunnel` does) and speaks the PostgreSQL
//! protocol over it with tokio-postgres (`Config::connect_raw`, no TLS: the stream is already
//! inside the API server's connection). One connection per call, closed before it returns.
//!
//! A connection is a map: `#{namespace, pod, port, username, password, database}`.
//!
//! Errors: `denied` (a wrong password or user) or `refused`, with PostgreSQL's own message
//! (and `code`, the SQLSTATE), when the server
//! refused; `unreachable` when the pod could not be reached; `invalid` for a malformed
//! connection map or name.

use crate::errors::Kind;
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, Map};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::host;
use crate::k8s::{Cluster, kube_error};
use crate::tunnel::PodStream;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Where and as whom to connect, from the script's map.
struct Conn {
    namespace: String,
    pod: String,
    port: u16,
    username: String,
    password: String,
    database: String,
}

fn text(map: &Map, key: &str) -> RhaiResult<String> {
    match map.get(key) {
        Some(v) if v.is_string() => Ok(v.to_string()),
        Some(v) if v.is_int() => Ok(v.to_string()),
        _ => Err(host::error(
            Kind::Invalid,
            format!(
                "the connection has no `{key}`: pass #{{namespace, pod, port, username, password, database}}"
            ),
        )),
    }
}

impl Conn {
    fn from_map(map: &Map) -> RhaiResult<Conn> {
        let port_text = text(map, "port")?;
        let port = port_text
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                host::error(Kind::Invalid,
                    format!("invalid port `{port_text}` in the connection: a port is between 1 and 65535"),
                )
            })?;
        Ok(Conn {
            namespace: text(map, "namespace")?,
            pod: text(map, "pod")?,
            port,
            username: text(map, "username")?,
            password: text(map, "password")?,
            database: text(map, "database")?,
        })
    }

    fn describe(&self) -> String {
        format!(
            "database `{}` in pod {}/{}",
            self.database, self.namespace, self.pod
        )
    }
}

/// A PostgreSQL error in script terms: the server's own message and SQLSTATE when it sent one.
fn db_error(conn: &Conn, e: &tokio_postgres::Error) -> Box<EvalAltResult> {
    let mut map = Map::new();
    match e.as_db_error() {
        Some(db) => {
            // SQLSTATE class 28: invalid authorization (a wrong password, an unknown user).
            let kind = if db.code().code().starts_with("28") {
                Kind::Denied
            } else {
                Kind::Refused
            };
            map.insert("kind".into(), kind.name().into());
            map.insert("message".into(), db.message().to_string().into());
            map.insert("code".into(), db.code().code().to_string().into());
        }
        None => {
            map.insert("kind".into(), Kind::Unreachable.name().into());
            map.insert("message".into(), format!("{}: {e}", conn.describe()).into());
            map.insert("code".into(), "".into());
        }
    }
    host::error_map(map)
}

/// Connects through a port-forward stream, runs `work`, then closes the session and the stream.
fn with_client<T: Send>(
    ctx: &NativeCallContext,
    conn: &Conn,
    work: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>,
) -> RhaiResult<T> {
    let k = Cluster::of(ctx)?;
    k.host.reach.everything("pg::")?;
    let client = k.client.clone();
    k.run(async {
        let PodStream {
            stream,
            forwarder,
            error,
        } = PodStream::open(client, &conn.namespace, &conn.pod, conn.port)
            .await
            .map_err(kube_error)?;
        let mut config = tokio_postgres::Config::new();
        config
            .user(&conn.username)
            .password(&conn.password)
            .dbname(&conn.database)
            .application_name("kip");
        let (client, connection) = match config.connect_raw(stream, NoTls).await {
            Ok(pair) => pair,
            Err(e) => {
                // A forward the pod refused explains the failure better than "connection closed".
                if e.as_db_error().is_none()
                    && let Some(reason) = PodStream::finish(forwarder, error).await
                {
                    return Err(host::error(
                        Kind::Unreachable,
                        format!("cannot reach {}: {reason}", conn.describe()),
                    ));
                }
                return Err(db_error(conn, &e));
            }
        };
        let session = tokio::spawn(connection);
        let result = work(&client).await;
        // Dropping the client sends Terminate; the connection then ends, and with it the stream.
        drop(client);
        let _ = tokio::time::timeout(crate::tunnel::GOODBYE, session).await;
        let _ = PodStream::finish(forwarder, error).await;
        result.map_err(|e| db_error(conn, &e))
    })
}

/// Whether `name` is a database name kip creates: lowercase letters, digits and `_`, starting
/// with a letter or `_`, at most 63 characters (PostgreSQL's identifier limit).
pub fn valid_database_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The rows of a simple-protocol answer as maps of text (`()` for NULL).
fn rows(messages: Vec<SimpleQueryMessage>) -> Array {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => {
                let mut map = Map::new();
                for (i, column) in row.columns().iter().enumerate() {
                    let value = row
                        .get(i)
                        .map_or(Dynamic::UNIT, |v| Dynamic::from(v.to_string()));
                    map.insert(column.name().into(), value);
                }
                Some(Dynamic::from_map(map))
            }
            _ => None,
        })
        .collect()
}

/// PostgreSQL through the Kubernetes API, registered as the `pg` namespace.
#[export_module]
pub mod pg_module {
    use super::*;

    /// Runs `sql` (one or more statements, simple protocol) in the database of `conn`
    /// (`#{namespace, pod, port, username, password, database}`) and returns the number of
    /// rows the last statement affected (0 for statements that affect none, like `CREATE`).
    ///
    /// Errors: `denied` or `refused` with PostgreSQL's message and `code` (SQLSTATE); `unreachable`;
    /// `invalid` for a malformed `conn`.
    ///
    /// Example: `pg::execute(conn, "CREATE TABLE IF NOT EXISTS notes (body text)");`
    #[rhai_fn(return_raw)]
    pub fn execute(ctx: NativeCallContext, conn: Map, sql: &str) -> RhaiResult<i64> {
        crate::host::at_call(ctx.call_position(), || {
            let conn = Conn::from_map(&conn)?;
            let messages = with_client(&ctx, &conn, async |c| c.simple_query(sql).await)?;
            let affected = messages
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::CommandComplete(n) => Some(*n),
                    _ => None,
                })
                .next_back()
                .unwrap_or(0);
            Ok(i64::try_from(affected).unwrap_or(i64::MAX))
        })
    }

    /// Runs `sql` in the database of `conn` (as `pg::execute`) and returns its rows as an array
    /// of maps from column name to the value's text (`()` for NULL). With several statements,
    /// the rows of all of them, in order.
    ///
    /// Example: `for row in pg::query(conn, "SELECT datname FROM pg_database") { print(row.datname); }`
    #[rhai_fn(return_raw)]
    pub fn query(ctx: NativeCallContext, conn: Map, sql: &str) -> RhaiResult<Array> {
        crate::host::at_call(ctx.call_position(), || {
            let conn = Conn::from_map(&conn)?;
            let messages = with_client(&ctx, &conn, async |c| c.simple_query(sql).await)?;
            Ok(rows(messages))
        })
    }

    /// Creates the database `name` in the PostgreSQL instance of `conn` unless it exists, and
    /// says whether it created it. Safe to repeat, and to race: a database another caller
    /// created in between counts as existing. `name` must be lowercase letters, digits and `_`,
    /// starting with a letter or `_`, at most 63 characters.
    ///
    /// Errors: `invalid` for a bad name, then as `pg::execute` (e.g. `refused` when the user
    /// may not create databases).
    ///
    /// Example: `if pg::ensure_database(conn, "shop_api_test") { ui::step("Database shop_api_test created"); }`
    #[rhai_fn(return_raw)]
    pub fn ensure_database(ctx: NativeCallContext, conn: Map, name: &str) -> RhaiResult<bool> {
        crate::host::at_call(ctx.call_position(), || {
            if !valid_database_name(name) {
                return Err(host::error(
                    Kind::Invalid,
                    format!(
                        "invalid database name `{name}`: use lowercase letters, digits and '_', starting with a letter or '_' (at most 63 characters)"
                    ),
                ));
            }
            let conn = Conn::from_map(&conn)?;
            let create = format!("CREATE DATABASE {}", quote_ident(name));
            with_client(&ctx, &conn, async |c| {
                let exists = c
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                    .await?
                    .is_some();
                if exists {
                    return Ok(false);
                }
                match c.batch_execute(&create).await {
                    Ok(()) => Ok(true),
                    Err(e)
                        if e.code()
                            == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(e),
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names() {
        for good in ["app", "shop_api_test", "_x", "a1", &"a".repeat(63)] {
            assert!(valid_database_name(good), "{good}");
        }
        for bad in [
            "",
            "1app",
            "Shop",
            "shop-api",
            "a;drop",
            "a\"b",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(!valid_database_name(bad), "{bad}");
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("shop"), "\"shop\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
