//! `file_server` `browse`: directory listings, as Caddy's `serveBrowse`.
//!
//! Flow: a directory without an index file is listed when browse is on. A path without its
//! trailing slash is first redirected (308) to have one, unless the last element was
//! rewritten. Entries are read (up to `file_limit`, default 10000), hidden ones skipped;
//! symlinks are followed for their size and to tell directories (`reveal_symlinks` adds the
//! target path). `If-Modified-Since` against the newest modification gives 304. Sorting
//! (`sort` option, then the `sort`/`order` query or cookies; `namedirfirst` ascending by
//! default; a sort or order given in the query is remembered in a cookie), then `offset` and
//! `limit`. The answer by `Accept`: JSON (Caddy's field names and order), plain text
//! (Caddy's tab-aligned table), else HTML: the `template_file` executed by the templates
//! engine with the listing as dot, or zeroserve's own page (Caddy's embedded page is not
//! reproduced). Errors: unreadable directory 403, vanished 404, template failures 500.

use std::fmt::Write;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::rc::Rc;

use serde_json::{Map, Value};

use super::super::ctx::{escape_path, Ctx, HandlerError};
use super::super::matchers::path::clean;
use super::super::{err, str_list, Result};
use super::file_server::{hidden, redirect, sanitized_join, Served};
use super::templates::exec::Fail;
use super::templates::funcs::{format_time, html_escape};
use super::templates::value::{Object, Val};
use super::templates::Env;
use crate::http1::date::http_date;

const DEFAULT_LIMIT: usize = 10_000;

#[derive(Debug)]
pub struct Browse {
    template_file: Option<String>,
    reveal_symlinks: bool,
    sort: Vec<String>,
    file_limit: usize,
}

/// One listed entry (Caddy's `fileInfo`).
#[derive(Debug, Clone)]
struct Item {
    name: String,
    size: i64,
    url: String,
    mtime: (i64, u32),
    mode: u32,
    is_dir: bool,
    is_symlink: bool,
    symlink_path: String,
}

/// Caddy's `browseTemplateContext`.
#[derive(Debug, Default)]
struct Listing {
    name: String,
    path: String,
    can_go_up: bool,
    items: Vec<Item>,
    offset: usize,
    limit: usize,
    num_dirs: i64,
    num_files: i64,
    total: i64,
    total_following: i64,
    sort: String,
    order: String,
    layout: String,
    last_modified: (i64, u32),
}

/// Go's `os.FileMode` bits of an entry from `lstat`.
fn go_mode(meta: &fs::Metadata) -> u32 {
    let ft = meta.file_type();
    let raw = meta.permissions().mode();
    let mut mode = raw & 0o777;
    if ft.is_dir() {
        mode |= 1 << 31;
    }
    if ft.is_symlink() {
        mode |= 1 << 27;
    }
    if ft.is_block_device() {
        mode |= 1 << 26;
    }
    if ft.is_char_device() {
        mode |= (1 << 26) | (1 << 21);
    }
    if ft.is_fifo() {
        mode |= 1 << 25;
    }
    if ft.is_socket() {
        mode |= 1 << 24;
    }
    if raw & 0o4000 != 0 {
        mode |= 1 << 23;
    }
    if raw & 0o2000 != 0 {
        mode |= 1 << 22;
    }
    if raw & 0o1000 != 0 {
        mode |= 1 << 20;
    }
    mode
}

/// Go's `FileMode.String()`.
fn mode_string(mode: u32) -> String {
    let mut s: String = "dalTLDpSugct?"
        .chars()
        .enumerate()
        .filter(|(i, _)| mode & (1 << (31 - i)) != 0)
        .map(|(_, c)| c)
        .collect();
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

fn mtime(meta: &fs::Metadata) -> (i64, u32) {
    (meta.mtime(), meta.mtime_nsec() as u32)
}

/// Go's `time.Time` JSON form in UTC (RFC 3339 with nanoseconds, trailing zeros dropped).
fn rfc3339(t: (i64, u32)) -> String {
    format_time(t.0, t.1, "2006-01-02T15:04:05.999999999Z07:00")
}

/// dustin/go-humanize `IBytes`.
fn ibytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1024f64.ln()).floor();
    let val = ((n as f64) / 1024f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let unit = UNITS[e as usize];
    if val < 10.0 {
        format!("{val:.1} {unit}")
    } else {
        format!("{val:.0} {unit}")
    }
}

