//! Field selectors: `metadata.name=x,status.phase!=Running`.

use std::fmt;

use serde_json::Value;

/// How a [`FieldRequirement`] compares a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value`
    Equals,
    /// `field==value` (same meaning as `=`, kept apart so printing round-trips)
    DoubleEquals,
    /// `field!=value`
    NotEquals,
}

impl FieldOperator {
    fn as_str(self) -> &'static str {
        match self {
            FieldOperator::Equals => "=",
            FieldOperator::DoubleEquals => "==",
            FieldOperator::NotEquals => "!=",
        }
    }
}

/// One `field op value` term of a [`FieldSelector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted path into the object, e.g. `metadata.name` or `involvedObject.kind`.
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The (unescaped) value compared against.
    pub value: String,
}

impl FieldRequirement {
    fn matches(&self, obj: &Value) -> bool {
        let actual = field_string(obj, &self.field);
        let equal = actual == self.value;
        match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => equal,
            FieldOperator::NotEquals => !equal,
        }
    }
}

/// Reads a dotted path as the string the apiserver's field-label functions would produce; an
/// absent field reads as `""` so `spec.nodeName=` selects unscheduled pods.
fn field_string(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for segment in path.split('.') {
        match cur.get(segment) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.field,
            self.operator.as_str(),
            escape_value(&self.value)
        )
    }
}

/// A parsed `fieldSelector`: a conjunction of [`FieldRequirement`]s. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Builds a selector from requirements.
    pub fn new(requirements: Vec<FieldRequirement>) -> Self {
        FieldSelector { requirements }
    }

    /// Parses `field=value` terms joined by `,`; operators `=`, `==`, `!=`. In values, `\,`,
    /// `\=` and `\\` escape the special characters, as in apimachinery's `fields.ParseSelector`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(s) {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            requirements.push(FieldRequirement {
                // Tolerate `metadata.name = x`; field paths never contain spaces.
                field: field.trim().to_string(),
                operator,
                value: unescape_value(raw)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether every term holds for `obj`; values are compared as strings, absent fields as `""`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(obj))
    }

    /// True when the selector has no terms and so selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The terms, in the order given.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value an equality term (`=` / `==`) requires for `field`, if any; lets a caller narrow
    /// a lookup, e.g. by `metadata.name`.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// Prints the selector with values escaped, so it parses back to the same terms.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::write_terms(f, &self.requirements)
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        FieldSelector::parse(s)
    }
}

/// Splits on commas that are not escaped by a backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(s.get(start..i).unwrap_or(""));
            start = i + 1;
        }
    }
    terms.push(s.get(start..).unwrap_or(""));
    terms
}

/// Splits at the first operator, trying `!=` and `==` before `=` at each position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::DoubleEquals),
        ("=", FieldOperator::Equals),
    ];
    for (i, _) in term.char_indices() {
        let rest = term.get(i..).unwrap_or("");
        for (text, op) in OPERATORS {
            if let Some(value) = rest.strip_prefix(text) {
                return Some((term.get(..i).unwrap_or(""), op, value));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {c}"
                ));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn matches_dotted_paths() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1", "unschedulable": false, "replicas": 3},
            "status": {"phase": "Running"}
        });
        let cases = [
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name!=web", false),
            ("metadata.name=web,metadata.namespace!=kube-system", true),
            ("metadata.name=web,metadata.namespace=kube-system", false),
            ("status.phase=Running", true),
            ("spec.nodeName=", false),
            ("spec.missing=", true),
            ("spec.missing!=", false),
            ("spec.unschedulable=false", true),
            ("spec.replicas=3", true),
            ("metadata.name =web", true),
            ("metadata.name= web", false),
            ("involvedObject.name=", true),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s).matches(&pod), want, "{s}");
        }
    }

    #[test]
    fn escapes() {
        let s = sel(r"metadata.name=a\,b\=c\\d");
        assert_eq!(s.requirements()[0].value, r"a,b=c\d");
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert!(s.matches(&json!({"metadata": {"name": r"a,b=c\d"}})));
        assert_eq!(s.exact_value("metadata.name"), Some(r"a,b=c\d"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            FieldSelector::parse("metadata.name").unwrap_err(),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            "invalid field selector: unescaped character in value: ="
        );
        assert!(FieldSelector::parse(r"a=b\").is_err());
    }

    #[test]
    fn operator_precedence_and_empty_terms() {
        let s = sel("a!=b,,c==d,e=f");
        let ops: Vec<_> = s.requirements().iter().map(|r| r.operator).collect();
        assert_eq!(
            ops,
            [
                FieldOperator::NotEquals,
                FieldOperator::DoubleEquals,
                FieldOperator::Equals
            ]
        );
        assert_eq!(s.exact_value("a"), None);
        assert_eq!(s.exact_value("c"), Some("d"));
        assert!(sel(",").is_empty());
    }

    fn requirement() -> impl Strategy<Value = FieldRequirement> {
        (
            "[a-zA-Z][a-zA-Z0-9]{0,6}(\\.[a-zA-Z][a-zA-Z0-9]{0,6}){0,2}",
            prop_oneof![
                Just(FieldOperator::Equals),
                Just(FieldOperator::DoubleEquals),
                Just(FieldOperator::NotEquals)
            ],
            "[a-z0-9=,\\\\ .!-]{0,8}",
        )
            .prop_map(|(field, operator, value)| FieldRequirement {
                field,
                operator,
                value,
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = FieldSelector::parse(&s);
        }

        #[test]
        fn display_round_trips(reqs in proptest::collection::vec(requirement(), 0..4)) {
            let selector = FieldSelector::new(reqs);
            let text = selector.to_string();
            prop_assert_eq!(FieldSelector::parse(&text), Ok(selector), "{}", text);
        }
    }
}
