//! `http.handlers.file_server`: static files from `root` (default `{http.vars.root}`).
//!
//! Flow, as Caddy's `FileServer.ServeHTTP` and Go's `http.ServeContent`: join root and the
//! request path safely; a directory is served through its first existing, non-hidden index
//! file, else it is listed when `browse` is on (see `browse.rs`); hidden files are not found;
//! canonical URIs add a slash to directories and remove it from files with a 308; methods
//! other than GET and HEAD get 405; a precompressed sidecar is chosen by `Accept-Encoding`
//! (and then stands for the file: its size and ETag); then `Vary`, ETag (base-36 mtime in ns and
//! size),
//! Last-Modified, Content-Type by extension, conditional requests (If-Match,
//! If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range) and byte ranges.
//! Errors: missing file 404 (or the next handler with `pass_thru`), permission 403, other
//! I/O 500, all through the error routes. Performance: bodies up to 256 KiB are read at
//! once; larger ones are streamed in chunks as the socket drains. Whole files up to 2 MiB
//! whose last change is over a second old are kept in a cache shared by the workers (64 MiB,
//! oldest out first), found by device, inode, size and change times from the `stat` every
//! request makes anyway, so a hit costs no open or read and a changed file is never served
//! stale; other files are read with blocking `pread`s on the worker, normally served from the
//! page cache. With an encoder around the handler the body stays a [`FileBody`], so the
//! encoder can find its compressed form in its own cache.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::UNIX_EPOCH;

use serde_json::{Map, Value};

use super::super::ctx::{Ctx, HandlerError};
use super::super::matchers::path::{clean, glob};
use super::super::mime::type_by_extension;
use super::super::placeholder::{replace_all, replace_all_or};
use super::super::{err, root_field, str_list, Result};
use super::static_response::status_text;
use crate::http1::date::http_date;
use crate::http1::response::{FileBody, FileBytes, FileKey, FileSource};
use crate::http1::Response;

/// Larger file bodies are streamed as the socket drains (from an open file by sendfile).
const IN_MEMORY_LIMIT: u64 = 256 << 10;
/// Files up to this size an encoder reads are kept whole in [`FILES`].
const CACHED_FILE_MAX: u64 = 2 << 20;

/// Settled files' contents, shared by the workers.
static FILES: LazyLock<Mutex<ByteCache<FileKey, Arc<FileBytes>>>> =
    LazyLock::new(|| Mutex::new(ByteCache::new(64 << 20)));

/// Shared values (of a known size in bytes) under a total size limit; the oldest entry leaves
/// first. Entries are never stale: keys name contents (see [`FileKey`]), so an entry a change
/// orphaned is simply no longer asked for, and ages out.
#[derive(Debug)]
pub struct ByteCache<K, V> {
    map: HashMap<K, (V, usize)>,
    order: VecDeque<K>,
    bytes: usize,
    limit: usize,
}

impl<K: Hash + Eq + Copy, V: Clone> ByteCache<K, V> {
    pub fn new(limit: usize) -> ByteCache<K, V> {
        ByteCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.map.get(key).map(|(v, _)| v.clone())
    }

    pub fn insert(&mut self, key: K, value: V, size: usize) {
        if size > self.limit || self.map.contains_key(&key) {
            return;
        }
        while self.bytes + size > self.limit {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, n)) = self.map.remove(&old) {
                self.bytes -= n;
            }
        }
        self.bytes += size;
        self.order.push_back(key);
        self.map.insert(key, (value, size));
    }
}

/// The body of the file at `path` (whose `stat` is `meta`): from the cache, or opened (and
/// cached whole when it is settled and at most `cache_max` bytes).
fn open_body(path: &str, meta: &fs::Metadata, cache_max: u64) -> std::io::Result<FileBody> {
    if let Some(k) = FileKey::settled(meta) {
        if let Some(m) = FILES.lock().ok().and_then(|c| c.get(&k)) {
            return Ok(memory_body(m));
        }
    }
    let file = fs::File::open(path)?;
    // The open file may no longer be what `path` named at the stat: its own identity counts.
    let meta = file.metadata()?;
    let body = FileBody {
        source: FileSource::Open(Arc::new(file)),
        offset: 0,
        len: meta.len(),
    };
    let Some(key) = FileKey::settled(&meta).filter(|_| body.len <= cache_max) else {
        return Ok(body);
    };
    match body.clone().read_all() {
        Ok(bytes) => {
            let m = Arc::new(FileBytes {
                key,
                bytes: bytes.into(),
            });
            if let Ok(mut cache) = FILES.lock() {
                cache.insert(key, m.clone(), m.bytes.len());
            }
            Ok(memory_body(m))
        }
        // Left for the response to meet the error as it would have without a cache.
        Err(_) => Ok(body),
    }
}

