//! The registration API: tokens, what each token may do, and bad bodies.

use crate::support::*;

#[test]
fn admin_and_cluster_tokens() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    let created = gw.register("127-0-0-1", a.addr);
    assert_eq!(created.status, 201);
    let token = created.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    let other = gw.register("shop", a.addr).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Re-registering with the admin token updates and does not hand out a new token.
    let again = gw.register("127-0-0-1", a.addr);
    assert_eq!(again.status, 200);
    assert!(again.json().get("token").is_none());

    // The cluster may read and update itself…
    let me = admin(gw.admin, "GET", "/v1/clusters/127-0-0-1", Some(&token), b"");
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["address"], a.addr.to_string());
    let moved = closed_port();
    let body = format!(r#"{{"address":"{moved}"}}"#);
    let update = admin(
        gw.admin,
        "PUT",
        "/v1/clusters/127-0-0-1",
        Some(&token),
        body.as_bytes(),
    );
    assert_eq!(update.status, 200, "{update:?}");
    assert_eq!(update.json()["address"], moved.to_string());

    // …but nothing else: not another cluster, not a new one, not the list.
    for (method, path) in [
        ("GET", "/v1/clusters/shop"),
        ("PUT", "/v1/clusters/shop"),
        ("DELETE", "/v1/clusters/shop"),
        ("PUT", "/v1/clusters/127-0-0-2"),
        ("GET", "/v1/clusters"),
    ] {
        let reply = admin(gw.admin, method, path, Some(&token), body.as_bytes());
        assert_eq!(reply.status, 401, "{method} {path}: {reply:?}");
        assert!(reply.headers["www-authenticate"].starts_with("Bearer"));
    }
    // No token, a wrong token, another scheme.
    for auth in [None, Some("wrong-token-wrong-token"), Some(&other[..])] {
        let reply = admin(gw.admin, "GET", "/v1/clusters/127-0-0-1", auth, b"");
        assert_eq!(reply.status, 401, "{auth:?}");
    }
    let basic = request(
        gw.admin,
        "GET",
        "admin",
        "/v1/clusters",
        &[("Authorization", "Basic YTpi")],
        b"",
    );
    assert_eq!(basic.status, 401);

    let list = admin(gw.admin, "GET", "/v1/clusters", Some(ADMIN_TOKEN), b"").json();
    let ids: Vec<_> = list["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["127-0-0-1", "shop"]);

    // A cluster may unregister itself; then its token is worth nothing.
    assert_eq!(
        admin(
            gw.admin,
            "DELETE",
            "/v1/clusters/127-0-0-1",
            Some(&token),
            b""
        )
        .status,
        204
    );
    assert_eq!(
        admin(gw.admin, "GET", "/v1/clusters/127-0-0-1", Some(&token), b"").status,
        401
    );
    assert_eq!(
        admin(
            gw.admin,
            "GET",
            "/v1/clusters/127-0-0-1",
            Some(ADMIN_TOKEN),
            b""
        )
        .status,
        404
    );
    assert_eq!(
        admin(
            gw.admin,
            "DELETE",
            "/v1/clusters/127-0-0-1",
            Some(ADMIN_TOKEN),
            b""
        )
        .status,
        404
    );
    assert_eq!(gw.get("x-127-0-0-1.kipper.test", "/").status, 404);
}

#[test]
fn bad_registrations_are_refused_with_the_reason() {
    let a = Backend::start("a");
    let gw = Gateway::start(&[]);
    let put = |id: &str, body: &[u8]| {
        admin(
            gw.admin,
            "PUT",
            &format!("/v1/clusters/{id}"),
            Some(ADMIN_TOKEN),
            body,
        )
    };
    for (id, body, status, needle) in [
        (
            "Bad_Id",
            &br#"{"address":"127.0.0.1:80"}"#[..],
            400,
            "cluster id `Bad_Id`",
        ),
        (
            "203-0-113-256",
            br#"{"address":"127.0.0.1:80"}"#,
            400,
            "neither an IPv4",
        ),
        (
            "shop-1-2-3-4",
            br#"{"address":"127.0.0.1:80"}"#,
            400,
            "not ending in an address",
        ),
        (
            "shop",
            br#"{"address":"localhost:80"}"#,
            400,
            "must be an IP address and port",
        ),
        (
            "shop",
            br#"{"address":"127.0.0.1:0"}"#,
            400,
            "cannot receive",
        ),
        (
            "shop",
            br#"{"address":"127.0.0.1:80","weight":3}"#,
            400,
            "unknown field `weight`",
        ),
        (
            "shop",
            br#"{"address":"127.0.0.1:80""#,
            400,
            "not a registration",
        ),
        ("shop", b"", 400, "not a registration"),
        ("shop", br#"[1,2,3]"#, 400, "not a registration"),
    ] {
        let reply = put(id, body);
        assert_eq!(
            reply.status,
            status,
            "{id} {:?}: {reply:?}",
            String::from_utf8_lossy(body)
        );
        let message = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{message}");
    }
    let huge = vec![b' '; 64 * 1024];
    assert_eq!(put("shop", &huge).status, 413);
    let post = admin(
        gw.admin,
        "POST",
        "/v1/clusters/shop",
        Some(ADMIN_TOKEN),
        b"{}",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, PUT, DELETE");
    assert_eq!(
        admin(gw.admin, "GET", "/v2/nothing", Some(ADMIN_TOKEN), b"").status,
        404
    );
    // Nothing was stored, and the gateway still works.
    let list = admin(gw.admin, "GET", "/v1/clusters", Some(ADMIN_TOKEN), b"").json();
    assert_eq!(list["clusters"].as_array().unwrap().len(), 0);
    gw.register("shop", a.addr);
    assert_eq!(gw.get("shop.kipper.test", "/").status, 200);
}
