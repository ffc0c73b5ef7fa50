//! Build pods run for real as processes of this machine: a pod all of whose containers use an
//! image the sandbox stands in for ([`stand_in`]) is not run by podman (no such image can be
//! had offline) but by this module, as the kubelet would run it.
//!
//! - `alpine/git`: this machine's `git` with the container's arguments (`$(VAR)` expanded),
//!   only the environment the container declares plus `HOME` (a folder of the pod), `PATH`,
//!   `GIT_TERMINAL_PROMPT=0`, `GIT_CONFIG_NOSYSTEM=1` and `GIT_ALLOW_PROTOCOL=http:https:git:ssh`
//!   (no `file://`, no `ext::`), ssh without this machine's keys and configuration; never
//!   `GIT_TRACE*`, which would print an Authorization header.
//!   git runs as the sandbox's user on this machine, so nothing may make it run another
//!   program (`guard`): only some subcommands, and no configuration that names a command.
//! - `gcr.io/kaniko-project/executor`: `buildah bud` into the sandbox's store, then
//!   `buildah push` to the sandbox's registry (the only destination allowed); the pushed
//!   digest goes to `--digest-file`, the termination message when that is the container's
//!   `terminationMessagePath`.
//!
//! Paths: an argument, `workingDir` or Kaniko path at or under a volumeMount's `mountPath` is
//! that volume's folder here; any other absolute path is refused (the container fails saying
//! which). The pod has no address of its own (its processes share this machine's network):
//! its status has no `podIP`, so no Service sends it traffic.
//!
//! Init containers run in order, then the containers together. Every `restartPolicy` is taken
//! as `Never`: a failed container is not restarted and fails the pod (a Job's pod has `Never`
//! or `OnFailure`, and a build is not retried: the next push or rebuild is the retry). Each
//! container's output is a log file of the pod (`pods/{name}/log` serves it). Deleting the pod
//! kills its process groups (SIGTERM, SIGKILL after at most [`MAX_GRACE`]); so does stopping
//! the sandbox.

mod guard;
mod kaniko;
mod process;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

pub use process::kill_groups;
use process::{Groups, Log};

use super::status::{Container, State};
use super::{
    LogFile, Observed, Runtime, Updates, all_containers, record_events, str_at, volumes,
    write_status,
};
use crate::controllers::is_deleting_pod;
use crate::ops;
use crate::store::Store;

/// The longest a stand-in container gets to stop when its pod goes.
const MAX_GRACE: Duration = Duration::from_secs(3);
/// What the kubelet's containers find as `PATH`.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where a container's termination message is unless it says.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// A tool the sandbox stands in for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tool {
    Git,
    Kaniko,
}

/// The tool an image stands for, recognised by its repository whatever its tag or digest:
/// `alpine/git` (also `docker.io/alpine/git`) and `gcr.io/kaniko-project/executor`.
pub fn stand_in(image: &str) -> Option<Tool> {
    let image = image.split('@').next().unwrap_or(image);
    let repository = match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => image,
    };
    match repository {
        "alpine/git" | "docker.io/alpine/git" => Some(Tool::Git),
        "gcr.io/kaniko-project/executor" => Some(Tool::Kaniko),
        _ => None,
    }
}

/// Whether every container of `pod` (init containers too) uses a stand-in image.
pub fn runs(pod: &Value) -> bool {
    let mut all = all_containers(pod).peekable();
    all.peek().is_some() && all.all(|c| stand_in(c["image"].as_str().unwrap_or("")).is_some())
}

/// How a container ended.
struct Ended {
    code: i64,
    reason: &'static str,
    /// What the container wrote as its termination message, or why it could not start.
    message: String,
    started: String,
    finished: String,
}

struct Pod {
    runtime: Arc<Runtime>,
    store: Store,
    uid: String,
    pod: Arc<Value>,
    dir: PathBuf,
    folders: volumes::Folders,
    started: String,
    phase: &'static str,
    initialized: bool,
    inits: Vec<Container>,
    containers: Vec<Container>,
    logs: HashMap<String, LogFile>,
    groups: Arc<Groups>,
}