/// Go's `encoding/json` string (HTML-safe, as `json.Encoder` writes it).
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Browse {
    pub fn compile(v: &Value) -> Result<Browse> {
        let empty = Map::new();
        let m = match v {
            Value::Object(m) => m,
            _ => &empty,
        };
        let file_limit = m.get("file_limit").and_then(Value::as_i64).unwrap_or(0);
        if file_limit < 0 {
            return err("browse: file_limit must be positive");
        }
        Ok(Browse {
            template_file: m
                .get("template_file")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            reveal_symlinks: m
                .get("reveal_symlinks")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            sort: str_list(m.get("sort"), "sort")?,
            file_limit: if file_limit == 0 {
                DEFAULT_LIMIT
            } else {
                file_limit as usize
            },
        })
    }

    /// Lists the directory `dir` (a file-system path under `root`) for the request.
    pub fn serve(
        &self,
        ctx: &mut Ctx<'_, '_>,
        root: &str,
        dir: &str,
        hide: &[String],
        not_found: impl FnOnce() -> Served,
    ) -> Served {
        let base = |p: &str| {
            let c = clean(p);
            c.rsplit('/').next().unwrap_or("").to_owned()
        };
        let orig = ctx.orig_uri.path.clone();
        if (ctx.uri.path.is_empty() || base(&orig) == base(&ctx.uri.path)) && !orig.ends_with('/') {
            let query = ctx.orig_uri.query.clone();
            return redirect(ctx, &format!("{orig}/"), &query);
        }
        let url_path = clean(&ctx.uri.escaped_path());
        let listing = match self.load(root, dir, &url_path, hide) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Served::Error(HandlerError {
                    status: 403,
                    message: e.to_string(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return not_found(),
            Err(e) => {
                return Served::Error(HandlerError {
                    status: 500,
                    message: e.to_string(),
                })
            }
        };
        let mut listing = listing;
        ctx.resp.headers.add("Vary", "Accept, Accept-Encoding");
        let ims = ctx.headers.get("If-Modified-Since");
        if let Some(since) = super::file_server::parse_http_time(ims) {
            if listing.last_modified.0 <= since as i64 {
                ctx.write_header(304);
                return Served::Responded;
            }
        }
        self.apply_query(ctx, &mut listing);
        let accept = ctx
            .headers
            .values("Accept")
            .map(|v| v.join(","))
            .unwrap_or_default()
            .to_lowercase();
        ctx.resp.headers.set(
            "Last-Modified",
            &http_date(listing.last_modified.0.max(0) as u64),
        );
        let (body, ctype) = if accept.contains("application/json") {
            (json(&listing.items), "application/json; charset=utf-8")
        } else if accept.contains("text/plain") {
            (text_table(&listing.items), "text/plain; charset=utf-8")
        } else {
            let html = match &self.template_file {
                Some(file) => match render_template(ctx, root, file, listing) {
                    Ok(h) => h,
                    Err(e) => return Served::Error(e),
                },
                None => own_page(&listing),
            };
            (html, "text/html; charset=utf-8")
        };
        ctx.resp.headers.set("Content-Type", ctype);
        ctx.write_header(200);
        // Written for HEAD too: Go counts it into the Content-Length, then drops it.
        ctx.resp.body = body.into_bytes();
        Served::Responded
    }

    fn load(
        &self,
        root: &str,
        dir: &str,
        url_path: &str,
        hide: &[String],
    ) -> std::io::Result<Listing> {
        let dir_meta = fs::metadata(dir)?;
        let entries = fs::read_dir(dir)?;
        let name = super::super::ctx::unescape(url_path, false).unwrap_or_default();
        let mut l = Listing {
            name: if name == "/" || name.is_empty() {
                "/".to_owned()
            } else {
                name.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            },
            path: url_path.to_owned(),
            can_go_up: url_path.len() > 1,
            last_modified: mtime(&dir_meta),
            ..Default::default()
        };
        for entry in entries.take(self.file_limit) {
            let Ok(entry) = entry else { continue };
            let mut name = entry.file_name().to_string_lossy().into_owned();
            if hidden(&name, hide) {
                continue;
            }
            let Ok(info) = entry.metadata() else { continue };
            let modified = mtime(&info);
            if modified > l.last_modified {
                l.last_modified = modified;
            }
            let is_symlink = info.file_type().is_symlink();
            let target =
                sanitized_join(root, &format!("{}/{name}", url_path.trim_end_matches('/')));
            let target_meta = if is_symlink {
                fs::metadata(&target).ok()
            } else {
                None
            };
            let is_dir = info.is_dir() || target_meta.as_ref().is_some_and(fs::Metadata::is_dir);
            if is_dir {
                name.push('/');
                l.num_dirs += 1;
            } else {
                l.num_files += 1;
            }
            let mut size = info.len() as i64;
            if !is_dir {
                l.total += size;
            }
            let mut symlink_path = String::new();
            if let Some(t) = &target_meta {
                size = t.len() as i64;
            }
            if is_symlink && self.reveal_symlinks {
                if let Ok(p) = fs::read_link(&target) {
                    symlink_path = p.display().to_string();
                }
            }
            if !is_dir {
                l.total_following += size;
            }
            l.items.push(Item {
                url: format!("./{}", escape_path(&name)),
                name,
                size,
                mtime: modified,
                mode: go_mode(&info),
                is_dir,
                is_symlink,
                symlink_path,
            });
        }
        Ok(l)
    }

    /// Caddy's `browseApplyQueryParams` and `applySortAndLimit`.
    fn apply_query(&self, ctx: &mut Ctx<'_, '_>, l: &mut Listing) {
        let (mut sort, mut order) = (String::new(), String::new());
        for item in self.sort.iter().take(2) {
            match item.as_str() {
                "name" | "namedirfirst" | "size" | "time" => sort = item.clone(),
                "asc" | "desc" => order = item.clone(),
                _ => {}
            }
        }
        let query = super::super::ctx::parse_query(&ctx.uri.query).unwrap_or_else(|p| p);
        let q = |k: &str| {
            query
                .iter()
                .find(|(n, _)| n == k)
                .map_or(String::new(), |(_, v)| v.clone())
        };
        let (layout, limit, offset) = (q("layout"), q("limit"), q("offset"));
        if !q("sort").is_empty() {
            sort = q("sort");
        }
        if !q("order").is_empty() {
            order = q("order");
        }
        l.layout = match layout.as_str() {
            "list" | "grid" | "" => layout,
            _ => "list".to_owned(),
        };
        let cookie = |name: &str| -> Option<String> {
            ctx.headers.values("Cookie")?.iter().find_map(|line| {
                line.split(';').find_map(|p| {
                    let (k, v) = p.trim().split_once('=')?;
                    (k == name).then(|| v.trim_matches('"').to_owned())
                })
            })
        };
        match sort.as_str() {
            "" => sort = cookie("sort").unwrap_or_else(|| "namedirfirst".to_owned()),
            "name" | "namedirfirst" | "size" | "time" => {
                ctx.resp.headers.add(
                    "Set-Cookie",
                    &format!("sort={sort}; HttpOnly; SameSite=Lax"),
                );
            }
            _ => {}
        }
        match order.as_str() {
            "" => order = cookie("order").unwrap_or_else(|| "asc".to_owned()),
            "asc" | "desc" => ctx.resp.headers.add(
                "Set-Cookie",
                &format!("order={order}; HttpOnly; SameSite=Lax"),
            ),
            _ => {}
        }
        if matches!(sort.as_str(), "name" | "namedirfirst" | "size" | "time") {
            if order == "desc" {
                l.items.sort_by(|a, b| order_by(&sort, b, a));
            } else {
                l.items.sort_by(|a, b| order_by(&sort, a, b));
            }
        }
        l.sort = sort;
        l.order = order;
        if let Ok(off) = offset.parse::<usize>() {
            if off > 0 && off <= l.items.len() {
                l.items.drain(..off);
                l.offset = off;
            }
        }
        if let Ok(lim) = limit.parse::<usize>() {
            if lim > 0 && lim <= l.items.len() {
                l.items.truncate(lim);
                l.limit = lim;
            }
        }
    }
}

/// Caddy's sort orders: by name (case-insensitive), directories first, by size
/// (directories first, by name), by modification time.
fn order_by(sort: &str, a: &Item, b: &Item) -> std::cmp::Ordering {
    let key = |i: &Item| i.name.to_lowercase();
    match sort {
        "name" => key(a).cmp(&key(b)),
        "namedirfirst" => b.is_dir.cmp(&a.is_dir).then_with(|| key(a).cmp(&key(b))),
        "size" => {
            let size = |i: &Item| if i.is_dir { -(1i64 << 31) } else { i.size };
            if a.is_dir && b.is_dir {
                key(a).cmp(&key(b))
            } else {
                size(a).cmp(&size(b))
            }
        }
        _ => a.mtime.cmp(&b.mtime),
    }
}

/// `json.NewEncoder(buf).Encode(listing.Items)`.
fn json(items: &[Item]) -> String {
    if items.is_empty() {
        return "null\n".to_owned();
    }
    let rows: Vec<String> = items
        .iter()
        .map(|i| {
            let mut s = format!(
                "{{\"name\":{},\"size\":{},\"url\":{},\"mod_time\":\"{}\",\"mode\":{},\"is_dir\":{},\"is_symlink\":{}",
                json_string(&i.name),
                i.size,
                json_string(&i.url),
                rfc3339(i.mtime),
                i.mode,
                i.is_dir,
                i.is_symlink
            );
            if !i.symlink_path.is_empty() {
                let _ = write!(s, ",\"symlink_path\":{}", json_string(&i.symlink_path));
            }
            s.push('}');
            s
        })
        .collect();
    format!("[{}]\n", rows.join(","))
}

/// Caddy's plain-text listing: Go's `tabwriter` padding each column with tabs (cell width plus
/// one, rounded up to a tab stop of 8).
fn text_table(items: &[Item]) -> String {
    let mut rows = vec![
        ["Name".to_owned(), "Size".to_owned(), "Modified".to_owned()],
        ["----".to_owned(), "----".to_owned(), "--------".to_owned()],
    ];
    for i in items {
        rows.push([
            i.name.clone(),
            ibytes(i.size.max(0) as u64),
            format_time(i.mtime.0, i.mtime.1, "January 2, 2006 at 15:04:05"),
        ]);
    }
    // Columns end at tab stops: each cell's width plus the padding, rounded up to 8.
    let widths: Vec<usize> = (0..2)
        .map(|c| {
            let w = rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0) + 1;
            w.div_ceil(8) * 8
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        for (c, w) in widths.iter().enumerate() {
            let len = r[c].chars().count();
            out.push_str(&r[c]);
            out.push_str(&"\t".repeat((w - len).div_ceil(8)));
        }
        out.push_str(&r[2]);
        out.push('\n');
    }
    out
}

/// zeroserve's own listing page.
fn own_page(l: &Listing) -> String {
    let mut rows = String::new();
    if l.can_go_up {
        rows.push_str("<tr><td><a href=\"..\">../</a></td><td></td><td></td></tr>\n");
    }
    for i in &l.items {
        let _ = writeln!(
            rows,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
            html_escape(&i.url),
            html_escape(&i.name),
            if i.is_dir {
                "-".to_owned()
            } else {
                ibytes(i.size.max(0) as u64)
            },
            format_time(i.mtime.0, i.mtime.1, "2006-01-02 15:04:05")
        );
    }
    let title = html_escape(&l.name);
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n<h1>{}</h1>\n<p>{} directories, {} files</p>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n{rows}</table>\n</body>\n</html>\n",
        html_escape(&l.path),
        l.num_dirs,
        l.num_files
    )
}

fn render_template(
    ctx: &mut Ctx<'_, '_>,
    root: &str,
    file: &str,
    listing: Listing,
) -> std::result::Result<String, HandlerError> {
    let src = fs::read(file).map_err(|e| HandlerError {
        status: 500,
        message: format!("parsing browse template: parsing browse template file: {e}"),
    })?;
    let src = String::from_utf8_lossy(&src).into_owned();
    let name = file.rsplit('/').next().unwrap_or(file).to_owned();
    let listing = Rc::new(listing);
    let out = super::templates::execute(ctx, root, ("{{", "}}"), &name, &src, |inner| {
        Rc::new(BrowseCtx { listing, inner })
    });
    out.map_err(|f| match f {
        Fail::Http(status) => HandlerError {
            status,
            message: crate::http1::status::reason(status)
                .unwrap_or_default()
                .to_owned(),
        },
        Fail::Msg(m) => HandlerError {
            status: 500,
            message: m,
        },
        Fail::NoFunc => HandlerError {
            status: 500,
            message: String::new(),
        },
    })
}

/// The browse template's dot: the listing, then Caddy's `TemplateContext` members.
#[derive(Debug)]
struct BrowseCtx {
    listing: Rc<Listing>,
    inner: Rc<dyn Object>,
}

#[derive(Debug)]
struct ItemObj(Item);

#[derive(Debug)]
struct Crumb(String, String);

impl Object for Crumb {
    fn type_name(&self) -> &'static str {
        "fileserver.crumb"
    }
    fn member(
        &self,
        name: &str,
        _: &[Val],
        _: &mut dyn Env,
    ) -> Option<std::result::Result<Val, String>> {
        match name {
            "Link" => Some(Ok(Val::from(self.0.as_str()))),
            "Text" => Some(Ok(Val::from(self.1.as_str()))),
            _ => None,
        }
    }
    fn display(&self) -> String {
        format!("{{{} {}}}", self.0, self.1)
    }
}

