//! `kip shell`: one session where each line is a kip verb (`app list -o json`) or Rhai
//! (`let n = k8s::list("v1", "Namespace", "").len()`), with the same engine, verbs and error
//! reports as the CLI.
//!
//! A line whose first word is a verb group or verb (or `help`) is a command line: it is split
//! as a POSIX shell splits words and parsed by the command tree the CLI builds from the verbs'
//! declarations. Any other line is Rhai, evaluated in a scope that lives as long as the
//! session. On a terminal the shell edits lines with reedline (history, tab completion from the
//! same declarations); with stdin piped it reads plain lines, so scripts and tests can drive it.

pub mod complete;
pub mod line;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Command;
use kip_core::{Kip, Session};
use reedline::{
    ColumnarMenu, DefaultHinter, Emacs, FileBackedHistory, KeyCode, KeyModifiers, MenuBuilder,
    Prompt, PromptEditMode, PromptHistorySearch, Reedline, ReedlineEvent, ReedlineMenu, Signal,
    ValidationResult, Validator, default_emacs_keybindings,
};
use rhai::Map;

pub use complete::KipCompleter;
pub use line::{Line, classify};

/// The source name errors in shell lines point at (`<shell>:1:5`).
pub const SOURCE: &str = "<shell>";

/// What the shell needs from the program that runs it.
pub trait Host {
    /// Makes `kip` ready to run a line with these `opts` (`yes`, `output`… as the verb's
    /// command line gave them; empty for Rhai): the cluster, the terminal settings. Called
    /// before every line, so a line that switches cluster or project is seen by the next.
    /// Returns the text to print when it cannot.
    fn prepare(&mut self, kip: &mut Kip, opts: &Map) -> Result<(), String>;

    /// Where commands go now (`shop/test`), for the prompt; `None` for nothing.
    fn context(&mut self) -> Option<String> {
        None
    }
}

/// How the shell runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The file that keeps the history of an interactive session (`$KIP_HOME/shell_history`).
    pub history: Option<PathBuf>,
    /// Verb groups the shell leaves out, as the CLI does (kip's own commands).
    pub reserved: Vec<String>,
    /// Colour in the prompt and the menus.
    pub color: bool,
}

/// What a line left the shell to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The line ran (or was empty).
    Done,
    /// The line failed; the error is printed.
    Failed,
    /// `exit` or `quit`.
    Exit,
}

/// A shell session: kip, the command tree of its verbs, and the Rhai scope lines share.
pub struct Shell<'h> {
    kip: Kip,
    tree: Command,
    session: Session,
    host: &'h mut dyn Host,
}

