//! Verbs as scripts declare them: `fn verbs()` in a script returns an array of maps, one per
//! verb, naming the function that runs it. The CLI, `--help`, completions and `kip verbs` are all
//! built from these declarations.
//!
//! Declarations are cached in the kip home under a hash of every script's source: a command
//! then compiles only the scripts it runs, not every script on the search path.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rhai::{AST, Dynamic, Engine, Map};
use serde::{Deserialize, Serialize};

use crate::report::ScriptError;
use crate::search::{Origin, Script};

/// The type of a flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlagType {
    String,
    Int,
    Bool,
}

/// One `--flag` of a verb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub name: String,
    pub short: Option<char>,
    pub ty: FlagType,
    pub help: String,
    pub required: bool,
    pub repeatable: bool,
    /// The default as the user would type it.
    pub default: Option<String>,
}

/// One positional argument of a verb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arg {
    pub name: String,
    pub help: String,
    pub required: bool,
    pub repeatable: bool,
}

/// A verb: its words (`["app", "deploy"]`), help, flags and the function that runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verb {
    pub words: Vec<String>,
    pub about: String,
    pub long: String,
    pub flags: Vec<Flag>,
    pub args: Vec<Arg>,
    /// Adds `--yes`: the verb asks before it destroys something.
    pub destructive: bool,
    /// Adds `-o json|yaml`: the verb reads and prints.
    pub read: bool,
    pub func: String,
    #[serde(skip, default = "unloaded")]
    pub script: Arc<Compiled>,
    /// The index of `script` in the search path's scripts (for the cache).
    pub script_index: usize,
}

impl Verb {
    pub fn name(&self) -> String {
        self.words.join(" ")
    }
}

/// Stands in for a cached verb's script until [`Verbs::load_cached`] sets it.
fn unloaded() -> Arc<Compiled> {
    Arc::new(Compiled {
        origin: Origin::Stdlib(""),
        source: String::new(),
        ast: OnceLock::new(),
    })
}

/// A script, compiled the first time it is needed, and where it came from.
#[derive(Debug)]
pub struct Compiled {
    pub origin: Origin,
    source: String,
    ast: OnceLock<AST>,
}

impl Compiled {
    fn new(script: &Script) -> Compiled {
        Compiled {
            origin: script.origin.clone(),
            source: script.source.clone(),
            ast: OnceLock::new(),
        }
    }

    /// The compiled script, compiling it on first use.
    pub fn ast(&self, engine: &Engine) -> Result<&AST, ScriptError> {
        self.parse(engine)
            .map_err(|e| ScriptError::parse(&self.origin, &self.source, &e))
    }

    /// Whether the script has been compiled yet.
    pub fn is_compiled(&self) -> bool {
        self.ast.get().is_some()
    }

    /// Like [`Compiled::ast`], with the parser's own error.
    pub fn parse(&self, engine: &Engine) -> Result<&AST, rhai::ParseError> {
        if let Some(ast) = self.ast.get() {
            return Ok(ast);
        }
        let mut ast = engine.compile(&self.source)?;
        ast.set_source(self.origin.display());
        Ok(self.ast.get_or_init(|| ast))
    }
}

/// Bumped when a change to [`Verb`] would read an old cache wrongly rather than fail to read it.
const CACHE_FORMAT: u32 = 1;

/// What the cache file holds: the declarations of one set of script sources.
#[derive(Serialize, Deserialize)]
struct Cached {
    key: String,
    verbs: Vec<Verb>,
}

/// Every declared verb, in search-path order: for one name the first is the one that runs,
/// and each may call the next (`kip::next(opts)`) to wrap rather than fork it.
#[derive(Debug, Default)]
pub struct Verbs {
    all: Vec<Verb>,
}

impl Verbs {
    /// Compiles each script and collects what its `verbs()` declares.
    pub fn load(engine: &Engine, scripts: &[Script]) -> Result<Verbs, ScriptError> {
        let mut all = Vec::new();
        for (index, script) in scripts.iter().enumerate() {
            let compiled = Arc::new(Compiled::new(script));
            let ast = compiled.ast(engine)?;
            let declares = ast
                .iter_functions()
                .any(|f| f.name == "verbs" && f.params.is_empty());
            if !declares {
                continue;
            }
            let options = rhai::CallFnOptions::new().eval_ast(false);
            let declared: Dynamic = engine
                .call_fn_with_options(options, &mut rhai::Scope::new(), ast, "verbs", ())
                .map_err(|e| ScriptError::runtime(&e))?;
            for decl in declared.into_array().unwrap_or_default() {
                let verb = parse_verb(decl, &compiled, ast, index)
                    .map_err(|msg| ScriptError::declaration(&compiled.origin, &msg))?;
                all.push(verb);
            }
        }
        Ok(Verbs { all })
    }

