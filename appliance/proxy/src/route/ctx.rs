//! Per-request state the routes read and change: the (rewritable) request, the response being
//! built, variables, regexp captures, the error being handled. It answers placeholder lookups
//! with Caddy's `addHTTPVarsToReplacer` and global replacements.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::matchers::host::strip_port;
use super::placeholder::Lookup;
use crate::http1::header::canonical_key;
use crate::http1::{byte_table, HeaderMap, Response};

/// An error a handler returned (Caddy's `HandlerError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    pub status: u16,
    pub message: String,
}

fn unhex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Go's `url.PathUnescape` / `QueryUnescape` (`plus` turns `+` into a space); `None` on a
/// malformed escape.
pub fn unescape(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = unhex(*b.get(i + 1)?)?;
                let l = unhex(*b.get(i + 2)?)?;
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// Bytes Go's path escaping leaves as they are (`shouldEscape(c, encodePath)` is false).
static KEEP_IN_PATH: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'-' | b'_' | b'.' | b'~' | b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'@'
    ));

fn keep_in_path(c: u8) -> bool {
    KEEP_IN_PATH[usize::from(c)]
}

/// Go's `url.PathEscape`-like escaping of a decoded path (`escape(s, encodePath)`).
pub fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for &c in p.as_bytes() {
        if keep_in_path(c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
            out.push(c as char);
        } else if c == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn valid_encoded(s: &str) -> bool {
    s.bytes()
        .all(|c| keep_in_path(c) || b"!'()*[]%".contains(&c))
}

/// Decoded query parameters in order.
pub type QueryPairs = Vec<(String, String)>;

/// Go's `url.ParseQuery`: pairs in order; `Err` carries the pairs that did parse.
pub fn parse_query(q: &str) -> Result<QueryPairs, QueryPairs> {
    let mut out = Vec::new();
    let mut bad = false;
    for part in q.split('&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        if k.contains(';') {
            bad = true;
            continue;
        }
        match (unescape(k, true), unescape(v, true)) {
            (Some(k), Some(v)) => out.push((k, v)),
            _ => bad = true,
        }
    }
    if bad {
        Err(out)
    } else {
        Ok(out)
    }
}

/// The request's current URI (Go's `URL`, reduced to what HTTP/1 servers use).
#[derive(Debug, Clone)]
pub struct Uri {
    /// Decoded path.
    pub path: String,
    /// The escaped form as received, kept while it still encodes `path`.
    pub raw_path: Option<String>,
    pub query: String,
}

impl Uri {
    /// Splits a request target like Go's `url.ParseRequestURI`.
    pub fn from_target(target: &str) -> Uri {
        let absolute = (!target.starts_with('/'))
            .then(|| target.split_once("://"))
            .flatten();
        let origin = match absolute {
            Some((_, rest)) => rest.find(['/', '?']).map_or("", |i| &rest[i..]),
            None => target,
        };
        let (escaped, query) = origin.split_once('?').unwrap_or((origin, ""));
        let path = if escaped.contains('%') {
            unescape(escaped, false).unwrap_or_else(|| escaped.to_owned())
        } else {
            escaped.to_owned()
        };
        // Like Go's `URL.RawPath`, the escaped form is kept only when escaping the path would
        // not give it back (a path of plain bytes is its own escaped form).
        let plain = escaped.bytes().all(keep_in_path);
        Uri {
            raw_path: (!plain).then(|| escaped.to_owned()),
            path,
            query: query.to_owned(),
        }
    }

    /// Go's `URL.EscapedPath()`.
    pub fn escaped_path(&self) -> Cow<'_, str> {
        if let Some(raw) = &self.raw_path {
            // Without escapes the raw form decodes to itself: no need to decode it.
            let encodes_path = if raw.contains('%') {
                unescape(raw, false).as_deref() == Some(self.path.as_str())
            } else {
                *raw == self.path
            };
            if valid_encoded(raw) && encodes_path {
                return Cow::Borrowed(raw);
            }
        }
        if self.path == "*" || self.path.bytes().all(keep_in_path) {
            return Cow::Borrowed(&self.path);
        }
        Cow::Owned(escape_path(&self.path))
    }

    /// Go's `URL.RequestURI()`.
    pub fn request_uri(&self) -> String {
        let mut p = self.escaped_path().into_owned();
        if p.is_empty() {
            p.push('/');
        }
        if !self.query.is_empty() {
            p.push('?');
            p.push_str(&self.query);
        }
        p
    }

    /// Sets a new decoded path; the escaped form is recomputed from it.
    pub fn set_path(&mut self, path: String) {
        self.path = path;
        self.raw_path = None;
    }
}

