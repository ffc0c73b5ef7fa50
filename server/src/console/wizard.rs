//! The copy-environment wizard: five steps (source & target, routes, env vars, resources,
//! review) over the plan `kip project copy-env --plan` returns. Nothing is written until the
//! review's Create, which runs `project copy-env` with the overrides as its flags. The steps
//! carry their state in the form; the plan always comes from the script, so what the wizard
//! shows is what the copy will do.

use serde_json::{Map, Value, json};

/// The wizard's state, from its form: `from`, `to`, `route.APP`, `env.APP.KEY`,
/// `keep.APP.KEY`, `replicas.APP`, `memory.APP`, `cpu.APP`, `prod_defaults`, `suspect`.
pub struct State<'a> {
    pub fields: &'a [(String, String)],
}

impl State<'_> {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn on(&self, name: &str) -> bool {
        matches!(self.get(name), Some("on" | "1" | "true"))
    }

    pub fn from(&self) -> &str {
        self.get("from").unwrap_or("").trim()
    }

    pub fn to(&self) -> &str {
        self.get("to").unwrap_or("").trim()
    }

    /// "Apply prod defaults" was pressed now or before.
    pub fn prod_defaults(&self) -> bool {
        self.on("prod_defaults") || self.get("go_prod").is_some()
    }

    /// The step to show: the button pressed (`go`; "Apply prod defaults" stays on step 4),
    /// else `step`, within 1–5.
    pub fn step(&self) -> u8 {
        if self.get("go_prod").is_some() {
            return 4;
        }
        self.get("go")
            .or_else(|| self.get("step"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(1)
            .clamp(1, 5)
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What the pages show of `plan` with the user's edits over it, and the flags the copy will
/// run with. Secret values in the plan are left out: the wizard shows secrets by name only.
pub fn view(plan: &Value, state: &State) -> Value {
    let mut apps = Vec::new();
    let mut routes = Vec::new();
    let mut sets = Vec::new();
    let mut keeps = Vec::new();
    let mut overridden = 0;
    // "Apply prod defaults" starts the sizes again from the plan it changed.
    let sizes_reset = state.get("go_prod").is_some();
    for app in plan["apps"].as_array().into_iter().flatten() {
        let name = text(&app["name"]);
        if app["exists"] == true {
            continue;
        }
        let mut changed = false;
        let routed = app["routed"] == true;
        let plan_host = text(&app["route"]["host"]);
        let host = state
            .get(&format!("route.{name}"))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .unwrap_or(&plan_host)
            .to_string();
        if routed && host != plan_host {
            routes.push(format!("{name}={host}"));
            changed = true;
        }
        let mut env = Vec::new();
        for var in app["env"].as_array().into_iter().flatten() {
            let key = text(&var["name"]);
            let marks: Vec<String> = var["marks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let auto = marks.iter().any(|m| m == "auto-updated");
            let plan_value = text(&var["value"]);
            let keep = auto && state.on(&format!("keep.{name}.{key}"));
            let value = state
                .get(&format!("env.{name}.{key}"))
                .map(str::to_string)
                .unwrap_or_else(|| plan_value.clone());
            if keep {
                keeps.push(format!("{name}.env.{key}"));
                changed = true;
            } else if value != plan_value {
                sets.push(format!("{name}.env.{key}={value}"));
                changed = true;
            }
            env.push(json!({
                "name": key,
                "value": value,
                "plan_value": plan_value,
                "was": text(&var["was"]),
                "auto_updated": auto,
                "suspect": marks.iter().any(|m| m == "per-environment?"),
                "keep": keep,
                "changed": keep || value != plan_value,
            }));
        }
        let size = &app["size"];
        let mut resource = |field: &str, plan_value: String| -> String {
            let given = if sizes_reset {
                None
            } else {
                state
                    .get(&format!("{field}.{name}"))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            };
            match given {
                Some(value) if value != plan_value => {
                    sets.push(format!("{name}.{field}={value}"));
                    changed = true;
                    value.to_string()
                }
                _ => plan_value,
            }
        };
        let replicas = resource("replicas", text(&size["replicas"]));
        let memory = resource("memory", text(&size["resources"]["memory"]));
        let cpu = resource("cpu", text(&size["resources"]["cpu"]));
        if changed {
            overridden += 1;
        }
        apps.push(json!({
            "name": name,
            "image": text(&app["image"]),
            "routed": routed,
            "host": host,
            "plan_host": plan_host,
            "env": env,
            "replicas": replicas,
            "memory": memory,
            "cpu": cpu,
            "autoscale": size["autoscale"],
            "overridden": changed,
        }));
    }
    let secrets: Vec<Value> = plan["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| json!({ "name": s["name"], "app": s["app"], "keys": s["keys"], "exists": s["exists"] }))
        .collect();
    let mut flags = Map::new();
    flags.insert("route".into(), json!(routes));
    flags.insert("set".into(), json!(sets));
    flags.insert("keep".into(), json!(keeps));
    json!({
        "apps": apps,
        "services": plan["services"],
        "secrets": secrets,
        "bindings": plan["bindings"],
        "warnings": plan["warnings"],
        "existing": plan["apps"].as_array().into_iter().flatten().filter(|a| a["exists"] == true).map(|a| a["name"].clone()).collect::<Vec<_>>(),
        "new_environment": plan["new_environment"],
        "flags": Value::Object(flags),
        "overridden": overridden,
        "target_ns": plan["target_ns"],
        "source_ns": plan["source_ns"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Value {
        json!({
            "apps": [{
                "name": "api", "image": "api:1", "exists": false, "routed": true,
                "route": { "host": "api-prod.example.com", "path": "/" },
                "env": [
                    { "name": "DB_URL", "value": "db.shop-prod.svc", "was": "db.shop-test.svc", "marks": ["auto-updated", "per-environment?"] },
                    { "name": "MODE", "value": "fast", "was": "fast", "marks": [] },
                ],
                "size": { "replicas": 1, "resources": { "memory": "512Mi" } },
            }],
            "secrets": [{ "name": "api-secrets", "app": "api", "keys": ["K"], "data": { "K": "c2VjcmV0" }, "exists": false }],
        })
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn untouched_the_copy_has_no_overrides() {
        let f = fields(&[("from", "test"), ("to", "prod")]);
        let v = view(&plan(), &State { fields: &f });
        assert_eq!(v["overridden"], 0);
        assert_eq!(v["flags"], json!({ "route": [], "set": [], "keep": [] }));
        assert!(
            !v.to_string().contains("c2VjcmV0"),
            "secret values never reach a page"
        );
    }

    #[test]
    fn edits_become_the_copy_flags() {
        let f = fields(&[
            ("route.api", "api.example.eu"),
            ("env.api.MODE", "safe"),
            ("keep.api.DB_URL", "on"),
            ("replicas.api", "3"),
            ("memory.api", "512Mi"),
        ]);
        let v = view(&plan(), &State { fields: &f });
        assert_eq!(v["overridden"], 1);
        assert_eq!(
            v["flags"],
            json!({ "route": ["api=api.example.eu"], "set": ["api.env.MODE=safe", "api.replicas=3"], "keep": ["api.env.DB_URL"] })
        );
    }
}
