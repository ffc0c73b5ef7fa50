//! `pods/{name}/log`: the lines the simulated kubelet says a container printed.
//!
//! No image really runs in the sandbox, so each container's log is made up from its pod: image
//! pull and start lines, one line per declared port, the lines of the pod annotation
//! `sandbox.kipper.run/log` (so tests and demos can script output), a heartbeat every
//! [`HEARTBEAT`] seconds while it runs, and an exit line when it terminated.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use jiff::Timestamp;
use serde_json::Value;

use super::{Api, Req, channel_body, streaming};
use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::registry::Resource;

/// Seconds between heartbeat lines of a running container.
pub const HEARTBEAT: i64 = 30;
/// The annotation whose lines a container prints after it starts.
pub const LOG_ANNOTATION: &str = "sandbox.kipper.run/log";

struct Line {
    at: Timestamp,
    text: String,
}

fn ts(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}

/// The container a log request is about: the named one (an init container too, as the API
/// allows), or the only one.
fn container<'a>(pod: &'a Value, name: Option<&str>) -> ApiResult<&'a Value> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let containers = pod["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let inits = pod["spec"]["initContainers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    match name {
        Some(name) => containers
            .iter()
            .chain(inits)
            .find(|c| c["name"].as_str() == Some(name))
            .ok_or_else(|| {
                ApiError::bad_request(format!("container {name} is not valid for pod {pod_name}"))
            }),
        None if containers.len() == 1 => Ok(&containers[0]),
        None => {
            let names: Vec<&str> = containers
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    }
}

/// Every line the container has printed up to `now`, and whether it has stopped.
fn lines(pod: &Value, container: &Value, now: Timestamp) -> ApiResult<(Vec<Line>, bool)> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let name = container["name"].as_str().unwrap_or("");
    let status = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|field| pod["status"][field].as_array())
        .flatten()
        .find(|s| s["name"].as_str() == Some(name));
    let state = status.map(|s| &s["state"]);
    let started = state
        .and_then(|s| ts(&s["running"]["startedAt"]).or_else(|| ts(&s["terminated"]["startedAt"])));
    let Some(started) = started else {
        return Err(ApiError::bad_request(format!(
            "container \"{name}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
        )));
    };
    let image = container["image"].as_str().unwrap_or("");
    let mut out = vec![
        Line {
            at: started,
            text: format!("[sandbox] pulled image \"{image}\""),
        },
        Line {
            at: started,
            text: format!(
                "[sandbox] started container {name} (simulated: the sandbox does not run images)"
            ),
        },
    ];
    for port in container["ports"].as_array().into_iter().flatten() {
        let number = port["containerPort"].as_i64().unwrap_or(0);
        let protocol = port["protocol"].as_str().unwrap_or("TCP");
        out.push(Line {
            at: started,
            text: format!("[sandbox] listening on :{number}/{protocol}"),
        });
    }
    if let Some(script) = pod["metadata"]["annotations"][LOG_ANNOTATION].as_str() {
        out.extend(script.lines().map(|l| Line {
            at: started,
            text: l.to_string(),
        }));
    }
    let finished = state.and_then(|s| ts(&s["terminated"]["finishedAt"]));
    let until = finished.unwrap_or(now);
    let seconds = until.duration_since(started).as_secs();
    for beat in 1..=(seconds / HEARTBEAT) {
        let at = started + Duration::from_secs((beat * HEARTBEAT) as u64);
        out.push(Line {
            at,
            text: format!("[sandbox] {name} running for {}s", beat * HEARTBEAT),
        });
    }
    if let (Some(at), Some(s)) = (finished, state) {
        let code = s["terminated"]["exitCode"].as_i64().unwrap_or(0);
        out.push(Line {
            at,
            text: format!("[sandbox] {name} exited with code {code}"),
        });
    }
    Ok((out, finished.is_some()))
}

