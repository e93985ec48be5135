//! Caddy's `MatchRegexp`, shared by `path_regexp`, `header_regexp` and `vars_regexp`: a match
//! stores every capture group as `{http.regexp.N}`, `{http.regexp.NAME.N}` and, for named
//! groups, `{http.regexp.GROUP}` / `{http.regexp.NAME.GROUP}`.

use regex::Regex;
use serde_json::Value;

use super::super::ctx::Ctx;
use super::super::{err, CompileError, Result};

#[derive(Debug)]
pub struct MatchRegexp {
    name: String,
    re: Regex,
}

impl MatchRegexp {
    pub fn compile(v: &Value) -> Result<MatchRegexp> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let pattern = v.get("pattern").and_then(Value::as_str).unwrap_or("");
        if !name.is_empty() && !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return err(format!(
                "invalid regexp name (must contain only word characters): {name}"
            ));
        }
        let re = super::super::regex(pattern)
            .map_err(|e| CompileError(format!("compiling matcher regexp {pattern}: {e}")))?;
        Ok(MatchRegexp { name, re })
    }

    pub fn matches(&self, input: &str, ctx: &mut Ctx<'_, '_>) -> bool {
        let Some(caps) = self.re.captures(input) else {
            return false;
        };
        let mut set = |suffix: String, val: &str| {
            if !self.name.is_empty() {
                ctx.set_capture(
                    format!("http.regexp.{}.{suffix}", self.name),
                    val.to_owned(),
                );
            }
            ctx.set_capture(format!("http.regexp.{suffix}"), val.to_owned());
        };
        for i in 0..caps.len() {
            set(i.to_string(), caps.get(i).map_or("", |m| m.as_str()));
        }
        for (i, group) in self.re.capture_names().enumerate() {
            if let Some(group) = group.filter(|g| !g.is_empty() && i > 0) {
                set(group.to_owned(), caps.get(i).map_or("", |m| m.as_str()));
            }
        }
        true
    }
}
