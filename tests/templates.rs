//! Every template under `templates/`, found on disk, rendered through the real `kip` with a
//! fixture context: manifests parse as YAML with apiVersion, kind and metadata.name, and every
//! rendering matches its snapshot. A template with no context here (and no reason it is tested
//! elsewhere) fails the test, so a new template cannot go unsnapshotted.

use crate::common::kip_in;

const APP_CONTEXT: &str = r#"#{
    name: "api", namespace: "shop-test", image: "ghcr.io/acme/api:1.2.3", port: 3000, replicas: 2,
    project: "shop", environment: "test", host: "api-test-203-0-113-10.kipper.run",
    env: [#{ name: "LOG_LEVEL", value: "info" }, #{ name: "QUOTE", value: "a \"b\": c" }],
    labels: #{ "app.kubernetes.io/name": "api", "app.kubernetes.io/managed-by": "kipper",
               "kipper.run/project": "shop", "kipper.run/environment": "test" },
    app_uid: "0b5c3c2e-1111-2222-3333-444455556666",
    bindings: ["db"], env_from: ["api-db-binding"],
    promotion: #{ "kipper.run/promoted-from": "test", "kipper.run/promoted-at": "2026-12-03T17:20:00Z",
                  "kipper.run/promoted-image": "ghcr.io/acme/api:1.2.3" },
    links: [#{ name: "DOMAIN_SERVICE_URL", app: "domain-service",
               url: "http://domain-service.shop-test.svc.cluster.local:8081" }],
    autoscale: (),
    secret: "api-secrets", data: #{ API_KEY: "c2VjcmV0" },
    route: #{ path: "/", group: (), redirects: [] },
    instance_header: true,
    sidecar: #{ image: "registry.example.com/kip-instance-id:0.1.0", port: 13000 },
    source: #{ kind: "image" },
}"#;

/// Build 7 of `api`, from a private repository, with a build argument that tries to break out
/// of its YAML string.
const BUILD_CONTEXT: &str = r#"#{
    name: "api", namespace: "shop-test", app_uid: "0b5c3c2e-1111-2222-3333-444455556666",
    job: "api-build-7",
    labels: #{ "app.kubernetes.io/name": "api", "app.kubernetes.io/managed-by": "kipper",
               "kipper.run/project": "shop", "kipper.run/environment": "test" },
    url: "https://github.com/acme/api.git", branch: "main",
    commit: "0d1a26e67d8f5eaf1f6ba5d8ec3eb5b1d8a0c4f2",
    image: "registry.kipper-system.svc.cluster.local:5000/shop-test/api:0d1a26e",
    cache_repo: "registry.kipper-system.svc.cluster.local:5000/shop-test/api/cache",
    insecure_registry: true, trigger: "webhook", context: "services/api", dockerfile: "Dockerfile",
    build_args: [#{ name: "NODE_ENV", value: "production" }, #{ name: "QUOTE", value: "a\"\n- --evil: b" }],
    memory: "2Gi", cpu: "1",
    credentials: #{ secret: "api-git-credentials", scope: "https://github.com/" },
    git_image: "alpine/git:v2.47.2", kaniko_image: "gcr.io/kaniko-project/executor:v1.23.2",
    deadline_seconds: 1800,
}"#;

/// An app of route group `shop` at /domains-api with two hosts redirecting to it, and the
/// group's certificate, owned by its two apps.
const ROUTED_APP_CONTEXT: &str = r#"#{
    name: "domain-service", namespace: "shop-test", port: 8080,
    host: "shop-test-203-0-113-10.kipper.run",
    route: #{ path: "/domains-api", group: "shop", redirects: ["domains.example.com", "www.domains.example.com"] },
    labels: #{ "app.kubernetes.io/name": "domain-service", "app.kubernetes.io/managed-by": "kipper",
               "kipper.run/project": "shop", "kipper.run/environment": "test" },
    app_uid: "0b5c3c2e-1111-2222-3333-444455556666",
}"#;

/// The certificate of route group `shop`, owned by its two apps.
const CERTIFICATE_CONTEXT: &str = r#"#{
    name: "route-shop", namespace: "shop-test", host: "shop-test-203-0-113-10.kipper.run",
    labels: #{ "app.kubernetes.io/managed-by": "kipper", "kipper.run/route-group": "shop" },
    owners: [#{ name: "webapp", uid: "u-1" }, #{ name: "domain-service", uid: "u-2" }],
}"#;

