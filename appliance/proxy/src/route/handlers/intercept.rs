//! `http.handlers.intercept`: inspects the response a later handler writes. The first
//! `handle_response` entry whose matcher accepts the status and headers either replaces the
//! status (`status_code`) and lets the body through, or drops the body and runs its routes
//! with `{http.intercept.status_code}` and `{http.intercept.header.*}` set; headers already
//! set stay, as the recorder shares the header map.

use serde_json::{Map, Value};

use super::super::ctx::Ctx;
use super::super::exec::{run, Flow};
use super::super::placeholder::replace_all;
use super::super::{compile_routes, context, Result, Route};
use super::headers::ResponseMatcher;
use super::static_response::status_text;

/// One `handle_response` entry (of `intercept` or of `reverse_proxy`).
#[derive(Debug)]
pub(super) struct HandleResponse {
    pub(super) matcher: Option<ResponseMatcher>,
    pub(super) status: Option<String>,
    pub(super) routes: Vec<Route>,
}

/// The `handle_response` list of `m`; an entry's route errors say `{what} {index}`.
pub(super) fn compile_handle_response(
    m: &Map<String, Value>,
    what: &str,
) -> Result<Vec<HandleResponse>> {
    let mut out = Vec::new();
    for (i, h) in m
        .get("handle_response")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        out.push(HandleResponse {
            matcher: h.get("match").map(ResponseMatcher::compile).transpose()?,
            status: status_text(h.get("status_code"))?,
            routes: context(compile_routes(h.get("routes")), format_args!("{what} {i}"))?,
        });
    }
    Ok(out)
}

#[derive(Debug)]
pub struct Intercept(Vec<HandleResponse>);

impl Intercept {
    pub fn compile(m: &Map<String, Value>) -> Result<Intercept> {
        Ok(Intercept(compile_handle_response(m, "handle_response")?))
    }

    /// Called with the response a later handler wrote; returns how the chain ends now.
    pub fn intercept<'p>(&'p self, ctx: &mut Ctx<'p, '_>) -> Flow {
        let status = ctx.resp.status;
        let Some(h) = self.0.iter().find(|h| {
            h.matcher
                .as_ref()
                .is_none_or(|m| m.matches(status, &ctx.resp.headers))
        }) else {
            return Flow::Responded;
        };
        if let Some(s) = &h.status {
            ctx.resp.status = replace_all(s, &*ctx).parse().unwrap_or(500);
            return Flow::Responded;
        }
        let fields: Vec<(String, String)> = ctx
            .resp
            .headers
            .iter()
            .map(|(k, v)| (format!("http.intercept.header.{k}"), v.join(",")))
            .collect();
        for (k, v) in fields {
            ctx.set_capture(k, v);
        }
        ctx.set_capture("http.intercept.status_code".into(), status.to_string());
        ctx.resp.body.clear();
        // A streamed file or proxied body is dropped too: the intercepting routes answer
        // instead.
        ctx.resp.file = None;
        ctx.proxy.relay = None;
        ctx.resp.status = 200;
        run(&h.routes, ctx)
    }
}
