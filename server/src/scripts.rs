//! The stdlib functions the server calls, run on blocking threads: scripts block on API calls
//! through the host, so they never run on the runtime's workers.

use std::sync::Arc;

use kip_core::{Kip, ScriptError};
use rhai::Dynamic;
use serde_json::Value;

/// A loaded kip whose engine talks to the server's cluster.
#[derive(Clone)]
pub struct Scripts {
    kip: Arc<Kip>,
}

impl Scripts {
    /// Scripts of `kip`, whose engine already has its host set.
    pub fn new(kip: Kip) -> Scripts {
        Scripts { kip: Arc::new(kip) }
    }

    /// Calls `func` of `module` with `args` (resources, as JSON) and returns what it returns,
    /// as JSON. A script that fails is reported as one line naming its file and line.
    pub async fn call(&self, module: &str, func: &str, args: Vec<Value>) -> Result<Value, String> {
        let kip = self.kip.clone();
        let (module, func) = (module.to_string(), func.to_string());
        let run = tokio::task::spawn_blocking(move || {
            let args = args
                .iter()
                .map(rhai::serde::to_dynamic)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let out = kip.call(&module, &func, args).map_err(|e| one_line(&e))?;
            to_json(out)
        });
        run.await
            .map_err(|e| format!("the script stopped unexpectedly: {e}"))?
    }
}

fn to_json(value: Dynamic) -> Result<Value, String> {
    if value.is_unit() {
        return Ok(Value::Null);
    }
    rhai::serde::from_dynamic(&value)
        .map_err(|e| format!("the script returned a value that is not JSON: {e}"))
}

/// `stdlib/lib/apps.rhai:12:5: message`: where a script failed and why, for a
/// condition's message and the server's log.
pub fn one_line(err: &ScriptError) -> String {
    let at = err
        .location
        .as_ref()
        .map(|at| format!("{}:{}:{}: ", at.source, at.line, at.column))
        .unwrap_or_default();
    format!("{at}{}", err.message)
}
