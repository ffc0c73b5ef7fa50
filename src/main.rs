//! `kip`: the command-line front of Kipper.

mod home;
mod sandbox_cmd;

use clap::{Parser, Subcommand};

/// Kipper turns a Linux server into a small Kubernetes platform.
#[derive(Parser)]
#[command(name = "kip", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local sandbox cluster: a file-backed server that speaks the Kubernetes API.
    #[command(subcommand)]
    Sandbox(sandbox_cmd::SandboxCommand),
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Sandbox(cmd) => sandbox_cmd::run(cmd),
    };
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
