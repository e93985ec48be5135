//! `http.reverse_proxy.transport.fastcgi` (`php_fastcgi`): Caddy's FastCGI transport.
//!
//! The proxy handler prepares the request as for HTTP (hop-by-hop fields, `X-Forwarded-*`,
//! `Via`, `header_up`); this transport then turns it into the CGI environment Caddy's
//! `buildEnv` computes and the FastCGI records its client writes. The worker sends those
//! records as the request "head", wraps the client's body into STDIN records
//! ([`BodyFraming::Stdin`]) and reads the responder's records through a [`record::Decoder`]
//! that hands its own HTTP/1.1 parser the response Caddy would copy to the client. As in
//! Caddy, each request gets its own connection, closed after END_REQUEST, with the deadlines
//! Caddy sets once it has dialed (`read_timeout`, `write_timeout`) and, with
//! `capture_stderr`, the STDERR stream logged when the connection goes.

pub mod record;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};

use super::super::super::ctx::{value_string, Ctx, HandlerError, Uri};
use super::super::super::matchers::path::clean;
use super::super::super::placeholder::{replace_all, replace_all_or, Lookup};
use super::super::super::{duration, err, root_field, str_list, Result};
use super::super::file_server::sanitized_join;
use crate::http1::HeaderMap;
use crate::observe::access_log::{request_object, Entry, Level};
use crate::observe::encode::Val;
use crate::observe::ModuleLog;

/// What Caddy's `caddy.Version()` names itself in `SERVER_SOFTWARE`.
const SERVER_SOFTWARE: &str = "Caddy/v2.11.7";
/// The transport's logger (Caddy's module logger is named after the module's ID).
const LOGGER: &str = "http.reverse_proxy.transport.fastcgi";

/// The transport's settings (the dial timeout lives in `Transport`, with the HTTP one's).
#[derive(Debug)]
pub struct FastCgi {
    root: String,
    split_path: Vec<String>,
    resolve_root_symlink: bool,
    env: Vec<(String, String)>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    capture_stderr: bool,
}

impl FastCgi {
    pub fn compile(m: &Map<String, Value>) -> Result<FastCgi> {
        let mut split_path = Vec::new();
        for s in str_list(m.get("split_path"), "split_path")? {
            if !s.is_ascii() {
                return err("loading transport: split path contains non-ASCII characters");
            }
            split_path.push(s.to_ascii_lowercase());
        }
        let mut env: Vec<(String, String)> = Vec::new();
        if let Some(Value::Object(e)) = m.get("env") {
            for (k, v) in e {
                let Some(v) = v.as_str() else {
                    return err(format!("transport: env {k}: expected a string"));
                };
                env.push((k.clone(), v.to_owned()));
            }
        }
        let timeout = |k: &str| match m.get(k) {
            Some(v) => Ok(Some(duration(v, k)?).filter(|d| !d.is_zero())),
            None => Ok(None),
        };
        Ok(FastCgi {
            read_timeout: timeout("read_timeout")?,
            write_timeout: timeout("write_timeout")?,
            capture_stderr: m
                .get("capture_stderr")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            root: root_field(m.get("root")),
            split_path,
            resolve_root_symlink: m
                .get("resolve_root_symlink")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            env,
        })
    }

    /// Caddy's `splitPos`: the end of the first `split_path` entry found in `path` (ASCII,
    /// case-insensitive; a non-ASCII byte never matches), 0 without entries, else `None`.
    fn split_pos(&self, path: &str) -> Option<usize> {
        if self.split_path.is_empty() {
            return Some(0);
        }
        let p = path.as_bytes();
        for split in &self.split_path {
            let s = split.as_bytes();
            if s.is_empty() || s.len() > p.len() {
                continue;
            }
            let found = (0..=p.len() - s.len()).find(|&i| {
                p[i..i + s.len()]
                    .iter()
                    .zip(s)
                    .all(|(c, want)| c.is_ascii() && c.to_ascii_lowercase() == *want)
            });
            if let Some(i) = found {
                return Some(i + s.len());
            }
        }
        None
    }

