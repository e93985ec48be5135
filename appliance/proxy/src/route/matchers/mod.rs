//! Request matchers (`http.matchers.*`): a matcher set matches when all of its matchers do,
//! and a route matches when any of its sets does (Caddy's `MatcherSets.AnyMatch`).

pub mod expression;
pub mod file;
pub mod header;
pub mod host;
pub mod method;
pub mod not;
pub mod path;
pub mod protocol;
pub mod query;
pub mod regexp;
pub mod remote_ip;
pub mod vars;

use serde_json::Value;

use super::ctx::Ctx;
use super::matchers::path::clean_path;
use super::{err, str_list, Result};

/// One provisioned matcher.
#[derive(Debug)]
pub enum Matcher {
    Host(host::MatchHost),
    Path(path::MatchPath),
    PathRe(regexp::MatchRegexp),
    Method(method::MatchMethod),
    Header(header::MatchHeader),
    HeaderRe(header::MatchHeaderRe),
    Query(query::MatchQuery),
    RemoteIp(remote_ip::MatchRemoteIp),
    Protocol(protocol::MatchProtocol),
    Not(not::MatchNot),
    Vars(vars::MatchVars),
    VarsRe(vars::MatchVarsRe),
    File(file::MatchFile),
    Expression(expression::MatchExpression),
}

impl Matcher {
    pub fn matches(&self, ctx: &mut Ctx<'_, '_>) -> bool {
        match self {
            Matcher::Host(m) => m.matches(ctx),
            Matcher::Path(m) => m.matches(ctx),
            Matcher::PathRe(m) => {
                let p = clean_path(&ctx.uri.path, true);
                m.matches(&p, ctx)
            }
            Matcher::Method(m) => m.matches(ctx),
            Matcher::Header(m) => m.matches(ctx),
            Matcher::HeaderRe(m) => m.matches(ctx),
            Matcher::Query(m) => m.matches(ctx),
            Matcher::RemoteIp(m) => m.matches(ctx),
            Matcher::Protocol(m) => m.matches(ctx),
            Matcher::Not(m) => m.matches(ctx),
            Matcher::Vars(m) => m.matches(ctx),
            Matcher::VarsRe(m) => m.matches(ctx),
            Matcher::File(m) => m.matches(ctx),
            Matcher::Expression(m) => m.matches(ctx),
        }
    }
}

/// Matchers that must all match.
#[derive(Debug)]
pub struct MatcherSet(pub Vec<Matcher>);

impl MatcherSet {
    pub fn matches(&self, ctx: &mut Ctx<'_, '_>) -> bool {
        self.0.iter().all(|m| m.matches(ctx))
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
            "path_regexp" => Matcher::PathRe(regexp::MatchRegexp::compile(arg)?),
            "method" => Matcher::Method(method::MatchMethod::compile(arg)?),
            "header" => Matcher::Header(header::MatchHeader::compile(arg)?),
            "header_regexp" => Matcher::HeaderRe(header::MatchHeaderRe::compile(arg)?),
            "query" => Matcher::Query(query::MatchQuery::compile(arg)?),
            "remote_ip" => Matcher::RemoteIp(remote_ip::MatchRemoteIp::compile(arg, false)?),
            "client_ip" => Matcher::RemoteIp(remote_ip::MatchRemoteIp::compile(arg, true)?),
            "protocol" => Matcher::Protocol(protocol::MatchProtocol::compile(arg)?),
            "not" => Matcher::Not(not::MatchNot::compile(arg)?),
            "vars" => Matcher::Vars(vars::MatchVars::compile(arg)?),
            "vars_regexp" => Matcher::VarsRe(vars::MatchVarsRe::compile(arg)?),
            "file" => Matcher::File(file::MatchFile::compile(arg)?),
            "expression" => Matcher::Expression(expression::MatchExpression::compile(arg)?),
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
    str_list(Some(v), what)
}
