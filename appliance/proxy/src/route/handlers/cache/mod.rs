//! `http.handlers.cache` (caddyserver/cache-handler, Souin's Caddyfile syntax adapted by the
//! front end): a shared RFC 9111 cache in front of the handlers after it.
//!
//! Flow: the handler runs where the route chain reaches it. A fresh stored variant of the
//! request's key answers at once (`Cache-Status: Souin; hit; ...`). Otherwise the request
//! joins the key's flight (`coalesce`): the first one leads and the chain continues to the
//! next handlers (usually `reverse_proxy`, which suspends the request for its round trip and
//! replays the routes with the answer; on that replay this handler finds its own flight and
//! knows it is past the upstream); the others are parked and look again shortly. When the
//! routes are done, `settle` (called once per run by `exec::serve`) decides on the response:
//! storable ones are stored at once when whole, or captured while the worker relays an
//! upstream body (`Capture`, fed by the worker) and stored when it ends.
//!
//! Stale entries with validators are revalidated by one request with a conditional request
//! upstream (a 304 refreshes the entry and answers from it); meanwhile, within
//! `stale-while-revalidate` (or the `stale` option), other requests get the stale entry. A
//! stale entry also stands in for an upstream error within `stale-if-error` (or `stale`).
//!
//! Keys carry the deployment and the experiment arm (`store::Settings`), so a new deployment
//! or arm never reads another's entries, and old deployments' entries are evicted first.

pub mod coalesce;
pub mod freshness;
pub mod key;
pub mod status;
pub mod store;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};

use super::super::ctx::Ctx;
use super::super::exec::{Flow, Outcome};
use super::super::{duration, err, str_list, Result};
use super::reverse_proxy::Call;
use crate::http1::{HeaderMap, Response};
use coalesce::{Join, Mode, Owner};
use freshness::Directives;
use key::{Key, KeyRules};
use store::Entry;

/// The `Call::index` of a parked request: the worker waits out the delay and replays the
/// routes without going upstream.
pub const PARKED: usize = usize::MAX;

/// Souin's default TTL when neither the response nor `ttl` gives one.
const DEFAULT_TTL: Duration = Duration::from_secs(120);
/// Souin's default backend timeout, after which a flight counts as abandoned.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Cache {
    name: String,
    verbs: Vec<String>,
    additional_statuses: Vec<u16>,
    ttl: Duration,
    stale: Duration,
    default_cache_control: String,
    max_body: usize,
    exclude: Option<Regex>,
    keys: KeyRules,
    coalescing: bool,
    lock_timeout: Duration,
}

fn souin_duration(v: Option<&Value>, what: &str) -> Result<Duration> {
    match v {
        None | Some(Value::Null) => Ok(Duration::ZERO),
        Some(v) => duration(v, what),
    }
}

/// The storages the plugin can name; the engine has none of them but its memory.
const STORAGES: [&str; 8] = [
    "badger", "etcd", "nats", "nuts", "olric", "otter", "redis", "simplefs",
];

thread_local! {
    /// The config's `cache` app while its servers compile (`with_app`).
    static APP: RefCell<Option<Map<String, Value>>> = const { RefCell::new(None) };
}

/// Resets `APP` however the compilation ends.
struct AppScope;

impl Drop for AppScope {
    fn drop(&mut self) {
        APP.with(|a| a.borrow_mut().take());
    }
}

/// Runs `compile` (the compilation of a config's servers) with the config's `cache` app
/// (`apps.cache`, which the plugin's `cache` global option makes) in reach of every
/// `cache` handler it compiles: the plugin's handlers read the app at Provision.
pub fn with_app<R>(app: Option<&Value>, compile: impl FnOnce() -> Result<R>) -> Result<R> {
    let app = match app {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => {
            return err("loading cache app module: decoding module config: expected a JSON object")
        }
    };
    APP.with(|a| *a.borrow_mut() = app);
    let _scope = AppScope;
    compile()
}

fn is_zero_duration(v: Option<&Value>) -> bool {
    souin_duration(v, "").is_ok_and(|d| d.is_zero())
}

/// Go's zero value of a JSON value as the plugin tests it: false, 0, "", no elements, or
/// an object whose fields all are (a `Key` with no option set).
fn is_zero(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => !b,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.values().all(|v| is_zero(Some(v))),
    }
}

