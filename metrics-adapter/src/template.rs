//! prometheus-adapter's `<< >>` template language, the subset its configs use.
//!
//! Supported: field actions (`<<.Series>>`, `<<.LabelMatchers>>`,
//! `<<.GroupBy>>`, `<<.GroupBySlice>>`, and `<<.Group>>`/`<<.Resource>>` in
//! resource templates), `<<index .LabelValuesByName "label">>`,
//! `<<join "," .GroupBySlice>>` (also `<<.GroupBySlice | join ",">>`),
//! `<<range $i, $v := .GroupBySlice>>…<<end>>` with `<<if $i>>…<<else>>…<<end>>`,
//! variables, and `<<-`/`->>` whitespace trimming. Anything else is a parse
//! error, reported when the config loads.
//!
//! Escaping is contextual: the parser tracks PromQL's lexical state through
//! the literal text, so it knows, for every action, whether it sits inside a
//! string literal (and which quote) and whether that literal is a regex
//! (`=~`/`!~`). Values are escaped for exactly that position when rendered.

use crate::promql::{self, Quote};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The data fields a template may refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `.Series`: the Prometheus series (metric) name.
    Series,
    /// `.LabelMatchers`: comma-separated, escaped label matchers.
    LabelMatchers,
    /// `.LabelValuesByName`: label → values joined by `|`; only through `index`.
    LabelValuesByName,
    /// `.GroupBy`: comma-separated group-by labels.
    GroupBy,
    /// `.GroupBySlice`: the group-by labels as a list.
    GroupBySlice,
    /// `.Group`: the API group, dots and dashes replaced by `_` (resource templates).
    Group,
    /// `.Resource`: the singular resource name (resource templates).
    Resource,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "Series" => Field::Series,
            "LabelMatchers" => Field::LabelMatchers,
            "LabelValuesByName" => Field::LabelValuesByName,
            "GroupBy" => Field::GroupBy,
            "GroupBySlice" => Field::GroupBySlice,
            "Group" => Field::Group,
            "Resource" => Field::Resource,
            _ => return None,
        })
    }
}

/// Which fields a template may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `metricsQuery`, `containerQuery`, `nodeQuery`.
    Query,
    /// `resources.template`: `.Group` and `.Resource` only, no quoting.
    ResourceLabel,
}

/// Where in PromQL an action's output lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Position {
    /// The enclosing string literal, if any.
    pub quote: Option<Quote>,
    /// True when that literal is the right side of `=~` or `!~`.
    pub regex: bool,
}

/// A template that could not be parsed or uses something unsupported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template at byte {offset}: {reason}")]
pub struct ParseError {
    /// Byte offset in the template source.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

/// A template that could not be rendered for a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The series name is not a plain metric name and sits outside a string.
    #[error("series name {0:?} is not a valid metric name")]
    InvalidSeries(String),
    /// A value contains a backtick and sits in a raw string.
    #[error(transparent)]
    RawString(#[from] promql::RawStringError),
    /// Every object was requested, but the template needs their names
    /// outside a regex.
    #[error("label {0:?} stands for every object here, which only a regex position can express")]
    AnyOutsideRegex(String),
    /// The template produced nothing.
    #[error("the template rendered an empty query")]
    Empty,
}

/// The values of one label in `.LabelValuesByName`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelValues {
    /// These exact values (joined by `|` when rendered).
    Exact(Vec<String>),
    /// Any non-empty value: every object of the resource.
    Any,
}

/// The data a query template renders with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryArgs {
    /// `.Series`.
    pub series: String,
    /// `.LabelMatchers`, already escaped.
    pub label_matchers: String,
    /// `.LabelValuesByName`.
    pub values_by_name: BTreeMap<String, LabelValues>,
    /// `.GroupBySlice` (and `.GroupBy` joined by `,`); validated label names.
    pub group_by: Vec<String>,
}

