//! `load_balancing` of a `reverse_proxy` handler: Caddy's selection policies
//! (selectionpolicies.go) and the retry decision of its proxy loop (`tryAgain`).
//!
//! The hashing policies use Caddy's highest-random-weight (rendezvous) hashing with
//! xxhash64 over `dial + key`, so a given key lands on the same upstream as under Caddy.
//! The random ones use the same reservoir sampling over a per-thread xorshift generator.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::hosts::{Host, Pool};
use crate::route::ctx::{parse_query, value_string, Ctx};
use crate::route::matchers::{compile_set, Matcher, MatcherSet};
use crate::route::{duration, err, Result};

/// Uniform integer in `0..n` (`n > 0`) from a per-thread xorshift64* generator.
fn rand_below(n: usize) -> usize {
    use std::hash::BuildHasher;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::collections::hash_map::RandomState::new().hash_one(Instant::now()) | 1,
        );
    }
    let r = STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    });
    ((u128::from(r) * n as u128) >> 64) as usize
}

/// A selection policy (`http.reverse_proxy.selection_policies.*`).
#[derive(Debug)]
pub enum Policy {
    Random,
    RandomChoose(usize),
    First,
    RoundRobin(AtomicU32),
    WeightedRoundRobin {
        weights: Vec<u64>,
        total: u64,
        index: AtomicU32,
    },
    LeastConn,
    IpHash,
    ClientIpHash,
    UriHash,
    Query {
        key: String,
        fallback: Box<Policy>,
    },
    Header {
        field: String,
        fallback: Box<Policy>,
    },
    Cookie {
        name: String,
        secret: String,
        max_age: Duration,
        fallback: Box<Policy>,
    },
}

/// The chosen upstream and, for the cookie policy, the `Set-Cookie` value to add to the
/// response.
#[derive(Debug, Clone)]
pub struct Selection {
    pub host: Arc<Host>,
    pub set_cookie: Option<String>,
}

impl Selection {
    fn plain(host: Option<&Arc<Host>>) -> Option<Selection> {
        host.map(|h| Selection {
            host: Arc::clone(h),
            set_cookie: None,
        })
    }
}

fn fallback(m: &Map<String, Value>) -> Result<Box<Policy>> {
    Ok(Box::new(match m.get("fallback") {
        None | Some(Value::Null) => Policy::Random,
        Some(v) => Policy::compile(v).map_err(|e| {
            crate::route::CompileError(format!("loading fallback selection policy: {}", e.0))
        })?,
    }))
}

fn field<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a str> {
    match m.get(key) {
        None => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(_) => err(format!("{key}: expected a string")),
    }
}