    /// Like [`Verbs::load`], but the declarations come from `cache_file` when it was written for
    /// these very sources, and then no script is compiled until it runs. A cache that cannot be
    /// read or written only costs the compilation.
    pub fn load_cached(
        engine: &Engine,
        scripts: &[Script],
        cache_file: &Path,
    ) -> Result<Verbs, ScriptError> {
        let key = cache_key(scripts);
        let cached = std::fs::read(cache_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Cached>(&bytes).ok())
            .filter(|c| c.key == key && c.verbs.iter().all(|v| v.script_index < scripts.len()));
        if let Some(cached) = cached {
            let units: Vec<Arc<Compiled>> =
                scripts.iter().map(|s| Arc::new(Compiled::new(s))).collect();
            let all = cached
                .verbs
                .into_iter()
                .map(|mut verb| {
                    verb.script = units[verb.script_index].clone();
                    verb
                })
                .collect();
            return Ok(Verbs { all });
        }
        let verbs = Verbs::load(engine, scripts)?;
        let cache = Cached {
            key,
            verbs: verbs.all.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&cache) {
            write_atomically(cache_file, &bytes);
        }
        Ok(verbs)
    }

    /// The verbs that answer to each name, the winning declaration only.
    pub fn winners(&self) -> Vec<&Verb> {
        let mut seen = std::collections::HashSet::new();
        self.all
            .iter()
            .filter(|v| seen.insert(v.words.clone()))
            .collect()
    }

    /// Every declaration of one verb, the winner first.
    pub fn chain(&self, words: &[String]) -> Vec<&Verb> {
        self.all.iter().filter(|v| v.words == words).collect()
    }

    pub fn all(&self) -> &[Verb] {
        &self.all
    }
}

/// Compiles a script with its source name set, so errors point at it.
pub fn compile(engine: &Engine, script: &Script) -> Result<AST, ScriptError> {
    Compiled::new(script).ast(engine).cloned()
}

/// Names one set of script sources for this build of kip.
fn cache_key(scripts: &[Script]) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    crate::VERSION.hash(&mut hasher);
    CACHE_FORMAT.hash(&mut hasher);
    for script in scripts {
        script.origin.display().hash(&mut hasher);
        script.source.hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

/// A temporary file renamed over `path`: readers see the old cache or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    let temp = dir.join(format!(".verbs.{}.tmp", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&temp, bytes))
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
}

fn text(map: &Map, key: &str) -> Result<String, String> {
    match map.get(key) {
        None => Ok(String::new()),
        Some(v) if v.is_unit() => Ok(String::new()),
        Some(v) => v
            .clone()
            .into_immutable_string()
            .map(|s| s.to_string())
            .map_err(|_| format!("`{key}` must be a string")),
    }
}

fn truth(map: &Map, key: &str) -> Result<bool, String> {
    match map.get(key) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .map_err(|_| format!("`{key}` must be true or false")),
    }
}

