//! Kaniko's executor stood in for by buildah: `buildah bud` into the sandbox's store, then
//! `buildah push` to the sandbox's registry.

use std::path::{Path, PathBuf};

/// What of Kaniko's flags the stand-in follows.
#[derive(Debug, Default, PartialEq)]
pub struct Flags {
    pub context: Option<String>,
    pub dockerfile: Option<String>,
    pub destinations: Vec<String>,
    pub cache: bool,
    pub build_args: Vec<String>,
    pub digest_file: Option<String>,
    pub target: Option<String>,
    pub no_push: bool,
    pub insecure_pull: bool,
    /// Flags the stand-in does not follow, as written.
    pub ignored: Vec<String>,
}

/// Flags that take a value the stand-in has no use for (consumed, so that `--flag value`
/// does not leave the value behind).
const IGNORED_WITH_VALUE: &[&str] = &[
    "cache-repo",
    "cache-dir",
    "cache-ttl",
    "verbosity",
    "snapshot-mode",
    "label",
    "custom-platform",
    "registry-mirror",
    "registry-map",
    "image-name-with-digest-file",
    "image-name-tag-with-digest-file",
    "oci-layout-path",
    "tar-path",
    "log-format",
    "log-timestamp",
    "push-retry",
    "image-fs-extract-retry",
    "compression",
    "compression-level",
    "kaniko-dir",
    "git",
    "ignore-path",
];

/// Parses Kaniko's arguments: `--flag=value` and `--flag value`; boolean flags alone or with
/// `=true|false`.
pub fn parse(args: &[String]) -> Flags {
    let mut flags = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            flags.ignored.push(arg.clone());
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let is_value = matches!(
            name,
            "context"
                | "c"
                | "dockerfile"
                | "f"
                | "destination"
                | "d"
                | "build-arg"
                | "digest-file"
                | "target"
        ) || IGNORED_WITH_VALUE.contains(&name);
        let value = if is_value {
            match inline {
                Some(v) => Some(v),
                None if i < args.len() => {
                    i += 1;
                    Some(args[i - 1].clone())
                }
                None => None,
            }
        } else {
            inline
        };
        let on = || value.as_deref().is_none_or(|v| v != "false");
        match name {
            "context" | "c" => flags.context = value.clone(),
            "dockerfile" | "f" => flags.dockerfile = value.clone(),
            "destination" | "d" => flags.destinations.extend(value.clone()),
            "build-arg" => flags.build_args.extend(value.clone()),
            "digest-file" => flags.digest_file = value.clone(),
            "target" => flags.target = value.clone(),
            "cache" => flags.cache = on(),
            "no-push" => flags.no_push = on(),
            "insecure-pull" | "skip-tls-verify-pull" => flags.insecure_pull = on(),
            // Pushes go to the sandbox's registry on loopback, always without TLS.
            "insecure" | "skip-tls-verify" | "insecure-registry" => {}
            _ => flags.ignored.push(match (&value, arg.contains('=')) {
                (Some(v), false) if is_value => format!("{arg} {v}"),
                _ => arg.clone(),
            }),
        }
    }
    flags
}

/// The image a destination names, when it is in `registry` (`HOST:PORT`).
pub fn in_registry(destination: &str, registry: Option<&str>) -> Result<(), String> {
    match registry {
        Some(r) if destination.starts_with(&format!("{r}/")) => Ok(()),
        Some(r) => Err(format!(
            "destination {destination} refused: the sandbox pushes only to its registry at {r}"
        )),
        None => Err(format!(
            "destination {destination} refused: the sandbox's registry is not running"
        )),
    }
}

