//! Running podman from the kubelet: a command's output or what it said when it failed.

use std::os::fd::AsRawFd;

use crate::containers::Containers;

/// Runs `podman ARGS`; its stdout, or an error with what podman printed.
///
/// The command runs on a blocking thread that waits for it itself: woken by tokio's child
/// reaper, a worker was seen left waiting a minute for a podman that had long exited (a zombie
/// until some other child's exit woke the reaper), which stalled pods at ContainerCreating.
pub async fn run(containers: &Containers, args: &[&str]) -> Result<String, String> {
    let mut command = containers.command("podman");
    command.args(args);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| format!("cannot run podman: {e}"))?
        .map_err(|e| format!("cannot run podman: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim_start_matches("Error: "))
        .next_back()
        .unwrap_or("no message");
    Err(format!(
        "podman {} failed: {said}",
        args.first().unwrap_or(&"")
    ))
}

/// Removes the podman pods of the sandbox in the folder `owner` (label
/// [`super::SANDBOX_LABEL`]), giving their containers `grace` seconds to stop.
pub async fn remove_pods(containers: &Containers, owner: &str, grace: u64) {
    let filter = format!("label={}={owner}", super::SANDBOX_LABEL);
    let Ok(pods) = run(containers, &["pod", "ps", "-q", "--filter", &filter]).await else {
        return;
    };
    let pods: Vec<&str> = pods.split_whitespace().collect();
    if !pods.is_empty() {
        let grace = grace.to_string();
        let mut args = vec!["pod", "rm", "-f", "-t", &grace];
        args.extend(pods);
        let _ = run(containers, &args).await;
    }
}

/// An exclusive lock on `NAME.lock` in the store folder, so that sandboxes sharing the store do
/// not pick the same network. Released when dropped (or when the process ends).
pub struct Lock {
    _file: std::fs::File,
}

pub async fn lock(containers: &Containers, name: &str) -> Result<Lock, String> {
    let path = containers.dir().join(format!("{name}.lock"));
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: flock takes a file descriptor the open file owns for the whole call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(Lock { _file: file })
    })
    .await
    .map_err(|e| format!("cannot lock the container store: {e}"))?
}