/// The data a resource-label template renders with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceArgs {
    /// `.Group`.
    pub group: String,
    /// `.Resource`.
    pub resource: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Field(Field),
    Index(String),
    Join { sep: String },
    Var(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Text(String),
    Action {
        expr: Expr,
        pos: Position,
        offset: usize,
    },
    Range {
        offset: usize,
        index: Option<String>,
        elem: String,
        body: Vec<Node>,
    },
    If {
        offset: usize,
        var: String,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

/// A parsed template, ready to render many times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

impl Template {
    /// Parses `source` as a template of `kind`.
    ///
    /// # Errors
    /// Syntax errors, unknown fields or functions, constructs outside the
    /// supported subset, and fields used where they cannot be escaped.
    pub fn parse(source: &str, kind: Kind) -> Result<Self, ParseError> {
        let tokens = tokenize(source)?;
        let mut parser = TreeParser {
            tokens,
            at: 0,
            kind,
            vars: Vec::new(),
        };
        let (mut nodes, end) = parser.nodes()?;
        if let Some((offset, word)) = end {
            return Err(err(
                offset,
                format!("unexpected {{{{{word}}}}} without range/if"),
            ));
        }
        let mut lex = Lexer::default();
        annotate(&mut nodes, &mut lex, kind)?;
        Ok(Template {
            source: source.to_owned(),
            nodes,
        })
    }

    /// The template source as written.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template mentions `field` anywhere.
    #[must_use]
    pub fn uses(&self, field: Field) -> bool {
        fn walk(nodes: &[Node], field: Field) -> bool {
            nodes.iter().any(|n| match n {
                Node::Action { expr, .. } => match expr {
                    Expr::Field(f) => *f == field,
                    Expr::Index(_) => field == Field::LabelValuesByName,
                    Expr::Join { .. } => field == Field::GroupBySlice,
                    Expr::Var(_) => false,
                },
                Node::Range { body, .. } => field == Field::GroupBySlice || walk(body, field),
                Node::If {
                    then, otherwise, ..
                } => walk(then, field) || walk(otherwise, field),
                Node::Text(_) => false,
            })
        }
        walk(&self.nodes, field)
    }

    /// Renders a query template.
    ///
    /// # Errors
    /// Values that cannot be placed safely (see [`RenderError`]).
    pub fn render_query(&self, args: &QueryArgs) -> Result<String, RenderError> {
        let mut out = String::new();
        let mut scope = Vec::new();
        render(&self.nodes, &Data::Query(args), &mut scope, &mut out)?;
        if out.trim().is_empty() {
            return Err(RenderError::Empty);
        }
        Ok(out)
    }

    /// Renders a resource-label template.
    ///
    /// # Errors
    /// Never for valid templates; empty output is [`RenderError::Empty`].
    pub fn render_resource(&self, args: &ResourceArgs) -> Result<String, RenderError> {
        let mut out = String::new();
        let mut scope = Vec::new();
        render(&self.nodes, &Data::Resource(args), &mut scope, &mut out)?;
        if out.is_empty() {
            return Err(RenderError::Empty);
        }
        Ok(out)
    }

    /// The literal text and field placeholders in order (resource templates
    /// only use text and fields), for turning the template into a matcher.
    pub(crate) fn resource_parts(&self) -> Vec<Result<&str, Field>> {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(Ok(t.as_str())),
                Node::Action {
                    expr: Expr::Field(f),
                    ..
                } => Some(Err(*f)),
                _ => None,
            })
            .collect()
    }
}

fn err(offset: usize, reason: impl Into<String>) -> ParseError {
    ParseError {
        offset,
        reason: reason.into(),
    }
}

#[derive(Debug)]
enum Tok {
    Text(String),
    Action { offset: usize, body: String },
}

/// Splits the source into text and `<< >>` actions, applying trim markers.
fn tokenize(source: &str) -> Result<Vec<Tok>, ParseError> {
    let mut toks = Vec::new();
    let mut rest = source;
    let mut offset = 0;
    let mut trim_next = false;
    while let Some(open) = rest.find("<<") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\n") || after.starts_with("-\t");
        if trim_left {
            text = text.trim_end();
        }
        if !text.is_empty() {
            toks.push(Tok::Text(text.to_owned()));
        }
        let body_start = open + 2 + usize::from(trim_left);
        let Some(close) = rest[body_start..].find(">>") else {
            return Err(err(offset + open, "unclosed action: no matching >>"));
        };
        let mut body = &rest[body_start..body_start + close];
        trim_next = false;
        if body.ends_with(" -") || body.ends_with("\n-") || body.ends_with("\t-") {
            body = &body[..body.len() - 1];
            trim_next = true;
        }
        toks.push(Tok::Action {
            offset: offset + open,
            body: body.trim().to_owned(),
        });
        let consumed = body_start + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    let mut text = rest;
    if trim_next {
        text = text.trim_start();
    }
    if !text.is_empty() {
        toks.push(Tok::Text(text.to_owned()));
    }
    Ok(toks)
}

