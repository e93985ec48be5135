//! Go `text/template` parser: the token stream into a tree of text, actions and control
//! structures (`if`/`else if`/`else`, `range` with `else`, `break`/`continue`, `with`,
//! `define`/`template`/`block`). Named templates go into the set next to the main one.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use super::lex::{lex, line_of, Tok, Token};

#[derive(Debug)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        name: String,
        pipe: Option<Pipe>,
        pos: usize,
    },
    Break(usize),
    Continue(usize),
}

#[derive(Debug)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    /// `=` (assignment to existing variables) rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub enum Arg {
    Dot,
    Nil,
    Bool(bool),
    /// The literal's text; integers without `.eEpP` are ints, the rest floats.
    Number(String),
    Char(i64, String),
    Str(String, String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    /// `(pipeline).Field...`
    Chain(Box<Arg>, Vec<String>),
    Pipe(Box<Pipe>),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Dot => f.write_str("."),
            Arg::Nil => f.write_str("nil"),
            Arg::Bool(b) => write!(f, "{b}"),
            Arg::Number(t) | Arg::Char(_, t) | Arg::Str(_, t) | Arg::Ident(t) => f.write_str(t),
            Arg::Field(path) => {
                for p in path {
                    write!(f, ".{p}")?;
                }
                Ok(())
            }
            Arg::Var(v, path) => {
                f.write_str(v)?;
                for p in path {
                    write!(f, ".{p}")?;
                }
                Ok(())
            }
            Arg::Chain(a, path) => {
                write!(f, "{a}")?;
                for p in path {
                    write!(f, ".{p}")?;
                }
                Ok(())
            }
            Arg::Pipe(p) => write!(f, "({p})"),
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            write!(
                f,
                "{} {} ",
                self.decl.join(", "),
                if self.assign { "=" } else { ":=" }
            )?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A parsed template and the named templates defined with it.
#[derive(Debug, Default)]
pub struct Set {
    pub templates: HashMap<String, Rc<Vec<Node>>>,
}

struct Parser<'s> {
    toks: Vec<Token>,
    i: usize,
    name: &'s str,
    src: &'s str,
    set: &'s mut Set,
    /// Variables in scope, for Go's "undefined variable" check.
    vars: Vec<String>,
    range_depth: usize,
}

/// What ended a list.
enum Stop {
    End,
    Else(usize),
    Eof,
}

/// Parses `src` as the template `name` into `set`, returning the main tree.
pub fn parse(
    name: &str,
    src: &str,
    delims: (&str, &str),
    set: &mut Set,
) -> Result<Rc<Vec<Node>>, String> {
    let toks = lex(src, delims.0, delims.1)
        .map_err(|(pos, msg)| format!("template: {name}:{}: {msg}", line_of(src, pos)))?;
    let mut p = Parser {
        toks,
        i: 0,
        name,
        src,
        set,
        vars: vec!["$".into()],
        range_depth: 0,
    };
    let (list, end) = p.list(true)?;
    match end {
        Stop::Eof => {}
        Stop::End => return Err(p.err_at(p.prev_pos(), "unexpected {{end}}")),
        Stop::Else(pos) => return Err(p.err_at(pos, "unexpected {{else}}")),
    }
    let tree = Rc::new(list);
    // An empty main template does not replace a definition of the same name.
    if !tree.is_empty() || !p.set.templates.contains_key(name) {
        p.set.templates.insert(name.to_owned(), tree.clone());
    }
    Ok(tree)
}

