//! `k8s::exec`: a command in a pod's container, through the API server (`pods/exec`, what
//! `kubectl exec` uses), so verbs can provision inside a service without a database driver:
//! `mysql -e "CREATE DATABASE …"` in the MySQL pod, `mongosh --eval …` in the MongoDB pod.
//!
//! kube-rs speaks the WebSocket channel protocol (`v5.channel.k8s.io`, else v4). The command
//! runs without a terminal; stdout and stderr are collected whole, stdin is written from a
//! string and then closed. The exit status comes from the Status the API server sends on the
//! error channel: `Success` is 0, a `NonZeroExitCode` failure carries the code. A non-zero exit
//! is a result, not an error: the script decides what it means.
//!
//! Registered into the `k8s` namespace with the rest of the Kubernetes builtins (`k8s/`);
//! this file keeps the streaming apart.

use crate::errors::Kind;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use rhai::plugin::*;
use rhai::{Array, EvalAltResult, Map};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::host;
use crate::k8s::{Cluster, kube_error};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// The most output kept per stream: a provisioning command prints a few lines; more is a
/// mistake (a dump to stdout) better reported than held in memory.
const MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// How long a command may take unless the script says otherwise.
const DEFAULT_TIMEOUT_SECS: i64 = 60;

/// What the script asked for.
struct ExecRequest {
    ns: String,
    pod: String,
    command: Vec<String>,
    container: Option<String>,
    stdin: Option<String>,
    timeout: Duration,
}

fn invalid(message: impl Into<String>) -> Box<EvalAltResult> {
    host::error(Kind::Invalid, message)
}

impl ExecRequest {
    fn new(ns: &str, pod: &str, command: Array, options: &Map) -> RhaiResult<ExecRequest> {
        let command = command
            .into_iter()
            .map(|part| part.into_string())
            .collect::<Result<Vec<String>, _>>()
            .map_err(|_| invalid("k8s::exec takes the command as an array of strings, e.g. [\"sh\", \"-c\", \"echo hi\"]"))?;
        if command.is_empty() {
            return Err(invalid(
                "k8s::exec needs a command: pass an array like [\"sh\", \"-c\", \"echo hi\"]",
            ));
        }
        if pod.is_empty() {
            return Err(invalid("k8s::exec needs a pod name"));
        }
        let text = |key: &str| -> RhaiResult<Option<String>> {
            match options.get(key) {
                None => Ok(None),
                Some(v) => v
                    .clone()
                    .into_string()
                    .map(Some)
                    .map_err(|_| invalid(format!("exec option `{key}` must be a string"))),
            }
        };
        for key in options.keys() {
            if !["container", "stdin", "timeout_secs"].contains(&key.as_str()) {
                return Err(invalid(format!(
                    "unknown exec option `{key}`: use container, stdin or timeout_secs"
                )));
            }
        }
        let timeout_secs =
            match options.get("timeout_secs") {
                None => DEFAULT_TIMEOUT_SECS,
                Some(v) => v.as_int().ok().filter(|s| *s > 0).ok_or_else(|| {
                    invalid("exec option `timeout_secs` must be a positive integer")
                })?,
            };
        Ok(ExecRequest {
            ns: ns.to_string(),
            pod: pod.to_string(),
            command,
            container: text("container")?.filter(|c| !c.is_empty()),
            stdin: text("stdin")?,
            timeout: Duration::from_secs(timeout_secs.unsigned_abs()),
        })
    }

    fn describe(&self) -> String {
        let ns = if self.ns.is_empty() {
            "default"
        } else {
            &self.ns
        };
        format!("pod {ns}/{}", self.pod)
    }
}

/// An exec the API server refused, said in exec's terms with the server's reason.
fn refused(req: &ExecRequest, e: kube::Error) -> Box<EvalAltResult> {
    let err = kube_error(e);
    let EvalAltResult::ErrorRuntime(value, _) = &*err else {
        return err;
    };
    let Some(mut map) = value.read_lock::<Map>().map(|m| m.clone()) else {
        return err;
    };
    let message = map
        .get("message")
        .map(|m| m.to_string())
        .unwrap_or_default();
    if !message.starts_with("cannot exec") {
        map.insert(
            "message".into(),
            format!("cannot exec in {}: {message}", req.describe()).into(),
        );
    }
    host::error_map(map)
}

/// The exit code in a Status from the error channel, or the failure it reports.
fn exit_code(req: &ExecRequest, status: Option<Status>) -> RhaiResult<i64> {
    let Some(status) = status else {
        return Err(host::error(
            Kind::Failed,
            format!(
                "the exec in {} ended without an exit status (the connection closed early)",
                req.describe()
            ),
        ));
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode")
        && let Some(code) = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message.as_deref()?.parse::<i64>().ok())
    {
        return Ok(code);
    }
    Err(host::error(
        Kind::Failed,
        format!(
            "cannot run {:?} in {}: {}",
            req.command.join(" "),
            req.describe(),
            status.message.unwrap_or_default()
        ),
    ))
}

