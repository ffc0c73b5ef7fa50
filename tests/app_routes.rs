//! Routes through the real binary against a sandbox, checked with kubectl: route groups (one
//! host, one certificate, a stripped path prefix per app), custom domains, redirects, and the
//! refusals that keep two apps off one host and path.

use serde_json::Value;

use crate::common::{ServedSandbox, stderr as err, stdout as out};

fn get(sb: &ServedSandbox, what: &str, name: &str) -> Value {
    sb.kubectl().json(&["get", what, name])
}

/// `kip app deploy` of `name` (nginx on port 8080) with `extra` flags.
fn deploy_args<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "app",
        "deploy",
        "--name",
        name,
        "--image",
        "nginx:1.27",
        "--port",
        "8080",
    ];
    args.extend_from_slice(extra);
    args
}

fn deploy(sb: &ServedSandbox, name: &str, extra: &[&str]) -> String {
    sb.kip_ok(&deploy_args(name, extra))
}

/// A deploy that must be refused; its error output.
fn deploy_refused(sb: &ServedSandbox, name: &str, extra: &[&str]) -> String {
    sb.kip_refused(&deploy_args(name, extra))
}

fn owners(obj: &Value) -> Vec<String> {
    let mut names: Vec<String> = obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_route_group_shares_one_host_and_certificate_and_strips_each_prefix() {
    let sb = ServedSandbox::start();
    let said = deploy(&sb, "webapp", &["--route", "shop/"]);
    assert!(
        said.contains("Live at https://shop-sandbox.localhost "),
        "{said}"
    );
    let said = deploy(&sb, "domain-service", &["--route", "shop/domains-api/"]);
    assert!(
        said.contains("Live at https://shop-sandbox.localhost/domains-api "),
        "{said}"
    );

    let web = get(&sb, "ingress", "webapp");
    let dom = get(&sb, "ingress", "domain-service");
    for (ingress, path) in [(&web, "/"), (&dom, "/domains-api")] {
        let rule = &ingress["spec"]["rules"][0];
        assert_eq!(rule["host"], "shop-sandbox.localhost");
        assert_eq!(rule["http"]["paths"][0]["path"], path);
        assert_eq!(rule["http"]["paths"][0]["pathType"], "Prefix");
        assert_eq!(
            ingress["spec"]["tls"][0]["secretName"], "route-shop-tls",
            "one certificate"
        );
        assert!(
            ingress["metadata"]["annotations"]
                .get("cert-manager.io/cluster-issuer")
                .is_none(),
            "the group's Certificate, not one per Ingress"
        );
    }
    // The prefix is stripped before the request reaches domain-service; webapp keeps its paths.
    assert_eq!(
        dom["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"],
        "default-domain-service-strip@kubernetescrd"
    );
    assert!(
        web["metadata"]["annotations"]
            .get("traefik.ingress.kubernetes.io/router.middlewares")
            .is_none()
    );
    let strip = get(&sb, "middleware.traefik.io", "domain-service-strip");
    assert_eq!(
        strip["spec"]["stripPrefix"]["prefixes"],
        serde_json::json!(["/domains-api"])
    );
    sb.kubectl()
        .fails(&["get", "middleware.traefik.io", "webapp-strip"]);
    let cert = get(&sb, "certificate.cert-manager.io", "route-shop");
    assert_eq!(cert["spec"]["secretName"], "route-shop-tls");
    assert_eq!(
        cert["spec"]["dnsNames"],
        serde_json::json!(["shop-sandbox.localhost"])
    );
    assert_eq!(owners(&cert), ["domain-service", "webapp"]);

    let listed = sb.kip_ok(&["route", "list"]);
    let lines: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["GROUP", "HOST", "PATH", "APP"]);
    assert_eq!(lines[1], ["shop", "shop-sandbox.localhost", "/", "webapp"]);
    assert_eq!(lines[2], ["/domains-api", "domain-service"]);
    let json: Value =
        serde_json::from_str(&out(&sb.kip(&["route", "list", "-o", "json"]))).unwrap();
    assert_eq!(json[1]["app"], "domain-service");
    assert_eq!(json[1]["path"], "/domains-api");

    // A second app on the same path is refused, naming the owner; nothing of it is made.
    let e = deploy_refused(&sb, "other", &["--route", "shop/domains-api"]);
    assert!(
        e.contains(
            "path /domains-api of route group shop is already served by app `domain-service`"
        ),
        "{e}"
    );
    sb.kubectl().fails(&["get", "apps.kipper.run", "other"]);
    // So is an app whose own host is the group's.
    let e = deploy_refused(&sb, "shop", &[]);
    assert!(
        e.contains("host shop-sandbox.localhost is already served by app"),
        "{e}"
    );
    // And a member that would move the group to another host.
    let e = deploy_refused(
        &sb,
        "other",
        &["--route", "shop/x", "--domain", "shop.example.com"],
    );
    assert!(
        e.contains("route group shop is served at shop-sandbox.localhost"),
        "{e}"
    );

    // Leaving the group: back to its own host, its prefix Middleware gone, the certificate
    // now owned by webapp alone.
    let said = sb.kip_ok(&["app", "update", "domain-service", "--own-host"]);
    assert!(
        said.contains("Live at https://domain-service-sandbox.localhost"),
        "{said}"
    );
    sb.kubectl().ok(&[
        "wait",
        "--for=delete",
        "middleware.traefik.io/domain-service-strip",
        "--timeout=30s",
    ]);
    let dom = get(&sb, "ingress", "domain-service");
    assert_eq!(
        dom["spec"]["rules"][0]["host"],
        "domain-service-sandbox.localhost"
    );
    assert_eq!(dom["spec"]["rules"][0]["http"]["paths"][0]["path"], "/");
    assert_eq!(
        owners(&get(&sb, "certificate.cert-manager.io", "route-shop")),
        ["webapp"]
    );
    // Joining again with update; then deleting both apps takes the certificate with the last.
    sb.kip_ok(&["app", "update", "domain-service", "--route", "shop/api"]);
    assert_eq!(
        get(&sb, "middleware.traefik.io", "domain-service-strip")["spec"]["stripPrefix"]["prefixes"],
        serde_json::json!(["/api"])
    );
    sb.kip_ok(&["app", "delete", "webapp", "--yes"]);
    sb.kubectl()
        .ok(&["get", "certificate.cert-manager.io", "route-shop"]);
    sb.kip_ok(&["app", "delete", "domain-service", "--yes"]);
    sb.kubectl().ok(&[
        "wait",
        "--for=delete",
        "certificate.cert-manager.io/route-shop",
        "--timeout=30s",
    ]);
}

