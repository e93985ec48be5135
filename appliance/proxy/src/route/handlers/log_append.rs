//! `http.handlers.log_append`: adds fields to the access log entry. The engine writes no
//! access log yet, so the handler accepts its config and passes the request on unchanged,
//! which is all a client can observe of it.

use serde_json::{Map, Value};

use super::super::Result;

#[derive(Debug)]
pub struct LogAppend;

impl LogAppend {
    pub fn compile(_: &Map<String, Value>) -> Result<LogAppend> {
        Ok(LogAppend)
    }
}