    /// The PARAMS: Caddy's `buildEnv` plus what its client's `Get`/`Head`/`Options`/`Post`
    /// set; and the exchange that goes with them. `hdr` holds the prepared request fields;
    /// `length` is Go's `Request.ContentLength`.
    pub fn params(
        &self,
        ctx: &Ctx<'_, '_>,
        method: &str,
        uri: &Uri,
        hdr: &HeaderMap,
        host: &str,
        length: i64,
    ) -> std::result::Result<(Vec<(String, String)>, Exchange), HandlerError> {
        let mut env = Env::default();
        let (ip, port) = match ctx.remote {
            Some(a) => (a.ip().to_string(), a.port().to_string()),
            None => (String::new(), String::new()),
        };
        let root = absolute(&replace_all_or(&self.root, ctx, "."));
        let root = if self.resolve_root_symlink {
            std::fs::canonicalize(&root)
                .map(|p| p.display().to_string())
                .map_err(|e| HandlerError {
                    status: 502,
                    message: format!("building environment: {e}"),
                })?
        } else {
            root
        };
        let fpath = uri.path.as_str();
        let mut script_name = fpath.to_owned();
        let mut doc_uri = fpath.to_owned();
        let mut path_info = String::new();
        if let Some(at) = self.split_pos(fpath) {
            doc_uri = fpath[..at].to_owned();
            path_info = fpath[at..].to_owned();
            if let Some(s) = script_name.strip_suffix(path_info.as_str()) {
                script_name = s.to_owned();
            }
        }
        if path_info.is_empty() {
            path_info = lookup(ctx, "http.matchers.file.remainder");
        }
        let script_filename = sanitized_join(&root, &script_name);
        if !script_name.is_empty() && !script_name.starts_with('/') {
            script_name.insert(0, '/');
        }
        let (req_host, req_port) = split_host_port(host);
        let header = |k: &str| hdr.raw(k).and_then(|v| v.first()).cloned();
        let pairs = [
            ("AUTH_TYPE", String::new()),
            (
                "CONTENT_LENGTH",
                header("Content-Length").unwrap_or_default(),
            ),
            ("CONTENT_TYPE", header("Content-Type").unwrap_or_default()),
            ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
            ("PATH_INFO", path_info.clone()),
            ("QUERY_STRING", uri.query.clone()),
            ("REMOTE_ADDR", ip.clone()),
            ("REMOTE_HOST", ip),
            ("REMOTE_PORT", port),
            ("REMOTE_IDENT", String::new()),
            ("REMOTE_USER", lookup(ctx, "http.auth.user.id")),
            ("REQUEST_METHOD", method.to_owned()),
            ("REQUEST_SCHEME", "http".to_owned()),
            ("SERVER_NAME", req_host),
            ("SERVER_PROTOCOL", ctx.proto.to_owned()),
            ("SERVER_SOFTWARE", SERVER_SOFTWARE.to_owned()),
            ("DOCUMENT_ROOT", root.clone()),
            ("DOCUMENT_URI", doc_uri),
            ("HTTP_HOST", host.to_owned()),
            ("REQUEST_URI", ctx.orig_uri.request_uri()),
            ("SCRIPT_FILENAME", script_filename),
            ("SCRIPT_NAME", script_name),
        ];
        for (k, v) in pairs {
            env.set(k, v);
        }
        if let Some(local) = ctx.local {
            env.set("SERVER_ADDR", local.ip().to_string());
        }
        if !path_info.is_empty() {
            env.set("PATH_TRANSLATED", sanitized_join(&root, &path_info));
        }
        // TLS is not served by the engine: the scheme is always http.
        env.set("SERVER_PORT", req_port.unwrap_or_else(|| "80".to_owned()));
        for (k, v) in &self.env {
            env.set(k, replace_all(v, ctx));
        }
        for (field, values) in hdr.iter() {
            let name = format!("HTTP_{}", field.to_ascii_uppercase().replace('-', "_"));
            env.set(&name, values.join(", "));
        }
        // zap encodes a logger's fields when the logger is made: the STDERR log's `env` is
        // `buildEnv`'s, before the client's own settings below.
        let exchange = self.exchange(ctx, method, uri, hdr, host, &env.0);
        let length = if length == 0 {
            header("Content-Length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        } else {
            length
        };
        match method {
            "HEAD" | "OPTIONS" => env.set("CONTENT_LENGTH", "0".to_owned()),
            "GET" => env.set("CONTENT_LENGTH", length.to_string()),
            _ => {
                env.set("CONTENT_LENGTH", length.to_string());
                let ct = header("Content-Type")
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "application/x-www-form-urlencoded".to_owned());
                env.set("CONTENT_TYPE", ct);
            }
        }
        Ok((env.0, exchange))
    }

