//! `http.handlers.rewrite` (the `rewrite`, `uri` and `method` directives, and `handle_path`'s
//! prefix strip).
//!
//! Flow, in Caddy's order: method; `uri` (path, query and fragment parts built separately, a
//! `?` smuggled in through a placeholder becomes the query unless one was configured);
//! `strip_path_prefix`/`strip_path_suffix` (escape-aware, case-insensitive, on the cleaned
//! escaped path); `uri_substring`; `path_regexp`; `query` ops (rename, set, add, replace,
//! delete, then Go's sorted `Values.Encode`). Errors: bad regexps are compile errors.

use regex::Regex;
use serde_json::{Map, Value};

use super::super::ctx::{escape_path, parse_query, query_escape, unescape, Ctx};
use super::super::matchers::path::clean_path;
use super::super::placeholder::{replace_all, replace_known, Lookup};
use super::super::{err, CompileError, Result};

#[derive(Debug)]
struct Substring {
    find: String,
    replace: String,
    limit: usize,
}

#[derive(Debug)]
struct PathRegexp {
    re: Regex,
    replace: String,
}

#[derive(Debug, Default)]
struct QueryOps {
    rename: Vec<(String, String)>,
    set: Vec<(String, String)>,
    add: Vec<(String, String)>,
    replace: Vec<(String, String, Option<Regex>, String)>,
    delete: Vec<String>,
}

#[derive(Debug)]
pub struct Rewrite {
    method: Option<String>,
    uri: Option<String>,
    strip_prefix: Option<String>,
    strip_suffix: Option<String>,
    substrings: Vec<Substring>,
    regexps: Vec<PathRegexp>,
    query: Option<QueryOps>,
    force_modify_query: bool,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn opt(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(|p| (s(p, "key"), s(p, "val"))).collect())
        .unwrap_or_default()
}