impl<'h> Shell<'h> {
    /// A session over `kip`'s verbs, leaving out the `reserved` verb groups.
    pub fn new(kip: Kip, reserved: &[String], host: &'h mut dyn Host) -> Shell<'h> {
        let reserved: Vec<&str> = reserved.iter().map(String::as_str).collect();
        let root = Command::new("kip")
            .about("kip shell: verbs and Rhai")
            .disable_version_flag(true);
        let tree = kip_core::cli::add_verbs(root, &kip.verbs, &reserved);
        Shell {
            kip,
            tree,
            session: Session::default(),
            host,
        }
    }

    /// Whether `word` starts a command line.
    pub fn is_command(&self, word: &str) -> bool {
        self.tree.find_subcommand(word).is_some()
    }

    /// A completer over this session's verbs and Rhai modules.
    pub fn completer(&self) -> KipCompleter {
        KipCompleter::new(self.tree.clone(), self.kip.module_functions())
    }

    /// Runs one line (possibly several lines of Rhai), printing its output and errors.
    pub fn line(&mut self, text: &str) -> Outcome {
        let line = classify(text, &|w| self.is_command(w));
        let ok = match line {
            Line::Empty => true,
            Line::Exit => return Outcome::Exit,
            Line::Help => {
                self.help();
                true
            }
            Line::Unsplittable => {
                eprintln!("error: unclosed quote in the command line");
                false
            }
            Line::Command(words) => self.command(words),
            Line::Rhai(code) => self.rhai(&code),
        };
        let _ = std::io::stdout().flush();
        if ok { Outcome::Done } else { Outcome::Failed }
    }

    fn command(&mut self, words: Vec<String>) -> bool {
        let args = std::iter::once("kip".to_string()).chain(words);
        let matches = match self.tree.clone().try_get_matches_from(args) {
            Ok(matches) => matches,
            // `--help` and usage errors alike: printed, and the shell goes on.
            Err(err) => {
                let _ = err.print();
                return err.exit_code() == 0;
            }
        };
        let words = kip_core::cli::chosen_words(&matches);
        let opts = {
            let Some(verb) = self.kip.verbs.chain(&words).first().copied() else {
                eprintln!("error: unknown command `{}`", words.join(" "));
                return false;
            };
            let Some(verb_matches) = kip_core::cli::verb_matches(&matches, &words) else {
                eprintln!("error: bad command line");
                return false;
            };
            kip_core::cli::opts(verb, verb_matches)
        };
        if let Err(text) = self.host.prepare(&mut self.kip, &opts) {
            eprint!("{text}");
            return false;
        }
        match self.kip.run_verb(&words, opts) {
            Ok(_) => true,
            Err(err) => {
                let kip = &self.kip;
                eprint!("{}", err.render(&|name| kip.source_of(name)));
                err.output_closed()
            }
        }
    }

    fn rhai(&mut self, code: &str) -> bool {
        if let Err(text) = self.host.prepare(&mut self.kip, &Map::new()) {
            eprint!("{text}");
            return false;
        }
        match self.kip.eval_in_session(&mut self.session, SOURCE, code) {
            Ok(value) => {
                if !value.is_unit() {
                    println!("{value}");
                }
                true
            }
            Err(err) => {
                let kip = &self.kip;
                let sources = |name: &str| {
                    if name == SOURCE {
                        Some(code.to_string())
                    } else {
                        kip.source_of(name)
                    }
                };
                eprint!("{}", err.render(&sources));
                false
            }
        }
    }

    /// `help`: the verbs, as `kip verbs` lists them, and how the shell reads a line.
    fn help(&self) {
        let verbs = self.kip.verbs.winners();
        let verbs: Vec<_> = verbs
            .iter()
            .filter(|v| self.is_command(&v.words[0]))
            .collect();
        let width = verbs
            .iter()
            .map(|v| v.name().chars().count())
            .max()
            .unwrap_or(0);
        println!("Verbs:");
        for verb in verbs {
            println!("  {:width$}  {}", verb.name(), verb.about);
        }
        println!(
            "\nAny other line is Rhai, evaluated with kip's modules (k8s::, tmpl::, ui::, config::…);\n\
             variables and functions live until the shell ends: `let n = 2` then `n * 21`.\n\
             `help VERB` or `VERB --help` for a verb's flags; Tab completes; `exit`, `quit` or Ctrl-D ends."
        );
    }
}

/// Runs the shell over stdin until `exit` or the end of input; returns the exit code.
///
/// On a terminal (stdin and stdout) lines are edited with reedline, with history in
/// `options.history` and tab completion; Ctrl-C clears the line, Ctrl-D ends. The code is 0.
///
/// Otherwise each line of stdin runs in turn, with no prompt (Rhai with an open bracket reads
/// on to the line that closes it). A failing line prints its error and the next one runs; the
/// code is 1 if any line failed, else 0.
pub fn run(kip: Kip, options: Options, host: &mut dyn Host) -> i32 {
    let mut shell = Shell::new(kip, &options.reserved, host);
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        interactive(&mut shell, &options)
    } else {
        // Stdin is locked for each line only: a verb may read it (a confirmation).
        piped(&mut shell, &mut |text| std::io::stdin().read_line(text))
    }
}

/// Runs each line `read_line` reads (0 bytes: the end); 1 if any failed.
pub fn piped(
    shell: &mut Shell,
    read_line: &mut dyn FnMut(&mut String) -> std::io::Result<usize>,
) -> i32 {
    let mut failed = false;
    let mut pending = String::new();
    loop {
        let mut text = String::new();
        match read_line(&mut text) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                eprintln!("error: cannot read the input: {err}");
                failed = true;
                break;
            }
        }
        pending.push_str(&text);
        if !shell.is_command_line(&pending) && line::is_incomplete(&pending) {
            continue;
        }
        let lines = std::mem::take(&mut pending);
        match shell.line(lines.trim_end_matches(['\n', '\r'])) {
            Outcome::Done => {}
            Outcome::Failed => failed = true,
            Outcome::Exit => return i32::from(failed),
        }
    }
    if !pending.trim().is_empty() {
        failed |= shell.line(&pending) == Outcome::Failed;
    }
    i32::from(failed)
}

