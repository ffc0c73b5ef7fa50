//! The files that hold secrets: the admin token file must be private or the gateway does not
//! start, and the registry (token hashes) is written private, in a private directory when the
//! gateway creates one.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs a gateway that must refuse to start: its exit code and stderr. One that is still
/// running after 30 s started, and fails the test.
fn refused_start(mut command: Command, what: &str) -> (Option<i32>, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the gateway started with {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

#[test]
fn a_token_file_group_or_others_may_read_or_write_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin-token");
    // Creates the token file (0600) and the registry.
    drop(Gateway::start_in(dir.path(), &["--init"]));
    for loose in [0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o666] {
        set_mode(&token, loose);
        let what = format!("a token file of mode {loose:04o}");
        let (code, err) = refused_start(command(dir.path(), &[]), &what);
        assert_eq!(code, Some(2), "{what}: {err}");
        let fix = format!("chmod 600 {}", token.display());
        assert!(
            err.contains(&token.display().to_string())
                && err.contains(&format!("mode {loose:04o}"))
                && err.contains(&fix),
            "mode {loose:04o}: {err}"
        );
    }
    for private in [0o600, 0o400] {
        set_mode(&token, private);
        let gw = Gateway::start_in(dir.path(), &[]);
        assert_eq!(admin(gw.admin, "GET", "/healthz", None, b"").status, 200);
    }
}

#[test]
fn the_registry_is_written_private_in_a_private_directory() {
    let a = Backend::start("a");
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("state/kip-gateway/registry.json");
    let registry_arg = registry.to_str().unwrap();
    // A directory that does not exist yet: --init creates it, for the gateway alone.
    let mut gw = Gateway::start_in(dir.path(), &["--init", "--registry", registry_arg]);
    assert_eq!(mode(&registry), 0o600);
    assert_eq!(mode(registry.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("state")), 0o700);
    gw.register("127-0-0-1", a.addr);
    assert_eq!(mode(&registry), 0o600, "rewritten private");
    gw.kill();

    // A registry file others could read (an operator's copy, a restored backup) is made
    // private at start, and said so.
    set_mode(&registry, 0o644);
    let gw = Gateway::start_in(dir.path(), &["--registry", registry_arg]);
    assert_eq!(mode(&registry), 0o600);
    gw.log_line(&["had mode 0644", "now 0600"]);
    assert_eq!(gw.get("x-127-0-0-1.kipper.test", "/").status, 200);
}