impl Rewrite {
    pub fn compile(m: &Map<String, Value>) -> Result<Rewrite> {
        let substrings = m
            .get("uri_substring")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|r| Substring {
                        find: s(r, "find"),
                        replace: s(r, "replace"),
                        limit: r.get("limit").and_then(Value::as_u64).unwrap_or(0) as usize,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut regexps = Vec::new();
        for (i, r) in m
            .get("path_regexp")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let find = s(r, "find");
            if find.is_empty() {
                return err("path_regexp find cannot be empty");
            }
            let re = super::super::regex(&find)
                .map_err(|e| CompileError(format!("compiling regular expression {i}: {e}")))?;
            regexps.push(PathRegexp {
                re,
                replace: s(r, "replace"),
            });
        }
        let query = match m.get("query") {
            Some(q @ Value::Object(_)) => {
                let mut replace = Vec::new();
                for r in q
                    .get("replace")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let search_re = s(r, "search_regexp");
                    let re = if search_re.is_empty() {
                        None
                    } else {
                        Some(super::super::regex(&search_re).map_err(|e| {
                            CompileError(format!("compiling regular expression {search_re} in query rewrite replace operation: {e}"))
                        })?)
                    };
                    replace.push((s(r, "key"), s(r, "search"), re, s(r, "replace")));
                }
                Some(QueryOps {
                    rename: pairs(q.get("rename")),
                    set: pairs(q.get("set")),
                    add: pairs(q.get("add")),
                    replace,
                    delete: super::super::str_list(q.get("delete"), "delete")?,
                })
            }
            _ => None,
        };
        Ok(Rewrite {
            method: opt(m, "method"),
            uri: opt(m, "uri"),
            strip_prefix: opt(m, "strip_path_prefix"),
            strip_suffix: opt(m, "strip_path_suffix"),
            substrings,
            regexps,
            query,
            force_modify_query: m
                .get("force_modify_query")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    pub fn run(&self, ctx: &mut Ctx<'_, '_>) {
        if let Some(m) = &self.method {
            ctx.method = replace_all(m, &*ctx).to_uppercase();
        }
        if let Some(uri) = &self.uri {
            self.rewrite_uri(uri, ctx);
        }
        if let Some(prefix) = &self.strip_prefix {
            let mut prefix = replace_all(prefix, &*ctx);
            if !prefix.starts_with('/') {
                prefix.insert(0, '/');
            }
            let merge = !prefix.contains("//");
            if change_path(ctx, |p| trim_prefix(&clean_path(p, merge), &prefix)) {
                canonicalize(ctx);
            }
        }
        if let Some(suffix) = &self.strip_suffix {
            let suffix = replace_all(suffix, &*ctx);
            let merge = !suffix.contains("//");
            if change_path(ctx, |p| trim_suffix(&clean_path(p, merge), &suffix)) {
                canonicalize(ctx);
            }
        }
        for sub in &self.substrings {
            if sub.find.is_empty() {
                continue;
            }
            let find = replace_all(&sub.find, &*ctx);
            let with = replace_all(&sub.replace, &*ctx);
            let merge = !sub.find.contains("//");
            let rep = |s: &str| replace_n(s, &find, &with, sub.limit);
            change_path(ctx, |p| rep(&clean_path(p, merge)));
            ctx.uri.query = rep(&ctx.uri.query);
        }
        for r in &self.regexps {
            let with = replace_all(&r.replace, &*ctx);
            change_path(ctx, |p| r.re.replace_all(p, with.as_str()).into_owned());
        }
        if let Some(q) = &self.query {
            q.run(ctx);
        }
    }

    fn rewrite_uri(&self, uri: &str, ctx: &mut Ctx<'_, '_>) {
        let (mut path_start, mut qs_start) = (None, None);
        let (mut path_end, mut qs_end) = (None, None);
        for (i, ch) in uri.char_indices() {
            if ch == '?' && qs_start.is_none() {
                path_end = Some(i);
                qs_start = Some(i + 1);
            } else if ch == '#' {
                // The fragment is never sent to a server; everything after '#' is dropped.
                if qs_start.is_none() {
                    path_end = Some(i);
                } else {
                    qs_end = Some(i);
                }
                break;
            } else if path_start.is_none() && qs_start.is_none() {
                path_start = Some(i);
            }
        }
        let path = path_start.map_or("", |a| &uri[a..path_end.unwrap_or(uri.len())]);
        let mut query = qs_start.map_or(String::new(), |a| {
            uri[a..qs_end.unwrap_or(uri.len())].to_owned()
        });
        let mut new_path = String::new();
        if !path.is_empty() {
            let mut path = path.replace("{http.request.uri.path}", &ctx.uri.escaped_path());
            if path.contains("{http.matchers.file.relative}") {
                if let Some(rel) = ctx.lookup("http.matchers.file.relative") {
                    let escaped = escape_path(&rel);
                    path = path.replace("{http.matchers.file.relative}", &escaped);
                }
            }
            new_path = replace_all(&path, &*ctx);
        }
        if let Some(i) = new_path.find('#') {
            new_path.truncate(i);
        }
        let mut injected = false;
        let mut set_query = qs_start.is_some();
        if let Some((before, after)) = new_path.clone().split_once('?') {
            new_path = before.to_owned();
            if query.is_empty() || self.force_modify_query {
                query = after.replace('{', "%7B").replace('}', "%7D");
                injected = true;
            }
            if self.force_modify_query {
                set_query = true;
            }
        }
        let new_query = if query.is_empty() {
            String::new()
        } else {
            build_query(&query, &*ctx)
        };
        if path_start.is_some() {
            let decoded = unescape(&new_path, false).unwrap_or(new_path);
            ctx.uri.set_path(decoded);
        }
        if set_query || injected {
            ctx.uri.query = new_query;
        }
    }
}

impl QueryOps {
    fn run(&self, ctx: &mut Ctx<'_, '_>) {
        let mut q: Vec<(String, Vec<String>)> = Vec::new();
        for (k, v) in parse_query(&ctx.uri.query).unwrap_or_else(|p| p) {
            match q.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1.push(v),
                None => q.push((k, vec![v])),
            }
        }
        let l = &*ctx;
        for (k, v) in &self.rename {
            let (k, v) = (replace_all(k, l), replace_all(v, l));
            if k.is_empty() || v.is_empty() {
                continue;
            }
            let vals = q.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
            q.retain(|(n, _)| *n != k && *n != v);
            if let Some(vals) = vals {
                q.push((v, vals));
            }
        }
        for (k, v) in &self.set {
            let k = replace_all(k, l);
            if k.is_empty() {
                continue;
            }
            let v = replace_all(v, l);
            q.retain(|(n, _)| *n != k);
            q.push((k, vec![v]));
        }
        for (k, v) in &self.add {
            let k = replace_all(k, l);
            if k.is_empty() {
                continue;
            }
            let v = replace_all(v, l);
            match q.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1.push(v),
                None => q.push((k, vec![v])),
            }
        }
        for (key, search, re, with) in &self.replace {
            let key = replace_all(key, l);
            let search = replace_known(search, l);
            let with = replace_known(with, l);
            for (n, vals) in q.iter_mut() {
                if key != "*" && *n != key {
                    continue;
                }
                for v in vals.iter_mut() {
                    *v = match re {
                        Some(re) => re.replace_all(v, with.as_str()).into_owned(),
                        None => v.replace(&search, &with),
                    };
                }
            }
        }
        for d in &self.delete {
            let d = replace_all(d, l);
            if !d.is_empty() {
                q.retain(|(n, _)| *n != d);
            }
        }
        q.sort_by(|a, b| a.0.cmp(&b.0));
        let encoded: Vec<String> = q
            .iter()
            .flat_map(|(k, vs)| {
                vs.iter()
                    .map(move |v| format!("{}={}", query_escape(k), query_escape(v)))
            })
            .collect();
        ctx.uri.query = encoded.join("&");
    }
}

/// Go's `strings.Replace(s, find, with, n)` with 0 meaning all.
fn replace_n(s: &str, find: &str, with: &str, limit: usize) -> String {
    if limit == 0 {
        s.replace(find, with)
    } else {
        s.replacen(find, with, limit)
    }
}

