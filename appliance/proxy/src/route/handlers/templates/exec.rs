//! Go `text/template` execution: walks a parsed tree with a dot and variables, evaluates
//! pipelines (the previous command's value becomes the last argument of the next), calls
//! functions and methods, and prints values as `fmt` does. Errors read like Go's:
//! `template: NAME:LINE:COL: executing "NAME" at <CMD>: MSG`.

use std::rc::Rc;

use super::funcs;
use super::lex::line_of;
use super::parse::{number_value, Arg, Branch, Cmd, Node, Pipe, Set};
use super::value::Val;
use super::Env;

/// Why execution stopped.
#[derive(Debug)]
pub enum Fail {
    /// A template error (Caddy answers 500 with it).
    Msg(String),
    /// `httpError N`: the handler fails with that status.
    Http(u16),
    /// No function of that name (only between the function table and its caller).
    NoFunc,
}

/// Nested `template` calls and includes deeper than this fail. Go's limit (100000) relies on
/// its growable stacks; this one keeps a worker's fixed stack safe, in debug builds too.
pub const MAX_DEPTH: usize = 100;

enum Flow {
    Normal,
    Break,
    Continue,
}

pub struct Exec<'a> {
    pub set: Set,
    pub env: &'a mut dyn Env,
    /// The template's name and source, for messages.
    pub name: &'a str,
    pub src: &'a str,
    pub vars: Vec<(String, Val)>,
    pub out: String,
    pub depth: usize,
    /// The context object (`.`) the template started with, for `include`.
    pub root: Val,
}

impl<'a> Exec<'a> {
    pub fn new(set: Set, env: &'a mut dyn Env, name: &'a str, src: &'a str, dot: Val) -> Self {
        Exec {
            set,
            env,
            name,
            src,
            vars: vec![("$".into(), dot.clone())],
            out: String::new(),
            depth: 0,
            root: dot,
        }
    }

    /// Runs the template `name` of the set with `dot`.
    pub fn run(&mut self, name: &str, dot: &Val) -> Result<(), Fail> {
        let Some(tree) = self.set.templates.get(name).cloned() else {
            return Err(Fail::Msg(format!(
                "template: {name}: \"{name}\" is an incomplete or empty template"
            )));
        };
        self.list(&tree, dot).map(|_| ())
    }

