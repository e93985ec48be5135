//! `http.handlers.reverse_proxy` (with `copy_response` and `copy_response_headers`): the
//! request-side and response-side logic of Caddy's proxy handler; the worker does the I/O.
//!
//! Flow: a handler run cannot wait for the network, so proxying is a replay. The first time
//! the routes reach a proxy handler it prepares the upstream request as Caddy's
//! `prepareRequest` does (rewrite, hop-by-hop removal, `X-Forwarded-*`, `header_up`, the
//! transport's `Accept-Encoding`), picks an upstream, leaves a [`Call`] in the context and
//! stops the chain with `Flow::Proxy`. The worker performs the round trip on its ring and
//! records the result as an [`Invocation`], then runs the routes again from the same request
//! head: this time the handler finds its invocation answered (or failed) and continues as
//! Caddy would after `RoundTrip` returns: `handle_response` routes, `header_down`, copying
//! the status and headers (the body is relayed by the worker), a retry, or the error that
//! goes to the error routes (502 dial/transport failure, 503 no upstream, 504 timeout).
//! Several proxy handlers in one chain (`forward_auth` then `reverse_proxy`) each get their
//! own invocation, counted in the order they run.

pub mod fastcgi;
pub mod flush;
pub mod health;
pub mod hosts;
pub mod select;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::super::ctx::{Ctx, HandlerError};
use super::super::exec::{run, Flow};
use super::super::placeholder::replace_all;
use super::super::{context, duration, err, str_list, Result};
use super::headers::Headers;
use super::intercept::{compile_handle_response, HandleResponse};
use super::rewrite::Rewrite;
use super::static_response::status_text;
use crate::http1::client::{write_request_head, RequestBody, ResponseHead};
use crate::http1::header::canonical_key;
use crate::http1::parse::has_token;
use crate::http1::{BodyKind, HeaderMap};

/// Go's `hopHeaders` in Caddy's proxy: removed in both directions.
const HOP_HEADERS: [&str; 10] = [
    "Alt-Svc",
    "Connection",
    "Proxy-Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Te",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
];

/// Caddy's `HTTPTransport` settings the engine honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    pub dial_timeout: Duration,
    pub response_header_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    pub keep_alive: bool,
    pub idle_timeout: Duration,
    pub max_idle_per_host: usize,
    /// TCP keep-alive probes on upstream connections.
    pub probe_interval: Duration,
    /// The transport asks for gzip itself (and decodes it) when the client did not.
    pub compression: bool,
    /// The handler's streaming options, which travel to the worker with the transport's.
    pub stream: Streaming,
}

/// `flush_interval`: how long response bytes may wait in Go's writer buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushInterval {
    /// 0 (the default): no flushing; bytes go out as Go's buffers fill and at the end.
    #[default]
    Never,
    /// Negative: flushed after every write.
    Immediate,
    /// Flushed this long after the first write since the last flush (and the head then,
    /// even without a body write).
    Every(Duration),
}

/// Caddy's `flush_interval`, `stream_timeout` and `stream_close_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Streaming {
    pub flush_interval: FlushInterval,
    /// An upgraded connection is closed this long after it began.
    pub stream_timeout: Option<Duration>,
    /// A config unload closes upgraded connections after this long, not at once.
    pub stream_close_delay: Option<Duration>,
}

impl Streaming {
    fn compile(m: &Map<String, Value>) -> Result<Streaming> {
        let negative = |v: &Value| match v {
            Value::Number(n) => n.as_f64().is_some_and(|f| f < 0.0),
            Value::String(s) => s.starts_with('-'),
            _ => false,
        };
        let flush_interval = match m.get("flush_interval") {
            None | Some(Value::Null) => FlushInterval::Never,
            Some(v) if negative(v) => FlushInterval::Immediate,
            Some(v) => match duration(v, "flush_interval")? {
                d if d.is_zero() => FlushInterval::Never,
                d => FlushInterval::Every(d),
            },
        };
        Ok(Streaming {
            flush_interval,
            stream_timeout: opt_duration(m, "stream_timeout")?,
            stream_close_delay: opt_duration(m, "stream_close_delay")?,
        })
    }

    /// Caddy's `flushInterval(req, res)`: Server-Sent Events and bodies of unknown length
    /// are flushed write by write whatever the setting.
    pub fn flush_for(&self, content_type: &str, known_length: bool) -> FlushInterval {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/event-stream") || !known_length {
            return FlushInterval::Immediate;
        }
        self.flush_interval
    }
}

/// The WebSocket Close frame (1001, going away) Caddy writes to both ends of an upgraded
/// connection when its handler is unloaded: masked toward the upstream, as a client's must be.
pub fn going_away(masked: bool) -> Vec<u8> {
    use std::hash::BuildHasher;
    const CODE: [u8; 2] = 1001u16.to_be_bytes();
    if !masked {
        return vec![0x88, 2, CODE[0], CODE[1]];
    }
    let key = std::collections::hash_map::RandomState::new()
        .hash_one(Instant::now())
        .to_le_bytes();
    vec![
        0x88,
        0x80 | 2,
        key[0],
        key[1],
        key[2],
        key[3],
        CODE[0] ^ key[0],
        CODE[1] ^ key[1],
    ]
}

impl Default for Transport {
    /// Caddy's defaults: dial 3s, keep-alive on with a 2m idle timeout, 32 idle connections
    /// per host and 30s TCP probes, compression on, no response timeouts.
    fn default() -> Self {
        Transport {
            dial_timeout: Duration::from_secs(3),
            response_header_timeout: None,
            read_timeout: None,
            write_timeout: None,
            keep_alive: true,
            idle_timeout: Duration::from_secs(120),
            max_idle_per_host: 32,
            probe_interval: Duration::from_secs(30),
            compression: true,
            stream: Streaming::default(),
        }
    }
}

fn opt_duration(m: &Map<String, Value>, k: &str) -> Result<Option<Duration>> {
    Ok(m.get(k)
        .map(|v| duration(v, k))
        .transpose()?
        .filter(|d| !d.is_zero()))
}

impl Transport {
    fn compile(v: Option<&Value>) -> Result<Transport> {
        let mut t = Transport::default();
        let Some(v) = v else { return Ok(t) };
        let Value::Object(m) = v else {
            return err("transport: expected a JSON object");
        };
        let protocol = m.get("protocol").and_then(Value::as_str).unwrap_or("");
        if protocol == "fastcgi" {
            // Caddy's FastCGI client: a connection per request, nothing asked of the body.
            t.keep_alive = false;
            t.compression = false;
            if let Some(d) = opt_duration(m, "dial_timeout")? {
                t.dial_timeout = d;
            }
            // Its read and write deadlines are the exchange's (`fastcgi::Exchange`).
            return Ok(t);
        }
        if protocol != "http" {
            return err(format!(
                "loading transport: unknown module: http.reverse_proxy.transport.{protocol}"
            ));
        }
        for unsupported in [
            "tls",
            "versions",
            "proxy_protocol",
            "resolver",
            "network_proxy",
        ] {
            let used = match m.get(unsupported) {
                None | Some(Value::Null) => false,
                Some(Value::Array(a)) => {
                    unsupported == "versions"
                        && a.iter().any(|v| v.as_str().is_some_and(|s| s != "1.1"))
                }
                Some(_) => true,
            };
            if used {
                return err(format!(
                    "transport: '{unsupported}' is not supported by the engine"
                ));
            }
        }
        if let Some(d) = opt_duration(m, "dial_timeout")? {
            t.dial_timeout = d;
        }
        t.response_header_timeout = opt_duration(m, "response_header_timeout")?;
        t.read_timeout = opt_duration(m, "read_timeout")?;
        t.write_timeout = opt_duration(m, "write_timeout")?;
        if let Some(c) = m.get("compression").and_then(Value::as_bool) {
            t.compression = c;
        }
        if let Some(Value::Object(k)) = m.get("keep_alive") {
            if let Some(e) = k.get("enabled").and_then(Value::as_bool) {
                t.keep_alive = e;
            }
            if let Some(d) = opt_duration(k, "idle_timeout")? {
                t.idle_timeout = d;
            }
            if let Some(d) = opt_duration(k, "probe_interval")? {
                t.probe_interval = d;
            }
            if let Some(n) = k.get("max_idle_conns_per_host").and_then(Value::as_u64) {
                t.max_idle_per_host = n as usize;
            }
        }
        Ok(t)
    }
}

