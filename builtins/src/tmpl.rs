//! `tmpl::…`: minijinja templates found along kip's search path.
//!
//! Templates are rendered with strict undefined behaviour, so a typo in a variable name is an
//! error instead of an empty string. Templates whose name ends in `.yaml.j2` or `.json.j2` keep
//! minijinja's JSON auto-escaping: `name: {{ name }}` renders the value as a JSON scalar, which
//! is also a valid YAML scalar, so a value can never inject a YAML key. Build a string inside
//! the expression (`{{ app ~ "-svc" }}`), not around it. Helper templates holding YAML macros
//! should end in `.yaml.j2` too, so their values are escaped the same way. Block tags on lines
//! of their own (`{% for %}`, `{% if %}`) leave no blank line behind (`trim_blocks`,
//! `lstrip_blocks`).

use crate::errors::Kind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior, Value};
use rhai::{Array, Dynamic, EvalAltResult, Map};

use crate::host::{self, TemplateSource};

/// The name inline templates report in errors.
const INLINE: &str = "<inline>";

/// What the loader saw, kept so errors can say where a template came from and what was missing.
#[derive(Default)]
struct Loaded {
    /// name → (source, origin) of every template the loader found.
    found: HashMap<String, (String, String)>,
    /// The last name the loader could not find.
    missing: Option<String>,
}

/// A minijinja environment wired to a template source, plus what its loader saw.
pub struct Renderer {
    env: Environment<'static>,
    loaded: Arc<Mutex<Loaded>>,
}

impl Renderer {
    /// An environment whose loader, filters and escaping are kip's.
    pub fn new(source: Arc<dyn TemplateSource>) -> Self {
        let loaded = Arc::new(Mutex::new(Loaded::default()));
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Block tags on lines of their own leave no blank lines or stray indentation in YAML;
        // rendered files end with their newline. Default delimiters, so building cannot fail.
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build();
        if let Ok(syntax) = syntax {
            env.set_syntax(syntax);
        }
        env.set_auto_escape_callback(auto_escape);
        let seen = loaded.clone();
        env.set_loader(move |name| {
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            match source.template(name) {
                Some((text, origin)) => {
                    seen.found.insert(name.to_owned(), (text.clone(), origin));
                    Ok(Some(text))
                }
                None => {
                    seen.missing = Some(name.to_owned());
                    Ok(None)
                }
            }
        });
        env.add_filter("dns", dns);
        env.add_filter("env_name", env_name);
        env.add_filter("b64encode", b64encode);
        env.add_filter("b64decode", b64decode);
        env.add_filter("quote", quote);
        env.add_filter("to_json", to_json);
        env.add_filter("to_yaml", to_yaml);
        Renderer { env, loaded }
    }

    /// Renders the template `name` from the source.
    pub fn render(&self, name: &str, ctx: Map) -> Result<String, Box<EvalAltResult>> {
        self.env
            .get_template(name)
            .and_then(|template| template.render(context(ctx)))
            .map_err(|err| self.error(&err, None))
    }

    /// Renders an inline template; it may still include templates from the source.
    pub fn render_str(&self, source: &str, ctx: Map) -> Result<String, Box<EvalAltResult>> {
        self.env
            .render_named_str(INLINE, source, context(ctx))
            .map_err(|err| self.error(&err, Some(source)))
    }

