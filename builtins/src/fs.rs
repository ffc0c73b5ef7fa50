//! `fs::…`: reading a local file a verb was pointed at (`kip hook add FILE`, `--from-file`). Only for scripts
//! that reach everything: a hook on push has no file system.

use rhai::plugin::*;

use crate::errors::Kind;
use crate::host;

/// The largest file `fs::read_text` reads: scripts and small manifests, not data.
const MAX_BYTES: u64 = 1024 * 1024;

/// The most entries `fs::rhai_files` lists.
const MAX_FILES: usize = 1000;

#[export_module]
pub mod fs_module {
    use super::*;

    /// The text of the file at `path` (relative to the working directory), at most 1 MiB of
    /// UTF-8.
    ///
    /// Errors: `not-found` when there is no such file; `invalid` when it is a folder, too big
    /// or not UTF-8; `denied` when it cannot be read, or in a hook.
    ///
    /// Example: `let source = fs::read_text("hooks/deploy.rhai");`
    #[rhai_fn(return_raw)]
    pub fn read_text(ctx: NativeCallContext, path: &str) -> Result<String, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            host::host(&ctx)?.reach.everything("fs::read_text")?;
            read_small_text(path)
        })
    }

    /// The YAML (or JSON) file at `path` as a map: one document whose top level is a mapping,
    /// at most 1 MiB. For files of settings a verb takes (`kip project copy-env --values`).
    ///
    /// Errors: `not-found` when there is no such file; `invalid` when it is not YAML (naming
    /// the line), not one mapping, a folder, too big or not UTF-8; `denied` when it cannot be
    /// read, or in a hook.
    ///
    /// Example: `let values = fs::read_yaml("prod.yaml"); print(values.apps.keys());`
    #[rhai_fn(return_raw)]
    pub fn read_yaml(ctx: NativeCallContext, path: &str) -> Result<rhai::Map, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            host::host(&ctx)?.reach.everything("fs::read_yaml")?;
            let text = read_small_text(path)?;
            let value = parse_yaml_map(&text)
                .map_err(|msg| host::error(Kind::Invalid, format!("`{path}`: {msg}")))?;
            rhai::serde::to_dynamic(value)?
                .try_cast::<rhai::Map>()
                .ok_or_else(|| host::error(Kind::Invalid, format!("`{path}` is not a mapping")))
        })
    }

    /// The variables of the `.env` file at `path` as `[#{ name, value }]`, in file order: one
    /// `KEY=VALUE` per line, `#` comments, an optional `export ` prefix, single quotes taken
    /// literally, double quotes with escapes, and `$VAR`/`${VAR}` replaced by a variable set
    /// earlier in the file or in kip's own environment (the dotenv rules). A name given twice
    /// keeps its last value, in the place of its first.
    ///
    /// Errors: `not-found` when there is no such file; `invalid` when a line is not
    /// `KEY=VALUE` (naming the line), the file is a folder, bigger than 1 MiB or not UTF-8;
    /// `denied` when it cannot be read, or in a hook.
    ///
    /// Example: `for v in fs::read_dotenv(".env") { print(v.name); }`
    #[rhai_fn(return_raw)]
    pub fn read_dotenv(
        ctx: NativeCallContext,
        path: &str,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            host::host(&ctx)?.reach.everything("fs::read_dotenv")?;
            let text = read_small_text(path)?;
            let vars = parse_dotenv(&text)
                .map_err(|msg| host::error(Kind::Invalid, format!("`{path}`: {msg}")))?;
            Ok(vars
                .into_iter()
                .map(|(name, value)| {
                    let mut var = rhai::Map::new();
                    var.insert("name".into(), name.into());
                    var.insert("value".into(), value.into());
                    var.into()
                })
                .collect())
        })
    }

    /// The paths of the `.rhai` files directly in the folder `dir`, sorted; `[path]` when
    /// `dir` is a file itself. So a verb takes a file or a folder of them (`kip hook add
    /// .kip/hooks`).
    ///
    /// Errors: `not-found` when there is no such file or folder; `invalid` for more than 1000
    /// files; `denied` when it cannot be read, or in a hook.
    ///
    /// Example: `for path in fs::rhai_files("hooks") { print(path); }`
    #[rhai_fn(return_raw)]
    pub fn rhai_files(
        ctx: NativeCallContext,
        dir: &str,
    ) -> Result<rhai::Array, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            host::host(&ctx)?.reach.everything("fs::rhai_files")?;
            let meta = std::fs::metadata(dir).map_err(|e| unreadable(dir, &e))?;
            if !meta.is_dir() {
                return Ok(vec![dir.into()]);
            }
            let mut found: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| unreadable(dir, &e))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rhai"))
                .map(|p| p.display().to_string())
                .collect();
            if found.len() > MAX_FILES {
                return Err(host::error(
                    Kind::Invalid,
                    format!(
                        "`{dir}` holds {} .rhai files: at most {MAX_FILES}",
                        found.len()
                    ),
                ));
            }
            found.sort();
            Ok(found.into_iter().map(Into::into).collect())
        })
    }
}

