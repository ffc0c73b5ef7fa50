//! A real `kip-gateway` started in the test process on loopback, for domain `kipper.test`,
//! with an admin token and a registry file of its own. Shared with the root crate's tests.
//! Clusters on loopback are allowed (`--allow-private-clusters`): the tests' are there.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;

use clap::Parser as _;

pub struct Gateway {
    /// Serves the gateway: it stops when this is dropped.
    _runtime: tokio::runtime::Runtime,
    /// Holds the registry file (`registry.json`) and the token file.
    pub dir: tempfile::TempDir,
    /// The admin API's address.
    pub admin: SocketAddr,
    /// The proxy's (plain HTTP) address.
    #[allow(dead_code)] // Read by some of the crates that share this file only.
    pub http: SocketAddr,
}

impl Gateway {
    pub fn start(admin_token: &str) -> Gateway {
        Gateway::start_for("kipper.test", admin_token)
    }

    /// A gateway for the wildcard domain `domain`.
    pub fn start_for(domain: &str, admin_token: &str) -> Gateway {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let dir = tempfile::tempdir().expect("gateway dir");
        let token = dir.path().join("token");
        // Private, or the gateway refuses to start.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&token)
            .and_then(|mut file| file.write_all(admin_token.as_bytes()))
            .expect("token file");
        let registry = dir.path().join("registry.json");
        let config = kip_gateway::config::Config::try_parse_from([
            "kip-gateway",
            "--domain",
            domain,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--init",
            "--allow-private-clusters",
            "--registry",
            registry.to_str().expect("a UTF-8 path"),
            "--admin-token-file",
            token.to_str().expect("a UTF-8 path"),
        ])
        .expect("gateway flags");
        let started = runtime
            .block_on(kip_gateway::serve::start(config))
            .expect("start the gateway");
        Gateway {
            _runtime: runtime,
            dir,
            admin: started.admin,
            http: started.http,
        }
    }
}
