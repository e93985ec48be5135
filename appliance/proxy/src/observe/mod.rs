//! Observability of the engine with Caddy's formats: the access log's `handled request`
//! entries (and `http.log.error` entries for handler errors) and the `caddy_http_*`
//! Prometheus metrics.
//!
//! Flow: the route program carries each server's [`ServerObserve`] (compiled with it, so a
//! reload changes logging and metrics with everything else); while the routes run, the
//! request's [`Trace`] (in `Ctx`) notes the top-level routes entered, `log_append` fields
//! and how the chain ended; when a worker has the response, [`finished`] turns that into
//! metric observations in the worker's own shard and log lines for the logger thread.
//! The engine owns one [`Observer`] (registry of shards, logger queue) for its lifetime, so
//! counters survive reloads as Caddy's do.

pub mod access_log;
pub mod encode;
pub mod metrics;
mod roll;

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::route::ctx::{value_string, Ctx};
use crate::route::exec::Flow;
use crate::route::handlers::log_append::LogAppend;
use crate::route::{context, Result, Route, Server};
use access_log::{Entry, Level, Logs, Queue, ServerLogs};
use encode::Fields;
use metrics::{Observation, Registry, Running, Shard};

/// `apps.http.metrics`.
#[derive(Debug)]
pub struct MetricsConfig {
    per_host: bool,
    observe_catchall_hosts: bool,
    /// Exact hosts of every top-level host matcher (Caddy's `scanConfigForHosts`).
    allowed_hosts: HashSet<String>,
}

impl MetricsConfig {
    /// The `host` label: the request's Host (lower-cased, port and all) when it is one the
    /// config names, else `_other`; `None` without `per_host`.
    fn host_label(&self, host: &str) -> Option<String> {
        if !self.per_host {
            return None;
        }
        let host = host.to_ascii_lowercase();
        if self.observe_catchall_hosts || self.allowed_hosts.contains(&host) {
            Some(host)
        } else {
            Some("_other".to_owned())
        }
    }
}

/// What one server observes; the default observes nothing.
#[derive(Debug, Default)]
pub struct ServerObserve {
    name: Option<Arc<str>>,
    metrics: Option<Arc<MetricsConfig>>,
    /// The custom logs (every server writes error entries; access entries need `logs`).
    logs: Option<Arc<Logs>>,
    /// The server's `logs`: access logging is on.
    access: Option<ServerLogs>,
    /// The server has error routes (a handled error is logged at debug level).
    error_routes: bool,
}

/// Compiles `logging` and `apps.http.metrics` of `root` into the servers.
pub fn provision(root: &Map<String, Value>, servers: &mut [Server]) -> Result<()> {
    let http = root.get("apps").and_then(|a| a.get("http"));
    let metrics = http.and_then(|h| h.get("metrics")).map(|m| {
        let flag = |k| m.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut allowed_hosts = HashSet::new();
        let servers_json = http
            .and_then(|h| h.get("servers"))
            .and_then(Value::as_object);
        for s in servers_json.into_iter().flat_map(|s| s.values()) {
            let routes = s.get("routes").and_then(Value::as_array);
            for r in routes.into_iter().flatten() {
                let sets = r.get("match").and_then(Value::as_array);
                for set in sets.into_iter().flatten() {
                    let hosts = set.get("host").and_then(Value::as_array);
                    for h in hosts.into_iter().flatten().filter_map(Value::as_str) {
                        // Fuzzy hosts (wildcards, placeholders) would let clients mint labels.
                        if !h.contains('*') && !h.contains('{') {
                            allowed_hosts.insert(h.to_ascii_lowercase());
                        }
                    }
                }
            }
        }
        Arc::new(MetricsConfig {
            per_host: flag("per_host"),
            observe_catchall_hosts: flag("observe_catchall_hosts"),
            allowed_hosts,
        })
    });
    let logs = Arc::new(context(Logs::compile(root), "setting up logging")?);
    let servers_json = http.and_then(|h| h.get("servers"));
    for s in servers.iter_mut() {
        let logs_json = servers_json
            .and_then(|j| j.get(&s.name))
            .and_then(|j| j.get("logs"));
        let access = match logs_json {
            Some(v) => Some(context(
                ServerLogs::compile(v),
                format_args!("loading http app module: provision http: server {}", s.name),
            )?),
            None => None,
        };
        s.observe = ServerObserve {
            name: Some(Arc::from(s.name.as_str())),
            metrics: metrics.clone(),
            logs: Some(Arc::clone(&logs)),
            access,
            error_routes: !s.errors.is_empty(),
        };
    }
    Ok(())
}

