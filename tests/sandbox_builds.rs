//! Builds from git for real: a Job shaped like `templates/app/build-job.yaml.j2` (git clone,
//! fetch and checkout in init containers, then Kaniko) runs in a sandbox with `--runtime
//! podman`, its containers stood in for by this machine's git and buildah; the image lands in
//! the sandbox's registry and runs as a pod. The repositories are served for real on loopback
//! (`common::git`).

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::Kubectl;
use crate::common::git::GitServer;
use crate::workloads::{BUSYBOX, RealSandbox, busybox_image, wait_pod};

const GIT_IMAGE: &str = "alpine/git:v2.47.2";
const KANIKO_IMAGE: &str = "gcr.io/kaniko-project/executor:v1.23.2";
/// The longest a build may take on a loaded 2-core machine.
const BUILD_LIMIT: Duration = Duration::from_secs(420);

/// The sandbox's registry (`127.0.0.1:PORT`).
pub(crate) fn registry(sb: &RealSandbox) -> String {
    std::fs::read_to_string(sb.sandbox.kip_home().join("sandbox/registry.address"))
        .expect("sandbox/registry.address")
        .trim()
        .to_string()
}

/// Removes from the shared store, when dropped, the images the builds of the sandbox with the
/// registry `0` tagged (its port is its own).
struct BuiltImages(String);

/// A sandbox that runs containers, its registry's address, and the guard that removes what
/// the test built into the shared store.
fn sandbox_with_registry() -> (RealSandbox, String, BuiltImages) {
    busybox_image();
    let sb = RealSandbox::start();
    let registry = registry(&sb);
    let images = BuiltImages(registry.clone());
    (sb, registry, images)
}

impl Drop for BuiltImages {
    fn drop(&mut self) {
        let containers =
            sandbox::containers::Containers::at(&crate::workloads::shared_containers())
                .expect("shared store");
        let Ok(out) = containers
            .command("podman")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
        else {
            return;
        };
        let prefix = format!("{}/", self.0);
        for image in String::from_utf8_lossy(&out.stdout).lines() {
            if image.starts_with(&prefix) {
                let _ = containers
                    .command("podman")
                    .args(["rmi", "-f", image])
                    .output();
            }
        }
    }
}

/// What a build Job is made of, as the template renders it.
struct Build {
    job: String,
    url: String,
    branch: String,
    commit: String,
    destination: String,
    /// (Secret name, `scheme://host:port/`) for an Authorization header.
    credentials: Option<(String, String)>,
    build_args: Vec<String>,
}

impl Build {
    fn git_step(&self, name: &str, args: Vec<String>) -> Value {
        let mut env = vec![json!({"name": "GIT_TERMINAL_PROMPT", "value": "0"})];
        if let Some((secret, scope)) = &self.credentials {
            env.push(json!({"name": "GIT_CONFIG_COUNT", "value": "1"}));
            env.push(
                json!({"name": "GIT_CONFIG_KEY_0", "value": format!("http.{scope}.extraHeader")}),
            );
            env.push(json!({"name": "GIT_CONFIG_VALUE_0",
                "valueFrom": {"secretKeyRef": {"name": secret, "key": "authorization"}}}));
        }
        json!({
            "name": name, "image": GIT_IMAGE, "args": args, "env": env,
            "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        })
    }

    fn json(&self) -> String {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        let mut kaniko = vec![
            "--context=dir:///workspace/src/".to_string(),
            "--dockerfile=Dockerfile".to_string(),
            format!("--destination={}", self.destination),
            "--cache=true".to_string(),
            format!(
                "--cache-repo={}/cache",
                self.destination.rsplit_once(':').map_or("", |d| d.0)
            ),
            "--insecure".to_string(),
            "--digest-file=/dev/termination-log".to_string(),
        ];
        kaniko.extend(self.build_args.iter().map(|a| format!("--build-arg={a}")));
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": self.job, "labels": {"kipper.run/build": self.job},
                "annotations": {"kipper.run/commit": self.commit}},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 1800, "template": {
                "metadata": {"labels": {"kipper.run/build": self.job}},
                "spec": {
                    "restartPolicy": "Never", "automountServiceAccountToken": false,
                    "initContainers": [
                        self.git_step("clone", s(&["clone", "--single-branch", "--depth", "1",
                            "--branch", &self.branch, "--", &self.url, "/workspace/src"])),
                        self.git_step("fetch", s(&["-C", "/workspace/src", "fetch", "--depth",
                            "1", "origin", &self.commit])),
                        self.git_step("checkout", s(&["-C", "/workspace/src", "-c",
                            "advice.detachedHead=false", "checkout", "--detach", &self.commit])),
                    ],
                    "containers": [{
                        "name": "build", "image": KANIKO_IMAGE, "args": kaniko,
                        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                            "limits": {"cpu": "1", "memory": "1Gi"}},
                    }],
                    "volumes": [{"name": "workspace", "emptyDir": {}}],
                }}}
        });
        job.to_string()
    }
}

