//! `http.handlers.subroute`: a nested route list evaluated in place; when it falls through,
//! evaluation continues with the routes after the enclosing one. Errors raised inside it go
//! to its own `errors` routes when it has some, which then also continue to the enclosing
//! chain when they fall through.

use serde_json::{Map, Value};

use super::super::ctx::Ctx;
use super::super::exec::{run, Flow};
use super::super::{compile_routes, context, Result, Route};

#[derive(Debug)]
pub struct Subroute {
    routes: Vec<Route>,
    errors: Vec<Route>,
}

impl Subroute {
    pub fn compile(m: &Map<String, Value>) -> Result<Subroute> {
        let routes = context(compile_routes(m.get("routes")), "subroute")?;
        let errors = match m.get("errors").and_then(|e| e.get("routes")) {
            Some(r) => context(compile_routes(Some(r)), "subroute errors")?,
            None => Vec::new(),
        };
        Ok(Subroute { routes, errors })
    }

    pub fn run<'p>(&'p self, ctx: &mut Ctx<'p, '_>) -> Flow {
        match run(&self.routes, ctx) {
            Flow::Error(e) if !self.errors.is_empty() => {
                ctx.error = Some(e);
                run(&self.errors, ctx)
            }
            other => other,
        }
    }
}
