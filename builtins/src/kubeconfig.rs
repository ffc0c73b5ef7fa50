//! Turning a server's own kubeconfig (k3s writes `/etc/rancher/k3s/k3s.yaml` with the API at
//! `https://127.0.0.1:6443` and everything named `default`) into one this machine can use:
//! the server's host replaced by the address kip reached the machine at, and the cluster,
//! user and context named after the cluster, so several such files can be merged into one
//! `~/.kube/config` without clashing.

use kube::config::Kubeconfig;

/// `text` rewritten: each cluster's server URL gets `server_host` as its host (scheme, port and
/// path kept), and when the file holds one context, its cluster, user and context are
/// renamed to `name`, which becomes the current context.
pub fn rewrite(text: &str, server_host: &str, name: &str) -> Result<String, String> {
    let mut config =
        Kubeconfig::from_yaml(text).map_err(|err| format!("not a kubeconfig: {err}"))?;
    if config.clusters.is_empty() {
        return Err("the kubeconfig names no cluster".into());
    }
    let host = bracketed(server_host.trim());
    if host.is_empty() {
        return Err("no server host to write into the kubeconfig".into());
    }
    for named in &mut config.clusters {
        let Some(cluster) = named.cluster.as_mut() else {
            continue;
        };
        let Some(server) = cluster.server.as_deref() else {
            continue;
        };
        cluster.server = Some(with_host(server, &host)?);
    }
    if let ([context], [cluster], [user]) = (
        config.contexts.as_mut_slice(),
        config.clusters.as_mut_slice(),
        config.auth_infos.as_mut_slice(),
    ) {
        context.name = name.to_owned();
        cluster.name = name.to_owned();
        user.name = name.to_owned();
        if let Some(ctx) = context.context.as_mut() {
            ctx.cluster = name.to_owned();
            ctx.user = Some(name.to_owned());
        }
        config.current_context = Some(name.to_owned());
    }
    serde_saphyr::to_string(&config).map_err(|err| format!("cannot write the kubeconfig: {err}"))
}

/// An IPv6 address in brackets, as a URL wants it; anything else as it is.
fn bracketed(host: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.contains(':') {
        format!("[{bare}]")
    } else {
        bare.to_owned()
    }
}

/// `server` with its host replaced by `host`.
fn with_host(server: &str, host: &str) -> Result<String, String> {
    let (scheme, rest) = server
        .split_once("://")
        .ok_or_else(|| format!("the kubeconfig's server `{server}` is not a URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let port = port_of(authority);
    Ok(match port {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    })
}

/// The port of `host:port`, `[v6]:port`; none for a bare host or `[v6]`.
fn port_of(authority: &str) -> Option<&str> {
    let after_host = match authority.rfind(']') {
        Some(end) => &authority[end + 1..],
        None => authority,
    };
    after_host
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|port| !port.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S_YAML: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTg==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
";

    fn parsed(text: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(text).expect("a kubeconfig")
    }

    #[test]
    fn k3s_kubeconfig_points_at_the_host_and_is_named_after_the_cluster() {
        let out = parsed(&rewrite(K3S_YAML, "203.0.113.10", "203-0-113-10").unwrap());
        let cluster = out.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://203.0.113.10:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some("LS0tLS1CRUdJTg==")
        );
        assert_eq!(out.clusters[0].name, "203-0-113-10");
        assert_eq!(out.auth_infos[0].name, "203-0-113-10");
        let auth = out.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(auth.client_certificate_data.as_deref(), Some("Y2VydA=="));
        let context = &out.contexts[0];
        assert_eq!(context.name, "203-0-113-10");
        let ctx = context.context.as_ref().unwrap();
        assert_eq!(ctx.cluster, "203-0-113-10");
        assert_eq!(ctx.user.as_deref(), Some("203-0-113-10"));
        assert_eq!(out.current_context.as_deref(), Some("203-0-113-10"));
    }

    #[test]
    fn scheme_port_and_path_are_kept() {
        let text = K3S_YAML.replace("https://127.0.0.1:6443", "http://localhost/api-proxy");
        let out = parsed(&rewrite(&text, "server.example", "x").unwrap());
        assert_eq!(
            out.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("http://server.example/api-proxy")
        );
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        let out = parsed(&rewrite(K3S_YAML, "2001:db8::10", "x").unwrap());
        assert_eq!(
            out.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://[2001:db8::10]:6443")
        );
        let text = K3S_YAML.replace("127.0.0.1:6443", "[::1]:6443");
        let out = parsed(&rewrite(&text, "[2001:db8::10]", "x").unwrap());
        assert_eq!(
            out.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://[2001:db8::10]:6443")
        );
    }

    #[test]
    fn several_contexts_keep_their_names() {
        let text = K3S_YAML.replace(
            "current-context: default",
            "- context:\n    cluster: default\n    user: default\n  name: other\ncurrent-context: default",
        );
        let out = parsed(&rewrite(&text, "10.0.0.2", "x").unwrap());
        assert_eq!(out.contexts.len(), 2);
        assert_eq!(out.contexts[0].name, "default");
        assert_eq!(
            out.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://10.0.0.2:6443")
        );
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(rewrite("not: [a kubeconfig", "h", "x").is_err());
        assert!(
            rewrite("apiVersion: v1\nkind: Config\n", "h", "x")
                .unwrap_err()
                .contains("no cluster")
        );
        assert!(rewrite(K3S_YAML, " ", "x").is_err());
        let text = K3S_YAML.replace("https://127.0.0.1:6443", "127.0.0.1:6443");
        assert!(rewrite(&text, "h", "x").unwrap_err().contains("not a URL"));
    }
}