fn render(lines: &[Line], timestamps: bool) -> String {
    let mut text = String::new();
    for line in lines {
        if timestamps {
            text.push_str(&line.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ").to_string());
            text.push(' ');
        }
        text.push_str(&line.text);
        text.push('\n');
    }
    text
}

pub fn serve(api: &Api, res: &Resource, ns: &str, name: &str, req: &Req) -> ApiResult<Response> {
    let key = ops::key(res, ns, name);
    let pod = api
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&res.plural, &res.group, name))?;
    let container = container(&pod, req.param("container"))?.clone();
    if let Some(running) = api.running(&pod) {
        let cname = container["name"].as_str().unwrap_or("");
        if let Some(log) = running.logs.get(cname) {
            return from_file(&running, cname, log, req);
        }
        return real(api, &running, &container, req);
    }
    if req.flag("previous") {
        let cname = container["name"].as_str().unwrap_or("");
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{cname}\" in pod \"{name}\" not found"
        )));
    }
    let timestamps = req.flag("timestamps");
    let (mut all, stopped) = lines(&pod, &container, Timestamp::now())?;
    if let Some(tail) = req.param("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        all.drain(..all.len().saturating_sub(tail));
    }
    let mut text = render(&all, timestamps);
    if let Some(limit) = req
        .param("limitBytes")
        .and_then(|l| l.parse::<usize>().ok())
    {
        text.truncate(text.floor_char_boundary(limit));
    }
    if !req.flag("follow") || stopped {
        return Ok(streaming("text/plain", Body::from(text)));
    }
    let store = api.store.clone();
    let (out, body) = tokio::sync::mpsc::channel::<Bytes>(16);
    let mut seen = all.last().map(|l| l.at);
    tokio::spawn(async move {
        if out.send(Bytes::from(text)).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(pod) = store.get(&key) else { return };
            let Ok((all, stopped)) = lines(&pod, &container, Timestamp::now()) else {
                return;
            };
            let fresh: Vec<Line> = all
                .into_iter()
                .filter(|l| seen.is_none_or(|s| l.at > s))
                .collect();
            if let Some(last) = fresh.last() {
                seen = Some(last.at);
            }
            if !fresh.is_empty()
                && out
                    .send(Bytes::from(render(&fresh, timestamps)))
                    .await
                    .is_err()
            {
                return;
            }
            if stopped {
                return;
            }
        }
    });
    Ok(streaming("text/plain", channel_body(body)))
}

/// The log of a container that really runs, read with `podman logs` (stdout and stderr as
/// they come): the current container or, with `previous`, the one before its last restart.
fn real(
    api: &Api,
    running: &crate::runtime::Running,
    container: &Value,
    req: &Req,
) -> ApiResult<Response> {
    let cname = container["name"].as_str().unwrap_or("");
    let not_found = |what: &str| {
        ApiError::bad_request(format!(
            "{what} container \"{cname}\" in pod \"{}\" not found",
            running.name
        ))
    };
    let (current, previous) = running
        .containers
        .get(cname)
        .cloned()
        .ok_or_else(|| not_found("started"))?;
    let podman_name = if req.flag("previous") {
        previous.ok_or_else(|| not_found("previous terminated"))?
    } else {
        current
    };
    let Some(runtime) = &api.runtime else {
        return Err(not_found("started"));
    };
    let mut cmd = runtime.containers.tokio_command("podman");
    cmd.arg("logs");
    let follow = req.flag("follow") && !req.flag("previous");
    if follow {
        cmd.arg("--follow");
    }
    if req.flag("timestamps") {
        cmd.arg("--timestamps");
    }
    if let Some(tail) = req.param("tailLines").and_then(|t| t.parse::<i64>().ok()) {
        cmd.arg("--tail").arg(tail.max(0).to_string());
    }
    if let Some(since) = req
        .param("sinceSeconds")
        .and_then(|t| t.parse::<u64>().ok())
    {
        cmd.arg("--since").arg(format!("{since}s"));
    } else if let Some(since) = req.param("sinceTime") {
        cmd.arg("--since").arg(since);
    }
    cmd.arg(&podman_name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("cannot run podman logs: {e}")))?;
    let limit = req
        .param("limitBytes")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let (out, body) = tokio::sync::mpsc::channel::<Bytes>(16);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ApiError::internal("podman logs has no output"));
    };
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let _child = child;
        let (mut a, mut b) = (stdout, stderr);
        let (mut buf_a, mut buf_b) = ([0u8; 8192], [0u8; 8192]);
        let (mut open_a, mut open_b) = (true, true);
        let mut left = limit;
        while (open_a || open_b) && left > 0 {
            let chunk = tokio::select! {
                n = a.read(&mut buf_a), if open_a => match n {
                    Ok(n) if n > 0 => Bytes::copy_from_slice(&buf_a[..n]),
                    _ => { open_a = false; continue }
                },
                n = b.read(&mut buf_b), if open_b => match n {
                    Ok(n) if n > 0 => Bytes::copy_from_slice(&buf_b[..n]),
                    _ => { open_b = false; continue }
                },
            };
            let chunk = chunk.slice(..chunk.len().min(left));
            left -= chunk.len();
            if out.send(chunk).await.is_err() {
                return;
            }
        }
    });
    Ok(streaming("text/plain", channel_body(body)))
}

