//! `http.handlers.headers` (the `header` and `request_header` directives).
//!
//! Flow: request ops apply at once to the request headers (`Host` goes through `r.Host`, as in
//! Caddy's `ApplyToRequest`). Response ops apply at once to the response header map, unless
//! `deferred` or `require` is set; then they wait until a handler writes the response and run
//! only if `require` matches the status and headers. Within one op set: delete `*`, add, set,
//! delete (with `*` prefix/suffix/substring wildcards), replace (substring or regexp).
//! Performance: names (canonical and lower-cased) and regexps are prepared at compile time;
//! placeholders are expanded per request only where the configured text has a `{`, so literal
//! ops allocate only the values they store. Response ops without placeholders work on the
//! response's header map in place; with them, on a copy, so placeholders read the headers as
//! they were before the ops.

use std::borrow::Cow;

use regex::Regex;
use serde_json::{Map, Value};

use super::super::ctx::Ctx;
use super::super::placeholder::{has_placeholder, replace_known, Lookup};
use super::super::{err, str_list, Result};
use crate::http1::header::canonical_key;
use crate::http1::HeaderMap;

/// Configured text, expanded per request (`ReplaceKnown`) only if it may hold a placeholder.
#[derive(Debug)]
struct Text {
    raw: String,
    template: bool,
}

impl Text {
    fn new(raw: String) -> Text {
        Text {
            template: has_placeholder(&raw),
            raw,
        }
    }

    fn get(&self, l: &impl Lookup) -> Cow<'_, str> {
        if self.template {
            Cow::Owned(replace_known(&self.raw, l))
        } else {
            Cow::Borrowed(&self.raw)
        }
    }
}

/// A configured field name, with its canonical and lower-case forms when it is literal.
#[derive(Debug)]
struct Name {
    text: Text,
    canonical: String,
    lower: String,
    /// What `Header.Del` of the lower-case form looks for.
    del_key: String,
}

impl Name {
    fn new(raw: String) -> Name {
        let text = Text::new(raw);
        let (canonical, lower) = if text.template {
            (String::new(), String::new())
        } else {
            (canonical_key(&text.raw), text.raw.to_lowercase())
        };
        Name {
            text,
            canonical,
            del_key: canonical_key(&lower),
            lower,
        }
    }

    fn canonical(&self, l: &impl Lookup) -> Cow<'_, str> {
        if self.text.template {
            Cow::Owned(canonical_key(&self.text.get(l)))
        } else {
            Cow::Borrowed(&self.canonical)
        }
    }

    fn lower(&self, l: &impl Lookup) -> Cow<'_, str> {
        if self.text.template {
            Cow::Owned(self.text.get(l).to_lowercase())
        } else {
            Cow::Borrowed(&self.lower)
        }
    }
}

#[derive(Debug)]
pub struct Replacement {
    search: Text,
    re: Option<Regex>,
    replace: Text,
}

/// One set of header manipulations.
#[derive(Debug, Default)]
pub struct HeaderOps {
    add: Vec<(Name, Vec<Text>)>,
    set: Vec<(Name, Vec<Text>)>,
    delete: Vec<Name>,
    replace: Vec<(Name, Vec<Replacement>)>,
    /// Some configured text may hold a placeholder.
    templates: bool,
}

/// Caddy's `ResponseMatcher` (`require`).
#[derive(Debug, Default)]
pub struct ResponseMatcher {
    status: Option<Vec<u16>>,
    headers: Vec<(String, Option<Vec<String>>)>,
}

/// Response ops and when to apply them.
#[derive(Debug)]
pub struct RespOps {
    pub ops: HeaderOps,
    pub require: Option<ResponseMatcher>,
    pub deferred: bool,
}

impl RespOps {
    /// Applies the ops to `ctx.resp.headers`, which placeholders in them may read.
    pub fn apply_to_response(&self, ctx: &mut Ctx<'_, '_>) {
        let mut hdr = if self.ops.templates {
            ctx.resp.headers.clone()
        } else {
            std::mem::take(&mut ctx.resp.headers)
        };
        self.ops.apply(&mut hdr, &*ctx);
        ctx.resp.headers = hdr;
    }
}

#[derive(Debug)]
pub struct Headers {
    request: Option<HeaderOps>,
    response: Option<RespOps>,
}

fn header_lists(v: Option<&Value>, what: &str) -> Result<Vec<(Name, Vec<Text>)>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let values = str_list(Some(v), what)?.into_iter().map(Text::new);
                Ok((Name::new(k.clone()), values.collect()))
            })
            .collect(),
        Some(_) => err(format!("{what}: expected an object")),
    }
}

