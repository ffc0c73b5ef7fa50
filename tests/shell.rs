//! `kip shell` through the real binary against a sandbox: lines piped into its stdin, as a
//! script would drive it.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{ServedSandbox, stderr as err, stdout as out};

/// Runs `kip shell` with `input` on its stdin.
fn shell(sb: &ServedSandbox, input: &str) -> Output {
    let mut child = sb
        .kip_command(&["shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kip shell");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write the lines");
    child.wait_with_output().expect("kip shell output")
}

#[test]
fn verb_lines_run_like_the_cli() {
    let sb = ServedSandbox::start();
    let run = shell(
        &sb,
        "app deploy --name api --image 'ghcr.io/acme/api:latest' --port 3000 --env \"GREETING=hello world\"\n\
         app list -o json\n\
         app delete api\n\
         help\n\
         app deploy --help\n\
         exit\n",
    );
    let (stdout, stderr) = (out(&run), err(&run));
    assert!(
        stdout.starts_with("Deploying api...\n✔ Deployment created\n"),
        "{stdout}\n{stderr}"
    );
    // `app list -o json` printed the app as the CLI does.
    let json_start = stdout.find("[\n").expect("a JSON array");
    let json_end = stdout[json_start..].find("\n]").expect("its end") + json_start + 2;
    let apps: serde_json::Value =
        serde_json::from_str(&stdout[json_start..json_end]).expect("JSON");
    assert_eq!(apps[0]["name"], "api", "{apps}");
    // A destructive verb without --yes and without a terminal is refused, as by the CLI, and
    // the session goes on.
    assert!(
        stderr.contains("pass --yes to confirm"),
        "{stderr}\n{stdout}"
    );
    assert!(stdout.contains("Verbs:\n"), "{stdout}");
    assert!(stdout.contains("  app deploy"), "{stdout}");
    assert!(stdout.contains("Usage: kip app deploy"), "{stdout}");
    // The refused delete makes the session fail.
    assert_eq!(run.status.code(), Some(1), "{stderr}");

    let k = sb.kubectl();
    let deployment = k.json(&["get", "deployment", "api"]);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/acme/api:latest");
    let env = k.json(&["get", "configmap", "api-env"]);
    assert_eq!(
        env["data"]["GREETING"], "hello world",
        "the quoted value stays one word: {env}"
    );
}

#[test]
fn rhai_lines_share_one_scope() {
    let sb = ServedSandbox::start();
    let run = shell(
        &sb,
        "let n = 2\n\
         n * 21\n\
         fn double(x) {\n\
             x * 2\n\
         }\n\
         double(n)\n\
         k8s::list(\"v1\", \"Namespace\", \"\").map(|ns| ns.metadata.name).contains(\"default\")\n",
    );
    assert_eq!(out(&run), "42\n4\ntrue\n", "{}", err(&run));
    // The end of the input ends the shell; no line failed.
    assert_eq!(run.status.code(), Some(0), "{}", err(&run));
}

#[test]
fn a_failing_line_does_not_end_the_session() {
    let sb = ServedSandbox::start();
    let run = shell(
        &sb,
        "app list --nope\n\
         1 + undefined_var\n\
         app deploy --name 'api\n\
         let still = \"here\"\n\
         still\n\
         app list\n\
         quit\n\
         still\n",
    );
    let (stdout, stderr) = (out(&run), err(&run));
    assert!(
        stderr.contains("error: unexpected argument '--nope' found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: Variable not found: undefined_var\n  --> <shell>:1:5\n"),
        "{stderr}"
    );
    assert!(stderr.contains("1 | 1 + undefined_var"), "{stderr}");
    assert!(stderr.contains("unclosed quote"), "{stderr}");
    // The lines after the errors ran; the one after `quit` did not.
    assert_eq!(stdout.matches("here").count(), 1, "{stdout}");
    assert!(stdout.contains("NAME"), "app list ran: {stdout}");
    assert_eq!(run.status.code(), Some(1), "a line failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `kip shell` on a pseudo-terminal (`script`), typed into once its prompt is drawn.
struct Terminal {
    child: std::process::Child,
    stdin: Arc<Mutex<std::process::ChildStdin>>,
    seen: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    shown: usize,
    deadline: Instant,
}

impl Terminal {
    /// `None` when this machine has no `script` (util-linux).
    fn shell(sb: &ServedSandbox) -> Option<Terminal> {
        if Command::new("script").arg("--version").output().is_err() {
            eprintln!("no `script` (util-linux) on this machine: skipped");
            return None;
        }
        let mut child = sb
            .kip_on_terminal("shell")
            .env("TERM", "xterm")
            .spawn()
            .expect("spawn script");
        let seen = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().expect("stdout");
        let stdin = Arc::new(Mutex::new(child.stdin.take().expect("stdin")));
        let reader = {
            let seen = seen.clone();
            let stdin = stdin.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    // Answer the editor's cursor position queries as a terminal would, or it
                    // waits for each one.
                    for _ in 0..text.matches("\x1b[6n").count() {
                        let _ = stdin.lock().expect("stdin").write_all(b"\x1b[1;1R");
                    }
                    seen.lock().expect("output").push_str(&text);
                }
            })
        };
        Some(Terminal {
            child,
            stdin,
            seen,
            reader: Some(reader),
            shown: 0,
            deadline: Instant::now() + Duration::from_secs(60),
        })
    }

    fn output(&self) -> String {
        self.seen.lock().expect("output").clone()
    }

    /// Prompts drawn so far. Each new prompt starts with the editor asking where the cursor
    /// is; it is ready once the prompt is drawn after that.
    fn prompts(&self) -> usize {
        let seen = self.output();
        let queries = seen.matches("\x1b[6n").count();
        let drawn = seen
            .rsplit("\x1b[6n")
            .next()
            .is_some_and(|last| last.contains("kip> "));
        if drawn {
            queries
        } else {
            queries.saturating_sub(1)
        }
    }

    fn press(&self, key: &str) {
        self.stdin
            .lock()
            .expect("stdin")
            .write_all(key.as_bytes())
            .expect("type");
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Types `keys` once the next prompt is ready.
    fn type_line(&mut self, keys: &[&str]) {
        while self.prompts() <= self.shown {
            assert!(
                Instant::now() < self.deadline,
                "no prompt: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.shown = self.prompts();
        for key in keys {
            self.press(key);
        }
    }

    /// Waits until `text` has been drawn.
    fn wait_for(&self, text: &str) {
        while !self.output().contains(text) {
            assert!(
                Instant::now() < self.deadline,
                "no {text:?} in: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the shell to end; everything it drew.
    fn finish(mut self) -> String {
        while self.child.try_wait().expect("wait").is_none() {
            if Instant::now() > self.deadline {
                let _ = self.child.kill();
                panic!("the shell did not end: {}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.output()
    }
}

/// The interactive shell through a pseudo-terminal: a line is typed once the prompt shows,
/// Tab completes a verb, its flag's value, and history is kept.
#[test]
fn interactive_on_a_terminal() {
    let sb = ServedSandbox::start();
    let Some(mut terminal) = Terminal::shell(&sb) else {
        return;
    };
    let lines: &[&[&str]] = &[
        &["let n = 2\r"],
        &["n * 21\r"],
        // `li` alone is `link`, `links` or `list`: `lis` is one.
        &["ap\t", "lis\t", "-o js\t", "\r"],
        &["exit\r"],
    ];
    for keys in lines {
        terminal.type_line(keys);
    }
    let output = terminal.finish();
    assert!(output.contains("42"), "{output}");
    let history_file = sb.kip_home().join("shell_history");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&history_file)
            .expect("history file")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "typed lines may hold secrets: {mode:o}");
    let history = std::fs::read_to_string(&history_file).expect("history file");
    assert!(history.contains("let n = 2\n"), "{history}");
    assert!(
        history.contains("app list -o json"),
        "Tab completed the verb and the flag's value: {history}"
    );
    assert!(output.contains("[]"), "app list -o json ran: {output}");
}

/// Ctrl-C while a line waits interrupts that line; the shell and its variables live on.
#[test]
fn ctrl_c_interrupts_the_running_line_not_the_shell() {
    let sb = ServedSandbox::start();
    let deployed = sb.kip(&[
        "app", "deploy", "--name", "api", "--image", "x:1", "--port", "80",
    ]);
    assert!(deployed.status.success(), "{}", err(&deployed));
    let slow = r#"{"spec":{"template":{"metadata":{"annotations":{"sandbox.kipper.run/start-delay-ms":"60000"}}}}}"#;
    sb.kubectl()
        .ok(&["patch", "deployment", "api", "--type", "merge", "-p", slow]);
    let Some(mut terminal) = Terminal::shell(&sb) else {
        return;
    };
    terminal.type_line(&["let n = 20\r"]);
    terminal.type_line(&["app restart api\r"]);
    terminal.wait_for("Waiting for the rollout of deployment `api`");
    terminal.press("\x03");
    terminal.wait_for("interrupted (Ctrl-C)");
    terminal.type_line(&["n + 22\r"]);
    terminal.wait_for("42");
    terminal.type_line(&["exit\r"]);
    let output = terminal.finish();
    assert!(output.contains("42"), "{output}");
}
