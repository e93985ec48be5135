//! `http.handlers.templates`: executes the response of the handlers after it as a Go
//! `text/template` (our own interpreter: `lex`, `parse`, `exec`, `funcs`, `value`).
//!
//! Flow, as Caddy's `Templates.ServeHTTP`: the handler registers itself on the context; when
//! a later handler has written a response whose Content-Type contains one of `mime_types`
//! (default text/html, text/plain, text/markdown), its whole body is parsed as a template
//! named by the request path and executed with Caddy's `TemplateContext` as dot (`.Req`,
//! `.OriginalReq`, `.Args`, `.RespHeader`, `.Host`, `.RemoteIP`, `.ClientIP`, `.Cookie`).
//! Then Content-Length is the output's length (0 for HEAD, whose body is empty), and
//! Accept-Ranges, Last-Modified and ETag are removed. Files (`include`, `readFile`,
//! `listFiles`, ...) are found under `file_root` (default `{http.vars.root}`, else `.`).
//! Errors: a template that fails to parse or execute fails the request with 500 (the
//! message is the error placeholder's); `httpError N` fails it with N. As in Caddy, the
//! failed response keeps the headers the inner handler set. Performance: the template is
//! parsed on every request, as Caddy does; bodies are read whole into memory.

pub mod exec;
pub mod frontmatter;
pub mod funcs;
pub mod lex;
pub mod parse;
pub mod value;

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{Map, Value};

use super::super::ctx::{parse_query, Ctx, HandlerError};
use super::super::placeholder::{replace_all_or, Lookup};
use super::super::{err, root_field, str_list, Result};
use crate::http1::HeaderMap;
use exec::{Exec, Fail};
use parse::Set;
use value::{Object, Val};

/// The headers describing the inner response's body, gone when a template calls `httpError`.
const REPRESENTATION: &[&str] = &[
    "Accept-Ranges",
    "Content-Length",
    "Content-Range",
    "Content-Type",
    "Etag",
    "Last-Modified",
];

const DEFAULT_MIME_TYPES: &[&str] = &["text/html", "text/plain", "text/markdown"];

/// What the template functions may reach outside the template: placeholders, the response
/// headers, and files under the file root.
pub trait Env {
    fn placeholder(&self, key: &str) -> Option<String>;
    fn resp_headers(&mut self) -> &mut HeaderMap;
    /// A file's contents under the file root (Go's `http.Dir` open and read).
    fn read(&self, name: &str) -> std::result::Result<Vec<u8>, String>;
    /// Whether the file opens (`fileExists`).
    fn read_ok(&self, name: &str) -> std::result::Result<bool, String>;
    fn list(&self, name: &str) -> std::result::Result<Vec<String>, String>;
    fn stat(&self, name: &str) -> std::result::Result<Val, String>;
    fn delims(&self) -> (&str, &str);
}

#[derive(Debug)]
pub struct Templates {
    file_root: String,
    mime_types: Vec<String>,
    delims: Option<(String, String)>,
}

impl Templates {
    pub fn compile(m: &Map<String, Value>) -> Result<Templates> {
        let delims = str_list(m.get("delimiters"), "delimiters")?;
        let delims = match delims.as_slice() {
            [] => None,
            [l, r] => Some((l.clone(), r.clone())),
            _ => {
                return err("delimiters must consist of exactly two elements: opening and closing")
            }
        };
        let mut mime_types = str_list(m.get("mime_types"), "mime_types")?;
        if m.get("mime_types").is_none() {
            mime_types = DEFAULT_MIME_TYPES.iter().map(|s| (*s).to_owned()).collect();
        }
        Ok(Templates {
            file_root: root_field(m.get("file_root")),
            mime_types,
            delims,
        })
    }

