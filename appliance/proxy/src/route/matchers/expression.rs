//! `http.matchers.expression`: the subset of CEL that Caddy configs use in practice.
//!
//! Flow: the expression is parsed once (precedence `||` < `&&` < comparisons and `in` < `!`
//! and unary `-` < member calls) into a tree whose matcher calls (`path('/a*')`,
//! `header({'X': 'y'})`, `path_regexp('name', '^/v')`, `host`, `method`, `query`,
//! `remote_ip`, `client_ip`, `protocol`, `header_regexp`, `vars`, `file`) are compiled into
//! the same matchers as their JSON forms; `{placeholders}` are read at request time. Values
//! are strings, integers, booleans, lists and maps; string methods `startsWith`, `endsWith`,
//! `contains`, `matches` and `size`. Comparisons between a placeholder's text and an integer
//! compare numerically, as Caddy's typed placeholders (`{http.error.status_code}`) do.
//! Errors: syntax errors and unknown functions fail at compile time; a type mismatch at
//! request time makes the expression false.

use std::borrow::Cow;

use regex::Regex;
use serde_json::{json, Map, Value as Json};

use super::super::ctx::Ctx;
use super::super::placeholder::Lookup;
use super::super::{err, regex, CompileError, Result};
use super::{Matcher, MatcherSet};

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Val>),
    Map(Vec<(Val, Val)>),
    Null,
}

