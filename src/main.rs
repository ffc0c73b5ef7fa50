//! `kip`: the command-line front of Kipper. It builds the command tree from kip's own commands
//! and the verbs scripts declare, then runs the chosen one.

mod cli_error;
mod cluster;
mod console_cmd;
mod home;
mod sandbox_cmd;
mod sandbox_image;
mod sandbox_registry;
mod sandbox_server;
mod server_cmd;
mod shell_cmd;
mod test_cmd;
mod verb_cmd;

use builtins::Kind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use cli_error::CliError;

/// Counts heap bytes so a script's memory can be bounded (`kip_core::heap`).
#[global_allocator]
static HEAP: kip_core::heap::Counting = kip_core::heap::Counting;

/// Kipper turns a Linux server into a small Kubernetes platform.
#[derive(Parser)]
#[command(name = "kip", version, about, propagate_version = true)]
struct Cli {
    /// A folder of scripts that override or extend kip's verbs (also KIP_SCRIPTS).
    #[arg(long, global = true, value_name = "DIR")]
    scripts: Option<std::path::PathBuf>,

    /// Show every Kubernetes API call on stderr (method, URL, status, time). RUST_LOG, when
    /// set, chooses what is logged instead.
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Builtin,
}

/// kip's own commands; every other verb comes from a script.
#[derive(Subcommand)]
enum Builtin {
    /// Run the local sandbox cluster: a file-backed server that speaks the Kubernetes API.
    #[command(subcommand)]
    Sandbox(sandbox_cmd::SandboxCommand),
    /// List every verb and the script it comes from.
    Verbs,
    /// Run a pipeline script with kip's primitives.
    Run {
        /// The script to run.
        file: std::path::PathBuf,
        /// Arguments, available to the script as `ARGS`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Evaluate one Rhai expression and print its value.
    Eval {
        /// The expression, e.g. 'kip::version()'.
        expr: String,
    },
    /// Run verbs and Rhai in one interactive session.
    ///
    /// Each line is a verb command line (`app list -o json`, `project use shop/test`) or, when
    /// its first word is not a verb, Rhai (`let n = k8s::list("v1", "Namespace", "").len()`),
    /// whose variables and functions live until the shell ends. `help` lists the verbs; Tab
    /// completes verbs, flags and Rhai modules; history is kept in $KIP_HOME/shell_history;
    /// `exit`, `quit` or Ctrl-D ends.
    ///
    /// With stdin not a terminal (`printf 'app list\nexit\n' | kip shell`) lines are read
    /// one by one with no prompt; a failing line prints its error and the next one runs, and
    /// kip exits 1 if any line failed, 0 otherwise.
    Shell,
    /// Run script tests: every `*_test.rhai` under DIR, each against a fresh sandbox.
    ///
    /// Each file gets a throwaway kip home with its own sandbox, started before it runs and
    /// removed after, so tests never touch your clusters or each other; your scripts folders
    /// stay on the search path, so overrides are what is tested. A file's top level runs
    /// first, then each `fn test_…()` in the order the file has them; a file without them is one test. Check
    /// with `assert::eq(actual, expected)`, `assert::that(cond, msg)`,
    /// `assert::contains(text, part)` and `assert::throws(|| …, kind)`; run verbs with
    /// `kip::run("app deploy", #{ name: "web", image: "nginx:1.27", port: 80 })`.
    Test {
        /// Where to look for `*_test.rhai` files (and in folders below it).
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Print the script API reference: builtin modules, libraries, verbs and error kinds.
    ///
    /// With TOPIC, only that part: a module (`k8s`), a function (`k8s::get`), a library
    /// (`kipper`), a verb (`app deploy`), `errors`, `builtins`, `libraries` or `verbs`.
    /// `kip doc > docs/scripting.md` writes the reference the repository keeps.
    Doc {
        /// What to show; everything when left out.
        topic: Option<String>,
    },
    Server(server_cmd::ServerArgs),
    Console(console_cmd::ConsoleArgs),
    /// Print a shell completion script.
    Completion {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Names verbs from scripts may not take.
const RESERVED: &[&str] = &[
    "sandbox",
    "verbs",
    "run",
    "eval",
    "shell",
    "completion",
    "doc",
    "test",
    "server",
    "console",
    "help",
];

/// Whether `-v`/`--verbose` is among kip's own arguments: tracing starts before clap parses,
/// so that the command line's parsing itself can be traced.
fn verbose(args: &[String]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "-v" || a == "--verbose")
}

fn init_tracing(verbose: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    // Colour codes are for terminals, not for files and pipes.
    let ansi = std::io::stderr().is_terminal();
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr);
        tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .init();
    } else if verbose {
        // One line per API call: kube's span of the call as it closes (method, URL, status
        // code, time); the events inside it say nothing more.
        let calls = tracing_subscriber::filter::filter_fn(|meta| {
            meta.is_span() && meta.target().starts_with("kube_client")
                || *meta.level() <= tracing_subscriber::filter::LevelFilter::WARN
        });
        let fmt = tracing_subscriber::fmt::layer()
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_target(false)
            .without_time()
            .with_ansi(ansi)
            .with_writer(std::io::stderr);
        tracing_subscriber::registry()
            .with(fmt.with_filter(calls))
            .init();
    } else {
        // Libraries log what kip already reports as an error: by default keep them quiet.
        let quiet =
            tracing_subscriber::EnvFilter::new("warn,kube_client=off,rustls_platform_verifier=off");
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr);
        tracing_subscriber::registry()
            .with(fmt.with_filter(quiet))
            .init();
    }
}

