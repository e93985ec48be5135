//! `health_checks` of a `reverse_proxy` handler (Caddy's healthchecks.go).
//!
//! Active checks run on one background thread per compiled handler, off the workers, with
//! blocking sockets: every `interval` (first round at once) each upstream gets one request
//! in parallel, and `passes`/`fails` results since the last change flip its up/down flag. Dropping the
//! handler (a reload replaced it) wakes the thread, which exits without being joined so that
//! whoever drops the old program never waits on a slow check. Passive checks are counters
//! fed by the proxy loop through [`HealthChecks::record`] and [`HealthChecks::count_failure`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::hosts::{Host, Pool, Target};
use crate::http1::header::canonical_key;
use crate::http1::{buffered, BodyKind};
use crate::route::ctx::Uri;
use crate::route::handlers::headers::status_matches;
use crate::route::{context, duration, err, Result};

/// Passive health check policy (`health_checks.passive`).
#[derive(Debug, Clone, Default)]
pub struct Passive {
    /// How long a failure counts; zero disables counting.
    pub fail_duration: Duration,
    /// Failures within `fail_duration` that make an upstream unhealthy (default 1).
    pub max_fails: u64,
    /// Default `max_requests` of upstreams that set none.
    pub unhealthy_request_count: u64,
    /// Response statuses that count as a failure (a code below 100 is a class).
    pub unhealthy_status: Vec<u16>,
    /// A response header slower than this counts as a failure (zero: off).
    pub unhealthy_latency: Duration,
}

/// Active health check settings (`health_checks.active`), provisioned.
#[derive(Debug)]
pub struct Active {
    /// Request target (path and query).
    pub uri: String,
    /// `upstream`: the Host to ask for instead of the upstream's address.
    pub upstream: String,
    /// `port`: dial this port instead of the upstream's (ignored when `upstream` is set).
    pub port: u16,
    /// Header fields in canonical form, Host excluded.
    pub headers: Vec<(String, Vec<String>)>,
    /// The `Host` header value, if configured.
    pub host_header: Option<String>,
    pub method: String,
    pub body: String,
    /// Follow up to 10 redirects (Go's client), each dialled to the same upstream.
    pub follow_redirects: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub passes: i64,
    pub fails: i64,
    /// Body bytes to read at most (0: all).
    pub max_size: u64,
    pub expect_status: u16,
    pub expect_body: Option<regex::bytes::Regex>,
}

#[derive(Debug, Default)]
struct Stopper {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stopper {
    /// Sleeps until `deadline`; false once the handler is gone.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *stopped {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A handler's health checks.
#[derive(Debug, Default)]
pub struct HealthChecks {
    pub active: Option<Arc<Active>>,
    pub passive: Option<Passive>,
    stopper: Option<Arc<Stopper>>,
}

fn uint(m: &Map<String, Value>, key: &str) -> Result<u64> {
    match m.get(key) {
        None => Ok(0),
        Some(v) => match v.as_i64() {
            Some(n) => Ok(n.max(0) as u64),
            None => err(format!("{key}: expected an integer")),
        },
    }
}

fn string(m: &Map<String, Value>, key: &str) -> Result<String> {
    match m.get(key) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => err(format!("{key}: expected a string")),
    }
}

fn dur(m: &Map<String, Value>, key: &str) -> Result<Duration> {
    m.get(key).map_or(Ok(Duration::ZERO), |v| duration(v, key))
}

impl Passive {
    fn compile(m: &Map<String, Value>) -> Result<Passive> {
        let unhealthy_status = match m.get("unhealthy_status") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| {
                    s.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or(())
                        .or_else(|_| err("unhealthy_status: expected status codes"))
                })
                .collect::<Result<_>>()?,
            Some(_) => return err("unhealthy_status: expected an array"),
        };
        let max_fails = uint(m, "max_fails")?;
        Ok(Passive {
            fail_duration: dur(m, "fail_duration")?,
            max_fails: if max_fails == 0 { 1 } else { max_fails },
            unhealthy_request_count: uint(m, "unhealthy_request_count")?,
            unhealthy_status,
            unhealthy_latency: dur(m, "unhealthy_latency")?,
        })
    }
}