    /// What the worker's exchange needs beside the records, for the request `env` was built
    /// for: the deadlines, and with `capture_stderr` what the STDERR log says of the request
    /// (`hdr`, `uri` and `host` as prepared for the upstream).
    fn exchange(
        &self,
        ctx: &Ctx<'_, '_>,
        method: &str,
        uri: &Uri,
        hdr: &HeaderMap,
        host: &str,
        env: &[(String, String)],
    ) -> Exchange {
        let stderr = self
            .capture_stderr
            .then(|| ModuleLog::of(ctx))
            .flatten()
            .map(|to| StderrLog {
                to,
                remote: ctx.remote,
                client_ip: ctx
                    .var("client_ip")
                    .map(value_string)
                    .unwrap_or_default()
                    .into_owned(),
                proto: ctx.proto,
                method: method.to_owned(),
                host: host.to_owned(),
                uri: uri.request_uri(),
                headers: hdr.clone(),
                env: env.to_vec(),
            });
        Exchange {
            head_request: method == "HEAD",
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
            stderr,
        }
    }

    /// The request as the worker sends it before any body: BEGIN_REQUEST, the PARAMS stream
    /// and, when no body follows, the empty STDIN record that ends the request.
    pub fn request_head(env: &[(String, String)], body_follows: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(2048);
        record::begin_request(&mut out);
        record::params(&mut out, env);
        if !body_follows {
            record::end_stream(&mut out, record::STDIN);
        }
        out
    }
}

/// What the worker's exchange with the responder needs beside its records (the records'
/// [`record::Decoder`] keeps it for the connection's life).
#[derive(Debug, Default)]
pub struct Exchange {
    /// The response to a HEAD request has no body whatever it says.
    pub head_request: bool,
    /// Caddy sets one read deadline and one write deadline once it has dialed: the whole
    /// request must be written by the one and the whole response read by the other.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// `capture_stderr`: where the STDERR stream is logged.
    stderr: Option<StderrLog>,
}

/// Caddy's `capture_stderr` log entry: the transport's logger carries the request it made
/// and the CGI environment it sent; the entry adds the STDERR bytes.
#[derive(Debug)]
struct StderrLog {
    to: ModuleLog,
    remote: Option<SocketAddr>,
    client_ip: String,
    proto: &'static str,
    method: String,
    host: String,
    uri: String,
    headers: HeaderMap,
    env: Vec<(String, String)>,
}

impl StderrLog {
    /// Logs `body` for a response of `status`: at error level from 400, else at warn.
    fn emit(&self, status: u16, body: &[u8]) {
        let level = if status >= 400 {
            Level::Error
        } else {
            Level::Warn
        };
        let none = HeaderMap::default();
        let request = Entry {
            remote: self.remote,
            client_ip: &self.client_ip,
            proto: self.proto,
            method: &self.method,
            host: &self.host,
            uri: &self.uri,
            headers: &self.headers,
            bytes_read: 0,
            user_id: "",
            duration: Duration::ZERO,
            size: 0,
            status,
            resp_headers: &none,
            extra: &[],
        };
        let credentials = self.to.credentials;
        let env = || {
            let secret = |k: &str| {
                !credentials
                    && [
                        "http_cookie",
                        "http_set_cookie",
                        "http_authorization",
                        "http_proxy_authorization",
                    ]
                    .iter()
                    .any(|s| k.eq_ignore_ascii_case(s))
            };
            self.env
                .iter()
                .map(|(k, v)| {
                    let v = if secret(k) { "" } else { v.as_str() };
                    (Cow::Borrowed(k.as_str()), Val::Str(Cow::Borrowed(v)))
                })
                .collect()
        };
        self.to.emit(LOGGER, level, "stderr", &|| {
            vec![
                ("request".into(), request_object(&request, credentials)),
                ("env".into(), Val::Obj(env())),
                ("body".into(), Val::Bytes(body)),
            ]
        });
    }
}

