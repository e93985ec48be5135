//! `http.matchers.header` and `http.matchers.header_regexp`. A field with `null` values matches
//! when the field is absent, `[]` when present at all; otherwise any value may equal any
//! pattern, where `*` matches anything and a leading/trailing `*` makes a suffix/prefix/
//! substring match. `Host` is read from the request host, as Go keeps it out of the map.

use serde_json::Value;

use super::super::ctx::Ctx;
use super::super::placeholder::replace_all;
use super::super::{err, str_list, Result};
use super::regexp::MatchRegexp;

#[derive(Debug)]
pub struct MatchHeader(Vec<(String, Option<Vec<String>>)>);

/// Caddy's header value comparison with `*` wildcards.
pub fn wild_eq(pattern: &str, actual: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (pre, suf) = (
        pattern.starts_with('*'),
        pattern.ends_with('*') && pattern.len() > 1,
    );
    match (pre, suf) {
        (true, true) => actual.contains(&pattern[1..pattern.len() - 1]),
        (true, false) => actual.ends_with(&pattern[1..]),
        (false, true) => actual.starts_with(&pattern[..pattern.len() - 1]),
        (false, false) => actual == pattern,
    }
}

impl MatchHeader {
    pub fn compile(v: &Value) -> Result<MatchHeader> {
        let Value::Object(m) = v else {
            return err("header: expected an object");
        };
        let mut out = Vec::new();
        for (field, vals) in m {
            let vals = match vals {
                Value::Null => None,
                other => Some(str_list(Some(other), "header")?),
            };
            out.push((field.clone(), vals));
        }
        Ok(MatchHeader(out))
    }

    pub fn matches(&self, ctx: &Ctx<'_, '_>) -> bool {
        self.0.iter().all(|(field, allowed)| {
            let actual = ctx.header_values(field);
            match (allowed, actual) {
                (Some(a), Some(_)) if a.is_empty() => true,
                (None, None) => true,
                (Some(a), Some(actual)) => actual
                    .iter()
                    .any(|v| a.iter().any(|p| wild_eq(&replace_all(p, ctx), v))),
                _ => false,
            }
        })
    }
}

#[derive(Debug)]
pub struct MatchHeaderRe(Vec<(String, MatchRegexp)>);

impl MatchHeaderRe {
    pub fn compile(v: &Value) -> Result<MatchHeaderRe> {
        let Value::Object(m) = v else {
            return err("header_regexp: expected an object");
        };
        m.iter()
            .map(|(k, v)| Ok((k.clone(), MatchRegexp::compile(v)?)))
            .collect::<Result<_>>()
            .map(MatchHeaderRe)
    }

    pub fn matches(&self, ctx: &mut Ctx<'_, '_>) -> bool {
        self.0.iter().all(|(field, re)| {
            let vals: Vec<String> = ctx
                .header_values(field)
                .unwrap_or_default()
                .into_iter()
                .map(str::to_owned)
                .collect();
            vals.iter().any(|v| re.matches(v, ctx))
        })
    }
}
