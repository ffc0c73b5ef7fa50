//! Flags and environment variables. Every flag has an env twin (`KIP_GATEWAY_…`) so the
//! gateway runs the same from a shell, a systemd unit or a container.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The subdomain gateway of Kipper: routes `<app>-<cluster-id>.<domain>` to the cluster.
#[derive(Debug, Clone, Parser)]
#[command(name = "kip-gateway", version, about, long_about = None)]
pub struct Config {
    /// The domain whose subdomains this gateway serves (a wildcard DNS record points here).
    #[arg(long, env = "KIP_GATEWAY_DOMAIN")]
    pub domain: String,

    /// Plain HTTP listener for proxied traffic.
    #[arg(long, env = "KIP_GATEWAY_LISTEN", default_value = "0.0.0.0:80")]
    pub listen: SocketAddr,

    /// HTTPS listener for proxied traffic; needs --tls-cert and --tls-key.
    #[arg(long, env = "KIP_GATEWAY_LISTEN_TLS", requires_all = ["tls_cert", "tls_key"])]
    pub listen_tls: Option<SocketAddr>,

    /// Listener of the registration API, /healthz and /metrics. Keep it private.
    #[arg(
        long,
        env = "KIP_GATEWAY_ADMIN_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub admin_listen: SocketAddr,

    /// The registry file (JSON), rewritten atomically on every change.
    #[arg(long, env = "KIP_GATEWAY_REGISTRY")]
    pub registry: PathBuf,

    /// Create an empty registry file if there is none. Without it a missing file is an error,
    /// so a wrong path never starts a gateway that silently knows no cluster.
    #[arg(long, env = "KIP_GATEWAY_INIT")]
    pub init: bool,

    /// File holding the admin bearer token (at least 16 characters), which may do everything.
    /// Group and others must not be able to read or write it (`chmod 600`).
    #[arg(long, env = "KIP_GATEWAY_ADMIN_TOKEN_FILE")]
    pub admin_token_file: PathBuf,

    /// Allow clusters at loopback, private, link-local and other non-public addresses
    /// (127.0.0.1, 10.0.0.0/8, 169.254.0.0/16, fc00::/7…) and at this machine's own addresses,
    /// for tests and gateways whose clusters are on a private network. Without it a
    /// registration can only name a public address, so no cluster token can make the gateway
    /// reach into its own network. The gateway's own listeners are refused either way.
    #[arg(long, env = "KIP_GATEWAY_ALLOW_PRIVATE_CLUSTERS")]
    pub allow_private_clusters: bool,

    /// PEM certificate chain for TLS (a wildcard certificate for *.<domain>).
    #[arg(long, env = "KIP_GATEWAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for TLS.
    #[arg(long, env = "KIP_GATEWAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// How often the certificate files are checked for changes.
    #[arg(long, env = "KIP_GATEWAY_TLS_RELOAD", default_value = "5s", value_parser = duration)]
    pub tls_reload: Duration,

    /// The longest a client may take from connecting to a complete first request head (TLS
    /// handshake included), and on a kept-alive HTTP/1.1 connection from the end of one
    /// response to the complete head of the next request.
    #[arg(long, env = "KIP_GATEWAY_HEADER_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub header_timeout: Duration,

    /// A client connection with no bytes either way for this long is closed.
    #[arg(long, env = "KIP_GATEWAY_IDLE_TIMEOUT", default_value = "120s", value_parser = duration)]
    pub idle_timeout: Duration,

    /// The longest a connection to a cluster may take to open.
    #[arg(long, env = "KIP_GATEWAY_CONNECT_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub connect_timeout: Duration,

    /// The longest a cluster may take to send response headers (then 504).
    #[arg(long, env = "KIP_GATEWAY_RESPONSE_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub response_timeout: Duration,

    /// Idle pooled connections to clusters are closed after this long.
    #[arg(long, env = "KIP_GATEWAY_POOL_IDLE_TIMEOUT", default_value = "90s", value_parser = duration)]
    pub pool_idle_timeout: Duration,

    /// The most bytes of request headers a client may send (then 431).
    #[arg(long, env = "KIP_GATEWAY_MAX_HEADER_BYTES", default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,

    /// Proxy worker threads, each with its own listener and cluster connection pool (default:
    /// one per CPU). The admin API runs on a thread of its own.
    #[arg(long, env = "KIP_GATEWAY_THREADS")]
    pub threads: Option<usize>,

    /// Log filter (`info`, `debug`, `kip_gateway=trace`…); RUST_LOG works too.
    #[arg(long, env = "KIP_GATEWAY_LOG", default_value = "info")]
    pub log: String,
}

/// Parses `250ms`, `10s`, `2m` or a bare number of seconds (`1.5`).
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 && value * scale < 1e9 => {
            Ok(Duration::from_secs_f64(value * scale))
        }
        _ => Err(format!(
            "`{text}` is not a duration: write a positive number with ms, s or m, like 10s"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["", "0", "-1s", "abc", "NaNs", "1h"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
