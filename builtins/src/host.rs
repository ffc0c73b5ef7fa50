//! What builtins need from the process that runs the script, reached through the engine's tag.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, EvalAltResult, Map, NativeCallContext};

use crate::errors::Kind;

/// How `-o` asked read verbs to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

/// The user's wishes about interaction and output.
#[derive(Debug, Clone, Default)]
pub struct UiSettings {
    /// `--yes`: skip confirmations.
    pub yes: bool,
    /// stdin and stdout are a terminal, so we may ask.
    pub interactive: bool,
    /// Colour allowed (`NO_COLOR` unset and a terminal).
    pub color: bool,
    /// Spinners allowed on stderr (a terminal there; never in server hooks).
    pub spinners: bool,
    pub output: OutputFormat,
}

/// Finds templates along the search path: the name (`app/deployment.yaml.j2`) to its source and
/// where it came from.
pub trait TemplateSource: Send + Sync {
    fn template(&self, name: &str) -> Option<(String, String)>;
}

/// Everything a builtin may need from its host process.
pub struct Host {
    /// Builtins are synchronous; they block on async work through [`Host::block_on`].
    pub runtime: tokio::runtime::Handle,
    pub kip_home: PathBuf,
    pub templates: Arc<dyn TemplateSource>,
    pub ui: UiSettings,
    /// The cluster this command talks to.
    pub cluster: std::sync::RwLock<ClusterChoice>,
    /// Ctrl-C during a line of `kip shell`: ends the line's waits instead of the process.
    /// `None` for a verb run from the CLI, which Ctrl-C simply ends.
    pub interrupt: Option<Arc<Interrupt>>,
    /// Decides the cluster again from `config.yaml`, for a script that changed it (`kip
    /// install` registers a cluster, then works on it). `None` where the cluster is fixed.
    pub rechoose: Option<Rechoose>,
    /// What `k8s::…` keeps for this host: the client, made on first use, and the kinds
    /// resolved so far. Two hosts in one process never share them.
    pub k8s: Mutex<crate::k8s::State>,
    /// The tunnels `tunnel::open` opened on this host and not yet closed; dropped with the
    /// last host holding them, which ends the ones still open. `kip shell` hands one set from
    /// each line's host to the next, so a tunnel lives until the session ends or closes it.
    pub tunnels: Arc<Mutex<crate::tunnel::Tunnels>>,
    /// Where `ui::` writes when not to the terminal: `kip test` keeps each test's output and
    /// shows it only for a test that fails, so a passing run's report is the report alone.
    pub captured: Option<Captured>,
    /// What the script may reach: everything, or (a hook on push) its project alone.
    pub reach: Reach,
}

/// What a script may reach beyond its language. The command line, the shell and the server's
/// controllers reach whatever their credentials do; a hook on push reaches its project alone:
/// its namespaces, no cluster-scoped kinds, nothing outside the cluster (no SSH, tunnels,
/// databases, gateway, registry or kip home).
#[derive(Debug, Clone, Default)]
pub enum Reach {
    #[default]
    Everything,
    Project {
        name: String,
        namespaces: Vec<String>,
    },
}

