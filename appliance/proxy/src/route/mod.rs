//! Caddy JSON → immutable [`Program`], and its evaluation against a request.
//!
//! Flow: [`Program::compile`] walks `apps.http.servers`, provisions every matcher and handler
//! once (lower-casing, sorting, parsing status codes), and refuses unknown modules with a
//! Caddy-like message. Workers hold an `Arc<Program>` and swap it whole on reload; a
//! request is evaluated start to finish against one program by [`exec::serve`].

pub mod ctx;
pub mod exec;
pub mod handlers;
pub mod listen;
pub mod matchers;
pub mod mime;
pub mod placeholder;

use serde_json::{Map, Value};

use crate::http1::ParserConfig;
use handlers::Handler;
use listen::ListenAddr;
use matchers::MatcherSet;

/// A compile error, worded like Caddy's provisioning errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError(pub String);

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompileError {}

pub type Result<T> = std::result::Result<T, CompileError>;

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(CompileError(msg.into()))
}

/// Compiles a regular expression, with the parser's complaint on one line like Go's
/// (`error parsing regexp: ...`).
pub(crate) fn regex(pattern: &str) -> std::result::Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| match &e {
        regex::Error::Syntax(text) => {
            let why = text
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or("invalid syntax");
            format!("error parsing regexp: {why}: `{pattern}`")
        }
        other => other.to_string(),
    })
}

/// Prefixes an error with where it happened, as Caddy nests its provisioning errors.
pub(crate) fn context<T>(r: Result<T>, what: impl std::fmt::Display) -> Result<T> {
    r.map_err(|e| CompileError(format!("{what}: {}", e.0)))
}

/// One route: matcher sets (OR of ANDs), handlers, and Caddy's `group`/`terminal`.
#[derive(Debug)]
pub struct Route {
    pub group: Option<String>,
    pub matcher_sets: Vec<MatcherSet>,
    pub handlers: Vec<Handler>,
    pub terminal: bool,
    /// The first handler's module name: Caddy's metrics label a top-level route with it.
    pub metrics_name: Option<std::sync::Arc<str>>,
}

/// Per-server settings from `apps.http.servers.NAME`.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub listen: Vec<ListenAddr>,
    pub routes: Vec<Route>,
    pub errors: Vec<Route>,
    /// `named_routes`, run by the `invoke` handler.
    pub named_routes: Vec<(String, Route)>,
    pub parser: ParserConfig,
    pub idle_timeout: std::time::Duration,
    /// Go's `ReadHeaderTimeout`: from the first byte of a request (accept, for the first)
    /// until its head is read.
    pub read_header_timeout: Option<std::time::Duration>,
    /// Go's `ReadTimeout`: from the same start until the body is read.
    pub read_timeout: Option<std::time::Duration>,
    /// Go's `WriteTimeout`: from the end of the head until the response is written.
    pub write_timeout: Option<std::time::Duration>,
    /// TCP keepalive of accepted connections.
    pub keepalive: Keepalive,
    /// Peers whose client-IP headers are believed (`trusted_proxies` static ranges).
    pub trusted_proxies: Vec<(std::net::IpAddr, u8)>,
    pub client_ip_headers: Vec<String>,
    pub trusted_proxies_strict: bool,
    /// Access logging and metrics (`logs`, `logging`, `apps.http.metrics`).
    pub observe: crate::observe::ServerObserve,
}

impl Server {
    /// Caddy's `determineTrustedProxy`: whether the peer is a trusted proxy, and the client
    /// address (from the client-IP headers when it is, else the peer's).
    pub fn client_ip(
        &self,
        peer: std::net::IpAddr,
        headers: &crate::http1::HeaderMap,
    ) -> (bool, std::net::IpAddr) {
        use matchers::remote_ip::in_range;
        let trusted = |ip| self.trusted_proxies.iter().any(|r| in_range(ip, *r));
        if !trusted(peer) {
            return (false, peer);
        }
        let values: Vec<&str> = self
            .client_ip_headers
            .iter()
            .flat_map(|h| headers.values(h).unwrap_or(&[]).iter().map(String::as_str))
            .collect();
        if values.is_empty() {
            return (true, peer);
        }
        let joined = values.join(",");
        let parse = |part: &str| -> Option<std::net::IpAddr> {
            let part = part.trim();
            let host = match part.parse::<std::net::SocketAddr>() {
                Ok(sa) => return Some(sa.ip()),
                Err(_) => part,
            };
            host.split('%').next()?.parse().ok()
        };
        if self.trusted_proxies_strict {
            for part in joined.split(',').rev() {
                match parse(part) {
                    Some(ip) if !trusted(ip) => return (true, ip),
                    Some(_) => continue,
                    None => return (true, peer),
                }
            }
            return (true, peer);
        }
        let client = joined.split(',').find_map(parse).unwrap_or(peer);
        (true, client)
    }
}

