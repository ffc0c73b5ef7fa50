//! The one place a Rhai engine is built: limits, the module resolver over the search path,
//! the builtins, and no `eval`.

use std::sync::Arc;
use std::time::Duration;

use rhai::module_resolvers::ModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Module, Position, Scope};

use crate::heap;
use crate::search::SearchPath;

pub mod clock;
#[cfg(test)]
mod hostile;
mod sized;

pub use clock::Clock;

/// The resource limits of one engine. Every engine runs with some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub operations: u64,
    pub call_levels: usize,
    pub expr_depth: usize,
    pub function_expr_depth: usize,
    /// Bytes of heap a script may add to the process while it runs (counted by
    /// [`crate::heap::Counting`]); also the most one call may ask for at once (`blob(n)`,
    /// `pad(n, …)`).
    pub memory: usize,
    pub modules: usize,
    /// How long one run may take, by [`Limits::clock`]. Checked between two operations; no
    /// single call of the standard library takes long, as none may make a value bigger than
    /// `memory` (see `sized.rs`).
    pub time: Duration,
    /// Which time [`Limits::time`] counts.
    pub clock: Clock,
}

const MIB: usize = 1024 * 1024;

impl Limits {
    /// Verbs and pipelines run from the command line: generous, but a runaway loop still ends.
    /// 10,000 whole Deployments from `k8s::list` take about 300 MB as script values.
    pub const CLI: Limits = Limits {
        operations: 50_000_000,
        call_levels: 64,
        expr_depth: 64,
        function_expr_depth: 32,
        memory: 1024 * MIB,
        modules: 64,
        // 50 million operations take about 10 s of computing: ten minutes is for the runaway
        // that is slow per operation (scanning a huge string in a loop). Network waits do not
        // count, so a long install or a followed log runs on.
        time: Duration::from_secs(10 * 60),
        clock: Clock::Busy,
    };

    /// `kip server`'s controllers, which run the stdlib's reconcile functions: as generous as
    /// the command line, but a reconcile holds a worker, so waits count and two minutes end it.
    pub const RECONCILE: Limits = Limits {
        time: Duration::from_secs(120),
        clock: Clock::Wall,
        ..Limits::CLI
    };

    /// Server-side hooks: tighter, so one bad hook cannot stall the server.
    pub const HOOK: Limits = Limits {
        operations: 1_000_000,
        call_levels: 32,
        // As deep as the command line's: a hook runs the app verbs, whose lines nest as deep.
        expr_depth: 64,
        function_expr_depth: 32,
        memory: 64 * MIB,
        modules: 16,
        // Waits count: a hook holds a server worker however it spends its time.
        time: Duration::from_secs(60),
        clock: Clock::Wall,
    };

    fn apply(&self, engine: &mut Engine) {
        engine
            .set_max_operations(self.operations)
            .set_max_call_levels(self.call_levels)
            .set_max_expr_depths(self.expr_depth, self.function_expr_depth)
            .set_max_modules(self.modules);
        if heap::installed() {
            sized::register(engine, self.memory);
        } else {
            self.count_elements(engine);
        }
        watch(engine, self, None);
    }

    /// Without a heap count in the process, Rhai's element counts stand in, each sized so that
    /// the kind of value it counts alone fills about `memory`.
    fn count_elements(&self, engine: &mut Engine) {
        engine
            .set_max_string_size(self.memory)
            .set_max_array_size(self.memory / std::mem::size_of::<Dynamic>())
            .set_max_map_size(self.memory / MAP_ENTRY_BYTES);
    }
}

/// What one entry of a Rhai map costs: a key, a value and its share of a B-tree node.
const MAP_ENTRY_BYTES: usize = 64;

/// Something besides the limits that stops a script between two operations (Ctrl-C in
/// `kip shell`): `Some(reason)` stops it with that reason as the error.
pub type Stop = Box<dyn Fn() -> Option<Dynamic> + Send + Sync>;

