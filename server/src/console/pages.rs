//! The console's pages and its one action endpoint. Every page needs a session; every POST
//! its CSRF token and a matching origin.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{self, Flash, Session};
use super::{Console, Runner, actions, render, wizard};

type Shared = State<Arc<Console>>;

/// The headers every page carries: no caching, no framing, scripts and styles only from the
/// console itself.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
];

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    for (name, value) in SECURITY_HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    response
}

fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(to) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, to);
    }
    response
}

/// A path on this console to send the browser back to; anything else (another site, a
/// scheme-relative `//host`) becomes `/`.
fn local_path(path: &str) -> String {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control);
    if ok { path.to_string() } else { "/".into() }
}

fn query(raw: &Option<String>) -> Vec<(String, String)> {
    form(raw.as_deref().unwrap_or("").as_bytes())
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The signed-in session of a request, and how it runs verbs: with the console's credentials,
/// or as the cluster user who signed in.
struct Signed {
    id: String,
    session: Session,
    runner: Runner,
}

async fn signed_in(console: &Console, headers: &HeaderMap) -> Option<Signed> {
    let id = auth::session_cookie(headers)?;
    let session = console.sessions.get(&id)?;
    // A cluster user's session lasts as long as the cluster takes their token.
    if let Some(user) = &session.user
        && !super::still_accepted(user).await
    {
        console.sessions.logout(&id);
        return None;
    }
    let runner = console.runner_for(&session);
    Some(Signed {
        id,
        session,
        runner,
    })
}

fn to_login(path: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    see_other(&format!("/login?next={next}"))
}

/// Renders `name` with `data` and what every page shows: the cluster, the CSRF token, the
/// flash of the last action.
fn page(
    console: &Console,
    signed: &Signed,
    name: &str,
    status: StatusCode,
    data: Value,
) -> Response {
    let flash = console.sessions.take_flash(&signed.id);
    let mut context = json!({
        "cluster": console.runner.cluster.name,
        "user": signed.session.user.as_ref().map(|u| u.name.clone()),
        "csrf": signed.session.csrf,
        "flash": flash,
    });
    if let (Some(context), Value::Object(data)) = (context.as_object_mut(), data) {
        context.extend(data);
    }
    match render::page(&console.runner.search, name, &context) {
        Ok(body) => html(status, body),
        Err(why) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("<!doctype html><title>Error</title><p>{}</p>", escape(&why)),
        ),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page saying why a page cannot be shown.
fn trouble(console: &Console, signed: &Signed, status: StatusCode, why: &str) -> Response {
    page(
        console,
        signed,
        "error.html.j2",
        status,
        json!({ "title": status.canonical_reason().unwrap_or("Error"), "message": why }),
    )
}

pub async fn login_page(State(console): Shared, RawQuery(raw): RawQuery) -> Response {
    let fields = query(&raw);
    let next = local_path(field(&fields, "next").unwrap_or("/"));
    // `kip console` prints a link that signs in at once.
    if let Some(token) = field(&fields, "token") {
        if let Some(id) = console.sessions.login(token) {
            return signed_in_to(&id, &next);
        }
        return login_form(
            &console,
            &next,
            Some("That token does not open this console."),
        );
    }
    login_form(&console, &next, None)
}

fn login_form(console: &Console, next: &str, error: Option<&str>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let context = json!({ "next": next, "error": error, "cluster": console.runner.cluster.name });
    match render::page(&console.runner.search, "login.html.j2", &context) {
        Ok(body) => html(status, body),
        Err(why) => html(StatusCode::INTERNAL_SERVER_ERROR, escape(&why)),
    }
}

fn signed_in_to(id: &str, next: &str) -> Response {
    let mut response = see_other(next);
    if let Ok(cookie) = HeaderValue::from_str(&auth::set_cookie(id)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub async fn login(State(console): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let fields = form(&body);
    let next = local_path(field(&fields, "next").unwrap_or("/"));
    if !auth::same_origin(&headers) {
        return html(
            StatusCode::FORBIDDEN,
            "Sign in from the console's own page.".into(),
        );
    }
    let token = field(&fields, "token").unwrap_or("");
    if let Some(id) = console.sessions.login(token) {
        return signed_in_to(&id, &next);
    }
    match console.cluster_user(token).await {
        Ok(Some(user)) => signed_in_to(&console.sessions.open(Some(user)), &next),
        Ok(None) => {
            // A wrong token costs time: guessing is slow.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            login_form(
                &console,
                &next,
                Some("Neither the console nor the cluster accepts that token."),
            )
        }
        Err(why) => login_form(
            &console,
            &next,
            Some(&format!("Cannot check the token with the cluster: {why}")),
        ),
    }
}

pub async fn logout(State(console): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let fields = form(&body);
    if let Some(signed) = signed_in(&console, &headers).await {
        if !csrf_ok(&signed, &headers, &fields) {
            return html(
                StatusCode::FORBIDDEN,
                "The form is stale: reload the page.".into(),
            );
        }
        console.sessions.logout(&signed.id);
    }
    let mut response = see_other("/login");
    if let Ok(cookie) = HeaderValue::from_str(&auth::set_cookie("")) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The session of a form's POST whose CSRF token and origin match; otherwise the answer that
/// refuses it (401 without a session, 403 for a stale or foreign form) and why.
async fn signed_form(
    console: &Console,
    headers: &HeaderMap,
    fields: &[(String, String)],
) -> Result<Signed, (StatusCode, &'static str)> {
    let Some(signed) = signed_in(console, headers).await else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "Sign in again: your session ended.",
        ));
    };
    if !csrf_ok(&signed, headers, fields) {
        return Err((
            StatusCode::FORBIDDEN,
            "The form is stale or came from another site: reload the page and try again.",
        ));
    }
    Ok(signed)
}

fn csrf_ok(signed: &Signed, headers: &HeaderMap, fields: &[(String, String)]) -> bool {
    auth::same_origin(headers)
        && auth::same_secret(field(fields, "_csrf").unwrap_or(""), &signed.session.csrf)
}

/// Reads `argv` with `-o json`; a failure becomes the page's error.
async fn read(runner: &Runner, argv: &[&str]) -> Result<Value, String> {
    runner.read(argv).await
}

fn list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

pub async fn dashboard(State(console): Shared, headers: HeaderMap) -> Response {
    let Some(signed) = signed_in(&console, &headers).await else {
        return to_login("/");
    };
    let (projects, apps) = tokio::join!(
        read(&signed.runner, &["project", "list"]),
        read(&signed.runner, &["app", "list", "-A"])
    );
    match (projects, apps) {
        (Ok(projects), Ok(apps)) => page(
            &console,
            &signed,
            "dashboard.html.j2",
            StatusCode::OK,
            json!({ "nav": "dashboard", "projects": projects, "apps": apps }),
        ),
        (Err(why), _) | (_, Err(why)) => trouble(&console, &signed, StatusCode::BAD_GATEWAY, &why),
    }
}

pub async fn projects(State(console): Shared, headers: HeaderMap) -> Response {
    let Some(signed) = signed_in(&console, &headers).await else {
        return to_login("/projects");
    };
    match read(&signed.runner, &["project", "list"]).await {
        Ok(projects) => page(
            &console,
            &signed,
            "projects.html.j2",
            StatusCode::OK,
            json!({ "nav": "projects", "projects": projects }),
        ),
        Err(why) => trouble(&console, &signed, StatusCode::BAD_GATEWAY, &why),
    }
}

/// The project named `name` among `kip project list`'s.
async fn find_project(runner: &Runner, name: &str) -> Result<Option<Value>, String> {
    let projects = list(read(runner, &["project", "list"]).await?);
    Ok(projects.into_iter().find(|p| p["name"] == name))
}

fn environments(project: &Value) -> Vec<String> {
    project["environments"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn project(
    State(console): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let path = format!("/projects/{name}");
    let Some(signed) = signed_in(&console, &headers).await else {
        return to_login(&path);
    };
    match find_project(&signed.runner, &name).await {
        Ok(Some(project)) => match environments(&project).first() {
            Some(env) => see_other(&format!("/projects/{name}/{env}")),
            None => trouble(
                &console,
                &signed,
                StatusCode::NOT_FOUND,
                "This project has no environments.",
            ),
        },
        Ok(None) => no_project(&console, &signed, &name),
        Err(why) => trouble(&console, &signed, StatusCode::BAD_GATEWAY, &why),
    }
}

fn no_project(console: &Console, signed: &Signed, name: &str) -> Response {
    trouble(
        console,
        signed,
        StatusCode::NOT_FOUND,
        &format!("There is no project `{name}`."),
    )
}

pub async fn environment(
    State(console): Shared,
    headers: HeaderMap,
    Path((name, env)): Path<(String, String)>,
) -> Response {
    let Some(signed) = signed_in(&console, &headers).await else {
        return to_login(&format!("/projects/{name}/{env}"));
    };
    let project = match find_project(&signed.runner, &name).await {
        Ok(Some(project)) => project,
        Ok(None) => return no_project(&console, &signed, &name),
        Err(why) => return trouble(&console, &signed, StatusCode::BAD_GATEWAY, &why),
    };
    if !environments(&project).contains(&env) {
        return trouble(
            &console,
            &signed,
            StatusCode::NOT_FOUND,
            &format!("Project `{name}` has no environment `{env}`."),
        );
    }
    let where_ = ["--project", name.as_str(), "--environment", env.as_str()];
    let apps_argv: Vec<&str> = ["app", "list"]
        .iter()
        .chain(where_.iter())
        .copied()
        .collect();
    let services_argv: Vec<&str> = ["service", "list"]
        .iter()
        .chain(where_.iter())
        .copied()
        .collect();
    let (apps, services) = tokio::join!(
        read(&signed.runner, &apps_argv),
        read(&signed.runner, &services_argv)
    );
    let apps = match apps {
        Ok(apps) => apps,
        Err(why) => return trouble(&console, &signed, StatusCode::BAD_GATEWAY, &why),
    };
    page(
        &console,
        &signed,
        "environment.html.j2",
        StatusCode::OK,
        json!({
            "nav": "projects",
            "project": project,
            "env": env,
            "apps": apps,
            "services": services.unwrap_or(Value::Array(Vec::new())),
        }),
    )
}

pub async fn app(
    State(console): Shared,
    headers: HeaderMap,
    Path((name, env, app)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/projects/{name}/{env}/apps/{app}");
    let Some(signed) = signed_in(&console, &headers).await else {
        let query = raw.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
        return to_login(&format!("{path}{query}"));
    };
    let fields = query(&raw);
    const TABS: &[&str] = &[
        "scale", "env", "secrets", "history", "promote", "logs", "source",
    ];
    let tab = field(&fields, "tab")
        .filter(|t| TABS.contains(t))
        .unwrap_or("scale");
    let where_ = ["--project", name.as_str(), "--environment", env.as_str()];
    let with = |verb: &[&'static str], app: Option<&str>| -> Vec<String> {
        verb.iter()
            .map(|s| s.to_string())
            .chain(where_.iter().map(|s| s.to_string()))
            .chain(
                app.map(|a| vec!["--".to_string(), a.to_string()])
                    .unwrap_or_default(),
            )
            .collect()
    };
    let apps_argv = with(&["app", "list"], None);
    let apps = match signed.runner.read(&refs(&apps_argv)).await {
        Ok(apps) => list(apps),
        Err(why) => return trouble(&console, &signed, StatusCode::BAD_GATEWAY, &why),
    };
    let Some(this) = apps.iter().find(|a| a["name"] == app.as_str()).cloned() else {
        return trouble(
            &console,
            &signed,
            StatusCode::NOT_FOUND,
            &format!("There is no app `{app}` in {name}/{env}."),
        );
    };
    let tab_argv = match tab {
        "env" => Some(with(&["app", "env", "list"], Some(&app))),
        "secrets" => Some(with(&["app", "secret", "list"], Some(&app))),
        "history" | "promote" => Some(with(&["app", "history"], Some(&app))),
        "source" => Some(with(&["app", "builds"], Some(&app))),
        _ => None,
    };
    let details = match tab_argv {
        Some(argv) => signed.runner.read(&refs(&argv)).await,
        None if tab == "logs" => {
            logs_tab(&signed.runner, &name, &env, &app, field(&fields, "pod")).await
        }
        None => Ok(Value::Null),
    };
    // What the tab needs besides its main read: how the app autoscales on the Scale tab, the
    // links of the Env tab, a secret asked for on the Secrets tab.
    let extra = match tab {
        "scale" => {
            let argv = with(&["app", "autoscale", "--status"], Some(&app));
            signed.runner.value(argv).await.unwrap_or(Value::Null)
        }
        "env" => signed
            .runner
            .read(&refs(&with(&["app", "links"], Some(&app))))
            .await
            .unwrap_or(Value::Array(Vec::new())),
        "secrets" => match field(&fields, "reveal") {
            Some(key) => {
                let argv = with(&["app", "secret", "reveal"], Some(&app))
                    .into_iter()
                    .chain(std::iter::once(key.to_string()))
                    .collect();
                let ran = signed.runner.run(argv, builtins::OutputFormat::Table).await;
                match ran.error {
                    None => json!({ "key": key, "value": ran.output.trim_end_matches('\n') }),
                    Some(why) => json!({ "key": key, "error": why }),
                }
            }
            None => Value::Null,
        },
        _ => Value::Null,
    };
    let project = find_project(&signed.runner, &name).await.ok().flatten();
    // The environments after this one in the promotion order: where it may be promoted.
    let later: Vec<String> = project
        .as_ref()
        .map(environments)
        .unwrap_or_default()
        .into_iter()
        .skip_while(|e| *e != env)
        .skip(1)
        .collect();
    let (details, details_error) = match details {
        Ok(details) => (details, None),
        Err(why) => (Value::Null, Some(why)),
    };
    page(
        &console,
        &signed,
        "app.html.j2",
        StatusCode::OK,
        json!({
            "nav": "projects",
            "project": project,
            "env": env,
            "app": this,
            "apps": apps,
            "tab": tab,
            "details": details,
            "details_error": details_error,
            "later": later,
            "extra": extra,
            "path": path,
        }),
    )
}

fn refs(argv: &[String]) -> Vec<&str> {
    argv.iter().map(String::as_str).collect()
}

/// `POST /actions/{action}`: runs the action's verb with the form, keeps what it said for the
/// next page and sends the browser back to `_return`.
pub async fn act(
    State(console): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let signed = match signed_form(&console, &headers, &fields).await {
        Ok(signed) => signed,
        Err((status, why)) => return html(status, why.into()),
    };
    let Some(action) = actions::find(&name) else {
        return html(
            StatusCode::NOT_FOUND,
            format!("There is no action `{}`.", escape(&name)),
        );
    };
    run_action(&console, &signed, action, fields).await
}

/// Runs `action` with `fields` once its confirmation (if it needs one) matches, keeps what it
/// said for the next page and sends the browser on.
async fn run_action(
    console: &Console,
    signed: &Signed,
    action: &actions::Action,
    fields: Vec<(String, String)>,
) -> Response {
    let back = local_path(field(&fields, "_return").unwrap_or("/"));
    if let Some(named) = action.confirm {
        let expected = field(&fields, named).unwrap_or("").trim();
        let typed = field(&fields, "_confirm").unwrap_or("").trim();
        if expected.is_empty() || typed != expected {
            let back_on_fail = local_path(field(&fields, "_back").unwrap_or(&back));
            console.sessions.set_flash(
                &signed.id,
                Flash {
                    ok: false,
                    title: format!("Not confirmed: type `{expected}` to {}", action.verb),
                    output: "Nothing was changed.".into(),
                },
            );
            return see_other(&back_on_fail);
        }
    }
    let (shown, ran) = signed.runner.run_form(action.verb, fields.clone()).await;
    let flash = match &ran.error {
        None => Flash {
            ok: true,
            title: shown,
            output: ran.output,
        },
        Some(why) => Flash {
            ok: false,
            title: format!("{shown} failed: {why}"),
            output: ran.output,
        },
    };
    let back = if flash.ok {
        back
    } else {
        local_path(field(&fields, "_back").unwrap_or(&back))
    };
    console.sessions.set_flash(&signed.id, flash);
    see_other(&back)
}

/// `GET /projects/{project}/copy?from=test&to=prod`: the wizard's first step.
pub async fn copy_wizard_start(
    State(console): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(signed) = signed_in(&console, &headers).await else {
        return to_login(&format!("/projects/{name}/copy"));
    };
    let mut fields = query(&raw);
    fields.retain(|(k, _)| k == "from" || k == "to");
    copy_step(&console, &signed, &name, fields).await
}

/// `POST /projects/{project}/copy`: the next (or previous) step, the form carrying the state.
pub async fn copy_wizard(
    State(console): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let signed = match signed_form(&console, &headers, &fields).await {
        Ok(signed) => signed,
        Err((status, why)) => return html(status, why.into()),
    };
    copy_step(&console, &signed, &name, fields).await
}

async fn copy_step(
    console: &Console,
    signed: &Signed,
    name: &str,
    fields: Vec<(String, String)>,
) -> Response {
    let project = match find_project(&signed.runner, name).await {
        Ok(Some(project)) => project,
        Ok(None) => return no_project(console, signed, name),
        Err(why) => return trouble(console, signed, StatusCode::BAD_GATEWAY, &why),
    };
    let state = wizard::State { fields: &fields };
    let mut step = state.step();
    let (from, to) = (state.from().to_string(), state.to().to_string());
    let mut error = None;
    let mut view = Value::Null;
    if !from.is_empty() && !to.is_empty() {
        let mut argv: Vec<String> = ["project", "copy-env", "--plan", "--project", name]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if state.prod_defaults() {
            argv.push("--prod-defaults".into());
        }
        argv.extend(["--".into(), from.clone(), to.clone()]);
        match signed.runner.value(argv).await {
            Ok(plan) => view = wizard::view(&plan, &state),
            Err(why) => error = Some(why),
        }
    } else if step > 1 {
        error = Some("Pick the environment to copy and name the new one.".to_string());
    }
    if error.is_some() {
        step = 1;
    }
    page(
        console,
        signed,
        "copy.html.j2",
        StatusCode::OK,
        json!({
            "nav": "projects",
            "project": project,
            "step": step,
            "from": from,
            "to": to,
            "prod_defaults": state.prod_defaults(),
            "suspect": state.get("suspect") == Some("on"),
            "view": view,
            "error": error,
        }),
    )
}

/// `POST /projects/{project}/add-env`: the Add environment form. `start` is `blank`,
/// `copy:ENV` (as-is, `project add-env --copy-from`) or `customise:ENV` (the wizard).
pub async fn add_environment(
    State(console): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let signed = match signed_form(&console, &headers, &fields).await {
        Ok(signed) => signed,
        Err((status, why)) => return html(status, why.into()),
    };
    let env = field(&fields, "env").unwrap_or("").trim().to_string();
    let start = field(&fields, "start").unwrap_or("blank").to_string();
    let back = field(&fields, "_back").unwrap_or("/projects").to_string();
    if let Some(from) = start.strip_prefix("customise:") {
        let state = vec![
            ("from".to_string(), from.to_string()),
            ("to".to_string(), env),
            ("go".to_string(), "2".to_string()),
        ];
        return copy_step(&console, &signed, &name, state).await;
    }
    let mut action_fields = vec![
        ("first".to_string(), name.clone()),
        ("second".to_string(), env.clone()),
        ("_return".to_string(), format!("/projects/{name}/{env}")),
        ("_back".to_string(), back),
    ];
    if let Some(from) = start.strip_prefix("copy:") {
        action_fields.push(("copy-from".to_string(), from.to_string()));
    }
    let Some(action) = actions::find("project-add-env") else {
        return html(
            StatusCode::NOT_FOUND,
            "There is no action to add an environment.".into(),
        );
    };
    run_action(&console, &signed, action, action_fields).await
}

/// The Logs tab: the app's pods, the one shown, and its last lines as `kip app logs` prints
/// them (what a browser without JavaScript reads; with it, the page streams live lines).
async fn logs_tab(
    runner: &Runner,
    project: &str,
    env: &str,
    app: &str,
    wanted: Option<&str>,
) -> Result<Value, String> {
    let from = super::logs::sources(runner, project, env, app).await?;
    let pods: Vec<Value> = from["pods"].as_array().cloned().unwrap_or_default();
    let pod = wanted
        .filter(|w| pods.iter().any(|p| p["name"] == *w))
        .map(str::to_string)
        .or_else(|| {
            pods.first()
                .and_then(|p| p["name"].as_str().map(str::to_string))
        });
    let argv: Vec<String> = [
        "app",
        "logs",
        "--tail",
        "100",
        "--project",
        project,
        "--environment",
        env,
        "--",
        app,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ran = runner.run(argv, builtins::OutputFormat::Table).await;
    Ok(json!({
        "pods": pods,
        "pod": pod,
        "text": ran.error.map(|e| format!("({e})")).unwrap_or(ran.output),
    }))
}

/// Reads `verb` of environment `env` of project `name` (`--project`, `--environment` added,
/// then `args` as positionals).
async fn read_in(
    runner: &Runner,
    verb: &[&str],
    name: &str,
    env: &str,
    args: &[&str],
) -> Result<Value, String> {
    let mut argv: Vec<&str> = verb.to_vec();
    argv.extend(["--project", name, "--environment", env]);
    if !args.is_empty() {
        argv.push("--");
        argv.extend(args);
    }
    read(runner, &argv).await
}

/// `GET /projects/{project}/{env}/services/{service}`: connection details (the password masked
/// unless `reveal=1`), bind and unbind, delete with the data flag.
pub async fn service(
    State(console): Shared,
    headers: HeaderMap,
    Path((name, env, service)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/projects/{name}/{env}/services/{service}");
    let Some(signed) = signed_in(&console, &headers).await else {
        return to_login(&path);
    };
    let reveal = field(&query(&raw), "reveal") == Some("1");
    let info_verb: &[&str] = if reveal {
        &["service", "info", "--show-password"]
    } else {
        &["service", "info"]
    };
    let named = [service.as_str()];
    let (info, apps, project) = tokio::join!(
        read_in(&signed.runner, info_verb, &name, &env, &named),
        read_in(&signed.runner, &["app", "list"], &name, &env, &[]),
        find_project(&signed.runner, &name)
    );
    let info = match info {
        Ok(info) => info,
        Err(why) => return trouble(&console, &signed, StatusCode::NOT_FOUND, &why),
    };
    page(
        &console,
        &signed,
        "service.html.j2",
        StatusCode::OK,
        json!({
            "nav": "projects",
            "project": project.ok().flatten(),
            "env": env,
            "service": info,
            "revealed": reveal,
            "apps": apps.unwrap_or(Value::Array(Vec::new())),
            "path": path,
        }),
    )
}

/// `GET /projects/{project}/{env}/routes`: the route groups of an environment, their paths
/// and apps; adding a path (`app update --route GROUP/PATH`) and removing one (`--own-host`).
pub async fn routes(
    State(console): Shared,
    headers: HeaderMap,
    Path((name, env)): Path<(String, String)>,
) -> Response {
    let path = format!("/projects/{name}/{env}/routes");
    let Some(signed) = signed_in(&console, &headers).await else {
        return to_login(&path);
    };
    let (routes, apps, project) = tokio::join!(
        read_in(&signed.runner, &["route", "list"], &name, &env, &[]),
        read_in(&signed.runner, &["app", "list"], &name, &env, &[]),
        find_project(&signed.runner, &name)
    );
    let routes = match routes {
        Ok(routes) => routes,
        Err(why) => return trouble(&console, &signed, StatusCode::BAD_GATEWAY, &why),
    };
    // Rows of one group together, as the page shows them.
    let mut groups: Vec<(String, String, Vec<Value>)> = Vec::new();
    for route in list(routes) {
        let group = route["group"].as_str().unwrap_or("").to_string();
        let host = route["host"].as_str().unwrap_or("").to_string();
        match groups
            .iter_mut()
            .find(|(g, h, _)| *g == group && *h == host)
        {
            Some((_, _, rows)) => rows.push(route),
            None => groups.push((group, host, vec![route])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(group, host, paths)| json!({ "group": group, "host": host, "paths": paths }))
        .collect();
    page(
        &console,
        &signed,
        "routes.html.j2",
        StatusCode::OK,
        json!({
            "nav": "projects",
            "project": project.ok().flatten(),
            "env": env,
            "groups": groups,
            "apps": apps.unwrap_or(Value::Array(Vec::new())),
            "path": path,
        }),
    )
}

/// `GET /switcher?current=PROJECT/ENV`: the project switcher in the navigation, loaded into
/// each page (without JavaScript the navigation links to Projects instead).
pub async fn switcher(
    State(console): Shared,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(signed) = signed_in(&console, &headers).await else {
        return html(StatusCode::UNAUTHORIZED, String::new());
    };
    let current = field(&query(&raw), "current").unwrap_or("").to_string();
    let projects = read(&signed.runner, &["project", "list"])
        .await
        .unwrap_or(Value::Array(Vec::new()));
    let context = json!({ "projects": projects, "current": current, "csrf": signed.session.csrf });
    match render::page(&console.runner.search, "switcher.html.j2", &context) {
        Ok(body) => html(StatusCode::OK, body),
        Err(why) => html(StatusCode::INTERNAL_SERVER_ERROR, escape(&why)),
    }
}

/// `GET /switch?to=PROJECT/ENV`: where the switcher sends the browser.
pub async fn switch(RawQuery(raw): RawQuery) -> Response {
    let to = field(&query(&raw), "to").unwrap_or("").to_string();
    let name_like =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    match to.split_once('/') {
        Some((project, env)) if name_like(project) && name_like(env) => {
            see_other(&format!("/projects/{project}/{env}"))
        }
        _ => see_other("/projects"),
    }
}
