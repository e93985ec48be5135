//! `http.handlers.static_response` (Caddy's `respond`).
//!
//! Flow: set `Connection: close` if `close`, then the configured headers (names canonicalised),
//! then a Content-Type when the body is non-empty and none was given (`application/json` for a
//! body that is a JSON object or array, else `text/plain; charset=utf-8`), then status and body.
//! Errors: a status code that is not an integer is a compile error (Caddy fails the request
//! with 500 instead; without placeholders the outcome is known up front). `abort` closes the
//! connection without a response. Performance: the response is pre-built at compile time
//! except for placeholders, so serving is a clone of headers and body.

use serde_json::{Map, Value};

use super::super::{err, Result};
use crate::http1::response::canonical_key;
use crate::http1::Response;

#[derive(Debug)]
pub struct StaticResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<String>)>,
    pub body: String,
    pub content_type: Option<&'static str>,
    pub close: bool,
    pub abort: bool,
}

fn status_code(v: &Value) -> Result<u16> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return err("status_code: expected a number or string"),
    };
    match text.parse::<u16>() {
        Ok(n) if (100..=999).contains(&n) => Ok(n),
        _ => err(format!("invalid status code {text:?}")),
    }
}

fn looks_like_json(body: &str) -> bool {
    let t = body.trim();
    t.len() > 2
        && ((t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']')))
        && serde_json::from_str::<Value>(t).is_ok()
}

impl StaticResponse {
    pub fn compile(m: &Map<String, Value>) -> Result<StaticResponse> {
        let status = match m.get("status_code") {
            None | Some(Value::Null) => 200,
            Some(Value::String(s)) if s.is_empty() => 200,
            Some(v) => status_code(v)?,
        };
        let mut headers = Vec::new();
        if let Some(h) = m.get("headers") {
            let Value::Object(h) = h else {
                return err("headers: expected an object");
            };
            for (name, vals) in h {
                let vals = super::super::str_list(Some(vals), "headers")?;
                headers.push((canonical_key(name), vals));
            }
        }
        let body = m
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let has_ct = headers.iter().any(|(k, _)| k == "Content-Type");
        let content_type = (!body.is_empty() && !has_ct).then(|| {
            if looks_like_json(&body) {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            }
        });
        Ok(StaticResponse {
            status,
            headers,
            body,
            content_type,
            close: m.get("close").and_then(Value::as_bool).unwrap_or(false),
            abort: m.get("abort").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// Writes the response into `resp` (which already carries headers set earlier).
    pub fn respond(&self, resp: &mut Response) {
        if self.close {
            resp.set("Connection", "close");
        }
        for (k, v) in &self.headers {
            resp.set_raw(k.clone(), v.clone());
        }
        if let Some(ct) = self.content_type {
            if resp.first("Content-Type").is_empty() {
                resp.set("Content-Type", ct);
            }
        }
        resp.status = self.status;
        if self.status != 103 {
            resp.body = self.body.clone().into_bytes();
        }
    }
}
