//! Upstreams of a `reverse_proxy` handler and the process-wide state of the hosts behind them.
//!
//! Caddy splits an upstream in two: the per-handler `Upstream` (dial address, `max_requests`,
//! the active health checker's up/down flag, the passive policy) and the shared `Host` (the
//! in-flight request count and recent failures), kept in a global `UsagePool` keyed by the
//! dial address so that the counts survive config reloads and are shared by every handler
//! that proxies to the same address. Here [`Host`] is the per-handler half and [`Shared`]
//! the pooled one; the registry holds weak references, so an address leaves it when the last
//! handler using it is dropped (Caddy's `hosts.Delete` at cleanup).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::health::Passive;
use crate::route::{err, Result};

/// Where a dial address leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host:port` over TCP: the addresses the host resolved to at compile time, in the order
    /// to try them (IPv4 first, as Go's dialer falls back across families).
    Tcp(Vec<SocketAddr>),
    /// `unix/PATH`.
    Unix(PathBuf),
    /// The address holds placeholders, resolved per request.
    Placeholder,
    /// Not one socket: Caddy's `fillDialInfo` error, which ends the request unretried.
    Invalid(String),
    /// The host name does not resolve: a dial error (`dial tcp: lookup ...`).
    Unresolved(String),
}

/// A dial address as Caddy's `fillDialInfo` makes it (`DialInfo`): network, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialInfo {
    pub network: String,
    pub host: String,
    pub port: u16,
}

impl DialInfo {
    /// Caddy's `ParseNetworkAddress` plus the one-socket check, on an address already free
    /// of placeholders; `template` is the configured `dial`, which the errors name.
    pub fn parse(template: &str, dial: &str) -> std::result::Result<DialInfo, String> {
        let invalid =
            |why: String| format!("upstream {template}: invalid dial address {dial}: {why}");
        let (network, addr) = match dial.split_once('/') {
            Some((n, a)) => (n.trim().to_ascii_lowercase(), a),
            None => (String::new(), dial),
        };
        if network.starts_with("unix") || network.starts_with("fd") {
            return Ok(DialInfo {
                network,
                host: addr.to_owned(),
                port: 0,
            });
        }
        let network = if network.is_empty() {
            "tcp".to_owned()
        } else {
            network
        };
        let (host, port) = split_host_port(addr)
            .or_else(|first| {
                // Go's "missing port": the whole address is the host (brackets dropped).
                let bare = addr.trim_matches(|c| c == '[' || c == ']');
                // With a bogus port added, the host Go's parser gives back is `bare` itself.
                match split_host_port(&join_host_port(bare, "0")) {
                    Ok(_) => Ok((bare, "")),
                    Err(second) => Err(format!("{first}\n{second}")),
                }
            })
            .map_err(invalid)?;
        let (start, end) = match port.split_once('-') {
            _ if port.is_empty() => (0, 0),
            Some((a, b)) => (
                parse_port(a).map_err(|e| invalid(format!("invalid start port: {e}")))?,
                parse_port(b).map_err(|e| invalid(format!("invalid end port: {e}")))?,
            ),
            None => {
                let p =
                    parse_port(port).map_err(|e| invalid(format!("invalid start port: {e}")))?;
                (p, p)
            }
        };
        if end < start {
            return Err(invalid(
                "end port must not be less than start port".to_owned(),
            ));
        }
        if end != start {
            return Err(format!(
                "upstream {template}: dial address must represent precisely one socket: \
                 {dial} represents {}",
                end - start + 1
            ));
        }
        Ok(DialInfo {
            network,
            host: host.to_owned(),
            port: start,
        })
    }

    fn is_unix(&self) -> bool {
        self.network.starts_with("unix")
    }

    /// `{http.reverse_proxy.upstream.hostport}`: what is dialled (the path of a socket).
    pub fn address(&self) -> String {
        if self.is_unix() {
            return self.host.clone();
        }
        join_host_port(&self.host, &self.port.to_string())
    }

    /// `{http.reverse_proxy.upstream.port}`.
    pub fn port_text(&self) -> String {
        self.port.to_string()
    }

