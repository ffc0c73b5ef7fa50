//! Routing cost against registry size: parses hosts and looks clusters up in registries of
//! 10, 10,000 and 100,000 entries, with both id forms, and prints nanoseconds per lookup.
//!
//! Run: `cargo run --release -p kip-gateway --example lookup`

use std::hint::black_box;
use std::time::Instant;

use std::sync::Arc;

use kip_gateway::host;
use kip_gateway::policy::Policy;
use kip_gateway::registry::{Registry, token_hash};

fn registry(n: usize, dir: &std::path::Path) -> Registry {
    let hash = token_hash("bench");
    let mut clusters = Vec::with_capacity(n + 1);
    for i in 0..n {
        let id = format!("10-{}-{}-{}", i / 62500, (i / 250) % 250, i % 250);
        clusters.push(format!(
            r#"{{"id":"{id}","address":"127.0.0.1:80","token_sha256":"{hash}"}}"#
        ));
        clusters.push(format!(
            r#"{{"id":"shop{i}","address":"127.0.0.1:80","token_sha256":"{hash}"}}"#
        ));
    }
    let path = dir.join(format!("registry-{n}.json"));
    let text = format!(r#"{{"version":1,"clusters":[{}]}}"#, clusters.join(","));
    if let Err(err) = std::fs::write(&path, text) {
        eprintln!("cannot write {}: {err}", path.display());
        std::process::exit(1);
    }
    // Loopback entries: private addresses must be allowed, as with --allow-private-clusters.
    match Registry::open(&path, false, Arc::new(Policy::new(true, Vec::new()))) {
        Ok(registry) => registry,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    }
}

fn route(registry: &Registry, h: &str) -> bool {
    let Ok(label) = host::label(h, "kipper.run") else {
        return false;
    };
    host::split(&label, |name| registry.contains(name))
        .and_then(|split| registry.get(split.cluster))
        .is_some()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("kip-gateway-lookup-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    const ROUNDS: usize = 2_000_000;
    for n in [10, 10_000, 100_000] {
        let registry = registry(n, &dir);
        let hosts: Vec<String> = (0..1024)
            .map(|i| {
                let i = (i * 7919) % n;
                if i % 2 == 0 {
                    format!(
                        "hello-test-10-{}-{}-{}.kipper.run",
                        i / 62500,
                        (i / 250) % 250,
                        i % 250
                    )
                } else {
                    format!("api-shop{i}.kipper.run")
                }
            })
            .collect();
        for h in &hosts {
            assert!(route(&registry, h), "{h} does not route");
        }
        let start = Instant::now();
        let mut found = 0usize;
        for round in 0..ROUNDS {
            found += usize::from(route(&registry, black_box(&hosts[round % hosts.len()])));
        }
        let ns = start.elapsed().as_nanos() as f64 / ROUNDS as f64;
        assert_eq!(found, ROUNDS);
        println!(
            "lookup clusters={n} entries={} ns_per_route={ns:.1}",
            registry.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
