//! `http.handlers.log_append`: adds a field to the request's access log entry. The value is
//! expanded with placeholders after the rest of the chain ran (so response placeholders
//! see the response), or as the handler runs with `early`.

use serde_json::{Map, Value};

use super::super::ctx::Ctx;
use super::super::placeholder::replace_all;
use super::super::Result;

#[derive(Debug)]
pub struct LogAppend {
    pub key: String,
    value: String,
    early: bool,
}

impl LogAppend {
    pub fn compile(m: &Map<String, Value>) -> Result<LogAppend> {
        let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Ok(LogAppend {
            key: text("key"),
            value: text("value"),
            early: m.get("early").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The field's value for the request as it stands.
    pub fn value(&self, ctx: &Ctx<'_, '_>) -> String {
        replace_all(&self.value, ctx)
    }

    pub fn run<'p>(&'p self, ctx: &mut Ctx<'p, '_>) {
        let early = self.early.then(|| self.value(ctx));
        ctx.trace.log_append(self, early);
    }
}