#[derive(Debug)]
pub struct ReverseProxy {
    pool: Arc<hosts::Pool>,
    lb: select::LoadBalancing,
    health: health::HealthChecks,
    headers: Option<Headers>,
    rewrite: Option<Rewrite>,
    trusted_proxies: Vec<(IpAddr, u8)>,
    handle_response: Vec<HandleResponse>,
    pub transport: Transport,
    /// The `fastcgi` transport's request settings (the HTTP transport when `None`).
    fastcgi: Option<fastcgi::FastCgi>,
    /// `request_buffers`: read this much of the client's body before the round trip (-1:
    /// all of it); a body read whole is sent with its length and again on a retry.
    request_buffers: i64,
    /// `response_buffers`: read this much of the response body before the head goes out.
    response_buffers: i64,
}

/// What the worker must do for one attempt.
#[derive(Debug)]
pub struct Call {
    /// Which proxy invocation of this request the attempt belongs to.
    pub index: usize,
    /// Wait this long first (`try_interval` between retries).
    pub delay: Duration,
    /// `None` when no upstream is available: the attempt fails with 503 after the delay.
    pub target: Option<Target>,
}

/// Where an upstream connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

impl Peer {
    /// The host's address to dial, or why it has none.
    fn of(host: &hosts::Host) -> std::result::Result<Peer, String> {
        Peer::to(&host.target)
    }

    /// Where a parsed dial address leads, or the dial error of a name that did not resolve.
    fn to(target: &hosts::Target) -> std::result::Result<Peer, String> {
        match target {
            hosts::Target::Tcp(addrs) => Ok(Peer::Tcp(addrs[0])),
            hosts::Target::Unix(path) => Ok(Peer::Unix(path.clone())),
            hosts::Target::Invalid(why) => Err(format!("making dial info: {why}")),
            hosts::Target::Unresolved(why) => Err(why.clone()),
            // `attempt` replaces this with the request's address.
            hosts::Target::Placeholder => Err("making dial info: unreplaced placeholders".into()),
        }
    }

    pub fn sockaddr(&self) -> std::io::Result<socket2::SockAddr> {
        match self {
            Peer::Tcp(a) => Ok(socket2::SockAddr::from(*a)),
            Peer::Unix(p) => socket2::SockAddr::unix(p),
        }
    }
}

/// Go's `network address` in dial and I/O errors (`tcp 127.0.0.1:80`, `unix /run/app.sock`).
impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Go names an empty host's address without one (`:80`).
            Peer::Tcp(a) if a.ip() == IpAddr::from([0, 0, 0, 0]) => {
                write!(f, "tcp :{}", a.port())
            }
            Peer::Tcp(a) => write!(f, "tcp {a}"),
            Peer::Unix(p) => write!(f, "unix {}", p.display()),
        }
    }
}

/// An upstream request ready to send.
#[derive(Debug)]
pub struct Target {
    pub host: Arc<hosts::Host>,
    /// Where to connect, or the error that stops the attempt before dialing.
    pub peer: std::result::Result<Peer, String>,
    /// The cookie policy's `Set-Cookie`, added to whatever response goes out.
    pub set_cookie: Option<String>,
    /// Request line and header fields.
    pub head: Vec<u8>,
    /// Framing of the body sent after the head (taken from the client's request).
    pub body: RequestBody,
    /// The request is HEAD: the response has no body whatever it says.
    pub head_request: bool,
    /// The transport added `Accept-Encoding: gzip`: a gzip response is decoded for the client.
    pub gzip: bool,
    pub transport: Transport,
    /// The response fields set when the proxy ran: Go writes them with any 1xx head.
    pub interim_fields: HeaderMap,
    /// `response_buffers` (0: none, -1: the whole body).
    pub response_buffers: i64,
    /// The upstream speaks FastCGI: `head` holds its records, the body goes in STDIN
    /// records and the response comes back as records, through a decoder of this exchange.
    pub fastcgi: Option<Box<fastcgi::Exchange>>,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: HandlerError,
    /// Failed before a connection existed: always safe to retry.
    pub dial: bool,
}

/// The worker's record of one proxy invocation, read back when the routes run again.
#[derive(Debug)]
pub struct Invocation {
    pub started: Instant,
    /// Attempts made so far.
    pub tries: u32,
    pub dial: String,
    pub set_cookie: Option<String>,
    /// The last attempt's failure, while no answer came.
    pub failure: Option<Failure>,
    pub answer: Option<ResponseHead>,
    /// The upstream of the last attempt, and how long its response head took.
    pub host: Option<Arc<hosts::Host>>,
    pub latency: Duration,
    /// An attempt on a live connection began sending the client's body, which is then
    /// gone: like Go's closed request body, it cannot be sent again.
    pub body_spent: bool,
}

/// Proxy state of one request while its routes run.
#[derive(Debug, Default)]
pub struct Trail<'p, 'a> {
    /// Invocations from earlier runs, in handler order.
    pub done: &'a [Invocation],
    /// The invocation whose latest attempt finished just before this run (its passive
    /// health check counts once, not on every later run).
    pub fresh: Option<usize>,
    /// Proxy handlers reached so far in this run.
    pub seq: usize,
    /// The attempt this run asks the worker for.
    pub call: Option<Call>,
    /// The invocation whose response body the worker relays to the client.
    pub relay: Option<usize>,
    /// The innermost `encode` around the relayed response, applied as its body streams.
    pub encode: Option<super::encode::StreamPlan>,
    /// The invocation whose `handle_response` routes are running, for `copy_response`.
    pub handling: Option<(usize, &'p ReverseProxy)>,
    /// The latest dial address, and the host's counts when it was selected, for
    /// `{http.reverse_proxy.upstream.*}`: kept as they are, formatted only when asked.
    pub upstream: Option<hosts::DialInfo>,
    pub counts: Option<UpstreamCounts>,
    /// The upstream responses judged so far, latest last, each with its status text: Caddy
    /// sets a `{http.reverse_proxy.header.*}` placeholder per field of each one, and
    /// `status_code`/`status_text`; here they are read from the response when asked.
    pub responses: Vec<(&'a ResponseHead, &'a str)>,
}

/// An upstream host's counts at selection: `{http.reverse_proxy.upstream.requests}`,
/// `max_requests` and `fails`.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamCounts {
    pub requests: u64,
    pub max_requests: u64,
    pub fails: u64,
}