/// The app's context once `kip app autoscale api --min 2 --max 5 --cpu 70 --memory 80` ran.
const AUTOSCALED_APP_CONTEXT: &str = r#"#{
    name: "api", namespace: "shop-test",
    labels: #{ "app.kubernetes.io/name": "api", "app.kubernetes.io/managed-by": "kipper",
               "kipper.run/project": "shop", "kipper.run/environment": "test" },
    app_uid: "0b5c3c2e-1111-2222-3333-444455556666",
    autoscale: #{ min: 2, max: 5, cpu: 70, memory: 80 },
}"#;

pub(crate) fn render(template: &str, context: &str) -> String {
    eval(
        template,
        &format!("tmpl::render(\"{template}\", {context})"),
    )
}

/// What `kip eval` prints for `script`; `what` names it in failures.
fn eval(what: &str, script: &str) -> String {
    let template = what;
    let home = tempfile::tempdir().expect("home");
    let out = kip_in(home.path()).run(&["eval", script]);
    assert!(
        out.status.success(),
        "{template}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn check_objects(template: &str, text: &str) {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)
        .unwrap_or_else(|e| panic!("{template} is not YAML: {e}\n{text}"));
    let docs: Vec<&serde_json::Value> = docs.iter().filter(|d| !d.is_null()).collect();
    assert!(!docs.is_empty(), "{template} rendered no object");
    for doc in docs {
        for field in ["apiVersion", "kind"] {
            assert!(
                doc[field].as_str().is_some_and(|s| !s.is_empty()),
                "{template}: no {field}"
            );
        }
        assert!(
            doc["metadata"]["name"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{template}: no metadata.name"
        );
    }
}

/// While an autoscaler owns the replica count, the Deployment kip applies leaves it out, so
/// the two never fight over it.
#[test]
fn an_autoscaled_deployment_leaves_its_replicas_to_the_autoscaler() {
    let fixed = render("app/deployment.yaml.j2", APP_CONTEXT);
    let fixed: serde_json::Value = serde_saphyr::from_str(&fixed).expect("YAML");
    assert_eq!(fixed["spec"]["replicas"], 2);
    let context = APP_CONTEXT.replace("autoscale: (),", "autoscale: #{ min: 2, max: 5, cpu: 70 },");
    let scaled = render("app/deployment.yaml.j2", &context);
    let scaled: serde_json::Value = serde_saphyr::from_str(&scaled).expect("YAML");
    assert!(scaled["spec"].get("replicas").is_none(), "{scaled}");
    let hpa = render("app/hpa.yaml.j2", &context);
    let hpa: serde_json::Value = serde_saphyr::from_str(&hpa).expect("YAML");
    assert_eq!(
        hpa["spec"]["metrics"].as_array().unwrap().len(),
        1,
        "cpu only without memory"
    );
}

/// A variable's value is data, whatever it holds: quotes, colons and newlines cannot add a key.
#[test]
fn an_app_built_from_git_runs_nothing_until_its_first_build() {
    let context = APP_CONTEXT
        .replace(r#"image: "ghcr.io/acme/api:1.2.3","#, r#"image: "","#)
        .replace(
            r#"source: #{ kind: "image" },"#,
            r#"source: #{ kind: "git", git: #{ url: "https://github.com/acme/api.git", branch: "main", credentials: true } },"#,
        );
    let app = render("app/app.yaml.j2", &context);
    let app: serde_json::Value = serde_saphyr::from_str(&app).expect("App YAML");
    assert!(app["spec"].get("image").is_none(), "{app}");
    assert_eq!(app["spec"]["source"]["kind"], "git", "{app}");
    assert_eq!(app["spec"]["source"]["git"]["credentials"], true, "{app}");
    let deployment = render("app/deployment.yaml.j2", &context);
    let deployment: serde_json::Value = serde_saphyr::from_str(&deployment).expect("YAML");
    assert_eq!(deployment["spec"]["replicas"], 0, "{deployment}");
}

#[test]
fn a_build_argument_stays_one_argument_and_the_token_stays_in_its_secret() {
    let text = render("app/build-job.yaml.j2", BUILD_CONTEXT);
    let job: serde_json::Value = serde_saphyr::from_str(&text).expect("Job YAML");
    let spec = &job["spec"]["template"]["spec"];
    let args: Vec<&str> = spec["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&"--build-arg=QUOTE=a\"\n- --evil: b"),
        "{args:?}"
    );
    assert!(!args.iter().any(|a| a.starts_with("--evil")), "{args:?}");
    assert!(
        args.contains(&"--context=dir:///workspace/src/services/api"),
        "{args:?}"
    );
    let steps = spec["initContainers"].as_array().expect("init containers");
    let names: Vec<&str> = steps.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["clone", "fetch", "checkout"]);
    for step in steps {
        let env = step["env"].as_array().expect("env");
        let header = env
            .iter()
            .find(|e| e["name"] == "GIT_CONFIG_VALUE_0")
            .expect("the header");
        assert_eq!(
            header["valueFrom"]["secretKeyRef"]["name"], "api-git-credentials",
            "{header}"
        );
        // The clone takes the branch; the next steps the exact commit the image is tagged with.
        let wanted = if step["name"] == "clone" {
            "\"main\""
        } else {
            "0d1a26e67d8f5eaf"
        };
        assert!(step["args"].to_string().contains(wanted), "{step}");
        assert!(
            !step["args"].to_string().contains('@'),
            "no credentials in the URL: {step}"
        );
    }
}

#[test]
fn a_variable_cannot_inject_a_config_map_key() {
    let context = APP_CONTEXT.replace(r#"value: "info""#, r#"value: "x\nevil: true""#);
    let text = render("app/env.yaml.j2", &context);
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
    assert_eq!(doc["data"]["LOG_LEVEL"], "x\nevil: true");
    assert_eq!(doc["data"]["QUOTE"], "a \"b\": c");
    assert!(doc["data"].get("evil").is_none() && doc.get("evil").is_none());
    assert_eq!(
        doc["data"]["DOMAIN_SERVICE_URL"],
        "http://domain-service.shop-test.svc.cluster.local:8081"
    );
}

#[test]
fn a_value_cannot_inject_a_yaml_key() {
    let context = APP_CONTEXT.replace("ghcr.io/acme/api:1.2.3", "x\\nevil: true");
    let text = render("app/deployment.yaml.j2", &context);
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    let container = &docs[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "x\nevil: true");
    assert!(container.get("evil").is_none() && docs[0].get("evil").is_none());
}

/// Every service type's objects (credentials Secret, headless and client Service,
/// StatefulSet), rendered from a Service resource through the stdlib's own function.
#[test]
fn service_templates_render_valid_manifests_for_every_type() {
    let types = [
        "postgres",
        "mysql",
        "mongodb",
        "redis",
        "rabbitmq",
        "opensearch",
        "minio",
    ];
    for kind in types {
        let script = format!(
            r#"import "lib/services" as s;
            let t = s::types()["{kind}"];
            let service = #{{
                metadata: #{{ name: "db", namespace: "shop-test", uid: "u-1",
                    labels: #{{ "app.kubernetes.io/name": "db", "app.kubernetes.io/managed-by": "kipper" }} }},
                spec: #{{ type: "{kind}", version: t.version, storage: t.storage, port: t.port }},
            }};
            s::objects(service, "pw-123").map(|o| tmpl::render_string("{{{{ o | to_yaml }}}}", #{{ o: o }})).reduce(|a, b| a + "\n---\n" + b)"#
        );
        let text = eval(kind, &script);
        check_objects(kind, &text);
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML");
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            ["Secret", "Service", "Service", "StatefulSet"],
            "{kind}"
        );
        let set = &docs[3];
        let container = &set["spec"]["template"]["spec"]["containers"][0];
        assert!(container["readinessProbe"].is_object(), "{kind}: no probe");
        assert!(
            container["resources"]["requests"]["memory"].is_string(),
            "{kind}"
        );
        let password_refs = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["valueFrom"]["secretKeyRef"]["key"] == "password")
            .count();
        assert!(
            password_refs >= 1,
            "{kind}: the password comes from the Secret"
        );
        assert!(
            !text.contains("pw-123"),
            "{kind}: the password only base64 in the Secret"
        );
        insta::assert_snapshot!(format!("service__{kind}"), text);
    }
}