/// The Dockerfile of the tests' repositories: busybox from the store, the commit's file.
fn dockerfile(extra: &str) -> String {
    format!(
        "FROM {BUSYBOX}\nARG GREETING=unset\nCOPY hello.txt /hello.txt\nRUN echo \"$GREETING\" > /greeting.txt\n{extra}"
    )
}

/// Polls the Job until it is Complete or Failed (at most `limit`); the Job.
fn wait_job(k: &Kubectl, name: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let job = k.json(&["get", "job", name, "-o", "json"]);
        let finished = job["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        });
        if finished {
            return job;
        }
        if Instant::now() >= deadline {
            let pods = k.ok(&[
                "get",
                "pods",
                "-l",
                &format!("job-name={name}"),
                "-o",
                "json",
            ]);
            panic!(
                "job {name} did not finish in {limit:?}: {}\npods: {pods}",
                job["status"]
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// The one pod of the Job `name`, once it exists.
fn job_pod(k: &Kubectl, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = k.json(&[
            "get",
            "pods",
            "-l",
            &format!("job-name={name}"),
            "-o",
            "json",
        ]);
        if let Some(pod) = pods["items"].as_array().and_then(|p| p.first()) {
            return pod.clone();
        }
        assert!(
            Instant::now() < deadline,
            "job {name} made no pod within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn name_of(pod: &Value) -> String {
    pod["metadata"]["name"]
        .as_str()
        .expect("pod name")
        .to_string()
}

/// The terminated state of a container (init or not) of `pod`.
fn terminated<'a>(pod: &'a Value, container: &str) -> &'a Value {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|f| pod["status"][f].as_array())
        .flatten()
        .find(|s| s["name"] == container)
        .map(|s| &s["state"]["terminated"])
        .unwrap_or_else(|| panic!("no status of {container}: {}", pod["status"]))
}

/// GET from the registry with `Accept` headers: status, head, body.
fn registry_get(registry: &str, path: &str, accept: &[&str]) -> (u16, String, String) {
    let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
    crate::common::raw_exchange_with(registry, registry, "GET", path, &headers, &[])
        .expect("the registry answers")
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

#[test]
fn a_build_job_builds_the_requested_commit_pushes_it_and_its_image_runs() {
    let (sb, registry, _images) = sandbox_with_registry();
    let k = sb.kubectl();
    let git = GitServer::start(None);
    let repo = git.repo(
        "app",
        &[
            ("Dockerfile", &dockerfile("")),
            ("hello.txt", "hello from the first commit\n"),
        ],
    );
    let first = repo.head();
    // The branch moves on: the build asks for the older commit, as a rebuild does.
    let head = repo.commit(&[("hello.txt", "hello from the head\n")], "second");
    assert_ne!(first, head);
    let short = &first[..7];
    let destination = format!("{registry}/default/app:{short}");
    let build = Build {
        job: "app-build".into(),
        url: git.git_url("app"),
        branch: "main".into(),
        commit: first.clone(),
        destination: destination.clone(),
        credentials: None,
        build_args: vec!["GREETING=hi from a build arg".into()],
    };
    k.ok_stdin(&["apply", "-f", "-"], &build.json());
    // `logs -f` of the build, from while it waits to start until it ends.
    let name = name_of(&job_pod(&k, "app-build"));
    let follow = {
        let deadline = Instant::now() + BUILD_LIMIT;
        loop {
            // Bounded: kubectl gives up on the stream after the build's limit.
            let out = k.run(&["logs", "-f", &name, "-c", "build", "--request-timeout=420s"]);
            if out.status.success() {
                break String::from_utf8_lossy(&out.stdout).to_string();
            }
            let said = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(said.contains("waiting to start"), "{said}");
            assert!(Instant::now() < deadline, "the build never started: {said}");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let job = wait_job(&k, "app-build", BUILD_LIMIT);
    let pod = job_pod(&k, "app-build");
    assert!(
        follow.contains(&format!("Pushed {destination}@sha256:")),
        "logs -f ends with the build: {follow}"
    );
    assert!(
        condition(&job, "Complete"),
        "{}\n{}",
        job["status"],
        pod["status"]
    );
    assert_eq!(pod["status"]["phase"], "Succeeded", "{}", pod["status"]);
    for container in ["clone", "fetch", "checkout", "build"] {
        let state = terminated(&pod, container);
        assert_eq!(state["exitCode"], 0, "{container}: {state}");
        assert_eq!(state["reason"], "Completed", "{container}: {state}");
        assert!(
            state["startedAt"].is_string() && state["finishedAt"].is_string(),
            "{state}"
        );
    }
    // Every container's log, init containers' too.
    let clone_log = k.ok(&["logs", &name, "-c", "clone"]);
    assert!(clone_log.contains("Cloning into"), "{clone_log}");
    k.ok(&["logs", &name, "-c", "fetch"]);
    k.ok(&["logs", &name, "-c", "checkout"]);
    let build_log = k.ok(&["logs", &name, "-c", "build"]);
    assert!(
        build_log.contains("COPY hello.txt /hello.txt"),
        "{build_log}"
    );
    assert!(
        build_log.contains("--cache-repo"),
        "the ignored flag is said: {build_log}"
    );
    let stamped = k.ok(&["logs", &name, "-c", "build", "--timestamps", "--tail=1"]);
    let (time, _) = stamped.split_once(' ').expect("a timestamped line");
    let rfc3339 = time.len() >= 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z');
    assert!(rfc3339, "an RFC 3339 time: {stamped}");
    assert_eq!(stamped.lines().count(), 1, "{stamped}");
    // The image is in the registry, its digest the build's termination message.
    let (code, _, tags) = registry_get(&registry, "/v2/default/app/tags/list", &[]);
    assert_eq!(code, 200, "{tags}");
    let tags: Value = serde_json::from_str(&tags).expect("tags JSON");
    assert!(
        tags["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == short)),
        "{tags}"
    );
    let (code, head, body) = registry_get(
        &registry,
        &format!("/v2/default/app/manifests/{short}"),
        &[
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ],
    );
    assert_eq!(code, 200, "{head}\n{body}");
    let digest = header(&head, "Docker-Content-Digest").expect("a digest header");
    let message = terminated(&pod, "build")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        message, digest,
        "the termination message is the pushed digest"
    );
    assert!(digest.starts_with("sha256:"), "{digest}");
    // A pod of that image runs, with the file of the requested commit.
    k.ok(&[
        "run",
        "built",
        "--image",
        &destination,
        "--restart=Never",
        "--command",
        "--",
        "cat",
        "/hello.txt",
        "/greeting.txt",
    ]);
    let ran = wait_pod(&k, "built", Duration::from_secs(120), |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    let logs = k.ok(&["logs", "built"]);
    assert_eq!(
        ran["status"]["phase"], "Succeeded",
        "{logs}\n{}",
        ran["status"]
    );
    assert_eq!(logs, "hello from the first commit\nhi from a build arg\n");
    // A restarted sandbox still serves the ended build's logs, and does not run it again.
    let mut sb = sb;
    sb.restart();
    let k = sb.kubectl();
    assert_eq!(k.ok(&["logs", &name, "-c", "clone"]), clone_log);
    assert_eq!(k.ok(&["logs", &name, "-c", "build"]), build_log);
    let pod = k.json(&["get", "pod", &name, "-o", "json"]);
    assert_eq!(pod["status"]["phase"], "Succeeded", "{}", pod["status"]);
    k.ok(&["delete", "pod", &name]);
}

/// A Secret holding an Authorization header for `user:token`.
fn credentials_secret(k: &Kubectl, name: &str, user: &str, token: &str) {
    let header = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
    );
    k.ok(&[
        "create",
        "secret",
        "generic",
        name,
        &format!("--from-literal=authorization={header}"),
    ]);
}

#[test]
fn a_private_repository_is_cloned_with_its_token_which_shows_nowhere() {
    let (sb, registry, _images) = sandbox_with_registry();
    let k = sb.kubectl();
    let (token, wrong) = ("tok3n-of-the-right-kind", "wr0ng-t0ken-value");
    let git = GitServer::start(Some(("kip", token)));
    let repo = git.repo(
        "private",
        &[
            ("Dockerfile", &dockerfile("")),
            ("hello.txt", "private hello\n"),
        ],
    );
    let commit = repo.head();
    // Over HTTP too, the build fetches a commit behind the branch's head by its sha.
    repo.commit(&[("hello.txt", "newer\n")], "second");
    // Without credentials the server says 401 and asks for Basic authentication.
    let (code, head, _) = crate::common::raw_exchange(
        &format!("127.0.0.1:{}", git.http_port),
        "127.0.0.1",
        "GET",
        "/private.git/info/refs?service=git-upload-pack",
        None,
        b"",
    )
    .expect("ask the git server");
    assert_eq!(code, 401, "{head}");
    assert!(
        head.contains("WWW-Authenticate: Basic realm=\"git\""),
        "{head}"
    );
    credentials_secret(&k, "right-git-credentials", "kip", token);
    credentials_secret(&k, "wrong-git-credentials", "kip", wrong);
    let scope = format!("http://127.0.0.1:{}/", git.http_port);
    let build = |job: &str, secret: &str| Build {
        job: job.into(),
        url: git.http_url("private"),
        branch: "main".into(),
        commit: commit.clone(),
        destination: format!("{registry}/default/private:{}", &commit[..7]),
        credentials: Some((secret.into(), scope.clone())),
        build_args: Vec::new(),
    };
    k.ok_stdin(
        &["apply", "-f", "-"],
        &build("denied", "wrong-git-credentials").json(),
    );
    let job = wait_job(&k, "denied", BUILD_LIMIT);
    assert!(condition(&job, "Failed"), "{}", job["status"]);
    let pod = job_pod(&k, "denied");
    let name = name_of(&pod);
    assert_eq!(pod["status"]["phase"], "Failed", "{}", pod["status"]);
    let clone = terminated(&pod, "clone");
    assert_ne!(clone["exitCode"], 0, "{clone}");
    let message = clone["message"].as_str().unwrap_or("");
    assert!(
        message.contains("Authentication failed") || message.contains("could not read Username"),
        "the clone says authentication failed: {message}"
    );
    // The steps after a failed init container never ran.
    let fetch = &pod["status"]["initContainerStatuses"][1]["state"];
    assert!(
        fetch["terminated"].is_null() && fetch["running"].is_null(),
        "{fetch}"
    );
    let asked = git.requests();
    assert!(!asked.is_empty(), "git asked the server nothing");
    assert!(asked.iter().all(|r| r.status == 401), "{asked:?}");
    k.ok_stdin(
        &["apply", "-f", "-"],
        &build("allowed", "right-git-credentials").json(),
    );
    let job = wait_job(&k, "allowed", BUILD_LIMIT);
    let allowed = job_pod(&k, "allowed");
    assert!(
        condition(&job, "Complete"),
        "{}\n{}",
        job["status"],
        allowed["status"]
    );
    let asked = git.requests();
    assert!(
        asked
            .iter()
            .any(|r| r.status == 200 && r.authorization.is_some()),
        "{asked:?}"
    );
    // Neither token appears in any log, status or event.
    let encoded = |t: &str| base64::engine::general_purpose::STANDARD.encode(format!("kip:{t}"));
    let mut seen = String::new();
    for (pod, containers) in [
        (&name, &["clone"][..]),
        (
            &name_of(&allowed),
            &["clone", "fetch", "checkout", "build"][..],
        ),
    ] {
        for c in containers {
            seen.push_str(&k.ok(&["logs", pod, "-c", c]));
        }
    }
    seen.push_str(&k.ok(&["get", "pods", "-o", "json"]));
    seen.push_str(&k.ok(&["get", "jobs", "-o", "json"]));
    seen.push_str(&k.ok(&["get", "events", "-o", "json"]));
    for secret in [token, wrong, &encoded(token), &encoded(wrong)] {
        assert!(!seen.contains(secret), "{secret} shows: {seen}");
    }
}

#[test]
fn a_failing_dockerfile_fails_the_build_with_buildahs_error() {
    let (sb, registry, _images) = sandbox_with_registry();
    let k = sb.kubectl();
    let git = GitServer::start(None);
    let repo = git.repo(
        "broken",
        &[
            ("Dockerfile", &dockerfile("RUN false\n")),
            ("hello.txt", "x\n"),
        ],
    );
    let commit = repo.head();
    let build = Build {
        job: "broken".into(),
        url: git.git_url("broken"),
        branch: "main".into(),
        commit: commit.clone(),
        destination: format!("{registry}/default/broken:{}", &commit[..7]),
        credentials: None,
        build_args: Vec::new(),
    };
    k.ok_stdin(&["apply", "-f", "-"], &build.json());
    let job = wait_job(&k, "broken", BUILD_LIMIT);
    assert!(condition(&job, "Failed"), "{}", job["status"]);
    let pod = job_pod(&k, "broken");
    assert_eq!(pod["status"]["phase"], "Failed", "{}", pod["status"]);
    let state = terminated(&pod, "build");
    assert_eq!(state["reason"], "Error", "{state}");
    assert_ne!(state["exitCode"], 0, "{state}");
    let message = state["message"].as_str().unwrap_or("");
    assert!(message.contains("RUN false"), "buildah's error: {message}");
    assert!(message.len() <= 2048, "{}", message.len());
    let (code, _, _) = registry_get(&registry, "/v2/default/broken/tags/list", &[]);
    assert_eq!(code, 404, "nothing was pushed");
}

/// Processes whose command line holds `marker`.
fn processes(marker: &str) -> String {
    let out = std::process::Command::new("pgrep")
        .args(["-a", "-f", marker])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts the Job `job` building a Dockerfile with `RUN sleep SECONDS` and waits until buildah
/// runs that step; the pod's uid (buildah's arguments hold the pod's folder, named by it).
fn start_slow_build(sb: &RealSandbox, git: &GitServer, job: &str, seconds: u32) -> String {
    let step = format!("RUN sleep {seconds}");
    let k = sb.kubectl();
    let registry = registry(sb);
    let repo = git.repo(
        job,
        &[
            ("Dockerfile", &dockerfile(&format!("{step}\n"))),
            ("hello.txt", "x\n"),
        ],
    );
    let commit = repo.head();
    let build = Build {
        job: job.into(),
        url: git.git_url(job),
        branch: "main".into(),
        commit: commit.clone(),
        destination: format!("{registry}/default/{job}:{}", &commit[..7]),
        credentials: None,
        build_args: Vec::new(),
    };
    k.ok_stdin(&["apply", "-f", "-"], &build.json());
    let pod = job_pod(&k, job);
    let name = name_of(&pod);
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let deadline = Instant::now() + BUILD_LIMIT;
    loop {
        let log = k.run(&["logs", &name, "-c", "build"]);
        let said = String::from_utf8_lossy(&log.stdout).to_string();
        if said.contains(&step) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build never reached {step}: {said}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let running = processes(&uid);
    assert!(running.contains("buildah"), "buildah runs: {running}");
    // The step itself runs (in a container of buildah's, without the pod's folder in sight).
    let sleeping = format!("sleep {seconds}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes(&sleeping).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no `{sleeping}` process within 60 s of the step's start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    uid
}

#[test]
fn deleting_a_build_job_stops_the_build_at_once() {
    let (sb, _, _images) = sandbox_with_registry();
    let k = sb.kubectl();
    let git = GitServer::start(None);
    let uid = start_slow_build(&sb, &git, "slow", 61);
    let at = Instant::now();
    k.ok(&["delete", "job", "slow", "--wait=false"]);
    loop {
        let left = processes(&uid);
        let pods = k.json(&["get", "pods", "-l", "job-name=slow", "-o", "json"]);
        let gone = pods["items"].as_array().is_some_and(|p| p.is_empty());
        if left.is_empty() && gone {
            break;
        }
        assert!(
            at.elapsed() < Duration::from_secs(20),
            "after 20 s: processes {left:?}, pods {}",
            pods["items"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The step's own process too, which runs in a container of buildah's.
    let step = processes("sleep 61");
    assert!(step.is_empty(), "{step}");
}

#[test]
fn stopping_the_sandbox_stops_its_builds() {
    let (sb, _, _images) = sandbox_with_registry();
    let git = GitServer::start(None);
    let uid = start_slow_build(&sb, &git, "halted", 62);
    // As `kip sandbox down` does: SIGTERM, the sandbox stops its pods and exits.
    let at = Instant::now();
    drop(sb);
    loop {
        let left = format!("{}{}", processes(&uid), processes("sleep 62"));
        if left.is_empty() {
            break;
        }
        assert!(
            at.elapsed() < Duration::from_secs(25),
            "after the sandbox stopped, its build still runs: {left}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Applies a pod of stand-in containers and waits for it to end; the pod.
fn ended_pod(k: &Kubectl, pod: &Value) -> Value {
    k.ok_stdin(&["apply", "-f", "-"], &pod.to_string());
    let name = pod["metadata"]["name"].as_str().expect("name");
    wait_pod(k, name, Duration::from_secs(120), |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    })
}

#[test]
fn paths_outside_the_mounts_commands_and_foreign_destinations_are_refused() {
    let (sb, registry, _images) = sandbox_with_registry();
    let k = sb.kubectl();
    let mount = json!([{"name": "workspace", "mountPath": "/workspace"}]);
    let volumes = json!([{"name": "workspace", "emptyDir": {}}]);
    let git_pod = |name: &str, container: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [container], "volumes": volumes}})
    };
    // An absolute path under no mount.
    let pod = ended_pod(
        &k,
        &git_pod(
            "outside",
            json!({"name": "git", "image": GIT_IMAGE, "volumeMounts": mount,
                "args": ["clone", "--", "git://127.0.0.1:9/x.git", "/etc/kip-stolen"]}),
        ),
    );
    assert_eq!(pod["status"]["phase"], "Failed", "{}", pod["status"]);
    let state = terminated(&pod, "git");
    let message = state["message"].as_str().unwrap_or("");
    assert!(message.contains("/etc/kip-stolen"), "{state}");
    assert!(!std::path::Path::new("/etc/kip-stolen").exists());
    // A command other than git.
    let pod = ended_pod(
        &k,
        &git_pod(
            "shell",
            json!({"name": "git", "image": GIT_IMAGE, "volumeMounts": mount,
                "command": ["sh", "-c", "id"]}),
        ),
    );
    assert_eq!(pod["status"]["phase"], "Failed", "{}", pod["status"]);
    let message = terminated(&pod, "git")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains("runs only git"), "{message}");
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=shell",
    ]);
    assert!(events.contains("runs only git"), "{events}");
    // Configuration that would run a program on this machine.
    let pod = ended_pod(
        &k,
        &git_pod(
            "monitor",
            json!({"name": "git", "image": GIT_IMAGE, "volumeMounts": mount,
                "args": ["-c", "core.fsmonitor=touch /tmp/kip-fsmonitor-ran", "status"]}),
        ),
    );
    assert_eq!(pod["status"]["phase"], "Failed", "{}", pod["status"]);
    let message = terminated(&pod, "git")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains("core.fsmonitor refused"), "{message}");
    assert!(!std::path::Path::new("/tmp/kip-fsmonitor-ran").exists());
    // A path under the mount works: git runs there (and says it is no repository).
    let pod = ended_pod(
        &k,
        &git_pod(
            "inside",
            json!({"name": "git", "image": GIT_IMAGE, "volumeMounts": mount,
                "args": ["init", "-q", "/workspace/repo"], "workingDir": "/workspace"}),
        ),
    );
    assert_eq!(pod["status"]["phase"], "Succeeded", "{}", pod["status"]);
    // A destination outside the sandbox's registry.
    let pod = ended_pod(
        &k,
        &git_pod(
            "foreign",
            json!({"name": "build", "image": KANIKO_IMAGE, "volumeMounts": mount,
                "args": ["--context=dir:///workspace", "--destination=docker.io/someone/app:1"]}),
        ),
    );
    assert_eq!(pod["status"]["phase"], "Failed", "{}", pod["status"]);
    let message = terminated(&pod, "build")["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        message.contains(&format!(
            "the sandbox pushes only to its registry at {registry}"
        )),
        "{message}"
    );
    let log = k.ok(&["logs", "foreign"]);
    assert!(log.contains("docker.io/someone/app:1"), "{log}");
}

#[test]
fn an_init_containers_log_is_readable_in_a_podman_pod_too() {
    busybox_image();
    let sb = RealSandbox::start();
    let k = sb.kubectl();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "inits"},
        "spec": {"restartPolicy": "Never",
            "initContainers": [{"name": "prepare", "image": BUSYBOX,
                "command": ["sh", "-c", "echo prepared by the init container"]}],
            "containers": [{"name": "main", "image": BUSYBOX, "command": ["true"]}]}});
    let pod = ended_pod(&k, &pod);
    assert_eq!(pod["status"]["phase"], "Succeeded", "{}", pod["status"]);
    let log = k.ok(&["logs", "inits", "-c", "prepare"]);
    assert_eq!(log, "prepared by the init container\n");
    let said = k.fails(&["logs", "inits", "-c", "nosuch"]);
    assert!(
        said.contains("container nosuch is not valid for pod inits"),
        "{said}"
    );
}
