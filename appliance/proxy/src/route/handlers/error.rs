//! `http.handlers.error` (the `error` directive): fails the request with a status (500 by
//! default) and a message, which the error routes see as `{http.error.*}`.

use serde_json::{Map, Value};

use super::super::ctx::{Ctx, HandlerError};
use super::super::placeholder::{replace_all, replace_known};
use super::super::Result;
use super::static_response::status_text;

#[derive(Debug)]
pub struct StaticError {
    message: String,
    status: Option<String>,
}

impl StaticError {
    pub fn compile(m: &Map<String, Value>) -> Result<StaticError> {
        Ok(StaticError {
            message: m
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            status: status_text(m.get("status_code"))?,
        })
    }

    pub fn run(&self, ctx: &Ctx<'_, '_>) -> HandlerError {
        let status = match &self.status {
            None => 500,
            Some(s) => match replace_all(s, ctx).parse::<u16>() {
                Ok(n) => n,
                Err(e) => {
                    return HandlerError {
                        status: 500,
                        message: e.to_string(),
                    }
                }
            },
        };
        HandlerError {
            status,
            message: replace_known(&self.message, ctx),
        }
    }
}
