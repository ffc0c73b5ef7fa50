pub fn record_update(_old: Option<&serde_json::Value>, new: serde_json::Value, _m: &str, _s: Option<&str>, _now: &str) -> serde_json::Value { new }
pub struct Conflict { pub manager: String, pub field: String }
pub enum ApplyError { Conflict(Vec<Conflict>), Invalid(String) }
pub fn server_side_apply(_live: Option<&serde_json::Value>, config: &serde_json::Value, _m: &str, _f: bool, _now: &str) -> Result<serde_json::Value, ApplyError> { Ok(config.clone()) }