impl Trail<'_, '_> {
    /// The `{http.reverse_proxy.*}` placeholders this run has set so far.
    pub fn placeholder(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow::{Borrowed, Owned};
        let key = key.strip_prefix("http.reverse_proxy.")?;
        if let Some(field) = key.strip_prefix("header.") {
            // Go's header map keys, matched exactly as the replacer matches its keys.
            return self
                .responses
                .iter()
                .rev()
                .find_map(|(answer, _)| answer.headers.raw(field))
                .map(|values| Owned(values.join(",")));
        }
        if let Some(item) = key.strip_prefix("upstream.") {
            let counted =
                |n: fn(&UpstreamCounts) -> u64| self.counts.map(|c| Owned(n(&c).to_string()));
            let dial = self.upstream.as_ref();
            return match item {
                "address" => dial.map(|d| Owned(d.to_string())),
                "hostport" => dial.map(|d| Owned(d.address())),
                "host" => dial.map(|d| Borrowed(d.host.as_str())),
                "port" => dial.map(|d| Owned(d.port_text())),
                "requests" => counted(|c| c.requests),
                "max_requests" => counted(|c| c.max_requests),
                "fails" => counted(|c| c.fails),
                _ => None,
            };
        }
        let (answer, text) = self.responses.last()?;
        match key {
            "status_code" => Some(Owned(answer.status.to_string())),
            "status_text" => Some(Borrowed(*text)),
            _ => None,
        }
    }
}

impl ReverseProxy {
    pub fn compile(m: &Map<String, Value>) -> Result<ReverseProxy> {
        for unsupported in ["dynamic_upstreams"] {
            if m.get(unsupported)
                .is_some_and(|v| !v.is_null() && v != &Value::from(0))
            {
                return err(format!("'{unsupported}' is not supported by the engine"));
            }
        }
        let mut health = context(
            health::HealthChecks::compile(m.get("health_checks")),
            "provisioning health checks",
        )?;
        let pool = Arc::new(hosts::Pool::compile(
            m.get("upstreams"),
            health.passive.as_ref(),
        )?);
        let lb = select::LoadBalancing::compile(m.get("load_balancing"))?;
        let headers = match m.get("headers") {
            Some(Value::Object(h)) => Some(Headers::compile(h)?),
            _ => None,
        };
        let rewrite = match m.get("rewrite") {
            Some(Value::Object(r)) => Some(Rewrite::compile(r)?),
            _ => None,
        };
        let trusted_proxies = super::super::matchers::remote_ip::parse_ranges(&str_list(
            m.get("trusted_proxies"),
            "trusted_proxies",
        )?)?;
        let handle_response = compile_handle_response(m, "provisioning response handler")?;
        let mut transport = Transport::compile(m.get("transport"))?;
        transport.stream = Streaming::compile(m)?;
        let fastcgi = match m.get("transport") {
            Some(Value::Object(t))
                if t.get("protocol").and_then(Value::as_str) == Some("fastcgi") =>
            {
                Some(context(fastcgi::FastCgi::compile(t), "loading transport")?)
            }
            _ => None,
        };
        let mut request_buffers = m
            .get("request_buffers")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let response_buffers = m
            .get("response_buffers")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if fastcgi.is_some() && request_buffers == 0 && response_buffers == 0 {
            // The transport's DefaultBufferSizes: php-fpm needs a body's length up front.
            request_buffers = 4096;
        }
        health.start(&pool);
        Ok(ReverseProxy {
            pool,
            lb,
            health,
            headers,
            rewrite,
            trusted_proxies,
            handle_response,
            transport,
            fastcgi,
            request_buffers,
            response_buffers,
        })
    }

