//! `kip sandbox up --server`: `kip server` in the background beside the sandbox, on the same
//! kip home, with its pid and log in the sandbox's folder; `kip sandbox down` stops both.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sandbox::home::SandboxHome;

fn pid_file(home: &SandboxHome) -> PathBuf {
    home.dir.join("server.pid")
}

pub fn log_file(home: &SandboxHome) -> PathBuf {
    home.dir.join("server.log")
}

/// The pid of the server beside the sandbox, when it runs.
pub fn running(home: &SandboxHome) -> Option<i32> {
    crate::sandbox_cmd::live_pid(&pid_file(home))
}

/// The address the server said it listens on, from its log.
pub fn address(home: &SandboxHome) -> Option<String> {
    let log = std::fs::read_to_string(log_file(home)).ok()?;
    log.lines()
        .find_map(|l| l.split("kip server listening on ").nth(1))
        .map(|a| a.trim().to_string())
}

/// Starts `kip server` beside the sandbox unless one runs; says which, and where.
pub fn up(home: &SandboxHome) -> Result<(), String> {
    if let Some(pid) = running(home) {
        let at = address(home).unwrap_or_default();
        println!("✔ kip server already running beside it at {at} (pid {pid})");
        return Ok(());
    }
    let log = sandbox::home::private_file(&log_file(home))
        .and_then(|log| log.set_len(0).map(|()| log))
        .map_err(|e| format!("cannot create {}: {e}", log_file(home).display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the kip binary: {e}"))?;
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .args(["server", "--listen", "127.0.0.1:0"])
            .env(
                "KIP_HOME",
                home.dir.parent().unwrap_or(std::path::Path::new(".")),
            )
            .env("KUBECONFIG", home.kubeconfig())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start kip server: {e}"))?
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let at = loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log_file(home)).unwrap_or_default();
            return Err(format!(
                "kip server exited at start ({status}):\n{}",
                log.trim_end()
            ));
        }
        if let Some(at) = address(home) {
            break at;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "kip server did not start within 30s; see {}",
                log_file(home).display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    sandbox::home::write_private(&pid_file(home), child.id().to_string().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", pid_file(home).display()))?;
    println!(
        "✔ kip server running beside it at {at} (pid {}): it reconciles Apps, Projects and Services; log: {}",
        child.id(),
        log_file(home).display()
    );
    Ok(())
}

/// Stops the server beside the sandbox (SIGTERM, SIGKILL after 10 s); its pid if it ran.
pub fn stop(home: &SandboxHome) -> Option<i32> {
    let pid = running(home)?;
    crate::sandbox_cmd::terminate(pid);
    let _ = std::fs::remove_file(pid_file(home));
    Some(pid)
}