/// Splits an action body into words, keeping quoted strings whole.
fn words(body: &str, offset: usize) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' || c == '`' {
            chars.next();
            let mut s = String::new();
            let mut closed = false;
            while let Some(d) = chars.next() {
                if d == c {
                    closed = true;
                    break;
                }
                if d == '\\' && c == '"' {
                    match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(e @ ('\\' | '"')) => s.push(e),
                        other => {
                            return Err(err(
                                offset,
                                format!("unsupported escape \\{other:?} in string argument"),
                            ));
                        }
                    }
                    continue;
                }
                s.push(d);
            }
            if !closed {
                return Err(err(offset, "unterminated string argument"));
            }
            out.push(format!("\"{s}"));
            continue;
        }
        if c == '|' || c == ',' {
            chars.next();
            out.push(c.to_string());
            continue;
        }
        let mut w = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_whitespace() || d == '|' || d == ',' || d == '"' {
                break;
            }
            w.push(d);
            chars.next();
        }
        out.push(w);
    }
    Ok(out)
}

struct TreeParser {
    tokens: Vec<Tok>,
    at: usize,
    kind: Kind,
    vars: Vec<String>,
}

impl TreeParser {
    /// Parses nodes until `end`/`else` (returned) or the end of input.
    #[allow(clippy::type_complexity)]
    fn nodes(&mut self) -> Result<(Vec<Node>, Option<(usize, String)>), ParseError> {
        let mut nodes = Vec::new();
        while self.at < self.tokens.len() {
            let tok = &self.tokens[self.at];
            self.at += 1;
            match tok {
                Tok::Text(t) => nodes.push(Node::Text(t.clone())),
                Tok::Action { offset, body } => {
                    let offset = *offset;
                    let ws = words(body, offset)?;
                    match ws.first().map(String::as_str) {
                        Some("end") | Some("else") if ws.len() == 1 => {
                            return Ok((nodes, Some((offset, ws[0].clone()))));
                        }
                        Some("range") => nodes.push(self.range(&ws, offset)?),
                        Some("if") => nodes.push(self.cond(&ws, offset)?),
                        Some(w) if w.starts_with("/*") => {
                            return Err(err(offset, "template comments are not supported"));
                        }
                        Some(
                            w @ ("with" | "define" | "template" | "block" | "break" | "continue"
                            | "else" | "end"),
                        ) => {
                            return Err(err(offset, format!("{w:?} is not supported")));
                        }
                        Some(_) => nodes.push(Node::Action {
                            expr: self.expr(&ws, offset)?,
                            pos: Position::default(),
                            offset,
                        }),
                        None => return Err(err(offset, "empty action")),
                    }
                }
            }
        }
        Ok((nodes, None))
    }

    fn range(&mut self, ws: &[String], offset: usize) -> Result<Node, ParseError> {
        if self.kind != Kind::Query {
            return Err(err(offset, "range is not allowed in a resource template"));
        }
        // range $v := .GroupBySlice | range $i, $v := .GroupBySlice
        let (index, elem, over) = match ws {
            [_, v, assign, over] if assign == ":=" => (None, v.clone(), over),
            [_, i, comma, v, assign, over] if comma == "," && assign == ":=" => {
                (Some(i.clone()), v.clone(), over)
            }
            _ => {
                return Err(err(
                    offset,
                    "only `range $v := .GroupBySlice` and `range $i, $v := .GroupBySlice` are supported",
                ));
            }
        };
        if over != ".GroupBySlice" {
            return Err(err(
                offset,
                format!("range over {over} is not supported, only .GroupBySlice"),
            ));
        }
        for v in index.iter().chain(std::iter::once(&elem)) {
            if !is_var(v) {
                return Err(err(offset, format!("{v:?} is not a variable")));
            }
        }
        let pushed = 1 + usize::from(index.is_some());
        self.vars.extend(index.iter().cloned());
        self.vars.push(elem.clone());
        let (body, end) = self.nodes()?;
        self.vars.truncate(self.vars.len() - pushed);
        match end {
            Some((_, w)) if w == "end" => Ok(Node::Range {
                offset,
                index,
                elem,
                body,
            }),
            Some((o, w)) => Err(err(o, format!("{{{{{w}}}}} inside range is not supported"))),
            None => Err(err(offset, "range without end")),
        }
    }

    fn cond(&mut self, ws: &[String], offset: usize) -> Result<Node, ParseError> {
        if self.kind != Kind::Query {
            return Err(err(offset, "if is not allowed in a resource template"));
        }
        let var = match ws {
            [_, v] if is_var(v) => v.clone(),
            _ => return Err(err(offset, "only `if $variable` is supported")),
        };
        if !self.vars.contains(&var) {
            return Err(err(offset, format!("undefined variable {var}")));
        }
        let (then, end) = self.nodes()?;
        match end {
            Some((_, w)) if w == "end" => Ok(Node::If {
                offset,
                var,
                then,
                otherwise: Vec::new(),
            }),
            Some((_, w)) if w == "else" => {
                let (otherwise, end) = self.nodes()?;
                match end {
                    Some((_, w)) if w == "end" => Ok(Node::If {
                        offset,
                        var,
                        then,
                        otherwise,
                    }),
                    _ => Err(err(offset, "if/else without end")),
                }
            }
            _ => Err(err(offset, "if without end")),
        }
    }

    fn field(&self, w: &str, offset: usize) -> Result<Field, ParseError> {
        let name = w.strip_prefix('.').ok_or_else(|| {
            err(
                offset,
                format!("{w:?} is not a field, variable or supported function"),
            )
        })?;
        let field =
            Field::parse(name).ok_or_else(|| err(offset, format!("unknown field .{name}")))?;
        let allowed = match self.kind {
            Kind::Query => !matches!(field, Field::Group | Field::Resource),
            Kind::ResourceLabel => matches!(field, Field::Group | Field::Resource),
        };
        if !allowed {
            return Err(err(
                offset,
                format!(".{name} is not available in this template"),
            ));
        }
        Ok(field)
    }

    fn expr(&self, ws: &[String], offset: usize) -> Result<Expr, ParseError> {
        let strings = |w: &String| w.strip_prefix('"').map(str::to_owned);
        match ws {
            [w] if is_var(w) => {
                if self.vars.contains(w) {
                    Ok(Expr::Var(w.clone()))
                } else {
                    Err(err(offset, format!("undefined variable {w}")))
                }
            }
            [w] => {
                let f = self.field(w, offset)?;
                if f == Field::LabelValuesByName {
                    return Err(err(
                        offset,
                        "printing .LabelValuesByName whole is not supported; use index .LabelValuesByName \"label\"",
                    ));
                }
                Ok(Expr::Field(f))
            }
            [f, m, k] if f == "index" && m == ".LabelValuesByName" && self.kind == Kind::Query => {
                let key =
                    strings(k).ok_or_else(|| err(offset, "index needs a quoted label name"))?;
                Ok(Expr::Index(key))
            }
            [f, s, l] if f == "join" && l == ".GroupBySlice" && self.kind == Kind::Query => {
                let sep = strings(s).ok_or_else(|| err(offset, "join needs a quoted separator"))?;
                Ok(Expr::Join { sep })
            }
            [l, p, f, s]
                if l == ".GroupBySlice" && p == "|" && f == "join" && self.kind == Kind::Query =>
            {
                let sep = strings(s).ok_or_else(|| err(offset, "join needs a quoted separator"))?;
                Ok(Expr::Join { sep })
            }
            _ => Err(err(
                offset,
                format!("unsupported action <<{}>>", ws.join(" ")),
            )),
        }
    }
}

fn is_var(w: &str) -> bool {
    w.strip_prefix('$')
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// PromQL lexical state across literal text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Lexer {
    quote: Option<Quote>,
    escaped: bool,
    comment: bool,
    regex: bool,
    /// The last two non-space characters outside strings.
    prev: [char; 2],
}

impl Lexer {
    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            if self.comment {
                if c == '\n' {
                    self.comment = false;
                }
                continue;
            }
            match self.quote {
                Some(q) => {
                    if self.escaped {
                        self.escaped = false;
                    } else if c == '\\' && q != Quote::Backtick {
                        self.escaped = true;
                    } else if c == q.char() {
                        self.quote = None;
                        self.prev = [' ', c];
                    }
                }
                None => match c {
                    '"' | '\'' | '`' => {
                        self.regex = matches!(self.prev, ['=' | '!', '~']);
                        self.quote = Some(match c {
                            '"' => Quote::Double,
                            '\'' => Quote::Single,
                            _ => Quote::Backtick,
                        });
                    }
                    '#' => self.comment = true,
                    c if c.is_whitespace() => {}
                    c => self.prev = [self.prev[1], c],
                },
            }
        }
    }

    fn position(&self) -> Position {
        Position {
            quote: self.quote,
            regex: self.quote.is_some() && self.regex,
        }
    }
}