/// Caddy's environment is a map: a later entry replaces an earlier one of the same name.
#[derive(Default)]
struct Env(Vec<(String, String)>);

impl Env {
    fn set(&mut self, k: &str, v: String) {
        match self.0.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v,
            None => self.0.push((k.to_owned(), v)),
        }
    }
}

fn lookup(ctx: &Ctx<'_, '_>, key: &str) -> String {
    ctx.lookup(key).map(Cow::into_owned).unwrap_or_default()
}

/// Go's `net.SplitHostPort`, falling back to the whole host without a port.
fn split_host_port(host: &str) -> (String, Option<String>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once("]:") {
            if !p.contains(':') {
                return (h.to_owned(), Some(p.to_owned()).filter(|p| !p.is_empty()));
            }
        }
        return (host.to_owned(), None);
    }
    match host.split_once(':') {
        Some((h, p)) if !p.contains(':') => {
            (h.to_owned(), Some(p.to_owned()).filter(|p| !p.is_empty()))
        }
        _ => (host.to_owned(), None),
    }
}

/// Go's `filepath.Abs`.
fn absolute(p: &str) -> String {
    if p.starts_with('/') {
        return clean(p);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    clean(&format!("{}/{p}", cwd.display()))
}

/// How the client's body goes to the upstream: as it is (a length), re-chunked, or in
/// FastCGI STDIN records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    Raw,
    Chunked,
    Stdin,
}

impl BodyFraming {
    /// The framing for a body the head announced as `body`.
    pub fn of(body: crate::http1::client::RequestBody, fastcgi: bool) -> BodyFraming {
        match body {
            _ if fastcgi => BodyFraming::Stdin,
            crate::http1::client::RequestBody::Chunked => BodyFraming::Chunked,
            _ => BodyFraming::Raw,
        }
    }

