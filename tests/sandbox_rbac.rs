//! Who may do what in the sandbox: ServiceAccount tokens from `kubectl create token`, RBAC
//! through the bootstrap roles (`view`, `edit`, and kip's roles aggregated into them),
//! impersonation with `kubectl --as`, and kip itself run with a namespaced user's kubeconfig.

use std::path::PathBuf;

use crate::common::{ServedSandbox, nginx_deploy, raw_exchange_with};

const DEV: &str = "system:serviceaccount:shop-test:dev";

/// A sandbox with project `shop` (test, prod) and the ServiceAccount `dev` in `shop-test`,
/// bound to `edit` there.
fn shop() -> ServedSandbox {
    let sb = ServedSandbox::start();
    sb.kip_ok(&["project", "create", "shop", "--environments", "test,prod"]);
    let k = sb.kubectl();
    k.ok(&["create", "serviceaccount", "dev", "-n", "shop-test"]);
    k.ok(&[
        "create",
        "rolebinding",
        "dev-edit",
        "--clusterrole=edit",
        "--serviceaccount=shop-test:dev",
        "-n",
        "shop-test",
    ]);
    sb
}

fn token(sb: &ServedSandbox) -> String {
    sb.kubectl()
        .ok(&["create", "token", "dev", "-n", "shop-test"])
        .trim()
        .to_string()
}

/// `METHOD path` with `Authorization: Bearer token`: the status and the body.
fn as_bearer(sb: &ServedSandbox, token: &str, method: &str, path: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let address = sb.url().trim_start_matches("http://").to_string();
    let (code, _, body) = raw_exchange_with(
        &address,
        &address,
        method,
        path,
        &[("Authorization", auth.as_str())],
        b"",
    )
    .expect("the sandbox answers");
    (code, body)
}

#[test]
fn tokens_authenticate_service_accounts_and_rbac_decides() {
    let sb = shop();
    let t = token(&sb);
    assert_eq!(t.split('.').count(), 3, "a JWT: {t}");

    let (code, body) = as_bearer(&sb, &t, "GET", "/api/v1/namespaces/shop-test/pods");
    assert_eq!(code, 200, "{body}");
    let (code, body) = as_bearer(&sb, &t, "GET", "/api/v1/namespaces/shop-prod/pods");
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(&format!(
            "pods is forbidden: User \\\"{DEV}\\\" cannot list resource \\\"pods\\\" in API group \\\"\\\" in the namespace \\\"shop-prod\\\""
        )),
        "{body}"
    );
    let (code, _) = as_bearer(&sb, &t, "GET", "/api/v1/namespaces");
    assert_eq!(code, 403, "listing namespaces is cluster-wide");
    let (code, _) = as_bearer(&sb, &t, "GET", "/apis");
    assert_eq!(code, 200, "discovery is open to every authenticated user");

    // Wrong, tampered and foreign credentials are 401, whatever they ask.
    let mut tampered = t.clone();
    tampered.insert(t.len() - 2, 'x');
    for bad in ["nope", tampered.as_str(), "a.b.c"] {
        let (code, body) = as_bearer(&sb, bad, "GET", "/api/v1/namespaces/shop-test/pods");
        assert_eq!(code, 401, "{bad}: {body}");
    }

    // The same token from another sandbox is not this one's.
    let other = shop();
    let foreign = token(&other);
    let (code, _) = as_bearer(&sb, &foreign, "GET", "/api/v1/namespaces/shop-test/pods");
    assert_eq!(code, 401);

    // Too short a life is refused; deleting the account ends its tokens.
    let short = sb
        .kubectl()
        .fails(&["create", "token", "dev", "-n", "shop-test", "--duration=1m"]);
    assert!(short.contains("less than 10 minutes"), "{short}");
    sb.kubectl()
        .ok(&["delete", "serviceaccount", "dev", "-n", "shop-test"]);
    let (code, _) = as_bearer(&sb, &t, "GET", "/api/v1/namespaces/shop-test/pods");
    assert_eq!(code, 401, "the account is gone");
}