/// TCP keepalive settings, as Go's `net.KeepAliveConfig` applies Caddy's `keepalive_*`:
/// 15 s idle and interval and 9 probes unless set; a negative idle leaves the kernel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Option<std::time::Duration>,
    pub interval: std::time::Duration,
    pub count: u32,
}

impl Keepalive {
    fn compile(m: &Map<String, Value>) -> Result<Keepalive> {
        let go_default = std::time::Duration::from_secs(15);
        let setting = |key: &str| -> Result<Option<(bool, std::time::Duration)>> {
            m.get(key).map(|v| signed_duration(v, key)).transpose()
        };
        let defaults = Keepalive {
            idle: Some(go_default),
            interval: go_default,
            count: 9,
        };
        // A negative interval makes Caddy drop its keepalive settings: Go's defaults apply.
        let interval = match setting("keepalive_interval")? {
            Some((true, _)) => return Ok(defaults),
            Some((false, d)) if !d.is_zero() => d,
            _ => go_default,
        };
        let idle = match setting("keepalive_idle")? {
            Some((true, _)) => None,
            Some((false, d)) if !d.is_zero() => Some(d),
            _ => defaults.idle,
        };
        let count = match m.get("keepalive_count").and_then(Value::as_i64) {
            Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => defaults.count,
        };
        Ok(Keepalive {
            idle,
            interval,
            count,
        })
    }
}

/// A Caddy duration that may be negative (Caddy's way to turn some settings off): whether
/// it was, and its size.
fn signed_duration(v: &Value, what: &str) -> Result<(bool, std::time::Duration)> {
    match v {
        Value::String(s) if s.starts_with('-') => {
            Ok((true, duration(&Value::String(s[1..].to_owned()), what)?))
        }
        Value::Number(n) if n.as_f64().is_some_and(|f| f < 0.0) => Ok((
            true,
            std::time::Duration::from_nanos(n.as_f64().unwrap_or(0.0).abs() as u64),
        )),
        _ => Ok((false, duration(v, what)?)),
    }
}

/// The compiled configuration every worker runs.
#[derive(Debug)]
pub struct Program {
    pub servers: Vec<Server>,
}

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        _ => err(format!("{what}: expected a JSON object")),
    }
}

/// A `root`-like field of a handler or matcher: absent or empty means the site's root,
/// `{http.vars.root}`, as Caddy's modules default it when they provision.
pub(crate) fn root_field(v: Option<&Value>) -> String {
    v.and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or("{http.vars.root}")
        .to_owned()
}

pub(crate) fn str_list(v: Option<&Value>, what: &str) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                _ => err(format!("{what}: expected an array of strings")),
            })
            .collect(),
        Some(_) => err(format!("{what}: expected an array of strings")),
    }
}

/// Parses a Caddy duration: a JSON integer of nanoseconds, or a Go duration string
/// (`1m30s`, `500ms`, plus Caddy's `d` for days).
pub fn duration(v: &Value, what: &str) -> Result<std::time::Duration> {
    let nanos: f64 = match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => {
            let mut total = 0.0;
            let mut rest = s.as_str();
            if rest.is_empty() {
                return err(format!("{what}: invalid duration {s:?}"));
            }
            while !rest.is_empty() {
                let num_end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(rest.len());
                let num: f64 = rest[..num_end]
                    .parse()
                    .map_err(|_| CompileError(format!("{what}: invalid duration {s:?}")))?;
                rest = &rest[num_end..];
                let unit_end = rest
                    .find(|c: char| c.is_ascii_digit() || c == '.')
                    .unwrap_or(rest.len());
                let scale = match &rest[..unit_end] {
                    "ns" => 1.0,
                    "us" | "µs" => 1e3,
                    "ms" => 1e6,
                    "s" => 1e9,
                    "m" => 60e9,
                    "h" => 3600e9,
                    "d" => 86400e9,
                    _ => return err(format!("{what}: invalid duration {s:?}")),
                };
                total += num * scale;
                rest = &rest[unit_end..];
            }
            total
        }
        _ => return err(format!("{what}: invalid duration")),
    };
    Ok(std::time::Duration::from_nanos(nanos.max(0.0) as u64))
}