/// Runs the pod `uid` until it is deleted.
pub async fn run(runtime: Arc<Runtime>, store: Store, uid: String, mut updates: Updates) {
    let Some(pod) = updates.borrow_and_update().clone() else {
        return;
    };
    let dir = runtime.sandbox_dir.join("pods").join(&uid);
    let list = |field: &str| Container::all_waiting(&pod, field, "PodInitializing");
    let logs: HashMap<String, LogFile> = list("initContainers")
        .iter()
        .chain(list("containers").iter())
        .map(|c| {
            let file = LogFile {
                path: dir.join("logs").join(format!("{}.log", c.name)),
                done: Arc::default(),
            };
            (c.name.clone(), file)
        })
        .collect();
    let mut p = Pod {
        started: pod["status"]["startTime"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(ops::now),
        inits: list("initContainers"),
        containers: list("containers"),
        runtime,
        store,
        uid,
        pod,
        dir,
        folders: volumes::Folders::new(),
        phase: "Pending",
        initialized: false,
        logs,
        groups: Arc::default(),
    };
    let ns = str_at(&p.pod, "/metadata/namespace").to_string();
    let name = str_at(&p.pod, "/metadata/name").to_string();
    p.runtime
        .register_standin(&p.uid, &ns, &name, p.logs.clone());
    if p.set_up(&mut updates).await {
        p.life(&mut updates).await;
    }
    p.tear_down().await;
}

/// Serves the logs an ended pod `uid` left (the sandbox restarted since) until it is deleted,
/// then removes its folder.
pub async fn remember(runtime: Arc<Runtime>, uid: String, mut updates: Updates) {
    let Some(pod) = updates.borrow_and_update().clone() else {
        return;
    };
    let dir = runtime.sandbox_dir.join("pods").join(&uid);
    let logs: HashMap<String, LogFile> = all_containers(&pod)
        .filter_map(|c| {
            let name = c["name"].as_str()?.to_string();
            let path = dir.join("logs").join(format!("{name}.log"));
            let done = Arc::new(std::sync::atomic::AtomicBool::new(true));
            path.exists().then_some((name, LogFile { path, done }))
        })
        .collect();
    let ns = str_at(&pod, "/metadata/namespace");
    let name = str_at(&pod, "/metadata/name");
    if !logs.is_empty() {
        runtime.register_standin(&uid, ns, name, logs);
    }
    while updates.changed().await.is_ok() {
        match updates.borrow_and_update().as_deref() {
            Some(pod) if !is_deleting_pod(pod) => {}
            _ => break,
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    runtime.release(&uid);
}

impl Pod {
    /// The pod's folder and volumes; false when the pod went meanwhile.
    async fn set_up(&mut self, updates: &mut Updates) -> bool {
        loop {
            let _ = std::fs::remove_dir_all(self.dir.join("logs"));
            let prepared = std::fs::create_dir_all(self.dir.join("logs"))
                .and_then(|()| std::fs::create_dir_all(self.dir.join("home")))
                .map_err(|e| format!("cannot make {}: {e}", self.dir.display()))
                .and_then(|()| {
                    volumes::prepare(&self.store, &self.runtime.sandbox_dir, &self.dir, &self.pod)
                });
            match prepared {
                Ok(folders) => {
                    self.folders = folders;
                    self.write().await;
                    return true;
                }
                Err(why) => {
                    let message = format!("MountVolume.SetUp failed: {why}");
                    self.event(false, "FailedMount", message, None).await;
                    self.write().await;
                    let wait = tokio::time::sleep(Duration::from_secs(2));
                    if self.unless_gone(updates, wait).await.is_none() {
                        return false;
                    }
                }
            }
        }
    }

    /// Init containers in order, then the containers; then waits until the pod goes.
    async fn life(&mut self, updates: &mut Updates) {
        for index in 0..self.inits.len() {
            let spec = self.spec(true, index);
            self.starting(true, index).await;
            let work = self.execute(spec, true);
            let Some(ended) = self.unless_gone(updates, work).await else {
                return;
            };
            let ok = ended.code == 0;
            self.ended(true, index, ended);
            // restartPolicy: a failed init container fails the pod, as with `Never` (see the
            // module's doc).
            if !ok {
                self.phase = "Failed";
                self.write().await;
                return self.wait_until_gone(updates).await;
            }
            self.write().await;
        }
        self.initialized = true;
        let (report, mut reports) = mpsc::unbounded_channel();
        for index in 0..self.containers.len() {
            let spec = self.spec(false, index);
            self.starting(false, index).await;
            let work = self.execute(spec, false);
            let report = report.clone();
            tokio::spawn(async move {
                let _ = report.send((index, work.await));
            });
        }
        self.phase = "Running";
        self.write().await;
        let mut left = self.containers.len();
        while left > 0 {
            let Some(Some((index, ended))) = self.unless_gone(updates, reports.recv()).await else {
                return;
            };
            self.ended(false, index, ended);
            left -= 1;
            if left == 0 {
                let failed = self
                    .containers
                    .iter()
                    .any(|c| matches!(c.state, State::Terminated { code, .. } if code != 0));
                self.phase = if failed { "Failed" } else { "Succeeded" };
            }
            self.write().await;
        }
        self.wait_until_gone(updates).await
    }

    fn spec(&self, init: bool, index: usize) -> Value {
        let field = if init { "initContainers" } else { "containers" };
        self.pod["spec"][field][index].clone()
    }

    fn slot(&mut self, init: bool, index: usize) -> &mut Container {
        if init {
            &mut self.inits[index]
        } else {
            &mut self.containers[index]
        }
    }

    /// Says the container runs: its status, and Pulled/Created/Started.
    async fn starting(&mut self, init: bool, index: usize) {
        let slot = self.slot(init, index);
        slot.state = State::Running { since: ops::now() };
        // No probes: a running container is ready, as the kubelet says of one without them.
        slot.ready = !init;
        slot.image_id = match stand_in(&slot.image) {
            Some(Tool::Git) => "stand-in://git".into(),
            _ => "stand-in://buildah".into(),
        };
        let (name, image) = (slot.name.clone(), slot.image.clone());
        let at = format!(
            "spec.{}{{{name}}}",
            if init { "initContainers" } else { "containers" }
        );
        self.write().await;
        let said = vec![
            (
                true,
                "Pulled",
                format!(
                    "Container image \"{image}\" already present on machine (stood in for by \
                     this machine's tools)"
                ),
            ),
            (true, "Created", format!("Created container: {name}")),
            (true, "Started", format!("Started container {name}")),
        ];
        self.events(said, Some(&at)).await;
    }

    /// Records how the container ended in its status.
    fn ended(&mut self, init: bool, index: usize, ended: Ended) {
        let slot = self.slot(init, index);
        slot.ready = false;
        slot.state = State::Terminated {
            code: ended.code,
            reason: ended.reason.into(),
            started: ended.started,
            finished: ended.finished,
            message: ended.message,
        };
        let name = slot.name.clone();
        if let Some(log) = self.logs.get(&name) {
            log.done.store(true, Ordering::Relaxed);
        }
    }

    /// Runs one container to its end (a future owning what it needs, so it can be spawned).
    fn execute(
        &self,
        spec: Value,
        init: bool,
    ) -> impl std::future::Future<Output = Ended> + Send + 'static {
        let name = spec["name"].as_str().unwrap_or("").to_string();
        let at = format!(
            "spec.{}{{{name}}}",
            if init { "initContainers" } else { "containers" }
        );
        let store = self.store.clone();
        let log = Log::new(
            &self
                .logs
                .get(&name)
                .map(|l| l.path.clone())
                .unwrap_or_else(|| self.dir.join("logs").join(format!("{name}.log"))),
        );
        let env = crate::api::exec::host::container_env(&self.store, &self.pod, &spec)
            .map_err(|e| e.message);
        let mounts = Mounts::of(&spec, &self.folders);
        let home = self.dir.join("home").join(&name);
        let runtime = self.runtime.clone();
        let groups = self.groups.clone();
        let pod_dir = self.dir.clone();
        let pod = self.pod.clone();
        async move {
            let started = ops::now();
            let run = Run {
                spec: &spec,
                env,
                mounts,
                home,
                log: &log,
                runtime: &runtime,
                groups: &groups,
                pod_dir: &pod_dir,
            };
            let tool = stand_in(spec["image"].as_str().unwrap_or(""));
            let outcome = match (run.mounts.ensure(), tool) {
                (Err(why), _) => Err(why),
                (Ok(()), Some(Tool::Git)) => run.git().await,
                (Ok(()), Some(Tool::Kaniko)) => run.kaniko().await,
                (Ok(()), None) => Err("no stand-in for this image".to_string()),
            };
            let finished = ops::now();
            let (code, reason, message) = match outcome {
                Ok((code, message)) => {
                    let reason = if code == 0 { "Completed" } else { "Error" };
                    let fallback = spec["terminationMessagePolicy"] == "FallbackToLogsOnError";
                    let message = if message.is_empty() && code != 0 && fallback {
                        log.tail()
                    } else {
                        message
                    };
                    (code, reason, message)
                }
                Err(why) => {
                    log.line(&format!("error: {why}"));
                    let said = vec![(false, "Failed", format!("Error: {why}"))];
                    let _ = record_events(&store, &pod, said, Some(&at)).await;
                    (128, "StartError", why)
                }
            };
            Ended {
                code,
                reason,
                message,
                started,
                finished,
            }
        }
    }
}

/// What running one container needs.
struct Run<'a> {
    spec: &'a Value,
    env: Result<Vec<(String, String)>, String>,
    mounts: Mounts,
    home: PathBuf,
    log: &'a Log,
    runtime: &'a Arc<Runtime>,
    groups: &'a Arc<Groups>,
    pod_dir: &'a Path,
}

impl Run<'_> {
    async fn exec(&self, cmd: std::process::Command) -> Result<i64, String> {
        process::execute(cmd, self.log, self.groups, &self.runtime.groups).await
    }

    fn strings(&self, field: &str, env: &[(String, String)]) -> Vec<String> {
        self.spec[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|a| crate::api::exec::host::expand(a, env))
            .collect()
    }

    /// The working dir: `workingDir` mapped, else `fallback`.
    fn working_dir(&self, fallback: &Path) -> Result<PathBuf, String> {
        match self.spec["workingDir"].as_str().filter(|d| !d.is_empty()) {
            Some(dir) => self.mounts.host(dir),
            None => Ok(fallback.to_path_buf()),
        }
    }

    /// The host's git with the container's arguments: its exit code (git writes no
    /// termination message).
    async fn git(&self) -> Result<(i64, String), String> {
        let env = self.env.clone()?;
        let command = self.strings("command", &env);
        if !command.is_empty() && command != ["git"] {
            return Err(format!(
                "command {command:?} refused: the stand-in for alpine/git runs only git (leave \
                 command empty, or [\"git\"])"
            ));
        }
        let args = self.strings("args", &env);
        guard::git_args(&args)?;
        let args = args
            .iter()
            .map(|a| self.mounts.map_arg(a))
            .collect::<Result<Vec<String>, String>>()?;
        std::fs::create_dir_all(&self.home)
            .map_err(|e| format!("cannot make {}: {e}", self.home.display()))?;
        let dir = self.working_dir(&self.home)?;
        let mut cmd = std::process::Command::new("git");
        // A bare repository inside a checkout (its config could run commands) is not used.
        cmd.args(["-c", "safe.bareRepository=explicit"])
            .args(&args)
            .current_dir(&dir)
            .env_clear();
        for (key, value) in &env {
            if let Err(why) = guard::git_env(key, value) {
                if key.starts_with("GIT_CONFIG_KEY_") {
                    return Err(why);
                }
                self.log.line(&format!("[sandbox] {key} ignored: {why}"));
                continue;
            }
            cmd.env(key, value);
        }
        cmd.env("HOME", &self.home)
            .env("PATH", PATH)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_ALLOW_PROTOCOL", "http:https:git:ssh")
            .env("GIT_SSH_COMMAND", ssh_command(&self.home));
        Ok((self.exec(cmd).await?, String::new()))
    }

    /// Kaniko's build and push as buildah's: the exit code and the termination message (the
    /// digest, when `--digest-file` is the termination message's path).
    async fn kaniko(&self) -> Result<(i64, String), String> {
        let env = self.env.clone()?;
        let command = self.strings("command", &env);
        if !command.is_empty() && command != ["/kaniko/executor"] {
            return Err(format!(
                "command {command:?} refused: the stand-in for Kaniko runs only its executor"
            ));
        }
        let flags = kaniko::parse(&self.strings("args", &env));
        for ignored in &flags.ignored {
            self.log.line(&format!(
                "[sandbox] {ignored} ignored: the stand-in does not follow it"
            ));
        }
        let registry = self.runtime.registry.as_deref();
        if flags.destinations.is_empty() && !flags.no_push {
            return Err("no --destination (and no --no-push): nothing to push to".into());
        }
        for destination in &flags.destinations {
            kaniko::in_registry(destination, registry)?;
        }
        let context = kaniko::context_path(flags.context.as_deref())?;
        let context_dir = self.mounts.host(&context)?;
        let context_dir = self.within_mount(&context, &context_dir)?;
        if !context_dir.is_dir() {
            return Err(format!("context {context} is not a folder"));
        }
        let absolute = flags
            .dockerfile
            .as_deref()
            .filter(|d| d.starts_with('/'))
            .map(|d| self.mounts.host(d))
            .transpose()?;
        let dockerfile =
            kaniko::dockerfile_path(&context_dir, flags.dockerfile.as_deref(), absolute);
        let shown = flags.dockerfile.as_deref().unwrap_or("Dockerfile");
        if !dockerfile.is_file() {
            return Err(format!(
                "dockerfile {shown} not found in the context {context}"
            ));
        }
        let dockerfile = self.within_mount(shown, &dockerfile)?;
        let termination = self.spec["terminationMessagePath"]
            .as_str()
            .unwrap_or(TERMINATION_LOG);
        let digest_target = match flags.digest_file.as_deref() {
            None => None,
            Some(p) if p == termination => Some(None),
            Some(p) => Some(Some(self.mounts.host(p)?)),
        };
        let mut bud = self.runtime.containers.command("buildah");
        bud.args(kaniko::bud_args(&flags, &context_dir, &dockerfile))
            .current_dir(&context_dir);
        let code = self.exec(bud).await?;
        if code != 0 || flags.no_push {
            return Ok((code, String::new()));
        }
        let image = &flags.destinations[0];
        let mut digest = String::new();
        for (n, destination) in flags.destinations.iter().enumerate() {
            let file = self.pod_dir.join(format!("digest-{n}"));
            let mut push = self.runtime.containers.command("buildah");
            push.args(kaniko::push_args(image, destination, &file));
            let code = self.exec(push).await?;
            if code != 0 {
                return Ok((code, String::new()));
            }
            if n == 0 {
                digest = std::fs::read_to_string(&file)
                    .map(|d| d.trim().to_string())
                    .unwrap_or_default();
            }
            self.log.line(&format!("Pushed {destination}@{digest}"));
        }
        match digest_target {
            None => Ok((0, String::new())),
            Some(None) => Ok((0, digest)),
            Some(Some(path)) => {
                std::fs::write(&path, &digest)
                    .map_err(|e| format!("cannot write the digest file: {e}"))?;
                Ok((0, String::new()))
            }
        }
    }

    /// `host` (what `path` maps to) resolved through symbolic links, refused unless it stays in
    /// the volume it is in.
    fn within_mount(&self, path: &str, host: &Path) -> Result<PathBuf, String> {
        let real = host.canonicalize().map_err(|e| format!("{path}: {e}"))?;
        let inside = self
            .mounts
            .0
            .iter()
            .filter_map(|(_, folder)| folder.canonicalize().ok())
            .any(|folder| real.starts_with(folder));
        if inside {
            Ok(real)
        } else {
            Err(format!(
                "{path} refused: it leads outside the container's volume mounts"
            ))
        }
    }
}

