//! Pages are minijinja templates under `templates/console/`, found along kip's search path like
//! every other template: a user's `.kip/templates/console/app.html.j2` replaces the stdlib's.

use kip_core::SearchPath;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// Renders the console page `name` (`app.html.j2`) with `context`.
pub fn page(
    search: &SearchPath,
    name: &str,
    context: &serde_json::Value,
) -> Result<String, String> {
    let mut env = Environment::new();
    let search = search.clone();
    env.set_loader(move |name| Ok(search.template(&format!("console/{name}")).map(|(s, _)| s)));
    // Every value is escaped for HTML, whatever the template's name ends with.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // `app.status.build.phase` of an app never built is empty, not an error.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    let template = env
        .get_template(name)
        .map_err(|e| format!("console page {name}: {e:#}"))?;
    template
        .render(minijinja::Value::from(minijinja::value::Serde(context)))
        .map_err(|e| format!("console page {name}: {e:#}"))
}