/// Compiles a route list (`routes` of a server or of a subroute).
pub fn compile_routes(v: Option<&Value>) -> Result<Vec<Route>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let Value::Array(items) = v else {
        return err("routes: expected an array");
    };
    items
        .iter()
        .enumerate()
        .map(|(i, r)| context(compile_route(r), format_args!("route {i}")))
        .collect()
}

fn compile_route(v: &Value) -> Result<Route> {
    let m = obj(v, "route")?;
    let matcher_sets = match m.get("match") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(sets)) => context(
            sets.iter().map(matchers::compile_set).collect(),
            "loading matcher modules",
        )?,
        Some(_) => return err("match: expected an array of matcher sets"),
    };
    let handlers = match m.get("handle") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(hs)) => context(
            hs.iter()
                .enumerate()
                .map(|(i, h)| context(handlers::compile(h), format_args!("position {i}")))
                .collect(),
            "loading handler modules",
        )?,
        Some(_) => return err("handle: expected an array"),
    };
    Ok(Route {
        group: m.get("group").and_then(Value::as_str).map(str::to_owned),
        matcher_sets,
        handlers,
        terminal: m.get("terminal").and_then(Value::as_bool).unwrap_or(false),
        metrics_name: m
            .get("handle")
            .and_then(|h| h.get(0)?.get("handler")?.as_str())
            .map(std::sync::Arc::from),
    })
}

fn compile_server(name: &str, v: &Value) -> Result<Server> {
    let m = obj(v, "server")?;
    let listen = str_list(m.get("listen"), "listen")?
        .iter()
        .map(|a| listen::parse(a))
        .collect::<Result<Vec<_>>>()?;
    let routes = compile_routes(m.get("routes"))?;
    let errors = match m.get("errors") {
        Some(e) => context(compile_routes(obj(e, "errors")?.get("routes")), "errors")?,
        None => Vec::new(),
    };
    let mut named_routes = Vec::new();
    if let Some(Value::Object(named)) = m.get("named_routes") {
        for (name, r) in named {
            let route = context(compile_route(r), format_args!("named route {name}"))?;
            named_routes.push((name.clone(), route));
        }
    }
    let mut parser = ParserConfig::default();
    if let Some(n) = m.get("max_header_bytes").and_then(Value::as_u64) {
        if n > 0 {
            parser.max_header_bytes = n as usize;
        }
    }
    // Caddy's defaults: 5 minutes idle, 1 minute to read a head, no other limit. Go's
    // fallback of the header timeout to `read_timeout` never applies under Caddy, which fills
    // in its default first; a negative value turns a timeout off.
    let timeout = |key: &str| -> Result<Option<std::time::Duration>> {
        Ok(
            match m.get(key).map(|v| signed_duration(v, key)).transpose()? {
                Some((false, d)) if !d.is_zero() => Some(d),
                _ => None,
            },
        )
    };
    let idle_timeout = match m.get("idle_timeout") {
        Some(v) if !signed_duration(v, "idle_timeout")?.1.is_zero() => {
            // "No deadline" as one no connection outlives (Instant + MAX would overflow).
            timeout("idle_timeout")?.unwrap_or(std::time::Duration::from_secs(u32::MAX.into()))
        }
        _ => std::time::Duration::from_secs(300),
    };
    let read_header_timeout = match m.get("read_header_timeout") {
        Some(v) if !signed_duration(v, "read_header_timeout")?.1.is_zero() => {
            timeout("read_header_timeout")?
        }
        _ => Some(std::time::Duration::from_secs(60)),
    };
    let read_timeout = timeout("read_timeout")?;
    let write_timeout = timeout("write_timeout")?;
    let keepalive = Keepalive::compile(m)?;
    let trusted_proxies = match m.get("trusted_proxies") {
        Some(t) => {
            let source = t.get("source").and_then(Value::as_str).unwrap_or("");
            if source != "static" {
                return err(format!(
                    "trusted_proxies: source '{source}' is not supported by the engine"
                ));
            }
            matchers::remote_ip::parse_ranges(&str_list(t.get("ranges"), "ranges")?)?
        }
        None => Vec::new(),
    };
    let mut client_ip_headers = str_list(m.get("client_ip_headers"), "client_ip_headers")?;
    if client_ip_headers.is_empty() {
        client_ip_headers.push("X-Forwarded-For".to_owned());
    }
    Ok(Server {
        trusted_proxies,
        client_ip_headers,
        trusted_proxies_strict: m
            .get("trusted_proxies_strict")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0,
        name: name.to_owned(),
        listen,
        routes,
        errors,
        named_routes,
        parser,
        idle_timeout,
        read_header_timeout,
        read_timeout,
        write_timeout,
        keepalive,
        observe: Default::default(),
    })
}

