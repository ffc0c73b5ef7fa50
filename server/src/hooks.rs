//! Hooks on push: Rhai scripts a project registers (`kip hook add FILE --project P`), kept as
//! ConfigMaps in `kipper-system` so every server replica sees them, each defining
//! `fn on_push(event)`. A run gets an engine of its own with the hook limits (operations, call
//! depth, memory, a wall-clock budget that also ends waits) and only the modules a hook may
//! use, held to its project's namespaces (`builtins::Reach`). Every run is recorded as a
//! ConfigMap beside the hook (`kip hook logs`); the last [`RUNS_KEPT`] per hook are kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use builtins::{ClusterChoice, Host, Interrupt, Reach, UiSettings};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kip_core::{Kip, Limits, SearchPath};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::Value;

/// Where hooks and their runs are kept.
pub const NAMESPACE: &str = "kipper-system";
/// Labels of a hook's ConfigMap.
pub const HOOK_LABEL: &str = "kipper.run/hook";
pub const PROJECT_LABEL: &str = "kipper.run/hook-project";
pub const EVENT_LABEL: &str = "kipper.run/hook-event";
/// The label of a run record: the hook's name.
pub const RUN_LABEL: &str = "kipper.run/hook-run";
/// The key of a hook's ConfigMap holding its script.
pub const SCRIPT_KEY: &str = "script.rhai";
/// Run records kept per hook; older ones are deleted as new ones are written.
pub const RUNS_KEPT: usize = 20;
/// The most of a run's output a record keeps.
const OUTPUT_KEPT: usize = 64 * 1024;

/// A registered hook.
#[derive(Debug, Clone)]
pub struct Hook {
    pub project: String,
    pub name: String,
    pub event: String,
    pub source: String,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `on_push` returned.
    Succeeded,
    /// It threw, or could not start (a syntax error, no `on_push`).
    Failed,
    /// A limit stopped it: operations, call depth, memory or time.
    Stopped,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
        }
    }
}

/// One run of one hook.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub project: String,
    pub hook: String,
    pub delivery: String,
    pub started: jiff::Timestamp,
    pub ended: jiff::Timestamp,
    pub outcome: Outcome,
    /// What it printed (`print`, `ui::…`), at most 64 KiB.
    pub output: String,
    /// Why it failed or was stopped, naming the hook's line.
    pub error: String,
}

/// Runs hooks against one cluster.
#[derive(Clone)]
pub struct Runner {
    pub client: kube::Client,
    pub cluster: ClusterChoice,
    pub search: SearchPath,
    pub kip_home: PathBuf,
    pub runtime: tokio::runtime::Handle,
    pub limits: Limits,
}

