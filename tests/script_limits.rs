//! Hostile scripts through the real `kip` binary: `kip eval`, `kip run FILE` and `kip shell`
//! all run under the CLI limits, and a script stopped by the memory limit leaves the process's
//! peak memory near that limit (1 GiB).

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

const MIB: u64 = 1024 * 1024;

/// What a run of kip printed, how it exited, and its peak resident memory.
struct Run {
    stdout: String,
    stderr: String,
    success: bool,
    peak_rss: u64,
}

/// Runs kip with `args` and `stdin` in a fresh kip home, reading its peak RSS from `wait4`.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also reports its peak RSS"
)]
fn kip(args: &[&str], stdin: &str) -> Run {
    let home = tempfile::tempdir().expect("a kip home");
    let mut child = crate::common::kip_command()
        .args(args)
        .env("KIP_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (stdout, stderr) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let mut status = 0;
    // SAFETY: `rusage` is plain data, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals `wait4` fills in; the pid is our own child's.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    Run {
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        success: std::process::ExitStatus::from_raw(status).success(),
        peak_rss: usage.ru_maxrss as u64 * 1024,
    }
}

fn eval(script: &str) -> Run {
    kip(&["eval", script], "")
}

/// The issue's own case: a 16 MB string split into characters took 1 GB and more before it
/// was stopped. Now the split is sized first: 16 MB of characters fit the 1 GiB limit and are
/// made, 32 MB do not and are refused before anything is made.
#[test]
fn splitting_a_big_string_stays_near_the_memory_limit() {
    let split = |bytes: u64| {
        eval(&format!(
            "let s = \"\"; s.pad({bytes}, \"x\"); s.split(\"\").len()"
        ))
    };
    let fits = split(16 * MIB);
    assert!(fits.success, "{}", fits.stderr);
    assert_eq!(fits.stdout.trim(), (16 * MIB + 2).to_string());
    assert!(
        fits.peak_rss < 1280 * MIB,
        "peak RSS {} MiB",
        fits.peak_rss / MIB
    );
    let too_big = split(32 * MIB);
    assert!(!too_big.success, "{}", too_big.stdout);
    assert!(
        too_big.stderr.contains("past its 1024 MiB of memory"),
        "{}",
        too_big.stderr
    );
    assert!(
        too_big.peak_rss < 256 * MIB,
        "peak RSS {} MiB",
        too_big.peak_rss / MIB
    );
}

/// One string a hundred thousand times in a list is 1.6 MB; printed, it would be 100 GB.
#[test]
fn printing_a_list_of_one_big_string_stops_near_the_memory_limit() {
    let run = eval(
        "let s = \"\"; s.pad(1 << 20, \"x\"); let a = []; a.pad(100000, s); a.to_string().len()",
    );
    assert!(!run.success, "{}", run.stdout);
    assert!(run.stderr.contains("1024 MiB"), "{}", run.stderr);
    assert!(
        run.peak_rss < 1280 * MIB,
        "peak RSS {} MiB",
        run.peak_rss / MIB
    );
}

#[test]
fn a_pipeline_file_runs_under_the_same_limits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spin.rhai");
    std::fs::write(&file, "while true {}").unwrap();
    let run = kip(&["run", file.to_str().unwrap()], "");
    assert!(!run.success);
    assert!(
        run.stderr.to_lowercase().contains("too many operations"),
        "{}",
        run.stderr
    );
}

/// `kip shell` builds its engine as the CLI does: a runaway line is stopped by the memory
/// limit, and the session goes on.
#[test]
fn the_shell_stops_a_runaway_line_and_goes_on() {
    let run = kip(
        &["shell"],
        "let c = \"\"; c.pad(65536, \"x\"); let s = \"\"; loop { s += c; }\n\
         while true {}\n40 + 2\nexit\n",
    );
    assert!(
        run.stderr.contains("more than its 1024 MiB of memory"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.to_lowercase().contains("too many operations"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("42"), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.peak_rss < 1280 * MIB,
        "peak RSS {} MiB",
        run.peak_rss / MIB
    );
}
