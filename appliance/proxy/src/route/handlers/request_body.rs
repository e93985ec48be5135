//! `http.handlers.request_body`: caps how much of the body later handlers may read
//! (`max_size`); reading past it yields Go's `http: request body too large` error, which the
//! `{http.request.body}` placeholder prints in place of the body, as Caddy does.

use serde_json::{Map, Value};

use super::super::ctx::Ctx;
use super::super::Result;

#[derive(Debug)]
pub struct RequestBody {
    max_size: Option<u64>,
}

impl RequestBody {
    pub fn compile(m: &Map<String, Value>) -> Result<RequestBody> {
        Ok(RequestBody {
            max_size: m.get("max_size").and_then(Value::as_u64).filter(|n| *n > 0),
        })
    }

    pub fn run(&self, ctx: &mut Ctx<'_, '_>) {
        if self.max_size.is_some() {
            ctx.max_body = self.max_size;
        }
    }
}
