//! The builtins as scripts see them: an engine with `register_all`, a host with a temporary kip
//! home and in-memory templates, and Rhai snippets that call `tmpl::…`, `ui::…`, `crypto::…`,
//! `config::…`, `gateway::…`.

mod config;
mod crypto;
mod docs;
mod gateway;
mod tmpl;
mod ui;

use std::collections::HashMap;
use std::sync::Arc;

use builtins::{ClusterChoice, Host, TemplateSource, UiSettings};
use rhai::{Dynamic, Engine, EvalAltResult, Map};

/// Templates from a map; the origin says they came from memory.
pub struct MemorySource(pub HashMap<String, String>);

impl TemplateSource for MemorySource {
    fn template(&self, name: &str) -> Option<(String, String)> {
        let source = self.0.get(name)?;
        Some((source.clone(), format!("memory:{name}")))
    }
}

/// An engine and what must outlive it.
pub struct Kit {
    pub engine: Engine,
    pub home: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl Default for Kit {
    fn default() -> Self {
        Self::with(&[], UiSettings::default())
    }
}

impl Kit {
    pub fn with(templates: &[(&str, &str)], ui: UiSettings) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let home = tempfile::tempdir().unwrap();
        let templates = templates
            .iter()
            .map(|(name, source)| (name.to_string(), source.to_string()))
            .collect();
        let host = Host::new(
            runtime.handle().clone(),
            home.path().to_path_buf(),
            Arc::new(MemorySource(templates)),
            ui,
            ClusterChoice::unreachable("sandbox", "no cluster in unit tests"),
        );
        let mut engine = Engine::new();
        builtins::register_all(&mut engine, Arc::new(host));
        Kit {
            engine,
            home,
            _runtime: runtime,
        }
    }

    pub fn eval<T: Clone + Send + Sync + 'static>(&self, script: &str) -> T {
        match self.engine.eval::<T>(script) {
            Ok(value) => value,
            Err(err) => panic!("{script}\nfailed: {err}"),
        }
    }

    /// The error map a script raised: its `kind` and `message`.
    pub fn fail(&self, script: &str) -> (String, String) {
        let err = match self.engine.eval::<Dynamic>(script) {
            Ok(value) => panic!("{script}\nsucceeded with {value:?}"),
            Err(err) => err,
        };
        let map = error_map(*err);
        let text = |key: &str| map.get(key).map(|v| v.to_string()).unwrap_or_default();
        (text("kind"), text("message"))
    }

    /// Like [`Kit::fail`], the error's `kind/reason` (`template/syntax`).
    pub fn fail_reason(&self, script: &str) -> String {
        let err = match self.engine.eval::<Dynamic>(script) {
            Ok(value) => panic!("{script}\nsucceeded with {value:?}"),
            Err(err) => err,
        };
        let map = error_map(*err);
        let text = |key: &str| map.get(key).map(|v| v.to_string()).unwrap_or_default();
        format!("{}/{}", text("kind"), text("reason"))
    }
}

fn error_map(err: EvalAltResult) -> Map {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => match value.try_cast::<Map>() {
            Some(map) => map,
            None => panic!("the error is not a map"),
        },
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => error_map(*inner),
        other => panic!("not a script error: {other}"),
    }
}
