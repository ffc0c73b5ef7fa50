//! What an exec in a simulated pod runs: a command on this machine, when both the sandbox and
//! the pod allow it.
//!
//! No process runs in a sandbox pod. So that a test or a demo can still exec into one (a
//! `mysql` client against a local MariaDB standing in for the pod, say), a pod annotated
//! `sandbox.kipper.run/exec: host` runs exec commands on this machine, as the sandbox's user,
//! but only when the sandbox was started with `--allow-host-exec`: anyone who can create a pod
//! could otherwise run commands here.
//!
//! The command runs directly (no shell) with the container's environment as the kubelet would
//! build it: `envFrom` (Secrets and ConfigMaps, with `prefix`), then `env` (`value` with
//! `$(VAR)` references, `valueFrom.secretKeyRef`, `configMapKeyRef` and the pod's
//! `metadata.name`/`metadata.namespace`/`status.podIP` fields). On top of that come `PATH` and
//! `HOME` from the sandbox's own environment (a container image has its own; the host's tools
//! live on the host's path) and the pairs of `sandbox.kipper.run/exec-env`, which point a
//! client at the loopback server that stands for the pod, e.g.
//! `"MYSQL_HOST=127.0.0.1,MYSQL_TCP_PORT=13306"`.

use base64::Engine as _;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::ops;
use crate::store::Store;

/// The annotation that lets exec in a pod run on this machine (value `host`).
pub const EXEC_ANNOTATION: &str = "sandbox.kipper.run/exec";
/// Extra `NAME=VALUE` pairs, separated by commas or newlines, for host commands of a pod.
pub const EXEC_ENV_ANNOTATION: &str = "sandbox.kipper.run/exec-env";

/// A command ready to start on this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCommand {
    pub program: String,
    pub args: Vec<String>,
    /// The whole environment of the command, in the order set (later entries win).
    pub env: Vec<(String, String)>,
}

/// The host command for `command` in `container` of `pod`, or why exec cannot run there.
pub fn plan(
    allowed: bool,
    store: &Store,
    pod: &Value,
    container: &Value,
    command: &[String],
) -> ApiResult<HostCommand> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let annotation = pod["metadata"]["annotations"][EXEC_ANNOTATION].as_str();
    if !allowed {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "cannot exec in pod {ns}/{name}: the sandbox runs no process in pods. To run exec \
                 commands on this machine instead (as the sandbox's user), start the sandbox with \
                 `kip sandbox serve --allow-host-exec` and annotate the pod with \
                 {EXEC_ANNOTATION}: host"
            ),
        ));
    }
    if annotation != Some("host") {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "cannot exec in pod {ns}/{name}: the sandbox runs no process in pods; annotate \
                 the pod (or its template) with {EXEC_ANNOTATION}: host to run exec commands on \
                 this machine"
            ),
        ));
    }
    let Some((program, args)) = command.split_first() else {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    };
    let mut env = Vec::new();
    for var in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(var) {
            env.push((var.to_string(), value));
        }
    }
    env.extend(container_env(store, pod, container)?);
    env.extend(extra_env(pod)?);
    Ok(HostCommand {
        program: program.clone(),
        args: args.to_vec(),
        env,
    })
}

/// `podman exec` of `command` in the container that runs `container` of a real pod.
pub fn in_container(
    api: &crate::api::Api,
    running: &crate::runtime::Running,
    container: &Value,
    command: &[String],
) -> ApiResult<HostCommand> {
    let cname = container["name"].as_str().unwrap_or("");
    let (Some((podman_name, _)), Some(runtime)) = (running.containers.get(cname), &api.runtime)
    else {
        return Err(ApiError::bad_request(format!(
            "container {cname} of pod {}/{} has not started",
            running.namespace, running.name
        )));
    };
    let mut args = vec![
        "exec".to_string(),
        "--interactive".to_string(),
        podman_name.clone(),
    ];
    args.extend(command.iter().cloned());
    let mut env = Vec::new();
    for var in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(var) {
            env.push((var.to_string(), value));
        }
    }
    let conf = |p: std::path::PathBuf| p.display().to_string();
    env.push((
        "CONTAINERS_CONF".into(),
        conf(runtime.containers.containers_conf()),
    ));
    env.push((
        "CONTAINERS_STORAGE_CONF".into(),
        conf(runtime.containers.storage_conf()),
    ));
    Ok(HostCommand {
        program: "podman".into(),
        args,
        env,
    })
}

