//! `ui::…`: what verbs print and ask. Results go to stdout, warnings to stderr; `--yes`,
//! a terminal, colour and `-o` come from the host's [`UiSettings`].
//!
//! The builtins are thin wrappers over pure `format_*` functions and over [`confirm_with`],
//! which takes its reader and writer, so the behaviour is tested without a terminal.

use crate::errors::Kind;
use std::io::{self, BufRead, Write};

use rhai::{Array, Dynamic, EvalAltResult, NativeCallContext};

use crate::host::{self, OutputFormat, UiSettings};

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// `✔ msg`, the tick green when colour is on.
pub fn format_step(msg: &str, color: bool) -> String {
    if color {
        format!("{GREEN}✔{RESET} {msg}")
    } else {
        format!("✔ {msg}")
    }
}

/// `✘ msg`, the cross red when colour is on.
pub fn format_failed(msg: &str, color: bool) -> String {
    if color {
        format!("{RED}✘{RESET} {msg}")
    } else {
        format!("✘ {msg}")
    }
}

/// `warning: msg`, the label yellow when colour is on.
pub fn format_warning(msg: &str, color: bool) -> String {
    if color {
        format!("{YELLOW}warning{RESET}: {msg}")
    } else {
        format!("warning: {msg}")
    }
}

/// Left-aligned columns, two spaces apart, no trailing spaces; one line per row plus the header.
pub fn format_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).chain([headers.len()]).max();
    let mut widths = vec![0; columns.unwrap_or(0)];
    for row in std::iter::once(headers).chain(rows.iter().map(Vec::as_slice)) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(headers).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A table cell: strings as they are, `()` empty, anything else as Rhai prints it; one line.
pub fn cell(value: &Dynamic) -> String {
    let text = if value.is_unit() {
        String::new()
    } else if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        text.to_string()
    } else {
        value.to_string()
    };
    text.replace(['\n', '\r', '\t'], " ")
}

/// `value` as `-o` asked: pretty JSON for json, YAML otherwise; ends with a newline.
pub fn format_value(value: &Dynamic, format: OutputFormat) -> Result<String, Box<EvalAltResult>> {
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(value).map_err(|e| e.to_string()),
        OutputFormat::Table | OutputFormat::Yaml => {
            serde_saphyr::to_string(value).map_err(|e| e.to_string())
        }
    }
    .map_err(|err| host::error(Kind::Io, format!("cannot print the value: {err}")))?;
    Ok(if text.ends_with('\n') {
        text
    } else {
        text + "\n"
    })
}

/// The name scripts branch on.
pub fn format_name(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Table => "table",
        OutputFormat::Json => "json",
        OutputFormat::Yaml => "yaml",
    }
}

/// What the user must type for a confirmation to pass.
pub enum Expect<'a> {
    /// `y` or `yes`, any case.
    Yes,
    /// This text exactly (surrounding whitespace ignored).
    Typed(&'a str),
}

