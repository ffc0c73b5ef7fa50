//! `ssh::connect` without a key uses the SSH agent named by `SSH_AUTH_SOCK`: a real
//! `ssh-agent` holding the throwaway client key, a real sshd. Its own test binary, because it
//! sets `SSH_AUTH_SOCK` for the whole process.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use builtins::{ClusterChoice, Host, NoTemplates, UiSettings};
use common::sshd::Sshd;

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn without_a_key_the_agent_logs_in() {
    let sshd = Sshd::start();
    let socket = sshd.dir.path().join("agent.sock");
    let agent = Agent(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client)"),
    );
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let added = Command::new("ssh-add")
        .arg(sshd.client_key())
        .env("SSH_AUTH_SOCK", &socket)
        .stderr(Stdio::null())
        .status()
        .expect("ssh-add");
    assert!(added.success(), "ssh-add failed");
    // SAFETY: set before this process starts any thread of its own (the runtime comes after),
    // and this binary holds this one test.
    unsafe { std::env::set_var("SSH_AUTH_SOCK", &socket) };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let home = tempfile::tempdir().unwrap();
    let host = Host::new(
        runtime.handle().clone(),
        home.path().to_path_buf(),
        Arc::new(NoTemplates),
        UiSettings::default(),
        ClusterChoice::unreachable("sandbox", "no cluster in ssh tests"),
    );
    let mut engine = rhai::Engine::new();
    builtins::register_all(&mut engine, Arc::new(host));
    let script = format!(
        r#"let s = ssh::connect(#{{ host: "127.0.0.1", port: {}, user: "kiptest", accept_host_key: true }});
        ssh::run(s, "id -un")"#,
        sshd.port
    );
    let out: String = engine
        .eval(&script)
        .unwrap_or_else(|err| panic!("{err}\nsshd log:\n{}", sshd.log()));
    assert_eq!(out, "kiptest\n");
    drop(agent);
}
