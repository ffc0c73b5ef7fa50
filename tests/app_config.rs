//! An app's configuration through the real binary against a sandbox, checked with kubectl:
//! variables (`app env`), secrets (`app secret`), links (`app link`) and autoscaling
//! (`app autoscale`). Each refusal leaves the app as it was.

use std::io::Write;

use serde_json::Value;

use crate::common::{ServedSandbox, secret_value, stderr as err, stdout as out};

fn get(sb: &ServedSandbox, what: &str, name: &str) -> Value {
    sb.kubectl().json(&["get", what, name])
}

fn deploy(sb: &ServedSandbox, name: &str, port: &str) {
    sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        name,
        "--image",
        "nginx:1.27",
        "--port",
        port,
        "--env",
        "LOG_LEVEL=info",
    ]);
}

/// The stamp `kip app restart` and `--restart` put on the pod template (`()` before any).
fn restart_stamp(sb: &ServedSandbox, app: &str) -> Value {
    get(sb, "deployment", app)["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .clone()
}

#[test]
fn env_set_saves_variables_and_restarts_only_when_asked() {
    let sb = ServedSandbox::start();
    deploy(&sb, "api", "3000");
    let template_before = get(&sb, "deployment", "api")["spec"]["template"].clone();

    std::fs::write(
        sb.kip_home().join("prod.env"),
        "# shared settings\nexport API_URL=https://api.example.com\nGREETING='hello world'\nLOG_LEVEL=warn\n",
    )
    .unwrap();
    let said = sb.kip_ok(&[
        "app",
        "env",
        "set",
        "api",
        "LOG_LEVEL=debug",
        "--from-file",
        "prod.env",
    ]);
    assert!(said.contains("✔ Set"), "{said}");
    assert!(
        said.contains("keep their old values until a restart"),
        "{said}"
    );
    let data = &get(&sb, "configmap", "api-env")["data"];
    assert_eq!(
        data["LOG_LEVEL"], "debug",
        "the command line wins over the file"
    );
    assert_eq!(data["API_URL"], "https://api.example.com");
    assert_eq!(data["GREETING"], "hello world");
    // Saved on the App, the source of truth, and nothing restarted.
    let app = get(&sb, "apps.kipper.run", "api");
    let names: Vec<&str> = app["spec"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["LOG_LEVEL", "API_URL", "GREETING"]);
    assert_eq!(
        get(&sb, "deployment", "api")["spec"]["template"],
        template_before,
        "without --restart the pods are left alone"
    );

    let listed = sb.kip_ok(&["app", "env", "list", "api"]);
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["GREETING", "hello", "world", "env"]),
        "{listed}"
    );
    let json: Value =
        serde_json::from_str(&out(&sb.kip(&["app", "env", "list", "api", "-o", "json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);

    let again = sb.kip_ok(&["app", "env", "set", "api", "GREETING=hello world"]);
    assert!(again.contains("nothing changed"), "{again}");

    sb.kip_ok(&["app", "env", "set", "api", "FEATURE=on", "--restart"]);
    assert!(
        restart_stamp(&sb, "api").is_string(),
        "--restart stamps the pod template"
    );

    // Removing asks first; without a terminal or --yes nothing is removed.
    let no = sb.kip_refused(&["app", "env", "delete", "api", "FEATURE"]);
    assert!(no.contains("--yes"), "{no}");
    assert_eq!(get(&sb, "configmap", "api-env")["data"]["FEATURE"], "on");
    sb.kip_ok(&[
        "app", "env", "delete", "api", "FEATURE", "GREETING", "--yes",
    ]);
    let data = &get(&sb, "configmap", "api-env")["data"];
    assert!(
        data.get("FEATURE").is_none() && data.get("GREETING").is_none(),
        "{data}"
    );
    assert_eq!(data["API_URL"], "https://api.example.com");
}

#[test]
fn bad_variables_are_refused_and_change_nothing() {
    let sb = ServedSandbox::start();
    deploy(&sb, "api", "3000");
    let before = get(&sb, "apps.kipper.run", "api")["spec"].clone();
    let cases: &[(&[&str], &str)] = &[
        (&["app", "env", "set", "api"], "nothing to set"),
        (
            &["app", "env", "set", "api", "NOVALUE"],
            "expected KEY=VALUE",
        ),
        (
            &["app", "env", "set", "api", "1BAD=x"],
            "not starting with a digit",
        ),
        (
            &["app", "env", "set", "api", "A B=x"],
            "a variable name has letters",
        ),
        (&["app", "env", "set", "api", "A=1", "A=2"], "given twice"),
        (
            &["app", "env", "set", "api", "A=1", "B=2", "=3"],
            "expected KEY=VALUE",
        ),
        (&["app", "env", "set", "nope", "A=1"], "no app `nope`"),
        (
            &["app", "env", "set", "api", "--from-file", "missing.env"],
            "missing.env",
        ),
        (
            &["app", "env", "delete", "api", "NOT_THERE", "--yes"],
            "has no variable NOT_THERE (it has: LOG_LEVEL)",
        ),
        (&["app", "env", "set", "../x", "A=1"], "../x"),
    ];
    for (args, says) in cases {
        let e = sb.kip_refused(args);
        assert!(e.contains(says), "kip {args:?}: expected `{says}` in: {e}");
    }
    std::fs::write(
        sb.kip_home().join("bad.env"),
        "GOOD=1\nthis line is not a variable\n",
    )
    .unwrap();
    let e = sb.kip_refused(&["app", "env", "set", "api", "--from-file", "bad.env"]);
    assert!(
        e.contains("bad.env") && e.contains("this line is not a variable"),
        "{e}"
    );
    assert_eq!(get(&sb, "apps.kipper.run", "api")["spec"], before);
    assert_eq!(
        get(&sb, "configmap", "api-env")["data"],
        serde_json::json!({"LOG_LEVEL": "info"})
    );
}

#[test]
fn secret_values_live_only_in_the_secret() {
    let sb = ServedSandbox::start();
    deploy(&sb, "api", "3000");
    let value = "s3cr3t-Value-7f";
    // A value piped in (no terminal), one on the command line, and one from a file.
    std::fs::write(
        sb.kip_home().join("secrets.env"),
        "STRIPE_KEY=sk_test_from_file\n",
    )
    .unwrap();
    let mut set = sb.kip_command(&[
        "app",
        "secret",
        "set",
        "api",
        "TOKEN",
        "DB_PASSWORD=pw-on-the-line",
        "--from-file",
        "secrets.env",
    ]);
    set.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = set.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let said = out(&o) + err(&o).as_str();
    assert!(said.contains("✔ Set secret"), "{said}");

    let secret = get(&sb, "secret", "api-secrets");
    assert_eq!(
        secret_value(&secret, "TOKEN"),
        value,
        "the trailing newline is not part of it"
    );
    assert_eq!(secret_value(&secret, "DB_PASSWORD"), "pw-on-the-line");
    assert_eq!(secret_value(&secret, "STRIPE_KEY"), "sk_test_from_file");
    let app = get(&sb, "apps.kipper.run", "api");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        app["metadata"]["uid"]
    );
    // Nowhere else: not the App, not the variables, not what kip prints.
    let listed = sb.kip_ok(&["app", "secret", "list", "api"]);
    let json = sb.kip_ok(&["app", "secret", "list", "api", "-o", "json"]);
    let env = sb.kip_ok(&["app", "env", "list", "api", "-o", "json"]);
    for place in [
        app.to_string(),
        get(&sb, "configmap", "api-env").to_string(),
        get(&sb, "deployment", "api").to_string(),
        listed.clone(),
        json,
        env,
        said,
    ] {
        for v in [value, "pw-on-the-line", "sk_test_from_file"] {
            assert!(!place.contains(v), "{v} leaked into: {place}");
        }
    }
    assert!(
        listed.contains("TOKEN") && listed.contains("********"),
        "{listed}"
    );
    let container = &get(&sb, "deployment", "api")["spec"]["template"]["spec"]["containers"][0];
    let last = container["envFrom"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["secretRef"]["name"], "api-secrets",
        "the app's secrets win"
    );

    assert_eq!(
        sb.kip_ok(&["app", "secret", "reveal", "api", "TOKEN"]),
        format!("{value}\n")
    );
    let e = sb.kip_refused(&["app", "secret", "reveal", "api", "NOPE"]);
    assert!(
        e.contains("has no secret NOPE") && e.contains("TOKEN"),
        "{e}"
    );

    // A name is a variable or a secret, never both.
    let e = sb.kip_refused(&["app", "env", "set", "api", "TOKEN=plain"]);
    assert!(e.contains("TOKEN is a secret of api"), "{e}");
    let e = sb.kip_refused(&["app", "secret", "set", "api", "LOG_LEVEL=x"]);
    assert!(e.contains("LOG_LEVEL is a variable of api"), "{e}");
    // No value and nothing piped in: refused, nothing written.
    let e = sb.kip_refused(&["app", "secret", "set", "api", "EMPTY"]);
    assert!(e.contains("no value given"), "{e}");
    assert!(
        get(&sb, "secret", "api-secrets")["data"]
            .get("EMPTY")
            .is_none()
    );

    sb.kip_ok(&["app", "secret", "delete", "api", "TOKEN", "--yes"]);
    let data = &get(&sb, "secret", "api-secrets")["data"];
    assert!(
        data.get("TOKEN").is_none() && data.get("DB_PASSWORD").is_some(),
        "{data}"
    );
    // Deleting the app takes its secrets with it.
    sb.kip_ok(&["app", "delete", "api", "--yes"]);
    sb.kubectl().ok(&[
        "wait",
        "--for=delete",
        "secret/api-secrets",
        "--timeout=30s",
    ]);
}

#[test]
fn a_secret_asked_on_a_terminal_is_not_echoed() {
    let sb = ServedSandbox::start();
    deploy(&sb, "api", "3000");
    let mut child = sb
        .kip_on_terminal("app secret set api API_KEY")
        .spawn()
        .expect("run script");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    // Type only once the prompt is drawn: the terminal echoes whatever arrives before kip
    // turns echo off, as it would for a user who typed ahead.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        let mut told = false;
        loop {
            match std::io::Read::read(&mut stdout, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if !told && String::from_utf8_lossy(&seen).contains("Value of API_KEY: ") {
                told = true;
                let _ = tx.send(());
            }
        }
        String::from_utf8_lossy(&seen).to_string()
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("kip asks for the value");
    wait_for_echo_off(child.id());
    stdin.write_all(b"typed-secret-42\n").expect("answer");
    let status = child.wait().expect("script ran");
    drop(stdin);
    let drawn = reader.join().unwrap();
    assert!(status.success(), "{drawn}");
    assert!(!drawn.contains("typed-secret-42"), "echoed: {drawn}");
    assert!(drawn.contains("✔ Set secret API_KEY on api"), "{drawn}");
    assert_eq!(
        sb.kip_ok(&["app", "secret", "reveal", "api", "API_KEY"]),
        "typed-secret-42\n"
    );
}

#[test]
fn links_give_the_target_url_and_follow_the_target() {
    let sb = ServedSandbox::start();
    deploy(&sb, "domain-service", "8081");
    deploy(&sb, "api-gateway", "3000");
    deploy(&sb, "webapp", "80");

    let said = sb.kip_ok(&["app", "link", "domain-service", "api-gateway"]);
    assert!(
        said.contains("✔ Linked domain-service → api-gateway"),
        "{said}"
    );
    let url = "http://domain-service.default.svc.cluster.local:8081";
    assert!(
        said.contains(&format!("DOMAIN_SERVICE_URL={url}")),
        "{said}"
    );
    assert_eq!(
        get(&sb, "configmap", "api-gateway-env")["data"]["DOMAIN_SERVICE_URL"],
        url
    );
    assert!(
        restart_stamp(&sb, "api-gateway").is_string(),
        "linking restarts the app"
    );

    let said = sb.kip_ok(&["app", "link", "domain-service", "webapp", "--public"]);
    let public = "https://domain-service-sandbox.localhost";
    assert!(
        said.contains(&format!("DOMAIN_SERVICE_URL={public}")),
        "{said}"
    );
    assert_eq!(
        get(&sb, "configmap", "webapp-env")["data"]["DOMAIN_SERVICE_URL"],
        public
    );
    let app = get(&sb, "apps.kipper.run", "webapp");
    assert_eq!(
        app["spec"]["links"],
        serde_json::json!([{"app": "domain-service", "public": true}])
    );

    let listed = sb.kip_ok(&["app", "links", "domain-service"]);
    assert!(
        listed.contains("api-gateway") && listed.contains("webapp"),
        "{listed}"
    );

    // Refusals name the fix and change nothing.
    let cases: &[(&[&str], &str)] = &[
        (
            &["app", "link", "webapp", "webapp"],
            "cannot link to itself",
        ),
        (&["app", "link", "nope", "webapp"], "no app `nope`"),
        (&["app", "link", "webapp", "nope"], "no app `nope`"),
        (
            &["app", "unlink", "webapp", "api-gateway"],
            "has no link to webapp",
        ),
        (&["app", "link", "Bad_Name", "webapp"], "Bad_Name"),
    ];
    for (args, says) in cases {
        let e = sb.kip_refused(args);
        assert!(e.contains(says), "kip {args:?}: expected `{says}` in: {e}");
    }
    sb.kip_ok(&[
        "app",
        "env",
        "set",
        "webapp",
        "API_GATEWAY_URL=http://elsewhere",
    ]);
    let e = sb.kip_refused(&["app", "link", "api-gateway", "webapp"]);
    assert!(e.contains("already has a variable API_GATEWAY_URL"), "{e}");
    let e = sb.kip_refused(&["app", "env", "set", "webapp", "DOMAIN_SERVICE_URL=x"]);
    assert!(e.contains("comes from the link to domain-service"), "{e}");

    sb.kip_ok(&["app", "unlink", "domain-service", "api-gateway"]);
    assert!(
        get(&sb, "configmap", "api-gateway-env")["data"]
            .get("DOMAIN_SERVICE_URL")
            .is_none()
    );

    // Deleting the target removes its URL from every app that linked it.
    let stamp = restart_stamp(&sb, "webapp");
    let said = sb.kip_ok(&["app", "delete", "domain-service", "--yes"]);
    assert!(
        said.contains("DOMAIN_SERVICE_URL removed from webapp"),
        "{said}"
    );
    assert!(
        get(&sb, "configmap", "webapp-env")["data"]
            .get("DOMAIN_SERVICE_URL")
            .is_none()
    );
    assert_eq!(
        get(&sb, "apps.kipper.run", "webapp")["spec"]["links"],
        serde_json::json!([])
    );
    assert_ne!(
        restart_stamp(&sb, "webapp"),
        stamp,
        "webapp restarted without the URL"
    );
}

#[test]
fn autoscale_owns_the_replicas_until_turned_off() {
    let sb = ServedSandbox::start();
    deploy(&sb, "api", "3000");
    let before = get(&sb, "apps.kipper.run", "api")["spec"].clone();
    let cases: &[(&[&str], &str)] = &[
        (&["app", "autoscale", "api"], "--max N"),
        (
            &["app", "autoscale", "api", "--min", "3", "--max", "2"],
            "more than --max 2",
        ),
        (
            &["app", "autoscale", "api", "--min", "0", "--max", "2"],
            "at least 1",
        ),
        (&["app", "autoscale", "api", "--max", "-1"], "at least 1"),
        (
            &["app", "autoscale", "api", "--max", "5", "--cpu", "0"],
            "from 1 to 100",
        ),
        (
            &["app", "autoscale", "api", "--max", "5", "--cpu", "101"],
            "from 1 to 100",
        ),
        (
            &["app", "autoscale", "api", "--max", "5", "--memory", "150"],
            "from 1 to 100",
        ),
        (
            &["app", "autoscale", "api", "--max", "500"],
            "--allow-many-replicas",
        ),
        (
            &["app", "autoscale", "api", "--status", "--off"],
            "pass one",
        ),
        (
            &["app", "autoscale", "api", "--off", "--max", "3"],
            "leave it out",
        ),
        (&["app", "autoscale", "nope", "--max", "3"], "no app `nope`"),
    ];
    for (args, says) in cases {
        let e = sb.kip_refused(args);
        assert!(e.contains(says), "kip {args:?}: expected `{says}` in: {e}");
    }
    assert_eq!(get(&sb, "apps.kipper.run", "api")["spec"], before);
    sb.kubectl().fails(&["get", "hpa", "api"]);

    let said = sb.kip_ok(&[
        "app",
        "autoscale",
        "api",
        "--min",
        "2",
        "--max",
        "5",
        "--cpu",
        "70",
        "--memory",
        "80",
    ]);
    assert!(
        said.contains("api autoscales 2–5 replicas at 70% CPU, 80% memory"),
        "{said}"
    );
    let hpa = get(&sb, "hpa", "api");
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    assert_eq!(hpa["spec"]["maxReplicas"], 5);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "api");
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
    assert_eq!(hpa["spec"]["metrics"][1]["resource"]["name"], "memory");
    let app = get(&sb, "apps.kipper.run", "api");
    assert_eq!(
        hpa["metadata"]["ownerReferences"][0]["uid"],
        app["metadata"]["uid"]
    );
    // The autoscaler raised the Deployment to its minimum; CPU requests are set for it.
    let d = get(&sb, "deployment", "api");
    assert_eq!(d["spec"]["replicas"], 2);
    let requests = &d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"];
    assert!(requests["cpu"].is_string(), "{requests}");

    let status = sb.kip_ok(&["app", "autoscale", "api", "--status"]);
    assert!(status.contains("api autoscales 2–5"), "{status}");
    assert!(status.contains("cpu") && status.contains("70%"), "{status}");
    assert!(
        status.contains("Not scaling now"),
        "the sandbox has no metrics: {status}"
    );

    // A redeploy keeps the autoscaler, and the two never fight over the replica count.
    deploy(&sb, "api", "3000");
    sb.kubectl().ok(&["get", "hpa", "api"]);
    let e = sb.kip_refused(&["app", "scale", "api", "--replicas", "3"]);
    assert!(e.contains("is autoscaled") && e.contains("--off"), "{e}");

    let said = sb.kip_ok(&["app", "autoscale", "api", "--off"]);
    assert!(
        said.contains("Autoscaling off: api runs 1 replica"),
        "{said}"
    );
    sb.kubectl()
        .ok(&["wait", "--for=delete", "hpa/api", "--timeout=30s"]);
    assert_eq!(get(&sb, "deployment", "api")["spec"]["replicas"], 1);
    assert!(
        get(&sb, "apps.kipper.run", "api")["spec"]
            .get("autoscale")
            .is_none()
    );
    sb.kip_ok(&["app", "scale", "api", "--replicas", "2"]);
}

/// Waits until the terminal of `script`'s child (kip) stops echoing: the prompt is drawn a
/// moment before echo goes off, and typing in that moment would show, test or user.
fn wait_for_echo_off(script_pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let kip = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .find_map(|entry| {
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                // pid (comm) state ppid …: the fields after the last ')'.
                let ppid: u32 = stat
                    .rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                (ppid == script_pid).then(|| entry.path())
            });
        let echo_off = kip
            .and_then(|proc| std::fs::read_link(proc.join("fd/0")).ok())
            .and_then(|tty| {
                let o = std::process::Command::new("stty")
                    .arg("-a")
                    .arg("-F")
                    .arg(&tty)
                    .output()
                    .ok()?;
                Some(
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .any(|f| f == "-echo"),
                )
            })
            .unwrap_or(false);
        if echo_off {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kip never turned echo off"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `--dry-run` prints what each verb would create, change or delete, as the API server's dry
/// run says, hides secret values, and leaves every object as it was (resourceVersions equal).
#[test]
fn dry_runs_show_the_plan_and_change_nothing() {
    let sb = ServedSandbox::start();
    let new = sb.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "api",
        "--image",
        "nginx:1.27",
        "--port",
        "80",
        "--dry-run",
    ]);
    for line in [
        "+ create App api",
        "+ create ConfigMap api-env",
        "+ create Deployment api",
        "+ create Ingress api",
    ] {
        assert!(new.contains(line), "{line}: {new}");
    }
    sb.kubectl().fails(&["get", "apps.kipper.run", "api"]);
    deploy(&sb, "api", "80");
    deploy(&sb, "web", "3000");
    let versions = || {
        let listed = sb.kubectl().json(&[
            "get",
            "apps.kipper.run,configmap,deployment,service,ingress,secret,hpa",
            "-o",
            "json",
        ]);
        let mut all: Vec<String> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{} {} {}",
                    o["kind"], o["metadata"]["name"], o["metadata"]["resourceVersion"]
                )
            })
            .collect();
        all.sort();
        all
    };
    let before = versions();
    let plans: &[(&[&str], &[&str])] = &[
        (
            &[
                "app",
                "deploy",
                "--name",
                "api",
                "--image",
                "nginx:1.28",
                "--port",
                "80",
                "--env",
                "LOG_LEVEL=debug",
                "--dry-run",
            ],
            &[
                "~ change App api:",
                "spec.image: nginx:1.27 → nginx:1.28",
                "data.LOG_LEVEL: info → debug",
                "~ restart the pods of Deployment api",
            ],
        ),
        (
            &["app", "update", "api", "--image", "nginx:1.29", "--dry-run"],
            &["spec.template.spec.containers.0.image: nginx:1.27 → nginx:1.29"],
        ),
        (
            &["app", "update", "api", "--route", "shop/api", "--dry-run"],
            &[
                "+ create Middleware api-strip",
                "+ create Certificate route-shop",
                "spec.rules.0.host: api-sandbox.localhost → shop-sandbox.localhost",
            ],
        ),
        (
            &["app", "scale", "api", "--replicas", "3", "--dry-run"],
            &["spec.replicas: 1 → 3"],
        ),
        (
            &[
                "app",
                "env",
                "set",
                "api",
                "NEW=1",
                "--restart",
                "--dry-run",
            ],
            &[
                "data.NEW: (none) → 1",
                "~ restart the pods of Deployment api",
            ],
        ),
        (
            &["app", "env", "delete", "api", "LOG_LEVEL", "--dry-run"],
            &["data.LOG_LEVEL: info → (none)"],
        ),
        (
            &[
                "app",
                "secret",
                "set",
                "api",
                "TOKEN=very-secret-value",
                "--dry-run",
            ],
            &["+ create Secret api-secrets"],
        ),
        (
            &["app", "link", "api", "web", "--dry-run"],
            &[
                "data.API_URL: (none) → http://api.default.svc.cluster.local:80",
                "~ restart the pods of Deployment web",
            ],
        ),
        (
            &["app", "autoscale", "api", "--max", "4", "--dry-run"],
            &["+ create HorizontalPodAutoscaler api"],
        ),
    ];
    for (args, says) in plans {
        let plan = sb.kip_ok(args);
        assert!(
            plan.starts_with("Dry run: nothing was changed. Would:"),
            "{args:?}: {plan}"
        );
        for line in *says {
            assert!(
                plan.contains(line),
                "kip {args:?}: expected `{line}` in:\n{plan}"
            );
        }
        assert!(!plan.contains("very-secret-value"), "{plan}");
    }
    assert_eq!(versions(), before, "a dry run wrote something");

    // With a Secret in place, a change shows which key, never the value.
    sb.kip_ok(&["app", "secret", "set", "api", "TOKEN=first-value"]);
    let plan = sb.kip_ok(&[
        "app",
        "secret",
        "set",
        "api",
        "TOKEN=second-value",
        "--dry-run",
    ]);
    assert!(plan.contains("data.TOKEN: (hidden) → (hidden)"), "{plan}");
    assert!(
        !plan.contains("first-value") && !plan.contains("second-value"),
        "{plan}"
    );
    let plan = sb.kip_ok(&["app", "secret", "delete", "api", "TOKEN", "--dry-run"]);
    assert!(plan.contains("data.TOKEN: (hidden) → (none)"), "{plan}");
    sb.kip_ok(&["app", "autoscale", "api", "--max", "3"]);
    let plan = sb.kip_ok(&["app", "autoscale", "api", "--off", "--dry-run"]);
    assert!(
        plan.contains("- delete HorizontalPodAutoscaler api"),
        "{plan}"
    );
    sb.kubectl().ok(&["get", "hpa", "api"]);
}

/// A cluster whose App CRD an older kip applied (without a field this kip writes) is brought up
/// to date before the first write, so the field is not pruned away.
#[test]
fn an_older_app_crd_is_brought_up_to_date_before_a_write() {
    let sb = ServedSandbox::start();
    deploy(&sb, "api", "3000");
    let k = sb.kubectl();
    let current = k.json(&["get", "crd", "apps.kipper.run"])["metadata"]["annotations"]["kipper.run/revision"].clone();
    assert!(current.is_string(), "the CRD carries its revision");
    k.ok(&[
        "patch", "crd", "apps.kipper.run", "--type", "json", "-p",
        r#"[{"op":"remove","path":"/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/autoscale"},
            {"op":"replace","path":"/metadata/annotations/kipper.run~1revision","value":"older"}]"#,
    ]);
    sb.kip_ok(&["app", "autoscale", "api", "--max", "3"]);
    let crd = k.json(&["get", "crd", "apps.kipper.run"]);
    assert_eq!(
        crd["metadata"]["annotations"]["kipper.run/revision"],
        current
    );
    assert_eq!(
        get(&sb, "apps.kipper.run", "api")["spec"]["autoscale"]["max"],
        3,
        "not pruned"
    );
}
