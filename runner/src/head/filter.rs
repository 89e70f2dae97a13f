//! Parser and evaluator for the `$filter` query option on list calls.
//!
//! Azure Batch list operations (jobs, tasks, pools, nodes) accept an OData
//! `$filter`, but only a small, well-defined slice of OData: comparisons of a
//! property against a literal, `startswith`, and boolean combinations. Clients
//! written against Batch only ever send that slice, so implementing full OData
//! would add surface area without compatibility benefit; rejecting everything
//! else with a precise error is more useful than silently mis-filtering.
//!
//! Supported grammar (keywords case-insensitive, whitespace between tokens):
//!
//! ```text
//! or_expr   := and_expr ("or" and_expr)*
//! and_expr  := unary ("and" unary)*
//! unary     := "not" unary | "(" or_expr ")" | comparison | starts
//! comparison:= path ("eq"|"ne"|"gt"|"ge"|"lt"|"le") literal
//! starts    := "startswith" "(" path "," string ")" [("eq"|"ne") ("true"|"false")]
//! literal   := 'string' (with '' as an escaped quote) | integer | true | false | null
//! path      := identifier ("/" identifier)*      e.g. executionInfo/exitCode
//! ```
//!
//! Comparisons are atomic here, so `not state eq 'x'` means `not (state eq 'x')`.
//! Missing data is modelled as `Null`: only `eq null` matches it, so a filter
//! such as `executionInfo/exitCode gt 0` excludes tasks that have not finished.

use std::cmp::Ordering;
use std::fmt;

/// Nesting beyond this is rejected so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn from_keyword(word: &str) -> Option<Self> {
        const OPS: [(&str, CompareOp); 6] = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        OPS.iter().find(|(kw, _)| word.eq_ignore_ascii_case(kw)).map(|&(_, op)| op)
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            Self::Eq => ord == Ordering::Equal,
            Self::Ne => ord != Ordering::Equal,
            Self::Gt => ord == Ordering::Greater,
            Self::Ge => ord != Ordering::Less,
            Self::Lt => ord == Ordering::Less,
            Self::Le => ord != Ordering::Greater,
        }
    }
}

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare { field: String, op: CompareOp, value: FieldValue },
    StartsWith { field: String, prefix: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
}

/// What a filter reads from an item: the value of a property path such as `state` or `executionInfo/exitCode`.
pub trait FilterTarget {
    fn field(&self, path: &str) -> FieldValue;
}

/// `position` is the 1-based character (not byte) column, as a user would count it.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    pub message: String,
    pub position: usize,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid $filter at character {}: {}", self.position, self.message)
    }
}

impl std::error::Error for FilterError {}

fn err(position: usize, message: impl Into<String>) -> FilterError {
    FilterError { message: message.into(), position }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Int(i64),
    LParen,
    RParen,
    Comma,
    Other(String),
}

impl fmt::Display for Tok {
    // Tokens are shown in double quotes so OData's single-quoted strings stay readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) | Tok::Other(w) => write!(f, "\"{w}\""),
            Tok::Str(s) => write!(f, "\"'{}'\"", s.replace('\'', "''")),
            Tok::Int(n) => write!(f, "\"{n}\""),
            Tok::LParen => f.write_str("\"(\""),
            Tok::RParen => f.write_str("\")\""),
            Tok::Comma => f.write_str("\",\""),
        }
    }
}

struct Token {
    tok: Tok,
    pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn tokenize(chars: &[char]) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let pos = i + 1;
        let start = i;
        i += 1;
        let tok = match c {
            _ if c.is_whitespace() => continue,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '\'' => {
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(err(pos, "unterminated string literal")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(s)
            }
            _ if c.is_ascii_digit() || (c == '-' && chars.get(i).is_some_and(char::is_ascii_digit)) => {
                while chars.get(i).is_some_and(char::is_ascii_digit) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                Tok::Int(text.parse().map_err(|_| err(pos, format!("integer {text} is out of range")))?)
            }
            _ if is_ident_start(c) => {
                loop {
                    while chars.get(i).is_some_and(|&d| is_ident_char(d)) {
                        i += 1;
                    }
                    // A '/' only belongs to the path when another segment follows it.
                    if chars.get(i) == Some(&'/') && chars.get(i + 1).is_some_and(|&d| is_ident_start(d)) {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'/') {
                    return Err(err(i + 1, format!("property path \"{word}/\" needs a name after \"/\"")));
                }
                Tok::Word(word)
            }
            _ => {
                // Grouping a run of symbols lets errors quote e.g. "==" rather than just "=".
                while chars.get(i).is_some_and(|&d| !d.is_whitespace() && !is_ident_char(d) && !"()',".contains(d)) {
                    i += 1;
                }
                Tok::Other(chars[start..i].iter().collect())
            }
        };
        out.push(Token { tok, pos });
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    idx: usize,
    fields: &'a [&'a str],
    end: usize,
    depth: usize,
}

fn is_kw(tok: &Tok, kw: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

fn op_of(tok: &Tok) -> Option<CompareOp> {
    match tok {
        Tok::Word(w) => CompareOp::from_keyword(w),
        _ => None,
    }
}

fn is_reserved(word: &str) -> bool {
    ["and", "or", "not", "true", "false", "null"].iter().any(|k| word.eq_ignore_ascii_case(k))
        || CompareOp::from_keyword(word).is_some()
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.idx)
    }