/// How the server's primary route chain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Responded,
    /// Nothing wrote: Go sends an empty 200, Caddy logs status 0 (`NOP`).
    Unhandled,
    Aborted,
    Error(u16),
}

/// What the routes did to one request, as the observers need it.
#[derive(Debug)]
pub struct Trace<'p> {
    /// When the request arrived, as the worker's clock read it (unset outside a worker: no
    /// duration is measured then).
    started: Option<Instant>,
    top: &'p [Route],
    /// What the server observes (for the `metrics` handler's view of this request).
    observe: Option<&'p ServerObserve>,
    /// Top-level routes entered, in order (Caddy wraps each with metrics).
    entered: Vec<&'p Route>,
    /// `log_append` handlers run, with the value of the `early` ones.
    appends: Vec<(&'p LogAppend, Option<String>)>,
    end: Option<End>,
}

impl<'p> Trace<'p> {
    pub fn new() -> Trace<'p> {
        Trace {
            started: None,
            top: &[],
            observe: None,
            entered: Vec::new(),
            appends: Vec::new(),
            end: None,
        }
    }

    /// Dates the request from `t`: a run of the routes replayed after I/O (reverse_proxy)
    /// reports the time since the request arrived.
    pub fn started_at(&mut self, t: Instant) {
        self.started = Some(t);
    }

    /// The server's primary routes start (again, when a handler had them wait for I/O):
    /// only the last run counts.
    pub fn begin(&mut self, server: &'p Server) {
        self.top = &server.routes;
        self.observe = Some(&server.observe);
        self.entered.clear();
        self.appends.clear();
        self.end = None;
    }

    /// A matched route of `list` starts its handlers.
    pub fn enter(&mut self, list: &'p [Route], route: &'p Route) {
        // Only metrics read the routes entered: without them, no list is kept.
        let metrics = self.observe.is_some_and(|o| o.metrics.is_some());
        if metrics && std::ptr::eq(list, self.top) && !route.handlers.is_empty() {
            self.entered.push(route);
        }
    }

    pub fn log_append(&mut self, h: &'p LogAppend, early: Option<String>) {
        self.appends.push((h, early));
    }

    /// The primary chain's result (before any error routes run).
    pub fn end(&mut self, flow: &Flow) {
        self.end = match flow {
            Flow::Responded => Some(End::Responded),
            Flow::Next | Flow::Stop => Some(End::Unhandled),
            Flow::Abort => Some(End::Aborted),
            Flow::Error(e) => Some(End::Error(e.status)),
            // A handler waits for I/O (reverse_proxy); the routes run again after it.
            Flow::Proxy => None,
        };
    }
}

impl Default for Trace<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// The engine's observers: every worker's metric shard, and the logger thread's queue.
pub struct Observer {
    registry: Arc<Registry>,
    queue: Queue,
}

impl Observer {
    pub fn start() -> std::io::Result<Observer> {
        Ok(Observer {
            registry: Arc::default(),
            queue: Queue::start()?,
        })
    }

    /// The `caddy_http_*` families, then the engine's own count of dropped log lines.
    pub fn metrics(&self) -> String {
        render(&self.registry, &self.queue, &[])
    }
}

