//! Embeds every file of `stdlib/` and `templates/` so a new verb or template needs no Rust
//! change: writes the `SCRIPTS` and `TEMPLATES` tables `src/stdlib.rs` includes.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn table(root: &Path, folder: &str, extension: &str) -> String {
    let base = root.join(folder);
    println!("cargo:rerun-if-changed={}", base.display());
    let mut found = Vec::new();
    files(&base, &mut found);
    found.retain(|p| p.to_string_lossy().ends_with(extension));
    found.sort();
    let mut rows = String::new();
    for path in found {
        println!("cargo:rerun-if-changed={}", path.display());
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        rows.push_str(&format!(
            "    ({relative:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    format!("&[\n{rows}]")
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.parent().unwrap_or(&manifest).to_path_buf();
    let code = format!(
        "/// Every embedded script: its virtual name and source.\npub const SCRIPTS: &[(&str, &str)] = {};\n\n/// Every embedded template: its virtual name and source.\npub const TEMPLATES: &[(&str, &str)] = {};\n",
        table(&root, "stdlib", ".rhai"),
        table(&root, "templates", ".j2"),
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("embedded.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}
