//! The stdlib scripts and templates embedded in the binary, with readable virtual names
//! (`stdlib/app.rhai`, `templates/app/deployment.yaml.j2`); `build.rs` lists them.

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