fn render(registry: &Registry, queue: &Queue, running: &[Running<'_>]) -> String {
    let mut out = registry.render(running);
    out.push_str(concat!(
        "# HELP zeroserve_access_log_dropped_total Access log lines dropped because ",
        "the logger thread fell behind.\n",
        "# TYPE zeroserve_access_log_dropped_total counter\n",
    ));
    out.push_str(&format!(
        "zeroserve_access_log_dropped_total {}\n",
        queue.dropped()
    ));
    out
}

/// The metrics of the engine the calling worker belongs to (empty off a worker thread), as
/// the request in `ctx` scrapes them: Caddy's instrumented routes wrap the rest of the chain,
/// so each top-level route this request entered is in flight while it reads the gauges.
pub fn render_here(ctx: &Ctx<'_, '_>) -> String {
    let scraping = ctx
        .trace
        .observe
        .and_then(|o| Some((o.name.as_ref()?, o.metrics.as_ref()?)))
        .map(|(server, m)| {
            let host = m.host_label(&ctx.host);
            ctx.trace
                .entered
                .iter()
                .filter_map(|r| r.metrics_name.as_ref())
                .map(|handler| Running {
                    server,
                    handler,
                    host: host.clone(),
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    TAP.with(|t| {
        t.borrow().as_ref().map_or_else(String::new, |tap| {
            render(&tap.registry, &tap.queue, &scraping)
        })
    })
}

struct Tap {
    registry: Arc<Registry>,
    shard: Arc<Mutex<Shard>>,
    queue: Queue,
}

thread_local! {
    static TAP: RefCell<Option<Tap>> = const { RefCell::new(None) };
}

/// Where a module's own log entries go (the FastCGI transport's `capture_stderr`): the
/// custom logs of the server that handled the request, and whether it logs credentials.
#[derive(Debug, Clone)]
pub struct ModuleLog {
    logs: Arc<Logs>,
    pub credentials: bool,
}

impl ModuleLog {
    /// The logs of the server running `ctx` (`None` outside a served request).
    pub fn of(ctx: &Ctx<'_, '_>) -> Option<ModuleLog> {
        let o = ctx.trace.observe?;
        Some(ModuleLog {
            logs: Arc::clone(o.logs.as_ref()?),
            credentials: o.access.as_ref().is_some_and(|a| a.log_credentials),
        })
    }

    /// Queues the entry for the logger thread of the calling worker (nothing off a worker).
    pub fn emit<'a>(&self, logger: &str, level: Level, msg: &str, fields: &dyn Fn() -> Fields<'a>) {
        TAP.with(|t| {
            if let Some(tap) = t.borrow().as_ref() {
                self.logs
                    .emit_module(&tap.queue, logger, level, msg, fields);
            }
        });
    }
}

/// Makes the calling (worker) thread report to `o`.
pub fn enter_worker(o: &Observer) {
    TAP.with(|t| {
        *t.borrow_mut() = Some(Tap {
            registry: Arc::clone(&o.registry),
            shard: o.registry.shard(),
            queue: o.queue.clone(),
        })
    });
}

/// Go's `computeApproximateRequestSize`: URL, method, proto, header names and values,
/// Host, and the declared body length.
fn request_size(ctx: &Ctx<'_, '_>) -> u64 {
    let headers: usize = ctx
        .headers
        .iter()
        .map(|(k, vs)| k.len() + vs.iter().map(String::len).sum::<usize>())
        .sum();
    let length = ctx
        .headers
        .raw("Content-Length")
        .and_then(|v| v.first())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    (ctx.orig_target.len() + ctx.orig_method.len() + ctx.proto.len() + headers + ctx.host.len())
        as u64
        + length
}

/// Bytes of response body the handlers wrote. A body an upstream streams through
/// (`reverse_proxy`) is not in hand yet: its declared length stands in for it, which is what
/// the client receives unless the upstream breaks off (unknown lengths count as 0).
fn response_size(ctx: &Ctx<'_, '_>) -> u64 {
    if ctx.proxy.relay.is_none() {
        return ctx.resp.body.len() as u64 + ctx.resp.file.as_ref().map_or(0, |f| f.len);
    }
    let bodiless = ctx.orig_method == "HEAD" || matches!(ctx.resp.status, 100..=199 | 204 | 304);
    let declared = ctx
        .resp
        .headers
        .raw("Content-Length")
        .and_then(|v| v.first());
    match declared.and_then(|v| v.trim().parse().ok()) {
        Some(n) if !bodiless => n,
        _ => 0,
    }
}

/// The request in `ctx` has its response: count it and log it. Called after every run of
/// the routes; a run that ended waiting for I/O reports nothing.
pub fn finished(server: &Server, ctx: &Ctx<'_, '_>) {
    let o = &server.observe;
    // Without an end the routes wait for I/O and will run again: the last run reports.
    let Some(end) = ctx.trace.end else { return };
    let failed = matches!(end, End::Error(_));
    if o.metrics.is_none() && o.access.is_none() && !failed {
        return;
    }
    let duration = ctx.trace.started.map_or(Duration::ZERO, |t| t.elapsed());
    let size = response_size(ctx);
    TAP.with(|t| {
        let t = t.borrow();
        let Some(tap) = t.as_ref() else { return };
        if let (Some(m), Some(name)) = (&o.metrics, &o.name) {
            let host = m.host_label(&ctx.host);
            let request_size = request_size(ctx);
            let method = metrics::sanitize_method(ctx.orig_method);
            let mut shard = tap.shard.lock().unwrap_or_else(|e| e.into_inner());
            for route in &ctx.trace.entered {
                let Some(handler) = &route.metrics_name else {
                    continue;
                };
                let (code, response_size, ttfb, error) = match end {
                    End::Responded => (ctx.resp.status, size, Some(duration.as_secs_f64()), false),
                    End::Unhandled | End::Aborted => (0, 0, None, false),
                    End::Error(status) => (status, 0, None, true),
                };
                shard.record(&Observation {
                    server: name,
                    handler,
                    host: host.as_deref(),
                    method,
                    code,
                    duration: duration.as_secs_f64(),
                    request_size,
                    response_size,
                    ttfb,
                    error,
                });
            }
        }
        if let Some(logs) = &o.logs {
            log(o, logs, ctx, &tap.queue, end, size, duration);
        }
    });
}

/// Writes the request's access log entry (when the server logs access and this request),
/// and Caddy's error entry when a handler failed.
fn log(
    o: &ServerObserve,
    logs: &Logs,
    ctx: &Ctx<'_, '_>,
    queue: &Queue,
    end: End,
    size: u64,
    duration: std::time::Duration,
) {
    let access = o
        .access
        .as_ref()
        .filter(|a| a.should_log(&ctx.host) && ctx.var("log_skip") != Some(&Value::Bool(true)));
    let failure = match (end, &ctx.error) {
        (End::Error(status), Some(e)) => Some((status, e.message.as_str())),
        _ => None,
    };
    if access.is_none() && failure.is_none() {
        return;
    }
    // `log_name` sets the names for this request (`access_logger_names`).
    let set: Vec<String>;
    let unnamed = [String::new()];
    let names = match ctx.var("access_logger_names") {
        Some(Value::Array(v)) => {
            set = v.iter().map(|n| value_string(n).into_owned()).collect();
            &set
        }
        Some(Value::String(s)) => std::slice::from_ref(s),
        _ => o
            .access
            .as_ref()
            .map_or(&unnamed[..], |a| a.logger_names(&ctx.host)),
    };
    // Early fields were added as their handlers ran; the others as the chain unwound,
    // innermost first. A key added again replaces the earlier value (zap field `Set`).
    let mut extra: Vec<(String, String)> = Vec::new();
    let early = ctx
        .trace
        .appends
        .iter()
        .filter_map(|(h, v)| Some((*h, v.clone()?)));
    let late = ctx
        .trace
        .appends
        .iter()
        .rev()
        .filter(|(_, v)| v.is_none())
        .map(|(h, _)| (*h, h.value(ctx)));
    for (h, v) in early.chain(late) {
        match extra.iter_mut().find(|(k, _)| *k == h.key) {
            Some(slot) => slot.1 = v,
            None => extra.push((h.key.clone(), v)),
        }
    }
    let (status, size) = match end {
        End::Unhandled | End::Aborted => (0, 0),
        _ => (ctx.resp.status, size),
    };
    let client_ip = ctx.var("client_ip").map(value_string).unwrap_or_default();
    let user_id = ctx
        .captures
        .iter()
        .find(|(k, _)| k == "http.auth.user.id")
        .map_or("", |(_, v)| v.as_str());
    let entry = Entry {
        remote: ctx.remote,
        client_ip: &client_ip,
        proto: ctx.proto,
        method: ctx.orig_method,
        host: &ctx.host,
        uri: ctx.orig_target,
        headers: &ctx.headers,
        bytes_read: ctx.body.map_or(0, |b| b.len() as u64),
        user_id,
        duration,
        size,
        status,
        resp_headers: &ctx.resp.headers,
        extra: &extra,
    };
    let credentials = o.access.as_ref().is_some_and(|a| a.log_credentials);
    if let Some((status, message)) = failure {
        // Caddy logs a handler error at error level when it answers 5xx itself, at debug
        // level when error routes took over or the status is below 500.
        let level = if status >= 500 && !o.error_routes {
            Level::Error
        } else {
            Level::Debug
        };
        let failed = Entry { status, ..entry };
        logs.emit_error(queue, names, &failed, message, level, credentials);
    }
    if access.is_some() {
        logs.emit(queue, names, &entry, credentials);
    }
}
