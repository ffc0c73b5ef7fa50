//! `kip test [DIR]`: runs script tests. Each `*_test.rhai` file runs against a fresh sandbox
//! in a throwaway kip home of its own, started before and removed after, with the user's
//! scripts (and so their overrides) on the search path. A file's top level runs first, then
//! each `fn test_…()` in the order the file defines them; a file without such functions is one test itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use builtins::Kind;
use kip_core::{Kip, ScriptError};
use rhai::{CallFnOptions, Scope};
use sandbox::home::SandboxHome;

use crate::verb_cmd::{self, Failure};

/// Folders never searched for tests.
const SKIPPED: &[&str] = &["target", "node_modules"];

pub fn run(kip: &mut Kip, dir: &Path) -> Result<(), Failure> {
    let files = test_files(dir).map_err(|e| {
        Failure::new(
            Kind::NotFound,
            format!("cannot read {}: {e}", dir.display()),
        )
    })?;
    if files.is_empty() {
        return Err(Failure::new(
            Kind::NotFound,
            format!(
                "no *_test.rhai files in {} (a test file is a script named like deploy_test.rhai)",
                dir.display()
            ),
        ));
    }
    let runtime = verb_cmd::runtime()?;
    let started = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        println!("{}", file.display());
        for outcome in run_file(kip, &runtime, file) {
            match &outcome.error {
                None => {
                    passed += 1;
                    println!("  ✔ {} ({})", outcome.name, seconds(outcome.took));
                }
                Some(text) => {
                    failed += 1;
                    println!("  ✘ {} ({})", outcome.name, seconds(outcome.took));
                    for line in text.lines() {
                        println!("      {line}");
                    }
                }
            }
        }
    }
    let total = passed + failed;
    let files_word = if files.len() == 1 { "file" } else { "files" };
    println!(
        "{passed} passed, {failed} failed: {total} tests in {} {files_word} ({})",
        files.len(),
        seconds(started.elapsed())
    );
    if failed > 0 {
        return Err(Failure::new(
            Kind::Failed,
            format!("{failed} of {total} tests failed"),
        ));
    }
    Ok(())
}

/// One test's result: its error as printed, if it failed.
struct Outcome {
    name: String,
    took: Duration,
    error: Option<String>,
}

/// Every `*_test.rhai` under `dir`, sorted; hidden folders and build output are skipped.
fn test_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !name.starts_with('.') && !SKIPPED.contains(&name) {
                    pending.push(path);
                }
            } else if name.ends_with("_test.rhai") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A file's outcomes; one failed `(setup)` when the file could not get as far as its tests.
fn run_file(kip: &mut Kip, runtime: &tokio::runtime::Runtime, file: &Path) -> Vec<Outcome> {
    let started = Instant::now();
    let home = ThrowawayHome::new()
        .map_err(|e| format!("error: cannot make a kip home for the test: {e}"));
    let outcomes = home.and_then(|home| {
        let sandbox = SandboxHome::new(&home.0);
        let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        crate::sandbox_cmd::ensure_running(&sandbox, any_port)
            .map_err(|e| format!("error: cannot start the test's sandbox: {e}"))?;
        let outcomes = run_in(kip, runtime, file, &home.0, started);
        crate::sandbox_cmd::stop(&sandbox);
        outcomes
    });
    outcomes.unwrap_or_else(|error| {
        vec![Outcome {
            name: "(setup)".into(),
            took: started.elapsed(),
            error: Some(error),
        }]
    })
}

fn run_in(
    kip: &mut Kip,
    runtime: &tokio::runtime::Runtime,
    file: &Path,
    home: &Path,
    started: Instant,
) -> Result<Vec<Outcome>, String> {
    let name = file.display().to_string();
    let sources = |source: &str| std::fs::read_to_string(source).ok();
    let render = |err: &ScriptError| err.render(&sources).trim_end().to_string();
    // What the file's verbs and prints write is kept, and shown only under a test that fails.
    let captured = builtins::host::Captured::default();
    let session = verb_cmd::Session {
        captured: Some(captured.clone()),
        ..verb_cmd::Session::default()
    };
    let printed = captured.clone();
    kip.engine.on_print(move |text| {
        let mut kept = printed.lock().unwrap_or_else(|e| e.into_inner());
        kept.push_str(text);
        kept.push('\n');
    });
    let take = move || std::mem::take(&mut *captured.lock().unwrap_or_else(|e| e.into_inner()));
    let host = verb_cmd::host_in(
        kip,
        runtime,
        &rhai::Map::new(),
        &session,
        home.to_path_buf(),
        crate::cluster::choose_isolated,
    )
    .map_err(Failure::into_text)?;
    builtins::set_host(&mut kip.engine, host);
    let source =
        std::fs::read_to_string(file).map_err(|e| format!("error: cannot read {name}: {e}"))?;
    let script = kip_core::search::Script {
        stem: String::new(),
        origin: kip_core::search::Origin::File(file.to_path_buf()),
        source,
    };
    let ast = kip_core::verbs::compile(&kip.engine, &script).map_err(|e| render(&e))?;
    let mut tests: Vec<String> = ast
        .iter_functions()
        .filter(|f| f.name.starts_with("test_") && f.params.is_empty())
        .map(|f| f.name.to_string())
        .collect();
    // In the order the file defines them.
    tests.sort_by_key(|name| defined_at(&script.source, name));
    let mut scope = Scope::new();
    kip_core::heap::start_run();
    let setup = kip.engine.run_ast_with_scope(&mut scope, &ast);
    if tests.is_empty() {
        // The file is the test.
        return Ok(vec![Outcome {
            name: file
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
            took: started.elapsed(),
            error: setup
                .err()
                .map(|e| with_output(render(&ScriptError::runtime_in(&e, &name)), take())),
        }]);
    }
    setup.map_err(|e| with_output(render(&ScriptError::runtime_in(&e, &name)), take()))?;
    take();
    let outcomes = tests
        .into_iter()
        .map(|test| {
            let began = Instant::now();
            kip_core::heap::start_run();
            let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
            let result = kip.engine.call_fn_with_options::<rhai::Dynamic>(
                options,
                &mut scope,
                &ast,
                &test,
                (),
            );
            let output = take();
            Outcome {
                error: result.err().map(|e| {
                    let mut err = ScriptError::runtime_in(&e, &name);
                    err.calls.insert(0, format!("in `{test}`"));
                    with_output(render(&err), output)
                }),
                name: test,
                took: began.elapsed(),
            }
        })
        .collect();
    Ok(outcomes)
}

/// A failure's text followed by what the test printed before it failed, if anything.
fn with_output(error: String, output: String) -> String {
    if output.trim().is_empty() {
        return error;
    }
    format!("{error}\noutput:\n{}", output.trim_end())
}

/// Where `fn NAME(` first appears in `source` (functions the text does not show go last).
fn defined_at(source: &str, name: &str) -> usize {
    let mut rest = source;
    let mut offset = 0;
    while let Some(at) = rest.find("fn ") {
        let after = rest[at + 3..].trim_start();
        if after.starts_with(name) && after[name.len()..].trim_start().starts_with('(') {
            return offset + at;
        }
        offset += at + 3;
        rest = &rest[at + 3..];
    }
    usize::MAX
}

/// A kip home of the test's own under the system's temporary folder, removed on drop.
struct ThrowawayHome(PathBuf);

impl ThrowawayHome {
    fn new() -> std::io::Result<ThrowawayHome> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kip-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        crate::home::create(&dir)?;
        Ok(ThrowawayHome(dir))
    }
}

impl Drop for ThrowawayHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