    fn err(&self, pos: usize, at: &str, msg: &str) -> Fail {
        let line_start = self.src[..pos.min(self.src.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        Fail::Msg(format!(
            "template: {}:{}:{}: executing \"{}\" at <{}>: {}",
            self.name,
            line_of(self.src, pos),
            pos - line_start,
            self.name,
            at,
            msg
        ))
    }

    fn list(&mut self, nodes: &[Node], dot: &Val) -> Result<Flow, Fail> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.to_text());
                    }
                }
                Node::If(b) | Node::With(b) => {
                    let flow = self.if_or_with(b, dot, matches!(n, Node::With(_)))?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.range(b, dot)?,
                Node::Template { name, pipe, pos } => {
                    let Some(tree) = self.set.templates.get(name).cloned() else {
                        return Err(self.err(
                            *pos,
                            &format!("template {name:?}"),
                            &format!("template {name:?} not defined"),
                        ));
                    };
                    let new_dot = match pipe {
                        Some(p) => self.pipe(p, dot)?,
                        None => Val::Missing,
                    };
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(self.err(
                            *pos,
                            &format!("template {name:?}"),
                            "exceeded maximum template depth (100)",
                        ));
                    }
                    let saved =
                        std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
                    let r = self.list(&tree, &new_dot);
                    self.vars = saved;
                    self.depth -= 1;
                    r?;
                }
                Node::Break(_) => return Ok(Flow::Break),
                Node::Continue(_) => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    /// Go's `walkIfOrWith`: `with` runs its body with the pipeline's value as the dot.
    fn if_or_with(&mut self, b: &Branch, dot: &Val, with: bool) -> Result<Flow, Fail> {
        let mark = self.vars.len();
        let v = self.pipe(&b.pipe, dot)?;
        let flow = if v.truth() {
            self.list(&b.list, if with { &v } else { dot })?
        } else if let Some(e) = &b.else_list {
            self.list(e, dot)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn range(&mut self, b: &Branch, dot: &Val) -> Result<(), Fail> {
        let mark = self.vars.len();
        let v = self.pipe_value(&b.pipe, dot)?;
        let items: Vec<(Val, Val)> = match &v {
            Val::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, x)| (Val::Int(i as i64), x.clone()))
                .collect(),
            Val::Map(m) => m
                .iter()
                .map(|(k, x)| (Val::from(k.as_str()), x.clone()))
                .collect(),
            Val::Int(n) => (0..*n).map(|i| (Val::Int(i), Val::Int(i))).collect(),
            Val::Missing | Val::Nil => Vec::new(),
            other => {
                return Err(self.err(
                    b.pipe.pos,
                    &b.pipe.to_string(),
                    &format!("range can't iterate over {}", other.to_text()),
                ))
            }
        };
        if items.is_empty() {
            if let Some(e) = &b.else_list {
                self.list(e, dot)?;
            }
            self.vars.truncate(mark);
            return Ok(());
        }
        for (k, x) in items {
            match b.pipe.decl.as_slice() {
                [one] => self.set_var(one, x.clone(), b.pipe.assign),
                [key, val] => {
                    self.set_var(key, k, b.pipe.assign);
                    self.set_var(val, x.clone(), b.pipe.assign);
                }
                _ => {}
            }
            let flow = self.list(&b.list, &x)?;
            self.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: Val, assign: bool) {
        if assign {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v;
                return;
            }
        }
        // A redeclaration in a loop body replaces the previous iteration's.
        self.vars.push((name.to_owned(), v));
    }

    /// A pipeline's value without its declarations (range declares per element).
    fn pipe_value(&mut self, p: &Pipe, dot: &Val) -> Result<Val, Fail> {
        let mut v: Option<Val> = None;
        for c in &p.cmds {
            // Go unwraps an empty-interface result: a nil one is then no value at all.
            v = Some(match self.command(c, dot, v)? {
                Val::Nil => Val::Missing,
                other => other,
            });
        }
        Ok(v.unwrap_or(Val::Missing))
    }

    fn pipe(&mut self, p: &Pipe, dot: &Val) -> Result<Val, Fail> {
        let v = self.pipe_value(p, dot)?;
        for d in &p.decl {
            self.set_var(d, v.clone(), p.assign);
        }
        Ok(v)
    }

    fn var(&self, name: &str) -> Val {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(Val::Missing, |(_, v)| v.clone())
    }

    fn command(&mut self, c: &Cmd, dot: &Val, last: Option<Val>) -> Result<Val, Fail> {
        let first = &c.args[0];
        let at = c.to_string();
        let rest = &c.args[1..];
        let not_fn = |s: &Self, what: &str| {
            if !rest.is_empty() || last.is_some() {
                Err(s.err(
                    c.pos,
                    &at,
                    &format!("can't give argument to non-function {what}"),
                ))
            } else {
                Ok(())
            }
        };
        match first {
            Arg::Ident(name) => self.call(name, rest, dot, last, c.pos, &at),
            Arg::Field(path) => {
                let args = self.args(rest, dot, last)?;
                self.chain(dot.clone(), path, args, c.pos, &at)
            }
            Arg::Var(v, path) => {
                let base = self.var(v);
                if path.is_empty() {
                    not_fn(self, v)?;
                    return Ok(base);
                }
                let args = self.args(rest, dot, last)?;
                self.chain(base, path, args, c.pos, &at)
            }
            Arg::Chain(inner, path) => {
                let base = self.arg(inner, dot)?;
                let args = self.args(rest, dot, last)?;
                self.chain(base, path, args, c.pos, &at)
            }
            Arg::Pipe(p) => {
                not_fn(self, &first.to_string())?;
                self.pipe(p, dot)
            }
            Arg::Nil => Err(self.err(c.pos, &at, "nil is not a command")),
            other => {
                not_fn(self, &other.to_string())?;
                self.arg(other, dot)
            }
        }
    }

    fn args(&mut self, rest: &[Arg], dot: &Val, last: Option<Val>) -> Result<Vec<Val>, Fail> {
        let mut out = Vec::with_capacity(rest.len() + 1);
        for a in rest {
            out.push(self.arg(a, dot)?);
        }
        out.extend(last);
        Ok(out)
    }

    /// An argument's value (Go's `evalArg` for an `interface{}` parameter).
    fn arg(&mut self, a: &Arg, dot: &Val) -> Result<Val, Fail> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Nil => Val::Nil,
            Arg::Bool(b) => Val::Bool(*b),
            Arg::Number(t) => number_value(t).unwrap_or(Val::Missing),
            Arg::Char(c, _) => Val::Int(*c),
            Arg::Str(s, _) => Val::from(s.as_str()),
            Arg::Field(path) => self.chain(dot.clone(), path, Vec::new(), 0, &a.to_string())?,
            Arg::Var(v, path) => {
                let base = self.var(v);
                if path.is_empty() {
                    base
                } else {
                    self.chain(base, path, Vec::new(), 0, &a.to_string())?
                }
            }
            Arg::Chain(inner, path) => {
                let base = self.arg(inner, dot)?;
                self.chain(base, path, Vec::new(), 0, &a.to_string())?
            }
            Arg::Pipe(p) => {
                let mark = self.vars.len();
                let v = self.pipe(p, dot)?;
                self.vars.truncate(mark);
                v
            }
            Arg::Ident(name) => self.call(name, &[], dot, None, 0, name)?,
        })
    }

    /// `.A.B.C args`: fields in turn; the last may be a method taking `args`.
    fn chain(
        &mut self,
        mut recv: Val,
        path: &[String],
        args: Vec<Val>,
        pos: usize,
        at: &str,
    ) -> Result<Val, Fail> {
        for (i, name) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            let a: &[Val] = if last { &args } else { &[] };
            recv = self.field(&recv, name, a, pos, at)?;
        }
        Ok(recv)
    }

    fn field(
        &mut self,
        recv: &Val,
        name: &str,
        args: &[Val],
        pos: usize,
        at: &str,
    ) -> Result<Val, Fail> {
        match recv {
            Val::Missing => Ok(Val::Missing),
            Val::Map(m) => {
                if !args.is_empty() {
                    return Err(self.err(
                        pos,
                        at,
                        &format!("{name} is not a method but has arguments"),
                    ));
                }
                Ok(m.get(name).cloned().unwrap_or(Val::Missing))
            }
            Val::Obj(o) => {
                let o = Rc::clone(o);
                match o.member(name, args, self.env) {
                    Some(Ok(v)) => Ok(v),
                    Some(Err(e)) => Err(self.err(pos, at, &format!("error calling {name}: {e}"))),
                    None => Err(self.err(
                        pos,
                        at,
                        &format!("can't evaluate field {name} in type {}", o.type_name()),
                    )),
                }
            }
            Val::Nil => Err(self.err(
                pos,
                at,
                &format!("nil pointer evaluating interface {{}}.{name}"),
            )),
            other => Err(self.err(
                pos,
                at,
                &format!("can't evaluate field {name} in type {}", other.type_name()),
            )),
        }
    }

    fn call(
        &mut self,
        name: &str,
        rest: &[Arg],
        dot: &Val,
        last: Option<Val>,
        pos: usize,
        at: &str,
    ) -> Result<Val, Fail> {
        // `and`/`or` evaluate their arguments only as far as needed.
        if name == "and" || name == "or" {
            if rest.is_empty() && last.is_none() {
                return Err(self.err(
                    pos,
                    at,
                    &format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut v = Val::Missing;
            for a in rest {
                v = self.arg(a, dot)?;
                if v.truth() == (name == "or") {
                    return Ok(v);
                }
            }
            return Ok(last.unwrap_or(v));
        }
        let args = self.args(rest, dot, last)?;
        // `include` recurses: it stays out of the function table's large stack frame.
        let result = if name == "include" {
            match args.split_first() {
                Some((Val::Str(file), rest)) => Some(super::include(self, file, rest.to_vec())),
                _ => Some(Err(Fail::Msg(
                    "wrong type for value; expected string".into(),
                ))),
            }
        } else {
            funcs::call(self, name, args)
        };
        match result {
            Some(Ok(v)) => Ok(v),
            Some(Err(Fail::Msg(m))) if !m.starts_with("template: ") => {
                Err(self.err(pos, at, &format!("error calling {name}: {m}")))
            }
            Some(Err(e)) => Err(e),
            None => Err(Fail::Msg(format!(
                "template: {}:{}: function {name:?} not defined",
                self.name,
                line_of(self.src, pos)
            ))),
        }
    }
}
