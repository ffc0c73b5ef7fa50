//! The subset of kubectl's JSONPath that CRD `additionalPrinterColumns` use in practice:
//! `.a.b`, `['a.b']`, `[n]`, `[*]` / `.*`, and filters like `[?(@.type=="Ready")]`.

use serde_json::Value;

/// A compiled path; evaluation never fails, missing keys simply yield no results, which is how
/// the apiserver configures JSONPath for printer columns (`AllowMissingKeys(true)`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Vec<Step>,
    /// `None` tests only that `path` exists.
    comparison: Option<(bool, Literal)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl JsonPath {
    /// Compiles a path such as `.status.conditions[?(@.type=="Ready")].status`; `{...}` braces
    /// and a leading `$` are accepted too.
    pub(super) fn parse(src: &str) -> Result<Self, String> {
        let mut s = src.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            s = inner.trim();
        }
        let s = s.strip_prefix('$').unwrap_or(s);
        let chars: Vec<char> = s.chars().collect();
        let mut pos = 0;
        let steps = parse_steps(&chars, &mut pos, false)
            .map_err(|e| format!("unrecognized column definition {src:?}: {e}"))?;
        if pos != chars.len() {
            return Err(format!("unrecognized column definition {src:?}"));
        }
        Ok(JsonPath { steps })
    }

    /// All values the path selects, in document order.
    pub(super) fn eval<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        eval_steps(&self.steps, root)
    }
}

/// Parses `.field`, `[...]` steps. Inside a filter (`in_filter`), stops at the first character
/// that cannot continue a path (an operator, a space or the closing parenthesis).
fn parse_steps(chars: &[char], pos: &mut usize, in_filter: bool) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    // A bare leading name (`spec.x`) is read as `.spec.x`.
    if !in_filter && chars.first().is_some_and(|c| *c != '.' && *c != '[') {
        steps.push(field_step(read_name(chars, pos, in_filter)));
    }
    while let Some(&c) = chars.get(*pos) {
        match c {
            '.' => {
                *pos += 1;
                if chars.get(*pos) == Some(&'.') {
                    return Err("recursive descent is not supported".to_string());
                }
                steps.push(field_step(read_name(chars, pos, in_filter)));
            }
            '[' => {
                *pos += 1;
                let inner = read_bracket(chars, pos)?;
                steps.push(parse_bracket(&inner)?);
            }
            _ if in_filter => break,
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(steps)
}

fn field_step(name: String) -> Step {
    if name == "*" {
        Step::Wildcard
    } else {
        Step::Field(name)
    }
}

/// Reads a field name up to `.` or `[`; a backslash escapes the next character (`a\.b`).
fn read_name(chars: &[char], pos: &mut usize, in_filter: bool) -> String {
    let mut name = String::new();
    while let Some(&c) = chars.get(*pos) {
        let stops_filter = in_filter
            && (c.is_whitespace() || matches!(c, '=' | '!' | '<' | '>' | ')' | '&' | '|'));
        if c == '.' || c == '[' || stops_filter {
            break;
        }
        *pos += 1;
        if c == '\\' {
            if let Some(&escaped) = chars.get(*pos) {
                name.push(escaped);
                *pos += 1;
            }
        } else {
            name.push(c);
        }
    }
    name
}

/// Reads up to the `]` matching an already-consumed `[`, skipping quoted text and nesting.
fn read_bracket(chars: &[char], pos: &mut usize) -> Result<String, String> {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    while let Some(&c) = chars.get(*pos) {
        *pos += 1;
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => {
                out.push(c);
                if let Some(&next) = chars.get(*pos) {
                    out.push(next);
                    *pos += 1;
                }
                continue;
            }
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, ']') if depth == 0 => return Ok(out),
            (None, ']') => depth -= 1,
            _ => {}
        }
        out.push(c);
    }
    Err("unclosed '['".to_string())
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    let inner = inner.trim();
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(filter) = inner
        .strip_prefix('?')
        .map(str::trim_start)
        .and_then(|f| f.strip_prefix('('))
        .and_then(|f| f.strip_suffix(')'))
    {
        return parse_filter(filter).map(Step::Filter);
    }
    if let Some(Literal::Str(key)) = parse_literal(inner) {
        return Ok(Step::Field(key));
    }
    inner
        .parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("unsupported subscript [{inner}]"))
}

