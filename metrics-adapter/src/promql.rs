//! PromQL lexical helpers: string-literal and regex escaping, and name checks.
//!
//! Every value that reaches a query from outside the config file (object
//! names, namespaces, selector values) goes through [`quote`] or
//! [`escape_in`]; regex positions additionally go through [`regex_escape`].

use std::fmt::Write as _;

/// The quote character a PromQL string literal is delimited by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quote {
    /// `"…"`, with Go escapes.
    Double,
    /// `'…'`, with Go escapes.
    Single,
    /// `` `…` ``, raw: no escapes at all.
    Backtick,
}

impl Quote {
    /// The delimiter character.
    #[must_use]
    pub fn char(self) -> char {
        match self {
            Quote::Double => '"',
            Quote::Single => '\'',
            Quote::Backtick => '`',
        }
    }
}

/// A value that cannot be placed inside a raw (backtick) string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("value {value:?} contains a backtick and cannot be placed in a raw PromQL string")]
pub struct RawStringError {
    /// The offending value.
    pub value: String,
}

/// Escapes `value` for the inside of a string literal delimited by `quote`.
///
/// # Errors
/// A backtick inside a raw string, which PromQL cannot express.
pub fn escape_in(value: &str, quote: Quote) -> Result<String, RawStringError> {
    if quote == Quote::Backtick {
        if value.contains('`') {
            return Err(RawStringError {
                value: value.to_owned(),
            });
        }
        return Ok(value.to_owned());
    }
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote.char() => {
                out.push('\\');
                out.push(c);
            }
            // Other control characters would end or corrupt the literal.
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A complete double-quoted PromQL string literal holding exactly `value`.
#[must_use]
pub fn quote(value: &str) -> String {
    // Double quotes never fail.
    let inner = escape_in(value, Quote::Double).unwrap_or_default();
    format!("\"{inner}\"")
}

/// Escapes RE2 metacharacters so `value` matches only itself (Go's
/// `regexp.QuoteMeta`).
#[must_use]
pub fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(
            c,
            '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An alternation regex matching exactly the given values.
#[must_use]
pub fn regex_alternation<S: AsRef<str>>(values: &[S]) -> String {
    values
        .iter()
        .map(|v| regex_escape(v.as_ref()))
        .collect::<Vec<_>>()
        .join("|")
}

/// True for a classic Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
#[must_use]
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// True for a classic Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
#[must_use]
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
pub(crate) mod literal {
    //! A small PromQL string-literal reader for tests: it follows the
    //! Prometheus lexer's rules, so a value that reads back intact proves the
    //! escaping kept it inside its literal.

    /// Reads the literal starting at byte `start` (which must be a quote);
    /// returns the decoded value and the byte offset just past the literal.
    pub fn read(input: &str, start: usize) -> Result<(String, usize), String> {
        let mut chars = input[start..].char_indices();
        let (_, open) = chars.next().ok_or("no literal")?;
        if !matches!(open, '"' | '\'' | '`') {
            return Err(format!("{open:?} does not open a literal"));
        }
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            if c == open {
                return Ok((out, start + i + c.len_utf8()));
            }
            if open == '`' {
                out.push(c);
                continue;
            }
            if c == '\n' {
                return Err("newline in string".into());
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let (_, e) = chars.next().ok_or("unterminated escape")?;
            match e {
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\x0b'),
                '\\' => out.push('\\'),
                'x' => {
                    let hex: String = (0..2)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect();
                    let v = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                    out.push(char::from_u32(v).ok_or("bad \\x")?);
                }
                e if e == open => out.push(e),
                e => return Err(format!("unknown escape \\{e}")),
            }
        }
        Err("unterminated string".into())
    }

    /// Every literal in `query` outside comments, in order.
    pub fn all(query: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut i = 0;
        let bytes = query.as_bytes();
        while i < bytes.len() {
            match bytes[i] {
                b'"' | b'\'' | b'`' => {
                    let (v, next) = read(query, i)?;
                    out.push(v);
                    i = next;
                }
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                _ => i += 1,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case("plain", "\"plain\"")]
    #[case("a\"b", "\"a\\\"b\"")]
    #[case("a\\b", "\"a\\\\b\"")]
    #[case("a\nb", "\"a\\nb\"")]
    #[case("\"} or vector(1) #", "\"\\\"} or vector(1) #\"")]
    #[case("it's", "\"it's\"")]
    #[case("\u{1}", "\"\\x01\"")]
    fn quote_escapes(#[case] value: &str, #[case] want: &str) {
        assert_eq!(quote(value), want);
    }

    #[rstest]
    #[case("a.b", "a\\.b")]
    #[case("a|b", "a\\|b")]
    #[case(".*", "\\.\\*")]
    #[case("(x)[y]{2}^$+?\\", "\\(x\\)\\[y\\]\\{2\\}\\^\\$\\+\\?\\\\")]
    #[case("pod-1", "pod-1")]
    fn regex_escape_quotes_meta(#[case] value: &str, #[case] want: &str) {
        assert_eq!(regex_escape(value), want);
    }

    #[rstest]
    #[case("namespace", true)]
    #[case("_x9", true)]
    #[case("9x", false)]
    #[case("a-b", false)]
    #[case("a:b", false)]
    #[case("", false)]
    #[case("app.kubernetes.io/name", false)]
    fn label_names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(is_label_name(name), ok);
    }

    #[rstest]
    #[case("http_requests_total", true)]
    #[case("job:rate5m", true)]
    #[case("a b", false)]
    #[case("x{y}", false)]
    fn metric_names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(is_metric_name(name), ok);
    }

    #[test]
    fn backtick_rejects_backticks() {
        assert!(escape_in("a`b", Quote::Backtick).is_err());
        assert_eq!(escape_in("a\\b", Quote::Backtick).as_deref(), Ok("a\\b"));
    }

    proptest! {
        #[test]
        fn quoted_values_read_back(value in any::<String>()) {
            let q = quote(&value);
            let (read, end) = literal::read(&q, 0).map_err(TestCaseError::fail)?;
            prop_assert_eq!(read, value);
            prop_assert_eq!(end, q.len());
        }

        #[test]
        fn single_quoted_values_read_back(value in any::<String>()) {
            let q = format!("'{}'", escape_in(&value, Quote::Single).map_err(|e| TestCaseError::fail(e.to_string()))?);
            let (read, end) = literal::read(&q, 0).map_err(TestCaseError::fail)?;
            prop_assert_eq!(read, value);
            prop_assert_eq!(end, q.len());
        }

        #[test]
        fn escaped_regex_matches_only_itself(value in "\\PC{0,12}", other in "\\PC{0,12}") {
            let re = regex::Regex::new(&format!("^(?:{})$", regex_escape(&value))).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(re.is_match(&value));
            prop_assert_eq!(re.is_match(&other), other == value);
        }
    }
}