    /// Executes `ctx.resp` as a template when its type is one of ours.
    pub fn apply(&self, ctx: &mut Ctx<'_, '_>) -> std::result::Result<(), HandlerError> {
        let ct = ctx.resp.headers.get("Content-Type");
        if !self.mime_types.iter().any(|m| ct.contains(m.as_str())) {
            return Ok(());
        }
        let mut body = std::mem::take(&mut ctx.resp.body);
        if let Some(file) = ctx.resp.file.take() {
            match file.read_all() {
                Ok(mut rest) => body.append(&mut rest),
                Err(e) => return Err(internal(e.to_string())),
            }
        }
        let src = String::from_utf8_lossy(&body).into_owned();
        let root = replace_all_or(&self.file_root, &*ctx, ".");
        let name = ctx.uri.path.clone();
        let delims = self
            .delims
            .as_ref()
            .map_or(("{{", "}}"), |(l, r)| (l.as_str(), r.as_str()));
        let result = execute(ctx, &root, delims, &name, &src, |root| root);
        let out = match result {
            Ok(out) => out,
            Err(Fail::Http(status)) => {
                // Caddy answers `httpError` without the inner response's representation
                // headers (those the template set stay).
                for h in REPRESENTATION {
                    ctx.resp.headers.del(h);
                }
                // Caddy's error without a cause reads as the status text.
                return Err(HandlerError {
                    status,
                    message: crate::http1::status::reason(status)
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            Err(Fail::Msg(m)) => return Err(internal(m)),
            Err(Fail::NoFunc) => return Err(internal(String::new())),
        };
        let hdr = &mut ctx.resp.headers;
        // Caddy 2.11 states the output's length even for HEAD, where it is 0.
        hdr.set("Content-Length", &out.len().to_string());
        hdr.del("Accept-Ranges");
        hdr.del("Last-Modified");
        hdr.del("Etag");
        ctx.resp.body = out.into_bytes();
        Ok(())
    }
}

fn internal(message: String) -> HandlerError {
    HandlerError {
        status: 500,
        message,
    }
}

/// Executes `src` as the template `name` for the request in `ctx`, with files under `root`;
/// `dot` makes the template's dot from Caddy's `TemplateContext` (the browse listing extends
/// it). The template's header changes go to `ctx.resp`.
pub fn execute(
    ctx: &mut Ctx<'_, '_>,
    root: &str,
    delims: (&str, &str),
    name: &str,
    src: &str,
    dot: impl FnOnce(Rc<dyn Object>) -> Rc<dyn Object>,
) -> std::result::Result<String, Fail> {
    let dot = Val::Obj(dot(Rc::new(Root::of(ctx))));
    let mut headers = std::mem::take(&mut ctx.resp.headers);
    let result = {
        let mut env = ReqEnv {
            ctx,
            headers: &mut headers,
            root,
            delims,
        };
        render(&mut env, name, src, dot)
    };
    ctx.resp.headers = headers;
    result
}

/// Parses and executes `src` as the template `name` with `dot`.
pub fn render(
    env: &mut dyn Env,
    name: &str,
    src: &str,
    dot: Val,
) -> std::result::Result<String, Fail> {
    render_at(env, name, src, dot, 0)
}

/// `render` from within an include `depth` levels deep.
fn render_at(
    env: &mut dyn Env,
    name: &str,
    src: &str,
    dot: Val,
    depth: usize,
) -> std::result::Result<String, Fail> {
    let mut set = Set::default();
    let delims = env.delims();
    let (l, r) = (delims.0.to_owned(), delims.1.to_owned());
    parse::parse(name, src, (&l, &r), &mut set).map_err(Fail::Msg)?;
    let mut ex = Exec::new(set, env, name, src, dot.clone());
    ex.depth = depth;
    ex.run(name, &dot)?;
    Ok(ex.out)
}

/// Caddy's `include`: the file executed as a template with `.Args` set.
pub(crate) fn include(
    ex: &mut Exec<'_>,
    filename: &str,
    args: Vec<Val>,
) -> std::result::Result<Val, Fail> {
    let body = ex.env.read(filename).map_err(Fail::Msg)?;
    let src = String::from_utf8_lossy(&body).into_owned();
    let dot = match &ex.root {
        Val::Obj(o) => o.with_args(Val::list(args)).unwrap_or(Val::Missing),
        _ => Val::Missing,
    };
    if ex.depth >= exec::MAX_DEPTH {
        return Err(Fail::Msg(format!(
            "exceeded maximum template depth ({})",
            exec::MAX_DEPTH
        )));
    }
    render_at(ex.env, filename, &src, dot, ex.depth + 1).map(Val::from)
}

/// Caddy's `import`: the file's definitions join the running template's.
fn import(ex: &mut Exec<'_>, filename: &str) -> std::result::Result<(), Fail> {
    let body = ex.env.read(filename).map_err(Fail::Msg)?;
    let src = String::from_utf8_lossy(&body).into_owned();
    let (l, r) = {
        let d = ex.env.delims();
        (d.0.to_owned(), d.1.to_owned())
    };
    let name = ex.name.to_owned();
    parse::parse(&name, &src, (&l, &r), &mut ex.set).map_err(Fail::Msg)?;
    Ok(())
}

struct ReqEnv<'e, 'c, 'p, 'a> {
    ctx: &'c Ctx<'p, 'a>,
    headers: &'e mut HeaderMap,
    root: &'e str,
    delims: (&'e str, &'e str),
}

impl ReqEnv<'_, '_, '_, '_> {
    /// Go's `http.Dir.Open` path: the name cleaned as if absolute, under the root.
    fn path(&self, name: &str) -> String {
        let clean = super::super::matchers::path::clean(&format!("/{name}"));
        format!("{}{}", self.root.trim_end_matches('/'), clean)
    }
}

fn io_msg(op: &str, path: &str, e: &std::io::Error) -> String {
    let text = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        _ => e.to_string(),
    };
    format!("{op} {path}: {text}")
}

impl Env for ReqEnv<'_, '_, '_, '_> {
    fn placeholder(&self, key: &str) -> Option<String> {
        self.ctx.lookup(key).map(|c| c.into_owned())
    }

    fn resp_headers(&mut self) -> &mut HeaderMap {
        self.headers
    }

    fn read(&self, name: &str) -> std::result::Result<Vec<u8>, String> {
        let p = self.path(name);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => return Err(format!("read {p}: is a directory")),
            Err(e) => return Err(io_msg("open", &p, &e)),
            _ => {}
        }
        std::fs::read(&p).map_err(|e| io_msg("read", &p, &e))
    }

    fn read_ok(&self, name: &str) -> std::result::Result<bool, String> {
        Ok(std::fs::File::open(self.path(name)).is_ok())
    }

    fn list(&self, name: &str) -> std::result::Result<Vec<String>, String> {
        let p = self.path(name);
        let meta = std::fs::metadata(&p).map_err(|e| io_msg("open", &p, &e))?;
        if !meta.is_dir() {
            return Err(format!("{name} is not a directory"));
        }
        let rd = std::fs::read_dir(&p).map_err(|e| io_msg("readdirent", &p, &e))?;
        // Directory order, as Go's Readdir gives it.
        Ok(rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }

    fn stat(&self, name: &str) -> std::result::Result<Val, String> {
        let p = self.path(name);
        let meta = std::fs::metadata(&p).map_err(|e| io_msg("stat", &p, &e))?;
        let base = p.rsplit('/').next().unwrap_or("").to_owned();
        Ok(Val::Obj(Rc::new(FileStat::new(base, &meta))))
    }

    fn delims(&self) -> (&str, &str) {
        self.delims
    }
}

/// The request as templates see it (Go's `*http.Request`).
#[derive(Debug)]
struct Req {
    method: String,
    proto: &'static str,
    host: String,
    remote_addr: String,
    request_uri: String,
    path: String,
    raw_path: String,
    raw_query: String,
    headers: Rc<Multimap>,
}

impl Req {
    fn new(ctx: &Ctx<'_, '_>, method: &str, uri: &super::super::ctx::Uri) -> Req {
        let raw = uri.escaped_path().into_owned();
        Req {
            method: method.to_owned(),
            proto: ctx.proto,
            host: ctx.host.clone(),
            remote_addr: ctx.remote.map(|a| a.to_string()).unwrap_or_default(),
            request_uri: ctx.orig_target.to_owned(),
            raw_path: if raw != uri.path { raw } else { String::new() },
            path: uri.path.clone(),
            raw_query: uri.query.clone(),
            headers: Rc::new(Multimap(GoMap::Header, ctx.headers.clone())),
        }
    }

    fn url_string(&self) -> String {
        let mut s = if self.raw_path.is_empty() {
            super::super::ctx::escape_path(&self.path)
        } else {
            self.raw_path.clone()
        };
        if !self.raw_query.is_empty() {
            s.push('?');
            s.push_str(&self.raw_query);
        }
        s
    }
}

fn no_args(name: &str, args: &[Val]) -> Option<std::result::Result<Val, String>> {
    (!args.is_empty()).then(|| {
        Err(format!(
            "{name} has arguments but cannot be invoked as function"
        ))
    })
}

fn str_param(args: &[Val], want: usize) -> std::result::Result<Vec<String>, String> {
    if args.len() != want {
        return Err(format!(
            "wrong number of args: got {} want {want}",
            args.len()
        ));
    }
    args.iter()
        .map(|a| {
            a.as_str().map(str::to_owned).ok_or_else(|| {
                format!(
                    "wrong type for value; expected string; got {}",
                    a.type_name()
                )
            })
        })
        .collect()
}

impl Object for Req {
    fn type_name(&self) -> &'static str {
        "*http.Request"
    }

    fn member(
        &self,
        name: &str,
        args: &[Val],
        _env: &mut dyn Env,
    ) -> Option<std::result::Result<Val, String>> {
        let field = |v: Val| no_args(name, args).or(Some(Ok(v)));
        match name {
            "Method" => field(Val::from(self.method.as_str())),
            "Proto" => field(Val::from(self.proto)),
            "ProtoMajor" => field(Val::Int(1)),
            "ProtoMinor" => field(Val::Int(i64::from(self.proto == "HTTP/1.1"))),
            "Host" => field(Val::from(self.host.as_str())),
            "RemoteAddr" => field(Val::from(self.remote_addr.as_str())),
            "RequestURI" => field(Val::from(self.request_uri.as_str())),
            "Header" => field(Val::Obj(self.headers.clone())),
            "URL" => field(Val::Obj(Rc::new(Url {
                path: self.path.clone(),
                raw_path: self.raw_path.clone(),
                raw_query: self.raw_query.clone(),
                string: self.url_string(),
            }))),
            "UserAgent" => field(Val::from(self.headers.1.get("User-Agent"))),
            "Referer" => field(Val::from(self.headers.1.get("Referer"))),
            _ => None,
        }
    }

    fn display(&self) -> String {
        format!("&{{{} {} {}}}", self.method, self.url_string(), self.proto)
    }
}

#[derive(Debug)]
struct Url {
    path: String,
    raw_path: String,
    raw_query: String,
    string: String,
}

impl Object for Url {
    fn type_name(&self) -> &'static str {
        "*url.URL"
    }

