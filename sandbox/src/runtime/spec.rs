//! A pod's container as a `podman create` command line: image, entrypoint and arguments with
//! `$(VAR)` references expanded, environment (`envFrom`, `env` with Secret and ConfigMap
//! references), working dir, volume mounts, user and memory limit.

use std::path::Path;

use serde_json::Value;

use super::volumes::Folders;
use crate::store::Store;

/// The arguments after `podman create` that run `container` of `pod` from `image` (resolved)
/// in the podman pod `podman_pod` under the name `name`. The environment goes to a file in
/// `pod_dir` readable by root only, so that secrets do not show in the process list.
#[allow(clippy::too_many_arguments)]
pub fn create_args(
    store: &Store,
    pod: &Value,
    container: &Value,
    image: &str,
    podman_pod: &str,
    name: &str,
    labels: &[String],
    folders: &Folders,
    pod_dir: &Path,
    memory_parent: Option<&str>,
) -> Result<Vec<String>, String> {
    let env =
        crate::api::exec::host::container_env(store, pod, container).map_err(|e| e.message)?;
    let mut args: Vec<String> = vec![
        "--pod".into(),
        podman_pod.into(),
        "--name".into(),
        name.into(),
    ];
    for label in labels {
        args.extend(["--label".into(), label.clone()]);
    }
    let mut file = String::new();
    for (key, value) in &env {
        if value.contains('\n') {
            // An env file holds one line per variable.
            args.extend(["--env".into(), format!("{key}={value}")]);
        } else {
            file.push_str(&format!("{key}={value}\n"));
        }
    }
    let env_file = pod_dir.join(format!("{name}.env"));
    crate::home::write_private(&env_file, file.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", env_file.display()))?;
    args.extend(["--env-file".into(), env_file.display().to_string()]);
    if let Some(dir) = container["workingDir"].as_str().filter(|d| !d.is_empty()) {
        args.extend(["--workdir".into(), dir.into()]);
    }
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        args.extend(["--volume".into(), volume_mount(mount, folders)?]);
    }
    if let Some(user) = user(pod, container) {
        args.extend(["--user".into(), user]);
    }
    match memory_parent {
        // The limit is on the parent cgroup (see `memory`).
        Some(parent) => args.extend(["--cgroup-parent".into(), parent.into()]),
        None => {
            if let Some(bytes) = memory_limit(container) {
                args.extend(["--memory".into(), bytes.to_string()]);
            }
        }
    }
    if container["stdin"].as_bool() == Some(true) {
        args.push("--interactive".into());
    }
    if container["tty"].as_bool() == Some(true) {
        args.push("--tty".into());
    }
    let expand = |list: &Value| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|a| crate::api::exec::host::expand(a, &env))
            .collect()
    };
    let command = expand(&container["command"]);
    if !command.is_empty() {
        let json = serde_json::to_string(&command).map_err(|e| e.to_string())?;
        args.extend(["--entrypoint".into(), json]);
    }
    args.push(image.into());
    args.extend(expand(&container["args"]));
    Ok(args)
}

/// The container's memory limit in bytes, if it has one.
pub fn memory_limit(container: &Value) -> Option<u64> {
    container["resources"]["limits"]["memory"]
        .as_str()
        .and_then(quantity_bytes)
}

/// `HOST:CONTAINER[:ro]` for a volumeMount; a `subPath` is a folder inside the volume.
fn volume_mount(mount: &Value, folders: &Folders) -> Result<String, String> {
    let volume = mount["name"].as_str().unwrap_or("");
    let target = mount["mountPath"].as_str().unwrap_or("");
    let mut source = folders
        .get(volume)
        .cloned()
        .ok_or_else(|| format!("volumeMount names volume {volume}, which the pod does not have"))?;
    if let Some(sub) = mount["subPath"].as_str().filter(|s| !s.is_empty()) {
        if Path::new(sub).is_absolute() || sub.split('/').any(|c| c == "..") {
            return Err(format!("subPath {sub} must be relative, without `..`"));
        }
        source = source.join(sub);
        if !source.exists() {
            std::fs::create_dir_all(&source)
                .map_err(|e| format!("cannot make subPath {sub}: {e}"))?;
        }
    }
    let ro = if mount["readOnly"].as_bool() == Some(true) {
        ":ro"
    } else {
        ""
    };
    Ok(format!("{}:{target}{ro}", source.display()))
}

/// `UID[:GID]` from the container's securityContext, else the pod's.
fn user(pod: &Value, container: &Value) -> Option<String> {
    let pick = |field: &str| {
        container["securityContext"][field]
            .as_i64()
            .or(pod["spec"]["securityContext"][field].as_i64())
    };
    let uid = pick("runAsUser")?;
    Some(match pick("runAsGroup") {
        Some(gid) => format!("{uid}:{gid}"),
        None => uid.to_string(),
    })
}

/// Bytes of a memory quantity (`64Mi`, `1G`, `512000`); None for what does not parse.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "m" => 1e-3,
        _ => return None,
    };
    let bytes = (number * factor).ceil();
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::quantity_bytes;

    #[test]
    fn memory_quantities_are_bytes() {
        assert_eq!(quantity_bytes("64Mi"), Some(64 << 20));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("512000"), Some(512_000));
        assert_eq!(quantity_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(quantity_bytes("0"), None);
    }
}