/// ssh for git as a container has it: no keys, no configuration and no known hosts of this
/// machine's user (ssh takes them from the user's home, not from `HOME`), never a prompt.
fn ssh_command(home: &Path) -> String {
    let known = home
        .join("known_hosts")
        .display()
        .to_string()
        .replace('\'', "'\\''");
    format!(
        "ssh -F /dev/null -o IdentityFile=none -o IdentitiesOnly=yes -o BatchMode=yes \
         -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile='{known}' \
         -o StrictHostKeyChecking=accept-new"
    )
}

/// A container's volumeMounts: mountPath → the folder here.
struct Mounts(Vec<(String, PathBuf)>);

impl Mounts {
    fn of(spec: &Value, folders: &volumes::Folders) -> Mounts {
        let mut all = Vec::new();
        for mount in spec["volumeMounts"].as_array().into_iter().flatten() {
            let (Some(name), Some(path)) = (mount["name"].as_str(), mount["mountPath"].as_str())
            else {
                continue;
            };
            let Some(mut folder) = folders.get(name).cloned() else {
                continue;
            };
            if let Some(sub) = mount["subPath"].as_str().filter(|s| !s.is_empty()) {
                if Path::new(sub).is_absolute() || sub.split('/').any(|c| c == "..") {
                    continue;
                }
                folder = folder.join(sub);
            }
            all.push((path.trim_end_matches('/').to_string(), folder));
        }
        // The deepest mount first: it is the one a path under both is in.
        all.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        Mounts(all)
    }

