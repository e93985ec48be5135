//! `http.handlers.vars`: sets request variables (`{http.vars.*}`, the `vars` matchers).
//! Keys and string values are expanded with placeholders (Caddy's `ReplaceAll`); other JSON
//! values are stored as they are and printed the way Caddy prints them.

use serde_json::{Map, Value};

use super::super::ctx::Ctx;
use super::super::placeholder::replace_all;
use super::super::Result;

#[derive(Debug)]
pub struct Vars(Vec<(String, Value)>);

impl Vars {
    pub fn compile(m: &Map<String, Value>) -> Result<Vars> {
        Ok(Vars(
            m.iter()
                .filter(|(k, _)| *k != "handler")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ))
    }

    pub fn run(&self, ctx: &mut Ctx<'_, '_>) {
        for (k, v) in &self.0 {
            let key = replace_all(k, &*ctx);
            let value = match v {
                Value::String(s) => Value::String(replace_all(s, &*ctx)),
                other => other.clone(),
            };
            ctx.set_var(key, value);
        }
    }
}
