//! `gateway::…`: the hostname rule, and register/lookup/unregister against a real
//! `kip-gateway` started in-process on loopback.

#[path = "../common/gateway.rs"]
mod fixture;

use crate::Kit;
use fixture::Gateway;

const ADMIN: &str = "admin-token-for-builtins-tests";

#[test]
fn hostnames_follow_the_one_rule() {
    let kit = Kit::default();
    let eval = |script: &str| kit.eval::<String>(script);
    assert_eq!(
        eval(r#"gateway::app_host("hello", "test", "203-0-113-10", "kipper.run")"#),
        "hello-test-203-0-113-10.kipper.run"
    );
    assert_eq!(
        eval(r#"gateway::app_host("hello", "", "sandbox", "localhost")"#),
        "hello-sandbox.localhost"
    );
    assert_eq!(
        eval(r#"gateway::app_url("hello", "", "203-0-113-10", "kipper.run")"#),
        "https://hello-203-0-113-10.kipper.run"
    );
    assert_eq!(
        eval(r#"gateway::cluster_host("203-0-113-10", "kipper.run")"#),
        "203-0-113-10.kipper.run"
    );
    assert_eq!(
        eval(r#"gateway::console_host("shop", "kipper.run")"#),
        "console-shop.kipper.run"
    );
    let (kind, message) = kit.fail(r#"gateway::app_host("Hello", "", "shop", "kipper.run")"#);
    assert_eq!(kind, "invalid");
    assert!(message.contains("app name `Hello`"), "{message}");
    let (kind, message) = kit.fail(r#"gateway::cluster_host("203-0-113-300", "kipper.run")"#);
    assert_eq!(kind, "invalid");
    assert!(message.contains("neither an IPv4 address"), "{message}");
}

#[test]
fn register_lookup_and_unregister_against_a_gateway() {
    let gateway = Gateway::start(ADMIN);
    let (dir, admin) = (&gateway.dir, gateway.admin);
    let kit = Kit::default();
    let url = format!("http://{admin}/");
    let prelude = format!("let url = \"{url}\"; let admin = \"{ADMIN}\";");
    let run = |body: &str| kit.eval::<rhai::Dynamic>(&format!("{prelude}\n{body}"));
    let fail = |body: &str| kit.fail(&format!("{prelude}\n{body}"));

    let entry = run(r#"gateway::register(url, admin, "203-0-113-10", "203.0.113.10:443")"#)
        .cast::<rhai::Map>();
    assert_eq!(entry["address"].to_string(), "203.0.113.10:443");
    let token = entry["token"].to_string();
    assert_eq!(token.len(), 64);
    let on_disk = std::fs::read_to_string(dir.path().join("registry.json")).unwrap();
    assert!(on_disk.contains("\"203-0-113-10\""), "{on_disk}");

    // The cluster's own token reads and moves its entry; no new token is handed out.
    let moved = run(&format!(
        r#"let e = gateway::register(url, "{token}", "203-0-113-10", "203.0.113.11:8443");
           [e.address, "token" in e, gateway::lookup(url, "{token}", "203-0-113-10").address]"#
    ))
    .into_array()
    .unwrap();
    let moved: Vec<String> = moved.iter().map(|v| v.to_string()).collect();
    assert_eq!(moved, ["203.0.113.11:8443", "false", "203.0.113.11:8443"]);
    assert!(run(r#"gateway::lookup(url, admin, "10-0-0-1")"#).is_unit());

    let (kind, message) = fail(r#"gateway::register(url, admin, "Not_An_Id", "10.0.0.1:80")"#);
    assert_eq!(kind, "invalid");
    assert!(message.contains("cluster id `Not_An_Id`"), "{message}");
    let (kind, message) = fail(r#"gateway::register(url, admin, "shop", "shop.example:80")"#);
    assert_eq!(kind, "invalid");
    assert!(
        message.contains("must be an IP address and port"),
        "{message}"
    );
    let (kind, _) = fail(r#"gateway::lookup(url, "wrong-token", "203-0-113-10")"#);
    assert_eq!(kind, "denied");

    assert!(
        run(r#"gateway::unregister(url, admin, "203-0-113-10")"#)
            .as_bool()
            .unwrap()
    );
    assert!(
        !run(r#"gateway::unregister(url, admin, "203-0-113-10")"#)
            .as_bool()
            .unwrap()
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (kind, message) = kit.fail(&format!(
        r#"gateway::lookup("http://{closed}", "x", "shop")"#
    ));
    assert_eq!(kind, "unreachable");
    assert!(message.contains(&closed.to_string()), "{message}");
    let (kind, _) = kit.fail(r#"gateway::lookup("ftp://x", "x", "shop")"#);
    assert_eq!(kind, "invalid");
}