    /// A script error naming the template, its origin and line, and what went wrong.
    fn error(&self, err: &Error, inline: Option<&str>) -> Box<EvalAltResult> {
        // An error inside an include or import arrives wrapped: the innermost error says what
        // went wrong, the wrappers where it was included from.
        let mut chain = vec![err];
        while let Some(inner) = chain
            .last()
            .and_then(|outer| std::error::Error::source(*outer))
            .and_then(|source| source.downcast_ref::<Error>())
        {
            chain.push(inner);
        }
        let root = chain.pop().unwrap_or(err);
        let loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let name = root.name().unwrap_or(INLINE);
        let mut place = format!("`{name}`");
        if let Some((_, origin)) = loaded.found.get(name) {
            place.push_str(&format!(" ({origin})"));
        }
        for outer in std::iter::once(root).chain(chain.iter().rev().copied()) {
            if outer.name().is_some_and(|outer_name| outer_name != name) {
                place.push_str(&format!(
                    ", included from `{}`",
                    outer.name().unwrap_or(INLINE)
                ));
            }
            if let Some(line) = outer.line() {
                place.push_str(&format!(" line {line}"));
            }
        }
        let detail = root.detail().unwrap_or_default();
        match root.kind() {
            ErrorKind::TemplateNotFound => {
                let missing = loaded.missing.clone().unwrap_or_else(|| name.to_owned());
                host::error_with_reason(
                    Kind::Template,
                    "not-found",
                    format!("template `{missing}` not found in the template search path"),
                )
            }
            ErrorKind::SyntaxError => host::error_with_reason(
                Kind::Template,
                "syntax",
                format!("syntax error in {place}: {detail}"),
            ),
            ErrorKind::UndefinedError => {
                let source = match loaded.found.get(name) {
                    Some((text, _)) => Some(text.as_str()),
                    None => inline.filter(|_| name == INLINE),
                };
                let what = source
                    .zip(root.range())
                    .and_then(|(text, range)| text.get(range))
                    .map_or_else(|| "value".to_owned(), |expr| format!("variable `{expr}`"));
                host::error_with_reason(
                    Kind::Template,
                    "undefined",
                    format!("undefined {what} in {place}"),
                )
            }
            kind => host::error(Kind::Template, format!("{kind} in {place}: {detail}")),
        }
    }
}

/// The script's map as template variables (rhai's map keys are not serde types; `Dynamic` is).
fn context(ctx: Map) -> Value {
    Value::from(Serde(Dynamic::from_map(ctx)))
}

/// JSON escaping for data templates, so values render as scalars and never as YAML structure.
fn auto_escape(name: &str) -> AutoEscape {
    let data = [".yaml.j2", ".yml.j2", ".json.j2", ".yaml", ".yml", ".json"];
    if data.iter().any(|suffix| name.ends_with(suffix)) {
        AutoEscape::Json
    } else {
        AutoEscape::None
    }
}

/// A DNS-1123 label: lowercase alphanumerics and `-`, no `-` at either end, at most 63 bytes.
pub fn dns(value: &str) -> String {
    let mapped: String = value
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c if c.is_ascii_alphanumeric() => c,
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    // Every char is ASCII by now, so slicing by byte count is safe.
    trimmed[..trimmed.len().min(63)]
        .trim_end_matches('-')
        .to_owned()
}

/// An environment variable name: `domain-service` → `DOMAIN_SERVICE`.
pub fn env_name(value: &str) -> String {
    value
        .chars()
        .map(|c| match c.to_ascii_uppercase() {
            c if c.is_ascii_alphanumeric() => c,
            _ => '_',
        })
        .collect()
}

fn b64encode(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

fn b64decode(value: &str) -> Result<String, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|err| Error::new(ErrorKind::InvalidOperation, format!("b64decode: {err}")))?;
    String::from_utf8(bytes).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "b64decode: the decoded bytes are not UTF-8 text",
        )
    })
}

/// A double-quoted string, valid in JSON and YAML. Marked safe: escaping it again would
/// double-quote it.
fn quote(value: &Value) -> Result<Value, Error> {
    let text = match value.as_str() {
        Some(text) => text.to_owned(),
        None => value.to_string(),
    };
    let quoted = serde_json::to_string(&text).map_err(serialize_error)?;
    Ok(Value::from_safe_string(quoted))
}

fn to_json(value: &Value) -> Result<Value, Error> {
    let json = serde_json::to_string(value).map_err(serialize_error)?;
    Ok(Value::from_safe_string(json))
}

/// Block YAML without the trailing newline, so `{{ x | to_yaml | indent(4) }}` composes.
fn to_yaml(value: &Value) -> Result<Value, Error> {
    let yaml = serde_saphyr::to_string(value).map_err(serialize_error)?;
    Ok(Value::from_safe_string(yaml.trim_end().to_owned()))
}

fn serialize_error(err: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::BadSerialization, err.to_string())
}