impl Runner {
    /// The hooks of `project` for `event`, by name.
    pub async fn hooks_for(&self, project: &str, event: &str) -> Result<Vec<Hook>, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NAMESPACE);
        let selector = format!("{PROJECT_LABEL}={project},{EVENT_LABEL}={event},{HOOK_LABEL}");
        let list = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read the hooks of {project}: {e}")),
        };
        let mut hooks: Vec<Hook> = list
            .items
            .into_iter()
            .filter_map(|cm| {
                let labels = cm.metadata.labels.clone().unwrap_or_default();
                Some(Hook {
                    project: project.to_string(),
                    name: labels.get(HOOK_LABEL)?.clone(),
                    event: event.to_string(),
                    source: cm.data?.get(SCRIPT_KEY)?.clone(),
                })
            })
            .collect();
        hooks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(hooks)
    }

    /// The namespaces of `project`'s environments, which its hooks may reach.
    pub async fn namespaces_of(&self, project: &str) -> Result<Vec<String>, String> {
        if project == "default" {
            return Ok(vec!["default".into()]);
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let selector = format!("app.kubernetes.io/managed-by=kipper,kipper.run/project={project}");
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("cannot read the namespaces of {project}: {e}"))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|ns| ns.metadata.name)
            .collect())
    }

    /// Runs every hook of `project` for `event` (the parsed push) one after another, records
    /// each run and returns them.
    pub async fn on_push(&self, project: &str, event: &Value, delivery: &str) -> Vec<HookRun> {
        let hooks = match self.hooks_for(project, "push").await {
            Ok(hooks) => hooks,
            Err(why) => {
                eprintln!("hooks of {project}: {why}");
                return Vec::new();
            }
        };
        let mut runs = Vec::new();
        for hook in hooks {
            let run = self.run(&hook, event.clone(), delivery).await;
            if let Err(why) = self.record(&run, event).await {
                eprintln!("hook {project}/{}: cannot record its run: {why}", hook.name);
            }
            println!(
                "hook {project}/{} {} ({} ms){}",
                hook.name,
                run.outcome.name(),
                (run.ended - run.started).get_milliseconds(),
                if run.error.is_empty() {
                    String::new()
                } else {
                    format!(": {}", run.error)
                }
            );
            runs.push(run);
        }
        runs
    }

    /// Runs `hook` with `event` on a blocking thread, in an engine of its own.
    pub async fn run(&self, hook: &Hook, event: Value, delivery: &str) -> HookRun {
        let started = jiff::Timestamp::now();
        let namespaces = self.namespaces_of(&hook.project).await;
        let mut run = HookRun {
            project: hook.project.clone(),
            hook: hook.name.clone(),
            delivery: delivery.to_string(),
            started,
            ended: started,
            outcome: Outcome::Failed,
            output: String::new(),
            error: String::new(),
        };
        let namespaces = match namespaces {
            Ok(namespaces) => namespaces,
            Err(why) => {
                run.error = why;
                run.ended = jiff::Timestamp::now();
                return run;
            }
        };
        let interrupt = Arc::new(Interrupt::default());
        let budget = self.limits.time;
        // The engine checks the budget between operations; a wait inside a builtin (a rollout,
        // an API call) is ended by the interrupt.
        let timer = {
            let interrupt = interrupt.clone();
            tokio::spawn(async move {
                tokio::time::sleep(budget).await;
                interrupt.raise();
            })
        };
        let runner = self.clone();
        let hook = hook.clone();
        let reach = Reach::Project {
            name: hook.project.clone(),
            namespaces,
        };
        let raised = interrupt.clone();
        let ran =
            tokio::task::spawn_blocking(move || runner.run_blocking(&hook, event, reach, raised))
                .await;
        timer.abort();
        run.ended = jiff::Timestamp::now();
        match ran {
            Ok((outcome, output, error)) => {
                run.outcome = outcome;
                run.output = output;
                run.error = error;
            }
            Err(e) => run.error = format!("the hook's thread ended unexpectedly: {e}"),
        }
        run
    }

    fn run_blocking(
        &self,
        hook: &Hook,
        event: Value,
        reach: Reach,
        interrupt: Arc<Interrupt>,
    ) -> (Outcome, String, String) {
        let mut kip = Kip::load_for_hooks(self.search.clone(), &self.limits);
        let host = Host {
            interrupt: Some(interrupt.clone()),
            reach,
            ..Host::new(
                self.runtime.clone(),
                self.kip_home.clone(),
                kip.search.clone(),
                // Registering the hook was the confirmation: `app promote` asks no one.
                UiSettings {
                    yes: true,
                    ..UiSettings::default()
                },
                self.cluster.clone(),
            )
        };
        let captured = builtins::set_capturing_host(&mut kip.engine, host);
        let stopped = interrupt.clone();
        kip.stop_when(move || {
            stopped
                .is_raised()
                .then(|| "the hook ran out of time".into())
        });
        let arg = match rhai::serde::to_dynamic(&event) {
            Ok(arg) => arg,
            Err(e) => {
                return (
                    Outcome::Failed,
                    String::new(),
                    format!("the event does not convert: {e}"),
                );
            }
        };
        let name = format!("hook {}/{}", hook.project, hook.name);
        let result = kip.run_function(&name, &hook.source, "on_push", arg);
        let mut output = std::mem::take(&mut *captured.lock().unwrap_or_else(|e| e.into_inner()));
        if output.len() > OUTPUT_KEPT {
            let mut cut = OUTPUT_KEPT;
            while !output.is_char_boundary(cut) {
                cut -= 1;
            }
            output.truncate(cut);
            output.push_str("\n… (output cut at 64 KiB)\n");
        }
        match result {
            Ok(_) => (Outcome::Succeeded, output, String::new()),
            Err(err) => {
                let outcome = if is_limit(&err) || interrupt.is_raised() {
                    Outcome::Stopped
                } else {
                    Outcome::Failed
                };
                let error = crate::scripts::one_line(&err);
                // A limit's error has no position: name the hook all the same.
                let error = if error.starts_with(&name) {
                    error
                } else {
                    format!("{name}: {error}")
                };
                (outcome, output, explain(&error))
            }
        }
    }

    /// Writes `run` as a ConfigMap and deletes the hook's oldest records beyond [`RUNS_KEPT`].
    pub async fn record(&self, run: &HookRun, event: &Value) -> Result<(), String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NAMESPACE);
        let stamp = run.started.as_millisecond();
        let name = format!("kip-hook-run-{}-{}-{stamp}", run.project, run.hook);
        let labels = BTreeMap::from([
            (RUN_LABEL.to_string(), run.hook.clone()),
            (PROJECT_LABEL.to_string(), run.project.clone()),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "kipper".to_string(),
            ),
        ]);
        let data = BTreeMap::from([
            ("hook".to_string(), run.hook.clone()),
            ("project".to_string(), run.project.clone()),
            ("delivery".to_string(), run.delivery.clone()),
            ("started".to_string(), run.started.to_string()),
            ("ended".to_string(), run.ended.to_string()),
            ("outcome".to_string(), run.outcome.name().to_string()),
            ("output".to_string(), run.output.clone()),
            ("error".to_string(), run.error.clone()),
            ("event".to_string(), event.to_string()),
        ]);
        let record = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(NAMESPACE.into()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        api.create(&PostParams::default(), &record)
            .await
            .map_err(|e| e.to_string())?;
        let selector = format!("{RUN_LABEL}={},{PROJECT_LABEL}={}", run.hook, run.project);
        let mut runs = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| e.to_string())?
            .items;
        // Names end with the start in milliseconds: the newest sort last.
        runs.sort_by_key(started_of);
        let extra = runs.len().saturating_sub(RUNS_KEPT);
        for old in runs.into_iter().take(extra) {
            if let Some(name) = old.metadata.name {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }
        }
        Ok(())
    }
}

fn started_of(cm: &ConfigMap) -> i64 {
    cm.metadata
        .name
        .as_deref()
        .and_then(|n| n.rsplit('-').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

/// Whether an engine error is one of the limits stopping a script: kip's own (memory, time)
/// carry the kind `limit`; Rhai's (operations, call depth, sizes) say so in words.
fn is_limit(err: &kip_core::ScriptError) -> bool {
    err.kind == Some(builtins::Kind::Limit)
        || [
            "Too many operations",
            "Stack overflow",
            "Exceeded",
            "too large",
            "ran out of time",
            "took more than its",
        ]
        .iter()
        .any(|m| err.message.contains(m))
}

/// A missing module in a hook's engine is one a hook may not use: say so.
fn explain(error: &str) -> String {
    for module in ["ssh", "tunnel", "pg", "fs"] {
        if error.contains(&format!("Module not found: {module}"))
            || error.contains(&format!("Function not found: {module}::"))
        {
            return format!(
                "{error} (hooks may not use {module}::; they reach their project through k8s::, tmpl::, ui:: and kip::run of app verbs)"
            );
        }
    }
    error.to_string()
}
