//! Exec over WebSocket, as the API server serves it to kube-rs and kubectl (1.30 and later):
//! subprotocols `v5.channel.k8s.io` and `v4.channel.k8s.io`.
//!
//! Every binary message starts with its channel: 0 stdin (client to server), 1 stdout,
//! 2 stderr, 3 the error channel, 4 terminal resize (not used: no tty). When the command has
//! ended and its output is sent, the error channel carries one `Status` (`Success`, or
//! `Failure` with reason `NonZeroExitCode` and the code as an `ExitCode` cause, which kubectl
//! turns into its own exit code), then the server closes the WebSocket. In v5 the client ends
//! stdin with the message `[255, 0]`; in v4 it can only close the WebSocket, which, as on a
//! real cluster, also ends the command.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::host::HostCommand;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
/// v5: the next byte names a channel the sender will not write to again.
const CLOSE: u8 = 255;
/// The most bytes of output read into one message.
const CHUNK: usize = 32 * 1024;
/// How long to wait for the client's answer to our close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Which streams the client attached.
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

fn framed(channel: u8, payload: &[u8]) -> Message {
    let mut bin = BytesMut::with_capacity(payload.len() + 1);
    bin.extend_from_slice(&[channel]);
    bin.extend_from_slice(payload);
    Message::Binary(bin.freeze())
}

/// A close with code 1000: kubectl reads it as the end of every stream, while a close without
/// a code (1005) is an error to it ("error reading from error stream").
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// The Status the kubelet reports for a command that ran: a code of `None` means it was
/// killed by a signal, reported as 128 + the signal like a shell does.
pub fn exit_status(command: &[String], status: ExitStatus) -> Value {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The Status for a command that could not start.
fn start_failure(program: &str, e: &std::io::Error) -> Value {
    let why = if e.kind() == std::io::ErrorKind::NotFound {
        format!("exec: \"{program}\": executable file not found in $PATH")
    } else {
        format!("exec: \"{program}\": {e}")
    };
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("error executing command in container: {why}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": why}]},
    })
}

/// Runs `command` and carries its streams over `ws` until it ends or the client goes away.
pub async fn serve<S>(ws: WebSocketStream<S>, v5: bool, command: HostCommand, streams: Streams)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = ws.split();
    let mut full = vec![command.program.clone()];
    full.extend(command.args.iter().cloned());
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let spawned = Command::new(&command.program)
        .args(&command.args)
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .current_dir(std::env::temp_dir())
        .stdin(piped(streams.stdin))
        .stdout(piped(streams.stdout))
        .stderr(piped(streams.stderr))
        // A client that goes away ends the command, as on a real node.
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let status = start_failure(&command.program, &e);
            let _ = sink
                .send(framed(ERROR, status.to_string().as_bytes()))
                .await;
            let _ = sink.send(normal_close()).await;
            return;
        }
    };
    tracing::debug!("exec on the host: {full:?}");

    // Stdin is written by a task of its own, so a command that does not read its input never
    // stops us from carrying its output.
    let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel::<Bytes>();
    let mut stdin_tx = Some(stdin_tx);
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            while let Some(data) = stdin_rx.recv().await {
                if stdin.write_all(&data).await.is_err() {
                    break;
                }
            }
            let _ = stdin.shutdown().await;
        });
    }
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out_buf = vec![0u8; CHUNK];
    let mut err_buf = vec![0u8; CHUNK];
    let mut exit: Option<ExitStatus> = None;

    while stdout.is_some() || stderr.is_some() || exit.is_none() {
        tokio::select! {
            read = read_some(&mut stdout, &mut out_buf) => match read {
                Some(n) => {
                    if sink.send(framed(STDOUT, &out_buf[..n])).await.is_err() {
                        return;
                    }
                }
                None => stdout = None,
            },
            read = read_some(&mut stderr, &mut err_buf) => match read {
                Some(n) => {
                    if sink.send(framed(STDERR, &err_buf[..n])).await.is_err() {
                        return;
                    }
                }
                None => stderr = None,
            },
            waited = child.wait(), if exit.is_none() => match waited {
                Ok(status) => exit = Some(status),
                // The child cannot be waited for: report it as killed.
                Err(_) => exit = Some(std::os::unix::process::ExitStatusExt::from_raw(9)),
            },
            message = incoming.next() => match message.map(|m| m.map(frame_bytes)) {
                Some(Ok(Framed::Data(data))) => match data.split_first() {
                    Some((&STDIN, payload)) if !payload.is_empty() => {
                        if let Some(tx) = &stdin_tx {
                            let _ = tx.send(Bytes::copy_from_slice(payload));
                        }
                    }
                    Some((&CLOSE, [STDIN])) if v5 => stdin_tx = None,
                    _ => {}
                },
                Some(Ok(Framed::Close)) | Some(Err(_)) | None => {
                    // The client is gone: nobody reads the output or the status (`child` is
                    // killed when dropped).
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    drop(stdin_tx);
    let status = exit
        .map(|s| exit_status(&full, s))
        .unwrap_or_else(|| json!({}));
    let _ = sink
        .send(framed(ERROR, status.to_string().as_bytes()))
        .await;
    let _ = sink.send(normal_close()).await;
    // Read until the client answers our close, so it sees a clean closing handshake.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = incoming.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
}

/// What a client's frame carries: the channel protocols read a text frame like a binary one
/// (the API server reads both as bytes), so a client that sends stdin as text is heard.
enum Framed {
    Data(Bytes),
    Close,
    Other,
}

fn frame_bytes(message: Message) -> Framed {
    match message {
        Message::Binary(data) => Framed::Data(data),
        Message::Text(text) => Framed::Data(Bytes::copy_from_slice(text.as_bytes())),
        Message::Close(_) => Framed::Close,
        _ => Framed::Other,
    }
}

/// Reads some bytes of an output pipe: `None` once it has ended (or was never attached, in
/// which case it never resolves, so `select!` waits on the other branches).
async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    let Some(reader) = pipe.as_mut() else {
        return std::future::pending().await;
    };
    match reader.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn statuses_carry_the_exit_code_as_kubectl_reads_it() {
        let command = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(
            exit_status(&command, ExitStatus::from_raw(0)),
            json!({"metadata": {}, "status": "Success"})
        );
        let failed = exit_status(&command, ExitStatus::from_raw(3 << 8));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        assert!(
            failed["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("[sh -c exit 3], exit code 3")),
            "{failed}"
        );
        // Killed by SIGKILL: 128 + 9, as a shell reports it.
        let killed = exit_status(&command, ExitStatus::from_raw(9));
        assert_eq!(killed["details"]["causes"][0]["message"], "137");
    }
}