    /// Runs the handler: asks for a round trip, or continues from its recorded result.
    pub fn run<'p>(&'p self, ctx: &mut Ctx<'p, '_>) -> Flow {
        let index = ctx.proxy.seq;
        ctx.proxy.seq += 1;
        let done = ctx.proxy.done;
        let Some(inv) = done.get(index) else {
            if ctx.body.is_none() && self.buffers_whole(ctx.body_kind) {
                // Caddy reads a body that fits its buffer before dialing: the worker gathers
                // it and runs the routes again with it.
                ctx.body_wanted.set(true);
            }
            return self.attempt(index, Duration::ZERO, ctx);
        };
        if let Some(c) = &inv.set_cookie {
            ctx.resp.headers.add("Set-Cookie", c);
        }
        if let Ok(info) = dial_info(&inv.dial, ctx) {
            ctx.proxy.upstream = Some(info);
        }
        let fresh = ctx.proxy.fresh == Some(index);
        if let Some(answer) = &inv.answer {
            return self.answered(index, answer, fresh, ctx);
        }
        let failure = inv.failure.clone().unwrap_or(Failure {
            error: no_upstream(),
            dial: true,
        });
        if fresh && failure.error != no_upstream() {
            if let Some(host) = &inv.host {
                self.health.count_failure(host);
            }
        }
        let retried = inv.tries.saturating_sub(1);
        match self.lb.retry(retried, inv.started, ctx, !failure.dial) {
            Some(wait) => self.attempt(index, wait, ctx),
            None => Flow::Error(failure.error),
        }
    }

    /// The body fits `request_buffers` whole: a declared length within it, or any body when
    /// it is unbounded. A chunked body under a positive bound streams (a listed gap).
    fn buffers_whole(&self, kind: BodyKind) -> bool {
        match kind {
            BodyKind::None => false,
            BodyKind::Length(n) => {
                self.request_buffers == -1
                    || (self.request_buffers > 0 && n <= self.request_buffers as u64)
            }
            // The FastCGI transport needs a length: a chunked body is read whole to learn
            // it (one over the limit is then refused with 411, as Caddy refuses it).
            BodyKind::Chunked => {
                self.request_buffers == -1 || (self.fastcgi.is_some() && self.request_buffers > 0)
            }
        }
    }

    /// Prepares the upstream request for attempt `index` and stops the chain for the worker.
    fn attempt<'p>(&'p self, index: usize, delay: Duration, ctx: &mut Ctx<'p, '_>) -> Flow {
        if let Some(e) = self
            .fastcgi
            .as_ref()
            .and_then(|_| self.fastcgi_refusal(ctx))
        {
            return Flow::Error(e);
        }
        let target = match self.lb.select(&self.pool, ctx) {
            None => None,
            Some(sel) => {
                // Caddy's fillDialInfo: placeholders are replaced for this request, and an
                // address that is not one socket ends the request (no retry, no strike).
                let info = match dial_info(&sel.host.dial, ctx) {
                    Ok(info) => info,
                    Err(why) => {
                        return Flow::Error(HandlerError {
                            status: 502,
                            message: format!("making dial info: {why}"),
                        })
                    }
                };
                let dynamic = sel.host.target == hosts::Target::Placeholder;
                let peer = dynamic.then(|| Peer::to(&info.target()));
                ctx.proxy.upstream = Some(info);
                // Counted at selection, as Caddy sets them.
                ctx.proxy.counts = Some(UpstreamCounts {
                    requests: sel.host.num_requests(),
                    max_requests: sel.host.max_requests,
                    fails: sel.host.fails(),
                });
                let mut target = self.prepare(sel, ctx);
                if let Some(peer) = peer {
                    target.peer = peer;
                }
                Some(target)
            }
        };
        ctx.proxy.call = Some(Call {
            index,
            delay,
            target,
        });
        Flow::Proxy
    }

    /// Caddy's `prepareRequest` plus the per-attempt `header_up` and the transport's write.
    fn prepare(&self, sel: select::Selection, ctx: &mut Ctx<'_, '_>) -> Target {
        let rewritten = self.rewrite.as_ref().map(|rw| {
            let saved = (ctx.method.clone(), ctx.uri.clone());
            rw.run(ctx);
            (
                std::mem::replace(&mut ctx.method, saved.0),
                std::mem::replace(&mut ctx.uri, saved.1),
            )
        });
        let ctx: &Ctx<'_, '_> = ctx;
        let (method, uri) = match &rewritten {
            Some((m, u)) => (m.as_str(), u),
            None => (ctx.method.as_str(), &ctx.uri),
        };
        let changed = rewritten.is_some()
            && (method != ctx.method || uri.request_uri() != ctx.uri.request_uri());
        let mut body = match ctx.body_kind {
            BodyKind::None => RequestBody::None,
            BodyKind::Length(0) => RequestBody::None,
            BodyKind::Length(n) => RequestBody::Length(n),
            BodyKind::Chunked => RequestBody::Chunked,
        };
        if let (Some(data), true) = (ctx.body, self.buffers_whole(ctx.body_kind)) {
            // A body buffered whole goes with its length, as Caddy sets it.
            body = match data.len() {
                0 => RequestBody::None,
                n => RequestBody::Length(n as u64),
            };
        }
        if changed && (method == "GET" || method == "HEAD") {
            body = RequestBody::None;
        }
        let no_length_methods = matches!(method, "GET" | "HEAD");
        let length_methods = matches!(method, "POST" | "PUT" | "PATCH");
        if body == RequestBody::None
            && !no_length_methods
            && (length_methods || ctx.body_kind != BodyKind::None)
        {
            // Go's transport announces an empty body for these.
            body = RequestBody::Empty;
        }
        let mut hdr = ctx.headers.clone();
        let mut host = ctx.host.clone();
        if hdr.raw("User-Agent").is_none() {
            hdr.set("User-Agent", "");
        }
        let upgrade = upgrade_type(&hdr);
        remove_connection_headers(&mut hdr);
        // The hop-by-hop fields go in one pass; a `Te` asking for trailers stays, as `trailers`.
        let trailers = has_token(
            hdr.values("Te").unwrap_or(&[]).iter().map(String::as_str),
            "trailers",
        );
        hdr.retain(|k| (trailers && k == "Te") || !HOP_HEADERS.contains(&k));
        if trailers {
            hdr.set("Te", "trailers");
        }
        if let Some(u) = &upgrade {
            hdr.set("Connection", "Upgrade");
            hdr.set("Upgrade", u);
        }
        self.forwarded_headers(&mut hdr, &host, ctx);
        let via = match ctx.proto {
            "HTTP/1.0" => "1.0 Caddy",
            _ => "1.1 Caddy",
        };
        hdr.add("Via", via);
        if let Some(ops) = self.headers.as_ref().and_then(Headers::request_ops) {
            ops.apply_to_request(&mut hdr, &mut host, ctx);
        }
        if let Some(f) = &self.fastcgi {
            return self.prepare_fastcgi(f, sel, ctx, method, uri, hdr, &host);
        }
        let gzip = self.transport.compression
            && hdr.get("Accept-Encoding").is_empty()
            && hdr.get("Range").is_empty()
            && method != "HEAD";
        let extra: &[(&str, &str)] = if gzip {
            &[("Accept-Encoding", "gzip")]
        } else {
            &[]
        };
        let mut head = Vec::with_capacity(512);
        write_request_head(
            method,
            &uri.request_uri(),
            &host,
            &hdr,
            body,
            extra,
            &mut head,
        );
        Target {
            peer: Peer::of(&sel.host),
            host: sel.host,
            set_cookie: sel.set_cookie,
            head,
            body,
            head_request: method == "HEAD",
            gzip,
            transport: self.transport,
            interim_fields: ctx.resp.headers.clone(),
            response_buffers: self.response_buffers,
            fastcgi: None,
        }
    }

    /// What Caddy's FastCGI `RoundTrip` refuses before any record is sent: a NUL in the
    /// path (400), and a body whose length buffering did not learn (411).
    fn fastcgi_refusal(&self, ctx: &Ctx<'_, '_>) -> Option<HandlerError> {
        if ctx.uri.path.contains('\0') {
            return Some(HandlerError {
                status: 400,
                message: "invalid request path".to_owned(),
            });
        }
        let unknown = match (ctx.body_kind, ctx.body) {
            (BodyKind::Chunked, None) => !self.buffers_whole(BodyKind::Chunked),
            (BodyKind::Chunked, Some(d)) => {
                self.request_buffers >= 0 && d.len() as i64 > self.request_buffers
            }
            _ => false,
        };
        let sends_length = !matches!(ctx.method.as_str(), "HEAD" | "OPTIONS");
        (unknown && sends_length).then(|| HandlerError {
            status: 411,
            message: "fastcgi: the request body has no known length (CONTENT_LENGTH is -1); \
                      raise request_buffers to buffer it"
                .to_owned(),
        })
    }

    /// The FastCGI transport's request: CGI environment in PARAMS records, the body (its
    /// length learnt by buffering, as Caddy's `request_buffers` default for the transport
    /// does) in STDIN records.
    #[allow(clippy::too_many_arguments)]
    fn prepare_fastcgi(
        &self,
        f: &fastcgi::FastCgi,
        sel: select::Selection,
        ctx: &Ctx<'_, '_>,
        method: &str,
        uri: &super::super::ctx::Uri,
        mut hdr: HeaderMap,
        host: &str,
    ) -> Target {
        let buffered = ctx.body.filter(|_| self.buffers_whole(ctx.body_kind));
        let (length, mut body) = match (buffered, ctx.body_kind) {
            (Some(data), _) => {
                hdr.set("Content-Length", &data.len().to_string());
                let n = data.len() as u64;
                (n as i64, (n > 0).then_some(RequestBody::Length(n)))
            }
            (None, BodyKind::None) => {
                if self.request_buffers != 0 {
                    // Buffering an absent body reads nothing: its length is known, 0.
                    hdr.set("Content-Length", "0");
                }
                (0, None)
            }
            (None, BodyKind::Length(n)) => (n as i64, Some(RequestBody::Length(n))),
            (None, BodyKind::Chunked) => (-1, Some(RequestBody::Chunked)),
        };
        if matches!(method, "HEAD" | "OPTIONS") {
            // Caddy's client sends these without their body.
            body = None;
        }
        let (head, peer, exchange) = match f.params(ctx, method, uri, &hdr, host, length) {
            Ok((env, exchange)) => (
                fastcgi::FastCgi::request_head(&env, body.is_some()),
                Peer::of(&sel.host),
                exchange,
            ),
            Err(e) => (Vec::new(), Err(e.message), fastcgi::Exchange::default()),
        };
        Target {
            peer,
            host: sel.host,
            set_cookie: sel.set_cookie,
            head,
            body: body.unwrap_or(RequestBody::None),
            head_request: method == "HEAD",
            gzip: false,
            transport: self.transport,
            interim_fields: ctx.resp.headers.clone(),
            response_buffers: self.response_buffers,
            fastcgi: Some(Box::new(exchange)),
        }
    }

    /// Caddy's `addForwardedHeaders`.
    fn forwarded_headers(&self, hdr: &mut HeaderMap, host: &str, ctx: &Ctx<'_, '_>) {
        let Some(peer) = ctx.remote else {
            for h in ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"] {
                hdr.del(h);
            }
            return;
        };
        let ip = peer.ip().to_canonical();
        let trusted = ctx
            .var("trusted_proxy")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || self
                .trusted_proxies
                .iter()
                .any(|r| super::super::matchers::remote_ip::in_range(ip, *r));
        let mut xff = ip.to_string();
        if let (true, Some(prior)) = (trusted, hdr.raw("X-Forwarded-For")) {
            let prior = prior.join(", ");
            if !prior.is_empty() {
                xff = format!("{prior}, {xff}");
            }
        }
        // Header.Set of canonical names: the values are moved in rather than copied.
        hdr.set_raw("X-Forwarded-For".to_owned(), vec![xff]);
        let prior = |hdr: &HeaderMap, k: &str| {
            hdr.raw(k)
                .and_then(|v| v.last())
                .filter(|v| trusted && !v.is_empty())
                .cloned()
        };
        let proto = prior(hdr, "X-Forwarded-Proto").unwrap_or_else(|| "http".to_owned());
        hdr.set_raw("X-Forwarded-Proto".to_owned(), vec![proto]);
        let fwd_host = prior(hdr, "X-Forwarded-Host").unwrap_or_else(|| host.to_owned());
        hdr.set_raw("X-Forwarded-Host".to_owned(), vec![fwd_host]);
    }

    /// Continues after the round trip answered: `handle_response`, or the response copied.
    fn answered<'p, 'a>(
        &'p self,
        index: usize,
        answer: &'a ResponseHead,
        fresh: bool,
        ctx: &mut Ctx<'p, 'a>,
    ) -> Flow {
        let done = ctx.proxy.done;
        if fresh {
            let inv = &done[index];
            if let Some(host) = &inv.host {
                self.health.record(host, answer.status, inv.latency);
            }
            // Caddy 2.11 retries a response its `retry_match` expressions ask to retry; once
            // the retries are used up, such a response is an error with its status.
            self.set_response_placeholders(answer, ctx);
            let retried = inv.tries.saturating_sub(1);
            match self.lb.retry_response(retried, inv.started, ctx) {
                select::ResponseRetry::Keep => {}
                verdict => {
                    if let Some(host) = &inv.host {
                        self.health.count_failure(host);
                    }
                    return match verdict {
                        select::ResponseRetry::Again(wait) => self.attempt(index, wait, ctx),
                        _ => Flow::Error(HandlerError {
                            status: answer.status,
                            message: format!(
                                "upstream response matched retry_match: {}",
                                answer.status
                            ),
                        }),
                    };
                }
            }
        }
        let mut status = answer.status;
        for rh in &self.handle_response {
            if rh
                .matcher
                .as_ref()
                .is_some_and(|m| !m.matches(status, &answer.headers))
            {
                continue;
            }
            if let Some(s) = &rh.status {
                match replace_all(s, &*ctx).parse::<u16>() {
                    Ok(0) => {}
                    Ok(n) => status = n,
                    Err(e) => {
                        return Flow::Error(HandlerError {
                            status: 500,
                            message: e.to_string(),
                        })
                    }
                }
                break;
            }
            self.set_response_placeholders(answer, ctx);
            let outer = ctx.proxy.handling.replace((index, self));
            let flow = run(&rh.routes, ctx);
            ctx.proxy.handling = outer;
            return flow;
        }
        self.finalize(index, answer, status, ctx)
    }

    /// `{http.reverse_proxy.header.*}`, `status_code` and `status_text` for the routes and
    /// matchers that judge an upstream response.
    fn set_response_placeholders<'a>(&self, answer: &'a ResponseHead, ctx: &mut Ctx<'_, 'a>) {
        let text = match self.fastcgi {
            // Caddy's FastCGI client keeps only what follows the code in `Status`.
            Some(_) => answer.status_text.split_once(' ').map_or("", |(_, t)| t),
            None => answer.status_text.as_str(),
        };
        ctx.proxy.responses.push((answer, text));
    }

    /// Caddy's `finalizeResponse` up to writing the header; the worker relays the body.
    fn finalize(
        &self,
        index: usize,
        answer: &ResponseHead,
        status: u16,
        ctx: &mut Ctx<'_, '_>,
    ) -> Flow {
        if status == 101 {
            return upgrade(index, answer, ctx);
        }
        // The answer's fields minus the hop-by-hop ones and those its `Connection` names;
        // copied only when header_down edits them. The hop-by-hop names it lists go anyway, so
        // they are left out of that list: most responses (`keep-alive`) then list none.
        let named: Vec<String> = connection_tokens(&answer.headers)
            .filter(|f| !HOP_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(f)))
            .map(canonical_key)
            .collect();
        let kept = |k: &str| !HOP_HEADERS.contains(&k) && !named.iter().any(|n| n == k);
        let edited = self
            .headers
            .as_ref()
            .and_then(Headers::response_ops)
            .map(|r| {
                let mut hdr = answer.headers.clone();
                hdr.retain(kept);
                if r.require.as_ref().is_none_or(|m| m.matches(status, &hdr)) {
                    r.ops.apply(&mut hdr, &*ctx);
                }
                hdr
            });
        // The proxy names itself in Via instead of Server (outside header_down's reach).
        ctx.resp.headers.del("Server");
        // Go's response from the FastCGI client carries no protocol version: 0.0.
        let via = match (&self.fastcgi, answer.http11) {
            (Some(_), _) => "0.0 Caddy",
            (None, true) => "1.1 Caddy",
            (None, false) => "1.0 Caddy",
        };
        ctx.resp.headers.add("Via", via);
        // Room for the answer's fields at once, rather than growing the list field by field.
        ctx.resp.headers.0.reserve(answer.headers.0.len());
        match &edited {
            Some(hdr) => {
                for (k, vs) in hdr.iter() {
                    ctx.resp.headers.add_all(k, vs);
                }
            }
            None => {
                for (k, vs) in answer.headers.iter().filter(|(k, _)| kept(k)) {
                    ctx.resp.headers.add_all(k, vs);
                }
            }
        }
        ctx.write_header(status);
        ctx.resp.body.clear();
        ctx.proxy.relay = Some(index);
        Flow::Responded
    }
}