impl Active {
    /// Provisions the active checks; `None` when neither `uri`, `path` nor `port` is set
    /// (Caddy's `IsEnabled`).
    fn compile(m: &Map<String, Value>) -> Result<Option<Active>> {
        let path = string(m, "path")?;
        let uri = string(m, "uri")?;
        let port = uint(m, "port")?;
        if path.is_empty() && uri.is_empty() && port == 0 {
            return Ok(None);
        }
        let port = u16::try_from(port).or_else(|_| err("port: out of range"))?;
        let target = if uri.is_empty() {
            Uri {
                path,
                raw_path: None,
                query: String::new(),
            }
            .request_uri()
        } else {
            Uri::from_target(&uri).request_uri()
        };
        let mut headers: Vec<(String, Vec<String>)> = Vec::new();
        let mut host_header = None;
        match m.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (name, vals) in h {
                    let vals = crate::route::str_list(Some(vals), "headers")?;
                    let key = canonical_key(name);
                    if key == "Host" {
                        host_header = host_header.or(vals.first().cloned());
                        continue;
                    }
                    match headers.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => v.extend(vals),
                        None => headers.push((key, vals)),
                    }
                }
                headers.sort_by(|a, b| a.0.cmp(&b.0));
            }
            Some(_) => return err("headers: expected an object"),
        }
        let expect_body = match string(m, "expect_body")? {
            b if b.is_empty() => None,
            b => {
                crate::route::regex(&b).map_err(|e| {
                    crate::route::CompileError(format!(
                        "expect_body: compiling regular expression: {e}"
                    ))
                })?;
                regex::bytes::Regex::new(&b).ok()
            }
        };
        let method = match string(m, "method")? {
            s if s.is_empty() => "GET".to_owned(),
            s => s,
        };
        let or = |d: Duration, default: u64| {
            if d.is_zero() {
                Duration::from_secs(default)
            } else {
                d
            }
        };
        let at_least_one = |n: u64| (n.max(1)).min(i64::MAX as u64) as i64;
        Ok(Some(Active {
            uri: target,
            upstream: string(m, "upstream")?,
            port,
            headers,
            host_header,
            method,
            body: string(m, "body")?,
            follow_redirects: m.get("follow_redirects").and_then(Value::as_bool) == Some(true),
            interval: or(dur(m, "interval")?, 30),
            timeout: or(dur(m, "timeout")?, 5),
            passes: at_least_one(uint(m, "passes")?),
            fails: at_least_one(uint(m, "fails")?),
            max_size: uint(m, "max_size")?,
            expect_status: u16::try_from(uint(m, "expect_status")?).unwrap_or(0),
            expect_body,
        }))
    }
}

impl HealthChecks {
    /// Compiles the handler's `health_checks` object (absent: no checks).
    pub fn compile(v: Option<&Value>) -> Result<HealthChecks> {
        let m = match v {
            None | Some(Value::Null) => return Ok(HealthChecks::default()),
            Some(Value::Object(m)) => m,
            Some(_) => return err("health_checks: expected an object"),
        };
        let passive = match m.get("passive") {
            None | Some(Value::Null) => None,
            Some(Value::Object(p)) => Some(context(Passive::compile(p), "passive")?),
            Some(_) => return err("health_checks: passive: expected an object"),
        };
        let active = match m.get("active") {
            None | Some(Value::Null) => None,
            Some(Value::Object(a)) => Active::compile(a)?.map(Arc::new),
            Some(_) => return err("health_checks: active: expected an object"),
        };
        Ok(HealthChecks {
            active,
            passive,
            stopper: None,
        })
    }

    /// Starts the active checker over `pool`, if active checks are enabled. It runs until
    /// this value is dropped (or the pool is).
    pub fn start(&mut self, pool: &Arc<Pool>) {
        let Some(active) = &self.active else {
            return;
        };
        if self.stopper.is_some() {
            return;
        }
        let stopper = Arc::new(Stopper::default());
        let (active, pool, stop) = (Arc::clone(active), Arc::downgrade(pool), stopper.clone());
        let spawned = std::thread::Builder::new()
            .name("zs-health".into())
            .spawn(move || checker(&active, &pool, &stop));
        if spawned.is_ok() {
            self.stopper = Some(stopper);
        }
    }