#[test]
fn bad_routes_are_refused_before_anything_is_written() {
    let sb = ServedSandbox::start();
    let cases: &[(&str, &str)] = &[
        ("noslash", "expected GROUP/PATH"),
        ("/api", "expected GROUP/PATH"),
        ("Shop/api", "Shop"),
        ("shop/a//b", "a path is /-separated segments"),
        ("shop/../admin", "a path is /-separated segments"),
        ("shop/a b", "a path is /-separated segments"),
        ("shop/a?b=1", "a path is /-separated segments"),
        ("shop/%2e%2e", "a path is /-separated segments"),
    ];
    for (route, says) in cases {
        let e = deploy_refused(&sb, "api", &["--route", route]);
        assert!(
            e.contains(says),
            "--route {route}: expected `{says}` in: {e}"
        );
    }
    let long = format!("shop/{}", "a".repeat(201));
    let e = deploy_refused(&sb, "api", &["--route", &long]);
    assert!(e.contains("at most 200"), "{e}");
    let hosts: Vec<String> = (0..11).map(|i| format!("h{i}.example.com")).collect();
    let mut eleven = vec![];
    for h in &hosts {
        eleven.extend_from_slice(&["--redirect-from", h.as_str()]);
    }
    let e = deploy_refused(&sb, "api", &eleven);
    assert!(e.contains("at most 10"), "{e}");
    for bad in ["Example.com", "localhost", "a..b.com", "x-.example.com"] {
        let e = deploy_refused(&sb, "api", &["--redirect-from", bad]);
        assert!(e.contains("--redirect-from"), "{bad}: {e}");
    }
    sb.kubectl().fails(&["get", "apps.kipper.run", "api"]);
    let e = sb.kip_refused(&["app", "update", "nope", "--route", "shop/"]);
    assert!(e.contains("no app `nope`"), "{e}");
}

