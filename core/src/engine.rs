//! The one place a Rhai engine is built: limits, the module resolver over the search path,
//! the builtins, and no `eval`.

use std::sync::Arc;

use rhai::module_resolvers::ModuleResolver;
use rhai::{Engine, EvalAltResult, Module, Position, Scope};

use crate::search::SearchPath;

/// The resource limits of one engine. Every engine runs with some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub operations: u64,
    pub call_levels: usize,
    pub expr_depth: usize,
    pub function_expr_depth: usize,
    pub string_size: usize,
    pub array_size: usize,
    pub map_size: usize,
    pub modules: usize,
}

impl Limits {
    /// Verbs and pipelines run from the command line: generous, but a runaway loop still ends.
    pub const CLI: Limits = Limits {
        operations: 50_000_000,
        call_levels: 64,
        expr_depth: 64,
        function_expr_depth: 32,
        string_size: 16 * 1024 * 1024,
        array_size: 100_000,
        map_size: 100_000,
        modules: 64,
    };

    /// Server-side hooks: tighter, so one bad hook cannot stall the server.
    pub const HOOK: Limits = Limits {
        operations: 1_000_000,
        call_levels: 32,
        expr_depth: 32,
        function_expr_depth: 16,
        string_size: 1024 * 1024,
        array_size: 10_000,
        map_size: 10_000,
        modules: 16,
    };

    fn apply(&self, engine: &mut Engine) {
        engine
            .set_max_operations(self.operations)
            .set_max_call_levels(self.call_levels)
            .set_max_expr_depths(self.expr_depth, self.function_expr_depth)
            .set_max_string_size(self.string_size)
            .set_max_array_size(self.array_size)
            .set_max_map_size(self.map_size)
            .set_max_modules(self.modules);
    }
}

/// A new engine with `limits`, modules resolved along `search`, and every builtin registered.
pub fn new_engine(limits: &Limits, search: Arc<SearchPath>) -> Engine {
    let mut engine = Engine::new();
    limits.apply(&mut engine);
    engine.disable_symbol("eval");
    engine.set_module_resolver(SearchResolver {
        search,
        loaded: Default::default(),
    });
    builtins::register_modules(&mut engine);
    engine
}

/// `import "lib/naming" as naming;` finds `lib/naming.rhai` along the search path.
struct SearchResolver {
    search: Arc<SearchPath>,
    /// Each module is compiled and evaluated once per process, however many scripts import it.
    loaded: std::sync::Mutex<std::collections::HashMap<String, Arc<Module>>>,
}

impl SearchResolver {
    fn loaded(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Module>>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ModuleResolver for SearchResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Arc<Module>, Box<EvalAltResult>> {
        if let Some(module) = self.loaded().get(path) {
            return Ok(module.clone());
        }
        let script = self
            .search
            .module(path)
            .ok_or_else(|| Box::new(EvalAltResult::ErrorModuleNotFound(path.into(), pos)))?;
        let in_module =
            |err: Box<EvalAltResult>| Box::new(EvalAltResult::ErrorInModule(path.into(), err, pos));
        let mut ast = engine
            .compile(&script.source)
            .map_err(|e| in_module(e.into()))?;
        ast.set_source(script.origin.display());
        let module: Arc<Module> = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into();
        self.loaded().insert(path.to_string(), module.clone());
        Ok(module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(limits: &Limits, script: &str) -> Result<rhai::Dynamic, Box<EvalAltResult>> {
        let engine = new_engine(limits, Arc::new(SearchPath::stdlib_only()));
        engine.eval::<rhai::Dynamic>(script)
    }

    /// A loop of `n` iterations: about 3 operations each.
    fn spin(n: u64) -> String {
        format!("let x = 0; for i in 0..{n} {{ x += 1; }} x")
    }

    #[test]
    fn each_profile_stops_a_script_that_exceeds_it() {
        let cli_ok = spin(Limits::HOOK.operations);
        assert!(
            run(&Limits::CLI, &cli_ok).is_ok(),
            "the CLI runs what a hook may not"
        );
        let err = run(&Limits::HOOK, &cli_ok).expect_err("too many operations for a hook");
        assert!(
            matches!(*err, EvalAltResult::ErrorTooManyOperations(_)),
            "{err}"
        );
        let err = run(&Limits::CLI, &spin(Limits::CLI.operations)).expect_err("even the CLI stops");
        assert!(
            matches!(*err, EvalAltResult::ErrorTooManyOperations(_)),
            "{err}"
        );
    }

    #[test]
    fn deep_recursion_and_large_values_are_refused() {
        let recurse = "fn down(n) { down(n + 1) } down(0)";
        for limits in [Limits::CLI, Limits::HOOK] {
            let err = run(&limits, recurse).expect_err("recursion without end");
            assert!(
                matches!(*err, EvalAltResult::ErrorStackOverflow(_)),
                "{err}"
            );
        }
        let big = format!(
            "let s = \"x\"; while s.len < {} {{ s += s; }} s.len",
            Limits::HOOK.string_size + 1
        );
        assert!(
            run(&Limits::HOOK, &big).is_err(),
            "a hook cannot build a string past its limit"
        );
        assert!(run(&Limits::CLI, &big).is_ok(), "the CLI can");
    }

    #[test]
    fn eval_is_disabled() {
        let err = run(&Limits::CLI, "eval(\"1 + 1\")").expect_err("no eval");
        assert!(err.to_string().contains("eval"), "{err}");
    }
}
