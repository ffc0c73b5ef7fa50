//! A throwaway MariaDB (the Debian package's binaries) on a free loopback port, in a temp dir,
//! stopped and removed on drop. Set up as the `mysql` image sets up a `kip service add mysql`
//! instance: root with a password, a user `skipper` (same password) and a database `app` that
//! user may use.
//!
//! `mariadbd` refuses to run as root; tests run as root in CI, so then the server runs as the
//! `mysql` system user the package creates (the process switches user itself, so its pid is
//! the server's).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{command_as, free_port, server_owner, stop, text};

pub const PASSWORD: &str = "kip-test-My5ql";

pub struct MariaDb {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl MariaDb {
    /// The environment that points a `mysql` client at this server (`NAME=VALUE,…`).
    pub fn client_env(&self) -> String {
        format!("MYSQL_HOST=127.0.0.1,MYSQL_TCP_PORT={}", self.port)
    }

    pub fn start() -> MariaDb {
        let owner = server_owner("mysql", "mariadb-server");
        let dir = tempfile::Builder::new()
            .prefix("kip-mariadb-")
            .tempdir()
            .expect("temp dir");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let data = dir.path().join("data");
        // A temp dir of its own: servers bootstrapping at once in a shared /tmp clash on the
        // names of their temporary tables ("Unknown table 'mysql.tmp_user_sys'").
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("temp dir of the server");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).expect("chown");
        }
        // --no-defaults: the machine's /etc/mysql settings are not this server's.
        let install = command_as("mariadb-install-db", owner)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdin(Stdio::null())
            .output()
            .expect("mariadb-install-db on the PATH (./test.sh installs mariadb-server)");
        assert!(
            install.status.success(),
            "mariadb-install-db failed: {}",
            text(&install)
        );

        let port = free_port();
        let child = command_as("/usr/sbin/mariadbd", owner)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--socket={}", socket(dir.path()).display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                dir.path().join("server.log").display()
            ))
            .args([&format!("--port={port}"), "--bind-address=127.0.0.1"])
            // Small and quick: a test server holds a few empty databases.
            .args([
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let mut db = MariaDb { port, dir, child };
        db.wait_ready();
        // What the mysql image does with MYSQL_ROOT_PASSWORD, MYSQL_USER and MYSQL_DATABASE.
        db.socket_sql(&format!(
            "ALTER USER 'root'@'localhost' IDENTIFIED BY '{PASSWORD}';
             ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';
             CREATE USER 'skipper'@'%' IDENTIFIED BY '{PASSWORD}';
             CREATE DATABASE app;
             GRANT ALL PRIVILEGES ON app.* TO 'skipper'@'%';"
        ));
        db
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("mariadbd exited ({status}): {}", self.log());
            }
            let out = self.socket_output("SELECT 1");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd never accepted a connection: {}\n{}",
                text(&out),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Root over the socket, before root has a password.
    fn socket_output(&self, sql: &str) -> Output {
        Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket(self.dir.path()).display()))
            .args(["-uroot", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .expect("mariadb client on the PATH (./test.sh installs mariadb-client)")
    }

    fn socket_sql(&self, sql: &str) {
        let out = self.socket_output(sql);
        assert!(out.status.success(), "{sql:?} failed: {}", text(&out));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The `mysql` client over TCP as `user` (password [`PASSWORD`]), straight to the server
    /// (not through kip): `-e SQL`, tab-separated, no column names.
    pub fn mysql_output(&self, user: &str, database: &str, sql: &str) -> Output {
        let mut cmd = Command::new("mysql");
        cmd.arg("--no-defaults")
            .args(["-h", "127.0.0.1", "-P", &self.port.to_string()])
            .args(["-u", user, &format!("-p{PASSWORD}")])
            .args(["--batch", "--skip-column-names", "-e", sql]);
        if !database.is_empty() {
            cmd.args(["-D", database]);
        }
        cmd.stdin(Stdio::null()).output().expect("mysql client")
    }

    /// The databases of this instance, as root sees them.
    pub fn databases(&self) -> Vec<String> {
        let out = self.mysql_output("root", "", "SHOW DATABASES");
        assert!(out.status.success(), "SHOW DATABASES: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn socket(dir: &Path) -> PathBuf {
    dir.join("sock")
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // SIGTERM is a clean shutdown.
        stop(&mut self.child, libc::SIGTERM);
    }
}