/// The handler's DefaultCache completed from the `cache` app, as cache-handler's `FromApp`
/// does it (for the fields the engine reads): the allowed verbs and extra statuses of both
/// add up; `ttl`, `stale`, `timeout.backend`, `default_cache_control`,
/// `max_cacheable_body_bytes`, `cache_name`, `regex.exclude` and a `key` with no option set
/// take the app's; the storages are the app's when the handler names none. `cache_keys` and
/// `disable_coalescing` stay the handler's alone, as in the plugin.
fn with_app_defaults(dc: &Map<String, Value>, app: &Map<String, Value>) -> Map<String, Value> {
    let mut out = dc.clone();
    for list in ["allowed_http_verbs", "allowed_additional_status_codes"] {
        let both: Vec<Value> = [dc.get(list), app.get(list)]
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .cloned()
            .collect();
        out.insert(list.to_owned(), Value::Array(both));
    }
    let mut inherit = |k: &str, unset: bool| {
        if let Some(v) = app.get(k).filter(|_| unset) {
            out.insert(k.to_owned(), v.clone());
        }
    };
    inherit("ttl", is_zero_duration(dc.get("ttl")));
    inherit("stale", is_zero_duration(dc.get("stale")));
    for k in [
        "default_cache_control",
        "max_cacheable_body_bytes",
        "cache_name",
        "key",
    ] {
        inherit(k, is_zero(dc.get(k)));
    }
    if !STORAGES
        .iter()
        .any(|s| dc.get(*s).and_then(|p| p.get("found")) == Some(&Value::Bool(true)))
    {
        for k in STORAGES.iter().chain(&["distributed"]) {
            inherit(k, true);
        }
    }
    let mut nested = |k: &str, field: &str, unset: fn(Option<&Value>) -> bool| {
        let own = dc.get(k).and_then(|o| o.get(field));
        if let Some(v) = app.get(k).and_then(|o| o.get(field)).filter(|_| unset(own)) {
            let mut obj = dc
                .get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            obj.insert(field.to_owned(), v.clone());
            out.insert(k.to_owned(), Value::Object(obj));
        }
    };
    nested("timeout", "backend", is_zero_duration);
    nested("regex", "exclude", is_zero);
    out
}