/// Stops a script of `engine` once its run has grown the heap of its thread by more than
/// `limits.memory` or taken longer than `limits.time` ([`heap::start_run`] marks the start),
/// or when `also` says so. Replaces any earlier watch of `engine`.
pub fn watch(engine: &mut Engine, limits: &Limits, also: Option<Stop>) {
    let limits = *limits;
    engine.on_progress(move |operations| {
        let grown = heap::grown();
        if grown > limits.memory as isize {
            return Some(too_much_memory(grown as usize, limits.memory));
        }
        if operations % CLOCK_EVERY == 0 {
            let spent = clock::spent(limits.clock, limits.time);
            if spent > limits.time {
                return Some(too_long(spent, &limits));
            }
        }
        also.as_ref().and_then(|stop| stop())
    });
}

/// Operations between two looks at the clock. Reading it costs about 50 ns on our machines,
/// ten times a simple operation; no 64 operations of the standard library take long, as each
/// is bounded by the memory limit.
const CLOCK_EVERY: u64 = 64;

fn too_long(spent: Duration, limits: &Limits) -> Dynamic {
    let what = match limits.clock {
        Clock::Wall => "ran for",
        Clock::Busy => "computed for",
    };
    limit_error(format!(
        "the script {what} more than its {} ({}): a loop that never ends, or work too big for \
         one run (split it into several, or work on fewer objects at once)",
        human(limits.time),
        human(spent)
    ))
}

/// `90 s`, `10 min`: the unit a person reads a limit in.
fn human(time: Duration) -> String {
    match time.as_secs() {
        s if s >= 120 => format!("{} min", s / 60),
        s if s >= 10 => format!("{s} s"),
        _ => format!("{:.1} s", time.as_secs_f64()),
    }
}

/// What usually takes a script past its memory, and what to do instead.
const WAY_OUT: &str = "a loop that never ends, or too many whole objects at once \
                       (`k8s::select` keeps only the fields a script reads)";

/// After a run ends: a run whose last step went past the memory limit without a later
/// operation to stop it (a huge value printed as the final expression) fails now.
pub fn check_finished_run(limits: &Limits) -> Result<(), Box<EvalAltResult>> {
    let grown = heap::grown();
    if heap::installed() && grown > limits.memory as isize {
        return Err(Box::new(EvalAltResult::ErrorRuntime(
            too_much_memory(grown as usize, limits.memory),
            Position::NONE,
        )));
    }
    Ok(())
}

fn too_much_memory(grown: usize, limit: usize) -> Dynamic {
    limit_error(format!(
        "the script took more than its {} MiB of memory ({} MiB): {WAY_OUT}",
        limit / MIB,
        grown / MIB
    ))
}

/// The error value of a script stopped by a limit, shaped like a builtin's error.
fn limit_error(message: String) -> Dynamic {
    let mut error = rhai::Map::new();
    error.insert("kind".into(), builtins::Kind::Limit.name().into());
    error.insert("message".into(), message.into());
    error.into()
}

/// A new engine with `limits`, modules resolved along `search`, and every builtin registered.
pub fn new_engine(limits: &Limits, search: Arc<SearchPath>) -> Engine {
    new_engine_with(limits, search, builtins::register_modules)
}

