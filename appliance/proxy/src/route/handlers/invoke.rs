//! `http.handlers.invoke`: runs one of the server's `named_routes` in place; when it falls
//! through, the chain continues after the invoking handler.

use serde_json::{Map, Value};

use super::super::ctx::{Ctx, HandlerError};
use super::super::exec::{run, Flow};
use super::super::{err, Result};

#[derive(Debug)]
pub struct Invoke {
    name: String,
}

impl Invoke {
    pub fn compile(m: &Map<String, Value>) -> Result<Invoke> {
        match m.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => Ok(Invoke { name: n.to_owned() }),
            _ => err("invoke: name is required"),
        }
    }

    pub fn run<'p>(&self, ctx: &mut Ctx<'p, '_>) -> Flow {
        let route = ctx
            .named_routes
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, r)| r);
        match route {
            Some(r) => run(std::slice::from_ref(r), ctx),
            None => Flow::Error(HandlerError {
                status: 500,
                message: format!("invoke: route '{}' not loaded", self.name),
            }),
        }
    }
}