impl Parser<'_> {
    fn err_at(&self, pos: usize, msg: &str) -> String {
        format!("template: {}:{}: {msg}", self.name, line_of(self.src, pos))
    }

    fn prev_pos(&self) -> usize {
        self.toks.get(self.i.saturating_sub(1)).map_or(0, |t| t.pos)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.src.len(), |t| t.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).map(|t| t.tok.clone());
        self.i += 1;
        t
    }

    fn skip_space(&mut self) {
        while self.peek() == Some(&Tok::Space) {
            self.i += 1;
        }
    }

    fn next_non_space(&mut self) -> Option<Tok> {
        self.skip_space();
        self.next()
    }

    fn expect_right(&mut self, context: &str) -> Result<(), String> {
        match self.next_non_space() {
            Some(Tok::Right) => Ok(()),
            other => Err(self.err_at(
                self.prev_pos(),
                &format!("unexpected {} in {context}", describe(other.as_ref())),
            )),
        }
    }

    /// Parses nodes until `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, Stop), String> {
        let mut out = Vec::new();
        loop {
            let Some(tok) = self.next() else {
                return Ok((out, Stop::Eof));
            };
            match tok {
                Tok::Text(t) => out.push(Node::Text(t)),
                Tok::Left => {
                    let action_pos = self.prev_pos();
                    self.skip_space();
                    let kw_pos = self.pos();
                    match self.peek().cloned() {
                        Some(Tok::Keyword("end")) => {
                            self.i += 1;
                            self.expect_right("end")?;
                            return Ok((out, Stop::End));
                        }
                        Some(Tok::Keyword("else")) => {
                            self.i += 1;
                            return Ok((out, Stop::Else(kw_pos)));
                        }
                        Some(Tok::Keyword(kw)) => {
                            self.i += 1;
                            if let Some(n) = self.keyword(kw, kw_pos, top)? {
                                out.push(n);
                            }
                        }
                        _ => {
                            let pipe = self.pipeline("command", action_pos)?;
                            out.push(Node::Action(pipe));
                        }
                    }
                }
                other => {
                    return Err(self.err_at(
                        self.prev_pos(),
                        &format!("unexpected {}", describe(Some(&other))),
                    ))
                }
            }
        }
    }

    fn keyword(&mut self, kw: &str, pos: usize, top: bool) -> Result<Option<Node>, String> {
        Ok(Some(match kw {
            "if" => Node::If(self.branch("if")?),
            "with" => Node::With(self.branch("with")?),
            "range" => {
                self.range_depth += 1;
                let b = self.branch("range");
                self.range_depth -= 1;
                Node::Range(b?)
            }
            "break" | "continue" => {
                if self.range_depth == 0 {
                    return Err(self.err_at(pos, &format!("{{{{{kw}}}}} outside {{{{range}}}}")));
                }
                self.expect_right(kw)?;
                if kw == "break" {
                    Node::Break(pos)
                } else {
                    Node::Continue(pos)
                }
            }
            "template" => {
                let name = self.template_name("template")?;
                self.skip_space();
                let pipe = if self.peek() == Some(&Tok::Right) {
                    self.i += 1;
                    None
                } else {
                    Some(self.pipeline("template clause", pos)?)
                };
                Node::Template { name, pipe, pos }
            }
            "define" | "block" => {
                if kw == "define" && !top {
                    return Err(self.err_at(pos, "unexpected <define> in command"));
                }
                let name = self.template_name(kw)?;
                let pipe = if kw == "block" {
                    Some(self.pipeline("block clause", pos)?)
                } else {
                    self.expect_right("define clause")?;
                    None
                };
                let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
                let (list, end) = self.list(false)?;
                self.vars = saved;
                if !matches!(end, Stop::End) {
                    return Err(self.err_at(pos, &format!("unexpected EOF in {kw}")));
                }
                self.set.templates.insert(name.clone(), Rc::new(list));
                if kw == "define" {
                    return Ok(None);
                }
                Node::Template { name, pipe, pos }
            }
            other => return Err(self.err_at(pos, &format!("unexpected <{other}>"))),
        }))
    }

    fn template_name(&mut self, context: &str) -> Result<String, String> {
        match self.next_non_space() {
            Some(Tok::Str(s, _)) => Ok(s),
            other => Err(self.err_at(
                self.prev_pos(),
                &format!(
                    "unexpected {} in {context} clause",
                    describe(other.as_ref())
                ),
            )),
        }
    }

    fn branch(&mut self, context: &str) -> Result<Branch, String> {
        let mark = self.vars.len();
        let pipe = self.pipeline(context, self.pos())?;
        let (list, end) = self.list(false)?;
        let else_list = match end {
            Stop::End => None,
            Stop::Eof => {
                return Err(self.err_at(self.src.len(), &format!("unexpected EOF in {context}")))
            }
            Stop::Else(pos) => {
                self.skip_space();
                match self.peek().cloned() {
                    // `else if` / `else with`: a nested branch that shares our `end`.
                    Some(Tok::Keyword(k)) if (k == "if" || k == "with") && context != "range" => {
                        self.i += 1;
                        let inner = self.branch(k)?;
                        Some(vec![if k == "if" {
                            Node::If(inner)
                        } else {
                            Node::With(inner)
                        }])
                    }
                    _ => {
                        self.expect_right("else")?;
                        let (l, e) = self.list(false)?;
                        match e {
                            Stop::End => Some(l),
                            Stop::Else(p) => {
                                return Err(self.err_at(p, "expected end; found {{else}}"))
                            }
                            Stop::Eof => {
                                return Err(
                                    self.err_at(pos, &format!("unexpected EOF in {context}"))
                                )
                            }
                        }
                    }
                }
            }
        };
        self.vars.truncate(mark);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    /// A pipeline up to the closing delimiter (or `)` when nested).
    fn pipeline(&mut self, context: &str, pos: usize) -> Result<Pipe, String> {
        let mut pipe = Pipe {
            pos,
            decl: Vec::new(),
            assign: false,
            cmds: Vec::new(),
        };
        self.skip_space();
        // Declarations: `$x :=`, `$x =`, `$i, $v :=` (range).
        let save = self.i;
        if let Some(Tok::Var(v)) = self.peek().cloned() {
            self.i += 1;
            self.skip_space();
            match self.peek().cloned() {
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    pipe.assign = self.peek() == Some(&Tok::Assign);
                    self.i += 1;
                    pipe.decl.push(v);
                }
                Some(Tok::Comma) if context == "range" => {
                    self.i += 1;
                    self.skip_space();
                    let Some(Tok::Var(v2)) = self.next() else {
                        return Err(
                            self.err_at(self.prev_pos(), "range can only initialize variables")
                        );
                    };
                    self.skip_space();
                    match self.next() {
                        Some(Tok::Declare) => {}
                        Some(Tok::Assign) => pipe.assign = true,
                        _ => return Err(self.err_at(self.prev_pos(), "expected :=")),
                    }
                    pipe.decl.push(v);
                    pipe.decl.push(v2);
                }
                _ => self.i = save,
            }
        }
        for d in &pipe.decl {
            if pipe.assign {
                if !self.vars.contains(d) {
                    return Err(self.err_at(pos, &format!("undefined variable \"{d}\"")));
                }
            } else {
                self.vars.push(d.clone());
            }
        }
        loop {
            self.skip_space();
            match self.peek() {
                Some(Tok::Right) | Some(Tok::RParen) => {
                    let closing = self.next();
                    if pipe.cmds.is_empty() {
                        return Err(self.err_at(pos, &format!("missing value for {context}")));
                    }
                    if closing == Some(Tok::RParen) && context != "parenthesized pipeline" {
                        return Err(self.err_at(self.prev_pos(), "unexpected right paren"));
                    }
                    return Ok(pipe);
                }
                None => return Err(self.err_at(pos, &format!("unclosed action in {context}"))),
                _ => {}
            }
            let cmd = self.command()?;
            pipe.cmds.push(cmd);
            self.skip_space();
            if self.peek() == Some(&Tok::Pipe) {
                self.i += 1;
            }
        }
    }

    fn command(&mut self) -> Result<Cmd, String> {
        let pos = self.pos();
        let mut args = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(Tok::Right) | Some(Tok::RParen) | Some(Tok::Pipe) | None => break,
                _ => {}
            }
            args.push(self.operand()?);
            match self.peek() {
                Some(Tok::Space) | Some(Tok::Right) | Some(Tok::RParen) | Some(Tok::Pipe) => {}
                other => {
                    return Err(self.err_at(
                        self.pos(),
                        &format!("unexpected {} in operand", describe(other)),
                    ))
                }
            }
        }
        if args.is_empty() {
            return Err(self.err_at(pos, "empty command"));
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> Result<Arg, String> {
        let term = self.term()?;
        let mut chain = Vec::new();
        while let Some(Tok::Field(f)) = self.peek().cloned() {
            self.i += 1;
            chain.push(f);
        }
        if chain.is_empty() {
            return Ok(term);
        }
        Ok(match term {
            Arg::Field(mut path) => {
                path.extend(chain);
                Arg::Field(path)
            }
            Arg::Var(v, mut path) => {
                path.extend(chain);
                Arg::Var(v, path)
            }
            Arg::Bool(_) | Arg::Str(..) | Arg::Number(_) | Arg::Nil | Arg::Dot | Arg::Char(..) => {
                return Err(self.err_at(
                    self.prev_pos(),
                    &format!("unexpected . after term {term:?}"),
                ))
            }
            other => Arg::Chain(Box::new(other), chain),
        })
    }

    fn term(&mut self) -> Result<Arg, String> {
        let pos = self.pos();
        Ok(match self.next() {
            Some(Tok::Ident(name)) => Arg::Ident(name),
            Some(Tok::Dot) => Arg::Dot,
            Some(Tok::Nil) => Arg::Nil,
            Some(Tok::Bool(b)) => Arg::Bool(b),
            Some(Tok::Number(n)) => {
                if number_value(&n).is_none() {
                    return Err(self.err_at(pos, &format!("bad number syntax: {n:?}")));
                }
                Arg::Number(n)
            }
            Some(Tok::Char(c, raw)) => Arg::Char(c, raw),
            Some(Tok::Str(s, raw)) => Arg::Str(s, raw),
            Some(Tok::Field(f)) => Arg::Field(vec![f]),
            Some(Tok::Var(v)) => {
                if !self.vars.contains(&v) {
                    return Err(self.err_at(pos, &format!("undefined variable \"{v}\"")));
                }
                Arg::Var(v, Vec::new())
            }
            Some(Tok::LParen) => {
                let p = self.pipeline("parenthesized pipeline", pos)?;
                Arg::Pipe(Box::new(p))
            }
            other => {
                return Err(self.err_at(
                    pos,
                    &format!("unexpected {} in operand", describe(other.as_ref())),
                ))
            }
        })
    }
}