/// `sandbox.kipper.run/exec-env` as pairs.
fn extra_env(pod: &Value) -> ApiResult<Vec<(String, String)>> {
    let Some(spec) = pod["metadata"]["annotations"][EXEC_ENV_ANNOTATION].as_str() else {
        return Ok(Vec::new());
    };
    let mut pairs = Vec::new();
    for entry in spec
        .split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        match entry.split_once('=') {
            Some((name, value)) if valid_env_name(name.trim()) => {
                pairs.push((name.trim().to_string(), value.to_string()));
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid {EXEC_ENV_ANNOTATION} entry \"{entry}\": expected NAME=VALUE, \
                     entries separated by commas"
                )));
            }
        }
    }
    Ok(pairs)
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['=', '\0'])
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The environment the kubelet gives `container`: `envFrom` first, then `env`.
pub(crate) fn container_env(
    store: &Store,
    pod: &Value,
    container: &Value,
) -> ApiResult<Vec<(String, String)>> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let cname = container["name"].as_str().unwrap_or("");
    let fail = |why: String| {
        ApiError::bad_request(format!(
            "cannot build the environment of container {cname} in pod {ns}/{}: {why}",
            pod["metadata"]["name"].as_str().unwrap_or("")
        ))
    };
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = source["prefix"].as_str().unwrap_or("");
        let (kind, reference) = if source["secretRef"].is_object() {
            (Kind::Secret, &source["secretRef"])
        } else if source["configMapRef"].is_object() {
            (Kind::ConfigMap, &source["configMapRef"])
        } else {
            continue;
        };
        let optional = reference["optional"].as_bool().unwrap_or(false);
        let name = reference["name"].as_str().unwrap_or("");
        match lookup(store, kind, ns, name) {
            Some(values) => {
                for (key, value) in values {
                    set(&mut env, format!("{prefix}{key}"), value);
                }
            }
            None if optional => {}
            None => return Err(fail(format!("{} \"{name}\" not found", kind.word()))),
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let value = if let Some(value) = var["value"].as_str() {
            expand(value, &env)
        } else if var["valueFrom"].is_object() {
            match value_from(store, pod, &var["valueFrom"]) {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(why) => return Err(fail(why)),
            }
        } else {
            String::new()
        };
        set(&mut env, name.to_string(), value);
    }
    Ok(env)
}

#[derive(Clone, Copy)]
enum Kind {
    Secret,
    ConfigMap,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::ConfigMap => "configmap",
        }
    }
}

/// The keys and (decoded) values of a stored Secret or ConfigMap.
fn lookup(store: &Store, kind: Kind, ns: &str, name: &str) -> Option<Vec<(String, String)>> {
    let plural = match kind {
        Kind::Secret => "secrets",
        Kind::ConfigMap => "configmaps",
    };
    let res = store.read().registry.find("", "v1", plural)?;
    let obj = store.get(&ops::key(&res, ns, name))?;
    let mut out = Vec::new();
    for (key, value) in obj["data"].as_object().into_iter().flatten() {
        let text = value.as_str().unwrap_or("");
        let text = match kind {
            Kind::Secret => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            Kind::ConfigMap => text.to_string(),
        };
        out.push((key.clone(), text));
    }
    Some(out)
}

/// One `valueFrom`: `Ok(None)` for an optional reference that is missing.
fn value_from(store: &Store, pod: &Value, from: &Value) -> Result<Option<String>, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    for (field, kind) in [
        ("secretKeyRef", Kind::Secret),
        ("configMapKeyRef", Kind::ConfigMap),
    ] {
        let reference = &from[field];
        if !reference.is_object() {
            continue;
        }
        let name = reference["name"].as_str().unwrap_or("");
        let key = reference["key"].as_str().unwrap_or("");
        let optional = reference["optional"].as_bool().unwrap_or(false);
        let found = lookup(store, kind, ns, name)
            .ok_or_else(|| format!("{} \"{name}\" not found", kind.word()))
            .and_then(|values| {
                values
                    .into_iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        format!("couldn't find key {key} in {} {ns}/{name}", kind.word())
                    })
            });
        return match found {
            Ok(value) => Ok(Some(value)),
            Err(_) if optional => Ok(None),
            Err(why) => Err(why),
        };
    }
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        let value = match path {
            "metadata.name" => &pod["metadata"]["name"],
            "metadata.namespace" => &pod["metadata"]["namespace"],
            "metadata.uid" => &pod["metadata"]["uid"],
            "spec.nodeName" => &pod["spec"]["nodeName"],
            "status.podIP" => &pod["status"]["podIP"],
            "status.hostIP" => &pod["status"]["hostIP"],
            other => return Err(format!("field {other} is not supported by the sandbox")),
        };
        return Ok(Some(value.as_str().unwrap_or("").to_string()));
    }
    Err(
        "valueFrom names no source the sandbox resolves (secretKeyRef, configMapKeyRef, fieldRef)"
            .into(),
    )
}

/// `$(NAME)` references to variables set before, as the kubelet expands them; `$$` is a `$`,
/// and a reference to an unknown variable stays as written.
pub(crate) fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[at..at + 2 + end + 1]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_like_the_kubelet() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$-$", &env), "x-$(B)-$(A)-$-$");
        assert_eq!(expand("plain", &env), "plain");
        assert_eq!(expand("$(A", &env), "$(A");
    }

    #[test]
    fn extra_env_is_name_value_pairs() {
        let pod = serde_json::json!({"metadata": {"annotations": {
            EXEC_ENV_ANNOTATION: "MYSQL_HOST=127.0.0.1, MYSQL_TCP_PORT=13306\nEMPTY="
        }}});
        assert_eq!(
            extra_env(&pod).expect("valid"),
            vec![
                ("MYSQL_HOST".to_string(), "127.0.0.1".to_string()),
                ("MYSQL_TCP_PORT".to_string(), "13306".to_string()),
                ("EMPTY".to_string(), String::new()),
            ]
        );
        for bad in ["NOVALUE", "=x", "1A=b"] {
            let pod = serde_json::json!({"metadata": {"annotations": {EXEC_ENV_ANNOTATION: bad}}});
            let err = extra_env(&pod).expect_err(bad);
            assert!(err.message.contains("NAME=VALUE"), "{}", err.message);
        }
    }
}