/// Go's `Header.Set` with a canonical key, reusing the field's allocation when it exists.
fn set_field(hdr: &mut HeaderMap, key: &str, value: String) {
    match hdr.0.iter().position(|(k, _)| k == key) {
        Some(i) => {
            let values = &mut hdr.0[i].1;
            values.clear();
            values.push(value);
        }
        None => hdr.0.push((key.to_owned(), vec![value])),
    }
}

/// Go's `Header.Add` with a canonical key.
fn add_field(hdr: &mut HeaderMap, key: &str, value: String) {
    match hdr.0.iter().position(|(k, _)| k == key) {
        Some(i) => hdr.0[i].1.push(value),
        None => hdr.0.push((key.to_owned(), vec![value])),
    }
}

impl HeaderOps {
    fn compile(m: &Map<String, Value>) -> Result<HeaderOps> {
        let mut replace = Vec::new();
        if let Some(Value::Object(r)) = m.get("replace") {
            for (field, reps) in r {
                let Value::Array(reps) = reps else {
                    return err("replace: expected arrays of replacements");
                };
                let mut out = Vec::new();
                for (i, rep) in reps.iter().enumerate() {
                    let s = |k: &str| rep.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    let (search, search_re) = (s("search"), s("search_regexp"));
                    if !search.is_empty() && !search_re.is_empty() {
                        return err(format!("cannot specify both a substring search and a regular expression search for field '{field}'"));
                    }
                    let re = if search_re.is_empty() {
                        None
                    } else {
                        Some(super::super::regex(&search_re).map_err(|e| {
                            super::super::CompileError(format!(
                                "replacement {i} for header field '{field}': {e}"
                            ))
                        })?)
                    };
                    out.push(Replacement {
                        search: Text::new(search),
                        re,
                        replace: Text::new(s("replace")),
                    });
                }
                replace.push((Name::new(field.clone()), out));
            }
        }
        let mut ops = HeaderOps {
            add: header_lists(m.get("add"), "add")?,
            set: header_lists(m.get("set"), "set")?,
            delete: str_list(m.get("delete"), "delete")?
                .into_iter()
                .map(Name::new)
                .collect(),
            replace,
            templates: false,
        };
        let lists = ops.add.iter().chain(&ops.set);
        ops.templates = lists
            .flat_map(|(n, vs)| std::iter::once(&n.text).chain(vs))
            .chain(ops.delete.iter().map(|n| &n.text))
            .chain(ops.replace.iter().flat_map(|(n, reps)| {
                std::iter::once(&n.text).chain(reps.iter().flat_map(|r| [&r.search, &r.replace]))
            }))
            .any(|t| t.template);
        Ok(ops)
    }

    /// Caddy's `HeaderOps.ApplyToRequest`: r.Host (`host`) stands appended under "Host" while
    /// the ops run and takes the last value back; the map's own "Host" values stay as they were.
    pub fn apply_to_request(&self, hdr: &mut HeaderMap, host: &mut String, l: &impl Lookup) {
        let had_host = hdr.raw("Host").map(<[String]>::to_vec);
        hdr.add("Host", host);
        self.apply(hdr, l);
        *host = hdr
            .raw("Host")
            .and_then(|v| v.last())
            .cloned()
            .unwrap_or_default();
        match had_host {
            Some(v) => hdr.set_raw("Host".into(), v),
            None => hdr.del("Host"),
        }
    }

    /// Caddy's `HeaderOps.ApplyTo`.
    pub fn apply(&self, hdr: &mut HeaderMap, l: &impl Lookup) {
        for name in &self.delete {
            if name.text.get(l) == "*" {
                hdr.clear();
            }
        }
        // One growth for the fields the ops may add.
        hdr.0.reserve(self.add.len() + self.set.len());
        for (name, vals) in &self.add {
            let key = name.canonical(l);
            for v in vals {
                add_field(hdr, &key, v.get(l).into_owned());
            }
        }
        for (name, vals) in &self.set {
            let value = match vals.as_slice() {
                [one] => one.get(l).into_owned(),
                many => many.iter().map(|v| v.get(l)).collect::<Vec<_>>().join(","),
            };
            set_field(hdr, &name.canonical(l), value);
        }
        for n in &self.delete {
            let name = n.lower(l);
            if name == "*" {
                continue;
            }
            let (pre, suf) = (name.starts_with('*'), name.ends_with('*') && name.len() > 1);
            if pre || suf {
                let core = name.trim_start_matches('*').trim_end_matches('*');
                hdr.retain(|k| {
                    let k = k.to_lowercase();
                    !match (pre, suf) {
                        (true, true) => k.contains(core),
                        (true, false) => k.ends_with(core),
                        _ => k.starts_with(core),
                    }
                });
            } else if n.text.template {
                hdr.del(&name);
            } else {
                // `Header.Del`'s canonical form of a literal name, made at compile time.
                hdr.retain(|k| k != n.del_key);
            }
        }
        for (field, reps) in &self.replace {
            let field = field.canonical(l);
            for r in reps {
                let search = r.search.get(l);
                let with = r.replace.get(l);
                for (k, vals) in hdr.iter_mut() {
                    if field != "*" && canonical_key(k) != field {
                        continue;
                    }
                    for v in vals.iter_mut() {
                        *v = match &r.re {
                            // Go's expansion syntax (`$1`, `${name}`, longest name) is the regex crate's.
                            Some(re) => re.replace_all(v, with.as_ref()).into_owned(),
                            None => v.replace(search.as_ref(), &with),
                        };
                    }
                }
            }
        }
    }
}