thread_local! {
    /// Set while a verb a hook asked for runs (a script runs on one thread start to end).
    static IN_HOOK_VERB: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the verb now running was asked for by a hook on push (`kip::run` in a hook).
pub fn in_hook_verb() -> bool {
    IN_HOOK_VERB.get()
}

/// Runs `f`, a verb a hook ran with `kip::run`: the verb is one of the few a hook may run,
/// forced into the hook's project, so what it reads to do its job (a namespace, every App's
/// host) is not held to the hook's reach.
pub fn as_hook_verb<R>(f: impl FnOnce() -> R) -> R {
    let before = IN_HOOK_VERB.replace(true);
    let out = f();
    IN_HOOK_VERB.set(before);
    out
}

impl Reach {
    /// Whether the script now running is held to a project (a hook's own code, not a verb it
    /// ran).
    pub fn is_limited(&self) -> bool {
        matches!(self, Reach::Project { .. }) && !IN_HOOK_VERB.get()
    }

    /// Refuses `what` (`Deployment web`) in the namespace `ns` ("" = cluster-scoped or every
    /// namespace) unless it is one of the project's.
    pub fn namespace(&self, ns: &str, what: &str) -> Result<(), Box<EvalAltResult>> {
        let Reach::Project { name, namespaces } = self else {
            return Ok(());
        };
        if IN_HOOK_VERB.get() {
            return Ok(());
        }
        if !ns.is_empty() && namespaces.iter().any(|n| n == ns) {
            return Ok(());
        }
        let place = if ns.is_empty() {
            "outside a namespace".to_string()
        } else {
            format!("in namespace `{ns}`")
        };
        Err(error(
            Kind::Denied,
            format!(
                "a hook of project `{name}` may not reach {what} {place}: only its namespaces {}",
                namespaces.join(", ")
            ),
        ))
    }

    /// Refuses `what` (`ssh::connect`), which only scripts that reach everything may do.
    pub fn everything(&self, what: &str) -> Result<(), Box<EvalAltResult>> {
        match self {
            Reach::Everything => Ok(()),
            Reach::Project { .. } if IN_HOOK_VERB.get() => Ok(()),
            Reach::Project { name, .. } => Err(error(
                Kind::Denied,
                format!(
                    "a hook of project `{name}` may not use {what}: hooks reach only their project's namespaces through k8s::, and kip::run of app verbs"
                ),
            )),
        }
    }
}

/// Output kept instead of printed, stdout and stderr in the order they were written.
pub type Captured = Arc<Mutex<String>>;

/// A Ctrl-C the shell caught: raised by its signal handler, cleared before each line.
#[derive(Default)]
pub struct Interrupt {
    raised: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Interrupt {
    pub fn raise(&self) {
        self.raised.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn clear(&self) {
        self.raised
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.raised.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves once raised (at once when it already is).
    async fn raised(&self) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a raise between the two is not missed.
            notified.as_mut().enable();
            if self.is_raised() {
                return;
            }
            notified.await;
        }
    }
}

/// Decides which cluster to talk to.
pub type Rechoose = Arc<dyn Fn() -> Result<ClusterChoice, String> + Send + Sync>;

/// The cluster a command talks to and how to connect to it.
#[derive(Clone)]
pub struct ClusterChoice {
    /// Its name, as `config.yaml` knows it.
    pub name: String,
    /// What to try when the cluster cannot be reached (said after the cause).
    pub unreachable_hint: String,
    /// The cluster client, made on first use (with no cluster configured: the sandbox).
    pub client: Arc<dyn Fn() -> Result<ClusterClient, String> + Send + Sync>,
}

/// A client and the API server URL it talks to (a `kube::Client` does not tell its URL, and
/// an error should name it).
#[derive(Clone)]
pub struct ClusterClient {
    pub client: kube::Client,
    pub server: String,
}

/// A template source with no templates, for hosts that render none.
pub struct NoTemplates;

impl TemplateSource for NoTemplates {
    fn template(&self, _name: &str) -> Option<(String, String)> {
        None
    }
}

impl ClusterChoice {
    /// A cluster named `name` that cannot be connected to, saying `why`.
    pub fn unreachable(name: &str, why: &str) -> ClusterChoice {
        let why = why.to_owned();
        ClusterChoice {
            name: name.into(),
            unreachable_hint: String::new(),
            client: Arc::new(move || Err(why.clone())),
        }
    }
}

impl Host {
    /// A host talking to `cluster` for good: no switching clusters, Ctrl-C not caught.
    pub fn new(
        runtime: tokio::runtime::Handle,
        kip_home: PathBuf,
        templates: Arc<dyn TemplateSource>,
        ui: UiSettings,
        cluster: ClusterChoice,
    ) -> Host {
        Host {
            runtime,
            kip_home,
            templates,
            ui,
            cluster: std::sync::RwLock::new(cluster),
            rechoose: None,
            interrupt: None,
            k8s: Mutex::default(),
            tunnels: Arc::default(),
            captured: None,
            reach: Reach::Everything,
        }
    }

    /// The name of the cluster this command talks to, as `config.yaml` knows it.
    pub fn cluster_name(&self) -> String {
        self.cluster
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .name
            .clone()
    }

    /// The cluster this command talks to now.
    pub fn choice(&self) -> ClusterChoice {
        self.cluster
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The one place a builtin waits for async work: scripts run on a blocking thread, so this
    /// never blocks a runtime worker.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        tokio::task::block_in_place(|| self.runtime.block_on(fut))
    }

    /// [`Host::block_on`] for work that may wait long (API calls and waits, remote commands):
    /// a Ctrl-C in `kip shell` abandons it with an `interrupted` error.
    pub fn block_on_interruptible<T>(
        &self,
        fut: impl Future<Output = Result<T, Box<EvalAltResult>>>,
    ) -> Result<T, Box<EvalAltResult>> {
        let Some(interrupt) = self.interrupt.clone() else {
            return self.block_on(fut);
        };
        self.block_on(async move {
            tokio::select! {
                out = fut => out,
                () = interrupt.raised() => Err(error(Kind::Interrupted, "interrupted (Ctrl-C)")),
            }
        })
    }
}

/// The host of the engine a builtin was called from.
pub fn host(ctx: &NativeCallContext) -> Result<Arc<Host>, Box<EvalAltResult>> {
    ctx.tag()
        .and_then(|tag| tag.clone().try_cast::<Arc<Host>>())
        .ok_or_else(|| error(Kind::Internal, "this engine has no kip host"))
}

/// A script-visible error: a map with `kind` and `message`.
pub fn error(kind: Kind, message: impl Into<String>) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("kind".into(), kind.name().into());
    map.insert("message".into(), message.into().into());
    error_map(map)
}

/// A script-visible error with a `reason`, the detail within its kind (`host-key`, `in-use`).
pub fn error_with_reason(
    kind: Kind,
    reason: &str,
    message: impl Into<String>,
) -> Box<EvalAltResult> {
    let mut map = Map::new();
    map.insert("kind".into(), kind.name().into());
    map.insert("reason".into(), reason.into());
    map.insert("message".into(), message.into().into());
    error_map(map)
}

/// Runs a builtin's body and gives an error that has no position `call`, the position of the
/// call (`ctx.call_position()`: the script's line and column). Rhai leaves errors of functions
/// called through a module path (`k8s::get(…)`) without one, so the user would not learn which
/// line failed.
pub fn at_call<T>(
    call: rhai::Position,
    body: impl FnOnce() -> Result<T, Box<EvalAltResult>>,
) -> Result<T, Box<EvalAltResult>> {
    body().map_err(|mut err| {
        if err.position().is_none() {
            err.set_position(call);
        }
        err
    })
}

/// A script-visible error from a prepared map (it must hold `kind` and `message`).
pub fn error_map(map: Map) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from_map(map),
        rhai::Position::NONE,
    ))
}