    /// Where it leads; resolving a host name blocks (done at compile time for static dials).
    pub fn target(&self) -> Target {
        if self.is_unix() {
            return Target::Unix(PathBuf::from(&self.host));
        }
        let family = match self.network.as_str() {
            "tcp" => None,
            "tcp4" => Some(false),
            "tcp6" => Some(true),
            other => {
                // Go's dialer names the network it does not know.
                return Target::Unresolved(format!("dial {other}: unknown network {other}"));
            }
        };
        let mut addrs: Vec<SocketAddr> = if self.host.is_empty() {
            // Go dials the local system for an empty host.
            vec![SocketAddr::from(([0, 0, 0, 0], self.port))]
        } else {
            match (self.host.as_str(), self.port).to_socket_addrs() {
                Ok(a) => a.collect(),
                Err(_) => Vec::new(),
            }
        };
        if let Some(v6) = family {
            addrs.retain(|a| a.is_ipv6() == v6);
        }
        addrs.sort_by_key(|a| a.is_ipv6());
        addrs.dedup();
        if addrs.is_empty() {
            return Target::Unresolved(format!(
                "dial {}: lookup {}: no such host",
                self.network, self.host
            ));
        }
        Target::Tcp(addrs)
    }
}

/// Caddy's `DialInfo.String()` (`JoinNetworkAddress`): `tcp/127.0.0.1:80`, `unix//run/a.sock`.
impl std::fmt::Display for DialInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_unix() {
            return write!(f, "{}/{}", self.network, self.host);
        }
        write!(f, "{}/{}", self.network, self.address())
    }
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go's `net.SplitHostPort`, with its error texts.
fn split_host_port(addr: &str) -> std::result::Result<(&str, &str), String> {
    let fail = |why: &str| Err(format!("address {addr}: {why}"));
    let Some(colon) = addr.rfind(':') else {
        return fail("missing port in address");
    };
    // No '[' may follow `from_open`, no ']' may follow `from_close`.
    let (host, from_open, from_close) = if let Some(rest) = addr.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return fail("missing ']' in address");
        };
        let after = close + 2;
        if after != colon {
            if after < addr.len() && addr.as_bytes()[after] == b':' {
                return fail("too many colons in address");
            }
            return fail("missing port in address");
        }
        (&rest[..close], 1, after)
    } else {
        let host = &addr[..colon];
        if host.contains(':') {
            return fail("too many colons in address");
        }
        (host, 0, 0)
    };
    if addr[from_open..].contains('[') {
        return fail("unexpected '[' in address");
    }
    if addr[from_close..].contains(']') {
        return fail("unexpected ']' in address");
    }
    Ok((host, &addr[colon + 1..]))
}

/// Go's `strconv.ParseUint(s, 10, 16)`, with its error texts.
fn parse_port(s: &str) -> std::result::Result<u16, String> {
    let fail = |why: &str| Err(format!("strconv.ParseUint: parsing {s:?}: {why}"));
    if s.is_empty() {
        return fail("invalid syntax");
    }
    let mut n: u32 = 0;
    for c in s.bytes() {
        if !c.is_ascii_digit() {
            return fail("invalid syntax");
        }
        n = n * 10 + u32::from(c - b'0');
        if n > u32::from(u16::MAX) {
            return fail("value out of range");
        }
    }
    Ok(n as u16)
}

impl Target {
    /// A configured dial address: per-request when it holds placeholders, else parsed (and
    /// its host name resolved) now.
    pub fn parse(dial: &str) -> Target {
        if dial.contains('{') {
            return Target::Placeholder;
        }
        Target::resolve(dial, dial)
    }

    /// Where `dial` (the configured `template` with its placeholders replaced) leads.
    pub fn resolve(template: &str, dial: &str) -> Target {
        match DialInfo::parse(template, dial) {
            Ok(info) => info.target(),
            Err(why) => Target::Invalid(why),
        }
    }
}

/// State of one remote address shared by every handler that dials it (Caddy's `Host`).
#[derive(Debug, Default)]
pub struct Shared {
    num_requests: AtomicI64,
    /// Recent passive failures: when each expires and which [`Host`] counted it (a handler's
    /// failures are forgotten when it is unloaded, as Caddy's forgetter does on `ctx.Done`).
    fails: Mutex<Vec<(Instant, u64)>>,
    /// Active health check passes and failures since the last up/down change: Caddy 2.11.7
    /// counts them independently (not consecutively), so an upstream that alternates
    /// between passing and failing flaps once `fails` failures have accumulated.
    active_passes: AtomicI64,
    active_fails: AtomicI64,
}

