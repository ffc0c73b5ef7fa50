//! `pods/exec` through the real `kubectl exec` (WebSocket, v5.channel.k8s.io): the independent
//! client check of the sandbox's exec, which runs commands on this machine only when started
//! with `--allow-host-exec` and only for pods annotated `sandbox.kipper.run/exec: host`.

use crate::common::ServedSandbox;

/// A Secret, a ConfigMap and two pods: `host` runs exec on this machine with an environment
/// from all sources, `plain` has no annotation.
const OBJECTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret, user: root}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {colour: blue}
---
apiVersion: v1
kind: Pod
metadata:
  name: host
  annotations:
    sandbox.kipper.run/exec: host
    sandbox.kipper.run/exec-env: "MYSQL_HOST=127.0.0.1,MYSQL_TCP_PORT=13306"
spec:
  containers:
  - name: db
    image: mysql
    envFrom:
    - secretRef: {name: creds}
      prefix: DB_
    - configMapRef: {name: settings}
    env:
    - {name: GREETING, value: "hello $(colour)"}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  containers: [{name: web, image: nginx}]
"#;

fn started(sb: &ServedSandbox) {
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], OBJECTS);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/host",
        "pod/plain",
        "--timeout=30s",
    ]);
}

#[test]
fn kubectl_exec_runs_on_the_host_with_the_containers_environment() {
    let sb = ServedSandbox::with_host_exec();
    started(&sb);
    let k = sb.kubectl();
    let printed = k.ok(&[
        "exec",
        "host",
        "--",
        "sh",
        "-c",
        "echo \"$PASSWORD|$DB_user|$GREETING|$POD|$MYSQL_HOST:$MYSQL_TCP_PORT\"",
    ]);
    assert_eq!(printed, "s3cret|root|hello blue|host|127.0.0.1:13306\n");

    // The exit code and stderr come back as kubectl reports them for a real container.
    let failed = k.run(&[
        "exec",
        "host",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(failed.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&failed.stdout), "out\n");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 7"),
        "{stderr}"
    );

    // stdin, ended by kubectl's close signal (v5).
    let echoed = k.ok_stdin(
        &["exec", "-i", "host", "-c", "db", "--", "tr", "a-z", "A-Z"],
        "shout\n",
    );
    assert_eq!(echoed, "SHOUT\n");

    let missing = k.fails(&["exec", "host", "--", "no-such-program-kip"]);
    assert!(
        missing.contains("executable file not found in $PATH"),
        "{missing}"
    );
    let container = k.fails(&["exec", "host", "-c", "web", "--", "true"]);
    assert!(
        container.contains("container web is not valid for pod host"),
        "{container}"
    );
    let unknown = k.fails(&["exec", "nope", "--", "true"]);
    assert!(
        unknown.contains("NotFound") || unknown.contains("not found"),
        "{unknown}"
    );

    // Allowed by the sandbox, but not by this pod.
    let plain = k.fails(&["exec", "plain", "--", "true"]);
    assert!(plain.contains("Forbidden"), "{plain}");
    assert!(
        plain.contains("annotate the pod (or its template) with sandbox.kipper.run/exec: host"),
        "{plain}"
    );
}

#[test]
fn exec_is_refused_unless_the_sandbox_was_started_with_the_opt_in() {
    let sb = ServedSandbox::start();
    started(&sb);
    let refused = sb.kubectl().fails(&["exec", "host", "--", "true"]);
    assert!(refused.contains("Forbidden"), "{refused}");
    assert!(
        refused.contains("kip sandbox serve --allow-host-exec"),
        "{refused}"
    );
}

#[test]
fn host_exec_needs_a_loopback_address() {
    let home = tempfile::tempdir().expect("temp home");
    let out = crate::common::kip_command()
        .args([
            "sandbox",
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--allow-host-exec",
        ])
        .env("KIP_HOME", home.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run kip");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--allow-host-exec") && stderr.contains("loopback"),
        "{stderr}"
    );
}

/// The channel protocols read a text frame like a binary one, as the API server does: stdin a
/// client sends as text reaches the command instead of being dropped.
#[tokio::test]
async fn stdin_sent_in_text_frames_reaches_the_command() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let sb = ServedSandbox::with_host_exec();
    started(&sb);
    let url = format!(
        "{}/api/v1/namespaces/default/pods/host/exec?container=db&command=tr&command=a-z&command=A-Z&stdin=true&stdout=true",
        sb.url().replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("exec upgrade");
    ws.send(Message::Text("\u{0}shout\n".into())).await.unwrap();
    // v5's close of stdin: channel 255, then the stream to close.
    ws.send(Message::Binary(vec![255, 0].into())).await.unwrap();
    let mut stdout = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Binary(data) = message
                && data.first() == Some(&1)
            {
                stdout.extend_from_slice(&data[1..]);
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the exec stream did not end");
    assert_eq!(String::from_utf8_lossy(&stdout), "SHOUT\n");
}