/// `buildah bud` of `dockerfile` in `context` with the flags.
pub fn bud_args(flags: &Flags, context: &Path, dockerfile: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--storage-driver".into(),
        "vfs".into(),
        "bud".into(),
        // Only what the store lacks is pulled: a FROM of an image the store has builds offline.
        "--pull=false".into(),
        // A failed build leaves no working container in the store.
        "--force-rm".into(),
    ];
    if flags.cache {
        args.push("--layers".into());
    }
    if flags.insecure_pull {
        args.push("--tls-verify=false".into());
    }
    if let Some(target) = &flags.target {
        args.extend(["--target".into(), target.clone()]);
    }
    for arg in &flags.build_args {
        args.extend(["--build-arg".into(), arg.clone()]);
    }
    args.extend(["-f".into(), dockerfile.display().to_string()]);
    if let Some(first) = flags.destinations.first() {
        args.extend(["-t".into(), first.clone()]);
    }
    args.push(context.display().to_string());
    args
}

/// `buildah push` of the built image to `destination`, its manifest's digest written to
/// `digest_file`.
pub fn push_args(image: &str, destination: &str, digest_file: &Path) -> Vec<String> {
    vec![
        "--storage-driver".into(),
        "vfs".into(),
        "push".into(),
        "--tls-verify=false".into(),
        "--digestfile".into(),
        digest_file.display().to_string(),
        image.into(),
        format!("docker://{destination}"),
    ]
}

/// `dir://PATH` or a plain path: the path; other sources are refused.
pub fn context_path(context: Option<&str>) -> Result<String, String> {
    let context = context.unwrap_or("/workspace/");
    if let Some(path) = context.strip_prefix("dir://") {
        return Ok(path.to_string());
    }
    if context.contains("://") {
        return Err(format!(
            "context {context} refused: the sandbox builds only dir:// contexts"
        ));
    }
    Ok(context.to_string())
}

/// The Dockerfile: relative to the context, or an absolute (already mapped) path.
pub fn dockerfile_path(
    context: &Path,
    dockerfile: Option<&str>,
    mapped: Option<PathBuf>,
) -> PathBuf {
    match mapped {
        Some(path) => path,
        None => context.join(dockerfile.unwrap_or("Dockerfile")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn both_flag_forms_parse_and_unknown_ones_are_ignored() {
        let flags = parse(&strings(&[
            "--context=dir:///workspace/src/app",
            "--dockerfile",
            "docker/Dockerfile",
            "--destination=127.0.0.1:5000/ns/app:abc",
            "--destination",
            "127.0.0.1:5000/ns/app:latest",
            "--cache=true",
            "--cache-repo=127.0.0.1:5000/ns/app/cache",
            "--insecure",
            "--digest-file=/dev/termination-log",
            "--build-arg=A=1",
            "--build-arg",
            "B=2",
            "--reproducible",
            "--verbosity",
            "debug",
        ]));
        assert_eq!(flags.context.as_deref(), Some("dir:///workspace/src/app"));
        assert_eq!(flags.dockerfile.as_deref(), Some("docker/Dockerfile"));
        assert_eq!(
            flags.destinations,
            ["127.0.0.1:5000/ns/app:abc", "127.0.0.1:5000/ns/app:latest"]
        );
        assert!(flags.cache);
        assert_eq!(flags.build_args, ["A=1", "B=2"]);
        assert_eq!(flags.digest_file.as_deref(), Some("/dev/termination-log"));
        assert_eq!(
            flags.ignored,
            [
                "--cache-repo=127.0.0.1:5000/ns/app/cache",
                "--reproducible",
                "--verbosity debug"
            ]
        );
        assert!(!parse(&strings(&["--cache=false"])).cache);
    }

    #[test]
    fn only_the_sandboxs_registry_is_a_destination() {
        assert!(in_registry("127.0.0.1:5000/a/b:1", Some("127.0.0.1:5000")).is_ok());
        let refused = in_registry("docker.io/a/b:1", Some("127.0.0.1:5000")).unwrap_err();
        assert!(
            refused.contains("only to its registry at 127.0.0.1:5000"),
            "{refused}"
        );
        assert!(in_registry("127.0.0.1:50001/a", Some("127.0.0.1:5000")).is_err());
        assert_eq!(
            context_path(Some("dir:///workspace/src/")).as_deref(),
            Ok("/workspace/src/")
        );
        assert!(context_path(Some("git://github.com/a/b")).is_err());
    }
}