impl Cache {
    pub fn compile(m: &Map<String, Value>) -> Result<Cache> {
        let empty = Map::new();
        let config = m
            .get("Configuration")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let own = config
            .get("DefaultCache")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let merged = APP.with(|a| a.borrow().as_ref().map(|app| with_app_defaults(own, app)));
        let dc = merged.as_ref().unwrap_or(own);
        // The handler's own fields (JSON-only configs) apply where the Caddyfile's
        // DefaultCache leaves a zero value, as the plugin's Provision does.
        let pick = |k: &str| {
            let own = dc
                .get(k)
                .filter(|v| !matches!(v, Value::String(s) if s == "0s"));
            own.or_else(|| m.get(k))
        };
        // otter is the plugin's in-memory store, which the engine's stands in for
        for storage in STORAGES.into_iter().filter(|s| *s != "otter") {
            let found = dc
                .get(storage)
                .and_then(|s| s.get("found"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if found {
                return err(format!(
                    "cache: the '{storage}' storage is not supported by the engine (in memory only)"
                ));
            }
        }
        let mut verbs = str_list(dc.get("allowed_http_verbs"), "allowed_http_verbs")?;
        if verbs.is_empty() {
            verbs = vec!["GET".to_owned(), "HEAD".to_owned()];
        }
        let additional_statuses = dc
            .get("allowed_additional_status_codes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_u64().and_then(|n| u16::try_from(n).ok()))
            .collect();
        let ttl = souin_duration(pick("ttl"), "ttl")?;
        let exclude = match dc
            .get("regex")
            .and_then(|r| r.get("exclude"))
            .and_then(Value::as_str)
        {
            Some(p) if !p.is_empty() => Some(
                Regex::new(p).or_else(|e| err(format!("cache: invalid exclude regexp: {e}")))?,
            ),
            _ => None,
        };
        let backend = souin_duration(
            dc.get("timeout").and_then(|t| t.get("backend")),
            "timeout.backend",
        )?;
        Ok(Cache {
            name: dc
                .get("cache_name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("Souin")
                .to_owned(),
            verbs,
            additional_statuses,
            ttl: if ttl.is_zero() { DEFAULT_TTL } else { ttl },
            stale: souin_duration(pick("stale"), "stale")?,
            default_cache_control: dc
                .get("default_cache_control")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            max_body: dc
                .get("max_cacheable_body_bytes")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize,
            exclude,
            keys: KeyRules::compile(dc.get("key"), config.get("cache_keys"))?,
            coalescing: !dc
                .get("disable_coalescing")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            lock_timeout: if backend.is_zero() {
                DEFAULT_LOCK_TIMEOUT
            } else {
                backend
            },
        })
    }

    fn bypass(&self, ctx: &mut Ctx<'_, '_>, detail: &str) -> Flow {
        ctx.resp
            .headers
            .set("Cache-Status", &status::bypass(&self.name, detail));
        Flow::Next
    }

    /// The flight table's key: shared per key, or per request without coalescing.
    fn flight_key(&self, key: &Key, owner: Owner) -> String {
        if self.coalescing {
            key.primary.clone()
        } else {
            format!("{}\u{0}{owner:?}", key.primary)
        }
    }

    pub fn run<'p>(&'p self, ctx: &mut Ctx<'p, '_>) -> Flow {
        let upgrade = ctx.headers.get("Upgrade").eq_ignore_ascii_case("websocket");
        let excluded = self
            .exclude
            .as_ref()
            .is_some_and(|re| re.is_match(&ctx.uri.request_uri()));
        if upgrade || excluded || ctx.headers.get("Accept") == "text/event-stream" {
            return self.bypass(ctx, "EXCLUDED-REQUEST-URI");
        }
        if !self.verbs.contains(&ctx.method) {
            return self.bypass(ctx, "UNSUPPORTED-METHOD");
        }
        let settings = store::settings();
        let key = key::compute(&self.keys, &settings.deploy, &settings.experiment, ctx);
        let owner: Owner = (ctx.remote, ctx.local);
        let flight = self.flight_key(&key, owner);
        let request_cc = freshness::parse(ctx.headers.raw("Cache-Control"));
        let mut pending = Pending {
            cache: self,
            key,
            owner,
            flight,
            request_cc,
            leads: false,
            conditional: false,
            mode: Mode::Fetch,
            capture: None,
        };
        if ctx.proxy.done.len() > ctx.proxy.seq {
            // A replay after the handlers behind us went upstream: find our own flight.
            if let Some(mode) = coalesce::mine(&pending.flight, owner) {
                if let Mode::Stale(e) = &mode {
                    pending.conditional = add_conditionals(e, &mut ctx.headers);
                }
                pending.leads = true;
                pending.mode = mode;
            }
            ctx.cache = Some(pending);
            return Flow::Next;
        }
        let found = if pending.request_cc.no_cache {
            None
        } else {
            store::lookup(&pending.key, &ctx.headers)
        };
        if let Some(e) = &found {
            if e.fresh() {
                self.serve(e, ctx, false);
                return Flow::Responded;
            }
            let swr = e.stale_while_revalidate;
            if e.within(swr) && coalesce::busy(&pending.flight, owner, self.lock_timeout) {
                self.serve(e, ctx, true);
                return Flow::Responded;
            }
            if store::expired(e) {
                store::remove(e);
            }
        }
        if pending.request_cc.only_if_cached {
            ctx.write_header(504);
            return Flow::Responded;
        }
        let mode = match found {
            Some(e) if !store::expired(&e) => Mode::Stale(e),
            _ => Mode::Fetch,
        };
        match coalesce::join(&pending.flight, owner, mode.clone(), self.lock_timeout) {
            Join::Lead => {
                if let Mode::Stale(e) = &mode {
                    pending.conditional = add_conditionals(e, &mut ctx.headers);
                }
                pending.leads = true;
                pending.mode = mode;
            }
            Join::Wait(delay) => {
                ctx.proxy.call = Some(Call {
                    index: PARKED,
                    delay,
                    target: None,
                });
                return Flow::Proxy;
            }
            Join::Pass => {}
        }
        ctx.cache = Some(pending);
        Flow::Next
    }

    /// Answers from `e` (a 304 when the client's own validators match it).
    fn serve(&self, e: &Entry, ctx: &mut Ctx<'_, '_>, stale: bool) {
        let age = e.age();
        let ttl = e.lifetime.as_secs() as i64 - age as i64;
        let value = status::hit(&self.name, ttl, &e.key.shown, stale);
        answer_from(e, age, value, ctx);
    }
}

/// Writes entry `e` as the response, over whatever the routes had set.
fn answer_from(e: &Entry, age: u64, cache_status: String, ctx: &mut Ctx<'_, '_>) {
    for (k, vs) in e.headers.iter() {
        ctx.resp.headers.set_raw(k.clone(), vs.clone());
    }
    ctx.resp.headers.set("Age", &age.to_string());
    ctx.resp.headers.set("Cache-Status", &cache_status);
    let inm = ctx.headers.get("If-None-Match");
    let not_modified = !inm.is_empty()
        && e.etag.as_deref().is_some_and(|tag| {
            inm.trim() == "*"
                || inm
                    .split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == tag.trim_start_matches("W/"))
        });
    ctx.resp.file = None;
    if not_modified {
        ctx.resp.headers.del("Content-Length");
        ctx.resp.body.clear();
        ctx.write_header(304);
    } else {
        ctx.resp.body = e.body.clone();
        ctx.write_header(e.status);
    }
}

/// Makes the upstream request conditional on the stale entry, unless the client already
/// sent its own validators; true when it added them.
fn add_conditionals(e: &Entry, headers: &mut HeaderMap) -> bool {
    if !e.has_validators() || headers.has("If-None-Match") || headers.has("If-Modified-Since") {
        return false;
    }
    if let Some(tag) = &e.etag {
        headers.set("If-None-Match", tag);
    }
    if let Some(lm) = &e.last_modified {
        headers.set("If-Modified-Since", lm);
    }
    true
}

/// A request that went past the cache, waiting for its response.
pub struct Pending<'p> {
    cache: &'p Cache,
    key: Key,
    owner: Owner,
    flight: String,
    request_cc: Directives,
    /// It owns the key's flight and must release it.
    leads: bool,
    /// The validators on the request are the cache's, not the client's.
    conditional: bool,
    mode: Mode,
    capture: Option<Capture>,
}

impl std::fmt::Debug for Pending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("key", &self.key).finish()
    }
}

