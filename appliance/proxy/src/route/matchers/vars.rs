//! `http.matchers.vars` and `http.matchers.vars_regexp`: keys name a variable, or a
//! placeholder when written `{like.this}`; the matcher is true when any key's value equals
//! (or matches) one of its configured values.

use serde_json::Value;

use super::super::ctx::{value_string, Ctx};
use super::super::placeholder::{replace_all, Lookup};
use super::super::{err, str_list, Result};
use super::regexp::MatchRegexp;

fn is_placeholder(key: &str) -> bool {
    key.starts_with('{') && key.ends_with('}') && key.matches('{').count() == 1
}

/// The value to compare for `key`, and whether it came from a placeholder.
fn resolve(key: &str, ctx: &Ctx<'_, '_>) -> (String, bool) {
    if is_placeholder(key) {
        let k = key.trim_matches(['{', '}']);
        (
            ctx.lookup(k).map(|v| v.into_owned()).unwrap_or_default(),
            true,
        )
    } else {
        (
            ctx.var(key)
                .map(value_string)
                .unwrap_or_default()
                .into_owned(),
            false,
        )
    }
}

#[derive(Debug)]
pub struct MatchVars(Vec<(String, Vec<String>)>);

impl MatchVars {
    pub fn compile(v: &Value) -> Result<MatchVars> {
        let Value::Object(m) = v else {
            return err("vars: expected an object");
        };
        m.iter()
            .map(|(k, v)| Ok((k.clone(), str_list(Some(v), "vars")?)))
            .collect::<Result<_>>()
            .map(MatchVars)
    }

    pub fn matches(&self, ctx: &Ctx<'_, '_>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        self.0.iter().any(|(key, vals)| {
            let (val, from_placeholder) = resolve(key, ctx);
            let val = if from_placeholder {
                val
            } else {
                replace_all(&val, ctx)
            };
            vals.iter().any(|v| replace_all(v, ctx) == val)
        })
    }
}

#[derive(Debug)]
pub struct MatchVarsRe(Vec<(String, MatchRegexp)>);

impl MatchVarsRe {
    pub fn compile(v: &Value) -> Result<MatchVarsRe> {
        let Value::Object(m) = v else {
            return err("vars_regexp: expected an object");
        };
        m.iter()
            .map(|(k, v)| Ok((k.clone(), MatchRegexp::compile(v)?)))
            .collect::<Result<_>>()
            .map(MatchVarsRe)
    }

    pub fn matches(&self, ctx: &mut Ctx<'_, '_>) -> bool {
        self.0.iter().any(|(key, re)| {
            let (val, from_placeholder) = resolve(key, ctx);
            let val = if from_placeholder {
                val
            } else {
                replace_all(&val, &*ctx)
            };
            re.matches(&val, ctx)
        })
    }
}
