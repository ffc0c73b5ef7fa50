//! Push webhooks through the real `kip server` and sandbox over HTTP: `kip app webhook enable`
//! makes the secret, signed GitHub and tokened GitLab and generic deliveries request builds,
//! and every bad delivery is refused with its status and words.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{ServedSandbox, stderr as err, stdout as out};
use crate::server::{Server, WAIT, get, until};

pub(crate) fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect("fixture JSON")
}

/// `POST path` with `headers` and `body`; the status and the body of the answer.
fn post(address: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to kip server");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    // The server may answer (413) before reading a large body; a failed write is fine then.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (code, body.unwrap_or_default())
}

/// `sha256=<hex>` of `body` keyed with `secret`, as GitHub signs.
fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A GitHub delivery of `event` with `body`, signed with `secret` (unsigned when None).
pub(crate) fn github(
    server: &Server,
    event: &str,
    delivery: &str,
    secret: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let signature = secret.map(|s| sign(s, body));
    let mut headers = vec![
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", delivery),
        ("User-Agent", "GitHub-Hookshot/5a1a1e4"),
    ];
    if let Some(sig) = &signature {
        headers.push(("X-Hub-Signature-256", sig));
    }
    post(&server.address, "/hooks/github", &headers, body)
}

fn gitlab(server: &Server, event: &str, uuid: &str, token: &str, body: &Value) -> (u16, String) {
    let headers = [
        ("X-Gitlab-Event", event),
        ("X-Gitlab-Event-UUID", uuid),
        ("X-Gitlab-Token", token),
        ("User-Agent", "GitLab/17.6.0"),
    ];
    post(
        &server.address,
        "/hooks/gitlab",
        &headers,
        body.to_string().as_bytes(),
    )
}

