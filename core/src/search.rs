//! The search path for scripts and templates: first hit wins.
//!
//! Order: `--scripts DIR` / `KIP_SCRIPTS`, the current git repository's `.kip/`, the kip home,
//! then the stdlib embedded in the binary. In an override folder scripts live in `scripts/`
//! and templates in `templates/`; a `--scripts DIR` holds scripts directly (templates in
//! `DIR/templates/`).

use std::path::{Path, PathBuf};

use crate::stdlib;

/// Where a script or template came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file on disk, in an override folder.
    File(PathBuf),
    /// Embedded in the binary, under its virtual name (`stdlib/app.rhai`).
    Stdlib(&'static str),
}

impl Origin {
    /// The name errors and `kip verbs` show.
    pub fn display(&self) -> String {
        match self {
            Origin::File(p) => p.display().to_string(),
            Origin::Stdlib(name) => name.to_string(),
        }
    }

    pub fn is_stdlib(&self) -> bool {
        matches!(self, Origin::Stdlib(_))
    }
}

/// One script, its source and where it came from.
#[derive(Debug, Clone)]
pub struct Script {
    /// The file name without folder or extension (`app`).
    pub stem: String,
    pub origin: Origin,
    pub source: String,
}

/// One override folder.
#[derive(Debug, Clone)]
struct Folder {
    scripts: PathBuf,
    templates: PathBuf,
}

/// The folders searched, in order; the embedded stdlib is always last.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    folders: Vec<Folder>,
}

impl SearchPath {
    /// The path for this process: `scripts_flag` (or `KIP_SCRIPTS`), the repository of `cwd`,
    /// and the kip home.
    pub fn new(scripts_flag: Option<&Path>, cwd: &Path, kip_home: &Path) -> Self {
        let mut folders = Vec::new();
        let from_env = std::env::var_os("KIP_SCRIPTS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if let Some(dir) = scripts_flag.map(Path::to_path_buf).or(from_env) {
            folders.push(Folder {
                templates: dir.join("templates"),
                scripts: dir,
            });
        }
        if let Some(repo) = git_root(cwd) {
            let kip = repo.join(".kip");
            folders.push(Folder {
                scripts: kip.join("scripts"),
                templates: kip.join("templates"),
            });
        }
        folders.push(Folder {
            scripts: kip_home.join("scripts"),
            templates: kip_home.join("templates"),
        });
        SearchPath { folders }
    }

    /// Only the embedded stdlib.
    pub fn stdlib_only() -> Self {
        SearchPath::default()
    }

    /// Every script along the path, override folders first, in their order.
    pub fn scripts(&self) -> Vec<Script> {
        let mut all = Vec::new();
        for folder in &self.folders {
            let Ok(entries) = std::fs::read_dir(&folder.scripts) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
                .collect();
            paths.sort();
            for path in paths {
                if let Ok(source) = std::fs::read_to_string(&path) {
                    let stem = stem_of(&path);
                    all.push(Script {
                        stem,
                        origin: Origin::File(path),
                        source,
                    });
                }
            }
        }
        for (name, source) in stdlib::SCRIPTS {
            all.push(Script {
                stem: stem_of(Path::new(name)),
                origin: Origin::Stdlib(name),
                source: source.to_string(),
            });
        }
        all
    }

    /// The first module named `name` (`lib/naming` for `import "lib/naming"`).
    pub fn module(&self, name: &str) -> Option<Script> {
        let file = format!("{name}.rhai");
        for folder in &self.folders {
            let path = folder.scripts.join(&file);
            if let Ok(source) = std::fs::read_to_string(&path) {
                return Some(Script {
                    stem: name.to_string(),
                    origin: Origin::File(path),
                    source,
                });
            }
        }
        let wanted = format!("stdlib/{file}");
        stdlib::SCRIPTS
            .iter()
            .find(|(n, _)| *n == wanted)
            .map(|(n, source)| Script {
                stem: name.to_string(),
                origin: Origin::Stdlib(n),
                source: source.to_string(),
            })
    }

    /// The first template named `name` (`app/deployment.yaml.j2`) and where it came from.
    pub fn template(&self, name: &str) -> Option<(String, Origin)> {
        for folder in &self.folders {
            let path = folder.templates.join(name);
            if let Ok(source) = std::fs::read_to_string(&path) {
                return Some((source, Origin::File(path)));
            }
        }
        let wanted = format!("templates/{name}");
        stdlib::TEMPLATES
            .iter()
            .find(|(n, _)| *n == wanted)
            .map(|(n, source)| (source.to_string(), Origin::Stdlib(n)))
    }
}

fn stem_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The root of the git repository holding `dir`, if any.
fn git_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

impl builtins::TemplateSource for SearchPath {
    fn template(&self, name: &str) -> Option<(String, String)> {
        SearchPath::template(self, name).map(|(source, origin)| (source, origin.display()))
    }
}
