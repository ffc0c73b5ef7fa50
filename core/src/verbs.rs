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
    /// Accepted but left out of `--help` and completions (an override hiding a flag the verb
    /// it wraps still reads).
    #[serde(default)]
    pub hidden: bool,
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
const CACHE_FORMAT: u32 = 2;

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
    broken: Vec<Broken>,
}

/// A script on the search path that could not be loaded, and why.
#[derive(Debug, Clone)]
pub struct Broken {
    pub origin: Origin,
    pub error: ScriptError,
    /// The verbs its text appears to declare (its `verbs()` did not run, or failed): a
    /// command running one of them fails with `error` instead of running another declaration.
    pub verbs: Vec<Vec<String>>,
}

impl Broken {
    fn new(script: &Script, error: ScriptError) -> Broken {
        Broken {
            origin: script.origin.clone(),
            error,
            verbs: declared_words(&script.source),
        }
    }
}

/// The words of every `verb: "…"` in a script's text.
fn declared_words(source: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("verb") {
        rest = &rest[at + "verb".len()..];
        let Some(after_colon) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        let Some(quoted) = after_colon.trim_start().strip_prefix('"') else {
            continue;
        };
        if let Some(end) = quoted.find('"') {
            let words: Vec<String> = quoted[..end].split_whitespace().map(String::from).collect();
            if !words.is_empty() {
                found.push(words);
            }
        }
    }
    found
}

/// A script's declarations, or why it has none to give.
fn declarations(
    engine: &Engine,
    script: &Script,
    index: usize,
) -> Result<Vec<Declaration>, ScriptError> {
    let compiled = Arc::new(Compiled::new(script));
    let ast = compiled.ast(engine)?;
    let declares = ast
        .iter_functions()
        .any(|f| f.name == "verbs" && f.params.is_empty());
    if !declares {
        return Ok(Vec::new());
    }
    let options = rhai::CallFnOptions::new().eval_ast(false);
    let values: Dynamic = engine
        .call_fn_with_options(options, &mut rhai::Scope::new(), ast, "verbs", ())
        .map_err(|e| {
            let mut error = ScriptError::runtime_in(&e, &compiled.origin.display());
            error.failure = crate::report::Failure::Script;
            error
        })?;
    let Ok(values) = values.into_array() else {
        return Err(ScriptError::declaration(
            &compiled.origin,
            "verbs() must return an array of maps like #{ verb: \"app deploy\", run: \"deploy\" }",
        ));
    };
    values
        .into_iter()
        .map(|value| {
            parse_declaration(value, &compiled, ast, index)
                .map_err(|msg| ScriptError::declaration(&compiled.origin, &msg))
        })
        .collect()
}

impl Verbs {
    /// Compiles each script and collects what its `verbs()` declares. A declaration of a verb
    /// that a later script on the path also declares overrides it: it inherits that verb's
    /// flags, arguments, help, `read` and `destructive`, and states only what it changes.
    ///
    /// A script that does not compile, whose `verbs()` fails, or whose declarations are wrong
    /// is left out and kept in [`Verbs::broken`]: only a command that needs it fails.
    pub fn load(engine: &Engine, scripts: &[Script]) -> Verbs {
        let mut declared = Vec::new();
        let mut broken = Vec::new();
        for (index, script) in scripts.iter().enumerate() {
            match declarations(engine, script, index) {
                Ok(found) => declared.extend(found),
                Err(error) => broken.push(Broken::new(script, error)),
            }
        }
        // A script whose override cannot apply goes, and the chains are resolved without it.
        loop {
            match resolve_overrides(&declared) {
                Ok(all) => return Verbs { all, broken },
                Err((index, error)) => {
                    declared.retain(|d| d.script_index != index);
                    broken.push(Broken::new(&scripts[index], error));
                }
            }
        }
    }