/// Records each action's position and rejects fields in places where they
/// cannot be escaped.
fn annotate(nodes: &mut [Node], lex: &mut Lexer, kind: Kind) -> Result<(), ParseError> {
    for node in nodes {
        match node {
            Node::Text(t) => lex.feed(t),
            Node::Action { expr, pos, offset } => {
                if lex.comment {
                    // A value with a newline would end the comment.
                    return Err(err(*offset, "actions inside a # comment are not supported"));
                }
                *pos = lex.position();
                if kind == Kind::ResourceLabel {
                    continue;
                }
                match expr {
                    Expr::Field(Field::LabelMatchers) if pos.quote.is_some() => {
                        return Err(err(
                            *offset,
                            ".LabelMatchers inside a string literal is not supported",
                        ));
                    }
                    Expr::Index(key) if pos.quote.is_none() => {
                        return Err(err(
                            *offset,
                            format!(
                                "index .LabelValuesByName {key:?} must sit inside a quoted string, where it can be escaped"
                            ),
                        ));
                    }
                    _ => {}
                }
            }
            Node::Range { body, offset, .. } => {
                let before = *lex;
                annotate(body, lex, kind)?;
                if lex.quote != before.quote || lex.comment != before.comment {
                    return Err(err(
                        *offset,
                        "a range body must not open or close a string or comment",
                    ));
                }
            }
            Node::If {
                then,
                otherwise,
                offset,
                ..
            } => {
                let before = *lex;
                annotate(then, lex, kind)?;
                let after_then = *lex;
                *lex = before;
                annotate(otherwise, lex, kind)?;
                if lex.quote != before.quote
                    || after_then.quote != before.quote
                    || lex.comment != before.comment
                    || after_then.comment != before.comment
                {
                    return Err(err(
                        *offset,
                        "an if body must not open or close a string or comment",
                    ));
                }
            }
        }
    }
    Ok(())
}

