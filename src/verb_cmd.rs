//! Running what scripts provide: verbs, `kip run`, `kip eval`, `kip verbs`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use builtins::Kind;
use builtins::{Host, Interrupt, OutputFormat, Rechoose, UiSettings};
use kip_core::{Kip, Limits, ScriptError, SearchPath};

use crate::home::kip_home;

pub use crate::cli_error::CliError as Failure;

/// The value of `--scripts DIR` (or `--scripts=DIR`) before clap runs: the verbs it adds are
/// part of the command tree clap parses.
fn scripts_flag(args: &[String]) -> Option<std::path::PathBuf> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--scripts" {
            return it.next().map(Into::into);
        }
        if let Some(dir) = arg.strip_prefix("--scripts=") {
            return Some(dir.into());
        }
    }
    None
}

pub fn load(args: &[String]) -> Result<Kip, Failure> {
    let home = kip_home().map_err(|e| Failure::new(Kind::Invalid, e))?;
    // Made here, before the verb cache or a script writes into it; a home that cannot be
    // made is reported by whatever needs it.
    let _ = crate::home::create(&home);
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let search = SearchPath::new(scripts_flag(args).as_deref(), &cwd, &home);
    let cache = home.join("cache").join("verbs.json");
    let kip = Kip::load_with_cache(search, &Limits::CLI, Some(&cache));
    check_broken(&kip, args)?;
    Ok(kip)
}

/// A broken script fails the commands that run a verb it declares, with the whole error; any
/// other command goes on without it, after one line that names it.
fn check_broken(kip: &Kip, args: &[String]) -> Result<(), Failure> {
    let sources = |name: &str| std::fs::read_to_string(name).ok();
    if let Some(broken) = kip.verbs.broken_for(&command_words(args)) {
        let note = format!(
            "  = kip left {} out: fix it, or move it out of the scripts folder",
            broken.origin.display()
        );
        return Err(Failure::script(&broken.error, &sources).with_note(&note));
    }
    for broken in kip.verbs.broken() {
        let at = broken
            .error
            .location
            .as_ref()
            .map(|at| format!(" (line {}, column {})", at.line, at.column))
            .unwrap_or_default();
        eprintln!(
            "warning: skipped {}, which is broken: {}{at}",
            broken.origin.display(),
            broken.error.message
        );
    }
    Ok(())
}

/// The words of the command line before its first flag (`app deploy` of `kip -v app deploy
/// --name web`), kip's own leading flags skipped.
fn command_words(args: &[String]) -> Vec<String> {
    let mut words = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--scripts" => {
                it.next();
            }
            "-v" | "--verbose" => {}
            a if a.starts_with('-') && words.is_empty() => {}
            a if a.starts_with('-') => break,
            a => words.push(a.to_string()),
        }
    }
    words
}

fn render(kip: &Kip, err: ScriptError) -> Failure {
    Failure::script(&err, &|name| kip.source_of(name))
}

/// What a host takes from a caller that outlives it (`kip shell`, whose every line gets a host
/// of its own): the Ctrl-C that interrupts a line, and the open tunnels, which live as long as
/// the session. A command run once takes the default: no interrupt, tunnels of its own.
#[derive(Clone, Default)]
pub struct Session {
    pub interrupt: Option<Arc<Interrupt>>,
    pub tunnels: Arc<std::sync::Mutex<builtins::tunnel::Tunnels>>,
    /// Where `ui::` output goes instead of the terminal (`kip test`), if anywhere.
    pub captured: Option<builtins::host::Captured>,
}

/// The host builtins see: runtime, kip home, templates, terminal settings and the cluster.
pub fn host(
    kip: &Kip,
    runtime: &tokio::runtime::Runtime,
    opts: &rhai::Map,
    session: &Session,
) -> Result<Arc<Host>, Failure> {
    let home = kip_home().map_err(|e| Failure::new(Kind::Invalid, e))?;
    host_in(kip, runtime, opts, session, home, crate::cluster::choose)
}

/// [`host`] for the kip home `home`, whose cluster `choose` picks (again after a script
/// changes it).
pub fn host_in(
    kip: &Kip,
    runtime: &tokio::runtime::Runtime,
    opts: &rhai::Map,
    session: &Session,
    home: std::path::PathBuf,
    choose: fn(&Path) -> Result<crate::cluster::Choice, String>,
) -> Result<Arc<Host>, Failure> {
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let output = match opts.get("output").map(|o| o.to_string()).as_deref() {
        Some("json") => OutputFormat::Json,
        Some("yaml") => OutputFormat::Yaml,
        _ => OutputFormat::Table,
    };
    let ui = UiSettings {
        yes: opts
            .get("yes")
            .and_then(|y| y.as_bool().ok())
            .unwrap_or(false),
        interactive,
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        spinners: std::io::stderr().is_terminal(),
        output,
    };
    let handle = runtime.handle().clone();
    let cluster_home = home.clone();
    let rechoose: Rechoose = Arc::new(move || {
        let choice = choose(&cluster_home)?;
        Ok(crate::cluster::host_choice(
            choice,
            handle.clone(),
            cluster_home.clone(),
        ))
    });
    let cluster = rechoose().map_err(|e| Failure::new(Kind::NotFound, e))?;
    Ok(Arc::new(Host {
        rechoose: Some(rechoose),
        interrupt: session.interrupt.clone(),
        tunnels: session.tunnels.clone(),
        captured: session.captured.clone(),
        ..Host::new(
            runtime.handle().clone(),
            home,
            kip.search.clone(),
            ui,
            cluster,
        )
    }))
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Kind::Internal, format!("cannot start the runtime: {e}")))
}