impl Shared {
    fn fail_list(&self) -> MutexGuard<'_, Vec<(Instant, u64)>> {
        self.fails.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn num_requests(&self) -> u64 {
        self.num_requests.load(Ordering::Relaxed).max(0) as u64
    }

    fn fails(&self) -> u64 {
        let mut list = self.fail_list();
        if !list.is_empty() {
            let now = Instant::now();
            list.retain(|(until, _)| *until > now);
        }
        list.len() as u64
    }
}

type Registry = Mutex<BTreeMap<String, Weak<Shared>>>;

fn registry() -> MutexGuard<'static, BTreeMap<String, Weak<Shared>>> {
    static HOSTS: OnceLock<Registry> = OnceLock::new();
    HOSTS
        .get_or_init(Registry::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The pooled state for `dial`, created on first use (Caddy's `hosts.LoadOrStore`).
fn shared(dial: &str) -> Arc<Shared> {
    let mut hosts = registry();
    if let Some(s) = hosts.get(dial).and_then(Weak::upgrade) {
        return s;
    }
    hosts.retain(|_, w| w.strong_count() > 0);
    let s = Arc::new(Shared::default());
    hosts.insert(dial.to_owned(), Arc::downgrade(&s));
    s
}

/// Every address in use with its in-flight requests and recent failures, by address (Caddy's
/// `GET /reverse_proxy/upstreams`, which ranges over the same pool).
pub fn upstreams_report() -> Vec<(String, u64, u64)> {
    registry()
        .iter()
        .filter_map(|(dial, w)| {
            let s = w.upgrade()?;
            Some((dial.clone(), s.num_requests(), s.fails()))
        })
        .collect()
}

/// One upstream of one handler (Caddy's `Upstream`).
#[derive(Debug)]
pub struct Host {
    /// The `dial` string as configured (also the registry key and the hash key).
    pub dial: String,
    pub target: Target,
    /// Concurrent requests allowed (0 = no limit); the passive checks'
    /// `unhealthy_request_count` when the upstream sets none.
    pub max_requests: u64,
    /// Passive `max_fails` when the handler has passive health checks.
    max_fails: Option<u64>,
    /// Marked down by the active health checker.
    unhealthy: AtomicBool,
    id: u64,
    shared: Arc<Shared>,
}

impl Host {
    /// An upstream for `dial`, attached to the pooled state of that address.
    pub fn new(dial: &str, max_requests: u64, passive: Option<&Passive>) -> Host {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let max_requests = match passive {
            Some(p) if max_requests == 0 => p.unhealthy_request_count,
            _ => max_requests,
        };
        Host {
            dial: dial.to_owned(),
            target: Target::parse(dial),
            max_requests,
            max_fails: passive.map(|p| p.max_fails),
            unhealthy: AtomicBool::new(false),
            id: IDS.fetch_add(1, Ordering::Relaxed),
            shared: shared(dial),
        }
    }

    /// The first address to dial, for TCP upstreams.
    pub fn addr(&self) -> Option<SocketAddr> {
        match &self.target {
            Target::Tcp(a) => a.first().copied(),
            _ => None,
        }
    }

    /// Healthy and not full: the only test selection policies use (Caddy's `Available`).
    pub fn available(&self) -> bool {
        self.healthy() && !self.full()
    }

    /// Not marked down by active checks and below the passive `max_fails`.
    pub fn healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::Relaxed) && self.max_fails.is_none_or(|m| self.fails() < m)
    }

    /// At `max_requests` in-flight requests.
    pub fn full(&self) -> bool {
        self.max_requests > 0 && self.num_requests() >= self.max_requests
    }

    /// A request to this address starts (counts for `least_conn` and `max_requests`).
    pub fn begin(&self) {
        self.shared.num_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A request started with [`Host::begin`] is over.
    pub fn end(&self) {
        self.shared.num_requests.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn num_requests(&self) -> u64 {
        self.shared.num_requests()
    }

    /// Recent failures counted by any handler and not yet expired.
    pub fn fails(&self) -> u64 {
        self.shared.fails()
    }

    /// Remembers one failure for `window` (passive health checks); a zero window is a no-op.
    pub fn count_fail(&self, window: Duration) {
        if window.is_zero() {
            return;
        }
        self.shared
            .fail_list()
            .push((Instant::now() + window, self.id));
    }

    /// Sets the active health checker's verdict; true when it changed.
    pub(super) fn set_healthy(&self, healthy: bool) -> bool {
        self.unhealthy.swap(!healthy, Ordering::Relaxed) == healthy
    }

    /// Counts an active check pass; returns the passes since the last state change.
    pub(super) fn count_active_pass(&self) -> i64 {
        self.shared.active_passes.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts an active check failure; returns the failures since the last state change.
    pub(super) fn count_active_fail(&self) -> i64 {
        self.shared.active_fails.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Clears the active counters after a state change (Caddy's `resetHealth`).
    pub(super) fn reset_active(&self) {
        self.shared.active_passes.store(0, Ordering::Relaxed);
        self.shared.active_fails.store(0, Ordering::Relaxed);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let id = self.id;
        self.shared.fail_list().retain(|(_, owner)| *owner != id);
    }
}

/// A handler's static upstreams, in configuration order.
#[derive(Debug, Default)]
pub struct Pool {
    pub hosts: Vec<Arc<Host>>,
}

impl Pool {
    /// Compiles the handler's `upstreams` array; `passive` is its passive health check
    /// policy, which sets `max_fails` and the default `max_requests` of every upstream.
    pub fn compile(upstreams: Option<&Value>, passive: Option<&Passive>) -> Result<Pool> {
        let list = match upstreams {
            None | Some(Value::Null) => return Ok(Pool::default()),
            Some(Value::Array(a)) => a,
            Some(_) => return err("upstreams: expected an array"),
        };
        let mut hosts = Vec::with_capacity(list.len());
        for u in list {
            let Value::Object(u) = u else {
                return err("upstreams: expected an array of objects");
            };
            let dial = match u.get("dial") {
                None => "",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => return err("upstreams: dial: expected a string"),
            };
            let max_requests = match u.get("max_requests") {
                None => 0,
                Some(v) => match v.as_i64() {
                    Some(n) => n.max(0) as u64,
                    None => return err("upstreams: max_requests: expected an integer"),
                },
            };
            hosts.push(Arc::new(Host::new(dial, max_requests, passive)));
        }
        Ok(Pool { hosts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_for(dial: &str) -> Option<(u64, u64)> {
        upstreams_report()
            .into_iter()
            .find(|(d, _, _)| d == dial)
            .map(|(_, n, f)| (n, f))
    }

    #[test]
    fn split_host_port_as_go() {
        assert_eq!(split_host_port("a:1"), Ok(("a", "1")));
        assert_eq!(split_host_port("[::1]:2"), Ok(("::1", "2")));
        assert_eq!(split_host_port(":0"), Ok(("", "0")));
        for (addr, why) in [
            ("a", "missing port in address"),
            ("[::1", "missing ']' in address"),
            ("[::1]", "missing port in address"),
            ("[::1]x:1", "missing port in address"),
            ("[a]:b:1", "too many colons in address"),
            ("::1", "too many colons in address"),
            ("a[:1", "unexpected '[' in address"),
            ("a]:1", "unexpected ']' in address"),
        ] {
            assert_eq!(split_host_port(addr), Err(format!("address {addr}: {why}")));
        }
    }

    #[test]
    fn dial_info_as_caddy() {
        let info = DialInfo::parse("{x}", "::1").unwrap();
        assert_eq!(
            (info.address(), info.to_string()),
            ("[::1]:0".into(), "tcp/[::1]:0".into())
        );
        let info = DialInfo::parse("{x}", "unix//run/a.sock").unwrap();
        assert_eq!(
            (info.address(), info.to_string()),
            ("/run/a.sock".into(), "unix//run/a.sock".into())
        );
        assert_eq!(DialInfo::parse("{x}", "").unwrap().address(), ":0");
        assert!(DialInfo::parse("{x}", "h:2-1").is_err());
    }

    #[test]
    fn targets() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(Target::parse("127.0.0.1:8080"), Target::Tcp(vec![lo]));
        assert_eq!(Target::parse("tcp/127.0.0.1:8080"), Target::Tcp(vec![lo]));
        assert_eq!(
            Target::parse("[::1]:81"),
            Target::Tcp(vec!["[::1]:81".parse().unwrap()])
        );
        assert_eq!(
            Target::parse("unix//run/app.sock"),
            Target::Unix(PathBuf::from("/run/app.sock"))
        );
        assert_eq!(Target::parse("{http.request.host}:80"), Target::Placeholder);
        // Go's missing port is port 0, as Caddy dials it.
        let zero: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(Target::parse("127.0.0.1"), Target::Tcp(vec![zero]));
        assert_eq!(
            Target::parse("127.0.0.1:8000-8002"),
            Target::Invalid(
                "upstream 127.0.0.1:8000-8002: dial address must represent precisely one \
                 socket: 127.0.0.1:8000-8002 represents 3"
                    .into()
            )
        );
        assert_eq!(
            Target::resolve("{x}", "h:99999"),
            Target::Invalid(
                "upstream {x}: invalid dial address h:99999: invalid start port: \
                 strconv.ParseUint: parsing \"99999\": value out of range"
                    .into()
            )
        );
        assert!(matches!(
            Target::parse("no.such.host.invalid:1"),
            Target::Unresolved(_)
        ));
        match Target::parse("localhost:9") {
            Target::Tcp(a) => assert!(a[0].is_ipv4() && a[0].port() == 9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn state_is_shared_by_dial_and_survives_a_new_handler() {
        let dial = "127.0.0.1:60001";
        let old = Host::new(dial, 0, None);
        old.begin();
        let new = Host::new(dial, 0, None);
        assert_eq!(new.num_requests(), 1);
        drop(old);
        assert_eq!(report_for(dial), Some((1, 0)));
        new.end();
        assert_eq!(report_for(dial), Some((0, 0)));
        drop(new);
        assert_eq!(report_for(dial), None);
    }

    #[test]
    fn max_requests_and_passive_defaults() {
        let passive = Passive {
            max_fails: 2,
            unhealthy_request_count: 1,
            fail_duration: Duration::from_secs(10),
            ..Passive::default()
        };
        let h = Host::new("127.0.0.1:60002", 0, Some(&passive));
        assert_eq!(h.max_requests, 1);
        assert!(h.available());
        h.begin();
        assert!(h.full() && !h.available());
        h.end();
        h.count_fail(Duration::from_secs(10));
        assert!(h.available());
        h.count_fail(Duration::from_secs(10));
        assert_eq!(h.fails(), 2);
        assert!(!h.healthy());
        // An explicit max_requests wins over unhealthy_request_count.
        assert_eq!(
            Host::new("127.0.0.1:60002", 5, Some(&passive)).max_requests,
            5
        );
        // Without passive checks, failures do not make a host unavailable.
        assert!(Host::new("127.0.0.1:60002", 0, None).healthy());
    }

    #[test]
    fn failures_expire_and_leave_with_their_handler() {
        let dial = "127.0.0.1:60003";
        let a = Host::new(dial, 0, None);
        let b = Host::new(dial, 0, None);
        a.count_fail(Duration::from_millis(30));
        b.count_fail(Duration::from_secs(60));
        a.count_fail(Duration::ZERO);
        assert_eq!(b.fails(), 2);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(a.fails(), 1);
        drop(b);
        assert_eq!(a.fails(), 0);
    }

    #[test]
    fn active_flag_is_per_handler() {
        let a = Host::new("127.0.0.1:60004", 0, None);
        let b = Host::new("127.0.0.1:60004", 0, None);
        assert!(a.set_healthy(false));
        assert!(!a.set_healthy(false));
        assert!(!a.available() && b.available());
        assert_eq!(a.count_active_fail(), 1);
        assert_eq!(b.count_active_fail(), 2);
        assert_eq!(a.count_active_pass(), 1);
        assert_eq!(
            a.count_active_fail(),
            3,
            "a pass does not clear the failures"
        );
        a.reset_active();
        assert_eq!((a.count_active_pass(), b.count_active_fail()), (1, 1));
    }

    #[test]
    fn pool_compile() {
        let v: Value = serde_json::from_str(
            r#"[{"dial":"127.0.0.1:60005"},{"dial":"127.0.0.1:60006","max_requests":3}]"#,
        )
        .unwrap();
        let p = Pool::compile(Some(&v), None).unwrap();
        assert_eq!(p.hosts.len(), 2);
        assert_eq!(p.hosts[1].max_requests, 3);
        assert!(Pool::compile(Some(&Value::from(3)), None).is_err());
    }
}