enum Data<'a> {
    Query(&'a QueryArgs),
    Resource(&'a ResourceArgs),
}

#[derive(Clone)]
enum Value {
    Index(usize),
    Label(String),
}

fn lookup<'s>(scope: &'s [(String, Value)], var: &str) -> Option<&'s Value> {
    scope.iter().rev().find(|(n, _)| n == var).map(|(_, v)| v)
}

fn place(value: &str, pos: Position) -> Result<String, RenderError> {
    match pos.quote {
        Some(q) => Ok(promql::escape_in(value, q)?),
        None => Ok(value.to_owned()),
    }
}

fn render(
    nodes: &[Node],
    data: &Data<'_>,
    scope: &mut Vec<(String, Value)>,
    out: &mut String,
) -> Result<(), RenderError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action { expr, pos, .. } => render_expr(expr, *pos, data, scope, out)?,
            Node::Range {
                index, elem, body, ..
            } => {
                let Data::Query(args) = data else { continue };
                for (i, label) in args.group_by.iter().enumerate() {
                    let mark = scope.len();
                    if let Some(index) = index {
                        scope.push((index.clone(), Value::Index(i)));
                    }
                    scope.push((elem.clone(), Value::Label(label.clone())));
                    render(body, data, scope, out)?;
                    scope.truncate(mark);
                }
            }
            Node::If {
                var,
                then,
                otherwise,
                ..
            } => {
                let truthy = match lookup(scope, var) {
                    Some(Value::Index(i)) => *i != 0,
                    Some(Value::Label(l)) => !l.is_empty(),
                    None => false,
                };
                render(if truthy { then } else { otherwise }, data, scope, out)?;
            }
        }
    }
    Ok(())
}