fn with_host(kip: &mut Kip, opts: &rhai::Map) -> Result<tokio::runtime::Runtime, Failure> {
    let runtime = runtime()?;
    let host = host(kip, &runtime, opts, &Session::default())?;
    builtins::set_host(&mut kip.engine, host);
    Ok(runtime)
}

pub fn run_verb(kip: &mut Kip, matches: &clap::ArgMatches) -> Result<(), Failure> {
    let words = kip_core::cli::chosen_words(matches);
    let chain = kip.verbs.chain(&words);
    let Some(verb) = chain.first() else {
        return Err(Failure::new(
            Kind::Invalid,
            format!("unknown command `{}`", words.join(" ")),
        ));
    };
    let verb_matches = kip_core::cli::verb_matches(matches, &words)
        .ok_or_else(|| Failure::new(Kind::Invalid, "bad command line"))?;
    let opts = kip_core::cli::opts(verb, verb_matches);
    let _runtime = with_host(kip, &opts)?;
    kip.run_verb(&words, opts)
        .map(|_| ())
        .map_err(|e| render(kip, e))
}

pub fn run_file(kip: &mut Kip, file: &Path, args: Vec<String>) -> Result<(), Failure> {
    let source = std::fs::read_to_string(file).map_err(|e| {
        Failure::new(
            Kind::Invalid,
            format!("cannot read `{}`: {e}", file.display()),
        )
    })?;
    let _runtime = with_host(kip, &rhai::Map::new())?;
    kip.run_file(&file.display().to_string(), &source, args)
        .map(|_| ())
        .map_err(|e| render(kip, e))
}

pub fn eval(kip: &mut Kip, expr: &str) -> Result<(), Failure> {
    let _runtime = with_host(kip, &rhai::Map::new())?;
    let value = kip.eval(expr).map_err(|e| render(kip, e))?;
    if !value.is_unit() {
        println!("{value}");
    }
    Ok(())
}

/// `kip doc [TOPIC]`: the script API reference, or one part of it.
pub fn doc(kip: &Kip, topic: Option<&str>) -> Result<(), Failure> {
    let reference = kip_core::doc::Reference::of(kip);
    let text = match topic {
        None => reference.markdown(),
        Some(topic) => reference.topic(topic).ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                format!(
                    "no topic `{topic}` in the reference: try {} (or a function such as k8s::get)",
                    reference.topics().join(", ")
                ),
            )
        })?,
    };
    print!("{text}");
    Ok(())
}

/// `kip verbs`: kip's own commands (`builtins`, the clap tree before verbs are added), then
/// every verb scripts declare, each with where it comes from.
pub fn list(kip: &Kip, builtins: &clap::Command) -> Result<(), Failure> {
    let mut rows: Vec<[String; 3]> = Vec::new();
    for command in builtins.get_subcommands() {
        let about = |c: &clap::Command| c.get_about().map(|a| a.to_string()).unwrap_or_default();
        let leaves: Vec<_> = command.get_subcommands().collect();
        if leaves.is_empty() {
            rows.push([
                command.get_name().into(),
                about(command),
                "built into kip".into(),
            ]);
        }
        for leaf in leaves {
            let name = format!("{} {}", command.get_name(), leaf.get_name());
            rows.push([name, about(leaf), "built into kip".into()]);
        }
    }
    // An overridden verb shows its whole chain: the declaration that runs, then each one
    // `kip::next` reaches.
    rows.extend(kip.verbs.winners().iter().map(|v| {
        let chain: Vec<String> = kip
            .verbs
            .chain(&v.words)
            .iter()
            .map(|d| d.script.origin.display())
            .collect();
        [v.name(), v.about.clone(), chain.join(" → ")]
    }));
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
            .max(5)
    };
    let (w0, w1) = (width(0), width(1));
    println!("{:w0$}  {:w1$}  SOURCE", "VERB", "ABOUT");
    for [name, about, source] in &rows {
        println!("{name:w0$}  {about:w1$}  {source}");
    }
    Ok(())
}