/// The text of the file at `path`: at most `MAX_BYTES` of UTF-8.
fn read_small_text(path: &str) -> Result<String, Box<EvalAltResult>> {
    let meta = std::fs::metadata(path).map_err(|e| unreadable(path, &e))?;
    if meta.is_dir() {
        return Err(host::error(
            Kind::Invalid,
            format!("`{path}` is a folder, not a file"),
        ));
    }
    if meta.len() > MAX_BYTES {
        return Err(host::error(
            Kind::Invalid,
            format!("`{path}` is {} bytes: kip reads at most 1 MiB", meta.len()),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| unreadable(path, &e))?;
    String::from_utf8(bytes)
        .map_err(|_| host::error(Kind::Invalid, format!("`{path}` is not UTF-8 text")))
}

/// A YAML text holding one mapping, or what is wrong with it.
pub fn parse_yaml_map(text: &str) -> Result<serde_json::Value, String> {
    let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    match value {
        serde_json::Value::Object(_) => Ok(value),
        serde_json::Value::Null => Ok(serde_json::Value::Object(Default::default())),
        _ => Err("the top level is not a mapping of settings".into()),
    }
}

/// The variables of a `.env` text, in order of first appearance, the last value of a name
/// winning; or what is wrong with it.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (name, value) = item.map_err(|err| match err {
            dotenvy::Error::LineParse(line, at) => {
                format!(
                    "cannot read line `{}` (at character {at}): expected KEY=VALUE",
                    line.trim_end()
                )
            }
            other => other.to_string(),
        })?;
        match vars.iter_mut().find(|(seen, _)| *seen == name) {
            Some(var) => var.1 = value,
            None => vars.push((name, value)),
        }
    }
    Ok(vars)
}

fn unreadable(path: &str, err: &std::io::Error) -> Box<EvalAltResult> {
    let kind = match err.kind() {
        std::io::ErrorKind::NotFound => Kind::NotFound,
        _ => Kind::Denied,
    };
    host::error(kind, format!("cannot read `{path}`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::{parse_dotenv, parse_yaml_map};
    use proptest::prelude::*;

    #[test]
    fn yaml_settings_are_one_mapping() {
        let v = parse_yaml_map("apps:\n  api: {replicas: 2}\n").unwrap();
        assert_eq!(v["apps"]["api"]["replicas"], 2);
        assert_eq!(parse_yaml_map("").unwrap(), serde_json::json!({}));
        assert!(parse_yaml_map("- a\n- b\n").is_err());
        assert!(parse_yaml_map("apps: [\n").is_err());
    }

    fn vars(text: &str) -> Vec<(String, String)> {
        parse_dotenv(text).unwrap()
    }

    #[test]
    fn dotenv_rules() {
        let text = "# a comment\n\nexport A=1\nB='two words'\nC=\"line\\nbreak\"\nD=${A}x\nA=3\n";
        assert_eq!(
            vars(text),
            [
                ("A", "3"),
                ("B", "two words"),
                ("C", "line\nbreak"),
                ("D", "1x")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let err = parse_dotenv("GOOD=1\nthis is not a variable\n").unwrap_err();
        assert!(err.contains("this is not a variable"), "{err}");
    }

    proptest! {
        /// Single-quoted values come back exactly, whatever they hold, in the file's order.
        #[test]
        fn single_quoted_values_round_trip(
            pairs in proptest::collection::vec(("[A-Z_][A-Z0-9_]{0,12}", "[^'\\n\\r\\\\]{0,40}"), 0..8)
        ) {
            let mut expected: Vec<(String, String)> = Vec::new();
            let mut text = String::new();
            for (name, value) in &pairs {
                text.push_str(&format!("{name}='{value}'\n"));
                match expected.iter_mut().find(|(seen, _)| seen == name) {
                    Some(var) => var.1 = value.clone(),
                    None => expected.push((name.clone(), value.clone())),
                }
            }
            prop_assert_eq!(vars(&text), expected);
        }

        /// No input makes the parser panic: it returns variables or a message.
        #[test]
        fn any_text_is_read_or_refused(text in "\\PC{0,200}") {
            let _ = parse_dotenv(&text);
        }
    }
}