impl Policy {
    /// Compiles a `{"policy": NAME, ...}` object with Caddy's provisioning and validation.
    pub fn compile(v: &Value) -> Result<Policy> {
        let Value::Object(m) = v else {
            return err("selection policy: expected a JSON object");
        };
        let Some(name) = m.get("policy").and_then(Value::as_str) else {
            return err("module name not specified with key 'policy'");
        };
        Ok(match name {
            "random" => Policy::Random,
            "random_choose" => {
                let choose = match m.get("choose") {
                    None => 2,
                    Some(c) => match c.as_i64() {
                        Some(0) => 2,
                        Some(n) => n,
                        None => return err("choose: expected an integer"),
                    },
                };
                if choose < 2 {
                    return err("choose must be at least 2");
                }
                Policy::RandomChoose(choose as usize)
            }
            "first" => Policy::First,
            "round_robin" => Policy::RoundRobin(AtomicU32::new(0)),
            "weighted_round_robin" => {
                let raw: Vec<i64> = match m.get("weights") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|w| w.as_i64().ok_or(()))
                        .collect::<std::result::Result<_, _>>()
                        .or_else(|_| err("weights: expected integers"))?,
                    Some(_) => return err("weights: expected an array"),
                };
                let total: i64 = raw.iter().sum();
                if total <= 0 {
                    return err(
                        "weighted_round_robin requires at least one upstream with a positive weight",
                    );
                }
                if raw.iter().any(|w| *w < 0) {
                    return err("weight of an upstream cannot be negative");
                }
                Policy::WeightedRoundRobin {
                    weights: raw.into_iter().map(|w| w as u64).collect(),
                    total: total as u64,
                    index: AtomicU32::new(0),
                }
            }
            "least_conn" => Policy::LeastConn,
            "ip_hash" => Policy::IpHash,
            "client_ip_hash" => Policy::ClientIpHash,
            "uri_hash" => Policy::UriHash,
            "query" => {
                let key = field(m, "key")?;
                if key.is_empty() {
                    return err("query key is required");
                }
                Policy::Query {
                    key: key.to_owned(),
                    fallback: fallback(m)?,
                }
            }
            "header" => {
                let f = field(m, "field")?;
                if f.is_empty() {
                    return err("header field is required");
                }
                Policy::Header {
                    field: f.to_owned(),
                    fallback: fallback(m)?,
                }
            }
            "cookie" => {
                let name = match field(m, "name")? {
                    "" => "lb",
                    n => n,
                };
                Policy::Cookie {
                    name: name.to_owned(),
                    secret: field(m, "secret")?.to_owned(),
                    max_age: m
                        .get("max_age")
                        .map_or(Ok(Duration::ZERO), |v| duration(v, "max_age"))?,
                    fallback: fallback(m)?,
                }
            }
            other => {
                return err(format!(
                    "unknown module: http.reverse_proxy.selection_policies.{other}"
                ))
            }
        })
    }

    /// Picks an available upstream of `pool` for the request in `ctx`.
    pub fn select(&self, pool: &Pool, ctx: &Ctx<'_, '_>) -> Option<Selection> {
        let hosts = &pool.hosts;
        match self {
            Policy::Random => Selection::plain(random_host(hosts)),
            Policy::RandomChoose(k) => {
                let k = (*k).min(hosts.len());
                let mut choices: Vec<&Arc<Host>> = Vec::with_capacity(k);
                let mut available = 0;
                for h in hosts.iter().filter(|h| h.available()) {
                    available += 1;
                    if choices.len() < k {
                        choices.push(h);
                        continue;
                    }
                    let j = rand_below(available);
                    if j < k {
                        choices[j] = h;
                    }
                }
                Selection::plain(least_requests(&choices))
            }
            Policy::First => Selection::plain(hosts.iter().find(|h| h.available())),
            Policy::RoundRobin(robin) => {
                let n = hosts.len() as u32;
                (0..n)
                    .map(|_| {
                        &hosts[(robin.fetch_add(1, Ordering::Relaxed).wrapping_add(1) % n) as usize]
                    })
                    .find(|h| h.available())
                    .and_then(|h| Selection::plain(Some(h)))
            }
            Policy::WeightedRoundRobin {
                weights,
                total,
                index,
            } => {
                if hosts.is_empty() {
                    return None;
                }
                if weights.len() < 2 {
                    // Caddy returns the first upstream whatever its state.
                    return Selection::plain(hosts.first());
                }
                let current =
                    u64::from(index.fetch_add(1, Ordering::Relaxed).wrapping_add(1)) % total;
                let mut sum = 0;
                let mut slot = 0;
                for (i, w) in weights.iter().filter(|w| **w > 0).enumerate() {
                    sum += w;
                    if current < sum {
                        slot = i;
                        break;
                    }
                }
                let positive = weights.iter().filter(|w| **w > 0).count();
                let eligible: Vec<&Arc<Host>> = hosts
                    .iter()
                    .enumerate()
                    .filter(|(i, h)| h.available() && weights.get(*i).is_some_and(|w| *w > 0))
                    .map(|(_, h)| h)
                    .take(positive)
                    .collect();
                if eligible.is_empty() {
                    return None;
                }
                Selection::plain(Some(eligible[slot % eligible.len()]))
            }
            Policy::LeastConn => {
                let mut best = None;
                let mut least = u64::MAX;
                let mut count = 0;
                for h in hosts.iter().filter(|h| h.available()) {
                    let n = h.num_requests();
                    if best.is_none() || n < least {
                        least = n;
                        count = 0;
                    }
                    if n == least {
                        count += 1;
                        if count == 1 || rand_below(count) == 0 {
                            best = Some(h);
                        }
                    }
                }
                Selection::plain(best)
            }
            Policy::IpHash => {
                let ip = ctx.remote.map(|a| a.ip().to_canonical().to_string());
                Selection::plain(host_by_hashing(hosts, ip.as_deref().unwrap_or("")))
            }
            Policy::ClientIpHash => {
                let v = ctx.var("client_ip").map(value_string).unwrap_or_default();
                Selection::plain(host_by_hashing(hosts, split_host(&v)))
            }
            Policy::UriHash => Selection::plain(host_by_hashing(hosts, ctx.orig_target)),
            Policy::Query { key, fallback } => {
                let pairs = parse_query(&ctx.uri.query).unwrap_or_else(|p| p);
                let vals: Vec<&str> = pairs
                    .iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
                    .collect();
                let joined = vals.join(",");
                if joined.is_empty() {
                    return fallback.select(pool, ctx);
                }
                Selection::plain(host_by_hashing(hosts, &joined))
            }
            Policy::Header { field, fallback } => {
                if field == "Host" && !ctx.host.is_empty() {
                    return Selection::plain(host_by_hashing(hosts, &ctx.host));
                }
                match ctx.headers.get(field) {
                    "" => fallback.select(pool, ctx),
                    v => Selection::plain(host_by_hashing(hosts, v)),
                }
            }
            Policy::Cookie {
                name,
                secret,
                max_age,
                fallback,
            } => {
                if let Some(value) = request_cookie(ctx, name) {
                    let sticky = hosts
                        .iter()
                        .filter(|h| h.available())
                        .find(|h| hash_cookie(secret, &h.dial) == value);
                    if sticky.is_some() {
                        return Selection::plain(sticky);
                    }
                }
                let mut sel = fallback.select(pool, ctx)?;
                sel.set_cookie = Some(sticky_cookie(
                    name,
                    &hash_cookie(secret, &sel.host.dial),
                    *max_age,
                    ctx,
                ));
                Some(sel)
            }
        }
    }
}

