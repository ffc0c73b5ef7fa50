//! kip's engine: the Rhai engine and its limits, the search path for scripts and templates,
//! verbs declared by scripts, the command tree built from them, and readable script errors.

pub mod assert;
pub mod cli;
pub mod doc;
pub mod engine;
pub mod heap;
pub mod report;
pub mod search;
pub mod stdlib;
pub mod verbs;

use std::sync::Arc;

use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Scope};

pub use engine::Limits;

/// The unit tests bound memory as the kip binary does.
#[cfg(test)]
#[global_allocator]
static HEAP: heap::Counting = heap::Counting;
pub use report::ScriptError;
pub use search::SearchPath;
pub use verbs::{Verb, Verbs};

/// kip's own version, for `kip::version()`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A loaded kip: an engine, the verbs along the search path, and the scripts' sources (for
/// printing errors).
pub struct Kip {
    pub engine: Engine,
    pub verbs: Arc<Verbs>,
    pub search: Arc<SearchPath>,
    pub limits: Limits,
    /// The scripts [`Kip::call`] compiled, by source: a controller calls the same few for
    /// every reconcile.
    calls: std::sync::Mutex<std::collections::HashMap<String, AST>>,
}

thread_local! {
    /// Which declaration of which verb is running on this thread, so `kip::next(opts)` can
    /// call the one after it. A script runs on one thread from start to end (builtins block
    /// on async work), so verbs run at once by other threads, such as server hooks, never see
    /// each other's stack.
    static RUNNING: std::cell::RefCell<Vec<(Vec<String>, usize)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Kip {
    /// Builds the engine and loads every verb declared along `search` (a broken script is
    /// left out and kept in `verbs.broken()`).
    pub fn load(search: SearchPath, limits: &Limits) -> Kip {
        Kip::load_with_cache(search, limits, None)
    }

    /// Like [`Kip::load`], keeping the verb declarations in `cache_file` so later commands
    /// compile only the scripts they run.
    pub fn load_with_cache(
        search: SearchPath,
        limits: &Limits,
        cache_file: Option<&std::path::Path>,
    ) -> Kip {
        Kip::load_with(search, limits, cache_file, builtins::register_modules)
    }

    /// The kip a hook on push runs in: `limits` (tight ones), and only the builtin modules a
    /// hook may use (`builtins::register_hook_modules`); the host it is given says which
    /// project it may reach, and `kip::run` runs only [`HOOK_VERBS`] there.
    pub fn load_for_hooks(search: SearchPath, limits: &Limits) -> Kip {
        Kip::load_with(search, limits, None, builtins::register_hook_modules)
    }

    fn load_with(
        search: SearchPath,
        limits: &Limits,
        cache_file: Option<&std::path::Path>,
        modules: fn(&mut Engine),
    ) -> Kip {
        let search = Arc::new(search);
        let mut engine = engine::new_engine_with(limits, search.clone(), modules);
        let scripts = search.scripts();
        let verbs = match cache_file {
            Some(file) => Verbs::load_cached(&engine, &scripts, file),
            None => Verbs::load(&engine, &scripts),
        };
        let verbs = Arc::new(verbs);
        register_kip_module(&mut engine, verbs.clone());
        Kip {
            engine,
            verbs,
            search,
            limits: *limits,
            calls: Default::default(),
        }
    }

    /// Also stops a running script between two operations when `stop` returns a reason (which
    /// becomes the error), on top of the limits.
    pub fn stop_when(&mut self, stop: impl Fn() -> Option<Dynamic> + Send + Sync + 'static) {
        engine::watch(&mut self.engine, &self.limits, Some(Box::new(stop)));
    }

    /// Runs the winning declaration of the verb named by `words` with `opts`.
    pub fn run_verb(&self, words: &[String], opts: Map) -> Result<Dynamic, ScriptError> {
        heap::start_run();
        let result = run_declaration(&self.engine, &self.verbs, words, 0, opts)
            .and_then(|v| self.finished(v));
        result.map_err(|e| {
            let Some(verb) = self.verbs.chain(words).first().copied() else {
                return ScriptError::runtime(&e);
            };
            let mut err = ScriptError::runtime_in(&e, &verb.script.origin.display());
            err.calls.insert(
                0,
                format!("in call to `{}` running `kip {}`", verb.func, verb.name()),
            );
            err
        })
    }

    /// The value of a run that ended, unless its last step went past the memory limit with no
    /// later operation to stop it.
    fn finished(&self, value: Dynamic) -> Result<Dynamic, Box<EvalAltResult>> {
        engine::check_finished_run(&self.limits).map(|()| value)
    }

    /// Runs a pipeline script (`kip run FILE args…`): its top level runs with `ARGS` in scope.
    pub fn run_file(
        &self,
        name: &str,
        source: &str,
        args: Vec<String>,
    ) -> Result<Dynamic, ScriptError> {
        let origin = search::Origin::File(name.into());
        let script = search::Script {
            stem: String::new(),
            origin,
            source: source.to_string(),
        };
        let compiled = verbs::compile(&self.engine, &script)?;
        heap::start_run();
        let mut scope = Scope::new();
        let args: rhai::Array = args.into_iter().map(Dynamic::from).collect();
        scope.push("ARGS", args);
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &compiled)
            .and_then(|v| self.finished(v))
            .map_err(|e| ScriptError::runtime_in(&e, name))
    }

    /// Calls `func` of the module `module` (`lib/reconcile`) with `args`, as
    /// `import "lib/reconcile" as m; m::app(arg)` would: the module is found along the search
    /// path, so a user's override of it (or of a module it imports) is the one called. Errors
    /// name the script and line that failed. `kip server`'s controllers run this way.
    pub fn call(
        &self,
        module: &str,
        func: &str,
        args: Vec<Dynamic>,
    ) -> Result<Dynamic, ScriptError> {
        let name = format!("<{module}::{func}>");
        let params: Vec<String> = (0..args.len()).map(|i| format!("ARG{i}")).collect();
        let script = search::Script {
            stem: String::new(),
            origin: search::Origin::File(name.clone().into()),
            source: format!("import {module:?} as m; m::{func}({})", params.join(", ")),
        };
        let cached = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&script.source)
            .cloned();
        let compiled = match cached {
            Some(ast) => ast,
            None => {
                let ast = verbs::compile(&self.engine, &script)?;
                self.calls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(script.source.clone(), ast.clone());
                ast
            }
        };
        heap::start_run();
        let mut scope = Scope::new();
        for (param, arg) in params.into_iter().zip(args) {
            scope.push(param, arg);
        }
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &compiled)
            .and_then(|v| self.finished(v))
            .map_err(|e| ScriptError::runtime_in(&e, &name))
    }

    /// Runs the script `source` (called `name` in errors, a hook's file): its top level, then
    /// `func(arg)`, which it must define with one parameter.
    pub fn run_function(
        &self,
        name: &str,
        source: &str,
        func: &str,
        arg: Dynamic,
    ) -> Result<Dynamic, ScriptError> {
        let script = search::Script {
            stem: String::new(),
            origin: search::Origin::File(name.into()),
            source: source.to_string(),
        };
        let compiled = verbs::compile(&self.engine, &script)?;
        if !compiled
            .iter_functions()
            .any(|f| f.name == func && f.params.len() == 1)
        {
            return Err(ScriptError {
                message: format!("{name} defines no `fn {func}(event)`, which is what runs"),
                location: None,
                calls: Vec::new(),
                failure: report::Failure::Script,
                kind: Some(builtins::Kind::Invalid),
            });
        }
        heap::start_run();
        let options = CallFnOptions::new().eval_ast(true).rewind_scope(true);
        self.engine
            .call_fn_with_options::<Dynamic>(options, &mut Scope::new(), &compiled, func, (arg,))
            .and_then(|v| self.finished(v))
            .map_err(|e| ScriptError::runtime_in(&e, name))
    }

    /// Evaluates one expression (`kip eval 'EXPR'`).
    pub fn eval(&self, expr: &str) -> Result<Dynamic, ScriptError> {
        let script = search::Script {
            stem: String::new(),
            origin: search::Origin::File("<eval>".into()),
            source: expr.to_string(),
        };
        let compiled = verbs::compile(&self.engine, &script)?;
        heap::start_run();
        self.engine
            .eval_ast::<Dynamic>(&compiled)
            .and_then(|v| self.finished(v))
            .map_err(|e| ScriptError::runtime_in(&e, "<eval>"))
    }

    /// Evaluates one line of an interactive session (`kip shell`) with the same engine, limits
    /// and error reporting as `kip eval`. Variables (`let x = 5`) live on in `session.scope`
    /// and functions (`fn double(x) { x * 2 }`) in the session, for later lines to use. `name`
    /// is the source name errors point at (`<shell>`).
    pub fn eval_in_session(
        &self,
        session: &mut Session,
        name: &str,
        code: &str,
    ) -> Result<Dynamic, ScriptError> {
        let script = search::Script {
            stem: String::new(),
            origin: search::Origin::File(name.into()),
            source: code.to_string(),
        };
        let compiled = verbs::compile(&self.engine, &script)?;
        let merged = session.functions.merge(&compiled);
        // A line that defines a function keeps it even when its statements fail.
        session.functions = merged.clone_functions_only();
        heap::start_run();
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut session.scope, &merged)
            .and_then(|v| self.finished(v))
            .map_err(|e| ScriptError::runtime_in(&e, name))
    }

    /// The names Rhai code can call through a module (`k8s::list`, `tmpl::render`…), sorted,
    /// for completion.
    pub fn module_functions(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .engine
            .gen_fn_signatures(false)
            .into_iter()
            .filter_map(|sig| {
                let name = sig.split('(').next()?.trim();
                name.contains("::").then(|| name.to_string())
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The text of a script by the source name errors use, for printing the failing line.
    pub fn source_of(&self, name: &str) -> Option<String> {
        if let Some((_, source)) = stdlib::SCRIPTS.iter().find(|(n, _)| *n == name) {
            return Some(source.to_string());
        }
        std::fs::read_to_string(name).ok()
    }
}

/// What earlier lines of an interactive session leave for later ones: their variables and
/// functions.
#[derive(Default)]
pub struct Session {
    pub scope: Scope<'static>,
    functions: AST,
}

fn run_declaration(
    engine: &Engine,
    verbs: &Verbs,
    words: &[String],
    index: usize,
    opts: Map,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let chain = verbs.chain(words);
    let Some(verb) = chain.get(index) else {
        return Err(format!(
            "`{}` has no further declaration to call with kip::next",
            words.join(" ")
        )
        .into());
    };
    let ast = verb.script.parse(engine)?;
    RUNNING.with_borrow_mut(|stack| stack.push((words.to_vec(), index)));
    let options = CallFnOptions::new().eval_ast(true).rewind_scope(true);
    let result = engine.call_fn_with_options::<Dynamic>(
        options,
        &mut Scope::new(),
        ast,
        &verb.func,
        (Dynamic::from_map(opts),),
    );
    RUNNING.with_borrow_mut(|stack| stack.pop());
    result
}

/// `kip::version()`, `kip::next(opts)` (call the declaration this one overrides),
/// `kip::run(verb, opts)` (call another verb), `kip::error(kind, message)` and
/// `kip::invalid_value(flag, value, why)`.
///
/// The verbs a hook on push may run with `kip::run`, always in its own project.
pub const HOOK_VERBS: &[&str] = &[
    "app deploy",
    "app update",
    "app scale",
    "app restart",
    "app promote",
    "app rebuild",
];

/// `opts` for running `verb` from a script that reaches only a project (a hook): the verb must
/// be one of [`HOOK_VERBS`] and runs in that project, whatever `opts` says. The flag says
/// whether a hook asked.
fn within_reach(
    ctx: &NativeCallContext,
    verb: &str,
    mut opts: Map,
) -> Result<(Map, bool), Box<EvalAltResult>> {
    let Ok(host) = builtins::host::host(ctx) else {
        return Ok((opts, false));
    };
    let builtins::Reach::Project { name, .. } = &host.reach else {
        return Ok((opts, false));
    };
    let verb = verb.split_whitespace().collect::<Vec<_>>().join(" ");
    if !HOOK_VERBS.contains(&verb.as_str()) {
        return Err(builtins::host::error(
            builtins::Kind::Denied,
            format!(
                "a hook may not run `kip {verb}`: hooks run only {}",
                HOOK_VERBS.join(", ")
            ),
        ));
    }
    match opts.get("project").map(|p| p.to_string()) {
        Some(p) if !p.is_empty() && p != *name => {
            return Err(builtins::host::error(
                builtins::Kind::Denied,
                format!("a hook of project `{name}` may not run `kip {verb}` in project `{p}`"),
            ));
        }
        _ => {
            opts.insert("project".into(), name.clone().into());
        }
    }
    Ok((opts, true))
}

fn register_kip_module(engine: &mut Engine, verbs: Arc<Verbs>) {
    let mut module = rhai::Module::new();
    rhai::FuncRegistration::new("version")
        .with_comments(["/// kip's version, as `kip --version` prints it.\n///\n/// Example: `print(kip::version());`"])
        .with_params_info(["String"])
        .set_into_module(&mut module, || VERSION.to_string());
    let for_next = verbs.clone();
    rhai::FuncRegistration::new("next")
        .with_comments(["/// Runs the declaration of the running verb that this one overrides (the next one along\n/// the search path) with `opts`, and returns what it returns. Flags left out of `opts` take\n/// their defaults, as with `kip::run`. Only while a verb runs.\n///\n/// Example: `fn deploy(opts) { let app = kip::next(opts); print(app.namespace); }`"])
        .with_params_info(["opts: Map", "Dynamic"])
        .set_into_module(
            &mut module,
            move |ctx: NativeCallContext, opts: Map| -> Result<Dynamic, Box<EvalAltResult>> {
                let current = RUNNING.with_borrow(|stack| stack.last().cloned());
                let Some((words, index)) = current else {
                    return Err("kip::next can only be called while a verb runs".into());
                };
                // Completed as for kip::run, so an override may pass a map of its own and
                // the declaration it calls still sees every flag it declares.
                let opts = match for_next.chain(&words).get(index + 1) {
                    Some(next) => cli::complete_opts(next, opts, cli::UnknownKeys::Keep)
                        .map_err(|msg| builtins::host::error(builtins::Kind::Invalid, msg))?,
                    None => opts,
                };
                run_declaration(ctx.engine(), &for_next, &words, index + 1, opts)
            },
        );
    rhai::FuncRegistration::new("run")
        .with_comments(["/// Runs the verb `verb` (its words, `\"app deploy\"`) with `opts`, its flags and arguments\n/// by name (dashes as `_`), and returns what it returns. Flags left out take their\n/// defaults as on the command line; a missing required one, an unknown key or a value of\n/// the wrong type raises `invalid`.\n///\n/// Example: `kip::run(\"app deploy\", #{ name: \"web\", image: \"nginx:1.27\", port: 80 });`"])
        .with_params_info(["verb: &str", "opts: Map", "Dynamic"])
        .set_into_module(
            &mut module,
            move |ctx: NativeCallContext,
                  verb: &str,
                  opts: Map|
                  -> Result<Dynamic, Box<EvalAltResult>> {
                let words: Vec<String> = verb.split_whitespace().map(String::from).collect();
                let (opts, for_hook) = within_reach(&ctx, verb, opts)?;
                let Some(declared) = verbs.chain(&words).first().copied() else {
                    return Err(builtins::host::error(
                        builtins::Kind::NotFound,
                        format!("no verb `{verb}` (see `kip verbs`)"),
                    ));
                };
                let opts = cli::complete_opts(declared, opts, cli::UnknownKeys::Refuse)
                    .map_err(|msg| builtins::host::error(builtins::Kind::Invalid, msg))?;
                let run = || run_declaration(ctx.engine(), &verbs, &words, 0, opts);
                if for_hook { builtins::host::as_hook_verb(run) } else { run() }
            },
        );
    rhai::FuncRegistration::new("seconds_between")
        .with_comments([
            "/// The whole seconds from the RFC 3339 time `from` to `to` (negative when `to` is",
            "/// earlier), as Kubernetes writes times (`2026-12-03T17:20:00Z`).",
            "///",
            "/// Errors: `invalid` when either is not an RFC 3339 time.",
            "///",
            "/// Example: `let took = kip::seconds_between(\"2026-12-03T17:20:00Z\", \"2026-12-03T17:21:30Z\"); // 90`",
        ])
        .with_params_info(["from: &str", "to: &str", "i64"])
        .set_into_module(
            &mut module,
            |from: &str, to: &str| -> Result<i64, Box<EvalAltResult>> {
                let parse = |t: &str| {
                    t.parse::<jiff::Timestamp>().map_err(|e| {
                        builtins::host::error(
                            builtins::Kind::Invalid,
                            format!("`{t}` is not an RFC 3339 time: {e}"),
                        )
                    })
                };
                Ok(parse(to)?.as_second() - parse(from)?.as_second())
            },
        );
    rhai::FuncRegistration::new("in_hook")
        .with_comments([
            "/// Whether the verb now running was asked for by a hook on push (`kip::run` in a",
            "/// hook's `on_push`): a build records its trigger as `hook` then.",
            "///",
            "/// Example: `let trigger = if kip::in_hook() { \"hook\" } else { \"build\" };`",
        ])
        .with_params_info(["bool"])
        .set_into_module(&mut module, builtins::host::in_hook_verb);
    rhai::FuncRegistration::new("now")
        .with_comments([
            "/// The time now in UTC, to the second, as RFC 3339 (`2026-12-03T17:20:00Z`): for",
            "/// records such as `kipper.run/promoted-at`.",
            "///",
            "/// Example: `let at = kip::now();`",
        ])
        .with_params_info(["String"])
        .set_into_module(&mut module, || {
            let now = jiff::Timestamp::now();
            now.round(jiff::Unit::Second).unwrap_or(now).to_string()
        });
    rhai::FuncRegistration::new("functions_of")
        .with_comments([
            "/// The functions the Rhai script `source` defines, as `name/arity` (`on_push/1`),",
            "/// once it parses; nothing of it runs.",
            "///",
            "/// Errors: `invalid` with the line and column of a syntax error.",
            "///",
            "/// Example: `if !kip::functions_of(source).contains(\"on_push/1\") { throw kip::error(\"invalid\", \"no fn on_push(event)\"); }`",
        ])
        .with_params_info(["source: &str", "Array"])
        .set_into_module(
            &mut module,
            |ctx: NativeCallContext, source: &str| -> Result<rhai::Array, Box<EvalAltResult>> {
                let ast = ctx.engine().compile(source).map_err(|e| {
                    let at = e.position();
                    builtins::host::error(
                        builtins::Kind::Invalid,
                        format!(
                            "syntax error at line {}, column {}: {}",
                            at.line().unwrap_or(0),
                            at.position().unwrap_or(0),
                            e.err_type()
                        ),
                    )
                })?;
                Ok(ast
                    .iter_functions()
                    .map(|f| format!("{}/{}", f.name, f.params.len()).into())
                    .collect())
            },
        );
    rhai::FuncRegistration::new("error")
        .with_comments([
            "/// An error to `throw`: `#{ kind, message }`, where `kind` is one of kip's error kinds",
            "/// (`kip doc errors`); any other kind is refused.",
            "///",
            "/// Example: `throw kip::error(\"not-found\", `no app ``${name}`` (see ``kip app list``)`);`",
        ])
        .with_params_info(["kind: &str", "message: &str", "Map"])
        .set_into_module(&mut module, |kind: &str, message: &str| -> Result<Map, Box<EvalAltResult>> {
            let Some(kind) = builtins::Kind::from_name(kind) else {
                let kinds: Vec<&str> = builtins::Kind::ALL.iter().map(|k| k.name()).collect();
                return Err(builtins::host::error(
                    builtins::Kind::Invalid,
                    format!("no error kind `{kind}`: use one of {}", kinds.join(", ")),
                ));
            };
            let mut error = Map::new();
            error.insert("kind".into(), kind.name().into());
            error.insert("message".into(), message.into());
            Ok(error)
        });
    rhai::FuncRegistration::new("invalid_value")
        .with_comments([
            "/// The error for a flag or argument given a value it cannot take, in the words kip's",
            "/// command line uses: `invalid value 'VALUE' for 'FLAG': WHY`. `flag` as the user",
            "/// typed it: `--port`, or `<NAME>` for an argument.",
            "///",
            "/// Example: `throw kip::invalid_value(\"--port\", opts.port, \"a port is between 1 and 65535\");`",
        ])
        .with_params_info(["flag: &str", "value: Dynamic", "why: &str", "Map"])
        .set_into_module(&mut module, |flag: &str, value: Dynamic, why: &str| -> Map {
            let mut error = Map::new();
            error.insert("kind".into(), builtins::Kind::Invalid.name().into());
            error.insert(
                "message".into(),
                format!("invalid value '{value}' for '{flag}': {why}").into(),
            );
            error
        });
    engine.register_static_module("kip", module.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shell lines share variables and functions; a failing line keeps what earlier lines
    /// made, and its error points into the line.
    #[test]
    fn a_session_keeps_variables_and_functions() {
        let kip = Kip::load(SearchPath::stdlib_only(), &Limits::CLI);
        let mut session = Session::default();
        let mut eval = |code: &str| kip.eval_in_session(&mut session, "<shell>", code);
        assert!(eval("let n = 2").unwrap().is_unit());
        assert_eq!(eval("n * 21").unwrap().as_int().unwrap(), 42);
        assert!(eval("fn double(x) { x * 2 }").unwrap().is_unit());
        let err = eval("double(n) + missing").unwrap_err();
        let at = err.location.expect("a position");
        assert_eq!((at.source.as_str(), at.line, at.column), ("<shell>", 1, 13));
        assert!(eval("let = ;").is_err(), "a syntax error");
        assert_eq!(eval("double(n)").unwrap().as_int().unwrap(), 4);
    }

    /// Two wrapped verbs at once on two threads (as server hooks will run them): each
    /// `kip::next` calls the declaration after its own verb's, whatever the other thread runs.
    #[test]
    fn kip_next_follows_its_own_thread() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.rhai"),
            r#"fn verbs() {[ #{ verb: "a", run: "wrap" }, #{ verb: "b", run: "b" } ]}
fn wrap(opts) {
    pause(); pause();
    let inner = "";
    try { inner = kip::next(opts); } catch (e) { inner = `error: ${e}`; }
    pause();
    `wrapped ${inner}`
}
fn b(opts) { pause(); pause(); "b" }
"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("z.rhai"),
            r#"fn verbs() {[ #{ verb: "a", run: "base" } ]}
fn base(opts) { "a" }"#,
        )
        .unwrap();
        let search = SearchPath::new(Some(dir.path()), dir.path(), dir.path());
        let mut kip = Kip::load(search, &Limits::CLI);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let pause = barrier.clone();
        kip.engine.register_fn("pause", move || {
            pause.wait();
        });
        let kip = Arc::new(kip);
        let on_a = kip.clone();
        let a = std::thread::spawn(move || on_a.run_verb(&["a".to_string()], Map::new()));
        // `b` starts once `a` is running and is still running when `a` calls `kip::next`.
        barrier.wait();
        let b = kip.run_verb(&["b".to_string()], Map::new()).unwrap();
        assert_eq!(b.to_string(), "b");
        let a = a.join().unwrap().unwrap();
        assert_eq!(a.to_string(), "wrapped a");
    }
}