/// State of one request while the routes run.
pub struct Ctx<'p, 'a> {
    pub method: String,
    /// Go's `Request.Host` (may carry a port).
    pub host: String,
    pub proto: &'static str,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub orig_method: &'a str,
    pub orig_target: &'a str,
    pub orig_uri: Uri,
    pub remote: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub body: Option<&'a [u8]>,
    /// The request has a body (framed by Content-Length or chunked).
    pub has_body: bool,
    /// How the request body is framed on the wire.
    pub body_kind: crate::http1::BodyKind,
    /// `request_body max_size`: reading more than this fails.
    pub max_body: Option<u64>,
    /// The server's `named_routes`, for `invoke`.
    pub named_routes: &'p [(String, super::Route)],
    /// A handler asked for the body before it was buffered: run again once it is.
    pub body_wanted: std::cell::Cell<bool>,
    /// Variables handlers set; `client_ip` and `trusted_proxy` are answered from the fields
    /// below until a handler sets them (so a request that never reads them formats no
    /// address).
    pub vars: Vec<(String, Value)>,
    client_ip: std::net::IpAddr,
    trusted_proxy: bool,
    client_ip_var: OnceCell<Value>,
    /// Static replacer entries set by matchers (`http.regexp.*`, `http.matchers.file.*`).
    pub captures: Vec<(String, String)>,
    /// An error a matcher raised (`try_files =404`); the route chain fails with it.
    pub matcher_error: Option<HandlerError>,
    pub error: Option<HandlerError>,
    pub resp: Response,
    /// Informational responses already written (103 Early Hints), sent before `resp`.
    pub interim: Vec<u8>,
    /// Deferred response header ops, applied (last first) when a handler writes.
    pub deferred: Vec<&'p super::handlers::headers::RespOps>,
    pub groups: HashSet<&'p str>,
    /// Encoders wrapped around the handlers that follow them, with the chosen encoding.
    pub encoders: Vec<(&'p super::handlers::encode::Encode, String)>,
    /// Intercepts wrapped around the handlers that follow them.
    pub intercepts: Vec<&'p super::handlers::intercept::Intercept>,
    /// `templates` handlers wrapped around the handlers that follow them.
    pub templates: Vec<&'p super::handlers::templates::Templates>,
    /// `map` handlers run so far; their destinations are placeholders.
    pub maps: Vec<&'p super::handlers::map::MapHandler>,
    /// What the observers (access log, metrics) need to know of the routes' run.
    pub trace: crate::observe::Trace<'p>,
    /// `reverse_proxy` round trips asked for and answered (see that module).
    pub proxy: super::handlers::reverse_proxy::Trail<'p, 'a>,
    /// The `cache` handler's request past a miss, settled when the routes end.
    pub cache: Option<super::handlers::cache::Pending<'p>>,
    uuid: OnceCell<String>,
    /// Password checks made for this request (user, password, verdict): a replay of the
    /// routes after a `reverse_proxy` round trip reuses them instead of hashing again.
    pub checked: Vec<(String, String, bool)>,
}

impl<'p, 'a> Ctx<'p, 'a> {
    /// Builds the request state from a parsed head.
    pub fn new(
        head: &crate::http1::Head<'a>,
        remote: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Ctx<'p, 'a> {
        Self::for_server(head, remote, local, None)
    }

    /// Like `new`, with the client address resolved through `server`'s trusted proxies
    /// (Caddy's `client_ip` and `trusted_proxy` variables).
    pub fn for_server(
        head: &crate::http1::Head<'a>,
        remote: Option<SocketAddr>,
        local: Option<SocketAddr>,
        server: Option<&super::Server>,
    ) -> Ctx<'p, 'a> {
        let mut headers = HeaderMap::default();
        for (name, value) in &head.headers {
            if !name.eq_ignore_ascii_case("Host") {
                headers.add(name, value);
            }
        }
        let uri = if head.method == "CONNECT" && !head.target.starts_with('/') {
            // authority-form: Caddy sees the root path
            Uri::from_target("/")
        } else {
            Uri::from_target(head.target)
        };
        let (trusted, client) = match (server, remote) {
            (Some(s), Some(r)) => s.client_ip(r.ip(), &headers),
            (None, Some(r)) => (false, r.ip()),
            (_, None) => (false, std::net::Ipv4Addr::UNSPECIFIED.into()),
        };
        Ctx {
            method: head.method.to_owned(),
            host: head.host.to_owned(),
            proto: if head.version.at_least_11() {
                "HTTP/1.1"
            } else {
                "HTTP/1.0"
            },
            orig_uri: uri.clone(),
            uri,
            headers,
            orig_method: head.method,
            orig_target: head.target,
            remote,
            local,
            body: None,
            has_body: head.body != crate::http1::BodyKind::None,
            body_kind: head.body,
            max_body: None,
            named_routes: &[],
            body_wanted: std::cell::Cell::new(false),
            vars: Vec::new(),
            client_ip: client,
            trusted_proxy: trusted,
            client_ip_var: OnceCell::new(),
            captures: Vec::new(),
            matcher_error: None,
            error: None,
            resp: Response::new(200),
            interim: Vec::new(),
            deferred: Vec::new(),
            groups: HashSet::new(),
            maps: Vec::new(),
            encoders: Vec::new(),
            intercepts: Vec::new(),
            templates: Vec::new(),
            trace: Default::default(),
            proxy: Default::default(),
            cache: None,
            uuid: OnceCell::new(),
            checked: Vec::new(),
        }
    }

    /// Go's `r.Header[canonical(name)]`, with `Host` answered from `r.Host` as Caddy's
    /// header matchers do.
    pub fn header_values(&self, name: &str) -> Option<Vec<&str>> {
        let key = canonical_key(name);
        if key == "Host" && !self.host.is_empty() {
            return Some(vec![self.host.as_str()]);
        }
        self.headers
            .raw(&key)
            .map(|v| v.iter().map(String::as_str).collect())
    }

    /// Writes the status through the deferred header wrappers, innermost (latest) first,
    /// each applying only if its `require` matches.
    pub fn write_header(&mut self, status: u16) {
        let deferred = std::mem::take(&mut self.deferred);
        for r in deferred.iter().rev() {
            if r.require
                .as_ref()
                .is_none_or(|m| m.matches(status, &self.resp.headers))
            {
                r.apply_to_response(self);
            }
        }
        self.resp.status = status;
    }

    /// `{http.request.uuid}` if the routes made one.
    pub fn request_id(&self) -> Option<&str> {
        self.uuid.get().map(String::as_str)
    }

    /// Keeps the request id an earlier run of the same request made.
    pub fn keep_request_id(&mut self, id: String) {
        let _ = self.uuid.set(id);
    }

    /// The request id, given back when the run ends (a replay lends it to the next run).
    pub fn take_request_id(&mut self) -> Option<String> {
        self.uuid.take()
    }

    pub fn var(&self, name: &str) -> Option<&Value> {
        static TRUSTED: [Value; 2] = [Value::Bool(false), Value::Bool(true)];
        if let Some((_, v)) = self.vars.iter().rev().find(|(k, _)| k == name) {
            return Some(v);
        }
        match name {
            "client_ip" => Some(
                self.client_ip_var
                    .get_or_init(|| Value::String(self.client_ip.to_string())),
            ),
            "trusted_proxy" => Some(&TRUSTED[usize::from(self.trusted_proxy)]),
            _ => None,
        }
    }

    pub fn set_var(&mut self, name: String, value: Value) {
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    pub fn set_capture(&mut self, key: String, value: String) {
        match self.captures.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.captures.push((key, value)),
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        for line in self.headers.raw("Cookie").unwrap_or(&[]) {
            for part in line.split(';') {
                let part = part.trim();
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                if k.eq_ignore_ascii_case(name) {
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    return Some(v.to_owned());
                }
            }
        }
        None
    }
}

/// Caddy's `toString` for variable values.
pub fn value_string(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Null => Cow::Borrowed(""),
        Value::String(s) => Cow::Borrowed(s),
        Value::Bool(b) => Cow::Owned(b.to_string()),
        Value::Number(n) => Cow::Owned(match n.as_f64() {
            Some(f) if n.is_f64() => format_float(f),
            _ => n.to_string(),
        }),
        other => Cow::Owned(other.to_string()),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

fn split_host_port(hostport: &str) -> (&str, &str) {
    let host = strip_port(hostport);
    if host.len() == hostport.len() {
        return (host, "");
    }
    (host, hostport.rsplit_once(':').map_or("", |(_, p)| p))
}

fn path_part(path: &str, idx: &str) -> Option<String> {
    let idx: usize = idx.parse().ok()?;
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.first() == Some(&"") {
        parts.remove(0);
    }
    Some(parts.get(idx).map_or(String::new(), |s| (*s).to_owned()))
}

/// Go's `path.Base`.
fn base_of(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    file_of(trimmed)
}

/// Go's `path.Ext`: the suffix from the last dot of the final element.
fn ext_of(path: &str) -> &str {
    match path.rfind(['.', '/']) {
        Some(i) if path.as_bytes()[i] == b'.' => &path[i..],
        _ => "",
    }
}

fn file_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, f)| f)
}

fn dir_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..=i])
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_uuid() -> String {
    // Version-4 layout from the per-process hasher seed and the clock; unique per request,
    // which is all Caddy's request id promises.
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = bytes[6] & 0x0f | 0x40;
    bytes[8] = bytes[8] & 0x3f | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Caddy's `prefixed_query` placeholders: the query with its `?`, or nothing.
fn prefixed(query: &str) -> String {
    if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    }
}