/// Go's `net.SplitHostPort` host, or the whole string when it has no port.
fn split_host(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once("]:") {
            if !p.contains(':') {
                return h;
            }
        }
        return addr;
    }
    match addr.split_once(':') {
        Some((h, p)) if !p.contains(':') => h,
        _ => addr,
    }
}

/// Reservoir sampling over the available upstreams (Caddy's `selectRandomHost`).
fn random_host(hosts: &[Arc<Host>]) -> Option<&Arc<Host>> {
    let mut pick = None;
    let mut count = 0;
    for h in hosts.iter().filter(|h| h.available()) {
        count += 1;
        if rand_below(count) == 0 {
            pick = Some(h);
        }
    }
    pick
}

/// The one with the fewest in-flight requests, a random one among ties; an idle one at once.
fn least_requests<'a>(hosts: &[&'a Arc<Host>]) -> Option<&'a Arc<Host>> {
    let mut best: Vec<&Arc<Host>> = Vec::new();
    let mut least = u64::MAX;
    for h in hosts {
        let n = h.num_requests();
        if n == 0 {
            return Some(h);
        }
        if n < least {
            least = n;
            best.clear();
            best.push(h);
        } else if n == least {
            best.push(h);
        }
    }
    match best.len() {
        0 => None,
        1 => Some(best[0]),
        n => Some(best[rand_below(n)]),
    }
}

/// Caddy's `hostByHashing`: the available upstream with the highest xxhash64 of dial + key
/// (ties keep the earlier one; a hash of 0 never wins).
pub fn host_by_hashing<'a>(hosts: &'a [Arc<Host>], key: &str) -> Option<&'a Arc<Host>> {
    let mut highest = 0u64;
    let mut pick = None;
    for h in hosts.iter().filter(|h| h.available()) {
        let mut s = String::with_capacity(h.dial.len() + key.len());
        s.push_str(&h.dial);
        s.push_str(key);
        let hash = xxhash_rust::xxh64::xxh64(s.as_bytes(), 0);
        if hash > highest {
            highest = hash;
            pick = Some(h);
        }
    }
    pick
}

