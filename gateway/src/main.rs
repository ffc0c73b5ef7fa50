//! `kip-gateway`: flags in, [`kip_gateway::serve::run`] out. Errors print one line naming the
//! problem and exit with status 2.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use kip_gateway::config::Config;

fn main() -> ExitCode {
    let config = Config::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
    // This runtime only runs the admin API, certificate reloading and signal handling; the
    // proxy runs on worker threads of its own (kip_gateway::workers).
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the runtime: {err}"))
        .and_then(|runtime| runtime.block_on(kip_gateway::serve::run(config)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kip-gateway: {message}");
            ExitCode::from(2)
        }
    }
}