impl ResponseMatcher {
    /// A matcher on Content-Type patterns only (`*` wildcards as in header matchers).
    pub fn content_types(patterns: &[&str]) -> ResponseMatcher {
        ResponseMatcher {
            status: None,
            headers: vec![(
                "Content-Type".to_owned(),
                Some(patterns.iter().map(|p| (*p).to_owned()).collect()),
            )],
        }
    }

    pub fn compile(v: &Value) -> Result<ResponseMatcher> {
        let status = match v.get("status_code") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|c| c.as_u64().map(|c| c as u16).ok_or(()))
                    .collect::<std::result::Result<Vec<u16>, ()>>()
                    .map_err(|_| super::super::CompileError("require: bad status_code".into()))?,
            ),
            Some(_) => return err("require: status_code must be an array"),
        };
        let mut headers = Vec::new();
        if let Some(Value::Object(h)) = v.get("headers") {
            for (k, vals) in h {
                let vals = match vals {
                    Value::Null => None,
                    other => Some(str_list(Some(other), "require headers")?),
                };
                // Go's `Header.Values` canonicalises the name on each call; once is enough.
                headers.push((canonical_key(k), vals));
            }
        }
        Ok(ResponseMatcher { status, headers })
    }

    /// Caddy's `ResponseMatcher.Match`.
    pub fn matches(&self, status: u16, hdr: &HeaderMap) -> bool {
        if let Some(codes) = &self.status {
            if !codes.iter().any(|c| status_matches(status, *c)) {
                return false;
            }
        }
        self.headers.iter().all(|(field, allowed)| {
            let actual = hdr.raw(field);
            match (allowed, actual) {
                (Some(a), Some(_)) if a.is_empty() => true,
                (None, None) => true,
                (Some(a), Some(actual)) => actual.iter().any(|v| {
                    a.iter()
                        .any(|p| super::super::matchers::header::wild_eq(p, v))
                }),
                _ => false,
            }
        })
    }
}

/// Caddy's `StatusCodeMatches`: a configured code below 100 is a class (`2` = 2xx).
pub fn status_matches(actual: u16, configured: u16) -> bool {
    actual == configured
        || (configured < 100 && actual >= configured * 100 && actual < (configured + 1) * 100)
}

impl Headers {
    pub fn compile(m: &Map<String, Value>) -> Result<Headers> {
        let request = match m.get("request") {
            Some(Value::Object(r)) => Some(HeaderOps::compile(r)?),
            _ => None,
        };
        let response = match m.get("response") {
            Some(Value::Object(r)) => Some(RespOps {
                ops: HeaderOps::compile(r)?,
                require: r.get("require").map(ResponseMatcher::compile).transpose()?,
                deferred: r.get("deferred").and_then(Value::as_bool).unwrap_or(false),
            }),
            _ => None,
        };
        Ok(Headers { request, response })
    }

    /// The request ops (`header_up` when embedded in `reverse_proxy`).
    pub fn request_ops(&self) -> Option<&HeaderOps> {
        self.request.as_ref()
    }

    /// The response ops (`header_down` when embedded in `reverse_proxy`).
    pub fn response_ops(&self) -> Option<&RespOps> {
        self.response.as_ref()
    }

    pub fn run<'p>(&'p self, ctx: &mut Ctx<'p, '_>) {
        if let Some(ops) = &self.request {
            let mut hdr = ctx.headers.clone();
            let mut host = ctx.host.clone();
            ops.apply_to_request(&mut hdr, &mut host, &*ctx);
            ctx.host = host;
            ctx.headers = hdr;
        }
        if let Some(r) = &self.response {
            if r.deferred || r.require.is_some() {
                ctx.deferred.push(r);
            } else {
                r.apply_to_response(ctx);
            }
        }
    }
}
