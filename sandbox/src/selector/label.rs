//! Label selectors: the string syntax (`a=b,c in (x,y),!d`) and the `matchLabels` /
//! `matchExpressions` JSON form.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::validation::{go_quote, label_value_errors, qualified_name_errors};

/// How a [`Requirement`] compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value` (same meaning as `=`, kept apart so printing round-trips)
    DoubleEquals,
    /// `key!=value`; true when the label is absent
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`; true when the label is absent
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>5`: the label must be an integer greater than the value
    GreaterThan,
    /// `key<5`: the label must be an integer less than the value
    LessThan,
}

/// One term of a [`LabelSelector`]; all terms must hold for the selector to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

impl Requirement {
    /// Validates and builds a requirement, with the apiserver's `NewRequirement` checks.
    pub fn new(
        key: &str,
        operator: Operator,
        values: impl IntoIterator<Item = String>,
    ) -> Result<Self, String> {
        let values: Vec<String> = values.into_iter().collect();
        let mut errs = Vec::new();
        let key_errs = qualified_name_errors(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {}: {}",
                go_quote(key),
                key_errs.join("; ")
            ));
        }
        let count_error = match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(msg) = count_error {
            errs.push(format!(
                "values: Invalid value: {}: {msg}",
                go_string_slice(&values)
            ));
        }
        if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        go_quote(v)
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = label_value_errors(v);
            if !value_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    value_errs.join("; ")
                ));
            }
        }
        match errs.as_slice() {
            [] => Ok(Requirement {
                key: key.to_string(),
                operator,
                values: values.into_iter().collect(),
            }),
            [one] => Err(one.clone()),
            many => Err(format!("[{}]", many.join(", "))),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The comparison.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted (empty for `Exists` / `DoesNotExist`).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(String::as_str)
    }

    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|l| l.get(&self.key))
            .and_then(Value::as_str);
        match (self.operator, value) {
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
            (Operator::Equals | Operator::DoubleEquals | Operator::In, Some(v)) => {
                self.values.contains(v)
            }
            (Operator::NotEquals | Operator::NotIn, Some(v)) => !self.values.contains(v),
            (Operator::NotEquals | Operator::NotIn, None) => true,
            (Operator::GreaterThan | Operator::LessThan, Some(v)) => {
                let (Ok(have), Some(Ok(want))) = (
                    v.parse::<i64>(),
                    self.values.iter().next().map(|w| w.parse::<i64>()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
            (_, None) => false,
        }
    }
}

/// Formats a string list like Go's `%#v` of `[]string`, as the apiserver prints bad value sets.
fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

impl fmt::Display for Requirement {
    /// Prints the requirement in selector syntax, e.g. `app in (a,b)` or `!legacy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Exists => return f.write_str(&self.key),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        let values = self
            .values
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",");
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            write!(f, "{}{op}({values})", self.key)
        } else {
            write!(f, "{}{op}{values}", self.key)
        }
    }
}

/// A parsed `labelSelector`: a conjunction of [`Requirement`]s. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Builds a selector from requirements, ordering them by key as the apiserver does.
    pub fn new(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// Parses the selector string syntax (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`,
    /// `a`, `!a`, `a>1`, `a<1`, comma-separated). Errors read like the apiserver's, e.g.
    /// `unable to parse requirement: found 'x', expected: in, notin, =, ==, !=, gt, lt`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let tokens = lex(s);
        Parser { tokens, pos: 0 }.parse().map(LabelSelector::new)
    }

    /// A selector requiring each `key=value` of a plain map (e.g. a Service's `spec.selector`).
    pub fn from_equality_map(map: &Map<String, Value>) -> Result<Self, String> {
        let mut requirements = Vec::with_capacity(map.len());
        for (key, value) in map {
            let value = value
                .as_str()
                .ok_or_else(|| format!("label {} must have a string value", go_quote(key)))?;
            requirements.push(Requirement::new(
                key,
                Operator::Equals,
                [value.to_string()],
            )?);
        }
        Ok(LabelSelector::new(requirements))
    }

    /// Whether an object with these labels (`metadata.labels`; `None` when absent) is selected.
    /// Non-string label values count as absent.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector has no requirements and so selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, ordered by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelector {
    /// Prints the canonical selector string, as `kubectl get -o wide` shows selectors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::write_terms(f, &self.requirements)
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        LabelSelector::parse(s)
    }
}

