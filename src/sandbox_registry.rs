//! The sandbox's local image registry: Debian's `docker-registry` (the v2 API), a child of
//! `kip sandbox serve` on a loopback port, so pods can pull what `kip sandbox image build` and
//! `prepare` push without any public registry. Its storage stays in the sandbox's folder across
//! restarts, and so does its port when free, so references like `127.0.0.1:PORT/web` keep
//! working after `kip sandbox down` and `up`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sandbox::home::SandboxHome;

/// The binary Debian's `docker-registry` package installs.
const PROGRAM: &str = "docker-registry";

/// How long the registry may take to answer `GET /v2/` at start.
const START_WAIT: Duration = Duration::from_secs(10);

/// A running registry, stopped when [`LocalRegistry::stop`] is called or, failing that, killed
/// when dropped.
pub struct LocalRegistry {
    /// Where it listens (always loopback).
    pub address: SocketAddr,
    child: tokio::process::Child,
}

/// The registry's folder: its configuration, storage and log.
pub fn dir(home: &SandboxHome) -> PathBuf {
    home.dir.join("registry")
}

/// The file that records the registry's address, also after it stopped (its port is tried
/// first at the next start).
pub fn address_file(home: &SandboxHome) -> PathBuf {
    home.dir.join("registry.address")
}

fn log_file(home: &SandboxHome) -> PathBuf {
    dir(home).join("registry.log")
}

/// The address the registry of `home` listens or last listened on, as `HOST:PORT`.
pub fn address(home: &SandboxHome) -> Option<String> {
    std::fs::read_to_string(address_file(home))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The address of the registry of `home` when it runs and answers.
pub fn running_address(home: &SandboxHome) -> Option<String> {
    address(home).filter(|a| answers(a))
}

/// Whether `docker-registry` can be started here; if not, what to install.
pub fn unavailable() -> Option<String> {
    (!sandbox::containers::on_path(PROGRAM)).then(|| {
        "docker-registry is not installed, so the sandbox has no image registry \
         (on Debian: apt-get install docker-registry)"
            .to_string()
    })
}

/// Starts the registry of `home` and waits until it answers; an error says why it could not
/// (with the end of its log when it started and failed).
pub async fn start(home: &SandboxHome) -> Result<LocalRegistry, String> {
    if let Some(why) = unavailable() {
        return Err(why);
    }
    let dir = dir(home);
    let data = dir.join("data");
    for folder in [&dir, &data] {
        sandbox::home::private_dir(folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    }
    let address = choose_address(home)?;
    let config = dir.join("config.yml");
    sandbox::home::write_private(&config, config_text(address, &data).as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let log = sandbox::home::private_file(&log_file(home))
        .and_then(|log| log.set_len(0).map(|()| log))
        .map_err(|e| format!("cannot create {}: {e}", log_file(home).display()))?;
    let mut command = tokio::process::Command::new(PROGRAM);
    command
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .kill_on_drop(true);
    // A serve that is killed outright (SIGKILL) cannot stop its registry: the kernel does, so no
    // orphan holds the port. This runs on the thread that stays until serve exits (block_on's).
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {PROGRAM}: {e}"))?;
    let deadline = Instant::now() + START_WAIT;
    let text = address.to_string();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{PROGRAM} exited at start ({status}):\n{}",
                log_tail(home)
            ));
        }
        let probe = text.clone();
        if tokio::task::spawn_blocking(move || answers(&probe))
            .await
            .unwrap_or(false)
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(format!(
                "{PROGRAM} did not answer on {address} within {}s:\n{}",
                START_WAIT.as_secs(),
                log_tail(home)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sandbox::home::write_private(&address_file(home), text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", address_file(home).display()))?;
    Ok(LocalRegistry { address, child })
}

impl LocalRegistry {
    /// Stops the registry: SIGTERM, so it finishes what it writes, SIGKILL after 5 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill takes no pointers; `pid` is our own child, not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// The port of last time when it is free, else one the system picks. Between choosing and the
/// registry binding it another process may take it; the start then fails and says so.
fn choose_address(home: &SandboxHome) -> Result<SocketAddr, String> {
    let last = address(home)
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .filter(|a| a.ip().is_loopback() && std::net::TcpListener::bind(a).is_ok());
    if let Some(last) = last {
        return Ok(last);
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free loopback port for the registry: {e}"))
}

fn config_text(address: SocketAddr, data: &std::path::Path) -> String {
    // Deleting is on so images can be pruned through the API; the access log would repeat every
    // pull in the sandbox's folder forever.
    format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  \
         filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
        data.display()
    )
}

/// The last lines of the registry's log, for errors.
fn log_tail(home: &SandboxHome) -> String {
    let log = std::fs::read_to_string(log_file(home)).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    if tail.is_empty() {
        format!("(nothing in {})", log_file(home).display())
    } else {
        tail
    }
}

/// Whether a registry answers `GET /v2/` with 200 at `address`.
pub fn answers(address: &str) -> bool {
    let Ok(addr) = address.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_listens_where_asked_and_stores_in_the_folder() {
        let text = config_text(
            "127.0.0.1:5000".parse().unwrap(),
            std::path::Path::new("/k/sandbox/registry/data"),
        );
        assert!(text.contains("  addr: 127.0.0.1:5000\n"), "{text}");
        assert!(
            text.contains("    rootdirectory: /k/sandbox/registry/data\n"),
            "{text}"
        );
    }
}
