//! `kip console`: the web console on this machine, against the cluster kip talks to.

use std::net::SocketAddr;

use builtins::Kind;
use kip_core::SearchPath;

use crate::cli_error::CliError;
use crate::home::kip_home;

/// Open the web console on this machine, against the current cluster (the sandbox included).
///
/// Serves the console on loopback and prints a link that signs you in (the link holds this
/// run's token; anyone with it can use the console until it stops). The console runs the same
/// verbs as the command line, with your credentials and your scripts folders: an override of
/// a verb changes the console too. Stops with Ctrl-C. On a cluster, `kip server` serves the
/// same console under `/`.
#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "KIP_CONSOLE_LISTEN")]
    listen: SocketAddr,
    /// The token that signs in [default: a new random one each run].
    #[arg(long, env = "KIP_CONSOLE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Open the console in the desktop's browser (xdg-open).
    #[arg(long)]
    open: bool,
}

pub fn run(args: ConsoleArgs, search: SearchPath) -> Result<(), CliError> {
    let home = kip_home().map_err(|e| CliError::new(Kind::Invalid, e))?;
    let _ = crate::home::create(&home);
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: the console listens on {} without TLS: put it behind TLS, or use kip server's on the cluster",
            args.listen
        );
    }
    let token = match args.token {
        Some(token) if token.len() < 16 => {
            return Err(CliError::new(
                Kind::Invalid,
                "--token is too short: use at least 16 characters, or leave it out for a random one",
            ));
        }
        Some(token) => token,
        None => kip_server::console::auth::random_hex(24),
    };
    let choice = crate::cluster::choose(&home).map_err(|e| CliError::new(Kind::NotFound, e))?;
    let runtime = crate::verb_cmd::runtime()?;
    let reached = crate::cluster::reach(&choice, &runtime, &home)?;
    let _entered = runtime.enter();
    let runner = kip_server::console::Runner {
        cluster: reached.choice,
        search,
        kip_home: home,
        runtime: runtime.handle().clone(),
    };
    let console = kip_server::console::Console::new(runner, token.clone())
        .with_cluster_sign_in(reached.as_user);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| {
                CliError::new(
                    Kind::Io,
                    format!(
                        "cannot listen on {}: {e} (choose another with --listen)",
                        args.listen
                    ),
                )
            })?;
        let address = listener
            .local_addr()
            .map_err(|e| CliError::new(Kind::Io, e.to_string()))?;
        let link = format!("http://{address}/login?token={token}");
        println!("✔ Console of cluster `{}` at http://{address}", choice.name);
        println!("  Sign in: {link}");
        println!("  Stop with Ctrl-C");
        if args.open
            && let Err(e) = std::process::Command::new("xdg-open").arg(&link).spawn()
        {
            eprintln!("warning: cannot open a browser ({e}): open the link above");
        }
        kip_server::console::serve(listener, console, crate::sandbox_cmd::shutdown_signal())
            .await
            .map_err(|e| CliError::new(Kind::Failed, e))
    })
}
