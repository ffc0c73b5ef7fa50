use builtins::UiSettings;
use rhai::{Array, Map};

use crate::Kit;

const DEPLOYMENT: &str = r#"{% import "lib/labels.yaml.j2" as lib %}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ name | dns }}
  labels:
    {{ lib.labels(name, project) | indent(4) }}
spec:
  replicas: {{ replicas }}
  template:
    spec:
      containers:
        - name: app
          image: {{ image }}
          env:
          {% for key, value in env | items %}
            - name: {{ key | env_name }}
              value: {{ value }}
          {% endfor %}
"#;

const LABELS: &str = r#"{% macro labels(name, project) -%}
app.kubernetes.io/name: {{ name | dns }}
app.kubernetes.io/managed-by: kipper
kipper.run/project: {{ project }}
{%- endmacro %}"#;

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: {{ name | dns }}
spec:
  ports:
    - port: {{ port }}
"#;

const ALL: &str = r#"{% include "app/deployment.yaml.j2" %}
---
{% include "app/service.yaml.j2" %}
---
# nothing but a comment: an empty document
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ (name ~ "-config") | dns }}
data:
  note: {{ note }}
  auth: {{ "kip:secret" | b64encode }}
---
"#;

fn kit() -> Kit {
    Kit::with(
        &[
            ("app/deployment.yaml.j2", DEPLOYMENT),
            ("lib/labels.yaml.j2", LABELS),
            ("app/service.yaml.j2", SERVICE),
            ("app/all.yaml.j2", ALL),
            ("broken.yaml.j2", "a: {{ name\nb: 2\n"),
            ("uses-missing.yaml.j2", "{% include \"nope.yaml.j2\" %}"),
            (
                "typo.yaml.j2",
                "kind: Service\nmetadata:\n  name: {{ nmae }}\n",
            ),
            ("plain.txt.j2", "Live at https://{{ host }}"),
        ],
        UiSettings::default(),
    )
}

const CTX: &str = r#"#{
    name: "My_API",
    project: "shop",
    image: "ghcr.io/acme/api:latest",
    replicas: 2,
    port: 3000,
    note: "x\nevil: true",
    env: #{ "log-level": "info", "db.url": "postgres://db:5432/app" },
}"#;

