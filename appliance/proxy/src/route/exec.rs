//! Evaluation of a compiled route list against one request, with Caddy's middleware
//! semantics: routes run in order; a route that does not match passes to the next; a matched
//! route in an already-satisfied `group` is skipped; a `terminal` route ends the chain after
//! its handlers; a subroute that falls through continues with the enclosing list; reaching
//! the end of the chain writes nothing, which Go turns into an empty 200. A handler error
//! restores the original method and URI and runs the server's error routes, whose own end
//! writes the error status.

use super::ctx::{Ctx, HandlerError};
use super::handlers::file_server::Served;
use super::handlers::Handler;
use super::{Route, Server};

/// How a chain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Fell off the end of this list: the enclosing chain continues.
    Next,
    /// A terminal route finished: nothing after it runs.
    Stop,
    /// A handler wrote the response.
    Responded,
    /// A handler asked to drop the connection without a response.
    Abort,
    /// A handler failed the request.
    Error(HandlerError),
    /// A `reverse_proxy` needs a round trip (`ctx.proxy.call`); the routes run again after.
    Proxy,
}

/// What the connection should do once the routes have run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send `ctx.resp`.
    Respond,
    Abort,
    /// Perform `ctx.proxy.call`, then run the routes again with its result.
    Proxy,
}

/// Runs `routes` in order (Caddy's compiled route chain).
pub fn run<'p>(routes: &'p [Route], ctx: &mut Ctx<'p, '_>) -> Flow {
    for route in routes {
        if !route.matcher_sets.is_empty() && !route.matcher_sets.iter().any(|s| s.matches(ctx)) {
            if let Some(e) = ctx.matcher_error.take() {
                return Flow::Error(e);
            }
            continue;
        }
        if let Some(g) = &route.group {
            if !ctx.groups.insert(g.as_str()) {
                continue;
            }
        }
        ctx.trace.enter(routes, route);
        for h in &route.handlers {
            let flow = match h {
                Handler::StaticResponse(s) if s.abort => Flow::Abort,
                Handler::StaticResponse(s) => match s.respond(ctx) {
                    Ok(true) => Flow::Responded,
                    Ok(false) => Flow::Next,
                    Err(e) => Flow::Error(e),
                },
                Handler::Subroute(s) => s.run(ctx),
                Handler::Headers(h) => {
                    h.run(ctx);
                    Flow::Next
                }
                Handler::Rewrite(r) => {
                    r.run(ctx);
                    Flow::Next
                }
                Handler::Vars(v) => {
                    v.run(ctx);
                    Flow::Next
                }
                Handler::Map(m) => {
                    ctx.maps.push(m);
                    Flow::Next
                }
                Handler::Error(e) => Flow::Error(e.run(ctx)),
                Handler::RequestBody(b) => {
                    b.run(ctx);
                    Flow::Next
                }
                Handler::Invoke(i) => i.run(ctx),
                Handler::LogAppend(l) => {
                    l.run(ctx);
                    Flow::Next
                }
                Handler::Metrics(m) => {
                    m.respond(ctx);
                    Flow::Responded
                }
                Handler::Intercept(i) => {
                    ctx.intercepts.push(i);
                    Flow::Next
                }
                Handler::Authentication(a) => match a.run(ctx) {
                    Ok(()) => Flow::Next,
                    Err(e) => Flow::Error(e),
                },
                Handler::Encode(e) => {
                    e.run(ctx);
                    Flow::Next
                }
                Handler::ReverseProxy(r) => r.run(ctx),
                Handler::CopyResponse(c) => c.run(ctx),
                Handler::CopyResponseHeaders(c) => c.run(ctx),
                Handler::Cache(c) => c.run(ctx),
                Handler::Templates(t) => {
                    ctx.templates.push(t);
                    Flow::Next
                }
                Handler::FileServer(f) => match f.serve(ctx) {
                    Served::Responded => Flow::Responded,
                    Served::Next => Flow::Next,
                    Served::Error(e) => Flow::Error(e),
                },
            };
            let mut flow = flow;
            if flow == Flow::Responded && ctx.proxy.relay.is_none() {
                // Templates sit inside the intercepts and encoders (Caddy's order).
                for t in std::mem::take(&mut ctx.templates).iter().rev() {
                    if let Err(e) = t.apply(ctx) {
                        flow = Flow::Error(e);
                        break;
                    }
                }
            }
            if flow == Flow::Responded {
                // The response passes out through the wrappers around this handler.
                if let Some(i) = ctx.intercepts.pop() {
                    flow = i.intercept(ctx);
                }
            }
            if flow == Flow::Responded && ctx.proxy.relay.is_none() {
                for (enc, name) in std::mem::take(&mut ctx.encoders).iter().rev() {
                    enc.apply(name, ctx);
                }
            } else if flow == Flow::Responded {
                // A relayed body is encoded as it streams, by the innermost encoder.
                let encoders = std::mem::take(&mut ctx.encoders);
                ctx.proxy.encode = encoders.last().map(|(enc, name)| enc.stream_plan(name));
            }
            if flow != Flow::Next {
                return flow;
            }
        }
        if route.terminal {
            return Flow::Stop;
        }
    }
    Flow::Next
}