fn parse_filter(src: &str) -> Result<Filter, String> {
    let chars: Vec<char> = src.trim().chars().collect();
    if chars.first() != Some(&'@') {
        return Err("filters must start with '@'".to_string());
    }
    let mut pos = 1;
    let path = parse_steps(&chars, &mut pos, true)?;
    let rest: String = chars.get(pos..).unwrap_or(&[]).iter().collect();
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(Filter {
            path,
            comparison: None,
        });
    }
    let (equal, literal) = if let Some(lit) = rest.strip_prefix("==") {
        (true, lit)
    } else if let Some(lit) = rest.strip_prefix("!=") {
        (false, lit)
    } else {
        return Err(format!("unsupported filter operator in {src:?}"));
    };
    let literal =
        parse_literal(literal.trim()).ok_or_else(|| format!("unsupported literal in {src:?}"))?;
    Ok(Filter {
        path,
        comparison: Some((equal, literal)),
    })
}

fn parse_literal(s: &str) -> Option<Literal> {
    for quote in ['"', '\''] {
        if let Some(inner) = s
            .strip_prefix(quote)
            .and_then(|r| r.strip_suffix(quote))
            .filter(|_| s.len() >= 2)
        {
            return Some(Literal::Str(unescape(inner)));
        }
    }
    match s {
        "true" => Some(Literal::Bool(true)),
        "false" => Some(Literal::Bool(false)),
        _ => s.parse::<f64>().ok().map(Literal::Num),
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn eval_steps<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            apply(step, value, &mut next);
        }
        current = next;
    }
    current
}

fn apply<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>) {
    match (step, value) {
        (Step::Field(name), _) if name.is_empty() => out.push(value),
        (Step::Field(name), Value::Object(map)) => out.extend(map.get(name)),
        (Step::Index(i), Value::Array(items)) => {
            let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
            let idx = if *i < 0 { len + i } else { *i };
            if let Some(item) = usize::try_from(idx).ok().and_then(|idx| items.get(idx)) {
                out.push(item);
            }
        }
        (Step::Wildcard, Value::Array(items)) => out.extend(items),
        (Step::Wildcard, Value::Object(map)) => out.extend(map.values()),
        (Step::Filter(filter), Value::Array(items)) => {
            out.extend(items.iter().filter(|item| filter.accepts(item)));
        }
        _ => {}
    }
}

impl Filter {
    fn accepts(&self, item: &Value) -> bool {
        let found = eval_steps(&self.path, item);
        let Some((equal, literal)) = &self.comparison else {
            return !found.is_empty();
        };
        let Some(left) = found.first() else {
            return false;
        };
        let same = match (literal, left) {
            (Literal::Str(s), Value::String(v)) => s == v,
            (Literal::Num(n), Value::Number(v)) => v.as_f64() == Some(*n),
            (Literal::Bool(b), Value::Bool(v)) => b == v,
            _ => false,
        };
        same == *equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(path: &str, v: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap_or_else(|e| panic!("{e}"))
            .eval(v)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn paths() {
        let obj = json!({
            "spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]},
            "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
            "status": {"conditions": [
                {"type": "Progressing", "status": "True"},
                {"type": "Ready", "status": "False", "observedGeneration": 2}
            ]}
        });
        assert_eq!(eval(".spec.replicas", &obj), [json!(3)]);
        assert_eq!(eval("{.spec.replicas}", &obj), [json!(3)]);
        assert_eq!(eval("$.spec.replicas", &obj), [json!(3)]);
        assert_eq!(eval("spec.replicas", &obj), [json!(3)]);
        assert_eq!(eval(".spec.ports[1].port", &obj), [json!(443)]);
        assert_eq!(eval(".spec.ports[-1].port", &obj), [json!(443)]);
        assert_eq!(eval(".spec.ports[*].port", &obj), [json!(80), json!(443)]);
        assert_eq!(eval(".spec.ports[5].port", &obj), Vec::<Value>::new());
        assert_eq!(eval(".spec.missing.deeper", &obj), Vec::<Value>::new());
        assert_eq!(
            eval(r#".status.conditions[?(@.type=="Ready")].status"#, &obj),
            [json!("False")]
        );
        assert_eq!(
            eval(".status.conditions[?(@.type == 'Ready')].status", &obj),
            [json!("False")]
        );
        assert_eq!(
            eval(r#".status.conditions[?(@.type!="Ready")].type"#, &obj),
            [json!("Progressing")]
        );
        assert_eq!(
            eval(".status.conditions[?(@.observedGeneration)].type", &obj),
            [json!("Ready")]
        );
        assert_eq!(
            eval(".status.conditions[?(@.observedGeneration==2)].type", &obj),
            [json!("Ready")]
        );
        assert_eq!(
            eval(r".metadata.labels.app\.kubernetes\.io/name", &obj),
            [json!("web")]
        );
        assert_eq!(
            eval(".metadata.labels['app.kubernetes.io/name']", &obj),
            [json!("web")]
        );
    }

    #[test]
    fn unsupported_paths_are_errors() {
        for bad in ["..spec", ".a[1:2]", ".a[", ".a[?(x)]", ".a[?(@.b<1)]"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