/// The `message` of a script-visible error (or the error as Rhai prints it), for builtins that
/// report an error instead of raising it.
pub fn message_of(err: &EvalAltResult) -> String {
    if let EvalAltResult::ErrorRuntime(value, _) = err
        && let Some(message) = value
            .read_lock::<Map>()
            .and_then(|m| m.get("message").map(|m| m.to_string()))
    {
        return message;
    }
    err.to_string()
}

/// Hosts for unit tests: no kip home, no templates, a cluster at a port nothing listens on
/// (tests that use it must not send a request).
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{ClusterChoice, ClusterClient, Host, NoTemplates, UiSettings};

    pub(crate) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime")
    }

    /// A host named `name` whose cluster client factory counts its calls in `made`.
    pub(crate) fn host(
        runtime: &tokio::runtime::Runtime,
        name: &str,
        made: Arc<AtomicUsize>,
    ) -> Arc<Host> {
        let server = "http://127.0.0.1:1".to_string();
        let client = move || {
            made.fetch_add(1, Ordering::SeqCst);
            let config = kube::Config::new(server.parse().map_err(|e| format!("{e}"))?);
            let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
            Ok(ClusterClient {
                client,
                server: server.clone(),
            })
        };
        Arc::new(Host::new(
            runtime.handle().clone(),
            std::env::temp_dir(),
            Arc::new(NoTemplates),
            UiSettings::default(),
            ClusterChoice {
                name: name.into(),
                unreachable_hint: String::new(),
                client: Arc::new(client),
            },
        ))
    }
}
