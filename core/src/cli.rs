//! The command tree built from verb declarations, and the `opts` map a verb's function gets.

use clap::{Arg as ClapArg, ArgAction, ArgMatches, Command};
use rhai::{Dynamic, Map};

use crate::verbs::{Flag, FlagType, Verb, Verbs};

/// Adds one subcommand per verb (grouped by their first word) to `root`. Verbs whose first word
/// is one of `reserved` (kip's own commands) are left out.
pub fn add_verbs(mut root: Command, verbs: &Verbs, reserved: &[&str]) -> Command {
    for verb in verbs.winners() {
        if reserved.contains(&verb.words[0].as_str()) {
            continue;
        }
        root = insert(root, &verb.words, verb);
    }
    root
}

fn insert(parent: Command, words: &[String], verb: &Verb) -> Command {
    let Some((first, rest)) = words.split_first() else {
        return parent;
    };
    if rest.is_empty() {
        return replace_subcommand(parent, verb_command(first, verb));
    }
    let group = parent.find_subcommand(first).cloned().unwrap_or_else(|| {
        Command::new(first.clone())
            .about(format!("{first} verbs"))
            .subcommand_required(true)
            .arg_required_else_help(true)
    });
    replace_subcommand(parent, insert(group, rest, verb))
}

fn replace_subcommand(parent: Command, child: Command) -> Command {
    let name = child.get_name().to_string();
    if parent.find_subcommand(&name).is_some() {
        parent.mut_subcommand(name, |_| child)
    } else {
        parent.subcommand(child)
    }
}

fn verb_command(name: &str, verb: &Verb) -> Command {
    let mut cmd = Command::new(name.to_string()).about(verb.about.clone());
    // A verb may have its own --version (`service add --version 16`): kip's gives way.
    if verb
        .flags
        .iter()
        .any(|f| f.name == "version" || f.short == Some('V'))
    {
        cmd = cmd.disable_version_flag(true);
    }
    if !verb.long.is_empty() {
        cmd = cmd.long_about(verb.long.clone());
    }
    for arg in &verb.args {
        let mut a = ClapArg::new(arg.name.clone())
            .value_name(arg.name.to_uppercase())
            .help(arg.help.clone())
            .required(arg.required);
        if arg.repeatable {
            a = a.action(ArgAction::Append).num_args(1..);
        }
        cmd = cmd.arg(a);
    }
    for flag in &verb.flags {
        let mut a = ClapArg::new(flag.name.clone())
            .long(flag.name.clone())
            .help(flag.help.clone())
            .required(flag.required)
            .hide(flag.hidden);
        if let Some(c) = flag.short {
            a = a.short(c);
        }
        a = match flag.ty {
            FlagType::Bool => a.action(ArgAction::SetTrue),
            // `--port -1` reaches the verb's own range check, which says what is allowed,
            // instead of clap's "unexpected argument '-1'".
            FlagType::Int => a
                .value_parser(clap::value_parser!(i64))
                .value_name("N")
                .allow_negative_numbers(true),
            FlagType::String => a.value_name("VALUE"),
        };
        if flag.repeatable && flag.ty != FlagType::Bool {
            a = a.action(ArgAction::Append);
        }
        // An empty default means "not given": keep it out of --help.
        if let Some(default) = &flag.default
            && flag.ty != FlagType::Bool
            && !default.is_empty()
        {
            a = a.default_value(default.clone());
        }
        cmd = cmd.arg(a);
    }
    if verb.destructive {
        cmd = cmd.arg(
            ClapArg::new("yes")
                .long("yes")
                .short('y')
                .action(ArgAction::SetTrue)
                .help("Do not ask for confirmation"),
        );
    }
    if verb.read {
        cmd = cmd.arg(
            ClapArg::new("output")
                .long("output")
                .short('o')
                .value_parser(["table", "json", "yaml"])
                .default_value("table")
                .help("Output format"),
        );
    }
    cmd
}

/// Walks the matches down the verb's words to its own arguments.
pub fn verb_matches<'a>(matches: &'a ArgMatches, words: &[String]) -> Option<&'a ArgMatches> {
    let mut current = matches;
    for word in words {
        let (name, sub) = current.subcommand()?;
        if name != word {
            return None;
        }
        current = sub;
    }
    Some(current)
}

/// The words of the verb the user chose, following the subcommands.
pub fn chosen_words(matches: &ArgMatches) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        words.push(name.to_string());
        current = sub;
    }
    words
}

