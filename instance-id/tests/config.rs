//! Bad settings end the binary with one line on stderr and a non-zero code, never a panic.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use support::{STEP, command};

/// Runs `cmd` to its end (bounded); its exit code, stdout and stderr.
fn run(mut cmd: Command) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + STEP;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not exit");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), out, err)
}

#[test]
fn bad_settings_are_one_clear_line_and_exit_2() {
    // (flags, environment, what stderr must say)
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: &[Case] = &[
        (
            &[],
            &[("POD_NAME", "p")],
            "no upstream port: set KIP_UPSTREAM_PORT",
        ),
        (
            &[],
            &[("KIP_UPSTREAM_PORT", "55536"), ("POD_NAME", "p")],
            "above 55535",
        ),
        (
            &[],
            &[("KIP_UPSTREAM_PORT", "eighty"), ("POD_NAME", "p")],
            "KIP_UPSTREAM_PORT is \"eighty\": not a port",
        ),
        (
            &[],
            &[("KIP_UPSTREAM_PORT", "8080")],
            "no pod name: set POD_NAME",
        ),
        (
            &["--listen-port", "99999"],
            &[("KIP_UPSTREAM_PORT", "8080"), ("POD_NAME", "p")],
            "--listen-port is \"99999\"",
        ),
        (&["--frobnicate"], &[], "unknown argument"),
    ];
    for (args, env, expected) in cases {
        let mut cmd = command();
        cmd.args(*args).envs(env.iter().copied());
        let (code, out, err) = run(cmd);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {err}");
        assert_eq!(out, "");
        assert!(
            err.starts_with("kip-instance-id: ") && err.contains(expected),
            "{args:?} {env:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_port_in_use_is_one_clear_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut cmd = command();
    cmd.args([
        "--listen-addr",
        "127.0.0.1",
        "--listen-port",
        &port.to_string(),
        "--upstream-port",
        "1",
    ])
    .env("POD_NAME", "p");
    let (code, _, err) = run(cmd);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "kip-instance-id: cannot listen on 127.0.0.1:{port}: "
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn help_names_every_setting() {
    let mut cmd = command();
    cmd.arg("--help");
    let (code, out, _) = run(cmd);
    assert_eq!(code, Some(0));
    for setting in [
        "KIP_UPSTREAM_PORT",
        "KIP_LISTEN_PORT",
        "KIP_LISTEN_ADDR",
        "POD_NAME",
        "HOSTNAME",
        "KIP_LOG_ERRORS",
    ] {
        assert!(out.contains(setting), "{setting} missing from --help");
    }
}