fn render_expr(
    expr: &Expr,
    pos: Position,
    data: &Data<'_>,
    scope: &[(String, Value)],
    out: &mut String,
) -> Result<(), RenderError> {
    match (expr, data) {
        (Expr::Field(Field::Group), Data::Resource(a)) => out.push_str(&a.group),
        (Expr::Field(Field::Resource), Data::Resource(a)) => out.push_str(&a.resource),
        (Expr::Field(Field::Series), Data::Query(a)) => {
            if pos.quote.is_none() && !promql::is_metric_name(&a.series) {
                return Err(RenderError::InvalidSeries(a.series.clone()));
            }
            let v = if pos.regex {
                promql::regex_escape(&a.series)
            } else {
                a.series.clone()
            };
            out.push_str(&place(&v, pos)?);
        }
        (Expr::Field(Field::LabelMatchers), Data::Query(a)) => out.push_str(&a.label_matchers),
        (Expr::Field(Field::GroupBy), Data::Query(a)) => {
            out.push_str(&place(&a.group_by.join(","), pos)?)
        }
        (Expr::Field(Field::GroupBySlice), Data::Query(a)) => {
            out.push_str(&place(&format!("[{}]", a.group_by.join(" ")), pos)?);
        }
        (Expr::Join { sep }, Data::Query(a)) => out.push_str(&place(&a.group_by.join(sep), pos)?),
        (Expr::Index(key), Data::Query(a)) => {
            let joined = match a.values_by_name.get(key) {
                None => String::new(),
                Some(LabelValues::Exact(values)) if pos.regex => promql::regex_alternation(values),
                Some(LabelValues::Exact(values)) => values.join("|"),
                Some(LabelValues::Any) if pos.regex => ".+".to_owned(),
                Some(LabelValues::Any) => return Err(RenderError::AnyOutsideRegex(key.clone())),
            };
            out.push_str(&place(&joined, pos)?);
        }
        (Expr::Var(v), _) => match lookup(scope, v) {
            Some(Value::Index(i)) => {
                let _ = write!(out, "{i}");
            }
            Some(Value::Label(l)) => out.push_str(&place(l, pos)?),
            None => {}
        },
        // The parser only admits fields of the template's own kind.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn args() -> QueryArgs {
        let mut values_by_name = BTreeMap::new();
        values_by_name.insert(
            "pod".to_owned(),
            LabelValues::Exact(vec!["a.b".to_owned(), "c".to_owned()]),
        );
        values_by_name.insert(
            "namespace".to_owned(),
            LabelValues::Exact(vec!["default".to_owned()]),
        );
        QueryArgs {
            series: "http_requests_total".to_owned(),
            label_matchers: "namespace=\"default\",pod=~\"a\\\\.b|c\"".to_owned(),
            values_by_name,
            group_by: vec!["pod".to_owned(), "container".to_owned()],
        }
    }

    #[rstest]
    #[case("series <<.Series>>", "series http_requests_total")]
    #[case("<<.GroupBy>>", "pod,container")]
    #[case("<<.GroupBySlice>>", "[pod container]")]
    #[case("<< .GroupBy >>", "pod,container")]
    #[case(
        "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
        "sum(http_requests_total{namespace=\"default\",pod=~\"a\\\\.b|c\"}) by (pod,container)"
    )]
    #[case("<<join \",\" .GroupBySlice>>", "pod,container")]
    #[case("<<.GroupBySlice | join \";\">>", "pod;container")]
    #[case(
        "by (<<range $i, $v := .GroupBySlice>><<if $i>>,<<end>><<$v>><<end>>)",
        "by (pod,container)"
    )]
    #[case(
        "by (\n  <<- range $i, $v := .GroupBySlice >><<if $i>>,<<end>><<$v>><<- end>>\n)",
        "by (pod,container\n)"
    )]
    #[case("<<range $v := .GroupBySlice>>[<<$v>>]<<end>>", "[pod][container]")]
    #[case(
        "<<range $i, $v := .GroupBySlice>><<if $i>>+<<else>>=<<end>><<$i>><<end>>",
        "=0+1"
    )]
    #[case(
        "x{pod=~\"<<index .LabelValuesByName \"pod\">>\"}",
        "x{pod=~\"a\\\\.b|c\"}"
    )]
    #[case("x{pod=\"<<index .LabelValuesByName \"pod\">>\"}", "x{pod=\"a.b|c\"}")]
    #[case(
        "x{namespace='<<index .LabelValuesByName \"namespace\">>'}",
        "x{namespace='default'}"
    )]
    #[case(
        "x{namespace=\"<<index .LabelValuesByName \"missing\">>\"}",
        "x{namespace=\"\"}"
    )]
    #[case("a  <<- .GroupBy ->>  c", "apod,containerc")]
    fn renders(#[case] source: &str, #[case] want: &str) {
        let t = Template::parse(source, Kind::Query).unwrap();
        assert_eq!(t.render_query(&args()).unwrap(), want);
    }

    #[rstest]
    #[case("<<.Nope>>", "unknown field")]
    #[case("<<.Group>>", "not available")]
    #[case("<<printf \"%s\" .Series>>", "unsupported action")]
    #[case("<<with .Series>>x<<end>>", "not supported")]
    #[case("<<range .GroupBySlice>>x<<end>>", "only `range")]
    #[case("<<range $v := .LabelMatchers>>x<<end>>", "only .GroupBySlice")]
    #[case("<<range $v := .GroupBySlice>>x", "without end")]
    #[case("<<end>>", "without range/if")]
    #[case("<<.Series", "unclosed")]
    #[case("<<if $i>>x<<end>>", "undefined variable")]
    #[case("<<$x>>", "undefined variable")]
    #[case("<<.LabelValuesByName>>", "whole is not supported")]
    #[case(
        "x{pod=~<<index .LabelValuesByName \"pod\">>}",
        "inside a quoted string"
    )]
    #[case("x{a=\"<<.LabelMatchers>>\"}", "inside a string literal")]
    #[case("<<range $v := .GroupBySlice>>\"<<end>>", "must not open or close")]
    #[case("<</* c */>>", "comments")]
    #[case("<<>>", "empty action")]
    fn rejects(#[case] source: &str, #[case] needle: &str) {
        let e = Template::parse(source, Kind::Query).unwrap_err();
        assert!(e.reason.contains(needle), "{e} should mention {needle:?}");
    }

    #[test]
    fn resource_templates_render_group_and_resource() {
        let t = Template::parse("kube_<<.Group>>_<<.Resource>>", Kind::ResourceLabel).unwrap();
        let out = t
            .render_resource(&ResourceArgs {
                group: "apps".into(),
                resource: "deployment".into(),
            })
            .unwrap();
        assert_eq!(out, "kube_apps_deployment");
        assert!(Template::parse("<<.Series>>", Kind::ResourceLabel).is_err());
        assert!(
            Template::parse("<<range $v := .GroupBySlice>><<end>>", Kind::ResourceLabel).is_err()
        );
    }

    #[test]
    fn any_renders_in_regex_only() {
        let mut a = args();
        a.values_by_name.insert("pod".into(), LabelValues::Any);
        let re = Template::parse(
            "x{pod=~\"<<index .LabelValuesByName \"pod\">>\"}",
            Kind::Query,
        )
        .unwrap();
        assert_eq!(re.render_query(&a).unwrap(), "x{pod=~\".+\"}");
        let eq = Template::parse(
            "x{pod=\"<<index .LabelValuesByName \"pod\">>\"}",
            Kind::Query,
        )
        .unwrap();
        assert_eq!(
            eq.render_query(&a),
            Err(RenderError::AnyOutsideRegex("pod".into()))
        );
    }

    #[test]
    fn bare_series_must_be_a_metric_name() {
        let mut a = args();
        a.series = "x} or vector(1) #".into();
        let t = Template::parse("<<.Series>>{a=\"b\"}", Kind::Query).unwrap();
        assert!(matches!(
            t.render_query(&a),
            Err(RenderError::InvalidSeries(_))
        ));
        let q = Template::parse("{__name__=\"<<.Series>>\"}", Kind::Query).unwrap();
        assert_eq!(
            q.render_query(&a).unwrap(),
            "{__name__=\"x} or vector(1) #\"}"
        );
    }

    #[test]
    fn actions_in_comments_are_refused_and_errors_carry_offsets() {
        let e = Template::parse("sum(x) # <<.GroupBy>>\n", Kind::Query).unwrap_err();
        assert_eq!(e.offset, 9);
        assert!(e.reason.contains("comment"));
        // A `#` inside a string is not a comment.
        let t = Template::parse("x{a=\"#\"} by (<<.GroupBy>>)", Kind::Query).unwrap();
        assert_eq!(
            t.render_query(&args()).unwrap(),
            "x{a=\"#\"} by (pod,container)"
        );
        let e = Template::parse("x{a=\"<<.LabelMatchers>>\"}", Kind::Query).unwrap_err();
        assert_eq!(e.offset, 5);
    }

    #[test]
    fn empty_output_is_an_error() {
        let t = Template::parse("  ", Kind::Query).unwrap();
        assert_eq!(t.render_query(&args()), Err(RenderError::Empty));
    }

    #[test]
    fn uses_reports_fields() {
        let t = Template::parse(
            "x{pod=\"<<index .LabelValuesByName \"pod\">>\"} by (<<.GroupBy>>)",
            Kind::Query,
        )
        .unwrap();
        assert!(t.uses(Field::LabelValuesByName));
        assert!(t.uses(Field::GroupBy));
        assert!(!t.uses(Field::Series));
    }

    proptest! {
        // Hostile values in every string position read back intact.
        #[test]
        fn index_values_stay_in_their_literal(value in any::<String>(), regex in any::<bool>(), single in any::<bool>()) {
            let (op, q) = (if regex { "=~" } else { "=" }, if single { '\'' } else { '"' });
            let source = format!("x{{pod{op}{q}<<index .LabelValuesByName \"pod\">>{q},a=\"b\"}}");
            let t = Template::parse(&source, Kind::Query).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut a = args();
            a.values_by_name.insert("pod".into(), LabelValues::Exact(vec![value.clone()]));
            let out = t.render_query(&a).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let lits = promql::literal::all(&out).map_err(TestCaseError::fail)?;
            prop_assert_eq!(lits.len(), 2);
            let want = if regex { promql::regex_escape(&value) } else { value };
            prop_assert_eq!(&lits[0], &want);
            prop_assert_eq!(&lits[1], "b");
        }

        // The parser never panics, whatever the input.
        #[test]
        fn parse_never_panics(source in "\\PC{0,60}") {
            let _ = Template::parse(&source, Kind::Query);
            let _ = Template::parse(&source, Kind::ResourceLabel);
        }

        #[test]
        fn parse_never_panics_on_action_soup(parts in proptest::collection::vec(prop_oneof![
            Just("<<".to_owned()), Just(">>".to_owned()), Just("<<-".to_owned()), Just(" -".to_owned()),
            Just("range".to_owned()), Just("$i".to_owned()), Just(":=".to_owned()), Just(",".to_owned()),
            Just(".GroupBySlice".to_owned()), Just("end".to_owned()), Just("if".to_owned()), Just("else".to_owned()),
            Just("\"".to_owned()), Just("index".to_owned()), Just(" ".to_owned()), Just("#".to_owned()), Just("\n".to_owned()),
        ], 0..30)) {
            let source: String = parts.concat();
            if let Ok(t) = Template::parse(&source, Kind::Query) {
                let _ = t.render_query(&args());
            }
        }
    }
}