    fn member(
        &self,
        name: &str,
        args: &[Val],
        _env: &mut dyn Env,
    ) -> Option<std::result::Result<Val, String>> {
        let field = |v: Val| no_args(name, args).or(Some(Ok(v)));
        match name {
            "Path" => field(Val::from(self.path.as_str())),
            "RawPath" => field(Val::from(self.raw_path.as_str())),
            "RawQuery" => field(Val::from(self.raw_query.as_str())),
            "Scheme" | "Host" | "Fragment" | "Opaque" | "RawFragment" => field(Val::from("")),
            "String" | "RequestURI" => field(Val::from(self.string.as_str())),
            "EscapedPath" => field(Val::from(self.string.split('?').next().unwrap_or(""))),
            "Query" => {
                let pairs = parse_query(&self.raw_query).unwrap_or_else(|p| p);
                let mut h = HeaderMap::default();
                for (k, v) in pairs {
                    match h.0.iter_mut().find(|(n, _)| *n == k) {
                        Some(slot) => slot.1.push(v),
                        None => h.0.push((k, vec![v])),
                    }
                }
                field(Val::Obj(Rc::new(Multimap(GoMap::Values, h))))
            }
            _ => None,
        }
    }

    fn display(&self) -> String {
        self.string.clone()
    }
}

