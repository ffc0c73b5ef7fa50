//! `kip sandbox …`: start, stop and inspect the local sandbox cluster.

use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Subcommand;
use sandbox::Sandbox;
use sandbox::home::SandboxHome;

use crate::home::kip_home;

/// What runs the sandbox's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// Every pod is simulated: reported running, nothing runs.
    None,
    /// Pods whose images can be had run as podman containers (needs root, podman and runc).
    Podman,
}

#[derive(Subcommand)]
pub enum SandboxCommand {
    /// Serve the sandbox in the foreground until interrupted.
    Serve {
        /// Address to listen on; port 0 reuses the last port when free, else picks one.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Let `exec` in pods annotated `sandbox.kipper.run/exec: host` run the command on this
        /// machine, as your user (for tests and demos; loopback addresses only).
        #[arg(long)]
        allow_host_exec: bool,
        /// What runs pods: podman (real containers) or none (simulated). Default: podman when
        /// this machine can run it, else none.
        #[arg(long, value_enum)]
        runtime: Option<RuntimeChoice>,
        /// Where the ingress (apps' routes, `http://HOST:PORT/`) listens; port 0 reuses the
        /// last port when free, else picks one.
        #[arg(long, default_value = "127.0.0.1:0")]
        ingress_listen: SocketAddr,
    },
    /// Start the sandbox in the background (does nothing if it already runs).
    Up {
        /// Address to listen on; port 0 reuses the last port when free, else picks one.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Let `exec` in pods annotated `sandbox.kipper.run/exec: host` run the command on this
        /// machine, as your user (for tests and demos; loopback addresses only).
        #[arg(long)]
        allow_host_exec: bool,
        /// Also run `kip server` beside it, reconciling Apps, Projects and Services applied
        /// with kubectl (`kip sandbox down` stops both).
        #[arg(long)]
        server: bool,
        /// What runs pods: podman (real containers) or none (simulated). Default: podman when
        /// this machine can run it, else none.
        #[arg(long, value_enum)]
        runtime: Option<RuntimeChoice>,
        /// Where the ingress (apps' routes, `http://HOST:PORT/`) listens; port 0 reuses the
        /// last port when free, else picks one.
        #[arg(long, default_value = "127.0.0.1:0")]
        ingress_listen: SocketAddr,
    },
    /// Stop the background sandbox (and the kip server beside it). Its data stays.
    Down,
    /// Say whether the sandbox runs, where, and where its kubeconfig is.
    Status,
    /// Delete every object in the sandbox (restarting it if it runs).
    Reset {
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Print the path of the kubeconfig that points at the sandbox (context `kip-sandbox`).
    Kubeconfig,
    /// Build images and push them to the sandbox's registry.
    #[command(subcommand)]
    Image(crate::sandbox_image::ImageCommand),
}

pub fn run(cmd: SandboxCommand) -> Result<(), String> {
    let home = SandboxHome::new(&kip_home()?);
    match cmd {
        SandboxCommand::Serve {
            listen,
            allow_host_exec,
            runtime,
            ingress_listen,
        } => serve(&home, listen, allow_host_exec, runtime, ingress_listen),
        SandboxCommand::Up {
            listen,
            allow_host_exec,
            server,
            runtime,
            ingress_listen,
        } => {
            let how = How {
                allow_host_exec,
                runtime,
                ingress: ingress_listen,
            };
            up(&home, listen, how)?;
            if server {
                crate::sandbox_server::up(&home)?;
            }
            Ok(())
        }
        SandboxCommand::Down => down(&home),
        SandboxCommand::Status => status(&home),
        SandboxCommand::Reset { yes } => reset(&home, yes),
        SandboxCommand::Image(cmd) => crate::sandbox_image::run(&home, cmd),
        SandboxCommand::Kubeconfig => {
            let path = home.kubeconfig();
            if !path.exists() {
                return Err(format!(
                    "no sandbox kubeconfig at {}: start the sandbox with `kip sandbox up`",
                    path.display()
                ));
            }
            println!("{}", path.display());
            Ok(())
        }
    }
}

/// Port 0 means: the port of last time if it is free, so kubeconfigs stay valid across restarts.
fn choose_address(home: &SandboxHome, listen: SocketAddr) -> SocketAddr {
    if listen.port() != 0 {
        return listen;
    }
    home.last_address()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .filter(|a| a.ip() == listen.ip() && std::net::TcpListener::bind(a).is_ok())
        .unwrap_or(listen)
}

/// Host exec runs commands for whoever can reach the API (the sandbox has no authentication),
/// so it is only for a sandbox that listens on loopback.
fn check_host_exec(listen: SocketAddr, allow_host_exec: bool) -> Result<(), String> {
    if allow_host_exec && !listen.ip().is_loopback() {
        return Err(format!(
            "--allow-host-exec lets anyone who reaches the sandbox run commands on this machine: \
             it needs a loopback --listen address (like 127.0.0.1:0), not {listen}"
        ));
    }
    Ok(())
}

fn serve(
    home: &SandboxHome,
    listen: SocketAddr,
    allow_host_exec: bool,
    choice: Option<RuntimeChoice>,
    ingress_listen: SocketAddr,
) -> Result<(), String> {
    check_host_exec(listen, allow_host_exec)?;
    if let Some((pid, address)) = running(home) {
        return Err(format!(
            "the sandbox of this kip home already runs at http://{address} (pid {pid}): use it \
             (`export KUBECONFIG={}`) or stop it first with `kip sandbox down`",
            home.kubeconfig().display()
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        // Pods pull from it; a sandbox without it still serves the API.
        let registry = crate::sandbox_registry::start(home).await;
        let pull_from = registry.as_ref().ok().map(|r| r.address.to_string());
        let (pods, said) = pod_runtime(home, choice, pull_from.clone()).await?;
        let sandbox = Sandbox::open_with(&home.data(), pods)
            .await?
            .allow_host_exec(allow_host_exec);
        let address = choose_address(home, listen);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let ingress = bind_ingress(home, ingress_listen).await?;
        sandbox.serve_ingress(ingress.0);
        let mut facts = serde_json::Map::new();
        facts.insert("ingress".into(), ingress.1.to_string().into());
        let word = if sandbox.runtime.is_some() {
            "podman"
        } else {
            "none"
        };
        facts.insert("runtime".into(), word.into());
        if let Some(registry) = &pull_from {
            facts.insert("registry".into(), registry.clone().into());
        }
        sandbox
            .announce(facts)
            .await
            .map_err(|e| format!("cannot publish the sandbox's facts: {}", e.message))?;
        let kubeconfig = home
            .write_kubeconfig(&bound.to_string())
            .map_err(|e| format!("cannot write the kubeconfig: {e}"))?;
        sandbox::home::write_private(&home.pid_file(), std::process::id().to_string().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", home.pid_file().display()))?;
        // Whoever started us may stop reading stdout; serving must not die of a broken pipe.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "✔ Sandbox listening on http://{bound}");
        let _ = writeln!(out, "  export KUBECONFIG={}", kubeconfig.display());
        let _ = writeln!(out, "  pods: {said}");
        let _ = writeln!(
            out,
            "  ingress: http://{} (apps answer at http://HOST:{}/)",
            ingress.1,
            ingress.1.port()
        );
        match &registry {
            Ok(registry) => {
                let _ = writeln!(out, "  registry: http://{}", registry.address);
            }
            Err(e) => {
                let _ = writeln!(out, "  registry: none: {e}");
            }
        }
        if allow_host_exec {
            let _ = writeln!(
                out,
                "  exec in pods annotated sandbox.kipper.run/exec: host runs on this machine"
            );
        }
        let _ = out.flush();
        let served = sandbox.serve(listener, shutdown_signal()).await;
        if let Some(runtime) = &sandbox.runtime {
            // The node goes down with the sandbox: its containers stop (a few seconds to do it
            // cleanly, within the 10 s `kip sandbox down` waits), their data stays.
            runtime.stop_all(5).await;
        }
        if let Ok(registry) = registry {
            registry.stop().await;
        }
        let _ = std::fs::remove_file(home.pid_file());
        served.map_err(|e| format!("the sandbox stopped: {e}"))
    })
}

/// The ingress's listener on loopback: the port of last time when free, so URLs stay valid
/// across restarts.
async fn bind_ingress(
    home: &SandboxHome,
    listen: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), String> {
    let file = ingress_file(home);
    if listen.port() != 0 {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen for the ingress on {listen}: {e}"))?;
        sandbox::home::write_private(&file, listen.to_string().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        return Ok((listener, listen));
    }
    let last = std::fs::read_to_string(&file)
        .ok()
        .and_then(|a| a.trim().parse::<SocketAddr>().ok());
    let reused = match last {
        Some(last) => tokio::net::TcpListener::bind(last).await.ok(),
        None => None,
    };
    let listener = match reused {
        Some(listener) => listener,
        None => tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen for the ingress on 127.0.0.1: {e}"))?,
    };
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    sandbox::home::write_private(&file, bound.to_string().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok((listener, bound))
}

fn ingress_file(home: &SandboxHome) -> std::path::PathBuf {
    home.dir.join("ingress.address")
}

/// What runs the pods, and the words that say so: podman when asked (an error when it cannot),
/// none when asked, else podman when this machine can run it.
async fn pod_runtime(
    home: &SandboxHome,
    choice: Option<RuntimeChoice>,
    registry: Option<String>,
) -> Result<(Option<std::sync::Arc<sandbox::runtime::Runtime>>, String), String> {
    use sandbox::containers::{Containers, podman_unavailable};
    let choice = match choice {
        Some(choice) => Some(choice),
        None => runtime_from_env()?,
    };
    if choice == Some(RuntimeChoice::None) {
        return Ok((None, "simulated (--runtime none)".into()));
    }
    if let Some(why) = podman_unavailable() {
        return match choice {
            Some(RuntimeChoice::Podman) => Err(format!("--runtime podman: {why}")),
            _ => Ok((None, format!("simulated: {why}"))),
        };
    }
    let kip_home = home.dir.parent().unwrap_or(Path::new("."));
    let made = async {
        let containers = Containers::for_kip_home(kip_home)
            .map_err(|e| format!("cannot set up podman's store: {e}"))?;
        sandbox::runtime::Runtime::new(containers, &home.dir, registry).await
    };
    match made.await {
        Ok(runtime) => {
            let said = format!(
                "run with podman when their images can be had (network {}, {}; store {})",
                runtime.network.name,
                runtime.network.cidr(),
                runtime.containers.dir().display()
            );
            Ok((Some(runtime), said))
        }
        Err(why) if choice == Some(RuntimeChoice::Podman) => {
            Err(format!("--runtime podman: {why}"))
        }
        Err(why) => Ok((
            None,
            format!("simulated: podman cannot run them here: {why}"),
        )),
    }
}

/// `KIP_SANDBOX_RUNTIME` (none or podman): the runtime when `--runtime` does not say, so that a
/// sandbox started on demand (no cluster configured) can be told too.
fn runtime_from_env() -> Result<Option<RuntimeChoice>, String> {
    match std::env::var("KIP_SANDBOX_RUNTIME").as_deref() {
        Err(_) | Ok("") => Ok(None),
        Ok("none") => Ok(Some(RuntimeChoice::None)),
        Ok("podman") => Ok(Some(RuntimeChoice::Podman)),
        Ok(other) => Err(format!(
            "KIP_SANDBOX_RUNTIME={other} is not a runtime: use none or podman (or unset it)"
        )),
    }
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The pid of a live sandbox process, from the pid file.
fn running_pid(home: &SandboxHome) -> Option<i32> {
    live_pid(&home.pid_file())
}

/// The pid in `file`, when that process is alive.
pub fn live_pid(file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    // Signal 0 only checks that the process exists.
    // SAFETY: kill takes no pointers; a stale pid at worst names another process, which
    // signal 0 leaves alone.
    (pid > 0 && unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

/// The pid and address of the sandbox when it runs and answers.
fn running(home: &SandboxHome) -> Option<(i32, String)> {
    let pid = running_pid(home)?;
    let address = home.last_address()?;
    healthy(&address).then_some((pid, address))
}

/// Whether the sandbox at `address` answers `/healthz`.
fn healthy(address: &str) -> bool {
    let Ok(addr) = address.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// Whether `up` found the sandbox running or had to start it.
pub enum Started {
    AlreadyRunning { address: String, pid: i32 },
    Now { address: String, pid: u32 },
}

/// How a sandbox that `up` starts serves: what its flags say.
#[derive(Clone, Copy)]
pub struct How {
    pub allow_host_exec: bool,
    pub runtime: Option<RuntimeChoice>,
    pub ingress: SocketAddr,
}

impl How {
    /// A sandbox started on demand: no host exec, the default runtime, any ingress port.
    fn on_demand() -> How {
        How {
            allow_host_exec: false,
            runtime: None,
            ingress: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

fn up(home: &SandboxHome, listen: SocketAddr, how: How) -> Result<(), String> {
    let allow_host_exec = how.allow_host_exec;
    check_host_exec(listen, allow_host_exec)?;
    let (word, address, pid) = match start(home, listen, how)? {
        Started::AlreadyRunning { address, pid } => ("already running", address, pid.to_string()),
        Started::Now { address, pid } => ("running", address, pid.to_string()),
    };
    println!("✔ Sandbox {word} at http://{address} (pid {pid})");
    println!("  export KUBECONFIG={}", home.kubeconfig().display());
    if let Some(at) = crate::sandbox_registry::running_address(home) {
        println!("  registry: http://{at}");
    }
    if allow_host_exec && word == "already running" {
        // A running server keeps the settings it started with.
        println!(
            "  --allow-host-exec applies only to a sandbox it starts: `kip sandbox down` first"
        );
    }
    Ok(())
}

/// Starts the sandbox in the background unless it already answers.
pub fn ensure_running(home: &SandboxHome, listen: SocketAddr) -> Result<Started, String> {
    start(home, listen, How::on_demand())
}

/// Starts the sandbox in the background (letting it exec on the host if asked) unless it
/// already answers. Of several kips that find it stopped, one starts it and the others wait
/// for it: the check and the start happen under a lock.
fn start(home: &SandboxHome, listen: SocketAddr, how: How) -> Result<Started, String> {
    if let Some((pid, address)) = running(home) {
        return Ok(Started::AlreadyRunning { address, pid });
    }
    home.create_dir()
        .map_err(|e| format!("cannot create {}: {e}", home.dir.display()))?;
    let _lock = StartLock::acquire(home)?;
    // Another kip may have started it while this one waited.
    if let Some((pid, address)) = running(home) {
        return Ok(Started::AlreadyRunning { address, pid });
    }
    let _ = std::fs::remove_file(home.address_file());
    let log = sandbox::home::private_file(&home.log_file())
        .and_then(|log| log.set_len(0).map(|()| log))
        .map_err(|e| format!("cannot create {}: {e}", home.log_file().display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the kip binary: {e}"))?;
    let address = choose_address(home, listen);
    let mut child = {
        use std::os::unix::process::CommandExt;
        let mut serve = Command::new(exe);
        serve.args(["sandbox", "serve", "--listen", &address.to_string()]);
        serve.args(["--ingress-listen", &how.ingress.to_string()]);
        if how.allow_host_exec {
            serve.arg("--allow-host-exec");
        }
        if let Some(runtime) = how.runtime {
            let word = match runtime {
                RuntimeChoice::None => "none",
                RuntimeChoice::Podman => "podman",
            };
            serve.args(["--runtime", word]);
        }
        serve
            .env("KIP_HOME", home.dir.parent().unwrap_or(Path::new(".")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the sandbox: {e}"))?
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(home.log_file()).unwrap_or_default();
            return Err(format!(
                "the sandbox exited at start ({status}):\n{}",
                log.trim_end()
            ));
        }
        if let Some(address) = home.last_address()
            && healthy(&address)
        {
            return Ok(Started::Now {
                address,
                pid: child.id(),
            });
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the sandbox did not answer within 30s; see {}",
                home.log_file().display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An exclusive advisory lock (`flock`) on `sandbox/start.lock`, held while a kip checks
/// whether the sandbox runs and starts it. The kernel releases it when its holder exits, so a
/// kip that crashed mid-start leaves nothing stale behind.
struct StartLock {
    _file: std::fs::File,
}

/// How long a kip waits for another one to start the sandbox; that one gives up after 30 s.
const START_WAIT: Duration = Duration::from_secs(60);

impl StartLock {
    fn acquire(home: &SandboxHome) -> Result<StartLock, String> {
        let path = home.dir.join("start.lock");
        let file = sandbox::home::private_file(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let locked = |file: &std::fs::File| {
            try_lock(file).map_err(|e| format!("cannot lock {}: {e}", path.display()))
        };
        if !locked(&file)? {
            eprintln!("Waiting for the local sandbox another kip is starting…");
            let deadline = Instant::now() + START_WAIT;
            while !locked(&file)? {
                if Instant::now() > deadline {
                    return Err(format!(
                        "another kip has been starting the sandbox for {}s and is not done: see \
                         {}, or stop that kip and try again",
                        START_WAIT.as_secs(),
                        home.log_file().display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(StartLock { _file: file })
    }
}

/// Takes the exclusive lock on `file` if nobody holds it; false if someone does.
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    match std::io::Error::last_os_error() {
        e if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ) =>
        {
            Ok(false)
        }
        e => Err(e),
    }
}

fn down(home: &SandboxHome) -> Result<(), String> {
    if let Some(pid) = crate::sandbox_server::stop(home) {
        println!("✔ kip server stopped (pid {pid})");
    }
    match stop(home) {
        Some(pid) => println!("✔ Sandbox stopped (pid {pid})"),
        None => println!("Sandbox is not running"),
    }
    Ok(())
}

/// Stops the sandbox of `home` if it runs (SIGTERM, SIGKILL after 10 s); its pid if it did.
pub fn stop(home: &SandboxHome) -> Option<i32> {
    let pid = running_pid(home)?;
    terminate(pid);
    let _ = std::fs::remove_file(home.pid_file());
    Some(pid)
}

/// Stops the process `pid` (read from a pid file and checked alive a moment ago): SIGTERM,
/// SIGKILL after 10 s.
pub fn terminate(pid: i32) {
    // SAFETY: kill takes no pointers; `pid` names a process of ours from its pid file.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: as above.
    while unsafe { libc::kill(pid, 0) } == 0 {
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(home: &SandboxHome) -> Result<(), String> {
    match running(home) {
        Some((pid, address)) => {
            println!("Sandbox running at http://{address} (pid {pid})");
            println!("  kubeconfig: {}", home.kubeconfig().display());
            println!("  data:       {}", home.data().display());
            if let Ok(ingress) = std::fs::read_to_string(ingress_file(home)) {
                println!("  ingress:    http://{}", ingress.trim());
            }
            match crate::sandbox_registry::running_address(home) {
                Some(at) => println!("  registry:   http://{at}"),
                None => println!(
                    "  registry:   {}",
                    crate::sandbox_registry::unavailable()
                        .unwrap_or_else(|| "not running (see sandbox.log)".into())
                ),
            }
            if let Some(pid) = crate::sandbox_server::running(home) {
                let at = crate::sandbox_server::address(home).unwrap_or_default();
                println!(
                    "  kip server: {at} (pid {pid}), log {}",
                    crate::sandbox_server::log_file(home).display()
                );
            }
            Ok(())
        }
        _ => Err("the sandbox is not running: start it with `kip sandbox up`".to_string()),
    }
}

fn reset(home: &SandboxHome, yes: bool) -> Result<(), String> {
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(
                "`kip sandbox reset` deletes every object in the sandbox: pass --yes to confirm"
                    .to_string(),
            );
        }
        print!("Delete every object in the sandbox? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Nothing deleted");
            return Ok(());
        }
    }
    let was_running = running_pid(home).is_some();
    if was_running {
        down(home)?;
    }
    // The objects, and the volumes' data of pods that ran for real.
    for dir in [home.data(), home.dir.join("storage"), home.dir.join("pods")] {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| format!("cannot delete {}: {e}", dir.display()))?;
        }
    }
    println!("✔ Sandbox reset: every object deleted");
    if was_running {
        up(
            home,
            "127.0.0.1:0"
                .parse()
                .map_err(|_| "bad address".to_string())?,
            How::on_demand(),
        )?;
    }
    Ok(())
}