fn memory_body(m: Arc<FileBytes>) -> FileBody {
    FileBody {
        len: m.bytes.len() as u64,
        source: FileSource::Memory(m),
        offset: 0,
    }
}

/// Moves a file body small enough to send at once into `resp.body` (a 500 if it cannot be
/// read).
pub fn read_small_file(resp: &mut Response) {
    let Some(file) = resp.file.take_if(|f| f.len <= IN_MEMORY_LIMIT) else {
        return;
    };
    match file.read_all() {
        Ok(mut data) => resp.body.append(&mut data),
        Err(_) => resp.status = 500,
    }
}

#[derive(Debug)]
pub struct FileServer {
    root: String,
    hide: Vec<String>,
    index_names: Vec<String>,
    canonical_uris: bool,
    pass_thru: bool,
    status: Option<String>,
    /// (encoding, file suffix) in the configured preference order.
    precompressed: Vec<(String, &'static str)>,
    browse: Option<super::browse::Browse>,
}

/// What the file server decided.
pub enum Served {
    /// The response is in `ctx.resp`.
    Responded,
    /// `pass_thru` and nothing found: the chain continues.
    Next,
    Error(HandlerError),
}

fn error(status: u16) -> Served {
    Served::Error(HandlerError {
        status,
        message: String::new(),
    })
}

fn suffix_for(encoding: &str) -> Option<&'static str> {
    match encoding {
        "gzip" => Some(".gz"),
        "br" => Some(".br"),
        "zstd" => Some(".zst"),
        _ => None,
    }
}

/// Caddy's `SanitizedPathJoin`.
pub fn sanitized_join(root: &str, req_path: &str) -> String {
    let root = if root.is_empty() { "." } else { root };
    let rel = clean(&format!("/{req_path}"))[1..].to_owned();
    let local = rel.is_empty()
        || !(rel.split('/').any(|s| s == "..") || rel.starts_with('/') || rel.contains('\0'));
    if !local {
        return root.to_owned();
    }
    let mut joined = if rel.is_empty() {
        clean(root)
    } else {
        clean(&format!("{root}/{rel}"))
    };
    if req_path.ends_with('/') && req_path.len() > 1 {
        joined.push('/');
    }
    joined
}

