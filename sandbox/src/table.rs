#[derive(Debug, Clone)]
pub struct PrinterColumn;
pub fn printer_columns_from_crd(_: &serde_json::Value) -> Vec<PrinterColumn> { Vec::new() }
pub enum IncludeObject { None, Metadata, Object }
pub fn to_table(_g: &str, _k: &str, _c: &[PrinterColumn], _o: &[&serde_json::Value], _i: IncludeObject, _m: serde_json::Value, _n: jiff::Timestamp) -> serde_json::Value { serde_json::Value::Null }
