//! Evaluation of a compiled route list against one request, with Caddy's middleware
//! semantics: routes run in order; a route that does not match passes to the next; a matched
//! route in an already-satisfied `group` is skipped; a `terminal` route ends the chain after
//! its handlers; a subroute that falls through continues with the enclosing list; reaching
//! the end of the chain writes nothing, which Go turns into an empty 200.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::handlers::Handler;
use super::{Route, Server};
use crate::http1::Response;

/// The request as matchers and handlers see it.
#[derive(Debug)]
pub struct Req<'a> {
    pub method: &'a str,
    /// Go's `Request.Host` (may carry a port).
    pub host: &'a str,
    /// Decoded path (`URL.Path`).
    pub path: String,
    /// Path as sent (`URL.EscapedPath()`).
    pub escaped_path: String,
    /// Raw query without `?`.
    pub query: String,
    pub headers: &'a [(&'a str, &'a str)],
    pub remote: Option<SocketAddr>,
}

fn unhex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Go's `url.PathUnescape` (input already validated by the parser).
pub fn path_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (unhex(b[i + 1]), unhex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<'a> Req<'a> {
    /// Splits a request target into path and query the way Go's `url.ParseRequestURI` does.
    pub fn new(
        method: &'a str,
        target: &'a str,
        host: &'a str,
        headers: &'a [(&'a str, &'a str)],
        remote: Option<SocketAddr>,
    ) -> Req<'a> {
        let origin = match target.split_once("://") {
            Some((_, rest)) if !target.starts_with('/') => {
                rest.find(['/', '?']).map_or("", |i| &rest[i..])
            }
            _ => target,
        };
        let (escaped, query) = origin.split_once('?').unwrap_or((origin, ""));
        Req {
            method,
            host,
            path: path_unescape(escaped),
            escaped_path: escaped.to_owned(),
            query: query.to_owned(),
            headers,
            remote,
        }
    }
}

/// How a chain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Fell off the end of this list: the enclosing chain continues.
    Next,
    /// A terminal route finished: nothing after it runs.
    Stop,
    /// A handler wrote the response.
    Responded,
    /// A handler asked to drop the connection without a response.
    Abort,
}

/// What the connection should do with the request's result.
#[derive(Debug)]
pub enum Outcome {
    Respond(Response),
    Abort,
}

struct Ctx<'r, 'a> {
    req: &'r mut Req<'a>,
    resp: Response,
    groups: HashSet<&'r str>,
}

fn run<'r>(routes: &'r [Route], ctx: &mut Ctx<'r, '_>) -> Flow {
    for route in routes {
        if !route.matcher_sets.is_empty() && !route.matcher_sets.iter().any(|s| s.matches(ctx.req))
        {
            continue;
        }
        if let Some(g) = &route.group {
            if !ctx.groups.insert(g.as_str()) {
                continue;
            }
        }
        for h in &route.handlers {
            match h {
                Handler::StaticResponse(s) => {
                    if s.abort {
                        return Flow::Abort;
                    }
                    s.respond(&mut ctx.resp);
                    return Flow::Responded;
                }
                Handler::Subroute(s) => match run(&s.routes, ctx) {
                    Flow::Next => {}
                    other => return other,
                },
            }
        }
        if route.terminal {
            return Flow::Stop;
        }
    }
    Flow::Next
}

/// Runs `server`'s routes for `req` and returns the response Caddy would write.
pub fn serve(server: &Server, req: &mut Req<'_>) -> Outcome {
    let mut resp = Response::new(200);
    resp.set("Server", "Caddy");
    let mut ctx = Ctx {
        req,
        resp,
        groups: HashSet::new(),
    };
    match run(&server.routes, &mut ctx) {
        Flow::Abort => Outcome::Abort,
        Flow::Next | Flow::Stop | Flow::Responded => Outcome::Respond(ctx.resp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Program;

    fn serve_json(routes: &str, method: &str, target: &str, host: &str) -> Response {
        let cfg = format!(
            r#"{{"apps":{{"http":{{"servers":{{"s":{{"listen":[":1"],"routes":{routes}}}}}}}}}}}"#
        );
        let p = Program::compile(&cfg).unwrap();
        let mut req = Req::new(method, target, host, &[], None);
        match serve(&p.servers[0], &mut req) {
            Outcome::Respond(r) => r,
            Outcome::Abort => panic!("abort"),
        }
    }

    fn body(r: &Response) -> &str {
        std::str::from_utf8(&r.body).unwrap()
    }

    #[test]
    fn first_matching_route_responds() {
        let routes = r#"[{"match":[{"path":["/a"]}],"handle":[{"handler":"static_response","body":"A"}]},
                         {"handle":[{"handler":"static_response","body":"B"}]}]"#;
        assert_eq!(body(&serve_json(routes, "GET", "/a", "x")), "A");
        assert_eq!(body(&serve_json(routes, "GET", "/b", "x")), "B");
    }

    #[test]
    fn no_route_is_empty_200() {
        let r = serve_json("[]", "GET", "/", "x");
        assert_eq!((r.status, r.body.len()), (200, 0));
        assert_eq!(r.first("Server"), "Caddy");
    }

    #[test]
    fn terminal_subroute_stops_chain() {
        let routes = r#"[{"match":[{"host":["a.test"]}],"handle":[{"handler":"subroute","routes":[
                           {"match":[{"path":["/x"]}],"handle":[{"handler":"static_response","body":"X"}]}]}],
                          "terminal":true},
                         {"handle":[{"handler":"static_response","body":"fallback"}]}]"#;
        assert_eq!(body(&serve_json(routes, "GET", "/x", "A.test:80")), "X");
        assert_eq!(body(&serve_json(routes, "GET", "/y", "a.test")), "");
        assert_eq!(body(&serve_json(routes, "GET", "/y", "b.test")), "fallback");
    }

    #[test]
    fn nonterminal_subroute_falls_through() {
        let routes = r#"[{"handle":[{"handler":"subroute","routes":[
                           {"match":[{"path":["/x"]}],"handle":[{"handler":"static_response","body":"X"}]}]}]},
                         {"handle":[{"handler":"static_response","body":"after"}]}]"#;
        assert_eq!(body(&serve_json(routes, "GET", "/y", "a")), "after");
    }

    #[test]
    fn groups_pick_first() {
        let routes = r#"[{"group":"g","match":[{"path":["/a*"]}],"handle":[{"handler":"subroute","routes":[]}]},
                         {"group":"g","handle":[{"handler":"static_response","body":"second"}]},
                         {"handle":[{"handler":"static_response","body":"end"}]}]"#;
        assert_eq!(body(&serve_json(routes, "GET", "/abc", "a")), "end");
        assert_eq!(body(&serve_json(routes, "GET", "/zzz", "a")), "second");
    }

    #[test]
    fn absolute_form_and_query() {
        let r = Req::new("GET", "http://h:1/p%20q?a=1", "h:1", &[], None);
        assert_eq!(
            (r.path.as_str(), r.escaped_path.as_str(), r.query.as_str()),
            ("/p q", "/p%20q", "a=1")
        );
    }
}