#[test]
fn a_custom_domain_with_redirects() {
    let sb = ServedSandbox::start();
    let said = deploy(
        &sb,
        "shop",
        &[
            "--domain",
            "shop.example.com",
            "--redirect-from",
            "www.shop.example.com",
            "--redirect-from",
            "shop.example.net",
        ],
    );
    assert!(said.contains("Live at https://shop.example.com "), "{said}");
    let ingress = get(&sb, "ingress", "shop");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "shop.example.com");
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    let redirects = get(&sb, "ingress", "shop-redirects");
    let hosts: Vec<&str> = redirects["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["www.shop.example.com", "shop.example.net"]);
    assert_eq!(
        redirects["spec"]["tls"][0]["hosts"],
        serde_json::json!(hosts)
    );
    assert_eq!(
        redirects["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"],
        "default-shop-redirect@kubernetescrd"
    );
    let redirect = get(&sb, "middleware.traefik.io", "shop-redirect");
    assert_eq!(
        redirect["spec"]["redirectRegex"]["replacement"],
        "https://shop.example.com${1}"
    );
    assert_eq!(redirect["spec"]["redirectRegex"]["permanent"], true);

    // Another app cannot take a host that redirects, nor redirect from one that is served.
    let e = deploy_refused(&sb, "other", &["--domain", "shop.example.net"]);
    assert!(e.contains("already redirects to app `shop`"), "{e}");
    let e = deploy_refused(&sb, "other", &["--redirect-from", "shop.example.com"]);
    assert!(e.contains("already served by app `shop`"), "{e}");
    let e = sb.kip_refused(&[
        "app",
        "update",
        "shop",
        "--redirect-from",
        "shop.example.com",
    ]);
    assert!(e.contains("the app's own host"), "{e}");

    sb.kip_ok(&["app", "update", "shop", "--no-redirects"]);
    sb.kubectl().ok(&[
        "wait",
        "--for=delete",
        "ingress/shop-redirects",
        "middleware.traefik.io/shop-redirect",
        "--timeout=30s",
    ]);
    assert!(
        get(&sb, "apps.kipper.run", "shop")["spec"]["route"]
            .get("redirectFrom")
            .is_none()
    );
    let e = sb.kip_refused(&["app", "update", "shop"]);
    assert!(e.contains("nothing to change"), "{e}");
}