/// A new engine with `limits`, modules resolved along `search`, and the builtins `modules`
/// registers (a hook's engine has fewer).
pub fn new_engine_with(
    limits: &Limits,
    search: Arc<SearchPath>,
    modules: fn(&mut Engine),
) -> Engine {
    let mut engine = Engine::new();
    limits.apply(&mut engine);
    engine.disable_symbol("eval");
    engine.set_module_resolver(SearchResolver {
        search,
        loaded: Default::default(),
    });
    modules(&mut engine);
    engine.register_static_module(
        "assert",
        rhai::exported_module!(crate::assert::assert_module).into(),
    );
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
    fn deep_recursion_is_refused() {
        let recurse = "fn down(n) { down(n + 1) } down(0)";
        for limits in [Limits::CLI, Limits::HOOK] {
            let err = run(&limits, recurse).expect_err("recursion without end");
            assert!(
                matches!(*err, EvalAltResult::ErrorStackOverflow(_)),
                "{err}"
            );
        }
    }

    /// The message of a script stopped by its memory limit, or what else happened.
    fn stopped_for_memory(result: Result<Dynamic, Box<EvalAltResult>>) -> String {
        let err = match result {
            Ok(v) => panic!("not stopped: {v}"),
            Err(err) => err,
        };
        let (EvalAltResult::ErrorTerminated(value, _) | EvalAltResult::ErrorRuntime(value, _)) =
            &*err
        else {
            panic!("stopped by something else: {err}");
        };
        let map = value.read_lock::<rhai::Map>().expect("an error map");
        assert_eq!(map["kind"].to_string(), "limit", "{map:?}");
        map["message"].to_string()
    }

    #[test]
    fn a_runaway_value_stops_at_the_memory_limit() {
        // Rows of 64 KiB, without end: the heap, not a count, stops it.
        let rows = "let rows = []; loop { rows.push(blob(65536)); }";
        for limits in [Limits::CLI, Limits::HOOK] {
            let message = stopped_for_memory(run(&limits, rows));
            assert!(
                message.contains(&format!("its {} MiB of memory", limits.memory / MIB))
                    && message.contains("k8s::select"),
                "names the limit and the way out: {message}"
            );
        }
        let doubling = "let s = \"x\"; loop { s += s; }";
        stopped_for_memory(run(&Limits::HOOK, doubling));
        let past_hook = format!(
            "let s = \"x\"; while s.len < {} {{ s += s; }} s.len",
            Limits::HOOK.memory + 1
        );
        stopped_for_memory(run(&Limits::HOOK, &past_hook));
        assert!(
            run(&Limits::CLI, &past_hook).is_ok(),
            "the CLI may hold more"
        );
    }

    #[test]
    fn one_call_cannot_ask_for_more_than_the_limit() {
        for call in [
            "blob(1 << 40)",
            "blob(1 << 40, 7)",
            "let b = blob(); b.pad(1 << 40, 1); b",
            "let a = []; a.pad(1 << 40, 0); a",
            "let s = \"\"; s.pad(1 << 40, 'x'); s",
            "let s = \"\"; s.pad(1 << 40, \"xy\"); s",
        ] {
            let message = stopped_for_memory(run(&Limits::HOOK, call));
            assert!(
                message.contains("past its 64 MiB of memory"),
                "{call}: {message}"
            );
        }
        let padded = "let s = \"ab\"; s.pad(7, \"xyz\"); let a = [1]; a.pad(3, 0); \
                      let b = blob(2, 0x101); b.pad(3, 9); `${s} ${a} ${b.len()} ${b[0]}`";
        let value = run(&Limits::HOOK, padded).expect("small pads work as Rhai's own");
        assert_eq!(value.to_string(), "abxyzxy [1, 0, 0] 3 1");
    }

    #[test]
    fn ten_thousand_small_rows_pass_even_in_a_hook() {
        let rows = "let rows = []; for i in 0..10000 { rows.push(#{ name: `app-${i}`, \
                    status: \"running\", image: \"nginx:1.27\", ready: 1, replicas: 1, \
                    namespace: \"shop-test\", project: \"shop\", environment: \"test\", \
                    host: `app-${i}-test-sandbox.localhost` }); } rows.len()";
        for limits in [Limits::CLI, Limits::HOOK] {
            let len = run(&limits, rows).expect("10,000 rows").as_int().unwrap();
            assert_eq!(len, 10_000);
        }
    }

    /// Where no heap count runs, Rhai's element counts bound a value to about the same size.
    #[test]
    fn without_a_heap_count_element_counts_stand_in() {
        let mut engine = Engine::new();
        Limits::HOOK.count_elements(&mut engine);
        let rows = "let rows = []; for i in 0..10000 { rows.push(#{ name: `app-${i}`, ready: 1 }); } rows.len()";
        assert_eq!(engine.eval::<rhai::INT>(rows).expect("10,000 rows"), 10_000);
        let err = engine
            .eval::<Dynamic>("let s = \"x\"; loop { s += s; }")
            .expect_err("a runaway string");
        assert!(
            matches!(*err, EvalAltResult::ErrorDataTooLarge(..)),
            "{err}"
        );
    }

    #[test]
    fn eval_is_disabled() {
        let err = run(&Limits::CLI, "eval(\"1 + 1\")").expect_err("no eval");
        assert!(err.to_string().contains("eval"), "{err}");
    }
}