fn absolute(p: &str) -> String {
    if p.starts_with('/') {
        return clean(p);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    clean(&format!("{}/{p}", cwd.display()))
}

/// Caddy's `fileHidden`.
pub(super) fn hidden(filename: &str, hide: &[String]) -> bool {
    if hide.is_empty() {
        return false;
    }
    let filename = absolute(filename);
    hide.iter().any(|h| {
        if !h.contains('/') {
            if filename.split('/').any(|c| glob(h, c)) {
                return true;
            }
        } else if let Some(rest) = filename.strip_prefix(h.as_str()) {
            if rest.starts_with('/') {
                return true;
            }
        }
        glob(h, &filename)
    })
}

/// Caddy's ETag: base-36 modification time in nanoseconds, a dash, base-36 size.
fn etag(meta: &fs::Metadata) -> String {
    let nanos = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    format!("\"{}-{}\"", base36(nanos), base36(meta.len()))
}

fn mtime(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

/// Go's `http.ParseTime` (RFC 1123 GMT, RFC 850, ANSI C), as seconds since the epoch.
pub fn parse_http_time(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        // Mon, 02 Jan 2006 15:04:05 GMT
        [_, d, m, y, t, "GMT"] => (*d, *m, *y, *t),
        // Monday, 02-Jan-06 15:04:05 GMT
        [_, dmy, t, "GMT"] => {
            let mut it = dmy.split('-');
            let (d, m, y) = (it.next()?, it.next()?, it.next()?);
            let y: u64 = y.parse().ok()?;
            let year = if y < 69 { 2000 + y } else { 1900 + y };
            return build(d, m, year, t, &MONTHS);
        }
        // Mon Jan  2 15:04:05 2006
        [_, m, d, t, y] => (*d, *m, *y, *t),
        _ => return None,
    };
    build(day, month, year.parse().ok()?, time, &MONTHS)
}

fn build(day: &str, month: &str, year: u64, time: &str, months: &[&str; 12]) -> Option<u64> {
    let m = months.iter().position(|x| *x == month)? as u64 + 1;
    let d: u64 = day.parse().ok()?;
    let mut hms = time.split(':');
    let (h, mi, s): (u64, u64, u64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    if !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 || year < 1970 {
        return None;
    }
    // days from civil (Howard Hinnant)
    let (y, mm) = if m <= 2 {
        (year - 1, m + 9)
    } else {
        (year, m - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Go's `scanETag`: one entity tag from the front of `s`, and the rest.
fn scan_etag(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r']);
    let start = if s.starts_with("W/") { 2 } else { 0 };
    let b = s.as_bytes();
    if b.len() - start < 2 || b[start] != b'"' {
        return None;
    }
    for i in start + 1..b.len() {
        let c = b[i];
        if c == b'"' {
            return Some((&s[..=i], &s[i + 1..]));
        }
        if !(c == 0x21 || (0x23..=0x7e).contains(&c) || c >= 0x80) {
            return None;
        }
    }
    None
}

fn strong_match(a: &str, b: &str) -> bool {
    a == b && !a.is_empty() && a.starts_with('"')
}

fn weak_match(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

#[derive(PartialEq, Eq)]
enum Cond {
    None,
    True,
    False,
}

/// Whether `*` or an entity tag of an If-Match / If-None-Match list satisfies `matches`;
/// `None` for an empty header. A malformed list ends the scan without a match, as in Go.
fn etag_list_matches(header: &str, matches: impl Fn(&str) -> bool) -> Option<bool> {
    let mut buf = header;
    if buf.is_empty() {
        return None;
    }
    loop {
        buf = buf.trim_start_matches([' ', '\t']);
        if buf.is_empty() {
            return Some(false);
        }
        if let Some(rest) = buf.strip_prefix(',') {
            buf = rest;
            continue;
        }
        if buf.starts_with('*') {
            return Some(true);
        }
        let Some((tag, rest)) = scan_etag(buf) else {
            return Some(false);
        };
        if matches(tag) {
            return Some(true);
        }
        buf = rest;
    }
}

fn if_match(header: &str, etag: &str) -> Cond {
    match etag_list_matches(header, |tag| strong_match(tag, etag)) {
        None => Cond::None,
        Some(true) => Cond::True,
        Some(false) => Cond::False,
    }
}

fn if_none_match(header: &str, etag: &str) -> Cond {
    match etag_list_matches(header, |tag| weak_match(tag, etag)) {
        None => Cond::None,
        Some(true) => Cond::False,
        Some(false) => Cond::True,
    }
}

/// One satisfiable byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u64,
    length: u64,
}

enum RangeError {
    Invalid,
    NoOverlap,
}

/// Go's `parseRange`.
fn parse_ranges(s: &str, size: u64) -> std::result::Result<Vec<Range>, RangeError> {
    let Some(list) = s.strip_prefix("bytes=") else {
        return Err(RangeError::Invalid);
    };
    let mut out = Vec::new();
    let mut no_overlap = false;
    for ra in list.split(',') {
        let ra = ra.trim_matches([' ', '\t']);
        if ra.is_empty() {
            continue;
        }
        let (start, end) = ra.split_once('-').ok_or(RangeError::Invalid)?;
        let (start, end) = (
            start.trim_matches([' ', '\t']),
            end.trim_matches([' ', '\t']),
        );
        let num = |x: &str| -> std::result::Result<u64, RangeError> {
            if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) {
                return Err(RangeError::Invalid);
            }
            x.parse().map_err(|_| RangeError::Invalid)
        };
        if start.is_empty() {
            let n = num(end)?.min(size);
            out.push(Range {
                start: size - n,
                length: n,
            });
            continue;
        }
        let start = num(start)?;
        if start >= size {
            no_overlap = true;
            continue;
        }
        let length = if end.is_empty() {
            size - start
        } else {
            let e = num(end)?;
            if start > e {
                return Err(RangeError::Invalid);
            }
            e.min(size - 1) - start + 1
        };
        out.push(Range { start, length });
    }
    if no_overlap && out.is_empty() {
        return Err(RangeError::NoOverlap);
    }
    Ok(out)
}

/// Caddy's `AcceptedEncodings`: accepted codings by descending q, then preference order.
pub fn accepted_encodings(header: &str, order: &[String]) -> Vec<String> {
    let mut prefs: Vec<(String, f64, isize)> = Vec::new();
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_lowercase();
        let mut q = 1.0;
        if let Some(p) = parts.next() {
            let p = p.trim().to_lowercase();
            if let Some(v) = p.strip_prefix("q=").and_then(|v| v.parse::<f64>().ok()) {
                if (0.0..=1.0).contains(&v) {
                    q = v;
                }
            }
        }
        if q < 0.00001 || name.is_empty() {
            continue;
        }
        let pref = order
            .iter()
            .position(|o| *o == name)
            .map_or(-1, |i| (order.len() - i) as isize);
        prefs.push((name, q, pref));
    }
    prefs.sort_by(|a, b| {
        if (a.1 - b.1).abs() < 0.00001 {
            b.2.cmp(&a.2)
        } else {
            b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal)
        }
    });
    prefs.into_iter().map(|p| p.0).collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

impl FileServer {
    pub fn compile(m: &Map<String, Value>) -> Result<FileServer> {
        let mut index_names = str_list(m.get("index_names"), "index_names")?;
        if m.get("index_names").is_none() {
            index_names = vec!["index.html".into(), "index.txt".into()];
        }
        let mut precompressed = Vec::new();
        if let Some(Value::Object(p)) = m.get("precompressed") {
            let mut order = str_list(m.get("precompressed_order"), "precompressed_order")?;
            if order.is_empty() {
                order = p.keys().cloned().collect();
                order.sort_by_key(|e| ["br", "zstd", "gzip"].iter().position(|x| x == e));
            }
            for enc in order {
                match suffix_for(&enc) {
                    Some(s) if p.contains_key(&enc) => precompressed.push((enc, s)),
                    Some(_) => {}
                    None => return err(format!("unknown precompressor: {enc}")),
                }
            }
        }
        Ok(FileServer {
            root: root_field(m.get("root")),
            hide: str_list(m.get("hide"), "hide")?,
            index_names,
            canonical_uris: m
                .get("canonical_uris")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            pass_thru: m.get("pass_thru").and_then(Value::as_bool).unwrap_or(false),
            status: status_text(m.get("status_code"))?,
            precompressed,
            browse: m
                .get("browse")
                .filter(|b| !b.is_null())
                .map(super::browse::Browse::compile)
                .transpose()?,
        })
    }

    fn not_found(&self) -> Served {
        if self.pass_thru {
            Served::Next
        } else {
            // Caddy's error without a cause: `{err.message}` reads the status text.
            Served::Error(HandlerError {
                status: 404,
                message: "Not Found".to_owned(),
            })
        }
    }

    pub fn serve(&self, ctx: &mut Ctx<'_, '_>) -> Served {
        let hide: Vec<String> = self
            .hide
            .iter()
            .map(|h| {
                let h = replace_all(h, &*ctx);
                if h.contains('/') {
                    absolute(&h)
                } else {
                    h
                }
            })
            .collect();
        if ctx.uri.path.contains('\0') {
            return error(400);
        }
        let root = replace_all_or(&self.root, &*ctx, ".");
        let mut filename = sanitized_join(&root, &ctx.uri.path);
        let mut meta = match fs::metadata(&filename) {
            Ok(m) => m,
            // A file asked for with a trailing slash is found, then redirected below.
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory && filename.ends_with('/') => {
                filename.pop();
                match fs::metadata(&filename) {
                    Ok(m) => m,
                    Err(e) => return stat_error(&e, &filename, self),
                }
            }
            Err(e) => return stat_error(&e, &filename, self),
        };
        let mut implicit_index = false;
        if meta.is_dir() {
            for index in &self.index_names {
                let candidate = sanitized_join(&filename, index);
                if hidden(&candidate, &hide) {
                    continue;
                }
                if let Ok(m) = fs::metadata(&candidate) {
                    meta = m;
                    filename = candidate;
                    implicit_index = true;
                    break;
                }
            }
        }
        if meta.is_dir() {
            if let Some(b) = self.browse.as_ref().filter(|_| !hidden(&filename, &hide)) {
                return b.serve(ctx, &root, &filename, &hide, || self.not_found());
            }
            return self.not_found();
        }
        if hidden(&filename, &hide) {
            return self.not_found();
        }
        if self.canonical_uris {
            let orig = ctx.orig_uri.path.clone();
            let base = |p: &str| {
                let t = p.trim_end_matches('/');
                if t.is_empty() {
                    if p.is_empty() {
                        ".".to_owned()
                    } else {
                        "/".to_owned()
                    }
                } else {
                    t.rsplit('/').next().unwrap_or(t).to_owned()
                }
            };
            if base(&orig) == base(&ctx.uri.path) {
                let query = ctx.orig_uri.query.clone();
                if implicit_index && !orig.ends_with('/') {
                    return redirect(ctx, &format!("{orig}/"), &query);
                }
                if !implicit_index && orig.ends_with('/') {
                    return redirect(ctx, &orig[..orig.len() - 1], &query);
                }
            }
        }
        // The representation may depend on Accept-Encoding whenever a file is found.
        ctx.resp.headers.add("Vary", "Accept-Encoding");
        if ctx.method != "GET" && ctx.method != "HEAD" {
            ctx.resp.headers.set("Allow", "GET, HEAD");
            return error(405);
        }
        let mut body_path = filename.clone();
        if !self.precompressed.is_empty() {
            let order: Vec<String> = self.precompressed.iter().map(|(e, _)| e.clone()).collect();
            let accepted = accepted_encodings(ctx.headers.get("Accept-Encoding"), &order);
            for enc in accepted {
                let Some((_, suffix)) = self.precompressed.iter().find(|(e, _)| *e == enc) else {
                    continue;
                };
                let candidate = format!("{filename}{suffix}");
                if let Some(m) = fs::metadata(&candidate).ok().filter(|m| !m.is_dir()) {
                    body_path = candidate;
                    meta = m;
                    ctx.resp.headers.set("Content-Encoding", &enc);
                    break;
                }
            }
        }
        // A body sent as it is goes from memory when small, else by sendfile from the open
        // file; one an encoder reads is worth keeping up to a larger size.
        let cache_max = if ctx.encoders.is_empty() {
            IN_MEMORY_LIMIT
        } else {
            CACHED_FILE_MAX
        };
        let content = match open_body(&body_path, &meta, cache_max) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return error(403),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.not_found(),
            Err(_) => return error(500),
        };
        let tag = etag(&meta);
        ctx.resp.headers.set("ETag", &tag);
        if ctx.resp.headers.get("Content-Type").is_empty() {
            let ext = Path::new(&filename)
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default();
            match type_by_extension(&ext) {
                Some(t) => ctx.resp.headers.set("Content-Type", t),
                None => ctx.resp.headers.set_raw("Content-Type".into(), Vec::new()),
            }
        }
        let mut override_status = ctx.error.as_ref().map(|e| e.status);
        if let Some(s) = &self.status {
            match replace_all(s, &*ctx).parse::<u16>() {
                Ok(n) => override_status = Some(n),
                Err(e) => {
                    return Served::Error(HandlerError {
                        status: 500,
                        message: e.to_string(),
                    })
                }
            }
        }
        serve_content(ctx, mtime(&meta), &tag, content, override_status);
        Served::Responded
    }
}

fn stat_error(e: &std::io::Error, filename: &str, fsrv: &FileServer) -> Served {
    use std::io::ErrorKind::{NotADirectory, NotFound, PermissionDenied};
    match e.kind() {
        NotFound | NotADirectory => fsrv.not_found(),
        PermissionDenied => {
            // Go maps EACCES on a path through a regular file to "not found" too.
            let through_file = Path::new(filename)
                .ancestors()
                .skip(1)
                .any(|a| fs::metadata(a).is_ok_and(|m| !m.is_dir()));
            if through_file {
                fsrv.not_found()
            } else {
                error(403)
            }
        }
        _ => error(500),
    }
}

/// Go's `http.Redirect` with 308 for a path (keeping the request's query).
pub(super) fn redirect(ctx: &mut Ctx<'_, '_>, to: &str, query: &str) -> Served {
    let mut to = to;
    while to.starts_with("//") {
        to = &to[1..];
    }
    let trailing = to.ends_with('/');
    let mut url = clean(to);
    if trailing && !url.ends_with('/') {
        url.push('/');
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    let had_ct = ctx.resp.headers.has("Content-Type");
    ctx.resp
        .headers
        .set("Location", &hex_escape_non_ascii(&url));
    let get_or_head = ctx.method == "GET" || ctx.method == "HEAD";
    if !had_ct && get_or_head {
        ctx.resp
            .headers
            .set("Content-Type", "text/html; charset=utf-8");
    }
    ctx.write_header(308);
    if !had_ct && ctx.method == "GET" {
        ctx.resp.body = format!(
            "<a href=\"{}\">Permanent Redirect</a>.\n\n",
            html_escape(&url)
        )
        .into_bytes();
    }
    Served::Responded
}

fn hex_escape_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b >= 0x80 {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Go's `http.ServeContent` for a fully read file.
fn serve_content(
    ctx: &mut Ctx<'_, '_>,
    modtime: u64,
    etag: &str,
    content: FileBody,
    override_status: Option<u16>,
) {
    let write = |ctx: &mut Ctx<'_, '_>, status: u16| {
        ctx.write_header(override_status.unwrap_or(status));
    };
    if modtime != 0 {
        ctx.resp.headers.set("Last-Modified", &http_date(modtime));
    }
    let get_or_head = ctx.method == "GET" || ctx.method == "HEAD";
    let req = |name: &str| ctx.headers.get(name).to_owned();
    let mut cond = if_match(&req("If-Match"), etag);
    if cond == Cond::None {
        let ius = req("If-Unmodified-Since");
        if let (false, Some(t)) = (ius.is_empty() || modtime == 0, parse_http_time(&ius)) {
            cond = if modtime <= t {
                Cond::True
            } else {
                Cond::False
            };
        }
    }
    if cond == Cond::False {
        write(ctx, 412);
        return;
    }
    let not_modified = |ctx: &mut Ctx<'_, '_>| {
        ctx.resp.headers.del("Content-Type");
        ctx.resp.headers.del("Content-Length");
        ctx.resp.headers.del("Content-Encoding");
        if ctx.resp.headers.has("Etag") {
            ctx.resp.headers.del("Last-Modified");
        }
        write(ctx, 304);
    };
    match if_none_match(&req("If-None-Match"), etag) {
        Cond::False => {
            if get_or_head {
                not_modified(ctx);
            } else {
                write(ctx, 412);
            }
            return;
        }
        Cond::None => {
            let ims = req("If-Modified-Since");
            if get_or_head && !ims.is_empty() && modtime != 0 {
                if let Some(t) = parse_http_time(&ims) {
                    if modtime <= t {
                        not_modified(ctx);
                        return;
                    }
                }
            }
        }
        Cond::True => {}
    }
    let mut range = req("Range");
    let if_range = req("If-Range");
    if !range.is_empty() && get_or_head && !if_range.is_empty() {
        let ok = match scan_etag(&if_range) {
            Some((tag, _)) => strong_match(tag, ctx.resp.headers.get("Etag")),
            None => parse_http_time(&if_range) == Some(modtime),
        };
        if !ok {
            range.clear();
        }
    }
    let size = content.len;
    let mut ranges = if range.is_empty() {
        Vec::new()
    } else {
        match parse_ranges(&range, size) {
            Ok(r) => r,
            Err(RangeError::NoOverlap) if size == 0 => Vec::new(),
            Err(e) => {
                if matches!(e, RangeError::NoOverlap) {
                    ctx.resp
                        .headers
                        .set("Content-Range", &format!("bytes */{size}"));
                }
                for h in ["Cache-Control", "Content-Encoding", "Etag", "Last-Modified"] {
                    ctx.resp.headers.del(h);
                }
                let text = match e {
                    RangeError::NoOverlap => "invalid range: failed to overlap",
                    RangeError::Invalid => "invalid range",
                };
                ctx.resp.headers.del("Content-Length");
                ctx.resp
                    .headers
                    .set("Content-Type", "text/plain; charset=utf-8");
                ctx.resp.headers.set("X-Content-Type-Options", "nosniff");
                write(ctx, 416);
                ctx.resp.body = format!("{text}\n").into_bytes();
                return;
            }
        }
    };
    if ranges.iter().map(|r| r.length).sum::<u64>() > size {
        ranges.clear();
    }
    let mut status = 200;
    let mut part = content.clone();
    let mut body = Vec::new();
    match ranges.as_slice() {
        [] => {}
        [r] => {
            status = 206;
            ctx.resp.headers.set(
                "Content-Range",
                &format!("bytes {}-{}/{size}", r.start, r.start + r.length - 1),
            );
            part.offset = r.start;
            part.len = r.length;
        }
        many => {
            status = 206;
            let ctype = ctx.resp.headers.get("Content-Type").to_owned();
            let boundary = random_boundary();
            for (i, r) in many.iter().enumerate() {
                if i > 0 {
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                body.extend_from_slice(
                    format!(
                        "Content-Range: bytes {}-{}/{size}\r\n",
                        r.start,
                        r.start + r.length - 1
                    )
                    .as_bytes(),
                );
                if !ctype.is_empty() {
                    body.extend_from_slice(format!("Content-Type: {ctype}\r\n").as_bytes());
                }
                body.extend_from_slice(b"\r\n");
                let mut range = FileBody {
                    offset: r.start,
                    len: r.length,
                    ..content.clone()
                };
                if range.read_chunk(r.length as usize, &mut body).is_err() {
                    write(ctx, 500);
                    return;
                }
            }
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            ctx.resp.headers.set(
                "Content-Type",
                &format!("multipart/byteranges; boundary={boundary}"),
            );
            part.len = 0;
        }
    }
    let length = body.len() as u64 + part.len;
    ctx.resp.headers.set("Accept-Ranges", "bytes");
    ctx.resp.headers.set("Content-Length", &length.to_string());
    write(ctx, status);
    if ctx.method == "HEAD" {
        return;
    }
    ctx.resp.body = body;
    ctx.resp.file = (part.len > 0).then_some(part);
    // An encoder around this handler reads the file itself (or finds it compressed).
    if ctx.encoders.is_empty() || !ctx.intercepts.is_empty() {
        read_small_file(&mut ctx.resp);
    }
}

/// A multipart boundary shaped like Go's (30 random bytes in hex).
fn random_boundary() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..4u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(i);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(60);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_safely() {
        assert_eq!(sanitized_join("/srv", "/a/../b"), "/srv/b");
        assert_eq!(sanitized_join("/srv", "/../etc/passwd"), "/srv/etc/passwd");
        assert_eq!(sanitized_join("/srv", "/sub/"), "/srv/sub/");
        assert_eq!(sanitized_join("/srv", "/"), "/srv");
        assert_eq!(sanitized_join("", "/x"), "x");
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_http_time("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(
            parse_http_time("Tuesday, 29-Feb-00 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(
            parse_http_time("Tue Feb 29 00:00:00 2000"),
            Some(951_782_400)
        );
        assert_eq!(parse_http_time("yesterday"), None);
    }

    #[test]
    fn etags_and_ranges() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(1_700_000_000), "s44we8");
        assert!(if_none_match("\"a\", W/\"b\"", "\"b\"") == Cond::False);
        assert!(if_match("\"a\"", "\"b\"") == Cond::False);
        let r = |s: &str| parse_ranges(s, 100).ok();
        assert_eq!(
            r("bytes=0-9"),
            Some(vec![Range {
                start: 0,
                length: 10
            }])
        );
        assert_eq!(
            r("bytes=-10"),
            Some(vec![Range {
                start: 90,
                length: 10
            }])
        );
        assert_eq!(
            r("bytes=95-200"),
            Some(vec![Range {
                start: 95,
                length: 5
            }])
        );
        assert!(matches!(
            parse_ranges("bytes=200-", 100),
            Err(RangeError::NoOverlap)
        ));
        assert!(matches!(
            parse_ranges("bytes=5-1", 100),
            Err(RangeError::Invalid)
        ));
    }

    #[test]
    fn encodings() {
        let order = vec!["zstd".to_owned(), "br".to_owned(), "gzip".to_owned()];
        assert_eq!(
            accepted_encodings("gzip, br, zstd", &order),
            ["zstd", "br", "gzip"]
        );
        assert_eq!(
            accepted_encodings("gzip;q=1, br;q=0.5", &order),
            ["gzip", "br"]
        );
        assert!(accepted_encodings("gzip;q=0", &order).is_empty());
    }
}
