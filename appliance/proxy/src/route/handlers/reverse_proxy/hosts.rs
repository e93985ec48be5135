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
    /// Not one socket; proxying to it fails like Caddy's `making dial info: upstream ...`.
    Invalid(String),
}

impl Target {
    /// Parses a dial address like Caddy's `ParseNetworkAddress` + `fillDialInfo`.
    pub fn parse(dial: &str) -> Target {
        if dial.contains('{') {
            return Target::Placeholder;
        }
        let invalid = |why: String| Target::Invalid(format!("upstream {dial}: {why}"));
        let (network, addr) = match dial.split_once('/') {
            Some((n, a)) if !n.contains(':') && !n.contains('[') => (n.to_ascii_lowercase(), a),
            _ => ("tcp".to_owned(), dial),
        };
        match network.as_str() {
            "unix" | "unixgram" | "unixpacket" => return Target::Unix(PathBuf::from(addr)),
            "tcp" | "tcp4" | "tcp6" => {}
            other => {
                return invalid(format!(
                    "invalid dial address {dial}: unsupported network {other:?}"
                ))
            }
        }
        let Some((host, port)) = addr.rsplit_once(':') else {
            return invalid(format!(
                "invalid dial address {dial}: address {addr}: missing port in address"
            ));
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = match port.split_once('-') {
            Some((a, b)) if a != b => {
                return invalid(format!(
                    "dial address must represent precisely one socket: {dial} represents more"
                ))
            }
            Some((a, _)) => match a.parse() {
                Ok(p) => p,
                Err(_) => return invalid(format!("invalid dial address {dial}: invalid port")),
            },
            None => match port.parse() {
                Ok(p) => p,
                Err(_) => return invalid(format!("invalid dial address {dial}: invalid port")),
            },
        };
        let mut addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => return invalid(format!("lookup {host}: {e}")),
        };
        match network.as_str() {
            "tcp4" => addrs.retain(SocketAddr::is_ipv4),
            "tcp6" => addrs.retain(SocketAddr::is_ipv6),
            _ => {}
        }
        addrs.sort_by_key(|a| a.is_ipv6());
        addrs.dedup();
        if addrs.is_empty() {
            return invalid(format!("lookup {host}: no suitable address"));
        }
        Target::Tcp(addrs)
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
        assert!(matches!(Target::parse("127.0.0.1"), Target::Invalid(_)));
        assert!(matches!(
            Target::parse("127.0.0.1:8000-8002"),
            Target::Invalid(_)
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