/// `map[string][]string` printed in key order, as Go prints maps.
fn print_multimap(h: &HeaderMap) -> String {
    let sorted: BTreeMap<&str, &Vec<String>> = h.0.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let parts: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{k}:[{}]", v.join(" ")))
        .collect();
    format!("map[{}]", parts.join(" "))
}

fn strings(v: Option<&[String]>) -> Val {
    Val::list(
        v.unwrap_or(&[])
            .iter()
            .map(|s| Val::from(s.as_str()))
            .collect(),
    )
}

/// Go's `map[string][]string` types the templates see: both print and index alike.
#[derive(Debug)]
enum GoMap {
    /// `http.Header`: `Get`/`Values` canonicalise the key.
    Header,
    /// `url.Values`: keys as given, not canonicalised.
    Values,
}

#[derive(Debug)]
struct Multimap(GoMap, HeaderMap);

impl Object for Multimap {
    fn type_name(&self) -> &'static str {
        match self.0 {
            GoMap::Header => "http.Header",
            GoMap::Values => "url.Values",
        }
    }

    fn member(
        &self,
        name: &str,
        args: &[Val],
        _env: &mut dyn Env,
    ) -> Option<std::result::Result<Val, String>> {
        let m = &self.1;
        let key = || str_param(args, 1);
        match (&self.0, name) {
            (GoMap::Header, "Get") => Some(key().map(|a| Val::from(m.get(&a[0])))),
            (GoMap::Header, "Values") => Some(key().map(|a| strings(m.values(&a[0])))),
            (GoMap::Values, "Get") => Some(key().map(|a| {
                Val::from(
                    m.raw(&a[0])
                        .and_then(|v| v.first())
                        .map_or("", String::as_str),
                )
            })),
            (GoMap::Values, "Has") => Some(key().map(|a| Val::Bool(m.raw(&a[0]).is_some()))),
            _ => None,
        }
    }

    fn display(&self) -> String {
        print_multimap(&self.1)
    }

    fn index(&self, key: &str) -> Option<Val> {
        Some(strings(self.1.raw(key)))
    }
}