/// Converts a `metav1.LabelSelector` JSON object (`matchLabels` / `matchExpressions`, as in
/// `Deployment.spec.selector`) into a [`LabelSelector`]. `{}` selects everything; `null` and
/// non-objects are errors, because the apiserver treats a null selector as matching nothing and
/// callers must decide what that means for them.
pub fn from_label_selector_json(v: &Value) -> Result<LabelSelector, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| "label selector must be an object".to_string())?;
    let mut requirements = Vec::new();
    match obj.get("matchLabels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => {
            requirements.extend(LabelSelector::from_equality_map(labels)?.requirements)
        }
        Some(_) => return Err("matchLabels must be an object".to_string()),
    }
    let expressions: &[Value] = match obj.get("matchExpressions") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(_) => return Err("matchExpressions must be an array".to_string()),
    };
    for expr in expressions {
        requirements.push(expression_requirement(expr)?);
    }
    Ok(LabelSelector::new(requirements))
}

fn expression_requirement(expr: &Value) -> Result<Requirement, String> {
    let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
    let op_name = expr.get("operator").and_then(Value::as_str).unwrap_or("");
    let operator = match op_name {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(format!(
                "{} is not a valid label selector operator",
                go_quote(other)
            ));
        }
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "matchExpressions values must be strings".to_string())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("matchExpressions values must be an array".to_string()),
    };
    Requirement::new(key, operator, values)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    GreaterThan,
    LessThan,
    OpenPar,
    ClosedPar,
    Comma,
    End,
}

impl Token {
    /// The source text, for "found '...'" messages.
    fn literal(&self) -> &str {
        match self {
            Token::Identifier(s) => s,
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Bang => "!",
            Token::GreaterThan => ">",
            Token::LessThan => "<",
            Token::OpenPar => "(",
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::End => "",
        }
    }