/// The log of a container that runs as a process of this machine (`runtime::standin`): its
/// file of `TIME TEXT` lines, the time shown only with `timestamps`.
fn from_file(
    running: &crate::runtime::Running,
    cname: &str,
    log: &crate::runtime::LogFile,
    req: &Req,
) -> ApiResult<Response> {
    if req.flag("previous") {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{cname}\" in pod \"{}\" not found",
            running.name
        )));
    }
    let Ok(text) = std::fs::read(&log.path) else {
        return Err(ApiError::bad_request(format!(
            "container \"{cname}\" in pod \"{}\" is waiting to start: PodInitializing",
            running.name
        )));
    };
    let timestamps = req.flag("timestamps");
    let since: Option<Timestamp> = match req
        .param("sinceSeconds")
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(s) => Some(Timestamp::now() - Duration::from_secs(s)),
        None => req.param("sinceTime").and_then(|t| t.parse().ok()),
    };
    let keep = move |line: &str| -> Option<String> {
        let (at, rest) = line.split_once(' ').unwrap_or(("", line));
        if let Some(since) = since
            && at.parse::<Timestamp>().is_ok_and(|t| t < since)
        {
            return None;
        }
        Some(if timestamps {
            format!("{line}\n")
        } else {
            format!("{rest}\n")
        })
    };
    // Only whole lines; what follows the last line end is read when it is whole.
    let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut lines: Vec<String> = String::from_utf8_lossy(&text[..whole])
        .lines()
        .filter_map(&keep)
        .collect();
    if let Some(tail) = req.param("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        lines.drain(..lines.len().saturating_sub(tail));
    }
    let mut first: String = lines.concat();
    let mut left = req
        .param("limitBytes")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    if first.len() > left {
        first.truncate(first.floor_char_boundary(left));
    }
    left -= first.len();
    let done = log.done.clone();
    if !req.flag("follow") || left == 0 || done.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(streaming("text/plain", Body::from(first)));
    }
    let path = log.path.clone();
    let (out, body) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        if out.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let mut offset = whole;
        loop {
            // Read after looking at `done`: what was written before it was set is sent.
            let ended = done.load(std::sync::atomic::Ordering::Relaxed);
            let Ok(text) = std::fs::read(&path) else {
                return;
            };
            let upto = text[offset.min(text.len())..]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(offset, |i| offset + i + 1);
            if upto > offset {
                let mut fresh: String = String::from_utf8_lossy(&text[offset..upto])
                    .lines()
                    .filter_map(&keep)
                    .collect();
                offset = upto;
                if fresh.len() > left {
                    fresh.truncate(fresh.floor_char_boundary(left));
                }
                left -= fresh.len();
                if out.send(Bytes::from(fresh)).await.is_err() || left == 0 {
                    return;
                }
            }
            if ended {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    Ok(streaming("text/plain", channel_body(body)))
}
