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

impl Cache {
    pub fn compile(m: &Map<String, Value>) -> Result<Cache> {
        let empty = Map::new();
        let config = m
            .get("Configuration")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let dc = config
            .get("DefaultCache")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        // The handler's own fields (JSON-only configs) apply where the Caddyfile's
        // DefaultCache leaves a zero value, as the plugin's Provision does.
        let pick = |k: &str| {
            let own = dc
                .get(k)
                .filter(|v| !matches!(v, Value::String(s) if s == "0s"));
            own.or_else(|| m.get(k))
        };
        for storage in [
            "badger", "etcd", "nats", "nuts", "olric", "redis", "simplefs",
        ] {
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
            keys: key::rules_from(config)?,
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
}