impl Lookup for Ctx<'_, '_> {
    fn lookup(&self, key: &str) -> Option<Cow<'_, str>> {
        use Cow::{Borrowed, Owned};
        if let Some(name) = key.strip_prefix("env.") {
            return Some(Owned(std::env::var(name).unwrap_or_default()));
        }
        if let Some(k) = key.strip_prefix("http.request.uri.query.") {
            let pairs = parse_query(&self.uri.query).unwrap_or_else(|p| p);
            let vals: Vec<&str> = pairs
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect();
            return Some(Owned(vals.join(",")));
        }
        if let Some(field) = key.strip_prefix("http.request.header.") {
            let vals = self.headers.raw(&canonical_key(field)).unwrap_or(&[]);
            return Some(Owned(vals.join(",")));
        }
        if let Some(name) = key.strip_prefix("http.request.cookie.") {
            return Some(Owned(self.cookie(name).unwrap_or_default()));
        }
        if let Some(field) = key.strip_prefix("http.response.header.") {
            let vals = self.resp.headers.raw(&canonical_key(field)).unwrap_or(&[]);
            return Some(Owned(vals.join(",")));
        }
        if let Some(name) = key.strip_prefix("http.vars.") {
            return Some(self.var(name).map_or(Borrowed(""), value_string));
        }
        if let Some((_, v)) = self.captures.iter().find(|(k, _)| k == key) {
            return Some(Borrowed(v.as_str()));
        }
        if let Some(v) = self.proxy.placeholder(key) {
            return Some(v);
        }
        if let Some(field) = key.strip_prefix("http.error.") {
            let e = self.error.as_ref()?;
            return match field {
                "status_code" => Some(Owned(e.status.to_string())),
                "status_text" => Some(Borrowed(
                    crate::http1::status::reason(e.status).unwrap_or(""),
                )),
                "message" => Some(Borrowed(e.message.as_str())),
                "id" | "trace" => Some(Borrowed("")),
                _ => None,
            };
        }
        if let Some(idx) = key.strip_prefix("http.request.host.labels.") {
            let idx: usize = idx.parse().ok()?;
            let host = split_host_port(&self.host).0;
            let labels: Vec<&str> = host.split('.').collect();
            return Some(if idx >= labels.len() {
                Borrowed("")
            } else {
                Owned(labels[labels.len() - idx - 1].to_owned())
            });
        }
        if let Some(rest) = key.strip_prefix("http.request.uri.path.") {
            match rest {
                "file" => return Some(Owned(file_of(&self.uri.path).to_owned())),
                "dir" => return Some(Owned(dir_of(&self.uri.path).to_owned())),
                "file.ext" => return Some(Owned(ext_of(&self.uri.path).to_owned())),
                "file.base" => {
                    let base = base_of(&self.uri.path);
                    let ext = ext_of(&self.uri.path);
                    return Some(Owned(base.strip_suffix(ext).unwrap_or(base).to_owned()));
                }
                idx => return path_part(&self.uri.path, idx).map(Owned),
            }
        }
        if let Some(rest) = key.strip_prefix("http.request.orig_uri.path.") {
            return match rest {
                "file" => Some(Owned(file_of(&self.orig_uri.path).to_owned())),
                "dir" => Some(Owned(dir_of(&self.orig_uri.path).to_owned())),
                idx => path_part(&self.orig_uri.path, idx).map(Owned),
            };
        }
        let addr_host = |a: Option<SocketAddr>| a.map_or(String::new(), |a| a.ip().to_string());
        let addr_port = |a: Option<SocketAddr>| a.map_or(String::new(), |a| a.port().to_string());
        Some(match key {
            "http.request.method" => Borrowed(self.method.as_str()),
            "http.request.scheme" => Borrowed("http"),
            "http.request.proto" => Borrowed(self.proto),
            "http.request.host" => Borrowed(split_host_port(&self.host).0),
            "http.request.port" => Borrowed(split_host_port(&self.host).1),
            "http.request.hostport" => Borrowed(self.host.as_str()),
            "http.request.local" => Owned(self.local.map_or(String::new(), |a| a.to_string())),
            "http.request.local.host" => Owned(addr_host(self.local)),
            "http.request.local.port" => Owned(addr_port(self.local)),
            "http.request.remote" => Owned(self.remote.map_or(String::new(), |a| a.to_string())),
            "http.request.remote.host" => Owned(addr_host(self.remote)),
            "http.request.remote.port" => Owned(addr_port(self.remote)),
            "http.request.uri" => Owned(self.uri.request_uri()),
            "http.request.uri.path" => Borrowed(self.uri.path.as_str()),
            "http.request.uri.query" => Borrowed(self.uri.query.as_str()),
            "http.request.body" => {
                if self.body.is_none() && self.has_body {
                    self.body_wanted.set(true);
                }
                let body = self.body.unwrap_or(&[]);
                if self.max_body.is_some_and(|max| body.len() as u64 > max) {
                    return Some(Borrowed("request body: http: request body too large"));
                }
                Owned(String::from_utf8_lossy(body).into_owned())
            }
            "http.request.orig_method" => Borrowed(self.orig_method),
            "http.request.orig_uri" => Borrowed(self.orig_target),
            "http.request.orig_uri.path" => Borrowed(self.orig_uri.path.as_str()),
            "http.request.orig_uri.query" => Borrowed(self.orig_uri.query.as_str()),
            "http.request.orig_uri.prefixed_query" => Owned(prefixed(&self.orig_uri.query)),
            "http.request.uri.prefixed_query" => Owned(prefixed(&self.uri.query)),
            "http.request.uuid" => Borrowed(self.uuid.get_or_init(random_uuid).as_str()),
            "http.shutting_down" => Borrowed("false"),
            "system.hostname" => Owned(
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default(),
            ),
            "system.slash" => Borrowed("/"),
            "system.os" => Borrowed(std::env::consts::OS),
            "system.arch" => Borrowed(go_arch()),
            "system.wd" => Owned(
                std::env::current_dir()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            "time.now.http" => Owned(crate::http1::date::http_date(now_secs())),
            "time.now.unix" => Owned(now_secs().to_string()),
            "time.now.unix_ms" => Owned(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis())
                    .to_string(),
            ),
            "time.now.year" => Owned(crate::http1::date::http_date(now_secs())[12..16].to_owned()),
            "time.now.common_log" => Owned(crate::http1::date::common_log(now_secs())),
            _ => {
                return self
                    .maps
                    .iter()
                    .find_map(|m| m.lookup(key, self))
                    .map(Owned)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_forms() {
        let u = Uri::from_target("http://h:1/p%20q?a=1");
        assert_eq!((u.path.as_str(), u.query.as_str()), ("/p q", "a=1"));
        assert_eq!(u.escaped_path(), "/p%20q");
        let u = Uri::from_target("/a%2Fb");
        assert_eq!(
            (u.path.as_str(), u.request_uri()),
            ("/a/b", "/a%2Fb".to_owned())
        );
        let mut u = Uri::from_target("/x?q");
        u.set_path("/a b/c".into());
        assert_eq!(u.request_uri(), "/a%20b/c?q");
    }

    #[test]
    fn queries() {
        assert_eq!(
            parse_query("a=1&b=x+y&a=%41").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("a".into(), "A".into())
            ]
        );
        assert!(parse_query("a;b=1").is_err());
        assert!(parse_query("a=%zz").is_err());
        assert_eq!(query_escape("a b&c"), "a+b%26c");
    }

    #[test]
    fn go_path_parts() {
        assert_eq!((base_of("/"), ext_of("/")), ("/", ""));
        assert_eq!(
            (base_of("/a/b.tar.gz"), ext_of("/a/b.tar.gz")),
            ("b.tar.gz", ".gz")
        );
        assert_eq!((base_of("/a/"), ext_of("/a.b/c")), ("a", ""));
        assert_eq!(base_of(""), ".");
    }

    #[test]
    fn numbers_like_go() {
        assert_eq!(value_string(&serde_json::json!(1)), "1");
        assert_eq!(value_string(&serde_json::json!(1.5)), "1.5");
        assert_eq!(value_string(&serde_json::json!(2.0)), "2");
        assert_eq!(value_string(&serde_json::json!(true)), "true");
    }
}