/// Caddy's `WrappedHeader` over the response headers: Add/Set/Del return "".
#[derive(Debug)]
struct RespHeader;

impl Object for RespHeader {
    fn type_name(&self) -> &'static str {
        "templates.WrappedHeader"
    }

    fn member(
        &self,
        name: &str,
        args: &[Val],
        env: &mut dyn Env,
    ) -> Option<std::result::Result<Val, String>> {
        let h = env.resp_headers();
        Some(match name {
            "Add" => str_param(args, 2).map(|a| {
                h.add(&a[0], &a[1]);
                Val::from("")
            }),
            "Set" => str_param(args, 2).map(|a| {
                h.set(&a[0], &a[1]);
                Val::from("")
            }),
            "Del" => str_param(args, 1).map(|a| {
                h.del(&a[0]);
                Val::from("")
            }),
            "Get" => str_param(args, 1).map(|a| Val::from(h.get(&a[0]))),
            _ => return None,
        })
    }

    fn display(&self) -> String {
        "{map[]}".into()
    }
}

/// Caddy's `TemplateContext`, the dot of a template.
#[derive(Debug)]
struct Root {
    req: Rc<Req>,
    orig: Rc<Req>,
    args: Val,
    client_ip: String,
    cookies: Vec<(String, String)>,
}

impl Root {
    fn of(ctx: &Ctx<'_, '_>) -> Root {
        let mut cookies = Vec::new();
        for line in ctx.headers.raw("Cookie").unwrap_or(&[]) {
            for part in line.split(';') {
                let part = part.trim();
                if let Some((k, v)) = part.split_once('=') {
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    cookies.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        Root {
            req: Rc::new(Req::new(ctx, &ctx.method, &ctx.uri)),
            orig: Rc::new(Req::new(ctx, ctx.orig_method, &ctx.orig_uri)),
            args: Val::list(Vec::new()),
            client_ip: ctx
                .var("client_ip")
                .map(|v| super::super::ctx::value_string(v).into_owned())
                .unwrap_or_default(),
            cookies,
        }
    }
}

/// Go's `net.SplitHostPort` host part, or None when `hostport` has no port.
fn split_host(hostport: &str) -> Option<&str> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        return after.starts_with(':').then_some(h);
    }
    let (h, _) = hostport.rsplit_once(':')?;
    (!h.contains(':')).then_some(h)
}

impl Object for Root {
    fn type_name(&self) -> &'static str {
        "*templates.TemplateContext"
    }