pub(crate) const INSTALL_CONTEXT: &str = r#"#{
    host: "203.0.113.10", cluster_id: "203-0-113-10", domain: "kipper.run",
    versions: #{ k3s: "v1.33.5+k3s1", cert_manager: "v1.18.2", longhorn: "1.9.1", zot: "v2.1.7" },
    namespace: "kipper-system", acme_email: "ops@example.com", registry_storage: "20Gi",
    kubeconfig_path: "'/etc/rancher/k3s/k3s.yaml'", k3s_version: "v1.33.5+k3s1",
    registry_image: "ghcr.io/project-zot/zot:v2.1.7",
    kip_server_image: "registry.example.com/kip-server:0.1.0",
    instance_id_image: "registry.example.com/kip-instance-id:0.1.0",
    server_host: "console-203-0-113-10.kipper.run",
    build_registry: "registry.kipper-system.svc.cluster.local:5000",
}"#;

#[test]
fn the_cluster_issuer_has_no_empty_email() {
    // Without an e-mail the ClusterIssuer has no empty `email` key.
    let text = render(
        "install/cluster-issuer.yaml.j2",
        &INSTALL_CONTEXT.replace("\"ops@example.com\"", "\"\""),
    );
    check_objects("install/cluster-issuer.yaml.j2", &text);
    assert!(!text.contains("email"), "{text}");
}

