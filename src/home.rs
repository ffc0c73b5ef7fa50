//! The kip home: `KIP_HOME`, or `~/.kip`.

use std::path::PathBuf;

pub fn kip_home() -> Result<PathBuf, String> {
    if let Some(home) = std::env::var_os("KIP_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".kip")),
        None => Err("cannot find the kip home: set KIP_HOME or HOME".to_string()),
    }
}

/// Creates the kip home, when missing, readable by its owner only: it holds tokens, keys and
/// kubeconfigs. One that exists keeps the permissions its owner chose; the files and folders
/// in it that hold secrets are private on their own.
pub fn create(home: &std::path::Path) -> std::io::Result<()> {
    sandbox::home::create_dirs(home)
}