    /// Makes the folders (a `subPath` may not exist yet).
    fn ensure(&self) -> Result<(), String> {
        for (path, folder) in &self.0 {
            std::fs::create_dir_all(folder).map_err(|e| format!("cannot mount {path}: {e}"))?;
        }
        Ok(())
    }

    /// The folder here an absolute path of the container is; refused when it is under no
    /// mount or goes up with `..`.
    fn host(&self, path: &str) -> Result<PathBuf, String> {
        let outside = || {
            format!(
                "path {path} refused: the stand-in runs on this machine and reaches only the \
                 container's volume mounts ({})",
                self.0
                    .iter()
                    .map(|(p, _)| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let p = Path::new(path);
        if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
            return Err(outside());
        }
        for (mount, folder) in &self.0 {
            let Ok(rest) = p.strip_prefix(if mount.is_empty() { "/" } else { mount }) else {
                continue;
            };
            return Ok(folder.join(rest));
        }
        Err(outside())
    }

    /// A git argument: an absolute path (alone or as `--flag=PATH`) mapped, anything else as
    /// it is.
    fn map_arg(&self, arg: &str) -> Result<String, String> {
        if arg.starts_with('/') {
            return Ok(self.host(arg)?.display().to_string());
        }
        if arg.starts_with('-')
            && let Some((flag, value)) = arg.split_once('=')
            && value.starts_with('/')
        {
            return Ok(format!("{flag}={}", self.host(value)?.display()));
        }
        Ok(arg.to_string())
    }
}

impl Pod {
    /// Runs `work` while taking the pod's new versions; None when the pod went first.
    async fn unless_gone<T>(
        &mut self,
        updates: &mut Updates,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        super::unless_gone(&mut self.pod, updates, work).await
    }

    async fn wait_until_gone(&mut self, updates: &mut Updates) {
        while self
            .unless_gone(updates, tokio::time::sleep(Duration::from_secs(3600)))
            .await
            .is_some()
        {}
    }

    /// Kills what still runs, removes the pod's folder and forgets the pod.
    async fn tear_down(&mut self) {
        let grace = self.pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .map(Duration::from_secs)
            .unwrap_or(MAX_GRACE)
            .min(MAX_GRACE);
        let groups = self.groups.cancel();
        kill_groups(&groups, grace).await;
        for log in self.logs.values() {
            log.done.store(true, Ordering::Relaxed);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        self.runtime.release(&self.uid);
    }

    /// Writes the status as it is now, unless the pod was replaced by another of its name.
    async fn write(&self) {
        let seen = Observed {
            phase: self.phase,
            // No address of the pod network: the processes share this machine's.
            ip: None,
            started: self.started.clone(),
            initialized: self.initialized,
            inits: self.inits.clone(),
            containers: self.containers.clone(),
        };
        let _ = write_status(&self.store, &self.pod, seen).await;
    }

    async fn event(&self, normal: bool, reason: &'static str, message: String, at: Option<&str>) {
        self.events(vec![(normal, reason, message)], at).await;
    }

    async fn events(&self, said: Vec<(bool, &'static str, String)>, at: Option<&str>) {
        let _ = record_events(&self.store, &self.pod, said, at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_are_recognised_by_repository_whatever_the_tag_or_digest() {
        for git in [
            "alpine/git",
            "alpine/git:v2.47.2",
            "alpine/git:latest@sha256:0123",
            "docker.io/alpine/git:2.45.2",
        ] {
            assert_eq!(stand_in(git), Some(Tool::Git), "{git}");
        }
        for kaniko in [
            "gcr.io/kaniko-project/executor:v1.23.2",
            "gcr.io/kaniko-project/executor:debug",
            "gcr.io/kaniko-project/executor@sha256:0123",
        ] {
            assert_eq!(stand_in(kaniko), Some(Tool::Kaniko), "{kaniko}");
        }
        for other in [
            "alpine/gitx:1",
            "alpine:3.20",
            "localhost:5000/alpine/git:1",
            "gcr.io/kaniko-project/warmer:v1",
            "busybox",
        ] {
            assert_eq!(stand_in(other), None, "{other}");
        }
    }

    #[test]
    fn paths_map_to_the_volumes_folders_and_nowhere_else() {
        let folders: volumes::Folders = [(
            "workspace".to_string(),
            PathBuf::from("/pods/u/volumes/workspace"),
        )]
        .into();
        let spec = serde_json::json!({"volumeMounts": [
            {"name": "workspace", "mountPath": "/workspace"},
            {"name": "workspace", "mountPath": "/workspace/deep/", "subPath": "d"},
        ]});
        let mounts = Mounts::of(&spec, &folders);
        assert_eq!(
            mounts.host("/workspace/src"),
            Ok(PathBuf::from("/pods/u/volumes/workspace/src"))
        );
        assert_eq!(
            mounts.host("/workspace"),
            Ok(PathBuf::from("/pods/u/volumes/workspace"))
        );
        assert_eq!(
            mounts.host("/workspace/deep/x"),
            Ok(PathBuf::from("/pods/u/volumes/workspace/d/x"))
        );
        for outside in [
            "/workspacex",
            "/etc/passwd",
            "/workspace/../etc",
            "relative",
        ] {
            let refused = mounts.host(outside).unwrap_err();
            assert!(refused.contains(outside), "{refused}");
        }
        assert_eq!(
            mounts.map_arg("--separate-git-dir=/workspace/g").as_deref(),
            Ok("--separate-git-dir=/pods/u/volumes/workspace/g")
        );
        assert_eq!(
            mounts.map_arg("http://h/r.git").as_deref(),
            Ok("http://h/r.git")
        );
        assert!(mounts.map_arg("/root/.ssh").is_err());
    }
}
