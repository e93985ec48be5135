//! `http.handlers.static_response` (`respond`, `redir`, `abort`).
//!
//! Flow: `abort` drops the connection; otherwise set `Connection: close` if `close`, then the
//! configured headers (names canonicalised, placeholders expanded), then a Content-Type when
//! the body is non-empty and none was set (`application/json` for a JSON object or array,
//! else `text/plain; charset=utf-8`), then the status. Errors: a status that is not an
//! integer after placeholder expansion fails the request with 500, as in Caddy. Performance:
//! bodies without `{` are copied as configured; the JSON check runs once at compile time then.

use serde_json::{Map, Value};

use super::super::ctx::{Ctx, HandlerError};
use super::super::placeholder::{has_placeholder, replace_all, replace_known};
use super::super::{err, str_list, Result};
use crate::http1::header::canonical_key;
use crate::http1::response::encode_interim;

/// A configured field name.
#[derive(Debug)]
enum Name {
    /// Canonicalised when the config was compiled.
    Canonical(String),
    /// Expanded, then canonicalised, per request.
    Template(String),
}

#[derive(Debug)]
pub struct StaticResponse {
    status: Option<String>,
    /// Field names (canonical already unless they hold a placeholder) and values.
    headers: Vec<(Name, Vec<String>)>,
    body: String,
    /// The body may hold a placeholder.
    body_template: bool,
    static_content_type: Option<&'static str>,
    close: bool,
    pub abort: bool,
}

/// A `WeakString` status field as text (`None` when absent or empty).
pub fn status_text(v: Option<&Value>) -> Result<Option<String>> {
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return err("status_code: expected a number or string"),
    })
}

fn content_type_for(body: &str) -> &'static str {
    let t = body.trim();
    let json = t.len() > 2
        && ((t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']')))
        && serde_json::from_str::<Value>(t).is_ok();
    if json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    }
}

impl StaticResponse {
    pub fn compile(m: &Map<String, Value>) -> Result<StaticResponse> {
        let mut headers = Vec::new();
        if let Some(h) = m.get("headers") {
            let Value::Object(h) = h else {
                return err("headers: expected an object");
            };
            for (name, vals) in h {
                let name = if has_placeholder(name) {
                    Name::Template(name.clone())
                } else {
                    Name::Canonical(canonical_key(name))
                };
                headers.push((name, str_list(Some(vals), "headers")?));
            }
        }
        let body = m
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let body_template = has_placeholder(&body);
        let static_content_type =
            (!body.is_empty() && !body_template).then(|| content_type_for(&body));
        Ok(StaticResponse {
            status: status_text(m.get("status_code"))?,
            headers,
            body,
            body_template,
            static_content_type,
            close: m.get("close").and_then(Value::as_bool).unwrap_or(false),
            abort: m.get("abort").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// Writes the response into `ctx.resp`; `Ok(false)` after an interim 103, when the chain
    /// goes on; `Err` when the status does not parse.
    pub fn respond(&self, ctx: &mut Ctx<'_, '_>) -> std::result::Result<bool, HandlerError> {
        if self.close {
            ctx.resp.headers.set("Connection", "close");
        }
        for (k, v) in &self.headers {
            let key = match k {
                Name::Canonical(k) => k.clone(),
                Name::Template(k) => canonical_key(&replace_all(k, &*ctx)),
            };
            let vals = v.iter().map(|x| replace_all(x, &*ctx)).collect();
            ctx.resp.headers.set_raw(key, vals);
        }
        let body = if self.body_template {
            replace_known(&self.body, &*ctx)
        } else {
            self.body.clone()
        };
        let has_type = ctx
            .resp
            .headers
            .raw("Content-Type")
            .and_then(|v| v.first())
            .is_some_and(|v| !v.is_empty());
        if !body.is_empty() && !has_type {
            let ct = self
                .static_content_type
                .unwrap_or_else(|| content_type_for(&body));
            ctx.resp
                .headers
                .set_raw("Content-Type".to_owned(), vec![ct.to_owned()]);
        }
        let mut status = ctx.error.as_ref().map_or(200, |e| e.status);
        if let Some(s) = &self.status {
            status = match replace_all(s, &*ctx).parse::<u16>() {
                Ok(n) if (100..=999).contains(&n) => n,
                Ok(n) => {
                    return Err(HandlerError {
                        status: 500,
                        message: format!("invalid WriteHeader code {n}"),
                    })
                }
                Err(e) => {
                    return Err(HandlerError {
                        status: 500,
                        message: e.to_string(),
                    })
                }
            };
        }
        if status == 103 {
            let http11 = ctx.proto == "HTTP/1.1";
            encode_interim(103, &ctx.resp.headers, http11, &mut ctx.interim);
            return Ok(false);
        }
        ctx.write_header(status);
        ctx.resp.body = body.into_bytes();
        Ok(true)
    }
}