/// Caddy's `changePath`: applies `f` to the escaped path, and derives the decoded one.
fn change_path(ctx: &mut Ctx<'_, '_>, f: impl Fn(&str) -> String) -> bool {
    let before = ctx.uri.escaped_path().into_owned();
    let raw = f(&before);
    let path = match unescape(&raw, false) {
        Some(p) if !p.is_empty() => p,
        _ => f(&ctx.uri.path),
    };
    let changed = raw != before;
    ctx.uri.path = path;
    ctx.uri.raw_path = Some(raw);
    changed
}

fn canonicalize(ctx: &mut Ctx<'_, '_>) {
    if !ctx.uri.path.starts_with('/') {
        ctx.uri.path.insert(0, '/');
    }
    if let Some(raw) = &mut ctx.uri.raw_path {
        if !raw.is_empty() && !raw.starts_with('/') {
            raw.insert(0, '/');
        }
    }
}

fn decode_at(p: &[u8], i: usize) -> Option<u8> {
    let h = *p.get(i + 1)?;
    let l = *p.get(i + 2)?;
    Some(((h as char).to_digit(16)? * 16 + (l as char).to_digit(16)?) as u8)
}

/// Caddy's `trimPathPrefix`: lock-step, escape-aware, case-insensitive.
fn trim_prefix(escaped: &str, prefix: &str) -> String {
    let (p, x) = (escaped.as_bytes(), prefix.as_bytes());
    let (mut ip, mut ix) = (0, 0);
    while ip < p.len() && ix < x.len() {
        let mut ch = p[ip];
        if ch == b'%' && x[ix] != b'%' && p.len() >= ip + 3 {
            match decode_at(p, ip) {
                Some(c) => ch = c,
                None => return escaped.to_owned(),
            }
            ip += 2;
        }
        if !ch.eq_ignore_ascii_case(&x[ix]) {
            return escaped.to_owned();
        }
        ip += 1;
        ix += 1;
    }
    if ix >= x.len() {
        escaped[ip..].to_owned()
    } else {
        escaped.to_owned()
    }
}

/// Caddy's `trimPathSuffix`.
fn trim_suffix(escaped: &str, suffix: &str) -> String {
    let (p, x) = (escaped.as_bytes(), suffix.as_bytes());
    let (mut ip, mut ix) = (p.len(), x.len());
    while ip > 0 && ix > 0 {
        let mut ch = p[ip - 1];
        let mut step = 1;
        let path_esc = ip >= 3 && p[ip - 3] == b'%';
        let suffix_esc = ix >= 3 && x[ix - 3] == b'%';
        if path_esc && !suffix_esc {
            match decode_at(p, ip - 3) {
                Some(c) => ch = c,
                None => return escaped.to_owned(),
            }
            step = 3;
        }
        if !ch.eq_ignore_ascii_case(&x[ix - 1]) {
            return escaped.to_owned();
        }
        ip -= step;
        ix -= 1;
    }
    if ix == 0 {
        escaped[..ip].to_owned()
    } else {
        escaped.to_owned()
    }
}

/// Caddy's `buildQueryString`: placeholders in keys and values are query-escaped, except an
/// already-escaped `{http.request.uri.query}` in key position.
fn build_query(qs: &str, l: &impl Lookup) -> String {
    struct Escaped<'l, L: Lookup>(&'l L, bool);
    impl<L: Lookup> Lookup for Escaped<'_, L> {
        fn lookup(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
            let v = self.0.lookup(key)?;
            if key == "http.request.uri.query" && self.1 {
                return Some(v);
            }
            Some(std::borrow::Cow::Owned(query_escape(&v)))
        }
    }
    let mut out = String::new();
    let mut rest = qs;
    let mut wrote_val = true;
    while !rest.is_empty() {
        let next_eq = if wrote_val { rest.find('=') } else { None };
        let next_amp = rest.find('&');
        let amp_next = next_amp.is_some_and(|a| next_eq.is_none_or(|e| a < e));
        let end = if amp_next {
            next_amp.unwrap_or(rest.len())
        } else {
            next_eq.unwrap_or(rest.len())
        };
        let comp = replace_all(&rest[..end], &Escaped(l, wrote_val));
        rest = if end < rest.len() {
            &rest[end + 1..]
        } else {
            ""
        };
        if wrote_val {
            if !out.is_empty() && !comp.is_empty() {
                out.push('&');
            }
        } else {
            out.push('=');
        }
        out.push_str(&comp);
        wrote_val = amp_next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_suffix() {
        assert_eq!(trim_prefix("/API/x", "/api"), "/x");
        assert_eq!(trim_prefix("/a%2Fb/c", "/a/b"), "/c");
        assert_eq!(trim_prefix("/apix", "/api/"), "/apix");
        assert_eq!(trim_suffix("/x/index.HTML", ".html"), "/x/index");
        assert_eq!(trim_suffix("/x%2Ehtml", ".html"), "/x");
    }

    #[test]
    fn replace_limit() {
        assert_eq!(replace_n("aaa", "a", "b", 0), "bbb");
        assert_eq!(replace_n("aaa", "a", "b", 2), "bba");
    }
}
