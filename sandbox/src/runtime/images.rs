//! Where a pod's image comes from: podman's store (what `kip sandbox image build|prepare` and
//! buildah made) or the sandbox's local registry, pulled on first use. No other registry is
//! asked: the sandbox reaches nothing beyond this machine.

use super::Runtime;
use super::podman;

/// The reference podman runs for `image`, or why the image cannot be had.
pub async fn resolve(runtime: &Runtime, image: &str) -> Result<String, String> {
    let (domain, path) = split(image);
    let mut local = vec![image.to_string()];
    if domain.is_none() || domain == Some("docker.io") {
        let bare = path.strip_prefix("library/").unwrap_or(path);
        local.push(format!("localhost/{bare}"));
        if !bare.contains('/') {
            local.push(format!("docker.io/library/{bare}"));
        }
    }
    for candidate in &local {
        if exists(runtime, candidate).await {
            return Ok(candidate.clone());
        }
    }
    let Some(registry) = &runtime.registry else {
        return Err(format!(
            "image {image} is not in the sandbox's image store and the sandbox has no local \
             registry: build it with `kip sandbox image build NAME DIR` (or `kip sandbox image \
             prepare` for nginx, postgres and redis)"
        ));
    };
    let remote = match domain {
        Some(d) if d == registry => image.to_string(),
        Some(d) if d != "docker.io" && d != "localhost" => {
            return Err(format!(
                "image {image} is in registry {d}, which the sandbox does not reach (it pulls \
                 only from its own registry at {registry}): push it there, or build it with \
                 `kip sandbox image build`"
            ));
        }
        _ => format!(
            "{registry}/{}",
            path.strip_prefix("library/").unwrap_or(path)
        ),
    };
    if exists(runtime, &remote).await {
        return Ok(remote);
    }
    match podman::run(
        &runtime.containers,
        &["pull", "--quiet", "--tls-verify=false", &remote],
    )
    .await
    {
        Ok(_) => Ok(remote),
        Err(_) => Err(format!(
            "image {image} is neither in the sandbox's image store nor in its registry at \
             {registry}: build it with `kip sandbox image build NAME DIR` (or `kip sandbox \
             image prepare` for nginx, postgres and redis)"
        )),
    }
}

async fn exists(runtime: &Runtime, reference: &str) -> bool {
    podman::run(&runtime.containers, &["image", "exists", reference])
        .await
        .is_ok()
}

/// The registry part of a reference (when its first component names a host) and the rest.
fn split(image: &str) -> (Option<&str>, &str) {
    match image.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, image),
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn a_first_component_with_a_dot_or_port_is_a_registry() {
        assert_eq!(split("nginx:1"), (None, "nginx:1"));
        assert_eq!(split("team/app:2"), (None, "team/app:2"));
        assert_eq!(split("127.0.0.1:5000/app"), (Some("127.0.0.1:5000"), "app"));
        assert_eq!(
            split("docker.io/library/redis"),
            (Some("docker.io"), "library/redis")
        );
        assert_eq!(split("localhost/app"), (Some("localhost"), "app"));
    }
}