/// Deploys `app` and enables its webhook for `repo`; returns the secret `enable` printed.
fn enable(sb: &ServedSandbox, app: &str, repo: &str) -> String {
    let o = sb.kip(&[
        "app",
        "deploy",
        "--name",
        app,
        "--image",
        "nginx:1.27",
        "--port",
        "80",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let o = sb.kip(&["app", "webhook", "enable", app, "--repo", repo]);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert!(
        text.contains("Payload URL   https://console-sandbox.localhost/hooks/github"),
        "{text}"
    );
    assert!(text.contains("Content type  application/json"), "{text}");
    let secret = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Secret        "))
        .unwrap_or_else(|| panic!("no secret in {text}"))
        .to_string();
    assert_eq!(secret.len(), 64, "{text}");
    // Re-running keeps the secret: a webhook already pasted goes on working.
    let again = sb.kip(&["app", "webhook", "enable", app]);
    assert!(out(&again).contains(&secret), "{}", err(&again));
    secret
}

/// The App's status.buildRequest once it records `commit`.
fn build_of(sb: &ServedSandbox, app: &str, commit: &str) -> Value {
    until(
        &format!("app {app} to record a build of {commit}"),
        WAIT,
        || {
            let a = get(sb, &["app", app, "-n", "default"])?;
            (a["status"]["buildRequest"]["requested"] == commit)
                .then(|| a["status"]["buildRequest"].clone())
        },
    )
}

#[test]
fn signed_github_pushes_request_builds_and_bad_deliveries_are_refused() {
    let sb = ServedSandbox::start();
    // The ssh form of the repository: the payload's clone_url must still find it.
    let secret = enable(&sb, "web", "git@github.com:Acme/shop.git");
    let server = Server::start(&sb, None);
    let push = fixture("github-push.json");
    let body = push.to_string().into_bytes();
    let after = push["after"].as_str().unwrap();

    // A new webhook's ping is answered once the secret verifies.
    let ping = fixture("github-ping.json").to_string().into_bytes();
    assert_eq!(
        github(&server, "ping", "p-1", Some(&secret), &ping),
        (200, "pong\n".into())
    );
    let (code, text) = github(&server, "ping", "p-2", Some("not-the-secret"), &ping);
    assert_eq!(code, 401, "{text}");

    // Refused before anything is looked up.
    let (code, text) = github(&server, "push", "d-unsigned", None, &body);
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("unsigned delivery"), "{text}");
    let (code, text) = github(&server, "push", "d-wrong", Some("not-the-secret"), &body);
    assert_eq!(
        (code, text.as_str()),
        (401, "the signature does not match the webhook secret\n")
    );
    let (code, text) = post(
        &server.address,
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "d-sha1"),
            ("X-Hub-Signature-256", "sha1=0a0b"),
        ],
        &body,
    );
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("bad X-Hub-Signature-256"), "{text}");
    let broken = b"{\"ref\": \"refs/heads/main\",";
    let (code, text) = github(&server, "push", "d-broken", Some(&secret), broken);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("not valid JSON"), "{text}");
    let form = format!("payload={}", "%7B%7D");
    let sig = sign(&secret, form.as_bytes());
    let (code, text) = post(
        &server.address,
        "/hooks/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "d-form"),
            ("X-Hub-Signature-256", &sig),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form.as_bytes(),
    );
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("set its content type to application/json"),
        "{text}"
    );
    let (code, text) = github(&server, "push", &"d".repeat(200), Some(&secret), &body);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("delivery id is longer than 128"), "{text}");
    let huge = vec![b' '; (1 << 20) + 1];
    let (code, text) = github(&server, "push", "d-huge", Some(&secret), &huge);
    assert_eq!(
        (code, text.as_str()),
        (413, "the payload is larger than 1024 KiB\n")
    );
    let mut other = push.clone();
    for key in ["clone_url", "html_url", "ssh_url", "git_url", "url"] {
        other["repository"][key] = json!("https://github.com/acme/other.git");
    }
    let other = other.to_string().into_bytes();
    let (code, text) = github(&server, "push", "d-other", Some(&secret), &other);
    assert_eq!(code, 404, "{text}");
    assert!(
        text.starts_with(
            "no app with a webhook takes pushes from https://github.com/acme/other.git"
        ),
        "{text}"
    );
    let (code, text) = github(&server, "issues", "d-issue", Some(&secret), b"{}");
    assert_eq!(code, 202, "{text}");
    assert!(text.contains("ignored: event \"issues\""), "{text}");

    // The push itself.
    let (code, text) = github(&server, "push", "d-1", Some(&secret), &body);
    assert_eq!(
        (code, text.as_str()),
        (
            200,
            "accepted: build of 0d1a26e (main) requested for default/web\n"
        )
    );
    let build = build_of(&sb, "web", after);
    assert_eq!(build["delivery"], "d-1", "{build}");
    assert_eq!(build["branch"], "main", "{build}");
    assert_eq!(build["provider"], "github", "{build}");
    // The controller's status writes keep it.
    crate::server::app_in_phase(&sb, "default", "web", "Running");
    sb.kubectl().ok(&[
        "patch",
        "app",
        "web",
        "-n",
        "default",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    until("the controller to scale to 2", WAIT, || {
        let a = get(&sb, &["app", "web", "-n", "default"])?;
        let seen = a["status"]["observedGeneration"] == a["metadata"]["generation"];
        (seen && a["status"]["replicas"] == 2).then_some(())
    });
    assert_eq!(build_of(&sb, "web", after)["delivery"], "d-1");

    // A replay does nothing a second time.
    let (code, text) = github(&server, "push", "d-1", Some(&secret), &body);
    assert_eq!(
        (code, text.as_str()),
        (
            409,
            "delivery d-1 was already received: nothing done again\n"
        )
    );

    // Another branch is not built; a tag is accepted without a build.
    let mut dev = push.clone();
    dev["ref"] = json!("refs/heads/dev");
    dev["after"] = json!("1111111111111111111111111111111111111111");
    let dev = dev.to_string().into_bytes();
    let (code, text) = github(&server, "push", "d-2", Some(&secret), &dev);
    assert_eq!(
        (code, text.as_str()),
        (
            202,
            "ignored: push to branch dev; default/web builds main\n"
        )
    );
    let mut tag = push.clone();
    tag["ref"] = json!("refs/tags/v1.2.0");
    tag["base_ref"] = json!("refs/heads/main");
    let tag = tag.to_string().into_bytes();
    let (code, text) = github(&server, "push", "d-3", Some(&secret), &tag);
    assert_eq!(code, 200, "{text}");
    assert!(
        text.starts_with("accepted: tag v1.2.0 at 0d1a26e"),
        "{text}"
    );
    assert_eq!(build_of(&sb, "web", after)["delivery"], "d-1");

    // Each push was handed on once (the three changed files of both commits, once each).
    assert!(
        server.log().contains(&format!(
            "push github d-1: https://github.com/acme/shop.git branch main at {after} (4 files changed) for default/web"
        )),
        "{}",
        server.log()
    );
    assert_eq!(server.log().matches("push github d-1:").count(), 1);
    // Another replica behind the same URL refuses the latest delivery too: it is noted on the
    // Secret, not only in the first server's memory.
    let replica = Server::start(&sb, None);
    let (code, text) = github(&replica, "push", "d-3", Some(&secret), &tag);
    assert_eq!(code, 409, "{text}");

    // An app enabled while the server runs is found as soon as the server's watch sees it.
    let o = sb.kip(&[
        "app",
        "deploy",
        "--name",
        "docs",
        "--image",
        "nginx:1.27",
        "--port",
        "80",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let o = sb.kip(&[
        "app",
        "webhook",
        "enable",
        "docs",
        "--repo",
        "https://github.com/acme/docs",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let docs_secret = out(&o)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Secret        ").map(str::to_string))
        .expect("secret");
    let mut docs_ping = fixture("github-ping.json");
    docs_ping["repository"]["clone_url"] = json!("https://github.com/acme/docs.git");
    let docs_ping = docs_ping.to_string().into_bytes();
    let mut n = 0;
    until("the new app's ping to be answered", WAIT, || {
        n += 1;
        let (code, text) = github(
            &server,
            "ping",
            &format!("p-docs-{n}"),
            Some(&docs_secret),
            &docs_ping,
        );
        (code == 200 && text == "pong\n").then_some(())
    });

    // `status` shows the last delivery and the build request.
    let o = sb.kip(&["app", "webhook", "status", "web", "-o", "json"]);
    assert!(o.status.success(), "{}", err(&o));
    let status: Value = serde_json::from_str(&out(&o)).expect("JSON");
    assert_eq!(status["enabled"], true, "{status}");
    assert_eq!(status["repo"], "git@github.com:Acme/shop.git", "{status}");
    assert_eq!(
        status["urls"]["github"],
        "https://console-sandbox.localhost/hooks/github"
    );
    assert_eq!(status["last_delivery"]["id"], "d-3", "{status}");
    assert!(
        status["last_delivery"]["result"]
            .as_str()
            .unwrap()
            .starts_with("200 accepted: tag v1.2.0"),
        "{status}"
    );
    assert_eq!(status["build"]["requested"], after, "{status}");
    let o = sb.kip(&["app", "webhook", "status", "web"]);
    assert!(out(&o).contains("Webhook          enabled"), "{}", out(&o));
    assert!(server.healthy(), "{}", server.log());
}

#[test]
fn gitlab_and_generic_pushes_verify_their_token_and_disable_refuses_later_ones() {
    let sb = ServedSandbox::start();
    let secret = enable(&sb, "api", "https://gitlab.example.com/mike/diaspora");
    // What enable refuses, in words, before writing anything.
    let o = sb.kip(&["app", "webhook", "enable", "nope"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("no app `nope` in default"), "{}", err(&o));
    let o = sb.kip(&[
        "app",
        "deploy",
        "--name",
        "bare",
        "--image",
        "nginx:1.27",
        "--port",
        "80",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let o = sb.kip(&["app", "webhook", "enable", "bare"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("pass --repo URL"), "{}", err(&o));
    for (flag, value) in [
        ("--repo", "shop"),
        ("--branch", "a..b"),
        ("--url", "kip.example.com"),
    ] {
        let mut args = vec!["app", "webhook", "enable", "bare", flag, value];
        if flag != "--repo" {
            args.extend(["--repo", "https://x.example/a/b"]);
        }
        let o = sb.kip(&args);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", err(&o));
        let said = format!("invalid value '{value}' for '{flag}'");
        assert!(err(&o).contains(&said), "{}", err(&o));
    }
    assert!(get(&sb, &["secret", "bare-webhook", "-n", "default"]).is_none());
    let bare = get(&sb, &["app", "bare", "-n", "default"]).expect("App");
    assert!(bare["spec"]["source"].get("git").is_none(), "{bare}");
    let server = Server::start(&sb, None);
    let push = fixture("gitlab-push.json");

    let (code, text) = gitlab(&server, "Push Hook", "u-0", "wrong", &push);
    assert_eq!(
        (code, text.as_str()),
        (401, "the token does not match the webhook secret\n")
    );
    let (code, text) = post(
        &server.address,
        "/hooks/gitlab",
        &[
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Event-UUID", "u-x"),
        ],
        push.to_string().as_bytes(),
    );
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("no X-Gitlab-Token"), "{text}");
    let (code, text) = gitlab(&server, "Push Hook", "u-1", &secret, &push);
    assert_eq!(
        (code, text.as_str()),
        (
            200,
            "accepted: build of da15608 (main) requested for default/api\n"
        )
    );
    let build = build_of(&sb, "api", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
    assert_eq!(build["provider"], "gitlab", "{build}");
    let (code, _) = gitlab(&server, "Push Hook", "u-1", &secret, &push);
    assert_eq!(code, 409);
    let tag = fixture("gitlab-tag-push.json");
    let (code, text) = gitlab(&server, "Tag Push Hook", "u-2", &secret, &tag);
    assert_eq!(code, 200, "{text}");
    assert!(
        text.starts_with("accepted: tag v1.0.0 at 82b3d5a"),
        "{text}"
    );
    let (code, text) = gitlab(&server, "Merge Request Hook", "u-3", &secret, &tag);
    assert_eq!(code, 202, "{text}");

    // Any other CI: a bearer token and a small body.
    let generic = |token: &str, body: &str| {
        post(
            &server.address,
            "/hooks/generic",
            &[("Authorization", &format!("Bearer {token}"))],
            body.as_bytes(),
        )
    };
    let body = r#"{"repo": "git@gitlab.example.com:mike/diaspora.git", "branch": "main", "commit": "c0ffee0000000000000000000000000000000000"}"#;
    let (code, text) = generic(&secret, body);
    assert_eq!(
        (code, text.as_str()),
        (
            200,
            "accepted: build of c0ffee0 (main) requested for default/api\n"
        )
    );
    build_of(&sb, "api", "c0ffee0000000000000000000000000000000000");
    assert_eq!(generic("wrong", body).0, 401);
    let (code, text) = generic(&secret, r#"{"repo": "x"}"#);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("missing field `commit`"), "{text}");
    let (code, text) = post(&server.address, "/hooks/generic", &[], body.as_bytes());
    assert_eq!(code, 401, "{text}");

    // Disabling is destructive: refused without a terminal unless --yes.
    let o = sb.kip(&["app", "webhook", "disable", "api"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("--yes"), "{}", err(&o));
    let o = sb.kip(&["app", "webhook", "disable", "api", "--yes"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("Webhook of api disabled"), "{}", out(&o));
    assert!(get(&sb, &["secret", "api-webhook", "-n", "default"]).is_none());
    let (code, text) = gitlab(&server, "Push Hook", "u-4", &secret, &push);
    assert_eq!(code, 404, "{text}");
    assert_eq!(generic(&secret, body).0, 404);
    let o = sb.kip(&["app", "webhook", "status", "api"]);
    assert!(
        out(&o).contains("disabled (kip app webhook enable api)"),
        "{}",
        out(&o)
    );
}

/// A signed push runs the hooks of the app's project on the server: a good one updates the app
/// with the pushed commit, a runaway one is stopped; `kip hook logs` shows both runs, with the
/// delivery, what each printed and why the runaway stopped.
#[test]
fn a_push_runs_the_projects_hooks_and_kip_hook_logs_shows_the_runs() {
    let sb = ServedSandbox::start();
    let server = Server::start(&sb, None);
    let secret = enable(&sb, "web", "https://github.com/acme/shop.git");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("update-web.rhai");
    std::fs::write(
        &good,
        r#"fn on_push(event) {
    print(`${event.provider} push of ${event.commit} to ${event.branch} in ${event.project}: ${event.apps.map(|a| a.name)}`);
    kip::run("app update", #{ name: "web", image: `nginx:${event.commit.sub_string(0, 7)}` });
}
"#,
    )
    .unwrap();
    let runaway = dir.path().join("runaway.rhai");
    std::fs::write(&runaway, "fn on_push(event) {\n    loop { }\n}\n").unwrap();
    for file in [&good, &runaway] {
        let added = sb.kip(&["hook", "add", &file.display().to_string()]);
        assert!(added.status.success(), "{}", err(&added));
    }
    let push = fixture("github-push.json");
    let after = push["after"].as_str().unwrap().to_string();
    let (code, body) = github(
        &server,
        "push",
        "hooks-delivery-1",
        Some(&secret),
        push.to_string().as_bytes(),
    );
    assert_eq!(code, 200, "{body}");
    let runs = until("both hooks to have run", WAIT, || {
        let logs = sb.kip(&["hook", "logs", "-o", "json"]);
        let runs: Value = serde_json::from_str(&out(&logs)).ok()?;
        (runs.as_array()?.len() == 2).then_some(runs)
    });
    let run_of = |hook: &str| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["hook"] == hook)
            .unwrap_or_else(|| panic!("no run of {hook}: {runs}"))
            .clone()
    };
    let updated = run_of("update-web");
    assert_eq!(updated["outcome"], "succeeded", "{updated}");
    assert_eq!(updated["delivery"], "hooks-delivery-1", "{updated}");
    assert!(
        updated["output"].as_str().unwrap().contains(&format!(
            "github push of {after} to main in default: [\"web\"]"
        )),
        "{updated}"
    );
    let stopped = run_of("runaway");
    assert_eq!(stopped["outcome"], "stopped", "{stopped}");
    assert!(
        stopped["error"]
            .as_str()
            .unwrap()
            .contains("hook default/runaway"),
        "{stopped}"
    );
    let app = get(&sb, &["app", "web", "-n", "default"]).expect("App");
    assert_eq!(app["spec"]["image"], format!("nginx:{}", &after[..7]));
    // The table says the same in words, and the server said it on its output.
    let table = sb.kip(&["hook", "logs"]);
    assert!(
        out(&table).contains("runaway  stopped  (delivery hooks-delivery-1)"),
        "{}",
        out(&table)
    );
    assert!(
        server.log().contains("hook default/update-web succeeded"),
        "{}",
        server.log()
    );
    let listed = sb.kip(&["hook", "list"]);
    assert!(out(&listed).contains("stopped"), "{}", out(&listed));
}