    /// Like [`Verbs::load`], but the declarations come from `cache_file` when it was written for
    /// these very sources, and then no script is compiled until it runs. A cache that cannot be
    /// read or written only costs the compilation; sources with a broken script are not cached,
    /// so each command reports it until it is fixed.
    pub fn load_cached(engine: &Engine, scripts: &[Script], cache_file: &Path) -> Verbs {
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
            return Verbs {
                all,
                broken: Vec::new(),
            };
        }
        let verbs = Verbs::load(engine, scripts);
        if verbs.broken.is_empty() {
            let cache = Cached {
                key,
                verbs: verbs.all.clone(),
            };
            if let Ok(bytes) = serde_json::to_vec(&cache) {
                write_atomically(cache_file, &bytes);
            }
        }
        verbs
    }

    /// The scripts left out because they are broken.
    pub fn broken(&self) -> &[Broken] {
        &self.broken
    }

    /// The broken script that seems to declare the verb `words` start with, if one does.
    pub fn broken_for(&self, words: &[String]) -> Option<&Broken> {
        self.broken.iter().find(|b| {
            b.verbs
                .iter()
                .any(|v| !v.is_empty() && words.starts_with(v))
        })
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

/// One entry of a script's `verbs()`, before what it inherits is filled in: `None` is "not
/// stated".
struct Declaration {
    words: Vec<String>,
    about: Option<String>,
    long: Option<String>,
    flags: Vec<FlagDeclaration>,
    args: Option<Vec<Arg>>,
    destructive: Option<bool>,
    read: Option<bool>,
    func: String,
    script: Arc<Compiled>,
    script_index: usize,
}

/// One flag as a declaration states it: a new flag, or changes to an inherited one.
struct FlagDeclaration {
    name: String,
    short: Option<char>,
    ty: Option<FlagType>,
    help: Option<String>,
    required: Option<bool>,
    repeatable: Option<bool>,
    /// `Some(None)`: `default_value: ()`, which takes an inherited default away.
    default: Option<Option<String>>,
    hidden: Option<bool>,
}

/// Resolves each declaration against the one it overrides (the next declaration of the same
/// verb along the search path), from the stdlib's up to the user's.
fn resolve_overrides(declared: &[Declaration]) -> Result<Vec<Verb>, (usize, ScriptError)> {
    let mut resolved: Vec<Option<Verb>> = declared.iter().map(|_| None).collect();
    for (i, declaration) in declared.iter().enumerate().rev() {
        let base = declared[i + 1..]
            .iter()
            .position(|d| d.words == declaration.words)
            .and_then(|offset| resolved[i + 1 + offset].as_ref());
        let verb = inherit(declaration, base).map_err(|msg| {
            let error = ScriptError::declaration(
                &declaration.script.origin,
                &format!("verb `{}`: {msg}", declaration.words.join(" ")),
            );
            (declaration.script_index, error)
        })?;
        resolved[i] = Some(verb);
    }
    Ok(resolved.into_iter().flatten().collect())
}

/// `declaration` with what it does not state taken from `base`, the verb it overrides.
fn inherit(declaration: &Declaration, base: Option<&Verb>) -> Result<Verb, String> {
    let mut flags: Vec<Flag> = base.map(|b| b.flags.clone()).unwrap_or_default();
    for stated in &declaration.flags {
        match flags.iter_mut().find(|f| f.name == stated.name) {
            Some(flag) => change_flag(flag, stated)?,
            None => flags.push(new_flag(stated)),
        }
    }
    let args = match (&declaration.args, base) {
        (Some(args), _) => args.clone(),
        (None, Some(base)) => base.args.clone(),
        (None, None) => Vec::new(),
    };
    let inherited = |stated: &Option<bool>, of: fn(&Verb) -> bool| {
        stated.unwrap_or_else(|| base.is_some_and(of))
    };
    let destructive = inherited(&declaration.destructive, |b| b.destructive);
    let read = inherited(&declaration.read, |b| b.read);
    check_names(&flags, &args, destructive, read)?;
    let text = |stated: &Option<String>, of: fn(&Verb) -> &String| {
        stated
            .clone()
            .or_else(|| base.map(|b| of(b).clone()))
            .unwrap_or_default()
    };
    Ok(Verb {
        words: declaration.words.clone(),
        about: text(&declaration.about, |b| &b.about),
        // A new `about` without a `long` speaks for the verb: the old long help would not.
        long: match (&declaration.about, &declaration.long) {
            (Some(_), None) => String::new(),
            _ => text(&declaration.long, |b| &b.long),
        },
        flags,
        args,
        destructive,
        read,
        func: declaration.func.clone(),
        script: declaration.script.clone(),
        script_index: declaration.script_index,
    })
}

fn new_flag(stated: &FlagDeclaration) -> Flag {
    Flag {
        name: stated.name.clone(),
        short: stated.short,
        ty: stated.ty.unwrap_or(FlagType::String),
        help: stated.help.clone().unwrap_or_default(),
        required: stated.required.unwrap_or(false),
        repeatable: stated.repeatable.unwrap_or(false),
        default: stated.default.clone().flatten(),
        hidden: stated.hidden.unwrap_or(false),
    }
}

/// An inherited flag with what an override states about it. Its type stays: the verb it
/// wraps reads the value as that type.
fn change_flag(flag: &mut Flag, stated: &FlagDeclaration) -> Result<(), String> {
    if let Some(ty) = stated.ty
        && ty != flag.ty
    {
        return Err(format!(
            "flag `{}` is {} in the verb it overrides and cannot become {}: \
             add a flag of another name instead",
            flag.name,
            type_name(flag.ty),
            type_name(ty)
        ));
    }
    if stated.short.is_some() {
        flag.short = stated.short;
    }
    if let Some(help) = &stated.help {
        flag.help = help.clone();
    }
    if let Some(required) = stated.required {
        flag.required = required;
    }
    if let Some(repeatable) = stated.repeatable {
        flag.repeatable = repeatable;
    }
    if let Some(default) = &stated.default {
        flag.default = default.clone();
    }
    if let Some(hidden) = stated.hidden {
        flag.hidden = hidden;
    }
    Ok(())
}

fn type_name(ty: FlagType) -> &'static str {
    match ty {
        FlagType::String => "a string",
        FlagType::Int => "an int",
        FlagType::Bool => "a bool",
    }
}