    /// In value position `in`/`notin` are ordinary words, e.g. the key in `in=x`.
    fn as_value(&self) -> Token {
        match self {
            Token::In | Token::NotIn => Token::Identifier(self.literal().to_string()),
            other => other.clone(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Tokenises like apimachinery's lexer: runs of special characters become the longest known
/// operator, everything else up to whitespace or a special character is a word.
fn lex(s: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if is_space(c) {
            chars.next();
        } else if is_special(c) {
            chars.next();
            let second = chars.peek().map(|&(_, c)| c);
            let token = match (c, second) {
                ('=', Some('=')) => Some(Token::DoubleEquals),
                ('!', Some('=')) => Some(Token::NotEquals),
                _ => None,
            };
            let token = match token {
                Some(t) => {
                    chars.next();
                    t
                }
                None => match c {
                    '=' => Token::Equals,
                    '!' => Token::Bang,
                    '(' => Token::OpenPar,
                    ')' => Token::ClosedPar,
                    ',' => Token::Comma,
                    '>' => Token::GreaterThan,
                    _ => Token::LessThan,
                },
            };
            tokens.push(token);
        } else {
            let mut end = s.len();
            while let Some(&(i, c)) = chars.peek() {
                if is_space(c) || is_special(c) {
                    end = i;
                    break;
                }
                chars.next();
            }
            let word = s.get(start..end).unwrap_or("");
            tokens.push(match word {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier(word.to_string()),
            });
        }
    }
    tokens.push(Token::End);
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    /// The next token, with keywords read as words (the apiserver's "Values" context).
    fn peek_value(&self) -> Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End).as_value()
    }

    fn next_raw(&mut self) -> Token {
        let token = self.tokens.get(self.pos).cloned().unwrap_or(Token::End);
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn next_value(&mut self) -> Token {
        self.next_raw().as_value()
    }

    fn parse(mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.peek_value() {
                Token::Identifier(_) | Token::Bang => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    match self.next_value() {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let after = self.peek_value();
                            if !matches!(after, Token::Identifier(_) | Token::Bang) {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    after.literal()
                                ));
                            }
                        }
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                other.literal()
                            ));
                        }
                    }
                }
                Token::End => return Ok(requirements),
                other => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        other.literal()
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut token = self.next_value();
        let negated = token == Token::Bang;
        if negated {
            token = self.next_value();
        }
        let Token::Identifier(key) = token else {
            return Err(format!("found '{}', expected: identifier", token.literal()));
        };
        let key_errs = qualified_name_errors(&key);
        if !key_errs.is_empty() {
            // "<nil>" is the apiserver's rendering of the parser's empty field path.
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(&key),
                key_errs.join("; ")
            ));
        }
        if negated {
            return Requirement::new(&key, Operator::DoesNotExist, []);
        }
        if matches!(self.peek_value(), Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, []);
        }
        let operator = match self.next_raw() {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            other => {
                return Err(format!(
                    "found '{}', expected: {BINARY_OPERATORS}",
                    other.literal()
                ));
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        Requirement::new(&key, operator, values)
    }

    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek_value(), Token::End | Token::Comma) {
            return Ok(String::new());
        }
        match self.next_value() {
            Token::Identifier(v) => Ok(v),
            other => Err(format!("found '{}', expected: identifier", other.literal())),
        }
    }

    /// Parses `(a,b)`, where empty slots (`()`, `(,a)`, `(a,)`) stand for the empty value.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let open = self.next_value();
        if open != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", open.literal()));
        }
        match self.peek_value() {
            Token::ClosedPar => {
                self.next_value();
                Ok(vec![String::new()])
            }
            Token::Identifier(_) | Token::Comma => {
                let first = self.peek_value();
                let values = self.identifier_list()?;
                match self.next_value() {
                    Token::ClosedPar => Ok(values),
                    _ => Err(format!("found '{}', expected: ')'", first.literal())),
                }
            }
            other => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                other.literal()
            )),
        }
    }

    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            match self.next_value() {
                Token::Identifier(v) => {
                    values.push(v);
                    match self.peek_value() {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or ')'",
                                other.literal()
                            ));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.peek_value() {
                        Token::ClosedPar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.next_value();
                            values.push(String::new());
                        }
                        _ => {}
                    }
                }
                other => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        other.literal()
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn empty_selects_everything() {
        for s in ["", "  ", "\t\n"] {
            let selector = sel(s);
            assert!(selector.is_empty());
            assert!(selector.matches(None));
            assert!(selector.matches(Some(&labels(json!({"a": "b"})))));
            assert_eq!(selector.to_string(), "");
        }
    }

    #[test]
    fn operators_match() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "7"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("n>5", true),
            ("n>7", false),
            ("n<8", true),
            ("app>1", false),
            ("missing<1", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            (" app = web , tier in ( front , back ) ", true),
            ("app=", false),
            ("missing=", false),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s).matches(Some(&l)), want, "{s}");
        }
        assert!(sel("a!=b").matches(None));
        assert!(!sel("a=b").matches(None));
        let empty_value = labels(json!({"a": ""}));
        assert!(sel("a=").matches(Some(&empty_value)));
        assert!(sel("a in ()").matches(Some(&empty_value)));
        assert!(sel("a in (,x)").matches(Some(&empty_value)));
        let non_string = labels(json!({"a": 1}));
        assert!(!sel("a").matches(Some(&non_string)));
    }

    #[test]
    fn keywords_are_words_in_value_position() {
        let l = labels(json!({"in": "notin"}));
        assert!(sel("in=notin").matches(Some(&l)));
        assert!(sel("in in (notin)").matches(Some(&l)));
        assert!(sel("in").matches(Some(&l)));
        assert!(sel("!notin").matches(Some(&l)));
    }

    #[test]
    fn canonical_printing() {
        assert_eq!(
            sel("z=1, a in (y,x), !m, k, b notin (q), c==d, e!=f, g>1, h<2").to_string(),
            "a in (x,y),b notin (q),c==d,e!=f,g>1,h<2,k,!m,z=1"
        );
        assert_eq!(sel("a in (,x,)").to_string(), "a in (,x)");
    }

    #[test]
    fn parse_errors_read_like_the_apiserver() {
        let cases = [
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("a=b,", "found '', expected: identifier after ','"),
            (
                "=b",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            (
                "a in x",
                "unable to parse requirement: found 'x' expected: '('",
            ),
            (
                "a in (x",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "a in (x y)",
                "unable to parse requirement: found 'y', expected: ',' or ')'",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a=(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "a>b",
                "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (s, want) in cases {
            assert_eq!(LabelSelector::parse(s).unwrap_err(), want, "{s}");
        }
        let err = LabelSelector::parse("-a=b").unwrap_err();
        assert!(
            err.starts_with(
                "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of"
            ),
            "{err}"
        );
        let err = LabelSelector::parse("a=-b").unwrap_err();
        assert!(
            err.starts_with(
                "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be"
            ),
            "{err}"
        );
    }

    #[test]
    fn equality_map() {
        let s = LabelSelector::from_equality_map(&labels(json!({"b": "2", "a": "1"}))).unwrap();
        assert_eq!(s.to_string(), "a=1,b=2");
        assert!(LabelSelector::from_equality_map(&labels(json!({"a": 1}))).is_err());
    }

    #[test]
    fn json_selectors() {
        let v = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "track", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []}
            ]
        });
        let s = from_label_selector_json(&v).unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,env notin (prod),!legacy,tier in (edge,front),track"
        );
        let l = labels(json!({"app": "web", "tier": "edge", "track": "x"}));
        assert!(s.matches(Some(&l)));

        assert!(from_label_selector_json(&json!({})).unwrap().is_empty());
        assert!(from_label_selector_json(&Value::Null).is_err());
        assert_eq!(
            from_label_selector_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
            )
            .unwrap_err(),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            from_label_selector_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
            )
            .unwrap_err(),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        assert!(
            from_label_selector_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
            )
            .is_err()
        );
        assert!(from_label_selector_json(&json!({"matchLabels": {"a b": "c"}})).is_err());
    }

    fn name_part() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9]",
            "[A-Za-z0-9][-A-Za-z0-9_.]{0,10}[A-Za-z0-9]",
            Just("in".to_string()),
            Just("notin".to_string()),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        (
            proptest::option::of("[a-z0-9]([-a-z0-9]{0,5}[a-z0-9])?(\\.[a-z0-9]{1,4}){0,2}"),
            name_part(),
        )
            .prop_map(|(prefix, name)| match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name,
            })
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), name_part()]
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        let single = prop_oneof![
            Just(Operator::Equals),
            Just(Operator::DoubleEquals),
            Just(Operator::NotEquals)
        ];
        prop_oneof![
            (key(), single, value()).prop_map(|(k, op, v)| Requirement::new(&k, op, [v])),
            (
                key(),
                prop_oneof![Just(Operator::In), Just(Operator::NotIn)],
                proptest::collection::vec(value(), 1..4)
            )
                .prop_map(|(k, op, vs)| Requirement::new(&k, op, vs)),
            (
                key(),
                prop_oneof![Just(Operator::Exists), Just(Operator::DoesNotExist)]
            )
                .prop_map(|(k, op)| Requirement::new(&k, op, [])),
            (
                key(),
                prop_oneof![Just(Operator::GreaterThan), Just(Operator::LessThan)],
                "[0-9]{1,9}"
            )
                .prop_map(|(k, op, v)| Requirement::new(&k, op, [v])),
        ]
        .prop_map(|r| r.expect("generated requirements are valid"))
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = LabelSelector::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_selector_alphabet(s in "[a-c!=(), <>\\-./]{0,24}|[ a-z!=(),]*(in|notin)[ a-z!=(),]*") {
            let _ = LabelSelector::parse(&s);
        }

        #[test]
        fn display_round_trips(reqs in proptest::collection::vec(requirement(), 0..5)) {
            let selector = LabelSelector::new(reqs);
            let text = selector.to_string();
            let parsed = LabelSelector::parse(&text);
            prop_assert_eq!(parsed.as_ref(), Ok(&selector), "{}", text);
        }
    }
}