#[test]
fn a_route_group_moves_to_a_domain_and_dissolves() {
    let sb = ServedSandbox::start();
    let kubectl = sb.kubectl();
    deploy(&sb, "web", &["--route", "shop/"]);
    deploy(&sb, "api", &["--route", "shop/api"]);
    deploy(&sb, "taken", &["--domain", "taken.example.com"]);
    deploy(&sb, "other", &[]);
    let host = |app: &str| get(&sb, "ingress", app)["spec"]["rules"][0]["host"].clone();

    let said = sb.kip_ok(&["route", "update", "shop", "--domain", "shop.example.com"]);
    assert!(
        said.contains("moved from shop-sandbox.localhost to shop.example.com"),
        "{said}"
    );
    assert!(
        said.contains("api: Live at https://shop.example.com/api"),
        "{said}"
    );
    for app in ["web", "api"] {
        assert_eq!(host(app), "shop.example.com", "{app}");
    }
    let cert = get(&sb, "certificate", "route-shop");
    assert_eq!(
        cert["spec"]["dnsNames"],
        serde_json::json!(["shop.example.com"])
    );
    let listed: Value = serde_json::from_str(&sb.kip_ok(&["route", "list", "-o", "json"])).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["host"] == "shop.example.com"),
        "{listed}"
    );

    // Refusals name the problem and change nothing.
    let refusals: &[(&[&str], &str)] = &[
        (&["route", "update", "shop"], "nothing to change"),
        (
            &[
                "route",
                "update",
                "shop",
                "--domain",
                "a.example.com",
                "--auto-domain",
            ],
            "pass one",
        ),
        (
            &["route", "update", "shop", "--domain", "Bad_Host"],
            "--domain",
        ),
        (
            &["route", "update", "shop", "--domain", "taken.example.com"],
            "already served by app `taken`",
        ),
        (
            &[
                "route",
                "update",
                "shop",
                "--domain",
                "other-sandbox.localhost",
            ],
            "already served by app `other`",
        ),
        (
            &["route", "update", "nope", "--domain", "x.example.com"],
            "no route group `nope`",
        ),
        (
            &["route", "update", "Shop", "--domain", "x.example.com"],
            "Shop",
        ),
        (
            &["route", "delete", "nope", "--yes"],
            "no route group `nope`",
        ),
        (&["route", "delete", "shop"], "pass --yes"),
    ];
    for (args, says) in refusals {
        let e = sb.kip_refused(args);
        assert!(e.contains(says), "{args:?}: expected `{says}` in: {e}");
    }
    for app in ["web", "api"] {
        assert_eq!(host(app), "shop.example.com", "{app}");
    }
    let said = sb.kip_ok(&["route", "update", "shop", "--domain", "shop.example.com"]);
    assert!(
        said.contains("already served at shop.example.com") && !said.contains("moved"),
        "{said}"
    );

    let said = sb.kip_ok(&["route", "update", "shop", "--auto-domain"]);
    assert!(said.contains("to shop-sandbox.localhost"), "{said}");
    assert_eq!(host("api"), "shop-sandbox.localhost");

    // Dissolving: a dry run first, then for real; the apps stay, on hosts of their own.
    let said = sb.kip_ok(&["route", "delete", "shop", "--dry-run"]);
    assert!(said.contains("Dry run"), "{said}");
    assert_eq!(host("api"), "shop-sandbox.localhost");
    let said = sb.kip_ok(&["route", "delete", "shop", "--yes"]);
    assert!(said.contains("Route group shop dissolved"), "{said}");
    assert_eq!(host("web"), "web-sandbox.localhost");
    assert_eq!(host("api"), "api-sandbox.localhost");
    let api = get(&sb, "ingress", "api");
    assert_eq!(api["spec"]["rules"][0]["http"]["paths"][0]["path"], "/");
    assert!(
        api["metadata"]["annotations"]
            .get("traefik.ingress.kubernetes.io/router.middlewares")
            .is_none(),
        "{api}"
    );
    kubectl.ok(&[
        "wait",
        "--for=delete",
        "certificate/route-shop",
        "middleware.traefik.io/api-strip",
        "--timeout=30s",
    ]);
    for app in ["web", "api"] {
        let spec = &get(&sb, "apps.kipper.run", app)["spec"];
        assert!(spec["route"].get("group").is_none(), "{spec}");
    }
    assert_eq!(sb.kip_ok(&["route", "list", "-o", "json"]).trim(), "[]");
}

