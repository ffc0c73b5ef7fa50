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

/// Registers the builtin modules; the host can be set later with [`set_host`].
pub fn register_modules(engine: &mut Engine) {
    engine.register_static_module("k8s", k8s::module().into());
    engine.register_static_module("ssh", rhai::exported_module!(ssh::ssh_module).into());
    engine.register_static_module("tmpl", rhai::exported_module!(tmpl::tmpl_module).into());
    engine.register_static_module("ui", rhai::exported_module!(ui::ui_module).into());
    engine.register_static_module(
        "crypto",
        rhai::exported_module!(crypto::crypto_module).into(),
    );
    engine.register_static_module(
        "config",
        rhai::exported_module!(config::config_module).into(),
    );
    engine.register_static_module(
        "gateway",
        rhai::exported_module!(gateway::gateway_module).into(),
    );
    engine.register_static_module(
        "tunnel",
        rhai::exported_module!(tunnel::tunnel_module).into(),
    );
    engine.register_static_module("pg", rhai::exported_module!(pg::pg_module).into());
    engine.register_static_module("fs", rhai::exported_module!(fs::fs_module).into());
    engine.register_static_module(
        "registry",
        rhai::exported_module!(registry::registry_module).into(),
    );
}

/// Registers the modules a hook on push may use: `k8s` (held to its project's namespaces by
/// the host's [`Reach`]), `tmpl`, `ui`, `crypto`, and the parts of `config` and `gateway` the
/// app verbs read (their writes and network calls refuse a hook), and `registry`, which only
/// parses. No `ssh`, `tunnel`, `pg` or `fs`: a hook that names them fails to find them.
pub fn register_hook_modules(engine: &mut Engine) {
    engine.register_static_module("k8s", k8s::module().into());
    engine.register_static_module("tmpl", rhai::exported_module!(tmpl::tmpl_module).into());
    engine.register_static_module("ui", rhai::exported_module!(ui::ui_module).into());
    engine.register_static_module(
        "crypto",
        rhai::exported_module!(crypto::crypto_module).into(),
    );
    engine.register_static_module(
        "config",
        rhai::exported_module!(config::config_module).into(),
    );
    engine.register_static_module(
        "gateway",
        rhai::exported_module!(gateway::gateway_module).into(),
    );
    // Only parses image references: the app verbs check --image with it.
    engine.register_static_module(
        "registry",
        rhai::exported_module!(registry::registry_module).into(),
    );
}

/// Makes `host` the one builtins of this engine reach.
pub fn set_host(engine: &mut Engine, host: std::sync::Arc<Host>) {
    engine.set_default_tag(rhai::Dynamic::from(host));
}