    /// Passive checks on a response from `host`: a strike per matching `unhealthy_status`
    /// entry and one if the header took `unhealthy_latency` or longer.
    pub fn record(&self, host: &Host, status: u16, latency: Duration) {
        let Some(p) = &self.passive else {
            return;
        };
        for bad in &p.unhealthy_status {
            if status_matches(status, *bad) {
                host.count_fail(p.fail_duration);
            }
        }
        if !p.unhealthy_latency.is_zero() && latency >= p.unhealthy_latency {
            host.count_fail(p.fail_duration);
        }
    }

    /// Passive checks on a failed round trip to `host` (Caddy's `countFailure`).
    pub fn count_failure(&self, host: &Host) {
        if let Some(p) = &self.passive {
            host.count_fail(p.fail_duration);
        }
    }
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        if let Some(s) = &self.stopper {
            *s.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
            s.wake.notify_all();
        }
    }
}

fn checker(active: &Active, pool: &Weak<Pool>, stop: &Stopper) {
    let mut next = Instant::now();
    loop {
        let Some(pool) = pool.upgrade() else {
            return;
        };
        std::thread::scope(|s| {
            for host in &pool.hosts {
                // Out of threads: check this one inline rather than give up the round.
                let spawned = std::thread::Builder::new()
                    .name("zs-health-check".into())
                    .spawn_scoped(s, move || check_host(active, host));
                if spawned.is_err() {
                    check_host(active, host);
                }
            }
        });
        drop(pool);
        next += active.interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        if !stop.sleep_until(next) {
            return;
        }
    }
}

/// Where one check goes: the socket to dial and the URL host.
enum Dial {
    Tcp(Vec<SocketAddr>),
    Unix(std::path::PathBuf),
}