/// A number literal's value: an int, or a float when it has a fraction or exponent.
pub fn number_value(text: &str) -> Option<super::value::Val> {
    use super::value::Val;
    let t = text.replace('_', "");
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let lower = body.to_ascii_lowercase();
    let radix = |prefix: &str, r: u32| {
        lower
            .strip_prefix(prefix)
            .and_then(|d| i64::from_str_radix(d, r).ok())
    };
    let int = radix("0x", 16)
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
        .or_else(|| {
            if lower.len() > 1
                && lower.starts_with('0')
                && lower.bytes().all(|c| c.is_ascii_digit())
            {
                i64::from_str_radix(&lower[1..], 8).ok()
            } else {
                lower.parse::<i64>().ok()
            }
        });
    if let Some(i) = int {
        return Some(Val::Int(if neg { -i } else { i }));
    }
    if lower.starts_with("0x") {
        return None;
    }
    let f: f64 = lower.parse().ok()?;
    Some(Val::Float(if neg { -f } else { f }))
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "EOF".into(),
        Some(Tok::Right) => "<right delimiter>".into(),
        Some(Tok::Left) => "<left delimiter>".into(),
        Some(Tok::Text(t)) => format!("{t:?}"),
        Some(Tok::Ident(i)) => format!("<{i}>"),
        Some(Tok::Keyword(k)) => format!("<{k}>"),
        Some(other) => format!("{other:?}"),
    }
}