#[test]
fn renders_a_deployment_with_imports_and_filters() {
    let yaml: String = kit().eval(&format!(r#"tmpl::render("app/deployment.yaml.j2", {CTX})"#));
    insta::assert_snapshot!("deployment", yaml);
}

#[test]
fn renders_objects_from_includes_skipping_empty_documents() {
    let objects: Array = kit().eval(&format!(
        r#"tmpl::render_objects("app/all.yaml.j2", {CTX})"#
    ));
    let summary: Vec<String> = objects
        .iter()
        .map(|object| {
            let object = object.clone().cast::<Map>();
            let metadata = object["metadata"].clone().cast::<Map>();
            format!(
                "{} {} {}",
                object["apiVersion"], object["kind"], metadata["name"]
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "apps/v1 Deployment my-api",
            "v1 Service my-api",
            "v1 ConfigMap my-api-config"
        ]
    );
    insta::assert_snapshot!(
        "all-objects",
        serde_json::to_string_pretty(&objects).unwrap()
    );
}

#[test]
fn values_cannot_inject_yaml_keys() {
    let kit = kit();
    let note: String = kit.eval(&format!(
        r#"let objs = tmpl::render_objects("app/all.yaml.j2", {CTX}); objs[2].data.note"#
    ));
    assert_eq!(note, "x\nevil: true");
    let keys: Array = kit.eval(&format!(
        r#"let objs = tmpl::render_objects("app/all.yaml.j2", {CTX}); objs[2].data.keys()"#
    ));
    assert_eq!(keys.len(), 2, "{keys:?}");
    let yaml: String = kit.eval(&format!(r#"tmpl::render("app/all.yaml.j2", {CTX})"#));
    assert!(yaml.contains(r#"note: "x\nevil: true""#), "{yaml}");
}

#[test]
fn inline_templates_do_not_escape() {
    let kit = kit();
    let text: String = kit.eval(r#"tmpl::render_string("hi {{ name }}", #{name: "x"})"#);
    assert_eq!(text, "hi x");
    let text: String = kit.eval(r#"tmpl::render("plain.txt.j2", #{host: "a.b"})"#);
    assert_eq!(text, "Live at https://a.b");
    let text: String = kit.eval(
        r#"tmpl::render_string("{% include 'app/service.yaml.j2' %}", #{name: "db", port: 5432})"#,
    );
    assert!(text.contains("name: \"db\"\n"), "{text}");
}

#[test]
fn filters() {
    let kit = kit();
    let render = |source: &str| -> String {
        kit.eval(&format!(
            r#"tmpl::render_string({source:?}, #{{ s: "Hello World", m: #{{ b: [1, 2], a: "x" }} }})"#
        ))
    };
    assert_eq!(render("{{ 'My_App.v2' | dns }}"), "my-app-v2");
    assert_eq!(
        render("{{ 'domain-service' | env_name }}"),
        "DOMAIN_SERVICE"
    );
    assert_eq!(render("{{ s | b64encode }}"), "SGVsbG8gV29ybGQ=");
    assert_eq!(
        render("{{ 'SGVsbG8gV29ybGQ=' | b64decode }}"),
        "Hello World"
    );
    assert_eq!(render(r#"{{ 'say "hi"' | quote }}"#), r#""say \"hi\"""#);
    assert_eq!(render("{{ 3 | quote }}"), r#""3""#);
    assert_eq!(render("{{ m | to_json }}"), r#"{"a":"x","b":[1,2]}"#);
    assert_eq!(render("{{ m | to_yaml }}"), "a: x\nb:\n- 1\n- 2");
    assert_eq!(
        kit.eval::<String>(r#"tmpl::dns("--Web Site--")"#),
        "web-site"
    );
    assert_eq!(kit.eval::<String>(r#"tmpl::env_name("a.b-c")"#), "A_B_C");
}

#[test]
fn quote_is_not_escaped_twice_in_yaml_templates() {
    let kit = Kit::with(
        &[("q.yaml.j2", "v: {{ s | quote }}")],
        UiSettings::default(),
    );
    let text: String = kit.eval(r#"tmpl::render("q.yaml.j2", #{ s: "a" })"#);
    assert_eq!(text, r#"v: "a""#);
}

#[test]
fn bad_base64_is_an_error() {
    let (kind, message) = kit().fail(r#"tmpl::render_string("{{ '%%%' | b64decode }}", #{})"#);
    assert_eq!(kind, "template");
    assert!(message.contains("b64decode"), "{message}");
}

#[test]
fn missing_templates_are_named() {
    let kit = kit();
    let (kind, message) = kit.fail(r#"tmpl::render("app/nope.yaml.j2", #{})"#);
    assert_eq!(kind, "template");
    assert_eq!(
        kit.fail_reason(r#"tmpl::render("app/nope.yaml.j2", #{})"#),
        "template/not-found"
    );
    assert_eq!(
        message,
        "template `app/nope.yaml.j2` not found in the template search path"
    );
    let (kind, message) = kit.fail(r#"tmpl::render("uses-missing.yaml.j2", #{})"#);
    assert_eq!(kind, "template");
    assert_eq!(
        kit.fail_reason(r#"tmpl::render("uses-missing.yaml.j2", #{})"#),
        "template/not-found"
    );
    assert!(message.contains("`nope.yaml.j2`"), "{message}");
}

#[test]
fn syntax_errors_name_template_and_line() {
    let (kind, message) = kit().fail(r#"tmpl::render("broken.yaml.j2", #{name: "x"})"#);
    assert_eq!(kind, "template");
    assert_eq!(
        kit().fail_reason(r#"tmpl::render("broken.yaml.j2", #{name: "x"})"#),
        "template/syntax"
    );
    assert!(
        message.starts_with("syntax error in `broken.yaml.j2` (memory:broken.yaml.j2) line "),
        "{message}"
    );
}

#[test]
fn undefined_variables_are_named() {
    let (kind, message) = kit().fail(r#"tmpl::render("typo.yaml.j2", #{name: "x"})"#);
    assert_eq!(kind, "template");
    assert_eq!(
        kit().fail_reason(r#"tmpl::render("typo.yaml.j2", #{name: "x"})"#),
        "template/undefined"
    );
    assert_eq!(
        message,
        "undefined variable `nmae` in `typo.yaml.j2` (memory:typo.yaml.j2) line 3"
    );
    let (kind, message) = kit().fail(r#"tmpl::render_string("a {{ b.c }}", #{})"#);
    assert_eq!(kind, "template");
    assert_eq!(
        kit().fail_reason(r#"tmpl::render_string("a {{ b.c }}", #{})"#),
        "template/undefined"
    );
    assert!(message.contains("`<inline>` line 1"), "{message}");
}

#[test]
fn documents_must_be_mappings() {
    let kit = Kit::with(&[("list.yaml.j2", "- a\n- b\n")], UiSettings::default());
    let (kind, message) = kit.fail(r#"tmpl::render_objects("list.yaml.j2", #{})"#);
    assert_eq!(kind, "template");
    assert_eq!(
        kit.fail_reason(r#"tmpl::render_objects("list.yaml.j2", #{})"#),
        "template/yaml"
    );
    assert_eq!(
        message,
        "document 1 rendered by `list.yaml.j2` is not a mapping"
    );
    let kit = Kit::with(&[("bad.yaml.j2", "a: [\n")], UiSettings::default());
    let (kind, message) = kit.fail(r#"tmpl::render_objects("bad.yaml.j2", #{})"#);
    assert_eq!(kind, "template");
    assert_eq!(
        kit.fail_reason(r#"tmpl::render_objects("bad.yaml.j2", #{})"#),
        "template/yaml"
    );
    assert!(
        message.starts_with("template `bad.yaml.j2` rendered invalid YAML"),
        "{message}"
    );
}

#[test]
fn errors_inside_includes_name_the_included_template() {
    let kit = Kit::with(
        &[
            ("outer.yaml.j2", "a: 1\n{% include \"inner.yaml.j2\" %}\n"),
            ("inner.yaml.j2", "b: 2\nc: {{ missing }}\n"),
            ("outer-bad.yaml.j2", "{% include \"inner-bad.yaml.j2\" %}"),
            ("inner-bad.yaml.j2", "x: {% if %}\n"),
        ],
        UiSettings::default(),
    );
    let (kind, message) = kit.fail(r#"tmpl::render("outer.yaml.j2", #{})"#);
    assert_eq!(kind, "template");
    assert_eq!(
        kit.fail_reason(r#"tmpl::render("outer.yaml.j2", #{})"#),
        "template/undefined"
    );
    assert_eq!(
        message,
        "undefined variable `missing` in `inner.yaml.j2` (memory:inner.yaml.j2) line 2, \
         included from `outer.yaml.j2` line 2"
    );
    let (kind, message) = kit.fail(r#"tmpl::render("outer-bad.yaml.j2", #{})"#);
    assert_eq!(kind, "template");
    assert_eq!(
        kit.fail_reason(r#"tmpl::render("outer-bad.yaml.j2", #{})"#),
        "template/syntax"
    );
    // minijinja reports template syntax errors unwrapped, without the including template.
    assert_eq!(
        message,
        "syntax error in `inner-bad.yaml.j2` (memory:inner-bad.yaml.j2) line 1: \
         unexpected end of block"
    );
}
