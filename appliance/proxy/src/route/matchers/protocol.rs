//! `http.matchers.protocol`: `http`, `https`, `grpc`, `http/1.0`, `http/1.1`, `http/2`,
//! `http/3`, each optionally with `+` for "or later". The engine speaks cleartext HTTP/1.x.

use serde_json::Value;

use super::super::ctx::Ctx;
use super::super::{err, Result};

#[derive(Debug)]
pub struct MatchProtocol(String);

impl MatchProtocol {
    pub fn compile(v: &Value) -> Result<MatchProtocol> {
        match v.as_str() {
            Some(s) => Ok(MatchProtocol(s.to_owned())),
            None => err("protocol: expected a string"),
        }
    }

    pub fn matches(&self, ctx: &Ctx<'_, '_>) -> bool {
        let http11 = ctx.proto == "HTTP/1.1";
        match self.0.as_str() {
            "grpc" => ctx
                .headers
                .get("content-type")
                .starts_with("application/grpc"),
            "http" | "http/1.0+" => true,
            "http/1.0" => !http11,
            "http/1.1" | "http/1.1+" => http11,
            _ => false,
        }
    }
}
