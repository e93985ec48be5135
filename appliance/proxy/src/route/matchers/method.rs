//! `http.matchers.method`: exact, case-sensitive method names (Caddy upper-cases them in
//! the Caddyfile adapter, not at match time).

use serde_json::Value;

use super::super::ctx::Ctx;
use super::super::Result;

#[derive(Debug)]
pub struct MatchMethod(Vec<String>);

impl MatchMethod {
    pub fn compile(v: &Value) -> Result<MatchMethod> {
        Ok(MatchMethod(super::strings(v, "method")?))
    }

    pub fn matches(&self, ctx: &Ctx<'_, '_>) -> bool {
        self.0.contains(&ctx.method)
    }
}