/// Asks `prompt` on `out` and reads the answer from `input`; `--yes` skips the question and no
/// terminal refuses, naming `question` in the error. End of input answers no.
pub fn confirm_with(
    ui: &UiSettings,
    question: &str,
    prompt: &str,
    expect: Expect,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<bool, Box<EvalAltResult>> {
    if ui.yes {
        return Ok(true);
    }
    if !ui.interactive {
        return Err(host::error(
            Kind::ConfirmationRequired,
            format!("{question}: refusing without a terminal; pass --yes to confirm"),
        ));
    }
    write!(out, "{prompt}")
        .and_then(|()| out.flush())
        .map_err(io_error)?;
    let mut answer = String::new();
    input.read_line(&mut answer).map_err(io_error)?;
    let answer = answer.trim();
    Ok(match expect {
        Expect::Yes => answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes"),
        Expect::Typed(expected) => answer == expected,
    })
}

/// A spinner with elapsed time on stderr for as long as it lives, e.g.
/// `⠙ Waiting for the rollout of deployment `web` 4s`; cleared when dropped, so the step line
/// a script prints next stands alone. Nothing is drawn unless `ui.spinners`.
pub struct Spinner {
    bar: Option<indicatif::ProgressBar>,
    /// Held only to be dropped: that tells the plain-line thread the wait is over.
    _quiet: Option<std::sync::mpsc::Sender<()>>,
}

/// How long a wait without a terminal stays silent: a quick wait is not worth a line, a long
/// one must say what it waits for.
const QUIET_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Spinner {
    pub fn start(host: &host::Host, msg: String) -> Spinner {
        let ui = &host.ui;
        if !ui.spinners {
            // Without a terminal, one plain line once the wait has lasted a while; dropping
            // the spinner before then closes the channel and nothing is printed. A host that
            // keeps its output (`kip test`, a hook's run record) keeps the line too.
            let (done, waiting) = std::sync::mpsc::channel::<()>();
            let captured = host.captured.clone();
            std::thread::spawn(move || {
                if waiting.recv_timeout(QUIET_WAIT)
                    == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                {
                    match captured {
                        Some(out) => {
                            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                            out.push_str(&format!("{msg}…\n"));
                        }
                        None => {
                            let _ = writeln!(io::stderr(), "{msg}…");
                        }
                    }
                }
            });
            return Spinner {
                bar: None,
                _quiet: Some(done),
            };
        }
        let style = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bar = indicatif::ProgressBar::new_spinner()
            .with_style(style)
            .with_message(msg);
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Spinner {
            bar: Some(bar),
            _quiet: None,
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A closed pipe gets its own kind so the CLI can exit quietly (`kip app list | head`).
fn io_error(err: io::Error) -> Box<EvalAltResult> {
    if err.kind() == io::ErrorKind::BrokenPipe {
        host::error(Kind::OutputClosed, "output closed")
    } else {
        host::error(Kind::Io, format!("cannot use the terminal: {err}"))
    }
}

fn print_to(mut stream: impl Write, text: &str) -> Result<(), Box<EvalAltResult>> {
    stream.write_all(text.as_bytes()).map_err(io_error)
}

fn stdout(ctx: &NativeCallContext, text: &str) -> Result<(), Box<EvalAltResult>> {
    if !captured(ctx, text) {
        print_to(io::stdout().lock(), text)?;
    }
    Ok(())
}

fn stderr(ctx: &NativeCallContext, text: &str) -> Result<(), Box<EvalAltResult>> {
    if !captured(ctx, text) {
        print_to(io::stderr().lock(), text)?;
    }
    Ok(())
}

/// Keeps `text` in the host's capture, if it has one (see [`host::Host::captured`]).
fn captured(ctx: &NativeCallContext, text: &str) -> bool {
    let Ok(host) = host::host(ctx) else {
        return false;
    };
    match &host.captured {
        Some(buffer) => {
            buffer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(text);
            true
        }
        None => false,
    }
}

/// Strings as they are; anything else (a header given as a number) as Rhai prints it.
fn strings(values: &Array) -> Vec<String> {
    values.iter().map(cell).collect()
}

#[rhai::plugin::export_module]
pub mod ui_module {
    use super::*;

    /// Prints a completed step, `✔ msg`, on stdout (the tick green when colour is on).
    ///
    /// Raises `output-closed` when stdout is closed, `io` on other write errors.
    ///
    /// `ui::step("Deployment created");`
    #[rhai_fn(return_raw)]
    pub fn step(ctx: NativeCallContext, msg: &str) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let color = host::host(&ctx)?.ui.color;
            stdout(&ctx, &(format_step(msg, color) + "\n"))
        })
    }

    /// Prints a failed check, `✘ msg`, on stdout (the cross red when colour is on), beside
    /// the `ui::step` lines of the checks that passed.
    ///
    /// Raises `output-closed` or `io` like `ui::step`.
    ///
    /// `ui::failed("Memory: 2.0 GB, need at least 4 GB");`
    #[rhai_fn(return_raw)]
    pub fn failed(ctx: NativeCallContext, msg: &str) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let color = host::host(&ctx)?.ui.color;
            stdout(&ctx, &(format_failed(msg, color) + "\n"))
        })
    }

    /// Prints an informational line on stdout as it is.
    ///
    /// Raises `output-closed` or `io` like `ui::step`.
    ///
    /// `ui::info("Deploying api...");`
    #[rhai_fn(return_raw)]
    pub fn info(ctx: rhai::NativeCallContext, msg: &str) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || stdout(&ctx, &format!("{msg}\n")))
    }

    /// Prints a plain line on stdout.
    ///
    /// Raises `output-closed` or `io` like `ui::step`.
    ///
    /// `ui::line("");`
    #[rhai_fn(return_raw)]
    pub fn line(ctx: rhai::NativeCallContext, msg: &str) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || stdout(&ctx, &format!("{msg}\n")))
    }

    /// Prints a plain line on stderr: a word about the output (which project a list shows)
    /// that must not mix with what `-o json` prints or a pipe reads.
    ///
    /// Raises `io` when stderr cannot be written.
    ///
    /// `ui::note("Project shop, environment test (kip app list -A for all)");`
    #[rhai_fn(return_raw)]
    pub fn note(ctx: rhai::NativeCallContext, msg: &str) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || stderr(&ctx, &format!("{msg}\n")))
    }

    /// Prints `warning: msg` on stderr (the label yellow when colour is on).
    ///
    /// Raises `io` when stderr cannot be written.
    ///
    /// `ui::warn("no ingress class found; the app has no public URL");`
    #[rhai_fn(return_raw)]
    pub fn warn(ctx: NativeCallContext, msg: &str) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let color = host::host(&ctx)?.ui.color;
            stderr(&ctx, &(format_warning(msg, color) + "\n"))
        })
    }

    /// Prints `rows` (an array of arrays) under `headers` as left-aligned columns two spaces
    /// apart. Cells are printed as strings; `()` prints empty. Read verbs should call
    /// `ui::output` instead when `ui::format()` is not `"table"`.
    ///
    /// Raises `output-closed` or `io` like `ui::step`.
    ///
    /// `ui::table(["NAME", "STATUS"], [["api", "running"], ["web", "pending"]]);`
    #[rhai_fn(return_raw)]
    pub fn table(
        ctx: NativeCallContext,
        headers: Array,
        rows: Array,
    ) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|row| match row.read_lock::<Array>() {
                    Some(cells) => strings(&cells),
                    None => vec![cell(row)],
                })
                .collect();
            stdout(&ctx, &format_table(&strings(&headers), &rows))
        })
    }

    /// Prints `value` as `-o` asked: pretty JSON for `-o json`, YAML for `-o yaml` and for the
    /// table format.
    ///
    /// Raises `io` when the value cannot be serialized, `output-closed` or `io` when printing
    /// fails.
    ///
    /// `if ui::format() != "table" { ui::output(apps); return; }`
    #[rhai_fn(return_raw)]
    pub fn output(ctx: NativeCallContext, value: Dynamic) -> Result<(), Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let format = host::host(&ctx)?.ui.output;
            stdout(&ctx, &format_value(&value, format)?)
        })
    }

    /// The output format `-o` asked for: `"table"` (the default), `"json"` or `"yaml"`.
    ///
    /// `let fmt = ui::format();`
    #[rhai_fn(return_raw)]
    pub fn format(ctx: NativeCallContext) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            Ok(format_name(host::host(&ctx)?.ui.output).to_owned())
        })
    }

    /// Asks `question [y/N]` on the terminal and returns whether the user answered yes.
    /// With `--yes` returns true without asking.
    ///
    /// Raises `confirmation-required` without a terminal
    /// (`{question}: refusing without a terminal; pass --yes to confirm`), `io` when the
    /// terminal cannot be used.
    ///
    /// `if !ui::confirm("Delete app api") { return; }`
    #[rhai_fn(return_raw)]
    pub fn confirm(ctx: NativeCallContext, question: &str) -> Result<bool, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let host = host::host(&ctx)?;
            let prompt = format!("{question} [y/N] ");
            let (mut input, mut out) = (io::stdin().lock(), io::stdout().lock());
            confirm_with(
                &host.ui,
                question,
                &prompt,
                Expect::Yes,
                &mut input,
                &mut out,
            )
        })
    }

    /// Asks for a secret value on the terminal without echoing it (`{question}: `) and returns
    /// it. Without a terminal it reads standard input to its end instead (at most 1 MiB; one
    /// trailing newline dropped), so `printf %s "$TOKEN" | kip app secret set api TOKEN` works.
    ///
    /// Raises `invalid` when the answer is empty, `io` when the terminal or input cannot be
    /// read, `denied` in a hook (a hook has no one to ask).
    ///
    /// `let value = ui::secret("Value of API_KEY");`
    #[rhai_fn(return_raw)]
    pub fn secret(ctx: NativeCallContext, question: &str) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let host = host::host(&ctx)?;
            host.reach.everything("ui::secret")?;
            // Not `ui.interactive`: a piped value with the output on a terminal is still piped.
            let value = if io::IsTerminal::is_terminal(&io::stdin()) {
                rpassword::prompt_password(format!("{question}: ")).map_err(io_error)?
            } else {
                let mut text = String::new();
                io::Read::read_to_string(
                    &mut io::Read::take(io::stdin().lock(), 1 << 20),
                    &mut text,
                )
                .map_err(io_error)?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            };
            if value.is_empty() {
                return Err(host::error(
                    Kind::Invalid,
                    format!("{question}: no value given (type it at the prompt, or pipe it in)"),
                ));
            }
            Ok(value)
        })
    }

    /// Asks the user to type `expected` (`Type the {what} to confirm: `) and returns whether
    /// they typed it exactly. With `--yes` returns true without asking.
    ///
    /// Raises `confirmation-required` without a terminal, `io` when the terminal cannot be used.
    ///
    /// `if !ui::confirm_typed("project name", "shop") { return; }`
    #[rhai_fn(return_raw)]
    pub fn confirm_typed(
        ctx: NativeCallContext,
        what: &str,
        expected: &str,
    ) -> Result<bool, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let host = host::host(&ctx)?;
            let question = format!("Type the {what} to confirm");
            let prompt = format!("{question}: ");
            let (mut input, mut out) = (io::stdin().lock(), io::stdout().lock());
            let expect = Expect::Typed(expected);
            confirm_with(&host.ui, &question, &prompt, expect, &mut input, &mut out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn steps_and_warnings() {
        assert_eq!(format_step("Service created", false), "✔ Service created");
        assert_eq!(
            format_step("Service created", true),
            "\x1b[32m✔\x1b[0m Service created"
        );
        assert_eq!(format_warning("careful", false), "warning: careful");
    }

    #[test]
    fn tables_align_like_the_seeds() {
        let table = format_table(
            &s(&["NAME", "STATUS", "IMAGE", "READY"]),
            &[
                s(&["api", "running", "ghcr.io/acme/api:latest", "2/2"]),
                s(&["frontend", "running", "ghcr.io/acme/frontend:latest", "1/1"]),
            ],
        );
        assert_eq!(
            table,
            "NAME      STATUS   IMAGE                         READY\n\
             api       running  ghcr.io/acme/api:latest       2/2\n\
             frontend  running  ghcr.io/acme/frontend:latest  1/1\n"
        );
    }

    #[test]
    fn ragged_rows_and_empty_cells() {
        let table = format_table(&s(&["A", "B"]), &[s(&["x"]), s(&["y", "", "extra"])]);
        assert_eq!(table, "A  B\nx\ny     extra\n");
        assert_eq!(format_table(&s(&["NAME"]), &[]), "NAME\n");
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&Dynamic::UNIT), "");
        assert_eq!(cell(&Dynamic::from(3_i64)), "3");
        assert_eq!(cell(&Dynamic::from("a\nb")), "a b");
    }

    #[test]
    fn values_per_format() {
        let mut map = rhai::Map::new();
        map.insert("name".into(), "api".into());
        map.insert("replicas".into(), Dynamic::from(2_i64));
        let value = Dynamic::from_map(map);
        assert_eq!(
            format_value(&value, OutputFormat::Json).unwrap(),
            "{\n  \"name\": \"api\",\n  \"replicas\": 2\n}\n"
        );
        assert_eq!(
            format_value(&value, OutputFormat::Yaml).unwrap(),
            "name: api\nreplicas: 2\n"
        );
        assert_eq!(format_name(OutputFormat::Table), "table");
    }

    fn ask(ui: &UiSettings, expect: Expect, answer: &str) -> (Result<bool, String>, String) {
        let mut out = Vec::new();
        let result = confirm_with(
            ui,
            "Delete api",
            "Delete api [y/N] ",
            expect,
            &mut answer.as_bytes(),
            &mut out,
        )
        .map_err(|err| err.to_string());
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn confirmations() {
        let terminal = UiSettings {
            interactive: true,
            ..UiSettings::default()
        };
        assert_eq!(
            ask(&terminal, Expect::Yes, "y\n"),
            (Ok(true), "Delete api [y/N] ".into())
        );
        assert_eq!(ask(&terminal, Expect::Yes, "YES\n").0, Ok(true));
        assert_eq!(ask(&terminal, Expect::Yes, "\n").0, Ok(false));
        assert_eq!(ask(&terminal, Expect::Yes, "").0, Ok(false));
        assert_eq!(ask(&terminal, Expect::Typed("shop"), "shop\n").0, Ok(true));
        assert_eq!(ask(&terminal, Expect::Typed("shop"), "Shop\n").0, Ok(false));

        let yes = UiSettings {
            yes: true,
            ..UiSettings::default()
        };
        assert_eq!(ask(&yes, Expect::Yes, ""), (Ok(true), String::new()));

        let (refused, printed) = ask(&UiSettings::default(), Expect::Yes, "y\n");
        let message = refused.unwrap_err();
        assert!(message.contains("confirmation-required"), "{message}");
        assert!(
            message.contains("Delete api: refusing without a terminal; pass --yes to confirm"),
            "{message}"
        );
        assert_eq!(printed, "");
    }
}
