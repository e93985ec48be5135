//! `http.matchers.not`: matches when none of its matcher sets matches.

use serde_json::Value;

use super::super::ctx::Ctx;
use super::super::{err, Result};
use super::{compile_set, MatcherSet};

#[derive(Debug)]
pub struct MatchNot(Vec<MatcherSet>);

impl MatchNot {
    pub fn compile(v: &Value) -> Result<MatchNot> {
        match v {
            Value::Array(sets) => sets
                .iter()
                .map(compile_set)
                .collect::<Result<_>>()
                .map(MatchNot),
            Value::Object(_) => Ok(MatchNot(vec![compile_set(v)?])),
            _ => err("not: expected matcher sets"),
        }
    }

    pub fn matches(&self, ctx: &mut Ctx<'_, '_>) -> bool {
        !self.0.iter().any(|s| s.matches(ctx))
    }
}