impl Program {
    /// Parses and compiles a whole Caddy JSON config.
    pub fn compile(json: &str) -> Result<Program> {
        let root: Value = serde_json::from_str(json)
            .map_err(|e| CompileError(format!("decoding config: {e}")))?;
        let root = obj(&root, "config")?;
        let apps = root.get("apps");
        let servers = apps
            .and_then(|a| a.get("http"))
            .and_then(|h| h.get("servers"));
        let mut out = Vec::new();
        // the cache plugin's handlers fall back to its `cache` app
        handlers::cache::with_app(apps.and_then(|a| a.get("cache")), || {
            if let Some(Value::Object(servers)) = servers {
                for (name, s) in servers {
                    let server = context(
                        compile_server(name, s),
                        format_args!("loading http app module: provision http: server {name}"),
                    )?;
                    out.push(server);
                }
            }
            Ok(())
        })?;
        crate::observe::provision(root, &mut out)?;
        Ok(Program { servers: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        let d = |s: &str| duration(&Value::String(s.into()), "t").unwrap().as_millis();
        assert_eq!(d("1m30s"), 90_000);
        assert_eq!(d("500ms"), 500);
        assert_eq!(d("1d"), 86_400_000);
        assert_eq!(
            duration(&Value::from(1_000_000_000u64), "t")
                .unwrap()
                .as_secs(),
            1
        );
        assert!(duration(&Value::String("5x".into()), "t").is_err());
    }

    fn server(options: &str) -> Server {
        let cfg = format!(r#"{{"apps":{{"http":{{"servers":{{"s":{{{options}}}}}}}}}}}"#);
        Program::compile(&cfg).unwrap().servers.remove(0)
    }

    #[test]
    fn timeouts_default_and_turn_off_like_caddy() {
        let s = server("");
        assert_eq!(s.idle_timeout, Duration::from_secs(300));
        assert_eq!(s.read_header_timeout, Some(Duration::from_secs(60)));
        assert_eq!((s.read_timeout, s.write_timeout), (None, None));
        let s = server(r#""read_header_timeout":"0s","read_timeout":"2s","write_timeout":-1"#);
        assert_eq!(s.read_header_timeout, Some(Duration::from_secs(60)));
        assert_eq!(s.read_timeout, Some(Duration::from_secs(2)));
        assert_eq!(s.write_timeout, None);
        assert_eq!(
            server(r#""read_header_timeout":"-1s""#).read_header_timeout,
            None
        );
    }

    #[test]
    fn keepalive_like_go() {
        let k = |o: &str| {
            let k = server(o).keepalive;
            (k.idle.map(|d| d.as_secs()), k.interval.as_secs(), k.count)
        };
        assert_eq!(k(""), (Some(15), 15, 9));
        assert_eq!(
            k(r#""keepalive_idle":"3s","keepalive_count":4"#),
            (Some(3), 15, 4)
        );
        assert_eq!(k(r#""keepalive_idle":"-1s""#), (None, 15, 9));
        assert_eq!(
            k(r#""keepalive_interval":"-1s","keepalive_idle":"3s""#),
            (Some(15), 15, 9)
        );
    }

    #[test]
    fn unknown_handler_is_refused() {
        let cfg = r#"{"apps":{"http":{"servers":{"srv0":{"listen":[":1"],"routes":[{"handle":[{"handler":"nope"}]}]}}}}}"#;
        let e = Program::compile(cfg).unwrap_err();
        assert_eq!(e.0, "loading http app module: provision http: server srv0: route 0: loading handler modules: position 0: unknown module: http.handlers.nope");
    }

    #[test]
    fn bad_json() {
        assert!(Program::compile("{")
            .unwrap_err()
            .0
            .starts_with("decoding config:"));
    }
}