    /// Appends one piece of the body.
    pub fn piece(self, data: &[u8], out: &mut Vec<u8>) {
        match self {
            BodyFraming::Raw => out.extend_from_slice(data),
            BodyFraming::Chunked if data.is_empty() => {}
            BodyFraming::Chunked => {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            BodyFraming::Stdin => record::stream(out, record::STDIN, data),
        }
    }

    /// Appends what ends the body.
    pub fn end(self, out: &mut Vec<u8>) {
        match self {
            BodyFraming::Raw => {}
            BodyFraming::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
            BodyFraming::Stdin => record::end_stream(out, record::STDIN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, ParserConfig, Status};

    fn env_of(transport: &str, raw: &str, length: i64) -> Vec<(String, String)> {
        let Value::Object(m) = serde_json::from_str(transport).unwrap() else {
            panic!()
        };
        let f = FastCgi::compile(&m).unwrap();
        let Ok(Status::Complete(head, _)) = parse_request(raw.as_bytes(), &ParserConfig::default())
        else {
            panic!("bad test request")
        };
        let peer = "192.0.2.7:5555".parse().ok();
        let local = "127.0.0.1:8080".parse().ok();
        let mut ctx = Ctx::new(&head, peer, local);
        ctx.set_var("root".into(), Value::String("/srv/www/".into()));
        let (hdr, host, method) = (ctx.headers.clone(), ctx.host.clone(), ctx.method.clone());
        f.params(&ctx, &method, &ctx.uri, &hdr, &host, length)
            .unwrap()
            .0
    }

    fn get<'e>(env: &'e [(String, String)], k: &str) -> Option<&'e str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn split_path_gives_script_and_path_info() {
        let env = env_of(
            r#"{"split_path":[".PHP"],"env":{"APP":"{http.request.uri.query.a}-x"}}"#,
            "GET /a/Index.Php/extra/p?a=1 HTTP/1.1\r\nHost: ex.com\r\nX-Y-Z: 1\r\nX-Y-Z: 2\r\n\r\n",
            0,
        );
        let want = [
            ("SCRIPT_NAME", "/a/Index.Php"),
            ("SCRIPT_FILENAME", "/srv/www/a/Index.Php"),
            ("DOCUMENT_URI", "/a/Index.Php"),
            ("PATH_INFO", "/extra/p"),
            ("PATH_TRANSLATED", "/srv/www/extra/p"),
            ("DOCUMENT_ROOT", "/srv/www"),
            ("QUERY_STRING", "a=1"),
            ("REQUEST_URI", "/a/Index.Php/extra/p?a=1"),
            ("REMOTE_ADDR", "192.0.2.7"),
            ("REMOTE_PORT", "5555"),
            ("SERVER_ADDR", "127.0.0.1"),
            ("SERVER_NAME", "ex.com"),
            ("SERVER_PORT", "80"),
            ("HTTP_HOST", "ex.com"),
            ("HTTP_X_Y_Z", "1, 2"),
            ("APP", "1-x"),
            ("CONTENT_LENGTH", "0"),
            ("CONTENT_TYPE", ""),
            ("REQUEST_METHOD", "GET"),
        ];
        for (k, v) in want {
            assert_eq!(get(&env, k), Some(v), "{k}");
        }
    }

    #[test]
    fn no_split_match_and_post_defaults() {
        let env = env_of(
            r#"{"split_path":[".php"],"root":"/r"}"#,
            "POST /x.txt HTTP/1.0\r\nHost: [::1]:8080\r\nContent-Length: 3\r\n\r\nabc",
            3,
        );
        assert_eq!(get(&env, "SCRIPT_NAME"), Some("/x.txt"));
        assert_eq!(get(&env, "PATH_INFO"), Some(""));
        assert_eq!(get(&env, "PATH_TRANSLATED"), None);
        assert_eq!(get(&env, "SERVER_NAME"), Some("::1"));
        assert_eq!(get(&env, "SERVER_PORT"), Some("8080"));
        assert_eq!(get(&env, "SERVER_PROTOCOL"), Some("HTTP/1.0"));
        assert_eq!(get(&env, "CONTENT_LENGTH"), Some("3"));
        assert_eq!(
            get(&env, "CONTENT_TYPE"),
            Some("application/x-www-form-urlencoded")
        );
        // without split_path the whole path is PATH_INFO
        let env = env_of(r#"{}"#, "GET /a/b HTTP/1.1\r\nHost: h\r\n\r\n", 0);
        assert_eq!(get(&env, "SCRIPT_NAME"), Some(""));
        assert_eq!(get(&env, "PATH_INFO"), Some("/a/b"));
    }

    #[test]
    fn non_ascii_split_is_refused_and_never_matches() {
        let Value::Object(m) = serde_json::json!({"split_path": [".phé"]}) else {
            panic!()
        };
        assert!(FastCgi::compile(&m).is_err());
        let Value::Object(m) = serde_json::json!({"split_path": [".php"]}) else {
            panic!()
        };
        let f = FastCgi::compile(&m).unwrap();
        assert_eq!(f.split_pos("/a.php/b"), Some(6));
        assert_eq!(f.split_pos("/a.ph\u{1d429}"), None);
    }

    #[test]
    fn body_framings() {
        let mut out = Vec::new();
        BodyFraming::Chunked.piece(b"abc", &mut out);
        BodyFraming::Chunked.end(&mut out);
        assert_eq!(out, b"3\r\nabc\r\n0\r\n\r\n");
        out.clear();
        BodyFraming::Stdin.piece(b"abc", &mut out);
        BodyFraming::Stdin.end(&mut out);
        assert_eq!(out.len(), 16 + 8);
        assert_eq!(&out[16..], [1, 5, 0, 1, 0, 0, 0, 0]);
    }
}