fn check_host(active: &Active, host: &Host) {
    let Some((dial, host_addr)) = check_target(active, host) else {
        return;
    };
    let url_host = if !active.upstream.is_empty() {
        active.upstream.clone()
    } else if active.port != 0 {
        let h = host_addr
            .rsplit_once(':')
            .map_or(host_addr.as_str(), |(h, _)| h);
        join_host_port(h.trim_start_matches('[').trim_end_matches(']'), active.port)
    } else {
        host_addr
    };
    if probe(active, &dial, &url_host, &host.dial) {
        if host.count_active_pass() >= active.passes && host.set_healthy(true) {
            host.reset_active();
        }
    } else if host.count_active_fail() >= active.fails && host.set_healthy(false) {
        host.reset_active();
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The dial target and URL host of `host`'s check, or `None` when it cannot be checked
/// (placeholders or a bad address: Caddy logs and skips those).
fn check_target(active: &Active, host: &Host) -> Option<(Dial, String)> {
    let port = if active.upstream.is_empty() {
        active.port
    } else {
        0
    };
    match &host.target {
        Target::Tcp(addrs) => {
            let (dial_host, dial_port) = host
                .dial
                .rsplit_once('/')
                .map_or(host.dial.as_str(), |(_, a)| a)
                .rsplit_once(':')?;
            let dial_host = dial_host.trim_start_matches('[').trim_end_matches(']');
            let p = if port != 0 {
                port
            } else {
                dial_port.parse().ok()?
            };
            let addrs = addrs.iter().map(|a| SocketAddr::new(a.ip(), p)).collect();
            Some((Dial::Tcp(addrs), join_host_port(dial_host, p)))
        }
        Target::Unix(path) if port == 0 => Some((Dial::Unix(path.clone()), "localhost".into())),
        Target::Unix(_) => None,
        Target::Placeholder | Target::Invalid(_) | Target::Unresolved(_) => None,
    }
}

trait Conn: Read + Write {
    fn set_timeout(&self, t: Duration) -> std::io::Result<()>;
}

impl Conn for TcpStream {
    fn set_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Conn for UnixStream {
    fn set_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

fn connect(dial: &Dial, deadline: Instant) -> Option<Box<dyn Conn>> {
    match dial {
        Dial::Tcp(addrs) => addrs.iter().find_map(|a| {
            let left = deadline.checked_duration_since(Instant::now())?;
            TcpStream::connect_timeout(a, left)
                .ok()
                .map(|s| Box::new(s) as Box<dyn Conn>)
        }),
        Dial::Unix(p) => UnixStream::connect(p)
            .ok()
            .map(|s| Box::new(s) as Box<dyn Conn>),
    }
}

/// One request of a check (the first, or one after a redirect).
struct Ask {
    method: String,
    /// Request target (path and query).
    uri: String,
    body: String,
    /// Value of the Host header.
    host: String,
    /// The URL's host (what a redirect to a relative location keeps).
    url_host: String,
}

impl Ask {
    /// The request after a redirect to `location` with `status`, as Go's client makes it:
    /// 301/302/303 turn a method other than GET/HEAD into a GET without body; a custom Host
    /// survives only a relative location. `None` for a location the check cannot follow.
    fn redirected(&self, status: u16, location: &str, custom_host: bool) -> Option<Ask> {
        let (url_host, uri, relative) = if let Some(rest) = location.strip_prefix("http://") {
            let (h, path) = rest
                .find(['/', '?'])
                .map_or((rest, "/"), |i| rest.split_at(i));
            (h.to_owned(), path.to_owned(), false)
        } else if let Some(rest) = location.strip_prefix("//") {
            let (h, path) = rest
                .find(['/', '?'])
                .map_or((rest, "/"), |i| rest.split_at(i));
            (h.to_owned(), path.to_owned(), false)
        } else if location.contains("://") {
            return None;
        } else if location.starts_with('/') {
            (self.url_host.clone(), location.to_owned(), true)
        } else {
            let path = self.uri.split('?').next().unwrap_or("/");
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            (self.url_host.clone(), format!("{dir}/{location}"), true)
        };
        let to_get = matches!(status, 301..=303) && !matches!(self.method.as_str(), "GET" | "HEAD");
        Some(Ask {
            method: if to_get {
                "GET".to_owned()
            } else {
                self.method.clone()
            },
            uri: if uri.starts_with('/') {
                uri
            } else {
                format!("/{uri}")
            },
            body: if to_get {
                String::new()
            } else {
                self.body.clone()
            },
            host: if custom_host && relative {
                self.host.clone()
            } else {
                url_host.clone()
            },
            url_host,
        })
    }
}

/// A request as Go's client writes it.
fn request(active: &Active, ask: &Ask, target: &str) -> Vec<u8> {
    let mut out = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        ask.method, ask.uri, ask.host
    );
    let has = |name: &str| active.headers.iter().any(|(k, _)| k == name);
    if !has("User-Agent") {
        out.push_str("User-Agent: Go-http-client/1.1\r\n");
    }
    if !ask.body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", ask.body.len()));
    }
    for (k, vals) in &active.headers {
        for v in vals {
            let v = v.replace("{http.reverse_proxy.active.target_upstream}", target);
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if gzip_asked(active, &ask.method) {
        out.push_str("Accept-Encoding: gzip\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&ask.body);
    out.into_bytes()
}

/// Go's transport asks for gzip itself (and then decodes it) unless the request set
/// Accept-Encoding or Range, or is a HEAD.
fn gzip_asked(active: &Active, method: &str) -> bool {
    method != "HEAD"
        && !active
            .headers
            .iter()
            .any(|(k, _)| k == "Accept-Encoding" || k == "Range")
}

/// A parsed response head.
struct Head {
    status: u16,
    location: Option<String>,
    body: BodyKind,
    until_eof: bool,
    gzip: bool,
}

fn parse_head(head: &[u8], method: &str) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let (mut length, mut chunked, mut gzip, mut location) = (None, false, false, None);
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match canonical_key(k.trim()).as_str() {
            "Content-Length" => length = v.parse::<u64>().ok(),
            "Transfer-Encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "Content-Encoding" => gzip = v.eq_ignore_ascii_case("gzip"),
            "Location" => location = location.or_else(|| Some(v.to_owned())),
            _ => {}
        }
    }
    let bodiless = method == "HEAD" || status / 100 == 1 || status == 204 || status == 304;
    let (body, until_eof) = if bodiless {
        (BodyKind::None, false)
    } else if chunked {
        (BodyKind::Chunked, false)
    } else if let Some(n) = length {
        (BodyKind::Length(n), false)
    } else {
        (BodyKind::None, true)
    };
    Some(Head {
        status,
        location,
        body,
        until_eof,
        gzip,
    })
}

/// Reads more bytes into `buf`; false at EOF or on error/timeout.
fn fill(conn: &mut dyn Conn, buf: &mut Vec<u8>, deadline: Instant) -> bool {
    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
        return false;
    };
    if left.is_zero() || conn.set_timeout(left).is_err() {
        return false;
    }
    let mut chunk = [0u8; 16 * 1024];
    match conn.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Upper bound on a response head, as Go's default `MaxResponseHeaderBytes`.
const MAX_HEAD: usize = 1 << 20;

/// Most redirects Go's client follows before it gives up.
const MAX_REDIRECTS: usize = 10;

/// One check against one upstream; true when it passed.
fn probe(active: &Active, dial: &Dial, url_host: &str, target: &str) -> bool {
    let deadline = Instant::now() + active.timeout;
    let mut ask = Ask {
        method: active.method.clone(),
        uri: active.uri.clone(),
        body: active.body.clone(),
        host: active
            .host_header
            .clone()
            .unwrap_or_else(|| url_host.to_owned()),
        url_host: url_host.to_owned(),
    };
    for hop in 0..=MAX_REDIRECTS {
        let Some((mut conn, head, rest)) = exchange(active, dial, &ask, target, deadline) else {
            return false;
        };
        let redirect = matches!(head.status, 301 | 302 | 303 | 307 | 308);
        if active.follow_redirects && redirect {
            if let Some(loc) = &head.location {
                if hop == MAX_REDIRECTS {
                    return false;
                }
                match ask.redirected(head.status, loc, active.host_header.is_some()) {
                    Some(next) => ask = next,
                    None => return false,
                }
                continue;
            }
        }
        let status_ok = if active.expect_status > 0 {
            status_matches(head.status, active.expect_status)
        } else {
            (200..300).contains(&head.status)
        };
        if !status_ok {
            return false;
        }
        let Some(re) = &active.expect_body else {
            return true;
        };
        let Some(body) = read_body(&mut *conn, &head, rest, deadline, active.max_size) else {
            return false;
        };
        return re.is_match(&body);
    }
    false
}

/// Sends `ask` on a new connection and reads the final response head: the connection, the
/// head and the body bytes already read.
fn exchange(
    active: &Active,
    dial: &Dial,
    ask: &Ask,
    target: &str,
    deadline: Instant,
) -> Option<(Box<dyn Conn>, Head, Vec<u8>)> {
    let mut conn = connect(dial, deadline)?;
    let req = request(active, ask, target);
    let left = deadline.saturating_duration_since(Instant::now());
    conn.set_timeout(left.max(Duration::from_millis(1))).ok()?;
    conn.write_all(&req).ok()?;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse_head(&buf[..end], &ask.method)?;
            if head.status / 100 == 1 && head.status != 101 {
                buf.drain(..end + 4);
                continue;
            }
            let rest = buf.split_off(end + 4);
            return Some((conn, head, rest));
        }
        if buf.len() > MAX_HEAD || !fill(&mut *conn, &mut buf, deadline) {
            return None;
        }
    }
}

/// The (decoded) response body, up to `max_size` bytes when that is set.
fn read_body(
    conn: &mut dyn Conn,
    head: &Head,
    mut buf: Vec<u8>,
    deadline: Instant,
    max_size: u64,
) -> Option<Vec<u8>> {
    let limit = if max_size > 0 {
        max_size as usize
    } else {
        usize::MAX
    };
    let mut raw = if head.until_eof {
        while buf.len() < limit && fill(conn, &mut buf, deadline) {}
        if Instant::now() >= deadline {
            return None;
        }
        buf
    } else {
        loop {
            match buffered(&buf, head.body) {
                Ok(Some((data, _))) => break data,
                Ok(None) => {
                    if !fill(conn, &mut buf, deadline) {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
    };
    if head.gzip {
        let mut out = Vec::new();
        let dec = flate2::read::GzDecoder::new(raw.as_slice());
        dec.take(limit as u64).read_to_end(&mut out).ok()?;
        raw = out;
    }
    raw.truncate(limit);
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn hc(json: &str) -> HealthChecks {
        HealthChecks::compile(Some(&serde_json::from_str(json).unwrap())).unwrap()
    }

    /// A backend answering each connection with `reply(n)` (n = connection number), and
    /// the requests it saw.
    fn backend(
        reply: impl Fn(usize) -> Vec<u8> + Send + 'static,
    ) -> (u16, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (n, conn) in l.incoming().enumerate() {
                let Ok(mut c) = conn else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let _ = c.write_all(&reply(n));
            }
        });
        (port, seen)
    }

    fn ok(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn compile_defaults() {
        let h = hc(r#"{"active":{"uri":"/health?x=1"},"passive":{"fail_duration":"10s"}}"#);
        let a = h.active.as_ref().unwrap();
        assert_eq!(a.uri, "/health?x=1");
        assert_eq!(a.interval, Duration::from_secs(30));
        assert_eq!(a.timeout, Duration::from_secs(5));
        assert_eq!((a.passes, a.fails), (1, 1));
        assert_eq!(a.method, "GET");
        let p = h.passive.as_ref().unwrap();
        assert_eq!(p.max_fails, 1);
        assert_eq!(p.fail_duration, Duration::from_secs(10));
        // Active checks need a uri, path or port to be enabled.
        assert!(hc(r#"{"active":{"interval":"1s"}}"#).active.is_none());
        let e = HealthChecks::compile(Some(
            &serde_json::from_str(r#"{"active":{"uri":"/","expect_body":"("}}"#).unwrap(),
        ))
        .unwrap_err();
        assert!(
            e.0.starts_with("expect_body: compiling regular expression: "),
            "{e}"
        );
    }

    #[test]
    fn passive_record() {
        let h = hc(r#"{"passive":{"fail_duration":"1m","max_fails":2,
            "unhealthy_status":[5,503],"unhealthy_latency":"100ms"}}"#);
        let host = Host::new("127.0.0.1:60101", 0, h.passive.as_ref());
        h.record(&host, 200, Duration::from_millis(5));
        assert_eq!(host.fails(), 0);
        // 503 matches both the 5xx class and 503: two strikes, like Caddy's loop.
        h.record(&host, 503, Duration::from_millis(5));
        assert_eq!(host.fails(), 2);
        assert!(!host.available());
        h.record(&host, 200, Duration::from_millis(100));
        h.count_failure(&host);
        assert_eq!(host.fails(), 4);
        // Without a fail_duration nothing is counted.
        let h = hc(r#"{"passive":{"unhealthy_status":[500]}}"#);
        let host = Host::new("127.0.0.1:60102", 0, h.passive.as_ref());
        h.record(&host, 500, Duration::ZERO);
        assert_eq!(host.fails(), 0);
    }

    #[test]
    fn probe_status_body_headers() {
        let (port, seen) = backend(|n| match n {
            0 => ok("all good"),
            1 => ok("degraded"),
            2 => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ngood\r\n0\r\n\r\n"
                .to_vec(),
        });
        let h = hc(
            r#"{"active":{"uri":"/hc","expect_body":"good","method":"HEADX",
                "headers":{"x-probe":["{http.reverse_proxy.active.target_upstream}"],
                "host":["example.test"]}}}"#,
        );
        let a = h.active.as_ref().unwrap();
        let dial = Dial::Tcp(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
        let target = format!("127.0.0.1:{port}");
        assert!(probe(a, &dial, &target, &target));
        assert!(!probe(a, &dial, &target, &target));
        assert!(!probe(a, &dial, &target, &target));
        assert!(probe(a, &dial, &target, &target));
        let first = seen.lock().unwrap()[0].clone();
        assert!(
            first.starts_with("HEADX /hc HTTP/1.1\r\nHost: example.test\r\n"),
            "{first}"
        );
        assert!(
            first.contains(&format!("X-Probe: 127.0.0.1:{port}\r\n")),
            "{first}"
        );
        assert!(
            first.contains("User-Agent: Go-http-client/1.1\r\n"),
            "{first}"
        );
        // A closed port fails the check.
        drop(TcpListener::bind("127.0.0.1:0"));
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(!probe(a, &Dial::Tcp(vec![closed]), &target, &target));
    }

    #[test]
    fn follows_redirects_only_when_asked() {
        let (port, seen) = backend(|n| match n {
            0 | 1 => {
                b"HTTP/1.1 302 Found\r\nLocation: /ok?x=1\r\nContent-Length: 0\r\n\r\n".to_vec()
            }
            _ => ok("fine"),
        });
        let dial = Dial::Tcp(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
        let t = format!("127.0.0.1:{port}");
        let h = hc(r#"{"active":{"uri":"/","method":"POST","body":"b"}}"#);
        assert!(
            !probe(h.active.as_ref().unwrap(), &dial, &t, &t),
            "a 302 fails"
        );
        let h = hc(r#"{"active":{"uri":"/","method":"POST","body":"b","follow_redirects":true}}"#);
        assert!(probe(h.active.as_ref().unwrap(), &dial, &t, &t));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(
            seen[2].starts_with(&format!("GET /ok?x=1 HTTP/1.1\r\nHost: {t}\r\n")),
            "{}",
            seen[2]
        );
        assert!(!seen[2].contains("Content-Length"), "{}", seen[2]);
        // Go's client gives up after 10 redirects.
        let (port, _) = backend(|_| {
            b"HTTP/1.1 307 Again\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n".to_vec()
        });
        let dial = Dial::Tcp(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
        let h = hc(r#"{"active":{"uri":"/","follow_redirects":true,"expect_status":3}}"#);
        assert!(!probe(h.active.as_ref().unwrap(), &dial, &t, &t));
    }

    #[test]
    fn expect_status_class() {
        let (port, _) = backend(|_| b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n".to_vec());
        let dial = Dial::Tcp(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
        let t = format!("127.0.0.1:{port}");
        let h = hc(r#"{"active":{"uri":"/"}}"#);
        assert!(!probe(h.active.as_ref().unwrap(), &dial, &t, &t));
        let h = hc(r#"{"active":{"uri":"/","expect_status":3}}"#);
        assert!(probe(h.active.as_ref().unwrap(), &dial, &t, &t));
    }

    #[test]
    fn checker_thread_flips_hosts_and_stops_on_drop() {
        // Fails twice, then passes forever.
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let (port, _) = backend(move |_| {
            if c.fetch_add(1, Ordering::SeqCst) < 2 {
                b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_vec()
            } else {
                ok("")
            }
        });
        let mut h = hc(r#"{"active":{"uri":"/","interval":"50ms","fails":2,"passes":2}}"#);
        let pool = Arc::new(
            Pool::compile(
                Some(&serde_json::json!([{ "dial": format!("127.0.0.1:{port}") }])),
                None,
            )
            .unwrap(),
        );
        h.start(&pool);
        let host = pool.hosts[0].clone();
        let wait = |want: bool| {
            let until = Instant::now() + Duration::from_secs(5);
            while host.available() != want && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            host.available() == want
        };
        assert!(wait(false), "two failures mark it down");
        assert!(wait(true), "two passes bring it back");
        drop(h);
        std::thread::sleep(Duration::from_millis(120));
        let after = calls.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(calls.load(Ordering::SeqCst), after, "checker stopped");
    }
}