/// Parses rendered multi-document YAML into maps, skipping empty documents.
pub fn parse_objects(name: &str, yaml: &str) -> Result<Array, Box<EvalAltResult>> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).map_err(|err| {
        host::error_with_reason(
            Kind::Template,
            "yaml",
            format!("template `{name}` rendered invalid YAML: {err}"),
        )
    })?;
    let mut objects = Array::new();
    for (index, doc) in docs.into_iter().enumerate() {
        match doc {
            serde_json::Value::Null => {}
            serde_json::Value::Object(_) => objects.push(rhai::serde::to_dynamic(doc)?),
            _ => {
                return Err(host::error_with_reason(
                    Kind::Template,
                    "yaml",
                    format!(
                        "document {} rendered by `{name}` is not a mapping",
                        index + 1
                    ),
                ));
            }
        }
    }
    Ok(objects)
}

#[rhai::plugin::export_module]
pub mod tmpl_module {
    use super::*;
    use rhai::plugin::*;

    /// Renders the template `name` from the template search path with the variables in `ctx`.
    ///
    /// Undefined variables are errors. In `.yaml.j2`/`.json.j2` templates every `{{ value }}`
    /// renders as a JSON scalar, so values cannot inject YAML keys. Filters: `dns`, `env_name`,
    /// `b64encode`, `b64decode`, `quote`, `to_json`, `to_yaml`, plus minijinja's own.
    ///
    /// Raises `template` with `reason` `not-found`, `syntax` (with template and line),
    /// `undefined` (naming the variable), or none for other render errors.
    ///
    /// `let yaml = tmpl::render("app/deployment.yaml.j2", ctx);`
    #[rhai_fn(return_raw)]
    pub fn render(
        call: NativeCallContext,
        name: &str,
        ctx: Map,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            let host = host::host(&call)?;
            Renderer::new(host.templates.clone()).render(name, ctx)
        })
    }

    /// Renders the template `name` like `tmpl::render`, then parses the output as multi-document
    /// YAML and returns its non-empty documents as an array of maps.
    ///
    /// Raises what `tmpl::render` raises, and `template` with `reason` `yaml` when the output
    /// is not YAML or a document is not a mapping.
    ///
    /// `for obj in tmpl::render_objects("app/deployment.yaml.j2", ctx) { k8s::apply(obj); }`
    #[rhai_fn(return_raw)]
    pub fn render_objects(
        call: NativeCallContext,
        name: &str,
        ctx: Map,
    ) -> Result<Array, Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            let host = host::host(&call)?;
            let yaml = Renderer::new(host.templates.clone()).render(name, ctx)?;
            parse_objects(name, &yaml)
        })
    }

    /// Renders the inline template `source` with the variables in `ctx`; no auto-escaping.
    /// It may `{% include %}` templates from the search path.
    ///
    /// Raises `template` (`reason` `syntax` or `undefined`) like `tmpl::render`.
    ///
    /// `tmpl::render_string("Live at https://{{ host }}", #{ host: "api.example.com" })`
    #[rhai_fn(return_raw)]
    pub fn render_string(
        call: NativeCallContext,
        source: &str,
        ctx: Map,
    ) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(call.call_position(), || {
            let host = host::host(&call)?;
            Renderer::new(host.templates.clone()).render_str(source, ctx)
        })
    }

    /// The DNS-1123 label form of `value`, as the `dns` template filter makes it: lowercase,
    /// other characters turned into `-`, trimmed, at most 63 characters.
    ///
    /// `tmpl::dns("My_App") == "my-app"`
    pub fn dns(value: &str) -> String {
        super::dns(value)
    }

    /// The environment-variable form of `value`, as the `env_name` template filter makes it.
    ///
    /// `tmpl::env_name("domain-service") == "DOMAIN_SERVICE"`
    pub fn env_name(value: &str) -> String {
        super::env_name(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert_eq!(dns("My_App.v2"), "my-app-v2");
        assert_eq!(dns("--x--"), "x");
        assert_eq!(dns(&"a".repeat(80)).len(), 63);
        assert_eq!(dns(&format!("{}-b", "a".repeat(62))), "a".repeat(62));
        assert_eq!(dns("ünï"), "n");
    }

    #[test]
    fn env_names() {
        assert_eq!(env_name("domain-service"), "DOMAIN_SERVICE");
        assert_eq!(env_name("db.url"), "DB_URL");
    }

    #[test]
    fn data_templates_escape_as_json() {
        assert!(matches!(
            auto_escape("app/deployment.yaml.j2"),
            AutoEscape::Json
        ));
        assert!(matches!(auto_escape("x.json.j2"), AutoEscape::Json));
        assert!(matches!(auto_escape("notes.txt.j2"), AutoEscape::None));
    }
}