/// A reader that stops reading (`kip app list | head -1`) ends kip quietly, as it ends any
/// Unix tool, instead of a panic in the middle of a print. The sandbox server keeps Rust's
/// default (ignored), so a client hanging up never stops it.
fn end_quietly_on_closed_output() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    init_tracing(verbose(&args));
    if args.get(1).map(String::as_str) != Some("sandbox") {
        end_quietly_on_closed_output();
    }
    // The sandbox needs no scripts: keep its start-up free of them.
    if args.get(1).map(String::as_str) == Some("sandbox") {
        let cli = Cli::parse();
        if let Builtin::Sandbox(cmd) = cli.command {
            exit_with(sandbox_cmd::run(cmd).map_err(|e| CliError::new(Kind::Failed, e)));
        }
    }
    let mut kip = match verb_cmd::load(&args) {
        Ok(kip) => kip,
        Err(err) => err.exit(),
    };
    let root = kip_core::cli::add_verbs(Cli::command(), &kip.verbs, RESERVED);
    let matches = root.clone().get_matches();
    let result = match Cli::from_arg_matches(&matches) {
        Ok(cli) => match cli.command {
            Builtin::Sandbox(cmd) => {
                sandbox_cmd::run(cmd).map_err(|e| CliError::new(Kind::Failed, e))
            }
            Builtin::Verbs => verb_cmd::list(&kip, &Cli::command()),
            Builtin::Run { file, args } => verb_cmd::run_file(&mut kip, &file, args),
            Builtin::Eval { expr } => verb_cmd::eval(&mut kip, &expr),
            Builtin::Shell => shell_cmd::run(kip, RESERVED),
            Builtin::Doc { topic } => verb_cmd::doc(&kip, topic.as_deref()),
            Builtin::Server(args) => server_cmd::run(args),
            Builtin::Console(args) => console_cmd::run(args, (*kip.search).clone()),
            Builtin::Test { dir } => test_cmd::run(&mut kip, &dir),
            Builtin::Completion { shell } => {
                let mut root = root;
                clap_complete::generate(shell, &mut root, "kip", &mut std::io::stdout());
                Ok(())
            }
        },
        // Not one of kip's own commands: a verb from a script.
        Err(_) => verb_cmd::run_verb(&mut kip, &matches),
    };
    exit_with(result)
}

fn exit_with(result: Result<(), CliError>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(err) => err.exit(),
    }
}
