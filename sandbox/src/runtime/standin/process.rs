//! A stand-in container's processes: each in a process group of its own, its stdout and stderr
//! (one pipe, in the order written) appended line by line to the container's log with the time
//! of each line; and the kill of a whole group with what it started.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A container's log: lines `TIME TEXT`, appended.
#[derive(Clone)]
pub struct Log {
    pub path: PathBuf,
    file: Arc<Mutex<Option<std::fs::File>>>,
}

impl Log {
    pub fn new(path: &Path) -> Log {
        Log {
            path: path.to_path_buf(),
            file: Arc::default(),
        }
    }

    /// Appends one line (without its line end), stamped with the time now.
    pub fn line(&self, text: &str) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            *file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
        }
        if let Some(f) = file.as_mut() {
            let text = text.trim_end_matches(['\r', '\n']);
            let _ = f.write_all(format!("{} {text}\n", jiff::Timestamp::now()).as_bytes());
        }
    }

    /// The text of its last lines, as the kubelet makes a termination message of a failed
    /// container's log: at most 80 lines and 2048 bytes, the last ones.
    pub fn tail(&self) -> String {
        let all = std::fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = all.lines().map(|l| strip_time(l).1).collect();
        let text = lines[lines.len().saturating_sub(80)..].join("\n");
        if text.len() <= 2048 {
            return text;
        }
        let mut cut = text.len() - 2048;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text[cut..].to_string()
    }
}

/// A log line's time and text.
pub fn strip_time(line: &str) -> (&str, &str) {
    line.split_once(' ').unwrap_or(("", line))
}

/// The process groups a pod's containers run now; once cancelled (the pod goes), no process
/// starts any more.
#[derive(Default)]
pub struct Groups {
    inner: Mutex<(bool, HashSet<i32>)>,
}

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, HashSet<i32>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops everything: no process starts after this; the groups that run now.
    pub fn cancel(&self) -> Vec<i32> {
        let mut inner = self.lock();
        inner.0 = true;
        inner.1.iter().copied().collect()
    }
}

/// Runs `cmd` to its end in a process group of its own, its output going to `log`; its exit
/// code (128 + the signal when killed). `every` also holds the group while it runs (the
/// runtime's, for when the sandbox stops).
pub async fn execute(
    mut cmd: std::process::Command,
    log: &Log,
    groups: &Arc<Groups>,
    every: &Arc<Mutex<HashSet<i32>>>,
) -> Result<i64, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("cannot make a pipe: {e}"))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0);
    let mut child = {
        let mut inner = groups.lock();
        if inner.0 {
            return Err("the pod is being deleted".into());
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        inner.1.insert(child.id() as i32);
        child
    };
    // The command holds the pipe's writing ends: the reader sees its end only without them.
    drop(cmd);
    let pid = child.id() as i32;
    every.lock().unwrap_or_else(|p| p.into_inner()).insert(pid);
    let out = log.clone();
    let reading = std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => out.line(&String::from_utf8_lossy(&buf)),
            }
        }
    });
    let (groups, every) = (groups.clone(), every.clone());
    // Waited for on a thread of its own, to the end even when the caller stops waiting (its
    // pod went): the group is forgotten only once it is gone, never while its id could be
    // another's.
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait();
        // What it left behind in its group (and below) goes with it: nothing keeps running,
        // nor holds the log's pipe.
        signal_tree(pid, libc::SIGKILL);
        let _ = reading.join();
        groups.lock().1.remove(&pid);
        every.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
        status
    })
    .await
    .map_err(|e| format!("cannot wait for {program}: {e}"))?
    .map_err(|e| format!("cannot wait for {program}: {e}"))?;
    Ok(status
        .code()
        .map(i64::from)
        .or(status.signal().map(|s| 128 + i64::from(s)))
        .unwrap_or(-1))
}

/// SIGTERM to each group and what its processes started (a build's containers may leave the
/// group), SIGKILL to what is left after `grace`.
pub async fn kill_groups(groups: &[i32], grace: Duration) {
    if groups.is_empty() {
        return;
    }
    for &g in groups {
        signal_tree(g, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && groups.iter().any(|&g| !tree(g).is_empty()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for &g in groups {
        signal_tree(g, libc::SIGKILL);
    }
}

fn signal_tree(group: i32, signal: i32) {
    for pid in tree(group) {
        // SAFETY: kill takes no pointers.
        unsafe { libc::kill(pid, signal) };
    }
}

/// The live processes of the process group `group` and their descendants, from /proc.
fn tree(group: i32) -> Vec<i32> {
    let mut all: Vec<(i32, i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID PGRP …`; COMM may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 3 || fields[0] == "Z" || fields[0] == "X" {
            continue;
        }
        let (Ok(ppid), Ok(pgrp)) = (fields[1].parse::<i32>(), fields[2].parse::<i32>()) else {
            continue;
        };
        all.push((pid, ppid, pgrp));
    }
    let mut found: HashSet<i32> = all
        .iter()
        .filter(|(_, _, g)| *g == group)
        .map(|(p, _, _)| *p)
        .collect();
    loop {
        let more: Vec<i32> = all
            .iter()
            .filter(|(p, pp, _)| !found.contains(p) && found.contains(pp))
            .map(|(p, _, _)| *p)
            .collect();
        if more.is_empty() {
            break;
        }
        found.extend(more);
    }
    found.into_iter().collect()
}