fn text(map: &Map, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(Some(String::new())),
        Some(v) => v
            .clone()
            .into_immutable_string()
            .map(|s| Some(s.to_string()))
            .map_err(|_| format!("`{key}` must be a string")),
    }
}

fn truth(map: &Map, key: &str) -> Result<Option<bool>, String> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .map_err(|_| format!("`{key}` must be true or false")),
    }
}

/// The keys a declaration may have: a misspelt one (`flag:`, `destrutive:`) is refused
/// rather than ignored.
const DECLARATION_KEYS: &[&str] = &[
    "verb",
    "about",
    "long",
    "flags",
    "args",
    "destructive",
    "read",
    "run",
];
const FLAG_KEYS: &[&str] = &[
    "name",
    "type",
    "short",
    "help",
    "required",
    "repeatable",
    "default_value",
    "hidden",
];
const ARG_KEYS: &[&str] = &["name", "help", "required", "repeatable"];

fn known_keys(map: &Map, keys: &[&str], what: &str) -> Result<(), String> {
    match map.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(unknown) => Err(format!(
            "{what} has no key `{unknown}` (it takes {})",
            keys.join(", ")
        )),
        None => Ok(()),
    }
}

fn parse_declaration(
    decl: Dynamic,
    script: &Arc<Compiled>,
    ast: &AST,
    script_index: usize,
) -> Result<Declaration, String> {
    let map = decl.try_cast::<Map>().ok_or(
        "each entry of verbs() must be a map like #{ verb: \"app deploy\", run: \"deploy\" }",
    )?;
    let name = text(&map, "verb")?.unwrap_or_default();
    let words: Vec<String> = name.split_whitespace().map(String::from).collect();
    if words.is_empty() {
        return Err("a verb declaration needs `verb`, its words (e.g. \"app deploy\")".into());
    }
    known_keys(&map, DECLARATION_KEYS, &format!("verb `{name}`"))?;
    let func = text(&map, "run")?.unwrap_or_default();
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
    let list = |key: &str| -> Result<Option<Vec<Map>>, String> {
        match map.get(key) {
            None => Ok(None),
            Some(v) => v
                .clone()
                .into_array()
                .map_err(|_| format!("verb `{name}`: `{key}` must be an array of maps"))?
                .into_iter()
                .map(|d| {
                    d.try_cast::<Map>()
                        .ok_or(format!("verb `{name}`: each of `{key}` must be a map"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
        }
    };
    let flags = list("flags")?
        .unwrap_or_default()
        .iter()
        .map(|f| parse_flag(f).map_err(|e| format!("verb `{name}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((_, twice)) = flags
        .iter()
        .enumerate()
        .find(|(i, f)| flags[..*i].iter().any(|g| g.name == f.name))
    {
        return Err(format!(
            "verb `{name}`: flag `{}` clashes with another flag of the verb",
            twice.name
        ));
    }
    let args = list("args")?
        .map(|args| {
            args.iter()
                .map(|a| {
                    known_keys(a, ARG_KEYS, "an argument")?;
                    Ok(Arg {
                        name: text(a, "name")?.unwrap_or_default(),
                        help: text(a, "help")?.unwrap_or_default(),
                        required: truth(a, "required")?.unwrap_or(false),
                        repeatable: truth(a, "repeatable")?.unwrap_or(false),
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()
        .map_err(|e| format!("verb `{name}`: {e}"))?;
    Ok(Declaration {
        words,
        about: text(&map, "about")?,
        long: text(&map, "long")?,
        flags,
        args,
        destructive: truth(&map, "destructive")?,
        read: truth(&map, "read")?,
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

fn parse_flag(f: &Map) -> Result<FlagDeclaration, String> {
    let name = text(f, "name")?.unwrap_or_default();
    if name.is_empty() || name.starts_with('-') {
        return Err("a flag needs `name` without dashes (e.g. \"replicas\")".into());
    }
    known_keys(f, FLAG_KEYS, &format!("flag `{name}`"))?;
    let ty = match text(f, "type")?.as_deref() {
        None => None,
        Some("" | "string") => Some(FlagType::String),
        Some("int") => Some(FlagType::Int),
        Some("bool") => Some(FlagType::Bool),
        Some(other) => {
            return Err(format!(
                "flag `{name}` has unknown type `{other}` (string, int or bool)"
            ));
        }
    };
    let short = text(f, "short")?.unwrap_or_default();
    let short = match short.chars().collect::<Vec<_>>().as_slice() {
        [] => None,
        [c] => Some(*c),
        _ => return Err(format!("flag `{name}`: `short` must be one character")),
    };
    let default = f
        .get("default_value")
        .map(|d| (!d.is_unit()).then(|| d.to_string()));
    Ok(FlagDeclaration {
        name,
        short,
        ty,
        help: text(f, "help")?,
        required: truth(f, "required")?,
        repeatable: truth(f, "repeatable")?,
        default,
        hidden: truth(f, "hidden")?,
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

        let first = Verbs::load_cached(&engine, &scripts, &cache);
        assert!(first.all().iter().all(|v| v.script.is_compiled()));
        assert!(cache.exists());

        let second = Verbs::load_cached(&engine, &scripts, &cache);
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
        Verbs::load_cached(&engine, &[script("hello", HELLO)], &cache);

        let changed = HELLO.replace("Say hello", "Greet");
        let verbs = Verbs::load_cached(&engine, &[script("hello", &changed)], &cache);
        assert_eq!(verbs.all()[0].about, "Greet");
        assert!(verbs.all()[0].script.is_compiled(), "compiled, not cached");

        std::fs::write(&cache, b"{not json").unwrap();
        let verbs = Verbs::load_cached(&engine, &[script("hello", &changed)], &cache);
        assert_eq!(verbs.all()[0].about, "Greet");
        let again = Verbs::load_cached(&engine, &[script("hello", &changed)], &cache);
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
        let verbs = Verbs::load_cached(&engine, &[broken], &cache);
        assert!(verbs.all().is_empty());
        assert_eq!(verbs.broken().len(), 1);
        assert_eq!(verbs.broken()[0].verbs, [["hello".to_string()]]);
        assert!(
            verbs.broken_for(&["hello".into(), "x".into()]).is_some(),
            "a command of the broken script finds it"
        );
        assert!(verbs.broken_for(&["other".into()]).is_none());
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
            let verbs = Verbs::load(&engine, &[script("x", &source)]);
            let err = &verbs.broken()[0].error;
            assert!(err.message.contains(expected), "{decl}: {}", err.message);
        }
        let own_version = r#"fn verbs() {[ #{ verb: "x", run: "x", flags: [#{ name: "version" }] } ]}
fn x(opts) { }"#;
        assert!(
            Verbs::load(&engine, &[script("x", own_version)])
                .broken()
                .is_empty()
        );
    }

    fn with_stdlib(user: &[Script]) -> Verbs {
        let mut scripts = user.to_vec();
        scripts.extend(SearchPath::stdlib_only().scripts());
        let verbs = Verbs::load(&engine(), &scripts);
        assert!(verbs.broken().is_empty(), "{:?}", verbs.broken());
        verbs
    }

    fn deploy() -> Vec<String> {
        vec!["app".into(), "deploy".into()]
    }

    #[test]
    fn an_override_inherits_what_it_does_not_state() {
        let team = script(
            "team",
            r#"fn verbs() {[ #{ verb: "app deploy", flags: [#{ name: "team", help: "Owning team" }], run: "deploy" } ]}
fn deploy(opts) { kip::next(opts) }"#,
        );
        let verbs = with_stdlib(&[team]);
        let chain = verbs.chain(&deploy());
        let (mine, stdlib) = (chain[0], chain[1]);
        assert_eq!(mine.about, stdlib.about);
        assert_eq!(mine.args, stdlib.args);
        assert_eq!(mine.read, stdlib.read);
        assert_eq!(mine.destructive, stdlib.destructive);
        assert_eq!(&mine.flags[..stdlib.flags.len()], &stdlib.flags[..]);
        let added = mine.flags.last().unwrap();
        assert_eq!(
            (added.name.as_str(), added.help.as_str()),
            ("team", "Owning team")
        );
        assert_eq!(mine.script.origin.display(), "/user/team.rhai");
        assert!(
            stdlib.flags.iter().all(|f| f.name != "team"),
            "the stdlib's own is unchanged"
        );
    }

    #[test]
    fn an_override_changes_a_default_or_hides_a_flag_keeping_the_rest() {
        let wrapper = script(
            "wrapper",
            r#"fn verbs() {[ #{ verb: "app deploy", about: "Deploy, twice over", run: "deploy",
    flags: [#{ name: "replicas", default_value: 2 }, #{ name: "allow-many-replicas", hidden: true }] } ]}
fn deploy(opts) { kip::next(opts) }"#,
        );
        let verbs = with_stdlib(&[wrapper]);
        let chain = verbs.chain(&deploy());
        let flag =
            |verb: &Verb, name: &str| verb.flags.iter().find(|f| f.name == name).cloned().unwrap();
        let (mine, stdlib) = (chain[0], chain[1]);
        assert_eq!(mine.about, "Deploy, twice over");
        let replicas = flag(mine, "replicas");
        assert_eq!(replicas.default.as_deref(), Some("2"));
        assert_eq!(replicas.ty, FlagType::Int);
        assert_eq!(replicas.help, flag(stdlib, "replicas").help);
        assert!(flag(mine, "allow-many-replicas").hidden);
        assert_eq!(mine.flags.len(), stdlib.flags.len());
    }

    #[test]
    fn overrides_stack_each_on_the_one_below() {
        let outer = script(
            "outer",
            r#"fn verbs() {[ #{ verb: "app deploy", flags: [#{ name: "owner" }], run: "d" } ]} fn d(opts) { kip::next(opts) }"#,
        );
        let inner = script(
            "inner",
            r#"fn verbs() {[ #{ verb: "app deploy", flags: [#{ name: "team", required: true }], run: "d" } ]} fn d(opts) { kip::next(opts) }"#,
        );
        let verbs = with_stdlib(&[outer, inner]);
        let chain = verbs.chain(&deploy());
        assert_eq!(chain.len(), 3);
        let names = |v: &Verb| v.flags.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        assert!(names(chain[0]).ends_with(&["team".to_string(), "owner".to_string()]));
        assert!(names(chain[1]).ends_with(&["team".to_string()]));
        assert!(
            chain[0]
                .flags
                .iter()
                .any(|f| f.name == "team" && f.required)
        );
    }

    #[test]
    fn what_an_override_cannot_change_is_refused_naming_its_file() {
        let cases = [
            (
                r#"flags: [#{ name: "replicas", type: "string" }]"#,
                "flag `replicas` is an int",
            ),
            (
                r#"flags: [#{ name: "team", defualt_value: 1 }]"#,
                "no key `defualt_value`",
            ),
            (r#"flag: [#{ name: "team" }]"#, "no key `flag`"),
            (
                r#"flags: [#{ name: "team", short: "o" }], read: true"#,
                "-o",
            ),
        ];
        for (stated, expected) in cases {
            let source = format!(
                "fn verbs() {{[ #{{ verb: \"app deploy\", run: \"d\", {stated} }} ]}}\nfn d(opts) {{ }}"
            );
            let mut scripts = vec![script("bad", &source)];
            scripts.extend(SearchPath::stdlib_only().scripts());
            let verbs = Verbs::load(&engine(), &scripts);
            let err = &verbs.broken()[0].error;
            assert!(err.message.contains(expected), "{stated}: {}", err.message);
            assert!(
                err.message.contains("/user/bad.rhai"),
                "{stated}: {}",
                err.message
            );
            let chain = verbs.chain(&deploy());
            assert_eq!(chain.len(), 1, "the stdlib's verb stays, alone");
            assert!(chain[0].script.origin.is_stdlib());
        }
    }
}
