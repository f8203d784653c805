//! Label selectors: the `LabelSelector` object form, the string form used by
//! `/scale` subresources and `?labelSelector=` (`a=b,c!=d,e in (x,y),!f`),
//! and matching against a label map, with Kubernetes' semantics.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;
use std::fmt;

/// How a requirement compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// The label is present and its value is one of the values (`=`, `==`, `in`).
    In,
    /// The label is absent or its value is none of the values (`!=`, `notin`).
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label is present and, as an integer, greater than the value (`>`).
    GreaterThan,
    /// The label is present and, as an integer, less than the value (`<`).
    LessThan,
}

/// One requirement on one label key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub operator: Operator,
    /// The values compared against (empty for `Exists`/`DoesNotExist`; one
    /// integer for `GreaterThan`/`LessThan`).
    pub values: Vec<String>,
}

/// A label selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// Matches no object: what an absent `LabelSelector` means.
    Nothing,
    /// Matches objects meeting every requirement; no requirement matches all.
    All(Vec<Requirement>),
}

/// A selector that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The string form is malformed.
    #[error("invalid label selector {input:?} at byte {position}: {reason}")]
    Syntax {
        /// The whole selector string.
        input: String,
        /// Byte offset of the problem.
        position: usize,
        /// What was wrong.
        reason: String,
    },
    /// A `matchExpressions` operator other than In, NotIn, Exists, DoesNotExist.
    #[error("matchExpressions[{index}]: unknown operator {operator:?}")]
    UnknownOperator {
        /// Index in `matchExpressions`.
        index: usize,
        /// The operator as written.
        operator: String,
    },
    /// A requirement whose values do not fit its operator.
    #[error("requirement on {key:?}: {reason}")]
    Values {
        /// The label key.
        key: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A key that is not a valid label key.
    #[error("invalid label key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A value that is not a valid label value.
    #[error("invalid label value {value:?} for key {key:?}: {reason}")]
    InvalidValue {
        /// The label key.
        key: String,
        /// The value.
        value: String,
        /// What was wrong.
        reason: &'static str,
    },
}

impl Requirement {
    /// Builds a requirement, checking the key, the values and their count
    /// against the operator.
    ///
    /// # Errors
    /// An invalid key or value, or a value count the operator does not allow.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        validate_key(&key)?;
        let count_ok = match operator {
            Operator::In | Operator::NotIn => !values.is_empty(),
            Operator::Exists | Operator::DoesNotExist => values.is_empty(),
            Operator::GreaterThan | Operator::LessThan => values.len() == 1,
        };
        if !count_ok {
            let reason = match operator {
                Operator::In | Operator::NotIn => "In and NotIn need at least one value",
                Operator::Exists | Operator::DoesNotExist => {
                    "Exists and DoesNotExist take no values"
                }
                Operator::GreaterThan | Operator::LessThan => "> and < take exactly one value",
            };
            return Err(SelectorError::Values { key, reason });
        }
        if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            if values.iter().any(|v| v.parse::<i64>().is_err()) {
                return Err(SelectorError::Values {
                    key,
                    reason: "> and < need an integer value",
                });
            }
        } else {
            for value in &values {
                validate_value(&key, value)?;
            }
        }
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    /// True when `labels` meet this requirement.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > bound
                } else {
                    have < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match (self.operator, self.values.as_slice()) {
            (Operator::In, [one]) => write!(f, "{key}={one}"),
            (Operator::NotIn, [one]) => write!(f, "{key}!={one}"),
            (Operator::In, many) => write!(f, "{key} in ({})", many.join(",")),
            (Operator::NotIn, many) => write!(f, "{key} notin ({})", many.join(",")),
            (Operator::Exists, _) => write!(f, "{key}"),
            (Operator::DoesNotExist, _) => write!(f, "!{key}"),
            (Operator::GreaterThan, values) => write!(f, "{key}>{}", values.join(",")),
            (Operator::LessThan, values) => write!(f, "{key}<{}", values.join(",")),
        }
    }
}

