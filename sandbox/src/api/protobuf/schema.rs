//! The k8s.io/api message descriptors protobuf bodies are decoded against: a FileDescriptorSet
//! `protoc` made from the vendored generated.proto files (sandbox/proto/update.py), checked in
//! so that building the sandbox needs neither protoc nor a .proto compiler.

use std::collections::HashSet;
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

const DESCRIPTORS: &[u8] = include_bytes!("../../../proto/k8s.pb");

/// Fields that are pointers in the Go types (`package.Message.field`), see `pointers.txt`.
const POINTERS: &str = include_str!("../../../proto/pointers.txt");

/// Embedded structs whose fields JSON inlines into the parent's, see `inline.txt`.
const INLINE: &str = include_str!("../../../proto/inline.txt");

static POOL: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTORS).ok());

static POINTER_FIELDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| POINTERS.lines().collect());

static INLINE_FIELDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| INLINE.lines().collect());

/// The message named `full_name` (e.g. `k8s.io.api.core.v1.ConfigMap`).
pub fn message(full_name: &str) -> Option<MessageDescriptor> {
    POOL.as_ref()?.get_message_by_name(full_name)
}

/// The message of a built-in kind: `apps/v1` `Deployment` is `k8s.io.api.apps.v1.Deployment`
/// (a group's package is its first label; the core group's is `core`).
pub fn kind(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = group
        .split('.')
        .next()
        .filter(|g| !g.is_empty())
        .unwrap_or("core");
    message(&format!("k8s.io.api.{package}.{version}.{kind}"))
}

/// Whether `message`'s `field` is a pointer in Go: only then is its zero value meaningful.
pub fn is_pointer(message: &str, field: &str) -> bool {
    POINTER_FIELDS.contains(format!("{message}.{field}").as_str())
}

/// Whether `message`'s `field` is an embedded struct whose fields JSON puts in the parent.
pub fn is_inline(message: &str, field: &str) -> bool {
    INLINE_FIELDS.contains(format!("{message}.{field}").as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptors_decode_and_name_the_built_in_kinds() {
        assert!(POOL.is_some());
        assert_eq!(
            kind("v1", "ConfigMap").unwrap().full_name(),
            "k8s.io.api.core.v1.ConfigMap"
        );
        assert!(kind("apps/v1", "Deployment").is_some());
        assert!(kind("rbac.authorization.k8s.io/v1", "ClusterRole").is_some());
        assert!(kind("policy/v1", "PodDisruptionBudget").is_some());
        assert!(kind("example.com/v1", "Widget").is_none());
        assert!(is_pointer("k8s.io.api.apps.v1.DeploymentSpec", "replicas"));
        assert!(!is_pointer("k8s.io.api.core.v1.ContainerPort", "hostPort"));
        assert!(is_inline("k8s.io.api.core.v1.Volume", "volumeSource"));
    }

    /// The checked-in descriptors are what protoc makes of the vendored .proto files (checked
    /// only where protoc is installed).
    #[test]
    fn the_descriptors_match_the_vendored_protos() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
        let mut files = Vec::new();
        let mut stack = vec![std::path::PathBuf::from(dir).join("k8s.io")];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path.strip_prefix(dir).unwrap();
                    files.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        files.sort();
        let out = std::env::temp_dir().join(format!("k8s-{}.pb", std::process::id()));
        let Ok(status) = std::process::Command::new("protoc")
            .current_dir(dir)
            .arg("-I.")
            .arg("--include_imports")
            .arg(format!("-o{}", out.display()))
            .args(&files)
            .stderr(std::process::Stdio::null())
            .status()
        else {
            return; // no protoc here
        };
        assert!(status.success());
        let made = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        assert!(
            made == DESCRIPTORS,
            "sandbox/proto/k8s.pb is stale: run update.py"
        );
    }
}
