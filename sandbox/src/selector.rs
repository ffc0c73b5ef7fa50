pub struct LabelSelector;
impl LabelSelector { pub fn parse(_: &str) -> Result<Self, String> { Ok(LabelSelector) } pub fn is_empty(&self)->bool{false} pub fn matches(&self, _: Option<&serde_json::Map<String, serde_json::Value>>)->bool{true} }
impl std::fmt::Display for LabelSelector { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "") } }
pub struct FieldSelector;
impl FieldSelector { pub fn parse(_: &str) -> Result<Self, String> { Ok(FieldSelector) } pub fn matches(&self, _: &serde_json::Value)->bool{true} }
pub fn from_label_selector_json(_: &serde_json::Value) -> Result<LabelSelector, String> { Ok(LabelSelector) }