impl Selector {
    /// The selector that matches every object.
    #[must_use]
    pub fn everything() -> Self {
        Selector::All(Vec::new())
    }

    /// True when `labels` are selected.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::All(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    /// The selector of a `LabelSelector` (`None` selects nothing, an empty
    /// one selects everything), as `metav1.LabelSelectorAsSelector` does.
    ///
    /// # Errors
    /// An unknown operator, or values that do not fit it, or invalid labels.
    pub fn from_label_selector(selector: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(selector) = selector else {
            return Ok(Selector::Nothing);
        };
        let mut reqs = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            reqs.push(Requirement::new(
                key.clone(),
                Operator::In,
                vec![value.clone()],
            )?);
        }
        for (index, expr) in selector.match_expressions.iter().flatten().enumerate() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::UnknownOperator {
                        index,
                        operator: other.to_owned(),
                    });
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            reqs.push(Requirement::new(expr.key.clone(), operator, values)?);
        }
        Ok(Selector::All(reqs))
    }

    /// The selector of a label set (`matchLabels` only; `None` selects
    /// nothing), as `metav1.SetAsLabelSelector` then `LabelSelectorAsSelector`.
    ///
    /// # Errors
    /// Invalid label keys or values.
    pub fn from_set(set: Option<&BTreeMap<String, String>>) -> Result<Self, SelectorError> {
        let Some(set) = set else {
            return Ok(Selector::Nothing);
        };
        let reqs = set
            .iter()
            .map(|(k, v)| Requirement::new(k.clone(), Operator::In, vec![v.clone()]))
            .collect::<Result<_, _>>()?;
        Ok(Selector::All(reqs))
    }

    /// Parses the string form (`a=b,c!=d,e in (x,y),!f,g`, also `==`,
    /// `notin`, `>` and `<`); the empty string selects everything.
    ///
    /// # Errors
    /// Malformed syntax or invalid keys/values, with the byte offset.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        Parser::new(input).selector()
    }

    /// The string form, for `?labelSelector=`; `None` for [`Selector::Nothing`],
    /// which has no string form.
    #[must_use]
    pub fn to_query(&self) -> Option<String> {
        match self {
            Selector::Nothing => None,
            Selector::All(reqs) => Some(
                reqs.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// True for characters that end an identifier in the string form.
fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '(' | ')' | '=' | '!' | '<' | '>')
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
    In,
    NotIn,
    End,
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser { input, pos: 0 }
    }

    fn error(&self, position: usize, reason: impl Into<String>) -> SelectorError {
        SelectorError::Syntax {
            input: self.input.to_owned(),
            position,
            reason: reason.into(),
        }
    }

    fn skip_space(&mut self) {
        let rest = &self.input[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The next token and where it starts, without consuming it.
    fn peek(&mut self) -> (Token, usize, usize) {
        self.skip_space();
        let start = self.pos;
        let rest = &self.input[start..];
        let Some(c) = rest.chars().next() else {
            return (Token::End, start, start);
        };
        let two = rest.get(..2);
        let (tok, len) = match (c, two) {
            (_, Some("==")) => (Token::DoubleEq, 2),
            (_, Some("!=")) => (Token::NotEq, 2),
            ('=', _) => (Token::Eq, 1),
            ('!', _) => (Token::Bang, 1),
            ('>', _) => (Token::Gt, 1),
            ('<', _) => (Token::Lt, 1),
            (',', _) => (Token::Comma, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            _ => {
                let len = rest.find(is_special).unwrap_or(rest.len());
                let word = &rest[..len];
                let tok = match word {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word.to_owned()),
                };
                (tok, len)
            }
        };
        (tok, start, start + len)
    }

    fn next(&mut self) -> (Token, usize) {
        let (tok, start, end) = self.peek();
        self.pos = end;
        (tok, start)
    }

    fn selector(&mut self) -> Result<Selector, SelectorError> {
        let mut reqs = Vec::new();
        if self.peek().0 == Token::End {
            return Ok(Selector::All(reqs));
        }
        loop {
            reqs.push(self.requirement()?);
            match self.next() {
                (Token::End, _) => return Ok(Selector::All(reqs)),
                (Token::Comma, _) => {}
                (tok, at) => {
                    return Err(self.error(at, format!("expected ',' or end, found {tok:?}")));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (tok, at) = self.next();
        let (negated, key, key_at) = match tok {
            Token::Bang => match self.next() {
                (Token::Ident(key), at) => (true, key, at),
                (tok, at) => return Err(self.error(at, format!("expected a key, found {tok:?}"))),
            },
            Token::Ident(key) => (false, key, at),
            // Keywords are ordinary keys where a key is expected.
            Token::In => (false, "in".to_owned(), at),
            Token::NotIn => (false, "notin".to_owned(), at),
            tok => return Err(self.error(at, format!("expected a key, found {tok:?}"))),
        };
        let input = self.input;
        let wrap = |e: SelectorError| match e {
            SelectorError::Syntax { .. } => e,
            other => SelectorError::Syntax {
                input: input.to_owned(),
                position: key_at,
                reason: other.to_string(),
            },
        };
        if negated {
            return Requirement::new(key, Operator::DoesNotExist, Vec::new()).map_err(wrap);
        }
        let (op_tok, _, _) = self.peek();
        let operator = match op_tok {
            Token::End | Token::Comma => {
                return Requirement::new(key, Operator::Exists, Vec::new()).map_err(wrap);
            }
            Token::Eq | Token::DoubleEq | Token::In => Operator::In,
            Token::NotEq | Token::NotIn => Operator::NotIn,
            Token::Gt => Operator::GreaterThan,
            Token::Lt => Operator::LessThan,
            tok => {
                let (_, at, _) = self.peek();
                return Err(self.error(at, format!("expected an operator, found {tok:?}")));
            }
        };
        let (op_tok, _) = self.next();
        let values = if matches!(op_tok, Token::In | Token::NotIn) {
            self.value_list()?
        } else {
            vec![self.single_value()?]
        };
        Requirement::new(key, operator, values).map_err(wrap)
    }

    /// One value after `=`, `!=`, `>`, `<`; may be empty (`a=`).
    fn single_value(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            (Token::Ident(v), _, end) => {
                self.pos = end;
                Ok(v)
            }
            // `in`/`notin` are ordinary values after an operator.
            (Token::In, _, end) => {
                self.pos = end;
                Ok("in".to_owned())
            }
            (Token::NotIn, _, end) => {
                self.pos = end;
                Ok("notin".to_owned())
            }
            (Token::End | Token::Comma, _, _) => Ok(String::new()),
            (tok, at, _) => Err(self.error(at, format!("expected a value, found {tok:?}"))),
        }
    }

    /// `( v1, v2, ... )`; values may be empty.
    fn value_list(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            (Token::Open, _) => {}
            (tok, at) => return Err(self.error(at, format!("expected '(', found {tok:?}"))),
        }
        let mut values = Vec::new();
        if let (Token::Close, _, end) = self.peek() {
            // `()`: no values, which the requirement then rejects.
            self.pos = end;
            return Ok(values);
        }
        loop {
            let value = match self.peek() {
                (Token::Ident(v), _, end) => {
                    self.pos = end;
                    v
                }
                (Token::In, _, end) => {
                    self.pos = end;
                    "in".to_owned()
                }
                (Token::NotIn, _, end) => {
                    self.pos = end;
                    "notin".to_owned()
                }
                _ => String::new(),
            };
            values.push(value);
            match self.next() {
                (Token::Comma, _) => {}
                (Token::Close, _) => return Ok(values),
                (tok, at) => {
                    return Err(self.error(at, format!("expected ',' or ')', found {tok:?}")));
                }
            }
        }
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Checks a label name part or value: at most 63 characters, alphanumeric at
/// both ends, `-`, `_`, `.` allowed inside.
fn name_problem(s: &str) -> Option<&'static str> {
    if s.len() > 63 {
        return Some("longer than 63 characters");
    }
    let ok_ends = s.chars().next().is_some_and(is_alnum) && s.chars().last().is_some_and(is_alnum);
    let ok_inner = s
        .chars()
        .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'));
    if !ok_ends || !ok_inner {
        return Some("must be alphanumeric at both ends, with only '-', '_' or '.' inside");
    }
    None
}

/// Checks a label key: `[prefix/]name`, prefix a DNS subdomain.
fn validate_key(key: &str) -> Result<(), SelectorError> {
    let bad = |reason| SelectorError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.is_empty() {
        return Err(bad("name part is empty"));
    }
    if let Some(reason) = name_problem(name) {
        return Err(bad(reason));
    }
    if let Some(prefix) = prefix {
        let subdomain_ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !subdomain_ok {
            return Err(bad("prefix must be a lowercase DNS subdomain"));
        }
    }
    Ok(())
}

/// Checks a label value (may be empty).
fn validate_value(key: &str, value: &str) -> Result<(), SelectorError> {
    if value.is_empty() {
        return Ok(());
    }
    match name_problem(value) {
        None => Ok(()),
        Some(reason) => Err(SelectorError::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;
    use rstest::rstest;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[rstest]
    #[case("", &[], true)]
    #[case("", &[("a", "b")], true)]
    #[case("a=b", &[("a", "b")], true)]
    #[case("a==b", &[("a", "b")], true)]
    #[case("a=b", &[("a", "c")], false)]
    #[case("a=b", &[], false)]
    #[case("a!=b", &[], true)]
    #[case("a!=b", &[("a", "b")], false)]
    #[case("a!=b", &[("a", "c")], true)]
    #[case("e in (x,y)", &[("e", "y")], true)]
    #[case("e in (x, y)", &[("e", "z")], false)]
    #[case("e in (x,y)", &[], false)]
    #[case("e notin (x,y)", &[], true)]
    #[case("e notin (x,y)", &[("e", "x")], false)]
    #[case("!f", &[], true)]
    #[case("!f", &[("f", "")], false)]
    #[case("f", &[("f", "")], true)]
    #[case("f", &[("g", "")], false)]
    #[case("a=b,c!=d,e in (x,y),!f", &[("a", "b"), ("e", "x")], true)]
    #[case("a=b,c!=d,e in (x,y),!f", &[("a", "b"), ("e", "x"), ("c", "d")], false)]
    #[case("a=b,c!=d,e in (x,y),!f", &[("a", "b"), ("e", "x"), ("f", "1")], false)]
    #[case("  a = b ,  c  ", &[("a", "b"), ("c", "1")], true)]
    #[case("a=", &[("a", "")], true)]
    #[case("a in (,x)", &[("a", "")], true)]
    #[case("n>5", &[("n", "6")], true)]
    #[case("n>5", &[("n", "5")], false)]
    #[case("n<5", &[("n", "-1")], true)]
    #[case("n<5", &[("n", "x")], false)]
    #[case("n<5", &[], false)]
    #[case("app.kubernetes.io/name=web", &[("app.kubernetes.io/name", "web")], true)]
    fn string_selectors_match_like_kubernetes(
        #[case] input: &str,
        #[case] pairs: &[(&str, &str)],
        #[case] expected: bool,
    ) {
        let sel = Selector::parse(input).unwrap();
        assert_eq!(
            sel.matches(&labels(pairs)),
            expected,
            "{input} vs {pairs:?}"
        );
    }

    #[rstest]
    #[case("a=b,", 4)]
    #[case(",a", 0)]
    #[case("a b", 2)]
    #[case("a in x", 5)]
    #[case("a in (x", 7)]
    #[case("a in ()", 0)]
    #[case("!a=b", 2)]
    #[case("a>b", 0)]
    #[case("-a=b", 0)]
    #[case("a=b c", 4)]
    #[case("Foo/bar=x", 0)]
    #[case("a=-x", 0)]
    fn malformed_string_selectors_are_errors(#[case] input: &str, #[case] position: usize) {
        match Selector::parse(input) {
            Err(SelectorError::Syntax { position: p, .. }) => {
                assert_eq!(p, position, "{input}");
            }
            other => panic!("{input}: expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn error_message_names_the_input_and_position() {
        let err = Selector::parse("a in (x").unwrap_err().to_string();
        assert!(
            err.contains(r#""a in (x""#) && err.contains("byte 7"),
            "{err}"
        );
    }

    fn expr(key: &str, op: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: op.to_owned(),
            values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn label_selector_object_form() {
        let ls = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                expr("tier", "In", Some(&["a", "b"])),
                expr("canary", "DoesNotExist", None),
                expr("zone", "NotIn", Some(&["x"])),
                expr("team", "Exists", Some(&[])),
            ]),
        };
        let sel = Selector::from_label_selector(Some(&ls)).unwrap();
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "a"), ("team", "t")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "c"), ("team", "t")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("tier", "a"),
            ("team", "t"),
            ("canary", "1")
        ])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("tier", "a"),
            ("team", "t"),
            ("zone", "x")
        ])));
        assert_eq!(
            sel.to_query().unwrap(),
            "app=web,tier in (a,b),!canary,zone!=x,team"
        );
    }

    #[test]
    fn absent_and_empty_label_selectors() {
        let any = labels(&[("a", "b")]);
        assert!(!Selector::from_label_selector(None).unwrap().matches(&any));
        assert!(
            Selector::from_label_selector(Some(&LabelSelector::default()))
                .unwrap()
                .matches(&any)
        );
        assert!(!Selector::from_set(None).unwrap().matches(&any));
        assert!(
            Selector::from_set(Some(&BTreeMap::new()))
                .unwrap()
                .matches(&any)
        );
        assert_eq!(Selector::Nothing.to_query(), None);
    }

    #[rstest]
    #[case(expr("a", "Gt", Some(&["1"])), "unknown operator \"Gt\"")]
    #[case(expr("a", "In", Some(&[])), "need at least one value")]
    #[case(expr("a", "In", None), "need at least one value")]
    #[case(expr("a", "Exists", Some(&["x"])), "take no values")]
    #[case(expr("a b", "Exists", None), "invalid label key")]
    #[case(expr("a", "In", Some(&["x y"])), "invalid label value")]
    fn bad_label_selector_objects_are_errors(
        #[case] e: LabelSelectorRequirement,
        #[case] message: &str,
    ) {
        let ls = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![e]),
        };
        let err = Selector::from_label_selector(Some(&ls)).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }

    fn arb_requirement() -> impl Strategy<Value = Requirement> {
        let key = "[a-z]([a-z0-9.-]{0,5}[a-z0-9])?";
        let value = "[a-z0-9]{1,4}";
        (
            key,
            0..6_usize,
            proptest::collection::vec(value, 1..4),
            -50_i64..50,
        )
            .prop_map(|(key, op, values, n)| {
                let (operator, values) = match op {
                    0 => (Operator::In, values),
                    1 => (Operator::NotIn, values),
                    2 => (Operator::Exists, vec![]),
                    3 => (Operator::DoesNotExist, vec![]),
                    4 => (Operator::GreaterThan, vec![n.to_string()]),
                    _ => (Operator::LessThan, vec![n.to_string()]),
                };
                Requirement::new(key, operator, values).unwrap()
            })
    }

    proptest! {
        #[test]
        fn string_form_round_trips(reqs in proptest::collection::vec(arb_requirement(), 0..5)) {
            let sel = Selector::All(reqs);
            let text = sel.to_query().unwrap();
            prop_assert_eq!(Selector::parse(&text).unwrap(), sel);
        }
    }
}