/// Hex HMAC-SHA256 of the dial address keyed by the secret (Caddy's `hashCookie`).
pub fn hash_cookie(secret: &str, dial: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(dial.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Go's `Request.Cookie(name)`: the first cookie of that exact name in the Cookie headers,
/// its value unquoted.
fn request_cookie(ctx: &Ctx<'_, '_>, name: &str) -> Option<String> {
    let lines = ctx.headers.values("Cookie")?;
    lines
        .iter()
        .flat_map(|l| l.split(';'))
        .filter_map(|part| {
            let (k, v) = part.trim().split_once('=')?;
            (k.trim() == name).then(|| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
                    .to_owned()
            })
        })
        .next()
}

/// The sticky session cookie as Go's `http.Cookie.String` writes it: Secure and
/// SameSite=None when a trusted proxy says the client came over https.
fn sticky_cookie(name: &str, value: &str, max_age: Duration, ctx: &Ctx<'_, '_>) -> String {
    let trusted = matches!(ctx.var("trusted_proxy"), Some(Value::Bool(true)));
    let https = trusted
        && ctx
            .headers
            .values("X-Forwarded-Proto")
            .and_then(|v| v.last())
            .is_some_and(|p| p == "https");
    let mut c = format!("{name}={value}; Path=/");
    if max_age.as_secs() > 0 {
        c.push_str(&format!("; Max-Age={}", max_age.as_secs()));
    }
    c.push_str("; HttpOnly");
    c.push_str(if https {
        "; Secure; SameSite=None"
    } else {
        "; SameSite=Lax"
    });
    c
}

/// `load_balancing`: the selection policy and the retry settings.
#[derive(Debug)]
pub struct LoadBalancing {
    pub policy: Policy,
    /// Retries after the first attempt (0: bounded only by `try_duration`).
    pub retries: u32,
    pub try_duration: Duration,
    /// Wait between attempts; 250ms when `try_duration` is set without it.
    pub try_interval: Duration,
    /// Requests that may be retried after they reached an upstream; `None` means GET only.
    pub retry_match: Option<Vec<MatcherSet>>,
}

impl LoadBalancing {
    /// Compiles the handler's `load_balancing` object (absent: random, no retries).
    pub fn compile(v: Option<&Value>) -> Result<LoadBalancing> {
        let m = match v {
            None | Some(Value::Null) => &Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return err("load_balancing: expected an object"),
        };
        let policy = match m.get("selection_policy") {
            None | Some(Value::Null) => Policy::Random,
            Some(p) => Policy::compile(p).map_err(|e| {
                crate::route::CompileError(format!(
                    "loading load balancing selection policy: {}",
                    e.0
                ))
            })?,
        };
        let retries = match m.get("retries") {
            None => 0,
            Some(r) => match r.as_i64() {
                Some(n) => n.clamp(0, i64::from(u32::MAX)) as u32,
                None => return err("retries: expected an integer"),
            },
        };
        let d = |key: &str| m.get(key).map_or(Ok(Duration::ZERO), |v| duration(v, key));
        let try_duration = d("try_duration")?;
        let mut try_interval = d("try_interval")?;
        if !try_duration.is_zero() && try_interval.is_zero() {
            try_interval = Duration::from_millis(250);
        }
        let retry_match = match m.get("retry_match") {
            None | Some(Value::Null) => None,
            Some(Value::Array(sets)) if sets.is_empty() => None,
            Some(Value::Array(sets)) => Some(sets.iter().map(compile_set).collect::<Result<_>>()?),
            Some(_) => return err("retry_match: expected an array of matcher sets"),
        };
        Ok(LoadBalancing {
            policy,
            retries,
            try_duration,
            try_interval,
            retry_match,
        })
    }

    /// Picks an upstream (see [`Policy::select`]).
    pub fn select(&self, pool: &Pool, ctx: &Ctx<'_, '_>) -> Option<Selection> {
        self.policy.select(pool, ctx)
    }

    /// Caddy's `tryAgain`: after attempt number `retries + 1` failed (`retries` = retries
    /// already made), how long to wait before the next attempt, or `None` to give up.
    /// `sent` is false when nothing reached an upstream (no upstream available, or the dial
    /// failed): such failures are always retried. A transport error after the request went
    /// out is retried for GET requests, or when `retry_match` is set and matches, with
    /// `{http.reverse_proxy.is_transport_error}` true while it is evaluated.
    pub fn retry(
        &self,
        retries: u32,
        started: Instant,
        ctx: &mut Ctx<'_, '_>,
        sent: bool,
    ) -> Option<Duration> {
        self.budget_left(retries, started)?;
        if sent {
            let again = match &self.retry_match {
                None => ctx.method == "GET",
                Some(sets) => {
                    ctx.set_capture(TRANSPORT_ERROR.to_owned(), "true".to_owned());
                    let any = sets.iter().any(|s| s.matches(ctx));
                    ctx.captures.retain(|(k, _)| k != TRANSPORT_ERROR);
                    any
                }
            };
            if !again {
                return None;
            }
        }
        Some(self.try_interval)
    }

    /// Caddy's response retries: after a round trip that did return a response, whether a
    /// `retry_match` set makes it a failure, and then whether another attempt follows and
    /// after how long. Only sets holding an `expression` can match a response (request-only
    /// sets never do); the caller has set the response placeholders
    /// (`http.reverse_proxy.status_code`, `http.reverse_proxy.header.*`) in `ctx`. The limits
    /// are those of [`Self::retry`].
    pub fn retry_response(
        &self,
        retries: u32,
        started: Instant,
        ctx: &mut Ctx<'_, '_>,
    ) -> ResponseRetry {
        let Some(sets) = self.retry_match.as_ref() else {
            return ResponseRetry::Keep;
        };
        let with_expression =
            |s: &&MatcherSet| s.0.iter().any(|m| matches!(m, Matcher::Expression(_)));
        if !sets.iter().filter(with_expression).any(|s| s.matches(ctx)) {
            return ResponseRetry::Keep;
        }
        match self.budget_left(retries, started) {
            Some(()) => ResponseRetry::Again(self.try_interval),
            None => ResponseRetry::Fail,
        }
    }

    /// `Some(())` while retries are configured and neither `retries` nor `try_duration` is
    /// used up.
    fn budget_left(&self, retries: u32, started: Instant) -> Option<()> {
        if self.try_duration.is_zero() && self.retries == 0 {
            return None;
        }
        if !self.try_duration.is_zero() && started.elapsed() >= self.try_duration {
            return None;
        }
        if self.retries > 0 && retries >= self.retries {
            return None;
        }
        Some(())
    }
}

/// What follows a response, by `retry_match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseRetry {
    /// No set matches: the response goes on as it is.
    Keep,
    /// Another attempt after this wait.
    Again(Duration),
    /// A matched response with no retries left: Caddy answers its status as an error.
    Fail,
}

