//! Request matchers (`http.matchers.*`): a matcher set matches when all of its matchers do,
//! and a route matches when any of its sets does (Caddy's `MatcherSets.AnyMatch`).

pub mod host;
pub mod method;
pub mod path;

use serde_json::Value;

use super::exec::Req;
use super::{err, Result};

/// One provisioned matcher.
#[derive(Debug)]
pub enum Matcher {
    Host(host::MatchHost),
    Path(path::MatchPath),
    Method(method::MatchMethod),
}

impl Matcher {
    pub fn matches(&self, req: &Req<'_>) -> bool {
        match self {
            Matcher::Host(m) => m.matches(req),
            Matcher::Path(m) => m.matches(req),
            Matcher::Method(m) => m.matches(req),
        }
    }
}

/// Matchers that must all match.
#[derive(Debug)]
pub struct MatcherSet(pub Vec<Matcher>);

impl MatcherSet {
    pub fn matches(&self, req: &Req<'_>) -> bool {
        self.0.iter().all(|m| m.matches(req))
    }
}

/// Compiles one matcher set object (`{"host": [...], "path": [...]}`).
pub fn compile_set(v: &Value) -> Result<MatcherSet> {
    let Value::Object(m) = v else {
        return err("matcher set: expected a JSON object");
    };
    let mut out = Vec::new();
    for (name, arg) in m {
        let matcher = match name.as_str() {
            "host" => Matcher::Host(host::MatchHost::compile(arg)?),
            "path" => Matcher::Path(path::MatchPath::compile(arg)?),
            "method" => Matcher::Method(method::MatchMethod::compile(arg)?),
            other => {
                return err(format!(
                    "module name '{other}': unknown module: http.matchers.{other}"
                ))
            }
        };
        out.push(matcher);
    }
    Ok(MatcherSet(out))
}

/// The strings of a JSON string array argument.
pub(crate) fn strings(v: &Value, what: &str) -> Result<Vec<String>> {
    super::str_list(Some(v), what)
}