/// Runs `server`'s routes (and error routes) for the request in `ctx`; the response is left
/// in `ctx.resp`. A `cache` handler the request passed settles it last, as the outermost
/// wrapper.
pub fn serve<'p>(server: &'p Server, ctx: &mut Ctx<'p, '_>) -> Outcome {
    let outcome = serve_routes(server, ctx);
    super::handlers::cache::settle(ctx, outcome);
    outcome
}

fn serve_routes<'p>(server: &'p Server, ctx: &mut Ctx<'p, '_>) -> Outcome {
    ctx.resp.headers.set("Server", "Caddy");
    ctx.named_routes = &server.named_routes;
    let flow = if ctx.host.is_empty() && ctx.proto == "HTTP/1.1" {
        // Caddy refuses an empty Host before routing, through its error path.
        Flow::Error(HandlerError {
            status: 400,
            message: "missing or empty Host header".to_owned(),
        })
    } else {
        ctx.trace.begin(server);
        run(&server.routes, ctx)
    };
    ctx.trace.end(&flow);
    match flow {
        Flow::Responded => Outcome::Respond,
        // Nothing wrote: Go answers 200 through the base writer, so deferred ops never run.
        Flow::Next | Flow::Stop => Outcome::Respond,
        Flow::Abort => Outcome::Abort,
        Flow::Proxy => Outcome::Proxy,
        Flow::Error(e) => {
            ctx.method = ctx.orig_method.to_owned();
            ctx.uri = ctx.orig_uri.clone();
            ctx.deferred.clear();
            ctx.encoders.clear();
            ctx.intercepts.clear();
            ctx.templates.clear();
            ctx.error = Some(e.clone());
            if server.errors.is_empty() {
                ctx.resp.status = e.status;
                return Outcome::Respond;
            }
            match run(&server.errors, ctx) {
                Flow::Responded => Outcome::Respond,
                Flow::Abort => Outcome::Abort,
                Flow::Proxy => Outcome::Proxy,
                Flow::Next | Flow::Stop => {
                    ctx.write_header(e.status);
                    Outcome::Respond
                }
                Flow::Error(_) => {
                    ctx.resp.status = e.status;
                    Outcome::Respond
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, ParserConfig, Status};
    use crate::route::Program;

    fn serve_json(routes: &str, request: &str) -> crate::http1::Response {
        let cfg = format!(
            r#"{{"apps":{{"http":{{"servers":{{"s":{{"listen":[":1"],"routes":{routes}}}}}}}}}}}"#
        );
        let p = Program::compile(&cfg).unwrap();
        let Ok(Status::Complete(head, _)) =
            parse_request(request.as_bytes(), &ParserConfig::default())
        else {
            panic!("bad test request")
        };
        let mut ctx = Ctx::new(&head, None, None);
        assert_eq!(serve(&p.servers[0], &mut ctx), Outcome::Respond);
        ctx.resp
    }

    fn get(routes: &str, path: &str, host: &str) -> String {
        let r = serve_json(
            routes,
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        );
        String::from_utf8(r.body).unwrap()
    }

    #[test]
    fn first_matching_route_responds() {
        let routes = r#"[{"match":[{"path":["/a"]}],"handle":[{"handler":"static_response","body":"A"}]},
                         {"handle":[{"handler":"static_response","body":"B"}]}]"#;
        assert_eq!(get(routes, "/a", "x"), "A");
        assert_eq!(get(routes, "/b", "x"), "B");
    }

    #[test]
    fn no_route_is_empty_200() {
        let r = serve_json("[]", "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.status, r.body.len()), (200, 0));
        assert_eq!(r.headers.get("Server"), "Caddy");
    }

    #[test]
    fn terminal_subroute_stops_chain() {
        let routes = r#"[{"match":[{"host":["a.test"]}],"handle":[{"handler":"subroute","routes":[
                           {"match":[{"path":["/x"]}],"handle":[{"handler":"static_response","body":"X"}]}]}],
                          "terminal":true},
                         {"handle":[{"handler":"static_response","body":"fallback"}]}]"#;
        assert_eq!(get(routes, "/x", "A.test:80"), "X");
        assert_eq!(get(routes, "/y", "a.test"), "");
        assert_eq!(get(routes, "/y", "b.test"), "fallback");
    }

    #[test]
    fn groups_pick_first() {
        let routes = r#"[{"group":"g","match":[{"path":["/a*"]}],"handle":[{"handler":"subroute","routes":[]}]},
                         {"group":"g","handle":[{"handler":"static_response","body":"second"}]},
                         {"handle":[{"handler":"static_response","body":"end"}]}]"#;
        assert_eq!(get(routes, "/abc", "a"), "end");
        assert_eq!(get(routes, "/zzz", "a"), "second");
    }

    #[test]
    fn placeholders_and_vars() {
        let routes = r#"[{"handle":[{"handler":"vars","n":"{http.request.uri.path.1}","x":1},
                          {"handler":"static_response","body":"{http.request.host}|{http.vars.n}|{http.vars.x}|{http.request.uri.query.a}|{nope}"}]}]"#;
        assert_eq!(get(routes, "/p/q?a=1&a=2", "h:8"), "h|q|1|1,2|{nope}");
    }

    #[test]
    fn rewrite_then_match() {
        let routes = r#"[{"handle":[{"handler":"rewrite","uri":"/new{http.request.uri.path}?x=1"}]},
                         {"match":[{"path":["/new/*"]}],"handle":[{"handler":"static_response","body":"{http.request.uri}"}]}]"#;
        assert_eq!(get(routes, "/old", "h"), "/new/old?x=1");
    }

    #[test]
    fn error_routes_see_error() {
        let cfg = r#"{"apps":{"http":{"servers":{"s":{"listen":[":1"],
            "routes":[{"handle":[{"handler":"error","error":"nope {http.request.uri.path}","status_code":404}]}],
            "errors":{"routes":[{"handle":[{"handler":"static_response","body":"{http.error.status_code} {http.error.message}"}]}]}}}}}}"#;
        let p = Program::compile(cfg).unwrap();
        let req = b"GET /z HTTP/1.1\r\nHost: x\r\n\r\n";
        let Ok(Status::Complete(head, _)) = parse_request(req, &ParserConfig::default()) else {
            panic!()
        };
        let mut ctx = Ctx::new(&head, None, None);
        serve(&p.servers[0], &mut ctx);
        assert_eq!(
            (ctx.resp.status, ctx.resp.body.as_slice()),
            (404, &b"404 nope /z"[..])
        );
    }

    #[test]
    fn deferred_headers_apply_on_write() {
        let routes = r#"[{"handle":[{"handler":"headers","response":{"set":{"X-A":["1"]},"delete":["Server"],"deferred":true}},
                          {"handler":"static_response","body":"b"}]}]"#;
        let r = serve_json(routes, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            (r.headers.get("X-A"), r.headers.has("Server")),
            ("1", false)
        );
    }
}