/// Caddy's `handleUpgradeResponse`: a 101 for the protocol the client asked for is passed on
/// with the upstream's fields as they are (`Sec-Websocket-*` spelled `Sec-WebSocket-*`), and
/// the worker tunnels both directions; any other 101 ends the handler without a response.
fn upgrade(index: usize, answer: &ResponseHead, ctx: &mut Ctx<'_, '_>) -> Flow {
    let asked = upgrade_type(&ctx.headers);
    let offered = upgrade_type(&answer.headers);
    let printable = |s: &str| s.bytes().all(|c| (b' '..=b'~').contains(&c));
    match (asked, offered) {
        (Some(a), Some(o)) if printable(&o) && a.eq_ignore_ascii_case(&o) => {}
        _ => return Flow::Stop,
    }
    for (k, vs) in answer.headers.iter() {
        let key = match k.strip_prefix("Sec-Websocket-") {
            Some(rest) => format!("Sec-WebSocket-{rest}"),
            None => k.clone(),
        };
        let mut all = ctx
            .resp
            .headers
            .raw(&key)
            .map(<[String]>::to_vec)
            .unwrap_or_default();
        all.extend(vs.iter().cloned());
        ctx.resp.headers.set_raw(key, all);
    }
    ctx.write_header(101);
    ctx.proxy.relay = Some(index);
    Flow::Responded
}

