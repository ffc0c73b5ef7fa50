//! A pod's volumes as folders of this machine, mounted into its containers.
//!
//! `emptyDir` is a folder of the pod (gone with it); `configMap`, `secret`, `downwardAPI` and
//! `projected` (the service account's token, CA and namespace) are files written when the pod
//! starts; a `persistentVolumeClaim` is the folder under the sandbox's `storage/` that stands
//! for its volume's host path, so its data survives the pod and `kip sandbox down`/`up`. A
//! `hostPath` never reaches this machine's own files: it is a folder under the sandbox's
//! `host-paths/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::ops;
use crate::store::Store;

/// The folder each of the pod's volumes is, by volume name.
pub type Folders = HashMap<String, PathBuf>;

/// Makes the folders of `pod`'s volumes under `pod_dir` (and the sandbox's `storage/`).
pub fn prepare(
    store: &Store,
    sandbox_dir: &Path,
    pod_dir: &Path,
    pod: &Value,
) -> Result<Folders, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let mut folders = Folders::new();
    for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or("");
        let own = pod_dir.join("volumes").join(name);
        let folder = if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
            claim_folder(store, sandbox_dir, ns, claim)?
        } else if let Some(path) = volume["hostPath"]["path"].as_str() {
            sandbox_dir
                .join("host-paths")
                .join(path.trim_start_matches('/'))
        } else {
            let _ = std::fs::remove_dir_all(&own);
            own
        };
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("cannot make the folder of volume {name}: {e}"))?;
        write_files(store, pod, volume, &folder)?;
        folders.insert(name.to_string(), folder);
    }
    Ok(folders)
}

/// The folder of a claim's volume, when the claim is bound.
fn claim_folder(
    store: &Store,
    sandbox_dir: &Path,
    ns: &str,
    claim: &str,
) -> Result<PathBuf, String> {
    let pvc = get(store, "persistentvolumeclaims", ns, claim)
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" not found"))?;
    let volume = pvc["spec"]["volumeName"]
        .as_str()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" is not bound yet"))?;
    let pv = get(store, "persistentvolumes", "", volume)
        .ok_or_else(|| format!("persistentvolume \"{volume}\" not found"))?;
    let path = pv["spec"]["hostPath"]["path"]
        .as_str()
        .or(pv["spec"]["local"]["path"].as_str())
        .unwrap_or(volume);
    let leaf = Path::new(path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| volume.to_string());
    Ok(sandbox_dir.join("storage").join(leaf))
}

/// The files of a configMap, secret, downwardAPI or projected volume.
fn write_files(store: &Store, pod: &Value, volume: &Value, folder: &Path) -> Result<(), String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if volume["configMap"].is_object() {
        files.extend(keyed(store, ns, "configmaps", &volume["configMap"])?);
    }
    if volume["secret"].is_object() {
        let mut source = volume["secret"].clone();
        source["name"] = source["secretName"].clone();
        files.extend(keyed(store, ns, "secrets", &source)?);
    }
    if volume["downwardAPI"].is_object() {
        files.extend(downward(pod, &volume["downwardAPI"]));
    }
    for source in volume["projected"]["sources"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if source["configMap"].is_object() {
            files.extend(keyed(store, ns, "configmaps", &source["configMap"])?);
        }
        if source["secret"].is_object() {
            files.extend(keyed(store, ns, "secrets", &source["secret"])?);
        }
        if source["downwardAPI"].is_object() {
            files.extend(downward(pod, &source["downwardAPI"]));
        }
        if let Some(path) = source["serviceAccountToken"]["path"].as_str() {
            // The sandbox authenticates no one: any token is accepted.
            files.push((path.to_string(), b"sandbox".to_vec()));
        }
    }
    for (path, bytes) in files {
        let relative = Path::new(&path);
        if relative.is_absolute() || relative.components().any(|c| c.as_os_str() == "..") {
            return Err(format!(
                "volume file path {path} must be relative, without `..`"
            ));
        }
        let target = folder.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot write {path}: {e}"))?;
        }
        std::fs::write(&target, bytes).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(())
}

/// The keys of a ConfigMap or Secret as files: all of them, or the listed `items`.
fn keyed(
    store: &Store,
    ns: &str,
    plural: &str,
    source: &Value,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let name = source["name"].as_str().unwrap_or("");
    let optional = source["optional"].as_bool().unwrap_or(false);
    let Some(obj) = get(store, plural, ns, name) else {
        if optional {
            return Ok(Vec::new());
        }
        return Err(format!(
            "{} \"{name}\" not found",
            &plural[..plural.len() - 1]
        ));
    };
    let mut data: Vec<(String, Vec<u8>)> = Vec::new();
    let decode = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .unwrap_or_default()
    };
    for (key, value) in obj["data"].as_object().into_iter().flatten() {
        let bytes = match plural {
            "secrets" => decode(value),
            _ => value.as_str().unwrap_or("").as_bytes().to_vec(),
        };
        data.push((key.clone(), bytes));
    }
    for (key, value) in obj["binaryData"].as_object().into_iter().flatten() {
        data.push((key.clone(), decode(value)));
    }
    let Some(items) = source["items"].as_array() else {
        return Ok(data);
    };
    Ok(items
        .iter()
        .filter_map(|item| {
            let key = item["key"].as_str()?;
            let path = item["path"].as_str().unwrap_or(key);
            let bytes = data.iter().find(|(k, _)| k == key)?.1.clone();
            Some((path.to_string(), bytes))
        })
        .collect())
}

/// downwardAPI items: the pod's name, namespace, uid, labels and annotations.
fn downward(pod: &Value, source: &Value) -> Vec<(String, Vec<u8>)> {
    let meta = &pod["metadata"];
    let pairs = |map: &Value| {
        map.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}=\"{}\"\n", v.as_str().unwrap_or("")))
            .collect::<String>()
    };
    source["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let path = item["path"].as_str()?;
            let value = match item["fieldRef"]["fieldPath"].as_str()? {
                "metadata.name" => meta["name"].as_str().unwrap_or("").to_string(),
                "metadata.namespace" => meta["namespace"].as_str().unwrap_or("").to_string(),
                "metadata.uid" => meta["uid"].as_str().unwrap_or("").to_string(),
                "metadata.labels" => pairs(&meta["labels"]),
                "metadata.annotations" => pairs(&meta["annotations"]),
                _ => return None,
            };
            Some((path.to_string(), value.into_bytes()))
        })
        .collect()
}

/// A stored object of the core group.
pub fn get(store: &Store, plural: &str, ns: &str, name: &str) -> Option<std::sync::Arc<Value>> {
    let res = store.read().registry.find("", "v1", plural)?;
    store.get(&ops::key(&res, ns, name))
}
