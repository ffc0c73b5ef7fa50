//! The stdlib scripts and templates embedded in the binary, with readable virtual names.

/// Every embedded script: its virtual name and source.
pub const SCRIPTS: &[(&str, &str)] = &[("stdlib/kip.rhai", include_str!("../../stdlib/kip.rhai"))];

/// Every embedded template: its virtual name and source.
pub const TEMPLATES: &[(&str, &str)] = &[];