fn no_upstream() -> HandlerError {
    HandlerError {
        status: 503,
        message: "no upstreams available".to_owned(),
    }
}

/// The request's dial address for the upstream configured as `dial` (placeholders replaced).
fn dial_info(dial: &str, ctx: &Ctx<'_, '_>) -> std::result::Result<hosts::DialInfo, String> {
    if dial.contains('{') {
        return hosts::DialInfo::parse(dial, &replace_all(dial, ctx));
    }
    hosts::DialInfo::parse(dial, dial)
}

/// Go's `upgradeType`: the lower-cased `Upgrade` value when `Connection` asks for it.
fn upgrade_type(hdr: &HeaderMap) -> Option<String> {
    let conn = hdr.values("Connection").unwrap_or(&[]);
    if !has_token(conn.iter().map(String::as_str), "Upgrade") {
        return None;
    }
    Some(hdr.get("Upgrade").to_lowercase())
}

/// Go's `removeConnectionHeaders`: drops the fields the `Connection` header names.
fn remove_connection_headers(hdr: &mut HeaderMap) {
    let named = connection_named(hdr);
    if !named.is_empty() {
        hdr.retain(|k| !named.iter().any(|n| n == k));
    }
}

/// The canonical keys of the fields the `Connection` header names.
fn connection_named(hdr: &HeaderMap) -> Vec<String> {
    connection_tokens(hdr).map(canonical_key).collect()
}

/// The field names listed in the `Connection` header, as sent.
fn connection_tokens(hdr: &HeaderMap) -> impl Iterator<Item = &str> {
    hdr.raw("Connection")
        .unwrap_or(&[])
        .iter()
        .flat_map(|v| v.split(','))
        .map(|f| f.trim_matches([' ', '\t']))
        .filter(|f| !f.is_empty())
}

fn outside_handle_response(name: &str) -> Flow {
    Flow::Error(HandlerError {
        status: 500,
        message: format!("cannot use '{name}' outside of reverse_proxy's handle_response routes"),
    })
}

/// `http.handlers.copy_response`: sends the upstream response being handled.
#[derive(Debug)]
pub struct CopyResponse {
    status: Option<String>,
}

impl CopyResponse {
    pub fn compile(m: &Map<String, Value>) -> Result<CopyResponse> {
        Ok(CopyResponse {
            status: status_text(m.get("status_code"))?,
        })
    }

    pub fn run(&self, ctx: &mut Ctx<'_, '_>) -> Flow {
        let Some((index, rp)) = ctx.proxy.handling else {
            return outside_handle_response("copy_response");
        };
        let done = ctx.proxy.done;
        let Some(answer) = done.get(index).and_then(|i| i.answer.as_ref()) else {
            return outside_handle_response("copy_response");
        };
        let mut status = answer.status;
        if let Some(s) = &self.status {
            match replace_all(s, &*ctx).parse::<u16>() {
                Ok(n) => status = n,
                Err(e) => {
                    return Flow::Error(HandlerError {
                        status: 500,
                        message: e.to_string(),
                    })
                }
            }
        }
        rp.finalize(index, answer, status, ctx)
    }
}

/// `http.handlers.copy_response_headers`: copies upstream response fields (include/exclude).
#[derive(Debug)]
pub struct CopyResponseHeaders {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl CopyResponseHeaders {
    pub fn compile(m: &Map<String, Value>) -> Result<CopyResponseHeaders> {
        let include: Vec<String> = str_list(m.get("include"), "include")?
            .iter()
            .map(|k| canonical_key(k))
            .collect();
        let exclude: Vec<String> = str_list(m.get("exclude"), "exclude")?
            .iter()
            .map(|k| canonical_key(k))
            .collect();
        if !include.is_empty() && !exclude.is_empty() {
            return err("cannot define both 'exclude' and 'include' lists at the same time");
        }
        Ok(CopyResponseHeaders { include, exclude })
    }