fn parse_verb(
    decl: Dynamic,
    script: &Arc<Compiled>,
    ast: &AST,
    script_index: usize,
) -> Result<Verb, String> {
    let map = decl.try_cast::<Map>().ok_or(
        "each entry of verbs() must be a map like #{ verb: \"app deploy\", run: \"deploy\" }",
    )?;
    let name = text(&map, "verb")?;
    let words: Vec<String> = name.split_whitespace().map(String::from).collect();
    if words.is_empty() {
        return Err("a verb declaration needs `verb`, its words (e.g. \"app deploy\")".into());
    }
    let func = text(&map, "run")?;
    if func.is_empty() {
        return Err(format!(
            "verb `{name}` needs `run`: the name of the function that runs it"
        ));
    }
    let has_fn = ast
        .iter_functions()
        .any(|f| f.name == func && f.params.len() == 1);
    if !has_fn {
        return Err(format!(
            "verb `{name}` runs `{func}`, but the script has no `fn {func}(opts)`"
        ));
    }
    let list = |key: &str| -> Result<Vec<Map>, String> {
        match map.get(key) {
            None => Ok(Vec::new()),
            Some(v) => v
                .clone()
                .into_array()
                .map_err(|_| format!("verb `{name}`: `{key}` must be an array of maps"))?
                .into_iter()
                .map(|d| {
                    d.try_cast::<Map>()
                        .ok_or(format!("verb `{name}`: each of `{key}` must be a map"))
                })
                .collect(),
        }
    };
    let flags = list("flags")?
        .iter()
        .map(|f| parse_flag(f).map_err(|e| format!("verb `{name}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let args = list("args")?
        .iter()
        .map(|a| {
            Ok(Arg {
                name: text(a, "name")?,
                help: text(a, "help")?,
                required: truth(a, "required")?,
                repeatable: truth(a, "repeatable")?,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| format!("verb `{name}`: {e}"))?;
    let destructive = truth(&map, "destructive")?;
    let read = truth(&map, "read")?;
    check_names(&flags, &args, destructive, read).map_err(|e| format!("verb `{name}`: {e}"))?;
    Ok(Verb {
        words,
        about: text(&map, "about")?,
        long: text(&map, "long")?,
        flags,
        args,
        destructive,
        read,
        func,
        script: script.clone(),
        script_index,
    })
}

/// Flag and argument names clap would reject or kip already uses: refused with the reason
/// instead of failing when the command line is built.
fn check_names(flags: &[Flag], args: &[Arg], destructive: bool, read: bool) -> Result<(), String> {
    let mut taken: Vec<(String, &str)> = vec![
        ("help".into(), "kip's own --help"),
        ("scripts".into(), "kip's own --scripts"),
    ];
    let mut shorts: Vec<(char, &str)> = vec![('h', "-h, kip's --help")];
    if destructive {
        taken.push(("yes".into(), "--yes, which destructive verbs get"));
        shorts.push(('y', "-y, short for --yes"));
    }
    if read {
        taken.push(("output".into(), "-o/--output, which read verbs get"));
        shorts.push(('o', "-o, short for --output"));
    }
    let names = flags
        .iter()
        .map(|f| (&f.name, "flag"))
        .chain(args.iter().map(|a| (&a.name, "argument")));
    for (name, what) in names {
        if let Some((_, owner)) = taken.iter().find(|(n, _)| n == name) {
            return Err(format!("{what} `{name}` clashes with {owner}: rename it"));
        }
        taken.push((name.clone(), "another flag or argument of the verb"));
    }
    for flag in flags {
        let Some(c) = flag.short else { continue };
        if let Some((_, owner)) = shorts.iter().find(|(s, _)| *s == c) {
            return Err(format!(
                "flag `{}` has short `-{c}`, which clashes with {owner}",
                flag.name
            ));
        }
        shorts.push((c, "another flag of the verb"));
    }
    Ok(())
}

fn parse_flag(f: &Map) -> Result<Flag, String> {
    let name = text(f, "name")?;
    if name.is_empty() || name.starts_with('-') {
        return Err("a flag needs `name` without dashes (e.g. \"replicas\")".into());
    }
    let ty = match text(f, "type")?.as_str() {
        "" | "string" => FlagType::String,
        "int" => FlagType::Int,
        "bool" => FlagType::Bool,
        other => {
            return Err(format!(
                "flag `{name}` has unknown type `{other}` (string, int or bool)"
            ));
        }
    };
    let short = text(f, "short")?;
    let short = match short.chars().collect::<Vec<_>>().as_slice() {
        [] => None,
        [c] => Some(*c),
        _ => return Err(format!("flag `{name}`: `short` must be one character")),
    };
    let default = f
        .get("default_value")
        .filter(|d| !d.is_unit())
        .map(|d| d.to_string());
    Ok(Flag {
        name,
        short,
        ty,
        help: text(f, "help")?,
        required: truth(f, "required")?,
        repeatable: truth(f, "repeatable")?,
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::SearchPath;

    fn script(name: &str, source: &str) -> Script {
        Script {
            stem: name.into(),
            origin: Origin::File(format!("/user/{name}.rhai").into()),
            source: source.into(),
        }
    }

    fn engine() -> Engine {
        crate::engine::new_engine(&crate::Limits::CLI, Arc::new(SearchPath::stdlib_only()))
    }

    const HELLO: &str = r#"fn verbs() {[ #{ verb: "hello", about: "Say hello", run: "hello" } ]}
fn hello(opts) { "hi" }"#;

    fn names(verbs: &Verbs) -> Vec<String> {
        verbs.all().iter().map(Verb::name).collect()
    }

    #[test]
    fn cached_declarations_compile_nothing_until_run() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache/verbs.json");
        let mut scripts = vec![script("hello", HELLO)];
        scripts.extend(SearchPath::stdlib_only().scripts());

        let first = Verbs::load_cached(&engine, &scripts, &cache).unwrap();
        assert!(first.all().iter().all(|v| v.script.is_compiled()));
        assert!(cache.exists());

        let second = Verbs::load_cached(&engine, &scripts, &cache).unwrap();
        assert_eq!(names(&second), names(&first));
        assert!(second.all().iter().all(|v| !v.script.is_compiled()));
        let hello = &second.chain(&["hello".to_string()])[0];
        assert_eq!(hello.about, "Say hello");
        assert_eq!(hello.script.origin.display(), "/user/hello.rhai");
        hello.script.ast(&engine).unwrap();
        let deploy = second.chain(&["app".into(), "deploy".into()])[0];
        assert!(!deploy.script.is_compiled(), "only what runs is compiled");
        assert_eq!(
            deploy.flags,
            first.chain(&["app".into(), "deploy".into()])[0].flags
        );
    }

    #[test]
    fn a_changed_script_or_a_broken_cache_is_read_afresh() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("verbs.json");
        Verbs::load_cached(&engine, &[script("hello", HELLO)], &cache).unwrap();

        let changed = HELLO.replace("Say hello", "Greet");
        let verbs = Verbs::load_cached(&engine, &[script("hello", &changed)], &cache).unwrap();
        assert_eq!(verbs.all()[0].about, "Greet");
        assert!(verbs.all()[0].script.is_compiled(), "compiled, not cached");

        std::fs::write(&cache, b"{not json").unwrap();
        let verbs = Verbs::load_cached(&engine, &[script("hello", &changed)], &cache).unwrap();
        assert_eq!(verbs.all()[0].about, "Greet");
        let again = Verbs::load_cached(&engine, &[script("hello", &changed)], &cache).unwrap();
        assert!(
            !again.all()[0].script.is_compiled(),
            "the cache was rewritten"
        );
    }

    #[test]
    fn a_broken_script_is_reported_not_cached() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("verbs.json");
        let broken = script(
            "hello",
            "fn verbs() {[ #{ verb: \"hello\", run: \"hello\" } ]",
        );
        assert!(Verbs::load_cached(&engine, &[broken], &cache).is_err());
        assert!(!cache.exists());
    }

    #[test]
    fn clashing_names_are_refused_with_the_reason() {
        let engine = engine();
        let cases = [
            (
                r#"#{ verb: "x", run: "x", flags: [#{ name: "help" }] }"#,
                "clashes with kip's own --help",
            ),
            (
                r#"#{ verb: "x", run: "x", flags: [#{ name: "a" }, #{ name: "a" }] }"#,
                "flag `a` clashes with another",
            ),
            (
                r#"#{ verb: "x", run: "x", destructive: true, flags: [#{ name: "yes" }] }"#,
                "--yes",
            ),
            (
                r#"#{ verb: "x", run: "x", read: true, flags: [#{ name: "f", short: "o" }] }"#,
                "-o",
            ),
            (
                r#"#{ verb: "x", run: "x", args: [#{ name: "n" }], flags: [#{ name: "n" }] }"#,
                "clashes",
            ),
        ];
        for (decl, expected) in cases {
            let source = format!("fn verbs() {{[ {decl} ]}}\nfn x(opts) {{ }}");
            let err = Verbs::load(&engine, &[script("x", &source)]).unwrap_err();
            assert!(err.message.contains(expected), "{decl}: {}", err.message);
        }
        let own_version = r#"fn verbs() {[ #{ verb: "x", run: "x", flags: [#{ name: "version" }] } ]}
fn x(opts) { }"#;
        assert!(Verbs::load(&engine, &[script("x", own_version)]).is_ok());
    }
}