impl Listing {
    fn breadcrumbs(&self) -> Val {
        if self.path.is_empty() {
            return Val::list(Vec::new());
        }
        let p = self.path.strip_suffix('/').unwrap_or(&self.path);
        let parts: Vec<&str> = p.split('/').collect();
        let n = parts.len();
        Val::list(
            parts
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    let text = if i == 0 && part.is_empty() { "/" } else { part };
                    let text = super::super::ctx::unescape(text, false).unwrap_or_default();
                    Val::Obj(Rc::new(Crumb("../".repeat(n - i - 1), text)))
                })
                .collect(),
        )
    }
}

impl Object for BrowseCtx {
    fn type_name(&self) -> &'static str {
        "*fileserver.templateContext"
    }

    fn member(
        &self,
        name: &str,
        args: &[Val],
        env: &mut dyn Env,
    ) -> Option<std::result::Result<Val, String>> {
        let l = &self.listing;
        let v = match name {
            "Name" => Val::from(l.name.as_str()),
            "Path" => Val::from(l.path.as_str()),
            "CanGoUp" => Val::Bool(l.can_go_up),
            "Items" => Val::list(
                l.items
                    .iter()
                    .map(|i| Val::Obj(Rc::new(ItemObj(i.clone()))))
                    .collect(),
            ),
            "Offset" => Val::Int(l.offset as i64),
            "Limit" => Val::Int(l.limit as i64),
            "NumDirs" => Val::Int(l.num_dirs),
            "NumFiles" => Val::Int(l.num_files),
            "TotalFileSize" => Val::Int(l.total),
            "TotalFileSizeFollowingSymlinks" => Val::Int(l.total_following),
            "Sort" => Val::from(l.sort.as_str()),
            "Order" => Val::from(l.order.as_str()),
            "Layout" => Val::from(l.layout.as_str()),
            "Breadcrumbs" => l.breadcrumbs(),
            "HumanTotalFileSize" => Val::from(ibytes(l.total.max(0) as u64)),
            "HumanTotalFileSizeFollowingSymlinks" => {
                Val::from(ibytes(l.total_following.max(0) as u64))
            }
            _ => return self.inner.member(name, args, env),
        };
        Some(Ok(v))
    }

    fn display(&self) -> String {
        self.inner.display()
    }

    fn with_args(&self, args: Val) -> Option<Val> {
        self.inner.with_args(args)
    }
}