impl Pending<'_> {
    fn release(&self, stored: bool) {
        if self.leads {
            coalesce::release(&self.flight, self.owner, stored);
        }
    }
}

/// Decides on the response once the routes have run (`exec::serve`): store it, start
/// capturing a relayed body, answer from a revalidated or stale entry, or let it pass.
pub fn settle(ctx: &mut Ctx<'_, '_>, outcome: Outcome) {
    let Some(mut p) = ctx.cache.take() else {
        return;
    };
    match outcome {
        // Still waiting for the upstream: the flight stays ours until the replay settles.
        Outcome::Proxy => return,
        Outcome::Abort => return p.release(false),
        Outcome::Respond => {}
    }
    let c = p.cache;
    let name = c.name.as_str();
    let status_code = ctx.resp.status;
    if p.conditional {
        // The client asked unconditionally: it gets the whole entry, never our 304.
        ctx.headers.del("If-None-Match");
        ctx.headers.del("If-Modified-Since");
    }
    if let Mode::Stale(e) = &p.mode {
        let e = Arc::clone(e);
        if ctx.error.is_some() || status_code >= 500 {
            if e.within(e.stale_if_error) {
                let upstream = ctx.error.as_ref().map_or(status_code, |er| er.status);
                let ttl = e.lifetime.as_secs() as i64 - e.age() as i64;
                let value = status::stale_on_error(name, ttl, &e.key.shown, upstream);
                replace_response(ctx, &e, e.age(), value);
            }
            return p.release(false);
        }
        if status_code == 304 && e.has_validators() {
            let update = ctx.resp.headers.clone();
            let now = unix_now();
            let response_cc = freshness::parse(e.headers.raw("Cache-Control"));
            let lifetime = freshness::lifetime(&response_cc, &update, now, c.ttl);
            let refreshed = e.refreshed(&update, lifetime);
            let value = status::revalidated(name, &p.key.shown, 304);
            replace_response(ctx, &refreshed, refreshed.age(), value);
            let stored = store::insert(refreshed);
            return p.release(stored);
        }
    }
    if ctx.error.is_some() {
        return p.release(false);
    }
    if !ctx.resp.headers.has("Cache-Control") && !c.default_cache_control.is_empty() {
        ctx.resp
            .headers
            .set("Cache-Control", &c.default_cache_control);
    }
    let response_cc = freshness::parse(ctx.resp.headers.raw("Cache-Control"));
    let vary = if p.key.disable_vary {
        Some(Vec::new())
    } else {
        key::vary_names(&ctx.resp.headers)
    };
    let authorized = ctx.headers.has("Authorization");
    let shown = p.key.shown.clone();
    let verdict = freshness::storable(
        status_code,
        &c.additional_statuses,
        &p.request_cc,
        &response_cc,
        authorized,
        vary.is_none(),
    )
    .map_err(freshness::NotStored::detail)
    .and_then(|()| {
        let whole = ctx.proxy.relay.is_none();
        if ctx.method == "HEAD" || (whole && ctx.resp.file.is_some()) {
            Err("UPSTREAM-ERROR-OR-EMPTY-RESPONSE")
        } else if whole && !fits(c, ctx.resp.body.len()) {
            Err("UPSTREAM-RESPONSE-TOO-LARGE")
        } else {
            Ok(())
        }
    });
    if let Err(detail) = verdict {
        ctx.resp
            .headers
            .set("Cache-Status", &status::not_stored(name, &shown, detail));
        return p.release(false);
    }
    let vary = vary.unwrap_or_default();
    let vary_values = key::vary_values(&vary, &ctx.headers);
    let now = unix_now();
    let mut headers = ctx.resp.headers.clone();
    for h in ["Cache-Status", "Set-Cookie", "Transfer-Encoding", "Age"] {
        headers.del(h);
    }
    if !headers.has("Date") {
        headers.set("Date", &crate::http1::date::http_date(now));
    }
    let entry = Entry::new(
        p.key.clone(),
        status_code,
        headers,
        freshness::lifetime(&response_cc, &ctx.resp.headers, now, c.ttl),
        // The `stale` option widens both windows (the plugin keeps stale entries that long).
        Duration::from_secs(response_cc.stale_while_revalidate.unwrap_or(0)).max(c.stale),
        Duration::from_secs(response_cc.stale_if_error.unwrap_or(0)).max(c.stale),
        vary,
        vary_values,
        freshness::initial_age(&ctx.resp.headers),
    );
    ctx.resp
        .headers
        .set("Cache-Status", &status::stored(name, &shown));
    if ctx.proxy.relay.is_some() {
        let limit = if c.max_body == 0 {
            usize::MAX
        } else {
            c.max_body
        };
        p.capture = Some(Capture {
            entry: Some(entry),
            body: Vec::new(),
            limit,
            flight: p.leads.then(|| (p.flight.clone(), p.owner)),
        });
        p.leads = false;
        ctx.cache = Some(p);
        return;
    }
    let mut entry = entry;
    entry.body = ctx.resp.body.clone();
    entry
        .headers
        .set("Content-Length", &entry.body.len().to_string());
    let stored = store::insert(entry);
    p.release(stored);
}