/// Reads a stream to its end, keeping at most [`MAX_OUTPUT`] bytes; the flag says whether
/// more came. Reading goes on past the limit so the command is never stalled on a full pipe.
async fn read_capped(reader: Option<impl AsyncRead + Unpin>) -> (Vec<u8>, bool) {
    let Some(mut reader) = reader else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut over = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) if kept.len() + n <= MAX_OUTPUT => kept.extend_from_slice(&buf[..n]),
            Ok(_) => over = true,
        }
    }
    (kept, over)
}

/// Runs the exec to the end: `#{status, stdout, stderr}`.
async fn run(client: kube::Client, req: &ExecRequest) -> RhaiResult<Map> {
    let pods: Api<Pod> = if req.ns.is_empty() {
        Api::default_namespaced(client)
    } else {
        Api::namespaced(client, &req.ns)
    };
    let params = AttachParams {
        container: req.container.clone(),
        stdin: req.stdin.is_some(),
        stdout: true,
        stderr: true,
        tty: false,
        max_stdout_buf_size: Some(64 * 1024),
        max_stderr_buf_size: Some(64 * 1024),
        ..AttachParams::default()
    };
    let mut attached = pods
        .exec(&req.pod, req.command.clone(), &params)
        .await
        .map_err(|e| refused(req, e))?;
    let stdin = attached.stdin();
    let stdout = attached.stdout();
    let stderr = attached.stderr();
    let status = attached.take_status();
    let feed = async {
        if let (Some(mut writer), Some(input)) = (stdin, req.stdin.as_deref()) {
            let _ = writer.write_all(input.as_bytes()).await;
            // Dropping the writer ends the command's stdin.
            let _ = writer.shutdown().await;
        }
    };
    let ((out, out_over), (err, err_over), ()) =
        tokio::join!(read_capped(stdout), read_capped(stderr), feed);
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    let _ = attached.join().await;
    let code = exit_code(req, status)?;
    if out_over || err_over {
        return Err(host::error(
            Kind::Failed,
            format!(
                "{:?} in {} printed more than 16 MiB: write big output to a file in the pod instead",
                req.command.join(" "),
                req.describe()
            ),
        ));
    }
    let mut result = Map::new();
    result.insert("status".into(), code.into());
    result.insert(
        "stdout".into(),
        String::from_utf8_lossy(&out).into_owned().into(),
    );
    result.insert(
        "stderr".into(),
        String::from_utf8_lossy(&err).into_owned().into(),
    );
    Ok(result)
}

fn exec_request(ctx: &NativeCallContext, req: &ExecRequest) -> RhaiResult<Map> {
    let k = Cluster::of(ctx)?;
    k.host.reach.everything("k8s::exec")?;
    let client = k.client.clone();
    k.run(async {
        match tokio::time::timeout(req.timeout, run(client, req)).await {
            Ok(result) => result,
            // Dropping the exec closes its WebSocket, which ends the command on the server.
            Err(_) => Err(host::error(
                Kind::Timeout,
                format!(
                    "{:?} in {} did not finish within {} s (raise timeout_secs if it needs longer)",
                    req.command.join(" "),
                    req.describe(),
                    req.timeout.as_secs()
                ),
            )),
        }
    })
}

/// `k8s::exec`, merged into the `k8s` namespace.
#[export_module]
pub mod exec_module {
    use super::*;

    /// Runs `command` (an array: the program, then its arguments; no shell unless you call one)
    /// in the only container of `pod` in `ns` ("" for the default namespace), as `kubectl exec`
    /// does, and returns `#{status, stdout, stderr}`: the exit code and the output as text.
    /// A non-zero exit is returned, not raised. Gives up after 60 s.
    ///
    /// Errors: the kind of the API server's status when it refuses (reason `NotFound` for a missing pod,
    /// `BadRequest` when the pod is not running or has several containers); `exec` when the
    /// command could not start; `timeout`; `invalid` for a malformed command.
    ///
    /// Example: `let r = k8s::exec("shop-test", "db-0", ["sh", "-c", "echo $HOSTNAME"]); print(r.stdout);`
    #[rhai_fn(name = "exec", return_raw)]
    pub fn exec(ctx: NativeCallContext, ns: &str, pod: &str, command: Array) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            exec_with(ctx, ns, pod, command, Map::new())
        })
    }

    /// Like `k8s::exec`, with options: `container` (needed when the pod has several),
    /// `stdin` (a string the command reads, then end of input), `timeout_secs` (default 60;
    /// the command is stopped when it runs out).
    ///
    /// Example: `let r = k8s::exec(ns, "db-0", ["mysql", "-uroot"], #{container: "mysql", stdin: "SELECT 1;", timeout_secs: 30});`
    #[rhai_fn(name = "exec", return_raw)]
    pub fn exec_with(
        ctx: NativeCallContext,
        ns: &str,
        pod: &str,
        command: Array,
        options: Map,
    ) -> RhaiResult<Map> {
        crate::host::at_call(ctx.call_position(), || {
            let req = ExecRequest::new(ns, pod, command, &options)?;
            exec_request(&ctx, &req)
        })
    }
}
