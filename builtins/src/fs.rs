//! `fs::…`: reading a local file a verb was pointed at (`kip hook add FILE`). Only for scripts
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
                    format!(
                        "`{path}` is {} bytes: fs::read_text reads at most 1 MiB",
                        meta.len()
                    ),
                ));
            }
            let bytes = std::fs::read(path).map_err(|e| unreadable(path, &e))?;
            String::from_utf8(bytes)
                .map_err(|_| host::error(Kind::Invalid, format!("`{path}` is not UTF-8 text")))
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

fn unreadable(path: &str, err: &std::io::Error) -> Box<EvalAltResult> {
    let kind = match err.kind() {
        std::io::ErrorKind::NotFound => Kind::NotFound,
        _ => Kind::Denied,
    };
    host::error(kind, format!("cannot read `{path}`: {err}"))
}
