//! The web console (`kip console`) in a real headless browser against the sandbox, each step
//! checked with kubectl; and its defences (sessions, CSRF, typed confirmations, what a form may
//! pass) over raw HTTP, as an attacker would send it.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::browser::{self, Browser};
use crate::common::{ServedSandbox, free_port, nginx_deploy, raw_exchange_with};

const TOKEN: &str = "console-test-token-0123456789";

/// `kip console` on a port of its own, against `sandbox`.
struct Console {
    child: Child,
    address: String,
}

impl Console {
    fn start(sandbox: &ServedSandbox, extra: &[&str]) -> Console {
        let address = format!("127.0.0.1:{}", free_port());
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["console", "--listen", &address]);
        let child = sandbox
            .kip_command(&args)
            .env("KIP_CONSOLE_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kip console");
        let deadline = Instant::now() + Duration::from_secs(30);
        while crate::common::raw_request(&address, "GET", "/healthz", None, b"").is_err() {
            assert!(
                Instant::now() < deadline,
                "kip console never answered on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Console { child, address }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// One request with `headers`: status, head, body.
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        raw_exchange_with(
            &self.address,
            &self.address,
            method,
            path,
            headers,
            body.as_bytes(),
        )
        .expect("the console answers")
    }

    /// Signs in with `token` over HTTP; the session cookie (`kip_console=…`).
    fn sign_in(&self) -> String {
        let (code, head, _) = self.send("GET", &format!("/login?token={TOKEN}"), &[], "");
        assert_eq!(code, 303, "{head}");
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .expect("a session cookie");
        cookie.split(';').next().unwrap().to_string()
    }

    /// The CSRF token the pages of `cookie`'s session carry.
    fn csrf(&self, cookie: &str) -> String {
        let (code, _, body) = self.send("GET", "/projects", &[("Cookie", cookie)], "");
        assert_eq!(code, 200, "{body}");
        let at = body.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
        body[at..at + 64].to_string()
    }

    /// POSTs a form to `path` as the console's own page would.
    fn post(&self, cookie: &str, path: &str, form: &str) -> (u16, String, String) {
        let origin = format!("http://{}", self.address);
        self.send(
            "POST",
            path,
            &[
                ("Cookie", cookie),
                ("Origin", &origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form,
        )
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn location(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or("")
        .to_string()
}

/// Signs `browser` in through the login form, as a person would.
fn sign_in(browser: &Browser, console: &Console, path: &str) {
    browser.goto(&console.url(path));
    browser.fill("#token", TOKEN);
    browser.click_on("form button[type=submit]");
    browser.wait_for("the page after signing in", || {
        (!browser.url().contains("/login")).then_some(())
    });
}

#[test]
fn a_project_goes_through_its_life_in_the_browser() {
    if !browser::available() {
        panic!("chromium and chromedriver are missing: run tests/provision.sh");
    }
    let sandbox = ServedSandbox::start();
    let kubectl = sandbox.kubectl();
    let console = Console::start(&sandbox, &[]);
    let browser = Browser::start(1280, 900);

    // Every page asks who you are first, and comes back to where you were going.
    browser.goto(&console.url("/projects"));
    assert!(
        browser.url().contains("/login?next=%2Fprojects"),
        "{}",
        browser.url()
    );
    browser.docs_shot("login");
    browser.fill("#token", "not-the-token");
    browser.click_on("form button[type=submit]");
    browser.wait_text(
        "[role=alert]",
        "Neither the console nor the cluster accepts that token",
    );
    sign_in(&browser, &console, "/projects");
    assert!(browser.url().ends_with("/projects"), "{}", browser.url());
    let cookies = browser.cookies();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "kip_console")
        .expect("the session cookie");
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["secure"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");

    // New project with three environments.
    browser.fill("#new-name", "shop");
    browser.fill("#new-display", "Shop & Co");
    browser.fill("#new-envs", "test,acc,prod");
    browser.click_on("#new-project button[type=submit]");
    browser.wait_text("#flash", "kip project create");
    let project = kubectl.json(&["get", "projects.kipper.run", "shop", "-o", "json"]);
    assert_eq!(
        project["spec"]["environments"],
        serde_json::json!(["test", "acc", "prod"])
    );
    assert_eq!(project["spec"]["displayName"], "Shop & Co");
    for env in ["test", "acc", "prod"] {
        kubectl.ok(&["get", "namespace", &format!("shop-{env}")]);
    }
    browser.wait_text("main", "Shop & Co");
    browser.docs_shot("projects");
    // The switcher in the navigation opens any project's environment.
    browser.click_on("#switch-to");
    browser.click_on("#switch-to option[value='shop/acc']");
    browser.wait_for("the switcher to open shop/acc", || {
        browser.url().ends_with("/projects/shop/acc").then_some(())
    });
    browser.wait_text("main", "environment acc");
    browser.goto(&console.url("/projects"));

    // Deploy an app into test; the list shows it ready.
    browser.click_on("a[href='/projects/shop']");
    browser.wait_text("h1", "Shop & Co");
    assert!(
        browser.url().ends_with("/projects/shop/test"),
        "{}",
        browser.url()
    );
    browser.fill("#deploy-name", "web");
    browser.fill("#deploy-image", "nginx:1.27");
    browser.fill("#deploy-port", "80");
    browser.click_on("#deploy button[type=submit]");
    browser.wait_text("#flash", "kip app deploy");
    browser.wait_text("#apps", "1/1");
    let deployment = kubectl.json(&["get", "deployment", "web", "-n", "shop-test", "-o", "json"]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    browser.docs_shot("environment");

    // Scale it to 3: kubectl sees 3 replicas, and the page says 3/3 once they are ready.
    browser.click_on("#apps a[href$='/apps/web']");
    browser.wait_text("h1", "web");
    browser.fill("#replicas", "3");
    browser.click_on("form[action='/actions/app-scale'] button[type=submit]");
    browser.wait_text("#flash", "kip app scale --replicas=3");
    let replicas = kubectl.jsonpath("deployment", "web", "shop-test", "{.spec.replicas}");
    assert_eq!(replicas.trim(), "3");
    browser.wait_for("3/3 ready", || {
        browser.goto(&browser.url());
        browser.text_of("#app-ready").contains("3/3").then_some(())
    });
    browser.docs_shot("app-scale");

    // Autoscale between 2 and 4: kubectl sees the HorizontalPodAutoscaler; a fixed scale is
    // refused while it is on (the verb's words on the page); off again, it is gone.
    browser.fill("#as-min", "2");
    browser.fill("#as-max", "4");
    browser.click_on("form[action='/actions/app-autoscale'] button[type=submit]");
    browser.wait_text("#flash", "kip app autoscale --min=2 --max=4 --cpu=70");
    let hpa = kubectl.json(&["get", "hpa", "web", "-n", "shop-test", "-o", "json"]);
    assert_eq!(hpa["spec"]["minReplicas"], 2, "{hpa}");
    assert_eq!(hpa["spec"]["maxReplicas"], 4, "{hpa}");
    browser.wait_text("#autoscale-now", "between 2 and 4");
    browser.fill("#replicas", "1");
    browser.click_on("form[action='/actions/app-scale'] button[type=submit]");
    browser.wait_text("#flash", "is autoscaled");
    kubectl.ok(&["get", "hpa", "web", "-n", "shop-test"]);
    browser.click_on("#autoscale-off");
    browser.wait_text("#flash", "kip app autoscale --off");
    browser.wait_text("#autoscale-now", "Not autoscaled");
    kubectl.ok(&[
        "wait",
        "--for=delete",
        "hpa/web",
        "-n",
        "shop-test",
        "--timeout=30s",
    ]);

    // An environment variable, set in the Env tab.
    browser.click_on("nav.tabs a[href$='tab=env']");
    browser.fill("#env-vars", "GREETING=hello console");
    browser.click_on("form[action='/actions/app-env-set'] button[type=submit]");
    browser.wait_text("#flash", "kip app env set");
    browser.wait_text("main table", "GREETING");
    // The app's variables are in its ConfigMap, which its pods take as environment.
    let config = kubectl.json(&[
        "get",
        "configmap",
        "web-env",
        "-n",
        "shop-test",
        "-o",
        "json",
    ]);
    assert_eq!(config["data"]["GREETING"], "hello console", "{config}");
    browser.docs_shot("app-env");

    // Copy test into the empty prod with the wizard, changing one variable on the way.
    browser.goto(&console.url("/projects/shop/prod"));
    browser.click_on("#copy-into-from-test");
    browser.wait_text("#wizard", "What the copy creates in prod");
    browser.wait_text("#wizard table", "nginx:1.27");
    browser.docs_shot("copy-1-source");
    browser.click_on("#wizard-next");
    browser.wait_text("#wizard h2", "2. Routes");
    let host = browser.find("#route-web");
    assert_eq!(
        browser.property(&host, "value"),
        "web-prod-sandbox.localhost"
    );
    browser.click_on("#wizard-next");
    browser.wait_text("#wizard h2", "3. Env vars");
    browser.fill("#env-web-GREETING", "hello prod");
    browser.docs_shot("copy-3-env");
    browser.click_on("#wizard-next");
    browser.wait_text("#wizard h2", "4. Resources");
    browser.click_on("#wizard-next");
    browser.wait_text("#wizard h2", "5. Review");
    browser.wait_text("#review-summary", "1 app (1 with overrides)");
    browser.wait_text("#review-overrides", "web.env.GREETING=hello prod");
    browser.docs_shot("copy-5-review");
    browser.click_on("#wizard-create button[type=submit]");
    browser.wait_text("#flash", "kip project copy-env");
    assert!(
        browser.url().ends_with("/projects/shop/prod"),
        "{}",
        browser.url()
    );
    let config = kubectl.json(&[
        "get",
        "configmap",
        "web-env",
        "-n",
        "shop-prod",
        "-o",
        "json",
    ]);
    assert_eq!(config["data"]["GREETING"], "hello prod", "{config}");
    let config = kubectl.json(&[
        "get",
        "configmap",
        "web-env",
        "-n",
        "shop-test",
        "-o",
        "json",
    ]);
    assert_eq!(config["data"]["GREETING"], "hello console", "{config}");
    let app = kubectl.json(&[
        "get",
        "apps.kipper.run",
        "web",
        "-n",
        "shop-prod",
        "-o",
        "json",
    ]);
    assert_eq!(app["spec"]["image"], "nginx:1.27");
    assert_eq!(app["spec"]["environment"], "prod");

    // A new image in test, promoted to prod from the app's Promote tab.
    sandbox.kip_ok(&[
        "app",
        "update",
        "web",
        "--image",
        "nginx:1.28",
        "--project",
        "shop",
        "--environment",
        "test",
    ]);
    browser.goto(&console.url("/projects/shop/test/apps/web?tab=promote"));
    browser.wait_text("#app-summary", "nginx:1.28");
    let target = browser.find("#promote-to");
    browser.click(&target);
    browser.click_on("#promote-to option[value=prod]");
    browser.click_on("form[action='/actions/app-promote'] button[type=submit]");
    browser.wait_text("#flash", "kip app promote --from=test --to=prod");
    let image = kubectl.jsonpath(
        "deployment",
        "web",
        "shop-prod",
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image.trim(), "nginx:1.28");
    let promoted = kubectl.json(&["get", "deployment", "web", "-n", "shop-prod", "-o", "json"]);
    assert_eq!(
        promoted["metadata"]["annotations"]["kipper.run/promoted-from"], "test",
        "{promoted}"
    );

    // Removing an environment asks for its name: the button stays disabled until it is typed.
    browser.goto(&console.url("/projects/shop/acc"));
    browser.open_details("#remove-env");
    let button = browser.find("#remove-env button[type=submit]");
    assert_eq!(browser.property(&button, "disabled"), true);
    browser.fill("#remove-env-confirm", "prod");
    assert_eq!(browser.property(&button, "disabled"), true);
    browser.fill("#remove-env-confirm", "acc");
    assert_eq!(browser.property(&button, "disabled"), false);
    browser.click(&button);
    browser.wait_text("#flash", "kip project remove-env");
    let project = kubectl.json(&["get", "projects.kipper.run", "shop", "-o", "json"]);
    assert_eq!(
        project["spec"]["environments"],
        serde_json::json!(["test", "prod"])
    );
    browser.wait_for("namespace shop-acc to go", || {
        let gone = kubectl.run(&["get", "namespace", "shop-acc"]);
        (!gone.status.success()).then_some(())
    });
    // The other environments and their apps are untouched.
    kubectl.ok(&["get", "deployment", "web", "-n", "shop-test"]);
}

#[test]
fn the_console_refuses_what_it_should() {
    let sandbox = ServedSandbox::start();
    let kubectl = sandbox.kubectl();
    sandbox.kip_ok(&["project", "create", "shop", "--environments", "test,prod"]);
    let console = Console::start(&sandbox, &[]);

    // Without a session: pages send you to sign in, actions are refused.
    let (code, head, _) = console.send("GET", "/projects/shop/test", &[], "");
    assert_eq!(code, 303);
    assert_eq!(location(&head), "/login?next=%2Fprojects%2Fshop%2Ftest");
    let (code, _, _) = console.send(
        "POST",
        "/actions/project-delete",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "name=shop&_confirm=shop",
    );
    assert_eq!(code, 401);
    // A wrong token opens nothing and sets no cookie; a forged cookie is no session.
    let (code, head, _) = console.send("GET", "/login?token=guess", &[], "");
    assert_eq!(code, 401);
    assert!(!head.contains("set-cookie"), "{head}");
    let (code, _, _) = console.send("GET", "/", &[("Cookie", "kip_console=forged")], "");
    assert_eq!(code, 303);
    // Sign-in never sends the browser to another site.
    let (code, head, _) = console.send(
        "GET",
        &format!("/login?token={TOKEN}&next=//evil.example/x"),
        &[],
        "",
    );
    assert_eq!((code, location(&head).as_str()), (303, "/"));

    let cookie = console.sign_in();
    let csrf = console.csrf(&cookie);
    let pages = console.send("GET", "/projects", &[("Cookie", &cookie)], "");
    assert!(
        pages
            .1
            .contains("content-security-policy: default-src 'self'"),
        "{}",
        pages.1
    );
    assert!(pages.1.contains("x-frame-options: DENY"), "{}", pages.1);

    // The static files come from the binary, gzipped for browsers that take it.
    let (code, head, body) = console.send("GET", "/assets/console.css", &[], "");
    assert_eq!(code, 200);
    assert!(
        head.contains("content-type: text/css") && body.contains("prefers-color-scheme: dark"),
        "{head}"
    );
    let (code, head, _) = console.send(
        "GET",
        "/assets/htmx.min.js",
        &[("Accept-Encoding", "gzip, br")],
        "",
    );
    assert_eq!(code, 200);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(console.send("GET", "/assets/../Cargo.toml", &[], "").0, 404);
    assert_eq!(console.send("GET", "/assets/nothing.js", &[], "").0, 404);

    // A form without the CSRF token, with another's, or from another origin does nothing.
    let deploy = "project=shop&environment=test&name=web&image=nginx:1.27&port=80&_return=/";
    for (form, origin) in [
        (deploy.to_string(), None),
        (format!("{deploy}&_csrf=0000"), None),
        (
            format!("{deploy}&_csrf={csrf}"),
            Some("http://evil.example"),
        ),
        (format!("{deploy}&_csrf={csrf}"), Some("null")),
    ] {
        let mut headers = vec![
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        if let Some(origin) = origin {
            headers.push(("Origin", origin));
        }
        let (code, _, body) = console.send("POST", "/actions/app-deploy", &headers, &form);
        assert_eq!(code, 403, "{form} from {origin:?}: {body}");
    }
    assert!(
        !kubectl
            .run(&["get", "deployment", "web", "-n", "shop-test"])
            .status
            .success()
    );

    // Fields a verb does not declare, kip's own flags and flags that read server files are
    // refused, naming them; nothing is made.
    for (action, form, says) in [
        (
            "app-deploy",
            format!("{deploy}&scripts=/tmp"),
            "no flag or argument `scripts`",
        ),
        (
            "app-deploy",
            format!("{deploy}&verbose=on"),
            "no flag or argument `verbose`",
        ),
        (
            "app-env-set",
            "project=shop&environment=test&name=web&from-file=/etc/passwd".to_string(),
            "reads a file on the server",
        ),
        (
            "app-deploy",
            deploy.replace("port=80", "port=eighty"),
            "invalid value &#x27;eighty&#x27; for &#x27;--port",
        ),
        ("app-deploy", format!("{deploy}&name=other"), "2 times"),
    ] {
        let (code, head, _) = console.post(
            &cookie,
            &format!("/actions/{action}"),
            &format!("{form}&_csrf={csrf}"),
        );
        assert_eq!(code, 303, "{head}");
        let (_, _, page) = console.send("GET", &location(&head), &[("Cookie", &cookie)], "");
        assert!(
            page.contains(says),
            "{action} {form}: expected {says:?} in:\n{page}"
        );
        assert!(page.contains("flash bad"), "{page}");
    }
    assert!(
        !kubectl
            .run(&["get", "deployment", "web", "-n", "shop-test"])
            .status
            .success()
    );
    // Verbs the console does not offer (SSH installs, tunnels) have no action.
    let (code, _, _) = console.post(
        &cookie,
        "/actions/install",
        &format!("_csrf={csrf}&host=127.0.0.1"),
    );
    assert_eq!(code, 404);

    // A destructive action needs the name typed: missing or wrong, nothing is deleted.
    for typed in ["", "sho", "prod", "shop "] {
        let form = format!("_csrf={csrf}&_return=/projects&name=shop&_confirm={typed}");
        let (code, head, _) = console.post(&cookie, "/actions/project-delete", &form);
        assert_eq!(code, 303);
        let (_, _, page) = console.send("GET", &location(&head), &[("Cookie", &cookie)], "");
        if typed.trim() == "shop" {
            assert!(page.contains("kip project delete"), "{page}");
        } else {
            assert!(page.contains("Not confirmed"), "{typed:?}: {page}");
            kubectl.ok(&["get", "projects.kipper.run", "shop"]);
        }
    }
    assert!(
        !kubectl
            .run(&["get", "projects.kipper.run", "shop"])
            .status
            .success()
    );

    // Whatever a name holds is shown as text, never run as markup.
    sandbox.kip_ok(&[
        "project",
        "create",
        "xss",
        "--display-name",
        "<script>alert(1)</script>",
    ]);
    let (_, _, page) = console.send("GET", "/projects", &[("Cookie", &cookie)], "");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    // An action sends the browser back only to the console's own pages.
    let form = format!("_csrf={csrf}&_return=//evil.example/&name=demo&environments=test");
    let (_, head, _) = console.post(&cookie, "/actions/project-create", &form);
    assert_eq!(location(&head), "/");

    // Signing out ends the session: its cookie opens nothing any more.
    let (code, _, _) = console.post(&cookie, "/logout", &format!("_csrf={csrf}"));
    assert_eq!(code, 303);
    let (code, head, _) = console.send("GET", "/projects", &[("Cookie", &cookie)], "");
    assert_eq!(
        (code, location(&head).as_str()),
        (303, "/login?next=%2Fprojects")
    );
}

#[test]
fn an_override_of_a_verb_changes_the_console_too() {
    let sandbox = ServedSandbox::start();
    sandbox.kip_ok(&["project", "create", "shop", "--environments", "test"]);
    sandbox.kip_ok(&nginx_deploy("web", "shop", "test"));
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("scale_policy.rhai"),
        r#"
fn verbs() {[ #{ verb: "app scale", about: "Scale, at most 2 replicas here", run: "scale",
    flags: [ #{ name: "replicas", type: "int", required: true }, #{ name: "project" }, #{ name: "environment" } ],
    args: [ #{ name: "name", required: true } ] } ]}
fn scale(opts) {
    if opts.replicas > 2 { throw `team policy: at most 2 replicas (asked for ${opts.replicas})`; }
    print("policy checked");
    kip::next(opts);
}
"#,
    )
    .unwrap();
    let console = Console::start(&sandbox, &["--scripts", scripts.path().to_str().unwrap()]);
    let cookie = console.sign_in();
    let csrf = console.csrf(&cookie);
    let path = "/projects/shop/test/apps/web";
    let form = |n: u32| {
        format!("_csrf={csrf}&_return={path}&project=shop&environment=test&name=web&replicas={n}")
    };
    let (_, head, _) = console.post(&cookie, "/actions/app-scale", &form(5));
    let (_, _, page) = console.send("GET", &location(&head), &[("Cookie", &cookie)], "");
    assert!(
        page.contains("team policy: at most 2 replicas (asked for 5)"),
        "{page}"
    );
    let kubectl = sandbox.kubectl();
    let replicas = |k: &crate::common::Kubectl| {
        k.jsonpath("deployment", "web", "shop-test", "{.spec.replicas}")
    };
    assert_eq!(replicas(&kubectl).trim(), "1");
    let (_, head, _) = console.post(&cookie, "/actions/app-scale", &form(2));
    let (_, _, page) = console.send("GET", &location(&head), &[("Cookie", &cookie)], "");
    assert!(page.contains("policy checked"), "{page}");
    assert_eq!(replicas(&kubectl).trim(), "2");
}

/// An image whose one process serves HTTP on 8080 and prints `tick N` twice a second.
fn ticker_image() -> &'static str {
    const TICKER: &str = "localhost/kip-test-ticker:1";
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let base = crate::workloads::busybox_image();
        let dir = tempfile::tempdir().expect("context");
        crate::workloads::build_image(
            &[TICKER],
            dir.path(),
            &format!(
                "FROM {base}\nRUN mkdir -p /www && echo ok > /www/index.html\n\
                 CMD [\"sh\", \"-c\", \"httpd -p 8080 -h /www; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done\"]\n"
            ),
        );
    });
    TICKER
}

/// The highest `tick N` in `text`.
fn last_tick(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("tick "))
        .filter_map(|n| n.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn logs_stream_live_into_the_page() {
    let real = crate::workloads::RealSandbox::start();
    let image = ticker_image();
    real.kip_ok(&["project", "create", "shop", "--environments", "test"]);
    real.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "clock",
        "--image",
        image,
        "--port",
        "8080",
        "--project",
        "shop",
        "--environment",
        "test",
    ]);
    let console = Console::start(&real.sandbox, &[]);
    let browser = Browser::start(1280, 900);
    sign_in(
        &browser,
        &console,
        "/projects/shop/test/apps/clock?tab=logs",
    );
    browser.wait_text("#logs-state", "Streaming live");
    // Lines keep arriving on the open page: no reload between the two readings.
    let first = browser.wait_for("a tick in the log", || {
        let n = last_tick(&browser.text_of("#logs"));
        (n > 0).then_some(n)
    });
    let later = browser.wait_for("a later tick on the same page", || {
        let n = last_tick(&browser.text_of("#logs"));
        (n >= first + 3).then_some(n)
    });
    assert!(later > first);
    browser.docs_shot("app-logs");
    // kubectl reads the same log.
    let pod = real.kubectl().ok(&[
        "get",
        "pods",
        "-n",
        "shop-test",
        "-l",
        "app.kubernetes.io/name=clock",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let log = real
        .kubectl()
        .ok(&["logs", "-n", "shop-test", pod.trim(), "-c", "clock"]);
    assert!(last_tick(&log) >= later, "{log}");

    // Another site's page cannot open the stream with the user's cookie, nor can anyone
    // without a session.
    let cookie = console.sign_in();
    let ws = "/projects/shop/test/apps/clock/logs/ws";
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let with = |extra: &[(&'static str, &str)]| {
        let mut headers: Vec<(&str, &str)> = upgrade.to_vec();
        headers.extend_from_slice(extra);
        let (code, _, _) = console.send("GET", ws, &headers, "");
        code
    };
    assert_eq!(
        with(&[("Cookie", &cookie), ("Origin", "http://evil.example")]),
        403
    );
    assert_eq!(with(&[("Cookie", &cookie)]), 403);
    let origin = format!("http://{}", console.address);
    assert_eq!(with(&[("Origin", &origin)]), 401);
    assert_eq!(
        console
            .send(
                "GET",
                &format!("{ws}?pod=other-pod"),
                &[
                    upgrade.as_slice(),
                    &[("Cookie", cookie.as_str()), ("Origin", origin.as_str())]
                ]
                .concat(),
                ""
            )
            .0,
        404
    );
}

/// A token of the cluster signs in as its user: what the cluster's RBAC lets them do works,
/// what it does not is refused in the cluster's words and changes nothing, and a token the
/// cluster does not accept opens nothing.
#[test]
fn a_cluster_token_signs_in_as_its_user_and_the_cluster_decides() {
    const DEV: &str = "system:serviceaccount:shop-test:dev";
    let sandbox = ServedSandbox::start();
    let kubectl = sandbox.kubectl();
    sandbox.kip_ok(&["project", "create", "shop", "--environments", "test,prod"]);
    for env in ["test", "prod"] {
        sandbox.kip_ok(&nginx_deploy("web", "shop", env));
    }
    // dev reads everything (view, cluster-wide) and changes shop-test alone (edit there).
    kubectl.ok(&["create", "serviceaccount", "dev", "-n", "shop-test"]);
    kubectl.ok(&[
        "create",
        "clusterrolebinding",
        "dev-view",
        "--clusterrole=view",
        "--serviceaccount=shop-test:dev",
    ]);
    kubectl.ok(&[
        "create",
        "rolebinding",
        "dev-edit",
        "--clusterrole=edit",
        "--serviceaccount=shop-test:dev",
        "-n",
        "shop-test",
    ]);
    let token = kubectl.ok(&["create", "token", "dev", "-n", "shop-test"]);
    let token = token.trim();

    let console = Console::start(&sandbox, &[]);
    // Tokens neither the console nor the cluster accepts open nothing; nor does a cluster
    // token in a link (links end up in logs and histories).
    let origin = format!("http://{}", console.address);
    for bad in ["not-a-token", "a.b.c", &format!("{token}x")] {
        let form = format!("token={bad}&next=%2F");
        let (code, _, body) = console.send(
            "POST",
            "/login",
            &[
                ("Origin", &origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &form,
        );
        assert_eq!(code, 401, "{bad}: {body}");
        assert!(
            body.contains("Neither the console nor the cluster accepts"),
            "{body}"
        );
    }
    let (code, _, _) = console.send("GET", &format!("/login?token={token}"), &[], "");
    assert_eq!(code, 401, "a cluster token in a link");

    let browser = Browser::start(1280, 900);
    browser.goto(&console.url("/projects/shop/test/apps/web"));
    browser.fill("#token", token);
    browser.click_on("form button[type=submit]");
    browser.wait_text("#signed-in-as", DEV);
    browser.wait_text("h1", "web");

    let replicas = |ns: &str| kubectl.jsonpath("deployment", "web", ns, "{.spec.replicas}");
    browser.fill("#replicas", "2");
    browser.click_on("form[action='/actions/app-scale'] button[type=submit]");
    browser.wait_text("#flash", "web scaled to 2");
    assert_eq!(replicas("shop-test"), "2");

    browser.goto(&console.url("/projects/shop/prod/apps/web"));
    browser.wait_text("h1", "web");
    browser.fill("#replicas", "3");
    browser.click_on("form[action='/actions/app-scale'] button[type=submit]");
    browser.wait_text("#flash", &format!("User \"{DEV}\" cannot"));
    assert_eq!(replicas("shop-prod"), "1");
    // view reads no secrets: the tab says so, in the cluster's words.
    browser.goto(&console.url("/projects/shop/prod/apps/web?tab=secrets"));
    browser.wait_text("main", "forbidden");

    // The console token's sessions are not affected, and act with the console's rights.
    let cookie = console.sign_in();
    let (code, _, body) = console.send(
        "GET",
        "/projects/shop/prod/apps/web",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(code, 200);
    assert!(!body.contains("signed-in-as"), "no cluster user");

    // Once the account is gone its token is taken no more: the session ends, and its next
    // page is the sign-in page.
    kubectl.ok(&["delete", "serviceaccount", "dev", "-n", "shop-test"]);
    browser.goto(&console.url("/projects/shop/test/apps/web"));
    browser.wait_for("the sign-in page", || {
        browser.url().contains("/login").then_some(())
    });
    browser.goto(&console.url("/projects/shop/test/apps/web"));
    browser.wait_for("the sign-in page again", || {
        browser.url().contains("/login").then_some(())
    });
    assert_eq!(replicas("shop-test"), "2");
}

/// The Source tab with real builds: a build from git listed with its commit, Rebuild starting
/// a slow one, Cancel stopping it, each checked with kip and the build's processes.
#[test]
fn builds_are_rebuilt_and_cancelled_in_the_source_tab() {
    use crate::app_builds::{BUILD, builds, deploy_git, dockerfile, runs};
    crate::workloads::app_image();
    let git = crate::common::git::GitServer::start(None);
    let repo = git.repo("site", &[("Dockerfile", &dockerfile("v1", ""))]);
    let real = crate::workloads::RealSandbox::start();
    real.kip_ok(&["project", "create", "shop", "--environments", "test"]);
    real.kip_ok(&["project", "use", "shop/test"]);
    deploy_git(&real.sandbox, "site", &git.git_url("site"), &[]);

    let console = Console::start(&real.sandbox, &[]);
    let browser = Browser::start(1280, 900);
    sign_in(
        &browser,
        &console,
        "/projects/shop/test/apps/site?tab=source",
    );
    browser.wait_text("main", "no builds yet");

    // The first build, started from the page, then listed with its commit.
    browser.click_on("form[action='/actions/app-rebuild'] button[type=submit]");
    browser.wait_text("#flash", "kip app rebuild --no-wait");
    let first = crate::server::until("build 1 to succeed", BUILD, || {
        let list = builds(&real, "site");
        (list.first()?["phase"] == "Succeeded").then_some(list)
    });
    let commit = first[0]["commit"].as_str().expect("a commit").to_string();
    assert_eq!(commit, repo.head());
    browser.goto(&browser.url());
    browser.wait_text("main table", &commit[..12]);
    browser.wait_text("main table", "Succeeded");

    // A slow build, started from the page, shows as running; Cancel stops its processes.
    repo.commit(&[("Dockerfile", &dockerfile("v2", "sleep 96.5"))], "slow");
    browser.click_on("form[action='/actions/app-rebuild'] button[type=submit]");
    browser.wait_text("#flash", "kip app rebuild --no-wait");
    crate::server::until("the slow build to run", BUILD, || {
        runs("sleep 96.5").then_some(())
    });
    browser.goto(&browser.url());
    browser.wait_text("main table", "Building");
    browser.docs_shot("app-source");
    browser.click_on("form[action='/actions/app-build-cancel'] button[type=submit]");
    browser.wait_text("#flash", "Build 2 of site cancelled");
    crate::server::until(
        "the cancelled build's processes to end",
        Duration::from_secs(30),
        || (!runs("sleep 96.5")).then_some(()),
    );
    let now = builds(&real, "site");
    assert_eq!(now[0]["phase"], "Cancelled", "{now:?}");
    browser.wait_text("main table", "Cancelled");
    // The app still runs what build 1 made (rolled out once a read saw the build succeed).
    let image = first[0]["image"]
        .as_str()
        .expect("build 1's image")
        .to_string();
    crate::server::until("the app to run build 1's image", BUILD, || {
        let deployment = real.kubectl().jsonpath(
            "deployment",
            "site",
            "shop-test",
            "{.spec.template.spec.containers[0].image} {.status.readyReplicas}",
        );
        (deployment == format!("{image} 1")).then_some(())
    });
}

#[test]
fn services_and_routes_in_the_browser() {
    let sandbox = ServedSandbox::start();
    let kubectl = sandbox.kubectl();
    sandbox.kip_ok(&["project", "create", "shop", "--environments", "test"]);
    sandbox.kip_ok(&nginx_deploy("web", "shop", "test"));
    let console = Console::start(&sandbox, &[]);
    let browser = Browser::start(1280, 900);
    sign_in(&browser, &console, "/projects/shop/test");

    // Add a database.
    browser.open_details("#add-service");
    browser.click_on("#service-type option[value=postgres]");
    browser.fill("#service-name", "db");
    browser.click_on("#add-service button[type=submit]");
    browser.wait_text("#flash", "kip service add --name=db");
    kubectl.ok(&["get", "services.kipper.run", "db", "-n", "shop-test"]);
    browser.wait_text("#services", "postgres");

    // Its connection, the password masked until revealed, then the same as the CLI's.
    browser.click_on("#services a[href$='/services/db']");
    browser.wait_text("#service-info", "5432");
    assert!(browser.text_of("#service-info").contains("********"));
    let cli = sandbox.kip_ok(&[
        "service",
        "info",
        "db",
        "--show-password",
        "-o",
        "json",
        "--project",
        "shop",
        "--environment",
        "test",
    ]);
    let password = serde_json::from_str::<serde_json::Value>(&cli).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!browser.text_of("#service-info").contains(&password));
    browser.click_on("#reveal");
    browser.wait_text("#service-info", &password);
    browser.docs_shot("service");

    // Bind it to web, then take it away again.
    browser.click_on("form[action='/actions/service-bind'] button[type=submit]");
    browser.wait_text("#flash", "kip service bind");
    let bindings = || kubectl.jsonpath("apps.kipper.run", "web", "shop-test", "{.spec.bindings}");
    assert!(bindings().contains("db"), "{}", bindings());
    browser.click_on("form[action='/actions/service-unbind'] button[type=submit]");
    browser.wait_text("#flash", "kip service unbind");
    assert!(!bindings().contains("db"), "{}", bindings());

    // Deleting needs the name typed and the data flag: without the flag the verb refuses and
    // the database stays.
    browser.open_details("#delete-service");
    browser.fill("#delete-service-confirm", "db");
    browser.click_on("#delete-service button[type=submit]");
    browser.wait_text("#flash", "--delete-data");
    assert!(browser.all("#flash.bad").len() == 1 || browser.text_of("#flash").contains("failed"));
    kubectl.ok(&["get", "services.kipper.run", "db", "-n", "shop-test"]);
    browser.open_details("#delete-service");
    browser.click_on("#delete-data");
    browser.fill("#delete-service-confirm", "db");
    browser.click_on("#delete-service button[type=submit]");
    browser.wait_text("#flash", "kip service delete --delete-data");
    browser.wait_for("service db to go", || {
        (!kubectl
            .run(&["get", "services.kipper.run", "db", "-n", "shop-test"])
            .status
            .success())
        .then_some(())
    });

    // Routes: put web on the group `shop` (where api already is) at /api, take it out again,
    // move the group to a domain of its own, then dissolve it.
    sandbox.kip_ok(&[
        "app",
        "deploy",
        "--name",
        "api",
        "--image",
        "nginx:1.27",
        "--port",
        "80",
        "--route",
        "shop/",
        "--project",
        "shop",
        "--environment",
        "test",
    ]);
    browser.goto(&console.url("/projects/shop/test"));
    browser.click_on("#routes-link");
    browser.open_details("#add-route");
    browser.click_on("#route-app option[value=web]");
    browser.fill("#route-path", "shop/api");
    browser.click_on("#add-route button[type=submit]");
    browser.wait_text("#flash", "kip app update --route=shop/api");
    let route = || kubectl.jsonpath("apps.kipper.run", "web", "shop-test", "{.spec.route}");
    assert!(
        route().contains("\"group\":\"shop\"") && route().contains("/api"),
        "{}",
        route()
    );
    browser.wait_text("main", "/api");
    browser.docs_shot("routes");
    browser.click_on("form[action='/actions/app-update'] button[aria-label^='Take web']");
    browser.wait_text("#flash", "kip app update --own-host");
    assert!(!route().contains("\"group\""), "{}", route());

    let host = |app: &str| kubectl.jsonpath("ingress", app, "shop-test", "{.spec.rules[0].host}");
    browser.open_details("#edit-shop");
    browser.fill("#domain-shop", "shop.example.com");
    browser.click_on("#edit-shop form button[type=submit]");
    browser.wait_text("#flash", "kip route update --domain=shop.example.com");
    assert_eq!(host("api"), "shop.example.com");
    browser.wait_text("main", "shop.example.com");

    // A taken host is refused with the verb's words, and nothing moves.
    browser.open_details("#edit-shop");
    browser.fill("#domain-shop", &host("web"));
    browser.click_on("#edit-shop form button[type=submit]");
    browser.wait_text("#flash", "already served by app `web`");
    assert_eq!(host("api"), "shop.example.com");

    browser.open_details("#delete-shop");
    browser.fill("#delete-shop-confirm", "shop");
    browser.click_on("#delete-shop button[type=submit]");
    browser.wait_text("#flash", "kip route delete");
    assert_eq!(host("api"), "api-test-sandbox.localhost");
    browser.wait_text("main", "No routes in test");
    let left = kubectl.ok(&["get", "certificates", "-n", "shop-test", "-o", "name"]);
    assert!(!left.contains("route-shop"), "{left}");
}

#[test]
fn secrets_links_and_rollback_in_the_app_tabs() {
    let sandbox = ServedSandbox::start();
    let kubectl = sandbox.kubectl();
    sandbox.kip_ok(&["project", "create", "shop", "--environments", "test"]);
    for (name, image) in [("web", "nginx:1.27"), ("api", "nginx:1.27")] {
        sandbox.kip_ok(&[
            "app",
            "deploy",
            "--name",
            name,
            "--image",
            image,
            "--port",
            "80",
            "--project",
            "shop",
            "--environment",
            "test",
        ]);
    }
    sandbox.kip_ok(&[
        "app",
        "update",
        "web",
        "--image",
        "nginx:1.28",
        "--project",
        "shop",
        "--environment",
        "test",
    ]);
    let console = Console::start(&sandbox, &[]);
    let browser = Browser::start(1280, 900);
    let app = "/projects/shop/test/apps/web";
    sign_in(&browser, &console, &format!("{app}?tab=secrets"));

    // A secret: its value never shows in what the page says ran, only when revealed.
    browser.fill("#secret-items", "API_KEY=s3cret-value");
    browser.click_on("form[action='/actions/app-secret-set'] button[type=submit]");
    browser.wait_text("#flash", "kip app secret set");
    assert!(
        browser.text_of("#flash").contains("API_KEY=********"),
        "{}",
        browser.text_of("#flash")
    );
    assert!(!browser.text_of("body").contains("s3cret-value"));
    let secret = kubectl.json(&[
        "get",
        "secret",
        "web-secrets",
        "-n",
        "shop-test",
        "-o",
        "json",
    ]);
    assert_eq!(
        crate::common::secret_value(&secret, "API_KEY"),
        "s3cret-value"
    );
    browser.click_on("a[aria-label='Reveal API_KEY']");
    browser.wait_text("#revealed", "s3cret-value");

    // A link to api, shown with its variable, then unlinked.
    browser.goto(&console.url(&format!("{app}?tab=env")));
    browser.click_on("#link-target option[value=api]");
    browser.click_on("form[action='/actions/app-link'] button[type=submit]");
    browser.wait_text("#flash", "kip app link");
    browser.wait_text("#links", "API_URL");
    let links = || kubectl.jsonpath("apps.kipper.run", "web", "shop-test", "{.spec.links}");
    assert!(links().contains("api"), "{}", links());
    browser.click_on("button[aria-label='Unlink api']");
    browser.wait_text("#flash", "kip app unlink");
    assert!(!links().contains("api"), "{}", links());

    // History: back to revision 1's image.
    browser.goto(&console.url(&format!("{app}?tab=history")));
    browser.click_on("button[aria-label='Roll back to revision 1']");
    browser.wait_text("#flash", "kip app rollback --revision=1");
    let image = kubectl.jsonpath(
        "deployment",
        "web",
        "shop-test",
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image.trim(), "nginx:1.27");
    browser.wait_text("#app-summary", "nginx:1.27");
}

/// Each console page rendered by the console's renderer from the stdlib templates with a
/// context like the handlers give, snapshotted; `base.html.j2` and `macros.html.j2` are in
/// every one of them.
#[test]
fn every_console_page_renders_and_matches_its_snapshot() {
    use serde_json::json;
    let search = kip_core::SearchPath::stdlib_only();
    let project = json!({ "name": "shop", "displayName": "Shop & Co", "environments": ["test", "acc", "prod"] });
    let app = json!({ "name": "web", "status": "running", "ready": 2, "replicas": 2, "image": "nginx:1.27",
        "host": "web-test.example.com", "url": "https://web-test.example.com" });
    let common = json!({ "cluster": "prod-cluster", "csrf": "c5rf", "flash": { "ok": true, "title": "kip app scale --replicas=2 web", "output": "✔ Scaled web to 2\n" } });
    let plan_view = json!({
        "apps": [{ "name": "web", "image": "nginx:1.27", "routed": true, "host": "web-prod.example.com",
            "plan_host": "web-prod.example.com", "replicas": "2", "memory": "768Mi", "cpu": "",
            "overridden": true, "env": [
                { "name": "DATABASE_URL", "value": "postgres://db.shop-prod.svc/x", "plan_value": "postgres://db.shop-prod.svc/x",
                  "was": "postgres://db.shop-test.svc/x", "auto_updated": true, "suspect": true, "keep": false, "changed": false },
                { "name": "GREETING", "value": "hello prod", "plan_value": "hello", "was": "hello", "auto_updated": false,
                  "suspect": false, "keep": false, "changed": true } ] }],
        "services": [{ "name": "db", "type": "postgres", "version": "16.4", "storage": "5Gi" }],
        "secrets": [{ "name": "web-secrets", "app": "web", "keys": ["API_KEY"], "exists": false }],
        "warnings": [], "existing": [], "new_environment": false, "overridden": 1,
        "flags": { "route": [], "set": ["web.env.GREETING=hello prod"], "keep": [] },
        "target_ns": "shop-prod", "source_ns": "shop-test",
    });
    let pages: Vec<(&str, &str, serde_json::Value)> = vec![
        (
            "login",
            "login.html.j2",
            json!({ "cluster": "prod-cluster", "next": "/projects", "error": "That token does not open this console." }),
        ),
        (
            "error",
            "error.html.j2",
            json!({ "title": "Not Found", "message": "There is no project `nope`." }),
        ),
        (
            "dashboard",
            "dashboard.html.j2",
            json!({ "nav": "dashboard", "projects": [project.clone()],
            "apps": [{ "name": "web", "project": "shop", "environment": "test", "status": "deploying", "ready": 1, "replicas": 2, "image": "nginx:1.27" }] }),
        ),
        (
            "projects",
            "projects.html.j2",
            json!({ "nav": "projects", "projects": [project.clone()] }),
        ),
        (
            "environment",
            "environment.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test",
            "apps": [app.clone()], "services": [{ "name": "db", "type": "postgres", "version": "16.4", "status": "running", "storage": "5Gi" }] }),
        ),
        (
            "environment-empty",
            "environment.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "prod", "apps": [], "services": [] }),
        ),
        (
            "app-scale",
            "app.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test", "app": app.clone(),
            "apps": [app.clone()], "tab": "scale", "path": "/projects/shop/test/apps/web", "later": ["acc", "prod"] }),
        ),
        (
            "app-scale-autoscaled",
            "app.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test", "app": app.clone(),
            "apps": [app.clone()], "tab": "scale", "path": "/projects/shop/test/apps/web", "later": ["acc", "prod"],
            "extra": { "name": "web", "min": 2, "max": 4, "currentReplicas": 2, "desiredReplicas": 3,
                "cpu": { "current": 91, "target": 70 }, "notScaling": "<i>the metrics API is down</i>" } }),
        ),
        (
            "app-env",
            "app.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test", "app": app.clone(),
            "apps": [app.clone(), { "name": "api" }], "tab": "env", "path": "/projects/shop/test/apps/web",
            "details": [{ "name": "GREETING", "value": "<b>hi</b>", "from": "env" }],
            "extra": [{ "direction": "to", "app": "api", "variable": "API_URL", "url": "http://api.shop-test.svc:80", "public": false }] }),
        ),
        (
            "app-secrets",
            "app.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test", "app": app.clone(),
            "apps": [app.clone()], "tab": "secrets", "path": "/projects/shop/test/apps/web",
            "details": [{ "name": "API_KEY", "value": "********" }, { "name": "OTHER", "value": "********" }],
            "extra": { "key": "API_KEY", "value": "s3cret" } }),
        ),
        (
            "app-history",
            "app.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test", "app": app.clone(),
            "apps": [app.clone()], "tab": "history", "path": "/projects/shop/test/apps/web",
            "details": [{ "revision": 1, "image": "nginx:1.26", "trigger": "deploy", "at": "2026-12-04T09:00:00Z" },
                        { "revision": 2, "image": "nginx:1.27", "trigger": "update", "at": "2026-12-04T10:00:00Z" }] }),
        ),
        (
            "app-promote-last",
            "app.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "prod", "app": app.clone(),
            "apps": [app.clone()], "tab": "promote", "path": "/projects/shop/prod/apps/web", "later": [], "details": [] }),
        ),
        (
            "app-source",
            "app.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test", "app": app.clone(),
            "apps": [app.clone()], "tab": "source", "path": "/projects/shop/test/apps/web",
            "details": [{ "number": 3, "commit": "0123456789abcdef0123", "phase": "Succeeded", "trigger": "webhook", "image": "reg/shop-test/web:0123456" }] }),
        ),
        (
            "app-logs",
            "app.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test", "app": app.clone(),
            "apps": [app.clone()], "tab": "logs", "path": "/projects/shop/test/apps/web",
            "details": { "pods": [{ "name": "web-1", "phase": "Running" }], "pod": "web-1", "text": "GET / 200\n" } }),
        ),
        (
            "copy-1",
            "copy.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "step": 1, "from": "test", "to": "prod",
            "prod_defaults": false, "suspect": false, "view": plan_view.clone() }),
        ),
        (
            "copy-3-suspect",
            "copy.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "step": 3, "from": "test", "to": "prod",
            "prod_defaults": false, "suspect": true, "view": plan_view.clone() }),
        ),
        (
            "copy-4",
            "copy.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "step": 4, "from": "test", "to": "prod",
            "prod_defaults": true, "suspect": false, "view": plan_view.clone() }),
        ),
        (
            "copy-5",
            "copy.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "step": 5, "from": "test", "to": "prod",
            "prod_defaults": false, "suspect": false, "view": plan_view.clone() }),
        ),
        (
            "service",
            "service.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test",
            "service": { "name": "db", "type": "postgres", "version": "16.4", "storage": "5Gi", "host": "db.shop-test.svc", "port": 5432, "password": "********" },
            "revealed": false, "apps": [app.clone()], "path": "/projects/shop/test/services/db" }),
        ),
        (
            "routes",
            "routes.html.j2",
            json!({ "nav": "projects", "project": project.clone(), "env": "test", "apps": [app.clone()],
            "path": "/projects/shop/test/routes",
            "groups": [{ "group": "shop", "host": "shop-test.example.com", "paths": [{ "app": "web", "path": "/", "group": "shop" }, { "app": "api", "path": "/api", "group": "shop" }] }] }),
        ),
        (
            "switcher",
            "switcher.html.j2",
            json!({ "projects": [project.clone()], "current": "shop/acc", "csrf": "c5rf" }),
        ),
    ];
    for (name, template, data) in pages {
        let mut context = common.clone();
        context
            .as_object_mut()
            .unwrap()
            .extend(data.as_object().unwrap().clone());
        let html = kip_server::console::render::page(&search, template, &context)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !html.contains("<b>hi</b>") && !html.contains("<script>alert"),
            "{name}: unescaped"
        );
        insta::assert_snapshot!(format!("console_{name}"), html);
    }
}
