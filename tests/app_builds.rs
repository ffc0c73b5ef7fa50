//! Apps built from git, end to end with real parts: repositories served by `git http-backend`
//! (with a token) and `git daemon`, the sandbox running each build for real (git, buildah,
//! its own registry), the built image answering through the sandbox's ingress, and kip server
//! turning signed GitHub pushes and a hook script into builds.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::git::GitServer;
use crate::common::{ServedSandbox, stderr as err, stdout as out};
use crate::sandbox_builds::registry;
use crate::server::{Server, until};
use crate::webhooks::{fixture, github};
use crate::workloads::{APP, RealSandbox, app_image, live_url, through_ingress};

const TOKEN: &str = "kiptest-token-4f9a1c77";

/// How long a build may take on a loaded 2-core machine.
pub(crate) const BUILD: Duration = Duration::from_secs(240);

/// A Dockerfile whose app answers `version` at `/`; `run` is one more RUN step, if any.
pub(crate) fn dockerfile(version: &str, run: &str) -> String {
    let extra = if run.is_empty() {
        String::new()
    } else {
        format!("RUN {run}\n")
    };
    format!("FROM {APP}\n{extra}RUN echo {version} > /www/index.html\n")
}

/// `kip app deploy --git url` of `name` with `extra` flags, the output.
pub(crate) fn deploy_git(sb: &ServedSandbox, name: &str, url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "app",
        "deploy",
        "--name",
        name,
        "--git",
        url,
        "--port",
        "8080",
        "--no-instance-header",
    ];
    args.extend(extra);
    sb.kip_ok(&args)
}

/// [`deploy_git`] in a sandbox that runs containers, with `token` if any.
fn deploy(sb: &RealSandbox, name: &str, url: &str, token: Option<&str>) -> String {
    let extra = token.map(|t| vec!["--git-token", t]).unwrap_or_default();
    deploy_git(&sb.sandbox, name, url, &extra)
}

