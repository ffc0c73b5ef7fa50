//! Verbs as scripts declare them: `fn verbs()` in a script returns an array of maps, one per
//! verb, naming the function that runs it. The CLI, `--help`, completions and `kip verbs` are all
//! built from these declarations.

use std::sync::Arc;

use rhai::{AST, Dynamic, Engine, Map};

use crate::report::ScriptError;
use crate::search::{Origin, Script};

/// The type of a flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagType {
    String,
    Int,
    Bool,
}

/// One `--flag` of a verb.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: String,
    pub help: String,
    pub required: bool,
    pub repeatable: bool,
}

/// A verb: its words (`["app", "deploy"]`), help, flags and the function that runs it.
#[derive(Debug, Clone)]
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
    pub script: Arc<Compiled>,
}

impl Verb {
    pub fn name(&self) -> String {
        self.words.join(" ")
    }
}

/// A compiled script and where it came from.
#[derive(Debug)]
pub struct Compiled {
    pub ast: AST,
    pub origin: Origin,
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
        for script in scripts {
            let compiled = Arc::new(compile(engine, script)?);
            let declares = compiled
                .ast
                .iter_functions()
                .any(|f| f.name == "verbs" && f.params.is_empty());
            if !declares {
                continue;
            }
            let options = rhai::CallFnOptions::new().eval_ast(false);
            let declared: Dynamic = engine
                .call_fn_with_options(options, &mut rhai::Scope::new(), &compiled.ast, "verbs", ())
                .map_err(|e| ScriptError::runtime(&e))?;
            for decl in declared.into_array().unwrap_or_default() {
                let verb = parse_verb(decl, &compiled)
                    .map_err(|msg| ScriptError::declaration(&compiled.origin, &msg))?;
                all.push(verb);
            }
        }
        Ok(Verbs { all })
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
pub fn compile(engine: &Engine, script: &Script) -> Result<Compiled, ScriptError> {
    let mut ast = engine
        .compile(&script.source)
        .map_err(|e| ScriptError::parse(&script.origin, &script.source, &e))?;
    ast.set_source(script.origin.display());
    Ok(Compiled {
        ast,
        origin: script.origin.clone(),
    })
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

fn parse_verb(decl: Dynamic, script: &Arc<Compiled>) -> Result<Verb, String> {
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
    let has_fn = script
        .ast
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
    Ok(Verb {
        words,
        about: text(&map, "about")?,
        long: text(&map, "long")?,
        flags,
        args,
        destructive: truth(&map, "destructive")?,
        read: truth(&map, "read")?,
        func,
        script: script.clone(),
    })
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