    pub fn run(&self, ctx: &mut Ctx<'_, '_>) -> Flow {
        let Some((index, _)) = ctx.proxy.handling else {
            return outside_handle_response("copy_response_headers");
        };
        let done = ctx.proxy.done;
        let Some(answer) = done.get(index).and_then(|i| i.answer.as_ref()) else {
            return outside_handle_response("copy_response_headers");
        };
        for (field, values) in answer.headers.iter() {
            if !self.include.is_empty() && !self.include.contains(field) {
                continue;
            }
            if self.exclude.contains(field) {
                continue;
            }
            for v in values {
                ctx.resp.headers.add(field, v);
            }
        }
        Flow::Next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::client::ResponseBody;
    use crate::http1::{parse_request, ParserConfig, Response, Status};
    use crate::route::exec::{serve, Outcome};
    use crate::route::Program;

    fn program(handler: &str, extra_routes: &str) -> Program {
        let cfg = format!(
            r#"{{"apps":{{"http":{{"servers":{{"s":{{"listen":[":1"],"routes":[
                {{"handle":[{handler}{extra_routes}]}}]}}}}}}}}}}"#
        );
        Program::compile(&cfg).unwrap()
    }

    /// Runs the routes for `raw` from 192.0.2.7 with `done` as the recorded invocations.
    fn run_with(
        p: &Program,
        raw: &str,
        done: &[Invocation],
    ) -> (Outcome, Option<Call>, Response, Option<usize>) {
        let Ok(Status::Complete(head, _)) = parse_request(raw.as_bytes(), &ParserConfig::default())
        else {
            panic!("bad test request")
        };
        let peer = "192.0.2.7:5555".parse().ok();
        let mut ctx = Ctx::for_server(&head, peer, None, Some(&p.servers[0]));
        ctx.proxy.done = done;
        ctx.proxy.fresh = done.len().checked_sub(1);
        let out = serve(&p.servers[0], &mut ctx);
        let call = ctx.proxy.call.take();
        (out, call, std::mem::take(&mut ctx.resp), ctx.proxy.relay)
    }

    fn upstream_head(p: &Program, raw: &str) -> String {
        let (out, call, _, _) = run_with(p, raw, &[]);
        assert_eq!(out, Outcome::Proxy);
        let target = call.unwrap().target.unwrap();
        String::from_utf8(target.head).unwrap()
    }

    fn answered(status: u16, fields: &[(&str, &str)]) -> Invocation {
        let mut headers = HeaderMap::default();
        for (k, v) in fields {
            headers.add(k, v);
        }
        Invocation {
            started: Instant::now(),
            tries: 1,
            dial: "127.0.0.1:9".into(),
            set_cookie: None,
            failure: None,
            answer: Some(ResponseHead {
                http11: true,
                status,
                status_text: format!("{status} X"),
                headers,
                body: ResponseBody::Length(0),
                close: false,
            }),
            host: None,
            latency: Duration::ZERO,
            body_spent: false,
        }
    }

    const RP: &str = r#"{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}]}"#;

    #[test]
    fn request_head_like_caddy() {
        let p = program(RP, "");
        let head = upstream_head(
            &p,
            "POST /a%20b?q HTTP/1.1\r\nHost: ex.com\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
             TE: trailers, deflate\r\nProxy-Authorization: s\r\nX-Forwarded-For: 203.0.113.1\r\n\
             Content-Length: 3\r\n\r\nabc",
        );
        assert_eq!(
            head,
            "POST /a%20b?q HTTP/1.1\r\nHost: ex.com\r\nContent-Length: 3\r\nTe: trailers\r\n\
             Via: 1.1 Caddy\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Host: ex.com\r\n\
             X-Forwarded-Proto: http\r\nAccept-Encoding: gzip\r\n\r\n"
        );
    }

    #[test]
    fn trusted_proxy_extends_forwarding_and_http10_via() {
        let rp = r#"{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}],
                     "trusted_proxies":["192.0.2.0/24"]}"#;
        let head = upstream_head(
            &program(rp, ""),
            "GET / HTTP/1.0\r\nHost: h\r\nX-Forwarded-For: 203.0.113.1\r\nX-Forwarded-Proto: https\r\n\
             Accept-Encoding: br\r\n\r\n",
        );
        assert!(
            head.contains("X-Forwarded-For: 203.0.113.1, 192.0.2.7\r\n"),
            "{head}"
        );
        assert!(
            head.contains("X-Forwarded-Proto: https\r\n") && head.contains("Via: 1.0 Caddy\r\n")
        );
        assert!(head.contains("Accept-Encoding: br\r\n") && !head.contains("gzip"));
    }

    #[test]
    fn rewrite_to_get_drops_the_body_and_bodiless_put_says_zero() {
        let rp = r#"{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}],
                     "rewrite":{"method":"GET","uri":"/auth"}}"#;
        let p = program(rp, "");
        let head = upstream_head(
            &p,
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert!(
            head.starts_with("GET /auth HTTP/1.1\r\nHost: h\r\nVia"),
            "{head}"
        );
        let rp = r#"{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}],
                     "rewrite":{"method":"PUT"}}"#;
        let head = upstream_head(&program(rp, ""), "GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(head.contains("Content-Length: 0\r\n"), "{head}");
    }

    #[test]
    fn upgrade_headers_survive_hop_removal() {
        let head = upstream_head(
            &program(RP, ""),
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\
             Te: deflate\r\nKeep-Alive: 5\r\nTrailer: X\r\nX-A: 1\r\n\r\n",
        );
        assert!(
            head.contains("Connection: Upgrade\r\n") && head.contains("Upgrade: websocket\r\n")
        );
        // A `Te` without `trailers` goes with the other hop-by-hop fields.
        assert!(!head.contains("Te:") && !head.contains("Keep-Alive") && !head.contains("Trailer"));
        assert!(head.contains("X-A: 1\r\n"));
    }

    #[test]
    fn response_headers_via_instead_of_server() {
        let rp = r#"{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}],
                     "headers":{"response":{"delete":["X-Secret"],"set":{"X-Up":["{http.reverse_proxy.upstream.hostport}"]}}}}"#;
        let p = program(rp, "");
        let done = [answered(
            404,
            &[
                ("Connection", "X-Gone"),
                ("X-Gone", "1"),
                ("X-Secret", "s"),
                ("Server", "up"),
            ],
        )];
        let (out, _, resp, relay) = run_with(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &done);
        assert_eq!((out, resp.status, relay), (Outcome::Respond, 404, Some(0)));
        let h = &resp.headers;
        assert_eq!(h.raw("Server").unwrap(), ["up"]);
        assert_eq!((h.get("Via"), h.get("X-Up")), ("1.1 Caddy", "127.0.0.1:9"));
        assert!(!h.has("X-Gone") && !h.has("X-Secret") && !h.has("Connection"));
        // Without header_down: the fields `Connection` names go too, hop-by-hop ones or not.
        let fields = [
            ("Connection", "keep-alive, x-gone"),
            ("Keep-Alive", "timeout=5"),
            ("X-Gone", "1"),
            ("X-Kept", "1"),
        ];
        let done = [answered(200, &fields)];
        let (_, _, resp, _) =
            run_with(&program(RP, ""), "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &done);
        let names: Vec<&str> = resp.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Via", "X-Kept"]);
    }

    #[test]
    fn failures_go_to_error_routes_and_handle_response_falls_through() {
        let p = program(RP, "");
        let mut failed = answered(200, &[]);
        failed.answer = None;
        failed.failure = Some(Failure {
            error: HandlerError {
                status: 502,
                message: "dial tcp 127.0.0.1:9: connect: connection refused".into(),
            },
            dial: true,
        });
        let (out, call, resp, _) = run_with(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &[failed]);
        assert_eq!(
            (out, call.is_none(), resp.status),
            (Outcome::Respond, true, 502)
        );
        // forward_auth's shape: a 2xx runs routes that fall through to the next handler.
        let rp = r#"{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}],
                     "handle_response":[{"match":{"status_code":[2]},"routes":[{"handle":[
                       {"handler":"headers","request":{"set":{"X-User":["{http.reverse_proxy.header.X-User}"]}}}]}]}]}"#;
        let next = r#",{"handler":"static_response","body":"user={http.request.header.X-User}"}"#;
        let p = program(rp, next);
        let done = [answered(204, &[("X-User", "alice")])];
        let (out, _, resp, relay) = run_with(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &done);
        assert_eq!(
            (out, relay, resp.body.as_slice()),
            (Outcome::Respond, None, &b"user=alice"[..])
        );
        let done = [answered(401, &[])];
        let (_, _, resp, relay) = run_with(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &done);
        assert_eq!((resp.status, relay), (401, Some(0)));
    }

    #[test]
    fn response_placeholders_read_the_latest_response_with_the_field() {
        // Two forward_auth-like handlers: each 2xx runs routes that fall through.
        let rp = r#"{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}],
                     "handle_response":[{"match":{"status_code":[2]},"routes":[]}]}"#;
        let body = "{http.reverse_proxy.header.X-A}|{http.reverse_proxy.header.X-B}|\
                    {http.reverse_proxy.header.x-a}|{http.reverse_proxy.status_code}|\
                    {http.reverse_proxy.status_text}|{http.reverse_proxy.upstream.hostport}";
        let next = format!(r#",{rp},{{"handler":"static_response","body":"{body}"}}"#);
        let p = program(rp, &next);
        let done = [
            answered(200, &[("X-A", "1"), ("X-B", "old")]),
            answered(204, &[("X-B", "new"), ("X-B", "2")]),
        ];
        let (_, _, resp, _) = run_with(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &done);
        // Field names match as Go's header keys do, exactly: `x-a` stays unknown.
        assert_eq!(
            String::from_utf8(resp.body).unwrap(),
            "1|new,2|{http.reverse_proxy.header.x-a}|204|204 X|127.0.0.1:9"
        );
    }

    #[test]
    fn copy_response_headers_and_copy_response() {
        let rp = r#"{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}],
                     "handle_response":[{"routes":[{"handle":[
                       {"handler":"copy_response_headers","exclude":["x-b"]},
                       {"handler":"copy_response","status_code":299}]}]}]}"#;
        let p = program(rp, "");
        let done = [answered(418, &[("X-A", "1"), ("X-B", "2")])];
        let (_, _, resp, relay) = run_with(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &done);
        assert_eq!((resp.status, relay), (299, Some(0)));
        // copied once by copy_response_headers, once more by copy_response
        assert_eq!(resp.headers.raw("X-A").unwrap(), ["1", "1"]);
        assert_eq!(resp.headers.raw("X-B").unwrap(), ["2"]);
        let bare = program(r#"{"handler":"copy_response"}"#, "");
        let (_, _, resp, _) = run_with(&bare, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", &[]);
        assert_eq!(resp.status, 500);
    }

    #[test]
    fn upgrade_needs_the_asked_protocol() {
        let p = program(RP, "");
        let done = [answered(
            101,
            &[("Connection", "Upgrade"), ("Upgrade", "h2c")],
        )];
        let ws = "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let (_, _, resp, relay) = run_with(&p, ws, &done);
        assert_eq!((resp.status, relay), (200, None));
        let done = [answered(
            101,
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-Websocket-Accept", "a"),
            ],
        )];
        let (_, _, resp, relay) = run_with(&p, ws, &done);
        assert_eq!((resp.status, relay), (101, Some(0)));
        assert_eq!(resp.headers.raw("Sec-WebSocket-Accept").unwrap(), ["a"]);
        assert_eq!(resp.headers.get("Server"), "Caddy");
    }

    const FCGI: &str = r#"{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9000"}],
        "transport":{"protocol":"fastcgi","split_path":[".php"],"root":"/srv"}}"#;

    /// The record types of a FastCGI request head and its PARAMS pairs.
    fn fcgi_records(head: &[u8]) -> (Vec<u8>, Vec<(String, String)>) {
        let (mut kinds, mut params) = (Vec::new(), Vec::new());
        let mut at = 0;
        while at < head.len() {
            let len = usize::from(u16::from_be_bytes([head[at + 4], head[at + 5]]));
            kinds.push(head[at + 1]);
            if head[at + 1] == fastcgi::record::PARAMS {
                params.extend_from_slice(&head[at + 8..at + 8 + len]);
            }
            at += 8 + len + usize::from(head[at + 6]);
        }
        let size = |b: &[u8], i: &mut usize| -> usize {
            if b[*i] & 0x80 == 0 {
                *i += 1;
                usize::from(b[*i - 1])
            } else {
                *i += 4;
                (u32::from_be_bytes([b[*i - 4], b[*i - 3], b[*i - 2], b[*i - 1]]) & 0x7fff_ffff)
                    as usize
            }
        };
        let mut pairs = Vec::new();
        let mut i = 0;
        while i < params.len() {
            let (k, v) = (size(&params, &mut i), size(&params, &mut i));
            let text = |a: usize, n: usize| String::from_utf8(params[a..a + n].to_vec()).unwrap();
            pairs.push((text(i, k), text(i + k, v)));
            i += k + v;
        }
        (kinds, pairs)
    }

    #[test]
    fn fastcgi_request_is_records_of_the_prepared_request() {
        let p = program(FCGI, "");
        let (out, call, _, _) = run_with(
            &p,
            "GET /a.php/x?q=1 HTTP/1.1\r\nHost: h:8080\r\nConnection: keep-alive, X-Hop\r\n\
             X-Hop: 1\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n",
            &[],
        );
        assert_eq!(out, Outcome::Proxy);
        let target = call.unwrap().target.unwrap();
        assert!(target.fastcgi.is_some() && !target.gzip);
        assert_eq!(target.body, RequestBody::None);
        let (kinds, env) = fcgi_records(&target.head);
        // BEGIN_REQUEST, the PARAMS stream and its end, then the empty STDIN: no body follows
        assert_eq!(kinds, [1, 4, 4, 5]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let want = [
            ("SCRIPT_FILENAME", "/srv/a.php"),
            ("PATH_INFO", "/x"),
            ("SERVER_PORT", "8080"),
            ("REMOTE_ADDR", "192.0.2.7"),
            ("HTTP_X_FORWARDED_FOR", "192.0.2.7"),
            ("HTTP_VIA", "1.1 Caddy"),
            ("HTTP_USER_AGENT", ""),
            ("HTTP_CONTENT_LENGTH", "0"),
            ("CONTENT_LENGTH", "0"),
        ];
        for (k, v) in want {
            assert_eq!(get(k), Some(v), "{k}");
        }
        assert_eq!(
            (get("HTTP_X_HOP"), get("HTTP_ACCEPT_ENCODING")),
            (None, None)
        );
    }

    /// Runs the FastCGI program with the body already buffered.
    fn fcgi_status(raw: &str, body: &[u8]) -> u16 {
        let p = program(FCGI, "");
        let Ok(Status::Complete(head, _)) = parse_request(raw.as_bytes(), &ParserConfig::default())
        else {
            panic!("bad test request")
        };
        let mut ctx = Ctx::for_server(&head, None, None, Some(&p.servers[0]));
        ctx.body = Some(body);
        serve(&p.servers[0], &mut ctx);
        ctx.resp.status
    }

    #[test]
    fn fastcgi_refuses_unknown_lengths_and_nul_paths() {
        let chunked = "POST /a.php HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(fcgi_status(chunked, &[b'x'; 4097]), 411);
        assert_eq!(
            fcgi_status("GET /a%00.php HTTP/1.1\r\nHost: h\r\n\r\n", b""),
            400
        );
        // within the buffer the length is known: the request goes out
        let p = program(FCGI, "");
        let Ok(Status::Complete(head, _)) =
            parse_request(chunked.as_bytes(), &ParserConfig::default())
        else {
            panic!("bad test request")
        };
        let mut ctx = Ctx::for_server(&head, None, None, Some(&p.servers[0]));
        ctx.body = Some(b"abc");
        assert_eq!(serve(&p.servers[0], &mut ctx), Outcome::Proxy);
        let target = ctx.proxy.call.take().unwrap().target.unwrap();
        assert_eq!(target.body, RequestBody::Length(3));
        let (kinds, env) = fcgi_records(&target.head);
        assert_eq!(kinds, [1, 4, 4]);
        assert!(env.contains(&("CONTENT_LENGTH".into(), "3".into())));
    }

    #[test]
    fn fastcgi_response_says_via_0_0() {
        let p = program(FCGI, "");
        let (_, _, resp, relay) = run_with(
            &p,
            "GET /a.php HTTP/1.1\r\nHost: h\r\n\r\n",
            &[answered(200, &[("Status", "200 OK")])],
        );
        assert_eq!((resp.status, relay), (200, Some(0)));
        assert_eq!(resp.headers.get("Via"), "0.0 Caddy");
        assert_eq!(resp.headers.get("Status"), "200 OK");
    }
}
