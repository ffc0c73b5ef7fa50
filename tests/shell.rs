//! `kip shell` through the real binary against a sandbox: lines piped into its stdin, as a
//! script would drive it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::common::{ServedSandbox, kip_bin};

/// Runs `kip shell` with `input` on its stdin.
fn shell(sb: &ServedSandbox, input: &str) -> Output {
    let mut child = Command::new(kip_bin())
        .arg("shell")
        .env("KIP_HOME", sb.kip_home())
        .env("KUBECONFIG", sb.kubeconfig())
        .env_remove("KIP_SCRIPTS")
        .current_dir(sb.kip_home())
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

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
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
    assert!(
        container["env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "GREETING" && e["value"] == "hello world"),
        "the quoted value stays one word: {container}"
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