/// Whether a process of this machine has `pattern` in its command line.
pub(crate) fn runs(pattern: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What the app at the "Live at" line of `said` answers at `/`.
fn answer(said: &str) -> String {
    let (host, port, _) = live_url(said);
    let (code, _, body) = through_ingress(port, &host, "/");
    assert_eq!(code, 200, "{body}");
    body.trim().to_string()
}

/// Waits until the app at the "Live at" line of `said` answers `version`: after a rollout the
/// old pod may serve a last request while the endpoints catch up, as on a real cluster.
fn answers_soon(said: &str, version: &str) {
    let (host, port, _) = live_url(said);
    until(
        &format!("{host} to answer {version}"),
        Duration::from_secs(30),
        || {
            let (code, _, body) = through_ingress(port, &host, "/");
            (code == 200 && body.trim() == version).then_some(())
        },
    );
}

/// What the sandbox says of itself (ConfigMap kube-system/kip-sandbox), e.g. `ingress`.
fn sandbox_fact(sb: &RealSandbox, key: &str) -> String {
    let value = sb.kubectl().ok(&[
        "get",
        "configmap",
        "kip-sandbox",
        "-n",
        "kube-system",
        "-o",
        &format!("jsonpath={{.data.{key}}}"),
    ]);
    assert!(!value.trim().is_empty(), "the sandbox has no {key}");
    value.trim().to_string()
}

/// The tags of `repository` in the sandbox's registry, through its HTTP API.
fn tags(sb: &RealSandbox, repository: &str) -> Vec<String> {
    let address = registry(sb);
    let path = format!("/v2/{repository}/tags/list");
    let (code, _, body) = crate::common::raw_exchange(&address, &address, "GET", &path, None, &[])
        .expect("the registry answers");
    assert_eq!(code, 200, "{path}: {body}");
    let list: Value = serde_json::from_str(&body).expect("tags JSON");
    list["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect()
}

/// `kip app builds NAME -o json`, newest first.
pub(crate) fn builds(sb: &RealSandbox, name: &str) -> Vec<Value> {
    let said = sb.sandbox.kip_ok(&["app", "builds", name, "-o", "json"]);
    serde_json::from_str::<Value>(&said)
        .expect("builds JSON")
        .as_array()
        .expect("a list")
        .clone()
}

/// Everything a user or another client could read of the app's builds, but its Secret.
fn everything_said(sb: &RealSandbox, name: &str) -> String {
    let k = sb.kubectl();
    let mut all = String::new();
    for kind in ["pods", "jobs", "events", "apps", "deployments"] {
        all.push_str(&k.ok(&["get", kind, "-o", "json"]));
    }
    let logs = sb.sandbox.kip(&["app", "build-logs", name]);
    all.push_str(&out(&logs));
    all.push_str(&err(&logs));
    all
}

fn short(sha: &str) -> &str {
    &sha[..7]
}

/// A private repository: the token is stored in its Secret only, every build sends it, each
/// pushed version is built, pushed to the registry and answers; the token shows nowhere.
#[test]
fn a_private_repository_builds_with_its_token_and_each_version_answers() {
    app_image();
    let git = GitServer::start(Some(("x-access-token", TOKEN)));
    let repo = git.repo("shop", &[("Dockerfile", &dockerfile("v1", ""))]);
    let url = git.http_url("shop");
    let sb = RealSandbox::start();
    let said = deploy(&sb, "web", &url, Some(TOKEN));
    for line in [
        "✔ Git credentials stored",
        "✔ Deployment created",
        "✔ Service created",
        &format!("✔ Git source configured: {url} (main)"),
        "Configure a webhook or run 'kip app rebuild web' to trigger the first build",
    ] {
        assert!(said.contains(line), "no {line:?} in {said}");
    }
    let app = sb.kubectl().ok(&["get", "app", "web", "-o", "json"]);
    assert!(!app.contains(TOKEN), "the token is in the App: {app}");
    let secret = sb.kubectl().ok(&[
        "get",
        "secret",
        "web-git-credentials",
        "-o",
        "jsonpath={.data.token}",
    ]);
    use base64::Engine as _;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(secret.trim())
        .expect("base64");
    assert_eq!(stored, TOKEN.as_bytes());

    let v1 = repo.head();
    let said = sb.sandbox.kip_ok(&["app", "rebuild", "web"]);
    let image = format!("{}/default/web:{}", registry(&sb), short(&v1));
    assert!(
        said.contains(&format!("✔ Build 1 of web started: {} (main)", short(&v1))),
        "{said}"
    );
    assert!(said.contains(&format!("✔ Built {image}")), "{said}");
    assert_eq!(answer(&said), "v1");
    assert!(tags(&sb, "default/web").contains(&short(&v1).to_string()));
    // Every request the git server answered carried the token: none was refused.
    let asked = git.requests();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|r| r.authorization.is_some() && r.status == 200),
        "{asked:?}"
    );

    let v2 = repo.commit(&[("Dockerfile", &dockerfile("v2", ""))], "v2");
    let said = sb.sandbox.kip_ok(&["app", "rebuild", "web"]);
    assert!(said.contains("✔ Build 2 of web started"), "{said}");
    answers_soon(&said, "v2");
    let history = sb.sandbox.kip_ok(&["app", "history", "web", "-o", "json"]);
    let history: Value = serde_json::from_str(&history).expect("history JSON");
    let triggers: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["image"].as_str().unwrap(), e["trigger"].as_str().unwrap()))
        .collect();
    let v2_image = format!("{}/default/web:{}", registry(&sb), short(&v2));
    assert_eq!(
        triggers,
        [(image.as_str(), "build"), (v2_image.as_str(), "build")]
    );
    let list = builds(&sb, "web");
    let seen: Vec<(&str, &str)> = list
        .iter()
        .map(|b| (b["commit"].as_str().unwrap(), b["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [(v2.as_str(), "Succeeded"), (v1.as_str(), "Succeeded")]
    );
    let logs = sb.sandbox.kip_ok(&["app", "build-logs", "web"]);
    for step in [
        "==> clone <==",
        "==> fetch <==",
        "==> checkout <==",
        "==> build <==",
    ] {
        assert!(logs.contains(step), "no {step} in {logs}");
    }
    let all = everything_said(&sb, "web");
    assert!(!all.contains(TOKEN), "the token shows: {all}");
}

/// A wrong token: the branch head cannot be read, so `rebuild` refuses at once; a build of a
/// known commit (as a push asks) fails at its clone step, saying why; the token shows nowhere
/// and nothing runs.
#[test]
fn a_wrong_token_fails_the_build_with_its_reason_and_shows_no_token() {
    app_image();
    let git = GitServer::start(Some(("x-access-token", TOKEN)));
    let repo = git.repo("shop", &[("Dockerfile", &dockerfile("v1", ""))]);
    let sb = RealSandbox::start();
    let wrong = "not-the-token-8c1d2e";
    deploy(&sb, "web", &git.http_url("shop"), Some(wrong));

    let o = sb.sandbox.kip(&["app", "rebuild", "web"]);
    assert!(!o.status.success());
    let said = err(&o);
    assert!(said.contains("cannot read"), "{said}");
    assert!(said.contains("check the token"), "{said}");
    assert!(!said.contains(wrong), "{said}");
    assert!(builds(&sb, "web").is_empty());

    let o = sb
        .sandbox
        .kip(&["app", "rebuild", "web", "--commit", &repo.head()]);
    assert!(!o.status.success(), "{}", out(&o));
    let said = err(&o);
    assert!(
        said.contains("build 1 of web failed: step clone failed"),
        "{said}"
    );
    assert!(said.contains("the git server refused the token"), "{said}");
    assert!(said.contains("next: kip app build-logs web"), "{said}");
    let list = builds(&sb, "web");
    assert_eq!(list[0]["phase"], "Failed", "{list:?}");
    let app = sb.kubectl().ok(&["get", "app", "web", "-o", "json"]);
    let app: Value = serde_json::from_str(&app).unwrap();
    assert_eq!(app["status"]["build"]["phase"], "Failed", "{app}");
    assert!(app["spec"].get("image").is_none(), "{app}");
    let all = everything_said(&sb, "web");
    assert!(!all.contains(wrong), "the token shows: {all}");
    assert!(
        git.requests().iter().any(|r| r.status == 401),
        "{:?}",
        git.requests()
    );
}

/// `--commit` builds that commit, not the branch head; a Dockerfile that fails leaves the
/// version that runs running, and says which step failed and how.
#[test]
fn a_chosen_commit_is_built_and_a_failing_build_keeps_the_running_version() {
    app_image();
    let git = GitServer::start(None);
    let repo = git.repo("shop", &[("Dockerfile", &dockerfile("v1", ""))]);
    let v1 = repo.head();
    repo.commit(&[("Dockerfile", &dockerfile("v2", ""))], "v2");
    let sb = RealSandbox::start();
    deploy(&sb, "web", &git.git_url("shop"), None);
    let live = sb
        .sandbox
        .kip_ok(&["app", "rebuild", "web", "--commit", &v1]);
    assert!(live.contains(&format!("started: {}", short(&v1))), "{live}");
    assert_eq!(answer(&live), "v1");

    repo.commit(&[("Dockerfile", &dockerfile("v3", "false"))], "broken");
    let o = sb.sandbox.kip(&["app", "rebuild", "web"]);
    assert!(!o.status.success(), "{}", out(&o));
    let said = err(&o);
    assert!(
        said.contains("build 2 of web failed: step build failed"),
        "{said}"
    );
    assert!(said.contains("RUN false"), "buildah's words: {said}");
    assert!(
        said.contains(&format!("the app keeps running {}", registry(&sb)))
            && said.contains(&format!("/default/web:{}", short(&v1))),
        "{said}"
    );
    assert_eq!(answer(&live), "v1", "the old version still answers");
    let phases: Vec<String> = builds(&sb, "web")
        .iter()
        .map(|b| b["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(phases, ["Failed", "Succeeded"]);
}

/// `kip app build cancel` stops a build that runs: its pod and processes go within seconds and
/// the running version stays.
#[test]
fn a_build_is_cancelled_and_its_processes_stop() {
    app_image();
    let git = GitServer::start(None);
    let repo = git.repo("shop", &[("Dockerfile", &dockerfile("v1", ""))]);
    let sb = RealSandbox::start();
    deploy(&sb, "web", &git.git_url("shop"), None);
    let said = sb.sandbox.kip_ok(&["app", "rebuild", "web"]);
    assert_eq!(answer(&said), "v1");

    repo.commit(&[("Dockerfile", &dockerfile("v2", "sleep 97.5"))], "slow");
    let said = sb.sandbox.kip_ok(&["app", "rebuild", "web", "--no-wait"]);
    assert!(said.contains("✔ Build 2 of web started"), "{said}");
    until("the image build to run", BUILD, || {
        runs("sleep 97.5").then_some(())
    });
    let said = sb.sandbox.kip_ok(&["app", "build", "cancel", "web"]);
    assert!(said.contains("✔ Build 2 of web cancelled"), "{said}");
    until(
        "the cancelled build's processes to end",
        Duration::from_secs(30),
        || (!runs("sleep 97.5")).then_some(()),
    );
    until(
        "the cancelled build's pod to go",
        Duration::from_secs(30),
        || {
            let pods =
                sb.kubectl()
                    .ok(&["get", "pods", "-l", "job-name=web-build-2", "-o", "name"]);
            pods.trim().is_empty().then_some(())
        },
    );
    let list = builds(&sb, "web");
    assert_eq!(list[0]["phase"], "Cancelled", "{list:?}");
    assert!(
        list[0]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled by kip app build cancel"),
        "{list:?}"
    );
    let again = sb.sandbox.kip_ok(&["app", "build", "cancel", "web"]);
    assert!(again.contains("nothing to cancel"), "{again}");
    let apps = sb.sandbox.kip_ok(&["app", "list"]);
    assert!(apps.contains("running"), "{apps}");
}

/// kip server: a signed GitHub push builds the app and rolls the new version out; a second push
/// while the first build runs cancels it; a hook script's rebuild of another app is recorded as
/// the hook's.
#[test]
fn pushes_build_through_kip_server_and_a_newer_push_cancels_an_older_build() {
    app_image();
    let git = GitServer::start(None);
    let repo = git.repo("shop", &[("Dockerfile", &dockerfile("v1", ""))]);
    let url = git.git_url("shop");
    let sb = RealSandbox::start();
    deploy(&sb, "web", &url, None);
    deploy(&sb, "worker", &url, None);
    let enabled = sb.sandbox.kip_ok(&["app", "webhook", "enable", "web"]);
    let secret = enabled
        .lines()
        .find_map(|l| l.trim().strip_prefix("Secret        "))
        .unwrap_or_else(|| panic!("no secret in {enabled}"))
        .to_string();
    let hooks = tempfile::tempdir().unwrap();
    let hook = hooks.path().join("build-worker.rhai");
    std::fs::write(
        &hook,
        "fn on_push(event) {\n    kip::run(\"app rebuild\", #{ name: \"worker\", commit: event.commit });\n}\n",
    )
    .unwrap();
    sb.sandbox
        .kip_ok(&["hook", "add", &hook.display().to_string()]);
    let server = Server::start(&sb.sandbox, None);
    let push = |delivery: &str, commit: &str| {
        let mut body = fixture("github-push.json");
        body["after"] = json!(commit);
        body["head_commit"]["id"] = json!(commit);
        for key in ["clone_url", "html_url", "ssh_url", "git_url", "url"] {
            body["repository"][key] = json!(url);
        }
        let (code, text) = github(
            &server,
            "push",
            delivery,
            Some(&secret),
            body.to_string().as_bytes(),
        );
        assert_eq!(code, 200, "{text}");
        assert!(text.contains("accepted: build of"), "{text}");
    };

    let slow = repo.commit(&[("Dockerfile", &dockerfile("slow", "sleep 98.5"))], "slow");
    push("delivery-1", &slow);
    until("the first build's image build to run", BUILD, || {
        runs("sleep 98.5").then_some(())
    });
    let quick = repo.commit(&[("Dockerfile", &dockerfile("v2", ""))], "v2");
    push("delivery-2", &quick);
    let list = until("the newer push's build to succeed", BUILD, || {
        let list = builds(&sb, "web");
        (list.first()?["phase"] == "Succeeded" && list.first()?["commit"] == quick.as_str())
            .then_some(list)
    });
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[1]["phase"], "Cancelled", "{list:?}");
    assert!(
        list[1]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("superseded by a build of {}", short(&quick))),
        "{list:?}"
    );
    assert_eq!(list[0]["trigger"], "webhook", "{list:?}");
    let host = "web-sandbox.localhost";
    let ingress = sandbox_fact(&sb, "ingress");
    let port: u16 = ingress.rsplit(':').next().unwrap().parse().unwrap();
    until("the pushed version to answer", BUILD, || {
        let (code, _, body) =
            crate::common::raw_exchange(&format!("127.0.0.1:{port}"), host, "GET", "/", None, &[])
                .ok()?;
        (code == 200 && body.trim() == "v2").then_some(())
    });
    let worker = until("the hook's build of worker to succeed", BUILD, || {
        let list = builds(&sb, "worker");
        let newest = list.first()?.clone();
        (newest["phase"] == "Succeeded" && newest["commit"] == quick.as_str()).then_some(newest)
    });
    assert_eq!(worker["trigger"], "hook", "{worker}");
    drop(server);
}

/// Git flags a build could not use are refused before anything is written, each naming the
/// flag and the fix; nothing is left behind.
#[test]
fn bad_git_flags_are_refused_and_leave_nothing() {
    let sb = ServedSandbox::start();
    let base = ["app", "deploy", "--name", "api", "--port", "3000"];
    let cases: &[(&[&str], &str)] = &[
        (&[], "give --image IMAGE to run an image, or --git URL"),
        (
            &[
                "--image",
                "nginx:1.27",
                "--git",
                "https://github.com/acme/api.git",
            ],
            "--image and --git: pass one",
        ),
        (&["--git", "not a url"], "use the repository's clone URL"),
        (&["--git", "file:///etc"], "use the repository's clone URL"),
        // What clap takes as a value: a URL that git would read as an option.
        (
            &["--git=--upload-pack=touch /tmp/x"],
            "use the repository's clone URL",
        ),
        (
            &["--git", "https://u:ghp_secret@github.com/acme/api.git"],
            "leave the user and token out of the URL",
        ),
        (
            &[
                "--git",
                "git@github.com:acme/api.git",
                "--git-token",
                "t0k3n",
            ],
            "a token is sent only over https",
        ),
        (
            &[
                "--git",
                "https://github.com/acme/api.git",
                "--branch",
                "a..b",
            ],
            "use a git branch name",
        ),
        (
            &[
                "--git",
                "https://github.com/acme/api.git",
                "--context",
                "../up",
            ],
            "use a path inside the repository",
        ),
        (
            &[
                "--git",
                "https://github.com/acme/api.git",
                "--dockerfile",
                "/etc/passwd",
            ],
            "use a path inside the repository",
        ),
        (
            &[
                "--git",
                "https://github.com/acme/api.git",
                "--build-arg",
                "NOEQUALS",
            ],
            "expected KEY=VALUE",
        ),
        (
            &[
                "--git",
                "https://github.com/acme/api.git",
                "--build-memory",
                "lots",
            ],
            "use a Kubernetes quantity",
        ),
        (
            &["--image", "nginx:1.27", "--git-token", "t0k3n"],
            "--git-token and --build-arg go with --git",
        ),
    ];
    for (flags, want) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(*flags);
        let o = sb.kip(&args);
        assert!(!o.status.success(), "{args:?} was accepted");
        let said = err(&o);
        assert!(said.contains(want), "{args:?}: want {want:?} in {said}");
        assert!(
            !said.contains("ghp_secret") && !said.contains("t0k3n"),
            "{said}"
        );
    }
    // (No App CRD either: nothing got as far as installing it.)
    let left = sb
        .kubectl()
        .ok(&["get", "deploy,secrets,jobs,configmaps", "-o", "name"]);
    assert!(!left.contains("api"), "left behind: {left}");
}