impl Object for ItemObj {
    fn type_name(&self) -> &'static str {
        "fileserver.fileInfo"
    }

    fn member(
        &self,
        name: &str,
        args: &[Val],
        _: &mut dyn Env,
    ) -> Option<std::result::Result<Val, String>> {
        let i = &self.0;
        Some(Ok(match name {
            "Name" => Val::from(i.name.as_str()),
            "Size" => Val::Int(i.size),
            "URL" => Val::from(i.url.as_str()),
            "ModTime" => Val::Time(i.mtime.0, i.mtime.1),
            "Mode" => Val::from(mode_string(i.mode)),
            "IsDir" => Val::Bool(i.is_dir),
            "IsSymlink" => Val::Bool(i.is_symlink),
            "SymlinkPath" => Val::from(i.symlink_path.as_str()),
            "HumanSize" => Val::from(ibytes(i.size.max(0) as u64)),
            "HumanModTime" => match args {
                [Val::Str(f)] => Val::from(format_time(i.mtime.0, i.mtime.1, f)),
                _ => return Some(Err("wrong number of args for HumanModTime: want 1".into())),
            },
            "HasExt" => {
                let lower = i.name.to_lowercase();
                Val::Bool(args.iter().any(|e| {
                    e.as_str()
                        .is_some_and(|e| lower.ends_with(&e.to_lowercase()))
                }))
            }
            _ => return None,
        }))
    }

    fn display(&self) -> String {
        format!("{{{} {} {}}}", self.0.name, self.0.size, self.0.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_json() {
        assert_eq!(ibytes(1536), "1.5 KiB");
        assert_eq!(ibytes(4096), "4.0 KiB");
        assert_eq!(json_string("a<b>&\"c"), "\"a\\u003cb\\u003e\\u0026\\\"c\"");
        assert_eq!(rfc3339((0, 120_000_000)), "1970-01-01T00:00:00.12Z");
        assert_eq!(json(&[]), "null\n");
        assert_eq!(mode_string((1 << 31) | 0o755), "drwxr-xr-x");
        assert_eq!(mode_string((1 << 27) | 0o777), "Lrwxrwxrwx");
        assert_eq!(mode_string(0o644), "-rw-r--r--");
    }
}