    fn member(
        &self,
        name: &str,
        args: &[Val],
        _env: &mut dyn Env,
    ) -> Option<std::result::Result<Val, String>> {
        let field = |v: Val| no_args(name, args).or(Some(Ok(v)));
        match name {
            "Req" => field(Val::Obj(self.req.clone())),
            "OriginalReq" => field(Val::Obj(self.orig.clone())),
            "Args" => field(self.args.clone()),
            "RespHeader" => field(Val::Obj(Rc::new(RespHeader))),
            "ClientIP" => field(Val::from(self.client_ip.as_str())),
            "RemoteIP" => field(Val::from(
                split_host(&self.req.remote_addr).unwrap_or(&self.req.remote_addr),
            )),
            "Host" => {
                let host = &self.req.host;
                match split_host(host) {
                    Some(h) => field(Val::from(h)),
                    None if !host.contains(':') => field(Val::from(host.as_str())),
                    None => Some(Err(format!("address {host}: too many colons in address"))),
                }
            }
            "Cookie" => Some(str_param(args, 1).map(|a| {
                Val::from(
                    self.cookies
                        .iter()
                        .find(|(k, _)| *k == a[0])
                        .map_or("", |(_, v)| v.as_str()),
                )
            })),
            _ => None,
        }
    }

    fn with_args(&self, args: Val) -> Option<Val> {
        Some(Val::Obj(Rc::new(Root {
            req: self.req.clone(),
            orig: self.orig.clone(),
            args,
            client_ip: self.client_ip.clone(),
            cookies: self.cookies.clone(),
        })))
    }

    fn display(&self) -> String {
        format!("&{{{} {}}}", self.req.display(), self.args.to_text())
    }
}

/// `fs.FileInfo` (`fileStat`).
#[derive(Debug)]
struct FileStat {
    name: String,
    size: i64,
    mode: u32,
    is_dir: bool,
    mtime: (i64, u32),
}

impl FileStat {
    fn new(name: String, meta: &std::fs::Metadata) -> FileStat {
        use std::os::unix::fs::MetadataExt;
        FileStat {
            name,
            size: meta.len() as i64,
            mode: meta.mode(),
            is_dir: meta.is_dir(),
            mtime: (meta.mtime(), meta.mtime_nsec() as u32),
        }
    }

    /// Go's `FileMode.String()` for directories and regular files.
    fn mode_string(&self) -> String {
        let mut s = String::from(if self.is_dir { "d" } else { "-" });
        for (i, c) in "rwxrwxrwx".chars().enumerate() {
            s.push(if self.mode & (1 << (8 - i)) != 0 {
                c
            } else {
                '-'
            });
        }
        s
    }
}

impl Object for FileStat {
    fn type_name(&self) -> &'static str {
        "*os.fileStat"
    }

    fn member(
        &self,
        name: &str,
        args: &[Val],
        _env: &mut dyn Env,
    ) -> Option<std::result::Result<Val, String>> {
        let field = |v: Val| no_args(name, args).or(Some(Ok(v)));
        match name {
            "Name" => field(Val::from(self.name.as_str())),
            "Size" => field(Val::Int(self.size)),
            "IsDir" => field(Val::Bool(self.is_dir)),
            "Mode" => field(Val::from(self.mode_string())),
            "ModTime" => field(Val::Time(self.mtime.0, self.mtime.1)),
            _ => None,
        }
    }

    fn display(&self) -> String {
        format!("&{{{} {} {}}}", self.name, self.size, self.mode_string())
    }
}

#[cfg(test)]
mod tests;