const PROJECT_CONTEXT: &str =
    r#"#{ name: "shop", display_name: "The \"Shop\"", environments: ["test", "prod"] }"#;
const NAMESPACE_CONTEXT: &str =
    r#"#{ namespace: "shop-test", project: "shop", environment: "test", project_uid: "u-1" }"#;
const BINDING_CONTEXT: &str = r#"#{
    secret: "api-db-binding", namespace: "shop-test", app: "api", service: "db",
    app_uid: "0b5c3c2e-1111-2222-3333-444455556666",
    variables: #{ DB_HOST: "db.shop-test.svc", DB_PORT: 5432, DB_PASSWORD: "s3cret: \"quoted\"" },
}"#;
const WEBHOOK_CONTEXT: &str = r#"#{
    name: "api", secret: "api-webhook", namespace: "shop-test", url: "https://kip-203-0-113-10.kipper.run",
    app_uid: "0b5c3c2e-1111-2222-3333-444455556666", token_base64: "czNjcmV0",
    labels: #{ "app.kubernetes.io/name": "api", "app.kubernetes.io/managed-by": "kipper" },
}"#;
const SERVICE_CONTEXT: &str = r#"#{
    name: "db", namespace: "shop-test", type: "postgres", version: "16", storage: "5Gi",
    port: 5432, project: "shop", environment: "test",
    requests: #{ cpu: "100m", memory: "256Mi" }, limits: #{ memory: "1Gi" },
    labels: #{ "app.kubernetes.io/name": "db", "app.kubernetes.io/managed-by": "kipper" },
}"#;

/// How a template is tested: rendered here with a context, or by another test (each arm says
/// which).
enum Coverage {
    Context(&'static str),
    Elsewhere,
}

fn coverage(template: &str) -> Option<Coverage> {
    use Coverage::{Context, Elsewhere};
    let (folder, file) = template.split_once('/')?;
    Some(match (folder, file) {
        // Macros only: in the snapshots of the templates that import them.
        ("app" | "service", "owner.yaml.j2") => Elsewhere,
        ("app", "webhook-secret.yaml.j2") => Context(WEBHOOK_CONTEXT),
        ("app", "hpa.yaml.j2") => Context(AUTOSCALED_APP_CONTEXT),
        ("app", "strip-prefix.yaml.j2" | "redirect.yaml.j2" | "redirect-ingress.yaml.j2") => {
            Context(ROUTED_APP_CONTEXT)
        }
        ("app", "route-certificate.yaml.j2") => Context(CERTIFICATE_CONTEXT),
        ("app", "build-job.yaml.j2") => Context(BUILD_CONTEXT),
        ("app", _) => Context(APP_CONTEXT),
        ("crds", _) => Context("#{}"),
        ("project", "project.yaml.j2") => Context(PROJECT_CONTEXT),
        ("project", "namespace.yaml.j2") => Context(NAMESPACE_CONTEXT),
        ("install", _) => Context(INSTALL_CONTEXT),
        ("service", "binding.yaml.j2") => Context(BINDING_CONTEXT),
        ("service", "service.yaml.j2") => Context(SERVICE_CONTEXT),
        // Rendered for every service type by
        // service_templates_render_valid_manifests_for_every_type.
        ("service", "credentials.yaml.j2" | "network.yaml.j2" | "statefulset.yaml.j2") => Elsewhere,
        // The console's pages: rendered as HTML by the console's own renderer and snapshotted in
        // `console::every_console_page_renders_and_matches_its_snapshot`.
        ("console", _) => Elsewhere,
        _ => return None,
    })
}

/// Every `*.j2` under `templates/`, as `folder/name.j2`.
fn templates_on_disk() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut found = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("templates/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "j2") {
                let name = path.strip_prefix(&root).expect("under templates/");
                found.push(name.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_template_renders_and_matches_its_snapshot() {
    let templates = templates_on_disk();
    assert!(templates.len() >= 20, "found {templates:?}");
    let mut uncovered = Vec::new();
    for template in &templates {
        match coverage(template) {
            None => uncovered.push(template.clone()),
            Some(Coverage::Elsewhere) => {}
            Some(Coverage::Context(context)) => {
                let text = render(template, context);
                // Shell scripts are snapshotted as they are sent; manifests are checked too.
                // registries.yaml is k3s's own configuration, not a manifest.
                if template.ends_with(".yaml.j2") && template != "install/registries.yaml.j2" {
                    check_objects(template, &text);
                }
                insta::assert_snapshot!(template.replace('/', "__"), text);
            }
        }
    }
    assert!(
        uncovered.is_empty(),
        "templates with no snapshot test: {uncovered:?} (give each a context in `coverage`)"
    );
}
