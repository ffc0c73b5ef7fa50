//! `kip shell`: the REPL of `kip-repl`, with the host a verb run from the CLI gets.

use std::io::IsTerminal;

use kip_core::Kip;

use crate::home::kip_home;
use crate::verb_cmd::{self, Failure};

/// The shell's host: one runtime for the session, and a fresh host for each line so a line
/// that switches cluster or project (`cluster use`, `project use`) is seen by the next.
struct ShellHost {
    runtime: Option<tokio::runtime::Runtime>,
}

impl kip_repl::Host for ShellHost {
    fn prepare(&mut self, kip: &mut Kip, opts: &rhai::Map) -> Result<(), String> {
        let runtime = match &self.runtime {
            Some(runtime) => runtime,
            None => self
                .runtime
                .insert(verb_cmd::runtime().map_err(|(_, text)| text)?),
        };
        let host = verb_cmd::host(kip, runtime, opts).map_err(|(_, text)| text)?;
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

pub fn run(kip: Kip, reserved: &[&str]) -> Result<(), Failure> {
    let home = kip_home().map_err(|e| (2, format!("error: {e}\n")))?;
    let options = kip_repl::Options {
        history: Some(home.join("shell_history")),
        reserved: reserved.iter().map(|r| r.to_string()).collect(),
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut host = ShellHost { runtime: None };
    match kip_repl::run(kip, options, &mut host) {
        0 => Ok(()),
        // Each failing line has printed its error already.
        code => Err((code, String::new())),
    }
}
