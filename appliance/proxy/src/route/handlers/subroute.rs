//! `http.handlers.subroute`: a nested route list evaluated in place; when it falls through,
//! evaluation continues with the routes after the enclosing one. Its own `errors` routes
//! handle errors raised inside it.

use serde_json::{Map, Value};

use super::super::{compile_routes, context, Result, Route};

#[derive(Debug)]
pub struct Subroute {
    pub routes: Vec<Route>,
    pub errors: Vec<Route>,
}

impl Subroute {
    pub fn compile(m: &Map<String, Value>) -> Result<Subroute> {
        let routes = context(compile_routes(m.get("routes")), "subroute")?;
        let errors = match m.get("errors").and_then(|e| e.get("routes")) {
            Some(r) => context(compile_routes(Some(r)), "subroute errors")?,
            None => Vec::new(),
        };
        Ok(Subroute { routes, errors })
    }
}