#[derive(Debug)]
enum Node {
    Lit(Val),
    List(Vec<Node>),
    Ph(String),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(&'static str, Box<Node>, Box<Node>),
    Method(Box<Node>, String, Vec<Node>, Option<Regex>),
    Matcher(Box<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Ph(String),
    Op(&'static str),
}

fn tokenize(src: &str) -> Result<Vec<Tok>> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '{' && b.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) {
            let end = (i + 1..b.len()).find(|j| b[*j] == '}');
            let key: String = b[i + 1..end.unwrap_or(i + 1)].iter().collect();
            match end {
                Some(e)
                    if key
                        .chars()
                        .all(|c| c.is_alphanumeric() || "_.-".contains(c)) =>
                {
                    out.push(Tok::Ph(key));
                    i = e + 1;
                }
                _ => {
                    out.push(Tok::Op("{"));
                    i += 1;
                }
            }
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&ch) = b.get(i) else {
                    return err("Syntax error: unterminated string");
                };
                i += 1;
                match ch {
                    _ if ch == c => break,
                    '\\' => {
                        let esc = *b.get(i).ok_or(CompileError("bad escape".into()))?;
                        i += 1;
                        s.push(match esc {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                    _ => s.push(ch),
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n: String = b[start..i].iter().collect();
            out.push(Tok::Int(
                n.parse().map_err(|_| CompileError("bad number".into()))?,
            ));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else {
            let two: String = b[i..(i + 2).min(b.len())].iter().collect();
            let op = ["&&", "||", "==", "!=", "<=", ">="]
                .into_iter()
                .find(|o| *o == two);
            match op {
                Some(o) => {
                    out.push(Tok::Op(o));
                    i += 2;
                }
                None => {
                    let one = [
                        "(", ")", "[", "]", "{", "}", ",", ".", ":", "!", "<", ">", "-",
                    ]
                    .into_iter()
                    .find(|o| o.starts_with(c))
                    .ok_or_else(|| CompileError(format!("Syntax error: unexpected '{c}'")))?;
                    out.push(Tok::Op(one));
                    i += 1;
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn literal_json(n: &Node) -> Result<Json> {
    match n {
        Node::Lit(v) => Ok(to_json(v)),
        Node::List(items) => items
            .iter()
            .map(literal_json)
            .collect::<Result<Vec<_>>>()
            .map(Json::Array),
        _ => err("matcher arguments must be literals"),
    }
}

fn to_json(v: &Val) -> Json {
    match v {
        Val::Str(s) => json!(s),
        Val::Int(i) => json!(i),
        Val::Bool(b) => json!(b),
        Val::Null => Json::Null,
        Val::List(l) => Json::Array(l.iter().map(to_json).collect()),
        Val::Map(m) => {
            let mut o = Map::new();
            for (k, v) in m {
                let key = match k {
                    Val::Str(s) => s.clone(),
                    other => to_json(other).to_string(),
                };
                // Header and query maps take a value or a list of values.
                let v = match v {
                    Val::Str(_) => Json::Array(vec![to_json(v)]),
                    other => to_json(other),
                };
                o.insert(key, v);
            }
            Json::Object(o)
        }
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<()> {
        if self.eat(op) {
            Ok(())
        } else {
            err(format!("Syntax error: expected '{op}'"))
        }
    }

    fn or(&mut self, name: &str) -> Result<Node> {
        let mut left = self.and(name)?;
        while self.peek() == Some(&Tok::Op("||")) {
            self.pos += 1;
            left = Node::Or(Box::new(left), Box::new(self.and(name)?));
        }
        Ok(left)
    }

    fn and(&mut self, name: &str) -> Result<Node> {
        let mut left = self.rel(name)?;
        while self.peek() == Some(&Tok::Op("&&")) {
            self.pos += 1;
            left = Node::And(Box::new(left), Box::new(self.rel(name)?));
        }
        Ok(left)
    }

    fn rel(&mut self, name: &str) -> Result<Node> {
        let left = self.unary(name)?;
        let op = match self.peek() {
            Some(Tok::Op(o)) if ["==", "!=", "<", "<=", ">", ">="].contains(o) => *o,
            Some(Tok::Ident(i)) if i == "in" => "in",
            _ => return Ok(left),
        };
        self.pos += 1;
        Ok(Node::Cmp(op, Box::new(left), Box::new(self.unary(name)?)))
    }

    fn unary(&mut self, name: &str) -> Result<Node> {
        match self.peek() {
            Some(Tok::Op("!")) => {
                self.pos += 1;
                Ok(Node::Not(Box::new(self.unary(name)?)))
            }
            Some(Tok::Op("-")) => {
                self.pos += 1;
                Ok(Node::Neg(Box::new(self.unary(name)?)))
            }
            _ => self.postfix(name),
        }
    }

    fn postfix(&mut self, name: &str) -> Result<Node> {
        let mut node = self.primary(name)?;
        while self.eat(".") {
            let Some(Tok::Ident(m)) = self.peek().cloned() else {
                return err("Syntax error: expected a method name");
            };
            self.pos += 1;
            self.expect("(")?;
            let args = self.args(name, ")")?;
            if !["startsWith", "endsWith", "contains", "matches", "size"].contains(&m.as_str()) {
                return err(format!("undeclared reference to '{m}'"));
            }
            let re = match (m.as_str(), args.first()) {
                ("matches", Some(Node::Lit(Val::Str(p)))) => Some(regex(p).map_err(CompileError)?),
                _ => None,
            };
            node = Node::Method(Box::new(node), m, args, re);
        }
        Ok(node)
    }

    fn args(&mut self, name: &str, close: &str) -> Result<Vec<Node>> {
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(self.or(name)?);
            if self.eat(close) {
                return Ok(out);
            }
            self.expect(",")?;
        }
    }

    fn primary(&mut self, name: &str) -> Result<Node> {
        let tok = self
            .peek()
            .cloned()
            .ok_or_else(|| CompileError("Syntax error: unexpected end of expression".into()))?;
        self.pos += 1;
        match tok {
            Tok::Str(s) => Ok(Node::Lit(Val::Str(s))),
            Tok::Int(i) => Ok(Node::Lit(Val::Int(i))),
            Tok::Ph(p) => Ok(Node::Ph(p)),
            Tok::Ident(i) if i == "true" || i == "false" => Ok(Node::Lit(Val::Bool(i == "true"))),
            Tok::Ident(i) if i == "null" => Ok(Node::Lit(Val::Null)),
            Tok::Ident(f) => {
                self.expect("(")?;
                let args = self.args(name, ")")?;
                matcher_call(&f, &args, name)
            }
            Tok::Op("(") => {
                let n = self.or(name)?;
                self.expect(")")?;
                Ok(n)
            }
            Tok::Op("[") => Ok(Node::List(self.args(name, "]")?)),
            Tok::Op("{") => {
                let mut entries = Vec::new();
                if !self.eat("}") {
                    loop {
                        let k = literal_val(&self.or(name)?)?;
                        self.expect(":")?;
                        let v = literal_val(&self.or(name)?)?;
                        entries.push((k, v));
                        if self.eat("}") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Ok(Node::Lit(Val::Map(entries)))
            }
            other => err(format!("Syntax error: unexpected {other:?}")),
        }
    }
}

fn literal_val(n: &Node) -> Result<Val> {
    match n {
        Node::Lit(v) => Ok(v.clone()),
        Node::List(items) => items
            .iter()
            .map(literal_val)
            .collect::<Result<_>>()
            .map(Val::List),
        _ => err("map entries must be literals"),
    }
}

/// Builds the JSON form of a matcher function call and compiles it like a matcher set entry.
fn matcher_call(f: &str, args: &[Node], name: &str) -> Result<Node> {
    let strs = || -> Result<Json> {
        let mut out = Vec::new();
        for a in args {
            match literal_json(a)? {
                Json::Array(items) => out.extend(items),
                other => out.push(other),
            }
        }
        Ok(Json::Array(out))
    };
    let first = || args.first().map(literal_json).transpose();
    let regexp = |args: &[Node]| -> Result<Json> {
        let vals: Vec<Json> = args.iter().map(literal_json).collect::<Result<_>>()?;
        Ok(match vals.as_slice() {
            [p] => json!({"name": name, "pattern": p}),
            [n, p] => json!({"name": n, "pattern": p}),
            _ => return err(format!("{f}: expected one or two arguments")),
        })
    };
    let arg = match f {
        "path" | "host" | "method" => strs()?,
        "remote_ip" | "client_ip" => json!({"ranges": strs()?}),
        "protocol" | "header" | "query" | "vars" | "file" => first()?.unwrap_or(Json::Null),
        "path_regexp" => regexp(args)?,
        "header_regexp" => match args {
            [field, rest @ ..] => {
                let Json::String(field) = literal_json(field)? else {
                    return err("header_regexp: field must be a string");
                };
                let mut m = Map::new();
                m.insert(field, regexp(rest)?);
                Json::Object(m)
            }
            [] => return err("header_regexp: expected arguments"),
        },
        other => return err(format!("undeclared reference to '{other}'")),
    };
    let mut set = Map::new();
    set.insert(f.to_owned(), arg);
    let MatcherSet(mut ms) = super::compile_set(&Json::Object(set))?;
    Ok(Node::Matcher(Box::new(ms.remove(0))))
}

#[derive(Debug)]
pub struct MatchExpression(Node);

impl MatchExpression {
    pub fn compile(v: &Json) -> Result<MatchExpression> {
        let (expr, name) = match v {
            Json::String(s) => (s.as_str(), ""),
            Json::Object(o) => (
                o.get("expr").and_then(Json::as_str).unwrap_or(""),
                o.get("name").and_then(Json::as_str).unwrap_or(""),
            ),
            _ => return err("expression: expected a string or an object"),
        };
        let wrap = |e: CompileError| CompileError(format!("compiling CEL program: {}", e.0));
        let mut p = Parser {
            toks: tokenize(expr).map_err(wrap)?,
            pos: 0,
        };
        let node = p.or(name).map_err(wrap)?;
        if p.pos != p.toks.len() {
            return Err(wrap(CompileError("Syntax error: trailing tokens".into())));
        }
        Ok(MatchExpression(node))
    }

    pub fn matches(&self, ctx: &mut Ctx<'_, '_>) -> bool {
        eval(&self.0, ctx) == Some(Val::Bool(true))
    }
}

fn as_int(v: &Val) -> Option<i64> {
    match v {
        Val::Int(i) => Some(*i),
        Val::Str(s) => s.parse().ok(),
        _ => None,
    }
}

fn compare(op: &str, a: &Val, b: &Val) -> Option<bool> {
    if op == "in" {
        return match b {
            Val::List(items) => Some(items.iter().any(|x| compare("==", a, x) == Some(true))),
            Val::Map(entries) => Some(
                entries
                    .iter()
                    .any(|(k, _)| compare("==", a, k) == Some(true)),
            ),
            _ => None,
        };
    }
    let ord = match (a, b) {
        // A placeholder's text against a boolean compares as Caddy's typed placeholders
        // (`{http.reverse_proxy.is_transport_error} == true`) do.
        (Val::Str(s), Val::Bool(x)) | (Val::Bool(x), Val::Str(s)) if matches!(op, "==" | "!=") => {
            return Some((s == if *x { "true" } else { "false" }) == (op == "=="));
        }
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Int(_), _) | (_, Val::Int(_)) => as_int(a)?.cmp(&as_int(b)?),
        _ => {
            return match op {
                "==" => Some(a == b),
                "!=" => Some(a != b),
                _ => None,
            }
        }
    };
    Some(match op {
        "==" => ord.is_eq(),
        "!=" => !ord.is_eq(),
        "<" => ord.is_lt(),
        "<=" => ord.is_le(),
        ">" => ord.is_gt(),
        _ => ord.is_ge(),
    })
}

fn eval(n: &Node, ctx: &mut Ctx<'_, '_>) -> Option<Val> {
    Some(match n {
        Node::Lit(v) => v.clone(),
        Node::List(items) => Val::List(items.iter().map(|i| eval(i, ctx)).collect::<Option<_>>()?),
        Node::Ph(key) => match ctx.lookup(key) {
            Some(Cow::Borrowed(s)) => Val::Str(s.to_owned()),
            Some(Cow::Owned(s)) => Val::Str(s),
            None => Val::Null,
        },
        Node::Not(x) => match eval(x, ctx)? {
            Val::Bool(b) => Val::Bool(!b),
            _ => return None,
        },
        Node::Neg(x) => Val::Int(-as_int(&eval(x, ctx)?)?),
        Node::And(a, b) => match eval(a, ctx)? {
            Val::Bool(false) => Val::Bool(false),
            Val::Bool(true) => match eval(b, ctx)? {
                v @ Val::Bool(_) => v,
                _ => return None,
            },
            _ => return None,
        },
        Node::Or(a, b) => match eval(a, ctx) {
            Some(Val::Bool(true)) => Val::Bool(true),
            _ => match eval(b, ctx)? {
                v @ Val::Bool(_) => v,
                _ => return None,
            },
        },
        Node::Cmp(op, a, b) => {
            let (a, b) = (eval(a, ctx)?, eval(b, ctx)?);
            Val::Bool(compare(op, &a, &b)?)
        }
        Node::Method(target, m, args, re) => {
            let Val::Str(s) = eval(target, ctx)? else {
                return None;
            };
            if m == "size" {
                return Some(Val::Int(s.chars().count() as i64));
            }
            if let Some(re) = re {
                return Some(Val::Bool(re.is_match(&s)));
            }
            let Val::Str(arg) = eval(args.first()?, ctx)? else {
                return None;
            };
            Val::Bool(match m.as_str() {
                "startsWith" => s.starts_with(&arg),
                "endsWith" => s.ends_with(&arg),
                "contains" => s.contains(&arg),
                _ => regex(&arg).ok()?.is_match(&s),
            })
        }
        Node::Matcher(m) => Val::Bool(m.matches(ctx)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_caddy_forms() {
        for src in [
            r#"{http.request.method} == "GET" && path('/cel/*')"#,
            r#"{http.request.uri.query}.contains("beta") || header({'X-Beta': '1'})"#,
            r#"{http.request.uri.path}.endsWith(".json") && !query({'raw': '*'})"#,
            r#"path_regexp('ver', '^/v([0-9]+)/') && {http.regexp.ver.1} == "2""#,
            "{http.error.status_code} in [404, 410]",
            "{http.error.status_code} >= 500 && {http.error.status_code} < 600",
        ] {
            MatchExpression::compile(&json!(src)).unwrap();
        }
        assert!(MatchExpression::compile(&json!("nope(1)")).is_err());
        assert!(MatchExpression::compile(&json!("1 ==")).is_err());
    }

    #[test]
    fn comparisons() {
        assert_eq!(
            compare("==", &Val::Str("404".into()), &Val::Int(404)),
            Some(true)
        );
        assert_eq!(
            compare(
                "in",
                &Val::Int(410),
                &Val::List(vec![Val::Int(404), Val::Int(410)])
            ),
            Some(true)
        );
        assert_eq!(
            compare("<", &Val::Str("a".into()), &Val::Str("b".into())),
            Some(true)
        );
        assert_eq!(
            compare("==", &Val::Str("true".into()), &Val::Bool(true)),
            Some(true)
        );
        assert_eq!(
            compare("!=", &Val::Bool(false), &Val::Str("true".into())),
            Some(true)
        );
    }
}