    fn peek_kw(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| is_kw(&t.tok, kw))
    }

    fn next_pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn advance(&mut self) -> Option<(Tok, usize)> {
        let t = self.tokens.get(self.idx).map(|t| (t.tok.clone(), t.pos));
        self.idx += 1;
        t
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(self.next_pos(), format!("filter is nested more than {MAX_DEPTH} levels deep")));
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_and()?;
        while self.peek_kw("or") {
            self.idx += 1;
            left = Filter::Or(Box::new(left), Box::new(self.parse_and()?));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.parse_unary()?;
        while self.peek_kw("and") {
            self.idx += 1;
            left = Filter::And(Box::new(left), Box::new(self.parse_unary()?));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Filter, FilterError> {
        if !self.peek_kw("not") {
            return self.parse_primary();
        }
        self.enter()?;
        self.idx += 1;
        let inner = self.parse_unary()?;
        self.depth -= 1;
        Ok(Filter::Not(Box::new(inner)))
    }

    fn missing_operand(&self, pos: usize, here: Option<&Tok>) -> FilterError {
        match (self.idx.checked_sub(1).and_then(|i| self.tokens.get(i)), here) {
            (Some(prev), _) => err(pos, format!("missing operand after {}", prev.tok)),
            (None, Some(tok)) => err(pos, format!("missing operand before {tok}")),
            (None, None) => err(pos, "empty filter"),
        }
    }

    fn parse_primary(&mut self) -> Result<Filter, FilterError> {
        let pos = self.next_pos();
        let tok = match self.peek() {
            None => return Err(self.missing_operand(pos, None)),
            Some(t) => t.tok.clone(),
        };
        match &tok {
            Tok::RParen => Err(self.missing_operand(pos, Some(&tok))),
            _ if is_kw(&tok, "and") || is_kw(&tok, "or") => Err(self.missing_operand(pos, Some(&tok))),
            Tok::LParen => {
                self.enter()?;
                self.idx += 1;
                let inner = self.parse_or()?;
                match self.advance() {
                    Some((Tok::RParen, _)) => {}
                    Some((other, at)) => {
                        return Err(err(at, format!("expected \")\" to close \"(\" at character {pos}, found {other}")))
                    }
                    None => return Err(err(self.end, format!("missing \")\" to close \"(\" at character {pos}"))),
                }
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Word(name) if self.tokens.get(self.idx + 1).is_some_and(|t| t.tok == Tok::LParen) => {
                if name.eq_ignore_ascii_case("startswith") {
                    self.parse_startswith()
                } else {
                    Err(err(pos, format!("unknown function \"{name}\"; only startswith is supported")))
                }
            }
            Tok::Word(name) if !is_reserved(name) => {
                let field = self.parse_path()?;
                let (op_tok, at) = self
                    .advance()
                    .ok_or_else(|| err(self.end, format!("missing comparison operator after \"{field}\"")))?;
                let op = op_of(&op_tok).ok_or_else(|| err(at, format!(
                    "unexpected token {op_tok} after \"{field}\"; expected a comparison operator (eq, ne, gt, ge, lt, le)")))?;
                let value = self.parse_literal(&op_tok)?;
                Ok(Filter::Compare { field, op, value })
            }
            _ => Err(err(
                pos,
                format!("unexpected token {tok}; expected a property comparison, startswith(...), \"not\" or \"(\""),
            )),
        }
    }

    fn parse_path(&mut self) -> Result<String, FilterError> {
        let pos = self.next_pos();
        match self.advance() {
            Some((Tok::Word(name), _)) if self.fields.contains(&name.as_str()) => Ok(name),
            Some((Tok::Word(name), _)) if self.fields.is_empty() => {
                Err(err(pos, format!("unknown property \"{name}\"; no properties can be filtered on here")))
            }
            Some((Tok::Word(name), _)) => {
                Err(err(pos, format!("unknown property \"{name}\"; allowed properties: {}", self.fields.join(", "))))
            }
            Some((other, _)) => Err(err(pos, format!("unexpected token {other}; expected a property name"))),
            None => Err(err(pos, "missing property name")),
        }
    }

    fn parse_literal(&mut self, after: &Tok) -> Result<FieldValue, FilterError> {
        match self.advance() {
            Some((Tok::Str(s), _)) => Ok(FieldValue::Str(s)),
            Some((Tok::Int(n), _)) => Ok(FieldValue::Int(n)),
            Some((t, _)) if is_kw(&t, "true") => Ok(FieldValue::Bool(true)),
            Some((t, _)) if is_kw(&t, "false") => Ok(FieldValue::Bool(false)),
            Some((t, _)) if is_kw(&t, "null") => Ok(FieldValue::Null),
            Some((other, at)) => Err(err(
                at,
                format!(
                "unexpected token {other} after {after}; expected a literal ('string', integer, true, false or null)"),
            )),
            None => Err(err(self.end, format!("missing operand after {after}"))),
        }
    }

    fn expect(&mut self, want: &Tok, usage: &str) -> Result<(), FilterError> {
        match self.advance() {
            Some((t, _)) if t == *want => Ok(()),
            Some((other, at)) => Err(err(at, format!("unexpected token {other}, expected {want}; usage: {usage}"))),
            None => Err(err(self.end, format!("missing {want} at end of input; usage: {usage}"))),
        }
    }

    fn parse_startswith(&mut self) -> Result<Filter, FilterError> {
        const USAGE: &str = "startswith(property, 'prefix')";
        self.idx += 2; // the name and '(' were checked by the caller
        let field = self.parse_path()?;
        self.expect(&Tok::Comma, USAGE)?;
        let prefix = match self.advance() {
            Some((Tok::Str(s), _)) => s,
            Some((other, at)) => {
                return Err(err(at, format!("unexpected token {other}; startswith needs a string prefix: {USAGE}")))
            }
            None => return Err(err(self.end, format!("missing prefix; usage: {USAGE}"))),
        };
        self.expect(&Tok::RParen, USAGE)?;
        let call = Filter::StartsWith { field, prefix };
        // Clients commonly write `startswith(...) eq true`, the OData v3 style.
        let Some(op) = self.peek().and_then(|t| op_of(&t.tok)) else { return Ok(call) };
        let Some((op_tok, op_pos)) = self.advance() else { return Ok(call) };
        let wanted = match (op, self.parse_literal(&op_tok)?) {
            (CompareOp::Eq, FieldValue::Bool(b)) => b,
            (CompareOp::Ne, FieldValue::Bool(b)) => !b,
            _ => return Err(err(op_pos, "startswith(...) can only be compared with eq/ne true or false")),
        };
        Ok(if wanted { call } else { Filter::Not(Box::new(call)) })
    }
}

/// Parses `input`; `fields` lists the property paths that may be named (anything else is an error naming the property and listing the allowed ones).
///
/// # Errors
/// Any syntax error, unknown property or unknown function, located by character.
pub fn parse_filter(input: &str, fields: &[&str]) -> Result<Filter, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let tokens = tokenize(&chars)?;
    if tokens.is_empty() {
        return Err(err(1, "empty filter"));
    }
    let mut parser = Parser { tokens, idx: 0, fields, end: chars.len() + 1, depth: 0 };
    let filter = parser.parse_or()?;
    match parser.peek() {
        None => Ok(filter),
        Some(Token { tok: Tok::RParen, pos }) => Err(err(*pos, "unexpected \")\" without a matching \"(\"")),
        Some(t) => Err(err(t.pos, format!("unexpected trailing input starting at {}", t.tok))),
    }
}

impl Filter {
    pub fn matches(&self, item: &dyn FilterTarget) -> bool {
        match self {
            Filter::And(a, b) => a.matches(item) && b.matches(item),
            Filter::Or(a, b) => a.matches(item) || b.matches(item),
            Filter::Not(f) => !f.matches(item),
            Filter::Compare { field, op, value } => compare(&item.field(field), *op, value),
            Filter::StartsWith { field, prefix } => {
                matches!(item.field(field), FieldValue::Str(s) if s.starts_with(prefix.as_str()))
            }
        }
    }
}

fn compare(actual: &FieldValue, op: CompareOp, literal: &FieldValue) -> bool {
    use FieldValue::{Bool, Int, Null, Str};
    let ord = match (actual, literal) {
        (Null, Null) => return op == CompareOp::Eq,
        // An absent value satisfies nothing but `eq null`, matching SQL-like intuition.
        (Null, _) => return false,
        (Str(a), Str(b)) => a.cmp(b),
        (Int(a), Int(b)) => a.cmp(b),
        (Bool(a), Bool(b)) => a.cmp(b),
        _ => return op == CompareOp::Ne,
    };
    op.holds(ord)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[&str] = &["id", "state", "executionInfo/exitCode", "isReady"];

    #[derive(Debug)]
    struct Item(Vec<(&'static str, FieldValue)>);

    impl FilterTarget for Item {
        fn field(&self, path: &str) -> FieldValue {
            self.0.iter().find(|(p, _)| *p == path).map_or(FieldValue::Null, |(_, v)| v.clone())
        }
    }

    fn task(id: &str, state: &str, exit: Option<i64>) -> Item {
        let mut fields = vec![("id", FieldValue::Str(id.into())), ("state", FieldValue::Str(state.into()))];
        if let Some(code) = exit {
            fields.push(("executionInfo/exitCode", FieldValue::Int(code)));
        }
        fields.push(("isReady", FieldValue::Bool(state == "active")));
        Item(fields)
    }

    fn check(input: &str, item: &Item, expected: bool) {
        let filter = parse_filter(input, FIELDS).unwrap_or_else(|e| panic!("{input:?} failed to parse: {e}"));
        assert_eq!(filter.matches(item), expected, "{input:?} against {item:?}");
    }

    fn check_err(input: &str, position: usize, fragment: &str) {
        match parse_filter(input, FIELDS) {
            Ok(f) => panic!("{input:?} unexpectedly parsed as {f:?}"),
            Err(e) => {
                assert!(e.message.contains(fragment), "{input:?}: {:?} lacks {fragment:?}", e.message);
                assert_eq!(e.position, position, "{input:?}: {e}");
            }
        }
    }

    #[test]
    fn evaluates() {
        let done = task("render-1", "completed", Some(0));
        let failed = task("render-2", "completed", Some(3));
        let active = task("t-active", "active", None);
        let running = task("x-run", "running", None);
        let cases: &[(&str, &Item, bool)] = &[
            ("state eq 'completed'", &done, true),
            ("state EQ 'completed'", &done, true),
            ("startswith(id,'render')", &done, true),
            ("startswith( id , 'render' ) eq true", &done, true),
            ("startswith(id,'render') eq false", &done, false),
            ("startswith(id,'render') ne true", &active, true),
            ("startswith(state,'')", &active, true),
            ("startswith(executionInfo/exitCode,'0')", &done, false),
            ("executionInfo/exitCode gt 0", &failed, true),
            ("executionInfo/exitCode gt 0", &done, false),
            ("executionInfo/exitCode gt 0", &active, false),
            ("executionInfo/exitCode ne 0", &active, false),
            ("executionInfo/exitCode eq null", &active, true),
            ("executionInfo/exitCode ne null", &active, false),
            ("executionInfo/exitCode eq null", &done, false),
            ("executionInfo/exitCode ne null", &done, true),
            ("executionInfo/exitCode ge -1", &done, true),
            ("executionInfo/exitCode le 3", &failed, true),
            ("state eq 'completed' and executionInfo/exitCode eq 0", &done, true),
            ("state eq 'completed' and executionInfo/exitCode eq 0", &failed, false),
            ("(state eq 'active' or state eq 'running') and startswith(id,'t')", &active, true),
            ("(state eq 'active' or state eq 'running') and startswith(id,'t')", &running, false),
            ("(state eq 'active' or state eq 'running') and startswith(id,'t')", &done, false),
            ("not (state eq 'active')", &active, false),
            ("not (state eq 'active')", &running, true),
            ("not state eq 'active'", &running, true),
            ("NOT not state eq 'active'", &active, true),
            ("state gt 'b' and state lt 'd'", &done, true),
            ("state ge 'running'", &running, true),
            ("state eq 5", &done, false),
            ("state ne 5", &done, true),
            ("state gt 5", &done, false),
            ("isReady eq true", &active, true),
            ("id eq 'it''s'", &task("it's", "active", None), true),
            ("state eq 'a' or state eq 'running' and id eq 'nope'", &task("z", "a", None), true),
            ("\t state\neq  'running' ", &running, true),
        ];
        for (input, item, expected) in cases {
            check(input, item, *expected);
        }
    }

    #[test]
    fn precedence_and_associativity() {
        let parse = |s: &str| parse_filter(s, FIELDS).unwrap_or_else(|e| panic!("{e}"));
        let cmp = |v: &str| Filter::Compare { field: "id".into(), op: CompareOp::Eq, value: FieldValue::Str(v.into()) };
        let b = |f: Filter| Box::new(f);
        assert_eq!(
            parse("id eq 'a' or id eq 'b' and id eq 'c'"),
            Filter::Or(b(cmp("a")), b(Filter::And(b(cmp("b")), b(cmp("c")))))
        );
        assert_eq!(
            parse("id eq 'a' and id eq 'b' and id eq 'c'"),
            Filter::And(b(Filter::And(b(cmp("a")), b(cmp("b")))), b(cmp("c")))
        );
        assert_eq!(parse("not id eq 'a' and id eq 'b'"), Filter::And(b(Filter::Not(b(cmp("a")))), b(cmp("b"))));
    }

    #[test]
    fn errors() {
        let cases: &[(&str, usize, &str)] = &[
            ("state eq", 9, "missing operand after \"eq\""),
            ("state = 'x'", 7, "unexpected token \"=\" after \"state\""),
            ("state", 6, "missing comparison operator"),
            ("foo eq 1", 1, "unknown property \"foo\"; allowed properties: id, state, executionInfo/exitCode, isReady"),
            ("state eq 'abc", 10, "unterminated string literal"),
            ("startswith(id)", 14, "usage: startswith(property, 'prefix')"),
            ("startswith(id, 5)", 16, "needs a string prefix"),
            ("startswith(id, 'a') gt true", 21, "only be compared with eq/ne"),
            ("startswith(id, 'a') eq 'x'", 21, "only be compared with eq/ne"),
            ("state eq 'a' extra", 14, "unexpected trailing input starting at \"extra\""),
            ("state eq 'a')", 13, "without a matching"),
            ("", 1, "empty filter"),
            ("endswith(id,'x')", 1, "unknown function \"endswith\""),
            ("state eq 'a' and", 17, "missing operand after \"and\""),
            ("and state eq 'a'", 1, "missing operand before \"and\""),
            ("state eq 'a' or or state eq 'b'", 17, "missing operand after \"or\""),
            ("()", 2, "missing operand after \"(\""),
            ("(state eq 'a'", 14, "missing \")\" to close \"(\" at character 1"),
            ("(state eq 'a' state", 15, "expected \")\""),
            ("not", 4, "missing operand after \"not\""),
            ("'x' eq state", 1, "unexpected token \"'x'\""),
            ("state eq other", 10, "unexpected token \"other\" after \"eq\""),
            ("state eq 99999999999999999999", 10, "out of range"),
            ("executionInfo/ eq 1", 14, "property path \"executionInfo/\" needs a name"),
            ("STATE eq 'x'", 1, "unknown property \"STATE\""),
            ("état eq 'x'", 1, "unexpected token \"é\""),
            ("eq eq 1", 1, "unexpected token \"eq\""),
        ];
        for (input, position, fragment) in cases {
            check_err(input, *position, fragment);
        }
        assert_eq!(parse_filter("x eq 1", &[]).map_err(|e| e.message.contains("no properties")), Err(true));
        let e = err(3, "boom");
        assert_eq!(e.to_string(), "invalid $filter at character 3: boom");
    }

    #[test]
    fn hostile_input_never_panics() {
        let deep = format!("{}state eq 'a'{}", "(".repeat(100_000), ")".repeat(100_000));
        for (input, position) in [(deep, 65), ("not ".repeat(100_000), 257)] {
            let e = parse_filter(&input, FIELDS).err();
            assert_eq!(e.map(|e| (e.position, e.message.contains("nested more than 64"))), Some((position, true)));
        }
        let samples = [
            "startswith(id, 'a''b') eq true and not (executionInfo/exitCode ge -12 or state ne null)",
            "é'(),-/=\u{0}\u{1F600} eq ''",
            "-",
            "-x",
            "--1",
            "1/2",
            "id/",
            "state eq -",
        ];
        for s in samples {
            let chars: Vec<char> = s.chars().collect();
            for i in 0..=chars.len() {
                for j in i..=chars.len() {
                    let text: String = chars[i..j].iter().collect();
                    if let Ok(f) = parse_filter(&text, FIELDS) {
                        f.matches(&task("a", "b", None));
                    }
                }
            }
        }
    }
}