fn fits(c: &Cache, len: usize) -> bool {
    (c.max_body == 0 || len <= c.max_body) && store::fits(len)
}

/// Answers from `e` instead of what the routes produced (a relay included).
fn replace_response(ctx: &mut Ctx<'_, '_>, e: &Entry, age: u64, value: String) {
    ctx.proxy.relay = None;
    ctx.error = None;
    ctx.resp = Response::new(200);
    answer_from(e, age, value, ctx);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A client connection went away in the middle of a request: flights it led are released.
pub fn abandon(peer: Option<std::net::SocketAddr>, local: Option<std::net::SocketAddr>) {
    coalesce::abandon((peer, local));
}

/// The capture a settled run left for the worker to feed with the relayed body.
pub fn take_capture(ctx: &mut Ctx<'_, '_>) -> Option<Capture> {
    ctx.cache.take().and_then(|mut p| p.capture.take())
}

/// A response body being relayed from the upstream, copied for the store.
#[derive(Debug)]
pub struct Capture {
    entry: Option<Entry>,
    body: Vec<u8>,
    limit: usize,
    /// The flight to release when the capture ends.
    flight: Option<(String, Owner)>,
}

impl Capture {
    /// Adds relayed body bytes; false once the body is too big to store (the capture is
    /// then useless and should be dropped).
    pub fn feed(&mut self, piece: &[u8]) -> bool {
        if self.body.len() + piece.len() > self.limit || !store::fits(self.body.len() + piece.len())
        {
            return false;
        }
        self.body.extend_from_slice(piece);
        true
    }

    /// The body ended cleanly: store the entry.
    pub fn finish(mut self) {
        let Some(mut entry) = self.entry.take() else {
            return;
        };
        entry.body = std::mem::take(&mut self.body);
        entry
            .headers
            .set("Content-Length", &entry.body.len().to_string());
        let stored = store::insert(entry);
        if let Some((key, owner)) = self.flight.take() {
            coalesce::release(&key, owner, stored);
        }
    }
}

impl Drop for Capture {
    /// A capture dropped unfinished (broken relay, body too big) stores nothing.
    fn drop(&mut self) {
        if let Some((key, owner)) = self.flight.take() {
            coalesce::release(&key, owner, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, ParserConfig, Status};
    use crate::route::exec::serve;
    use crate::route::Program;

    fn program(routes: &str) -> Program {
        let cfg = format!(
            r#"{{"apps":{{"http":{{"servers":{{"s":{{"listen":[":1"],"routes":{routes}}}}}}}}}}}"#
        );
        Program::compile(&cfg).unwrap()
    }

    fn get(p: &Program, req: &str) -> crate::http1::Response {
        let Ok(Status::Complete(head, _)) = parse_request(req.as_bytes(), &ParserConfig::default())
        else {
            panic!("bad request")
        };
        let mut ctx = Ctx::new(&head, None, None);
        assert_eq!(serve(&p.servers[0], &mut ctx), Outcome::Respond);
        ctx.resp
    }

    #[test]
    fn stores_and_hits_whole_responses() {
        let _g = store::test_lock();
        let p = program(
            r#"[{"handle":[{"handler":"cache","Configuration":{"DefaultCache":{"ttl":"10s"}}},
                {"handler":"static_response","body":"{http.request.uri.query.v}","headers":{"Cache-Control":["max-age=30"]}}]}]"#,
        );
        let r = get(&p, "GET /unit-a?v=1 HTTP/1.1\r\nHost: unit\r\n\r\n");
        assert_eq!(r.body, b"1");
        assert_eq!(
            r.headers.get("Cache-Status"),
            "Souin; fwd=uri-miss; stored; key=GET-http-unit-/unit-a?v=1"
        );
        let r = get(&p, "GET /unit-a?v=1 HTTP/1.1\r\nHost: unit\r\n\r\n");
        assert_eq!(r.body, b"1");
        assert_eq!(
            r.headers.get("Cache-Status"),
            "Souin; hit; ttl=30; key=GET-http-unit-/unit-a?v=1; detail=DEFAULT"
        );
        assert_eq!(r.headers.get("Age"), "0");
        let r = get(
            &p,
            "GET /unit-a?v=1 HTTP/1.1\r\nHost: unit\r\nCache-Control: no-cache\r\n\r\n",
        );
        assert!(r.headers.get("Cache-Status").contains("fwd=uri-miss"));
    }

    #[test]
    fn private_and_no_store_are_not_stored() {
        let _g = store::test_lock();
        let p = program(
            r#"[{"handle":[{"handler":"cache"},
                {"handler":"static_response","body":"x","headers":{"Cache-Control":["{http.request.uri.query.cc}"]}}]}]"#,
        );
        for (cc, detail) in [
            ("private", "PRIVATE-OR-AUTHENTICATED-RESPONSE"),
            ("no-store", "NO-STORE-DIRECTIVE"),
        ] {
            let req = format!("GET /unit-b?cc={cc} HTTP/1.1\r\nHost: unit\r\n\r\n");
            for _ in 0..2 {
                let r = get(&p, &req);
                assert!(
                    r.headers.get("Cache-Status").contains(detail),
                    "{}",
                    r.headers.get("Cache-Status")
                );
            }
        }
        let r = get(
            &p,
            "POST /unit-b HTTP/1.1\r\nHost: unit\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(
            r.headers.get("Cache-Status"),
            "Souin; fwd=bypass; detail=UNSUPPORTED-METHOD"
        );
    }

    #[test]
    fn handlers_fall_back_to_the_cache_app() {
        let app: Value = serde_json::from_str(
            r#"{"ttl":"7s","stale":"1m0s","allowed_http_verbs":["POST"],
                "allowed_additional_status_codes":[299],"cache_name":"edge",
                "default_cache_control":"public","key":{"hide":true},
                "timeout":{"backend":"3s","cache":"0s"},"regex":{"exclude":"/admin"},
                "redis":{"found":true,"url":"r:6379"},"distributed":true}"#,
        )
        .unwrap();
        let app = app.as_object().unwrap();
        let own: Value = serde_json::from_str(
            r#"{"ttl":"0s","stale":"2s","allowed_http_verbs":["GET"],"cache_name":"",
                "key":{},"timeout":{"backend":"0s","cache":"0s"},"regex":{"exclude":""},
                "redis":{"found":false},"otter":{"found":true}}"#,
        )
        .unwrap();
        let dc = with_app_defaults(own.as_object().unwrap(), app);
        assert_eq!(dc["ttl"], "7s");
        assert_eq!(dc["stale"], "2s", "a value of the handler's own is kept");
        assert_eq!(dc["allowed_http_verbs"], serde_json::json!(["GET", "POST"]));
        assert_eq!(
            dc["allowed_additional_status_codes"],
            serde_json::json!([299])
        );
        assert_eq!(dc["cache_name"], "edge");
        assert_eq!(dc["default_cache_control"], "public");
        assert_eq!(dc["key"], serde_json::json!({"hide": true}));
        assert_eq!(
            dc["timeout"],
            serde_json::json!({"backend": "3s", "cache": "0s"})
        );
        assert_eq!(dc["regex"]["exclude"], "/admin");
        // the handler names a storage (otter), so none of the app's is taken
        assert_eq!(dc["redis"]["found"], false);
        let none = Map::new();
        let dc = with_app_defaults(&none, app);
        assert_eq!(dc["redis"]["found"], true);
        assert_eq!(dc["distributed"], true);
    }

    #[test]
    fn the_cache_app_reaches_the_handlers_of_a_program() {
        let _g = store::test_lock();
        let cfg = r#"{"apps":{"cache":{"ttl":"9s","default_cache_control":"public, max-age=4",
            "allowed_http_verbs":["GET","POST"],"cache_name":"edge"},
            "http":{"servers":{"s":{"listen":[":1"],"routes":[{"handle":[{"handler":"cache"},
            {"handler":"static_response","body":"{http.request.uri.query.v}"}]}]}}}}}"#;
        let p = Program::compile(cfg).unwrap();
        let r = get(&p, "GET /unit-app?v=1 HTTP/1.1\r\nHost: unit\r\n\r\n");
        assert_eq!(r.headers.get("Cache-Control"), "public, max-age=4");
        assert_eq!(
            r.headers.get("Cache-Status"),
            "edge; fwd=uri-miss; stored; key=GET-http-unit-/unit-app?v=1"
        );
        let req = "POST /unit-app?v=2 HTTP/1.1\r\nHost: unit\r\nContent-Length: 0\r\n\r\n";
        assert!(get(&p, req).headers.get("Cache-Status").contains("stored"));
        let r = get(&p, req);
        assert_eq!(r.body, b"2");
        assert!(r
            .headers
            .get("Cache-Status")
            .starts_with("edge; hit; ttl=4; "));
        let redis = cfg.replace(r#""cache_name":"edge""#, r#""redis":{"found":true}"#);
        let e = Program::compile(&redis).unwrap_err();
        assert!(
            e.to_string().contains("'redis' storage is not supported"),
            "{e}"
        );
        let e = Program::compile(r#"{"apps":{"cache":7}}"#).unwrap_err();
        assert!(e.to_string().contains("loading cache app module"), "{e}");
    }
}
