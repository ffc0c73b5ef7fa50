//! A throwaway PostgreSQL (the Debian package's binaries) on a free loopback port, in a temp
//! dir, stopped and removed on drop. The superuser is `skipper` with a password, and there is a
//! database `app`, like a `kip service add postgres` instance.
//!
//! `initdb` and `postgres` refuse to run as root; tests run as root in CI, so then the server
//! runs as the `postgres` system user the package creates (the process itself switches user:
//! no `su` in between, so its pid is the server's).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{command_as, free_port, server_owner, stop, text};

pub const USER: &str = "skipper";
pub const PASSWORD: &str = "kip-test-Pa55";

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<major>/bin`).
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (./test.sh installs it)")
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
        .1
}

/// `program` as `owner`, without the caller's `PGDATA`.
fn command(program: &Path, owner: Option<(u32, u32)>) -> Command {
    let mut cmd = command_as(program, owner);
    cmd.env_remove("PGDATA");
    cmd
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let owner = server_owner("postgres", "postgresql");
        let dir = tempfile::Builder::new()
            .prefix("kip-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).expect("write the password file");
        if let Some((uid, gid)) = owner {
            for path in [dir.path(), pwfile.as_path()] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
            }
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let init = command(&bin.join("initdb"), owner)
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-E", "UTF8", "--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(init.status.success(), "initdb failed: {}", text(&init));

        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path().join("server.log"), Some(uid), Some(gid))
                .expect("chown");
        }
        let child = command(&bin.join("postgres"), owner)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let mut pg = Postgres { port, dir, child };
        pg.wait_ready();
        pg.psql("postgres", "CREATE DATABASE app");
        pg
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("postgres exited ({status}): {}", self.log());
            }
            let out = self.psql_output("postgres", "SELECT 1");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres never accepted a connection: {}\n{}",
                text(&out),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `psql` over TCP with the password, straight to the server (not through kip).
    pub fn psql_output(&self, database: &str, sql: &str) -> Output {
        psql(self.port, database, sql)
    }

    /// Runs `sql` straight against the server; its unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self.psql_output(database, sql);
        assert!(out.status.success(), "psql {sql:?} failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The names of the databases in this instance.
    pub fn databases(&self) -> Vec<String> {
        self.psql(
            "postgres",
            "SELECT datname FROM pg_database ORDER BY datname",
        )
        .lines()
        .map(str::to_string)
        .collect()
    }
}

/// `psql -h 127.0.0.1 -p PORT -U skipper -d DATABASE -At -c SQL` with the password.
pub fn psql(port: u16, database: &str, sql: &str) -> Output {
    psql_as(port, USER, PASSWORD, database, sql)
}

/// [`psql`] as `user` with `password`.
pub fn psql_as(port: u16, user: &str, password: &str, database: &str, sql: &str) -> Output {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            database,
        ])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "20")
        .stdin(Stdio::null())
        .output()
        .expect("psql on the PATH (./test.sh installs postgresql-client)")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Fast shutdown (SIGINT): backends end, shared memory is released.
        stop(&mut self.child, libc::SIGINT);
    }
}
