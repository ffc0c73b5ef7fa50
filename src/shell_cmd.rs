//! `kip shell`: the REPL of `kip-repl`, with the host a verb run from the CLI gets.

use std::io::IsTerminal;
use std::sync::Arc;

use builtins::Interrupt;
use kip_core::Kip;

use crate::home::kip_home;
use crate::verb_cmd::{self, Failure};

/// The shell's host: one runtime for the session, and a fresh host for each line so a line
/// that switches cluster or project (`cluster use`, `project use`) is seen by the next.
/// On a terminal, Ctrl-C while a line runs interrupts that line, not the shell.
struct ShellHost {
    runtime: Option<tokio::runtime::Runtime>,
    /// Ctrl-C and the open tunnels, handed from each line's host to the next.
    session: verb_cmd::Session,
}

impl kip_repl::Host for ShellHost {
    fn prepare(&mut self, kip: &mut Kip, opts: &rhai::Map) -> Result<(), String> {
        let runtime = match &self.runtime {
            Some(runtime) => runtime,
            None => {
                let runtime = verb_cmd::runtime().map_err(Failure::into_text)?;
                if let Some(interrupt) = &self.session.interrupt {
                    catch_ctrl_c(&runtime, interrupt.clone());
                }
                self.runtime.insert(runtime)
            }
        };
        if let Some(interrupt) = &self.session.interrupt {
            interrupt.clear();
        }
        let host = verb_cmd::host(kip, runtime, opts, &self.session).map_err(Failure::into_text)?;
        builtins::set_host(&mut kip.engine, host);
        Ok(())
    }

    /// The active project of the cluster in use, for the prompt.
    fn context(&mut self) -> Option<String> {
        let home = kip_home().ok()?;
        let choice = crate::cluster::choose(&home).ok()?;
        let config = builtins::config::Config::load(&home).ok()?;
        config.cluster(&choice.name)?.active_project.clone()
    }
}

/// From now on SIGINT raises `interrupt` instead of ending the process. At the prompt the
/// terminal is in raw mode, so Ctrl-C there is a key (clearing the line), never this signal.
fn catch_ctrl_c(runtime: &tokio::runtime::Runtime, interrupt: Arc<Interrupt>) {
    runtime.spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            interrupt.raise();
        }
    });
}

pub fn run(mut kip: Kip, reserved: &[&str]) -> Result<(), Failure> {
    let home = kip_home().map_err(|e| Failure::new(builtins::Kind::Invalid, e))?;
    let options = kip_repl::Options {
        history: Some(home.join("shell_history")),
        reserved: reserved.iter().map(|r| r.to_string()).collect(),
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    // Piped, Ctrl-C ends the shell as it ends any command.
    let interrupt = std::io::stdin()
        .is_terminal()
        .then(|| Arc::new(Interrupt::default()));
    if let Some(interrupt) = interrupt.clone() {
        // Scripts that loop without calling a builtin stop at their next operation.
        kip.stop_when(move || {
            interrupt
                .is_raised()
                .then(|| rhai::Dynamic::from("interrupted (Ctrl-C)"))
        });
    }
    let mut host = ShellHost {
        runtime: None,
        session: verb_cmd::Session {
            interrupt,
            ..verb_cmd::Session::default()
        },
    };
    match kip_repl::run(kip, options, &mut host) {
        0 => Ok(()),
        // Each failing line has printed its error already.
        code => Err(Failure::silent(code)),
    }
}