impl Shell<'_> {
    fn is_command_line(&self, text: &str) -> bool {
        text.split_whitespace()
            .next()
            .is_some_and(|w| w == "help" || self.is_command(w))
    }
}

fn interactive(shell: &mut Shell, options: &Options) -> i32 {
    let mut keybindings = default_emacs_keybindings();
    keybindings.add_binding(
        KeyModifiers::NONE,
        KeyCode::Tab,
        ReedlineEvent::UntilFound(vec![
            ReedlineEvent::Menu("completion_menu".to_string()),
            ReedlineEvent::MenuNext,
        ]),
    );
    let menu = ColumnarMenu::default().with_name("completion_menu");
    let commands: Vec<String> = shell
        .tree
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let mut editor = Reedline::create()
        .with_completer(Box::new(shell.completer()))
        .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
        // One candidate completes at once; several complete their common prefix first.
        .with_quick_completions(true)
        .with_partial_completions(true)
        .with_edit_mode(Box::new(Emacs::new(keybindings)))
        .with_validator(Box::new(RhaiValidator { commands }))
        .with_hinter(Box::new(DefaultHinter::default()))
        .with_ansi_colors(options.color);
    if let Some(path) = &options.history {
        // Typed lines may hold secrets: the history is its owner's alone. reedline opens the
        // file without changing its mode, so it is made (or tightened) first.
        if let Err(err) = private_history(path) {
            eprintln!("warning: cannot make {} private: {err}", path.display());
        }
        match FileBackedHistory::with_file(1000, path.clone()) {
            Ok(history) => editor = editor.with_history(Box::new(history)),
            Err(err) => eprintln!("warning: no history in {}: {err}", path.display()),
        }
    }
    loop {
        let prompt = KipPrompt {
            context: shell.host.context(),
        };
        match editor.read_line(&prompt) {
            Ok(Signal::Success(text)) => {
                if shell.line(&text) == Outcome::Exit {
                    return 0;
                }
            }
            Ok(Signal::CtrlD) => return 0,
            // Ctrl-C clears the line; anything else reedline may add: read on.
            Ok(_) => {}
            Err(err) => {
                eprintln!("error: the terminal failed: {err}");
                return 1;
            }
        }
    }
}

/// Lets Enter continue a Rhai line that leaves a bracket open.
struct RhaiValidator {
    commands: Vec<String>,
}

impl Validator for RhaiValidator {
    fn validate(&self, text: &str) -> ValidationResult {
        let first = text.split_whitespace().next().unwrap_or("");
        if first == "help" || self.commands.iter().any(|c| c == first) {
            return ValidationResult::Complete;
        }
        if line::is_incomplete(text) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Complete
        }
    }
}

/// `kip> `, or `kip shop/test> ` with an active project.
struct KipPrompt {
    context: Option<String>,
}

impl Prompt for KipPrompt {
    fn render_prompt_left(&self) -> std::borrow::Cow<'_, str> {
        match &self.context {
            Some(context) => format!("kip {context}").into(),
            None => "kip".into(),
        }
    }

    fn render_prompt_right(&self) -> std::borrow::Cow<'_, str> {
        "".into()
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> std::borrow::Cow<'_, str> {
        "> ".into()
    }

    fn render_prompt_multiline_indicator(&self) -> std::borrow::Cow<'_, str> {
        "... ".into()
    }

    fn render_prompt_history_search_indicator(
        &self,
        search: PromptHistorySearch,
    ) -> std::borrow::Cow<'_, str> {
        format!("(search: {}) ", search.term).into()
    }
}

/// Creates the history file (and its folder) readable by its owner only, or takes the group's
/// and others' access away from one that exists.
fn private_history(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & !0o077))?;
        }
    }
    #[cfg(not(unix))]
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
}
