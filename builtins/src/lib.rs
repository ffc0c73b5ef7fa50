//! The Rust primitives kip exposes to Rhai, one module per domain, registered as static
//! namespaces (`k8s::apply(obj)`, `ssh::run(session, cmd)`, `tmpl::render(name, ctx)`, `ui::step(msg)`…).
//!
//! Builtins say *what* failed; the engine says *where*. A fallible builtin returns
//! `Result<_, Box<EvalAltResult>>` whose error value is a map (`kind`, one of [`Kind`], and
//! `message`; for Kubernetes also `code`/`reason`), so scripts can
//! `catch (e) { if e.kind == "not-found" { … } }`.

pub mod config;
pub mod crypto;
pub mod errors;
pub mod fs;
pub mod gateway;
pub mod git;
pub mod host;
pub mod k8s;
pub mod kubeconfig;
pub mod pg;
pub mod registry;
pub mod ssh;
pub mod tmpl;
pub mod tunnel;
pub mod ui;

pub use errors::Kind;
pub use host::{
    ClusterChoice, ClusterClient, Host, Interrupt, NoTemplates, OutputFormat, Reach, Rechoose,
    TemplateSource, UiSettings,
};

use rhai::Engine;

/// Registers every builtin module into `engine`; `host` becomes the engine's tag so builtins
/// can reach the runtime, the kip home, the templates and the cluster.
pub fn register_all(engine: &mut Engine, host: std::sync::Arc<Host>) {
    register_modules(engine);
    set_host(engine, host);
}

/// A builtin module: its name, how to make it, and whether a hook on push may use it.
type BuiltinModule = (&'static str, fn() -> rhai::Module, bool);

/// Every builtin module.
/// A hook gets `k8s` (held to its project's namespaces by the host's [`Reach`]), `tmpl`, `ui`,
/// `crypto`, the parts of `config` and `gateway` the app verbs read (their writes and network
/// calls refuse a hook), and `registry`, which only parses (the app verbs check `--image` with
/// it). No `ssh`, `tunnel`, `pg` or `fs`: a hook that names them fails to find them.
const MODULES: &[BuiltinModule] = &[
    ("k8s", k8s::module, true),
    ("ssh", || rhai::exported_module!(ssh::ssh_module), false),
    ("tmpl", || rhai::exported_module!(tmpl::tmpl_module), true),
    ("ui", || rhai::exported_module!(ui::ui_module), true),
    (
        "crypto",
        || rhai::exported_module!(crypto::crypto_module),
        true,
    ),
    (
        "config",
        || rhai::exported_module!(config::config_module),
        true,
    ),
    (
        "gateway",
        || rhai::exported_module!(gateway::gateway_module),
        true,
    ),
    // Its own checks refuse a hook's code; app verbs a hook runs read branch heads with it.
    ("git", || rhai::exported_module!(git::git_module), true),
    (
        "tunnel",
        || rhai::exported_module!(tunnel::tunnel_module),
        false,
    ),
    ("pg", || rhai::exported_module!(pg::pg_module), false),
    ("fs", || rhai::exported_module!(fs::fs_module), false),
    (
        "registry",
        || rhai::exported_module!(registry::registry_module),
        true,
    ),
];

/// Registers the builtin modules; the host can be set later with [`set_host`].
pub fn register_modules(engine: &mut Engine) {
    for (name, make, _) in MODULES {
        engine.register_static_module(*name, make().into());
    }
}

/// Registers the modules a hook on push may use (see [`MODULES`]).
pub fn register_hook_modules(engine: &mut Engine) {
    for (name, make, _) in MODULES.iter().filter(|(_, _, hook)| *hook) {
        engine.register_static_module(*name, make().into());
    }
}

/// Makes `host` the one builtins of this engine reach.
pub fn set_host(engine: &mut Engine, host: std::sync::Arc<Host>) {
    engine.set_default_tag(rhai::Dynamic::from(host));
}

/// Makes `host` the one builtins of this engine reach, keeping what scripts print and what the
/// `ui` builtins say in the returned buffer instead of showing it (the console and hooks run
/// verbs with no terminal, and show or record their output afterwards).
pub fn set_capturing_host(engine: &mut Engine, host: Host) -> host::Captured {
    let captured = host::Captured::default();
    let host = Host {
        captured: Some(captured.clone()),
        ..host
    };
    set_host(engine, std::sync::Arc::new(host));
    let printed = captured.clone();
    engine.on_print(move |text| {
        let mut out = printed.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str(text);
        out.push('\n');
    });
    captured
}