/// The placeholder a `retry_match` expression reads to tell transport errors from responses.
const TRANSPORT_ERROR: &str = "http.reverse_proxy.is_transport_error";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::parse_request;

    fn pool(dials: &[&str]) -> Pool {
        let v: Value = dials
            .iter()
            .map(|d| serde_json::json!({ "dial": d }))
            .collect();
        Pool::compile(Some(&v), None).unwrap()
    }

    fn lb(json: &str) -> LoadBalancing {
        LoadBalancing::compile(Some(&serde_json::from_str(json).unwrap())).unwrap()
    }

    fn lb_err(json: &str) -> String {
        LoadBalancing::compile(Some(&serde_json::from_str(json).unwrap()))
            .unwrap_err()
            .0
    }

    /// Runs `f` with a request context for `raw` from `remote`.
    fn with_ctx<T>(raw: &str, remote: &str, f: impl FnOnce(&mut Ctx<'_, '_>) -> T) -> T {
        let cfg = crate::http1::ParserConfig::default();
        let head = match parse_request(raw.as_bytes(), &cfg) {
            Ok(crate::http1::Status::Complete(h, _)) => h,
            other => panic!("{other:?}"),
        };
        let mut ctx = Ctx::new(&head, Some(remote.parse().unwrap()), None);
        f(&mut ctx)
    }

    fn pick(p: &LoadBalancing, pool: &Pool, raw: &str, remote: &str) -> Option<String> {
        with_ctx(raw, remote, |c| {
            p.select(pool, c).map(|s| s.host.dial.clone())
        })
    }

    const GET: &str = "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";

    #[test]
    fn xxhash_matches_go() {
        // xxhash64 reference values (seed 0), as cespare/xxhash computes them.
        assert_eq!(xxhash_rust::xxh64::xxh64(b"", 0), 0xef46db3751d8e999);
        assert_eq!(xxhash_rust::xxh64::xxh64(b"a", 0), 0xd24ec4f1a98c6e5b);
    }

    #[test]
    fn ip_hash_picks_like_caddy() {
        let dials = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
        let p = pool(&dials);
        let policy = lb(r#"{"selection_policy":{"policy":"ip_hash"}}"#);
        for ip in ["127.0.0.1", "127.0.0.2", "10.1.2.3", "::1"] {
            let want = dials
                .iter()
                .max_by_key(|d| xxhash_rust::xxh64::xxh64(format!("{d}{ip}").as_bytes(), 0))
                .unwrap();
            let remote = if ip.contains(':') {
                format!("[{ip}]:5555")
            } else {
                format!("{ip}:5555")
            };
            assert_eq!(
                pick(&policy, &p, GET, &remote).as_deref(),
                Some(*want),
                "{ip}"
            );
        }
    }

    #[test]
    fn hash_policies_keys() {
        let dials = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];
        let p = pool(&dials);
        let expect = |key: &str| host_by_hashing(&p.hosts, key).map(|h| h.dial.clone());
        let uri = lb(r#"{"selection_policy":{"policy":"uri_hash"}}"#);
        assert_eq!(pick(&uri, &p, GET, "1.2.3.4:1"), expect("/a/b?x=1"));
        let q = lb(r#"{"selection_policy":{"policy":"query","key":"k"}}"#);
        let raw = "GET /?k=one&j=2&k=two HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(pick(&q, &p, raw, "1.2.3.4:1"), expect("one,two"));
        let h = lb(r#"{"selection_policy":{"policy":"header","field":"X-User"}}"#);
        let raw = "GET / HTTP/1.1\r\nHost: h\r\nX-User: alice\r\nx-user: bob\r\n\r\n";
        assert_eq!(pick(&h, &p, raw, "1.2.3.4:1"), expect("alice"));
        let host = lb(r#"{"selection_policy":{"policy":"header","field":"Host"}}"#);
        assert_eq!(pick(&host, &p, GET, "1.2.3.4:1"), expect("example.com"));
        let c = lb(r#"{"selection_policy":{"policy":"client_ip_hash"}}"#);
        assert_eq!(pick(&c, &p, GET, "192.0.2.7:999"), expect("192.0.2.7"));
        // A missing key falls back (to `first` here).
        let q = lb(r#"{"selection_policy":{"policy":"query","key":"k",
            "fallback":{"policy":"first"}}}"#);
        assert_eq!(pick(&q, &p, GET, "1.2.3.4:1").as_deref(), Some(dials[0]));
    }

    #[test]
    fn hashing_skips_unavailable_hosts() {
        let dials = ["127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103"];
        let p = pool(&dials);
        let first = host_by_hashing(&p.hosts, "k").unwrap().clone();
        first.set_healthy(false);
        let second = host_by_hashing(&p.hosts, "k").unwrap();
        assert_ne!(second.dial, first.dial);
        for h in &p.hosts {
            h.set_healthy(false);
        }
        assert!(host_by_hashing(&p.hosts, "k").is_none());
    }

    #[test]
    fn round_robin_starts_at_the_second() {
        let p = pool(&["127.0.0.1:9201", "127.0.0.1:9202", "127.0.0.1:9203"]);
        let rr = lb(r#"{"selection_policy":{"policy":"round_robin"}}"#);
        let order: Vec<String> = (0..4)
            .map(|_| pick(&rr, &p, GET, "1.1.1.1:1").unwrap())
            .collect();
        assert_eq!(
            order,
            [
                "127.0.0.1:9202",
                "127.0.0.1:9203",
                "127.0.0.1:9201",
                "127.0.0.1:9202"
            ]
        );
        p.hosts[2].set_healthy(false);
        let order: Vec<String> = (0..2)
            .map(|_| pick(&rr, &p, GET, "1.1.1.1:1").unwrap())
            .collect();
        assert_eq!(order, ["127.0.0.1:9201", "127.0.0.1:9202"]);
    }

    #[test]
    fn weighted_round_robin() {
        let p = pool(&["127.0.0.1:9301", "127.0.0.1:9302", "127.0.0.1:9303"]);
        let w = lb(r#"{"selection_policy":{"policy":"weighted_round_robin","weights":[2,0,1]}}"#);
        let order: Vec<String> = (0..6)
            .map(|_| pick(&w, &p, GET, "1.1.1.1:1").unwrap())
            .collect();
        // index 1,2,0,1,2,0 mod total 3 over the positive weights [2,1].
        assert_eq!(
            order,
            [
                "127.0.0.1:9301",
                "127.0.0.1:9303",
                "127.0.0.1:9301",
                "127.0.0.1:9301",
                "127.0.0.1:9303",
                "127.0.0.1:9301"
            ]
        );
        assert_eq!(
            lb_err(r#"{"selection_policy":{"policy":"weighted_round_robin","weights":[0,0]}}"#),
            "loading load balancing selection policy: weighted_round_robin requires at least one upstream with a positive weight"
        );
    }

    #[test]
    fn first_least_conn_random_choose() {
        let p = pool(&["127.0.0.1:9401", "127.0.0.1:9402", "127.0.0.1:9403"]);
        let first = lb(r#"{"selection_policy":{"policy":"first"}}"#);
        p.hosts[0].begin();
        assert_eq!(
            pick(&first, &p, GET, "1.1.1.1:1").as_deref(),
            Some("127.0.0.1:9401")
        );
        let lc = lb(r#"{"selection_policy":{"policy":"least_conn"}}"#);
        p.hosts[1].begin();
        assert_eq!(
            pick(&lc, &p, GET, "1.1.1.1:1").as_deref(),
            Some("127.0.0.1:9403")
        );
        let rc = lb(r#"{"selection_policy":{"policy":"random_choose","choose":3}}"#);
        assert_eq!(
            pick(&rc, &p, GET, "1.1.1.1:1").as_deref(),
            Some("127.0.0.1:9403")
        );
        // Ties are broken at random: both idle hosts come up.
        p.hosts[2].begin();
        p.hosts[0].end();
        p.hosts[1].end();
        p.hosts[2].end();
        let seen: std::collections::HashSet<String> = (0..200)
            .filter_map(|_| pick(&lc, &p, GET, "1.1.1.1:1"))
            .collect();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            lb_err(r#"{"selection_policy":{"policy":"random_choose","choose":1}}"#),
            "loading load balancing selection policy: choose must be at least 2"
        );
    }

    #[test]
    fn random_spreads_over_available() {
        let p = pool(&["127.0.0.1:9501", "127.0.0.1:9502", "127.0.0.1:9503"]);
        p.hosts[1].set_healthy(false);
        let r = lb("{}");
        let seen: std::collections::HashSet<String> = (0..200)
            .filter_map(|_| pick(&r, &p, GET, "1.1.1.1:1"))
            .collect();
        assert_eq!(seen.len(), 2);
        assert!(!seen.contains("127.0.0.1:9502"));
    }

    #[test]
    fn cookie_policy() {
        let p = pool(&["127.0.0.1:9601", "127.0.0.1:9602"]);
        let c = lb(r#"{"selection_policy":{"policy":"cookie","secret":"s3",
            "max_age":"1h","fallback":{"policy":"first"}}}"#);
        let sel = with_ctx(GET, "1.1.1.1:1", |x| c.select(&p, x)).unwrap();
        assert_eq!(sel.host.dial, "127.0.0.1:9601");
        let sha = hash_cookie("s3", "127.0.0.1:9601");
        assert_eq!(
            sel.set_cookie.as_deref(),
            Some(format!("lb={sha}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax").as_str())
        );
        // A cookie naming the second upstream sticks to it, with no new cookie.
        let raw = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=b; lb={}\r\n\r\n",
            hash_cookie("s3", "127.0.0.1:9602")
        );
        let sel = with_ctx(&raw, "1.1.1.1:1", |x| c.select(&p, x)).unwrap();
        assert_eq!(sel.host.dial, "127.0.0.1:9602");
        assert!(sel.set_cookie.is_none());
        // HMAC-SHA256 reference (RFC 4231 style check of the hex encoding).
        assert_eq!(
            hash_cookie("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn retry_rules() {
        let started = Instant::now();
        let none = lb("{}");
        with_ctx(GET, "1.1.1.1:1", |x| {
            assert_eq!(none.retry(0, started, x, false), None)
        });
        let r = lb(r#"{"retries":2}"#);
        with_ctx(GET, "1.1.1.1:1", |x| {
            assert_eq!(r.retry(0, started, x, true), Some(Duration::ZERO));
            assert_eq!(r.retry(1, started, x, true), Some(Duration::ZERO));
            assert_eq!(r.retry(2, started, x, true), None);
        });
        let post = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
        with_ctx(post, "1.1.1.1:1", |x| {
            assert_eq!(
                r.retry(0, started, x, true),
                None,
                "sent POST is not retried"
            );
            assert_eq!(
                r.retry(0, started, x, false),
                Some(Duration::ZERO),
                "unsent is"
            );
        });
        let m = lb(r#"{"retries":1,"retry_match":[{"method":["POST"]}]}"#);
        with_ctx(post, "1.1.1.1:1", |x| {
            assert!(m.retry(0, started, x, true).is_some())
        });
        with_ctx(GET, "1.1.1.1:1", |x| {
            assert!(m.retry(0, started, x, true).is_none())
        });
        // A transport error on a POST is retried when retry_match says so.
        let t = lb(r#"{"retries":1,"retry_match":[{"expression":
            "{http.reverse_proxy.is_transport_error} == true"}]}"#);
        with_ctx(post, "1.1.1.1:1", |x| {
            assert!(t.retry(0, started, x, true).is_some());
            assert!(x.captures.is_empty(), "the placeholder is gone afterwards");
            assert_eq!(
                t.retry_response(0, started, x),
                ResponseRetry::Keep,
                "a response is no transport error"
            );
        });
        let d = lb(r#"{"try_duration":"5s"}"#);
        assert_eq!(d.try_interval, Duration::from_millis(250));
        with_ctx(GET, "1.1.1.1:1", |x| {
            assert_eq!(
                d.retry(7, started, x, true),
                Some(Duration::from_millis(250))
            );
            let long_ago = Instant::now() - Duration::from_secs(6);
            assert_eq!(d.retry(0, long_ago, x, true), None);
        });
    }

    #[test]
    fn response_retries() {
        let started = Instant::now();
        let r = lb(r#"{"retries":2,"retry_match":[{"method":["GET"]},
            {"expression":"{http.reverse_proxy.status_code} in [502, 503]"}]}"#);
        with_ctx(GET, "1.1.1.1:1", |x| {
            x.set_capture("http.reverse_proxy.status_code".into(), "200".into());
            assert_eq!(
                r.retry_response(0, started, x),
                ResponseRetry::Keep,
                "method-only sets never retry"
            );
            x.set_capture("http.reverse_proxy.status_code".into(), "503".into());
            assert_eq!(
                r.retry_response(0, started, x),
                ResponseRetry::Again(Duration::ZERO)
            );
            assert_eq!(
                r.retry_response(2, started, x),
                ResponseRetry::Fail,
                "retries used up"
            );
        });
        let plain = lb(r#"{"retries":2}"#);
        with_ctx(GET, "1.1.1.1:1", |x| {
            assert_eq!(plain.retry_response(0, started, x), ResponseRetry::Keep)
        });
    }

    #[test]
    fn compile_errors() {
        assert_eq!(
            lb_err(r#"{"selection_policy":{"policy":"nope"}}"#),
            "loading load balancing selection policy: unknown module: http.reverse_proxy.selection_policies.nope"
        );
        assert_eq!(
            lb_err(r#"{"selection_policy":{"policy":"query"}}"#),
            "loading load balancing selection policy: query key is required"
        );
        assert_eq!(
            lb_err(r#"{"selection_policy":{"policy":"header"}}"#),
            "loading load balancing selection policy: header field is required"
        );
    }
}
