//! Runs verbs for the console: the same declarations, parsing and scripts as the command line,
//! in an engine of its own per request, with what the verb prints kept instead of shown.
//! A page reads by running read verbs with `-o json`; an action runs its verb with `--yes`
//! after the console had the user confirm.

use std::path::PathBuf;

use builtins::{ClusterChoice, Host, OutputFormat, UiSettings};
use kip_core::{Kip, Limits, SearchPath};

/// What the console needs to run verbs on its cluster.
#[derive(Clone)]
pub struct Runner {
    pub cluster: ClusterChoice,
    pub search: SearchPath,
    pub kip_home: PathBuf,
    pub runtime: tokio::runtime::Handle,
}

/// How a verb ran: what it printed, and why it failed if it did.
#[derive(Debug, Clone, Default)]
pub struct Ran {
    pub output: String,
    pub error: Option<String>,
    /// What the verb returned, as JSON (`project copy-env --plan` returns its plan).
    pub value: serde_json::Value,
}

impl Ran {
    fn failed(error: impl Into<String>) -> Ran {
        Ran {
            error: Some(error.into()),
            ..Ran::default()
        }
    }
}

impl Runner {
    /// Runs the command line `argv` (`["app", "scale", "--replicas=2", "--", "web"]`) as
    /// `kip` would, printing in `format`.
    pub async fn run(&self, argv: Vec<String>, format: OutputFormat) -> Ran {
        let runner = self.clone();
        tokio::task::spawn_blocking(move || runner.run_blocking(argv, format))
            .await
            .unwrap_or_else(|e| Ran::failed(format!("the verb stopped unexpectedly: {e}")))
    }

    /// Runs the read verb `argv` with `-o json` and returns what it printed, parsed.
    pub async fn read(&self, argv: &[&str]) -> Result<serde_json::Value, String> {
        let ran = self
            .run(
                argv.iter().map(|s| s.to_string()).collect(),
                OutputFormat::Json,
            )
            .await;
        if let Some(error) = ran.error {
            return Err(error);
        }
        serde_json::from_str(&ran.output).map_err(|e| {
            format!(
                "`kip {} -o json` printed something that is not JSON ({e})",
                argv.join(" ")
            )
        })
    }

    /// Runs `verb` (`app scale`) with a form's fields as its flags and arguments
    /// ([`super::actions::command_line`]); returns the command line as a user would type it, and
    /// how it ran.
    pub async fn run_form(&self, verb: &str, fields: Vec<(String, String)>) -> (String, Ran) {
        let runner = self.clone();
        let words: Vec<String> = verb.split(' ').map(str::to_string).collect();
        let shown = format!("kip {verb}");
        let ran = tokio::task::spawn_blocking(move || {
            let kip = runner.load();
            let Some(declared) = kip.verbs.chain(&words).first().copied() else {
                let why = format!("there is no verb `{}`", words.join(" "));
                return (None, Ran::failed(why));
            };
            match super::actions::command_line(declared, &fields) {
                Ok(argv) => {
                    let shown = super::actions::shown(&argv);
                    (
                        Some(shown),
                        runner.run_loaded(kip, argv, OutputFormat::Table),
                    )
                }
                Err(why) => (None, Ran::failed(why)),
            }
        })
        .await;
        match ran {
            Ok((typed, ran)) => (typed.unwrap_or(shown), ran),
            Err(e) => (
                shown,
                Ran::failed(format!("the verb stopped unexpectedly: {e}")),
            ),
        }
    }

    fn load(&self) -> Kip {
        let cache = self.kip_home.join("cache").join("verbs.json");
        Kip::load_with_cache(self.search.clone(), &Limits::CLI, Some(&cache))
    }

    /// Calls `func` of the library `module` (`lib/apps`) with `args` and returns its value:
    /// for what no verb prints, such as where an app's logs come from.
    pub async fn call(
        &self,
        module: &'static str,
        func: &'static str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let runner = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut kip = runner.load();
            runner.attach(&mut kip, OutputFormat::Json);
            let args = rhai::serde::to_dynamic(&args).map_err(|e| e.to_string())?;
            let value = kip.call(module, func, vec![args]).map_err(|e| e.message)?;
            rhai::serde::from_dynamic(&value).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("the script stopped unexpectedly: {e}"))?
    }

    /// Gives `kip`'s engine a host on this console's cluster, printing in `format` into the
    /// buffer it returns.
    fn attach(&self, kip: &mut Kip, format: OutputFormat) -> builtins::host::Captured {
        let host = Host::new(
            self.runtime.clone(),
            self.kip_home.clone(),
            kip.search.clone(),
            // The console asked (a typed name, a button) before it runs a verb.
            UiSettings {
                yes: true,
                interactive: false,
                color: false,
                spinners: false,
                output: format,
            },
            self.cluster.clone(),
        );
        builtins::set_capturing_host(&mut kip.engine, host)
    }

    /// Runs `argv` and returns what the verb returned.
    pub async fn value(&self, argv: Vec<String>) -> Result<serde_json::Value, String> {
        let ran = self.run(argv, OutputFormat::Table).await;
        match ran.error {
            Some(why) => Err(why),
            None => Ok(ran.value),
        }
    }

    fn run_blocking(&self, argv: Vec<String>, format: OutputFormat) -> Ran {
        self.run_loaded(self.load(), argv, format)
    }

    fn run_loaded(&self, mut kip: Kip, argv: Vec<String>, format: OutputFormat) -> Ran {
        let root = kip_core::cli::add_verbs(clap::Command::new("kip"), &kip.verbs, &[]);
        let matches = match root.try_get_matches_from(std::iter::once("kip".into()).chain(argv)) {
            Ok(matches) => matches,
            Err(e) => return Ran::failed(clap_error(&e)),
        };
        let words = kip_core::cli::chosen_words(&matches);
        let Some(verb) = kip.verbs.chain(&words).first().copied().cloned() else {
            return Ran::failed(format!("there is no verb `{}`", words.join(" ")));
        };
        if let Some(broken) = kip.verbs.broken_for(&words) {
            return Ran::failed(format!(
                "{} is broken: {}",
                broken.origin.display(),
                broken.error.message
            ));
        }
        let Some(verb_matches) = kip_core::cli::verb_matches(&matches, &words) else {
            return Ran::failed("bad command line");
        };
        let opts = kip_core::cli::opts(&verb, verb_matches);
        let captured = self.attach(&mut kip, format);
        let result = kip.run_verb(&words, opts);
        let output = std::mem::take(&mut *captured.lock().unwrap_or_else(|e| e.into_inner()));
        match result {
            Ok(value) => Ran {
                output,
                error: None,
                value: rhai::serde::from_dynamic(&value).unwrap_or_default(),
            },
            Err(e) => Ran {
                output,
                error: Some(e.message),
                value: serde_json::Value::Null,
            },
        }
    }
}

/// The first line of clap's complaint, without its `error: ` and usage.
fn clap_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or("bad command line");
    line.trim_start_matches("error: ").to_string()
}