#[test]
fn kubectl_as_a_user_sees_what_rbac_grants() {
    let sb = shop();
    let k = sb.kubectl();
    let as_dev = format!("--as={DEV}");
    let who = k.ok(&["auth", "whoami", &as_dev]);
    assert!(
        who.contains(DEV) && who.contains("system:serviceaccounts:shop-test"),
        "{who}"
    );
    let can = |verb: &str, what: &str, ns: &str| {
        let o = k.run(&["auth", "can-i", verb, what, "-n", ns, &as_dev]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(can("patch", "deployments", "shop-test"), "yes");
    assert_eq!(can("get", "secrets", "shop-test"), "yes");
    assert_eq!(
        can("patch", "apps.kipper.run", "shop-test"),
        "yes",
        "kip's roles join edit"
    );
    assert_eq!(
        can("create", "rolebindings", "shop-test"),
        "no",
        "edit is not admin"
    );
    assert_eq!(can("patch", "deployments", "shop-prod"), "no");
    let refused = k.fails(&["get", "pods", "-n", "shop-prod", &as_dev]);
    assert!(
        refused.contains("Forbidden") && refused.contains("shop-prod"),
        "{refused}"
    );
    // A viewer reads but neither writes nor reads secrets.
    k.ok(&["create", "serviceaccount", "viewer", "-n", "shop-test"]);
    k.ok(&[
        "create",
        "rolebinding",
        "viewer-view",
        "--clusterrole=view",
        "--serviceaccount=shop-test:viewer",
        "-n",
        "shop-test",
    ]);
    let as_viewer = "--as=system:serviceaccount:shop-test:viewer";
    k.ok(&["get", "deployments", "-n", "shop-test", as_viewer]);
    k.fails(&["get", "secrets", "-n", "shop-test", as_viewer]);
    k.fails(&["create", "configmap", "x", "-n", "shop-test", as_viewer]);
    // Taking on another user is granted like anything else: bob has no binding, and dev may
    // not pass for the admin.
    let o = k.run(&["get", "pods", "-n", "shop-test", "--as=bob"]);
    assert!(!o.status.success());
    let t = token(&sb);
    let auth = format!("Bearer {t}");
    let address = sb.url().trim_start_matches("http://").to_string();
    let (code, _, body) = raw_exchange_with(
        &address,
        &address,
        "GET",
        "/api/v1/namespaces",
        &[
            ("Authorization", auth.as_str()),
            ("Impersonate-User", "system:admin"),
            ("Impersonate-Group", "system:masters"),
        ],
        b"",
    )
    .expect("the sandbox answers");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cannot impersonate resource"), "{body}");
    let list = k.ok(&["get", "clusterroles", "-o", "name"]);
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "kipper-edit",
        "kipper-view",
    ] {
        assert!(
            list.contains(&format!("clusterrole.rbac.authorization.k8s.io/{role}\n")),
            "{role} in {list}"
        );
    }
}

/// A kubeconfig for this sandbox with `token` as its credentials.
fn kubeconfig_with(sb: &ServedSandbox, token: &str) -> PathBuf {
    let admin = std::fs::read_to_string(sb.kubeconfig()).expect("kubeconfig");
    let mine = admin.replace("token: kip-sandbox", &format!("token: {token}"));
    assert_ne!(admin, mine);
    let path = sb.kip_home().join("dev.kubeconfig");
    std::fs::write(&path, mine).expect("write kubeconfig");
    path
}

#[test]
fn kip_with_a_namespaced_users_credentials() {
    let sb = shop();
    let t = token(&sb);
    let config = kubeconfig_with(&sb, &t);
    let dev = |args: &[&str]| {
        sb.kip_command(args)
            .env("KUBECONFIG", &config)
            .output()
            .expect("run kip")
    };
    let said = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let place = ["--project", "shop", "--environment", "test"];
    let o = dev(&nginx_deploy("web", "shop", "test"));
    assert!(o.status.success(), "{}", said(&o));
    let o = dev(&[&["app", "scale", "web", "--replicas", "2"][..], &place].concat());
    assert!(o.status.success(), "{}", said(&o));
    let replicas = sb
        .kubectl()
        .jsonpath("deployment", "web", "shop-test", "{.spec.replicas}");
    assert_eq!(replicas, "2");

    // prod is not theirs: the cluster's refusal, in its words, and nothing made there.
    let o = dev(&nginx_deploy("web", "shop", "prod"));
    assert!(!o.status.success());
    assert!(
        said(&o).contains(&format!("User \"{DEV}\" cannot")),
        "{}",
        said(&o)
    );
    sb.kubectl()
        .fails(&["get", "apps.kipper.run", "web", "-n", "shop-prod"]);
    let o = dev(&["project", "delete", "shop", "--yes"]);
    assert!(!o.status.success(), "{}", said(&o));
    sb.kubectl().ok(&["get", "projects.kipper.run", "shop"]);
}