/// `app git remove` turns a git app back into an image app that keeps its image, deletes its
/// token and refuses without confirmation; build verbs then say the app is not built from git.
#[test]
fn git_remove_keeps_the_image_and_deletes_the_token() {
    let sb = ServedSandbox::start();
    let repo = "https://github.com/acme/api.git";
    let with_token = ["--git-token", TOKEN, "--build-arg", "NODE_ENV=production"];
    let said = deploy_git(&sb, "api", repo, &with_token);
    assert!(said.contains("✔ Git credentials stored"), "{said}");
    let listed = sb.kip_ok(&["app", "list"]);
    assert!(listed.contains("awaiting build"), "{listed}");
    // Never built: nothing to keep running.
    let o = sb.kip(&["app", "git", "remove", "api", "--yes"]);
    assert!(err(&o).contains("has no image yet"), "{}", err(&o));
    // A simulated build (this sandbox runs no containers) gives it an image, and says so.
    let built = sb.kip(&[
        "app",
        "rebuild",
        "api",
        "--commit",
        "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    ]);
    assert!(built.status.success(), "{}", err(&built));
    assert!(
        err(&built).contains("the sandbox simulates its pods"),
        "{}",
        err(&built)
    );
    let refused = sb.kip(&["app", "git", "remove", "api"]);
    assert_eq!(refused.status.code(), Some(2), "{}", err(&refused));
    assert!(
        err(&refused).contains("pass --yes to confirm"),
        "{}",
        err(&refused)
    );
    sb.kubectl().ok(&["get", "secret", "api-git-credentials"]);
    let said = sb.kip_ok(&["app", "git", "remove", "api", "--yes"]);
    assert!(
        said.contains("api is no longer built from git; it runs "),
        "{said}"
    );
    sb.kubectl()
        .fails(&["get", "secret", "api-git-credentials"]);
    let app: Value =
        serde_json::from_str(&sb.kubectl().ok(&["get", "app", "api", "-o", "json"])).unwrap();
    assert_eq!(app["spec"]["source"]["kind"], "image", "{app}");
    assert!(app["spec"]["source"].get("git").is_none(), "{app}");
    assert!(
        app["spec"]["image"]
            .as_str()
            .unwrap()
            .ends_with("/default/api:0d1a26e"),
        "{app}"
    );
    let o = sb.kip(&["app", "rebuild", "api"]);
    assert!(err(&o).contains("is not built from git"), "{}", err(&o));
    // Deployed from git again with a token, then from an image: the token goes with the git
    // source.
    deploy_git(&sb, "api", repo, &with_token);
    sb.kubectl().ok(&["get", "secret", "api-git-credentials"]);
    sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "api",
        "--image",
        "nginx:1.27",
        "--port",
        "8080",
    ]);
    sb.kubectl()
        .fails(&["get", "secret", "api-git-credentials"]);
    let o = sb.kip(&["app", "build-logs", "api", "--build", "7"]);
    assert!(err(&o).contains("keeps builds 1"), "{}", err(&o));
}
