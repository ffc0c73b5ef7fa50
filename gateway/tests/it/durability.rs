//! The registry survives restarts and `kill -9` in the middle of a stream of registrations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;

#[test]
fn a_restart_keeps_the_registry_and_the_tokens() {
    let a = Backend::start("a");
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_in(dir.path(), &["--init"]);
    let token = gw.register("127-0-0-1", a.addr).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    gw.register("shop", a.addr);
    gw.kill();

    // No --init the second time: the file must be there and be read.
    let gw = Gateway::start_in(dir.path(), &[]);
    assert_eq!(gw.get("hello-127-0-0-1.kipper.test", "/").status, 200);
    assert_eq!(gw.get("api-shop.kipper.test", "/").status, 200);
    let me = admin(gw.admin, "GET", "/v1/clusters/127-0-0-1", Some(&token), b"");
    assert_eq!(
        me.status, 200,
        "the cluster token survives a restart: {me:?}"
    );
}

/// Registers clusters one after another until told to stop; returns the ids the gateway
/// acknowledged (answered 201).
fn register_until_stopped(
    admin_addr: std::net::SocketAddr,
    round: u32,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let mut i = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let id = format!("10-{round}-{}-{}", i / 250, i % 250);
        let body = format!(
            r#"{{"address":"10.{round}.{}.{}:443"}}"#,
            i / 250,
            i % 250 + 1
        );
        let request = format!(
            "PUT /v1/clusters/{id} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let Ok(mut stream) = std::net::TcpStream::connect(admin_addr) else {
            return;
        };
        use std::io::{Read as _, Write as _};
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        if out.starts_with(b"HTTP/1.1 201") {
            acked.lock().unwrap().push(id);
        } else {
            return;
        }
        i += 1;
    }
}

#[test]
fn kill_9_during_registrations_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut all_acked: Vec<String> = Vec::new();
    for round in 0..3u32 {
        let extra: &[&str] = if round == 0 { &["--init"] } else { &[] };
        let mut gw = Gateway::start_in(dir.path(), extra);
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                let (stop, acked, addr) = (stop.clone(), acked.clone(), gw.admin);
                std::thread::spawn(move || {
                    register_until_stopped(addr, round * 2 + writer, stop, acked)
                })
            })
            .collect();
        // Let registrations flow, then kill -9 in the middle of them (SIGKILL: no clean-up).
        while acked.lock().unwrap().len() < 20 + 15 * round as usize {
            std::thread::sleep(Duration::from_millis(5));
        }
        gw.kill();
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.join().unwrap();
        }
        all_acked.extend(acked.lock().unwrap().iter().cloned());

        // The file is whole JSON, and a restarted gateway has every acknowledged cluster.
        let text = std::fs::read(dir.path().join("registry.json")).unwrap();
        let file: serde_json::Value =
            serde_json::from_slice(&text).expect("the registry file parses");
        let on_disk: Vec<&str> = file["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        for id in &all_acked {
            assert!(
                on_disk.contains(&id.as_str()),
                "acknowledged {id} is missing after kill -9 (round {round})"
            );
        }
        let gw = Gateway::start_in(dir.path(), &[]);
        let list = admin(gw.admin, "GET", "/v1/clusters", Some(ADMIN_TOKEN), b"").json();
        let listed: Vec<&str> = list["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        for id in &all_acked {
            assert!(
                listed.contains(&id.as_str()),
                "{id} not served after restart"
            );
        }
        // Only leftovers of our own temporary files may remain beside the registry.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                name == "registry.json" || name == "admin-token" || name.ends_with(".tmp"),
                "{name}"
            );
        }
    }
    assert!(all_acked.len() >= 20 + 35 + 50);
}