/// A deploy with a route writes each object it owns once (one server-side apply each; `-v`
/// shows every request), whatever it checks first.
#[test]
fn a_routed_deploy_applies_each_object_once() {
    let sb = ServedSandbox::start();
    let o = sb.kip(&[
        "-v",
        "app",
        "deploy",
        "--name",
        "api",
        "--image",
        "nginx:1.27",
        "--port",
        "80",
        "--route",
        "grp/api",
        "--redirect-from",
        "api.example.com",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let mut writes: Vec<String> = err(&o)
        .lines()
        .filter(|l| l.contains("http.method=PATCH") && !l.contains("dryRun"))
        .filter_map(|l| {
            let url = l.split("http.url=").nth(1)?.split_whitespace().next()?;
            Some(
                url.split('?')
                    .next()?
                    .split("/namespaces/default/")
                    .nth(1)?
                    .to_string(),
            )
        })
        .filter(|path| !path.starts_with("apps/"))
        .collect();
    writes.sort();
    assert_eq!(
        writes,
        [
            "certificates/route-grp",
            "configmaps/api-env",
            "deployments/api",
            "ingresses/api",
            "ingresses/api-redirects",
            "middlewares/api-redirect",
            "middlewares/api-strip",
            "services/api",
        ],
        "{}",
        err(&o)
    );
}

/// The instance-ID sidecar: on by default, in front of the app (the Service's targetPort is
/// the app's port + 10000), told the pod's name by the Downward API; off and on again with
/// update; a port it cannot add 10000 to is refused unless it is off.
#[test]
fn the_instance_id_sidecar_sits_in_front_of_the_app() {
    let sb = ServedSandbox::start();
    deploy(&sb, "api", &[]);
    let d = get(&sb, "deployment", "api");
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(containers.len(), 2, "{d}");
    let sidecar = &containers[1];
    assert_eq!(sidecar["name"], "instance-id");
    assert!(
        sidecar["image"]
            .as_str()
            .unwrap()
            .contains("kip-instance-id:"),
        "{sidecar}"
    );
    assert_eq!(sidecar["ports"][0]["containerPort"], 18080);
    let env = sidecar["env"].to_string();
    assert!(
        env.contains(r#""name":"KIP_UPSTREAM_PORT","value":"8080""#),
        "{env}"
    );
    assert!(env.contains(r#""fieldPath":"metadata.name""#), "{env}");
    assert_eq!(sidecar["resources"]["requests"]["memory"], "16Mi");
    assert_eq!(sidecar["resources"]["limits"]["cpu"], "50m");
    assert_eq!(sidecar["resources"]["limits"]["memory"], "32Mi");
    assert_eq!(
        get(&sb, "service", "api")["spec"]["ports"][0]["targetPort"],
        18080
    );

    sb.kip_ok(&["app", "update", "api", "--no-instance-header"]);
    let d = get(&sb, "deployment", "api");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&sb, "service", "api")["spec"]["ports"][0]["targetPort"],
        8080
    );
    assert_eq!(
        get(&sb, "apps.kipper.run", "api")["spec"]["instanceHeader"],
        false
    );
    // And back on.
    sb.kip_ok(&["app", "update", "api", "--instance-header"]);
    assert_eq!(
        get(&sb, "service", "api")["spec"]["ports"][0]["targetPort"],
        18080
    );

    let e = sb.kip_refused(&[
        "app",
        "deploy",
        "--name",
        "high",
        "--image",
        "nginx:1.27",
        "--port",
        "60000",
    ]);
    assert!(
        e.contains("use a port up to 55535, or pass --no-instance-header"),
        "{e}"
    );
    sb.kubectl().fails(&["get", "apps.kipper.run", "high"]);
    sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "high",
        "--image",
        "nginx:1.27",
        "--port",
        "60000",
        "--no-instance-header",
    ]);
    let e = sb.kip_refused(&["app", "update", "high", "--instance-header"]);
    assert!(e.contains("up to 55535"), "{e}");
    let e = sb.kip_refused(&[
        "app",
        "update",
        "high",
        "--instance-header",
        "--no-instance-header",
    ]);
    assert!(e.contains("pass one"), "{e}");
}
