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
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = config.threads {
        runtime.worker_threads(threads.max(1));
    }
    let result = runtime
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