/// The `opts` map: each flag and argument by name (dashes become underscores).
pub fn opts(verb: &Verb, matches: &ArgMatches) -> Map {
    let mut opts = Map::new();
    let key = |name: &str| name.replace('-', "_");
    for flag in &verb.flags {
        let value = match (flag.ty, flag.repeatable) {
            (FlagType::Bool, _) => Dynamic::from(matches.get_flag(&flag.name)),
            (FlagType::Int, true) => many(
                matches
                    .get_many::<i64>(&flag.name)
                    .map(|v| v.copied().map(Dynamic::from).collect()),
            ),
            (FlagType::Int, false) => matches
                .get_one::<i64>(&flag.name)
                .map(|n| Dynamic::from(*n))
                .unwrap_or(Dynamic::UNIT),
            (FlagType::String, true) => many(
                matches
                    .get_many::<String>(&flag.name)
                    .map(|v| v.map(|s| Dynamic::from(s.clone())).collect()),
            ),
            (FlagType::String, false) => matches
                .get_one::<String>(&flag.name)
                .cloned()
                .or_else(|| flag.default.clone())
                .map(Dynamic::from)
                .unwrap_or(Dynamic::UNIT),
        };
        opts.insert(key(&flag.name).into(), value);
    }
    for arg in &verb.args {
        let value = if arg.repeatable {
            many(
                matches
                    .get_many::<String>(&arg.name)
                    .map(|v| v.map(|s| Dynamic::from(s.clone())).collect()),
            )
        } else {
            matches
                .get_one::<String>(&arg.name)
                .map(|s| Dynamic::from(s.clone()))
                .unwrap_or(Dynamic::UNIT)
        };
        opts.insert(key(&arg.name).into(), value);
    }
    if verb.destructive {
        opts.insert("yes".into(), Dynamic::from(matches.get_flag("yes")));
    }
    if verb.read {
        let output = matches
            .get_one::<String>("output")
            .cloned()
            .unwrap_or_default();
        opts.insert("output".into(), Dynamic::from(output));
    }
    opts
}

/// What [`complete_opts`] does with a key the verb has no flag or argument for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnknownKeys {
    /// `kip::run`: a typo must not pass silently.
    Refuse,
    /// `kip::next`: an override passes on the flags it added, which the declaration it
    /// overrides does not know.
    Keep,
}

/// The opts a script passes to `kip::run(verb, opts)` or `kip::next(opts)`, completed as the
/// command line would complete them: defaults for flags left out, `false` for bools, `[]` for
/// repeatable ones. A required flag left out or a value of the wrong type is refused, naming
/// it; so is an unknown key, unless `unknown` keeps it.
pub fn complete_opts(verb: &Verb, given: Map, unknown: UnknownKeys) -> Result<Map, String> {
    let key = |name: &str| name.replace('-', "_");
    let verb_name = verb.name();
    let mut known: Vec<String> = verb.flags.iter().map(|f| key(&f.name)).collect();
    known.extend(verb.args.iter().map(|a| key(&a.name)));
    if verb.destructive {
        known.push("yes".into());
    }
    if verb.read {
        known.push("output".into());
    }
    if let Some(unknown) = given
        .keys()
        .filter(|_| unknown == UnknownKeys::Refuse)
        .find(|k| !known.iter().any(|n| n == k.as_str()))
    {
        return Err(format!(
            "`{verb_name}` has no flag or argument `{unknown}` (it has: {})",
            known.join(", ")
        ));
    }
    let mut opts = given;
    for flag in &verb.flags {
        let name = key(&flag.name);
        match opts.get(name.as_str()) {
            Some(value) => check_type(&verb_name, flag, value)?,
            None if flag.required => {
                return Err(format!("`{verb_name}` needs `{name}` (--{})", flag.name));
            }
            None => {
                let value = match (flag.ty, flag.repeatable, &flag.default) {
                    (FlagType::Bool, _, _) => Dynamic::FALSE,
                    (_, true, _) => Dynamic::from_array(Vec::new()),
                    (FlagType::Int, false, Some(d)) => {
                        d.parse::<i64>().map(Dynamic::from).unwrap_or(Dynamic::UNIT)
                    }
                    (FlagType::String, false, Some(d)) => Dynamic::from(d.clone()),
                    (_, false, None) => Dynamic::UNIT,
                };
                opts.insert(name.into(), value);
            }
        }
    }
    for arg in &verb.args {
        let name = key(&arg.name);
        if !opts.contains_key(name.as_str()) {
            if arg.required {
                return Err(format!(
                    "`{verb_name}` needs `{name}` (its <{}> argument)",
                    arg.name.to_uppercase()
                ));
            }
            let value = if arg.repeatable {
                Dynamic::from_array(Vec::new())
            } else {
                Dynamic::UNIT
            };
            opts.insert(name.into(), value);
        }
    }
    if verb.destructive && !opts.contains_key("yes") {
        opts.insert("yes".into(), Dynamic::FALSE);
    }
    if verb.read && !opts.contains_key("output") {
        opts.insert("output".into(), Dynamic::from("table"));
    }
    Ok(opts)
}

fn check_type(verb: &str, flag: &Flag, value: &Dynamic) -> Result<(), String> {
    let fits = |v: &Dynamic| match flag.ty {
        FlagType::Bool => v.is_bool(),
        FlagType::Int => v.is_int(),
        FlagType::String => v.is_string() || v.is_unit(),
    };
    let ok = if flag.repeatable && flag.ty != FlagType::Bool {
        value
            .read_lock::<rhai::Array>()
            .is_some_and(|items| items.iter().all(fits))
    } else {
        fits(value)
    };
    if ok {
        return Ok(());
    }
    let wanted = match (flag.ty, flag.repeatable) {
        (FlagType::Bool, _) => "a bool",
        (FlagType::Int, false) => "an int",
        (FlagType::String, false) => "a string",
        (FlagType::Int, true) => "an array of ints",
        (FlagType::String, true) => "an array of strings",
    };
    Err(format!(
        "`{verb}`: `{}` must be {wanted}, not {}",
        flag.name.replace('-', "_"),
        value.type_name()
    ))
}

fn many(values: Option<Vec<Dynamic>>) -> Dynamic {
    Dynamic::from_array(values.unwrap_or_default())
}
