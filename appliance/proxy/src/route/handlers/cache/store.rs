//! The shared in-memory store: one per process, used by every `cache` handler and worker,
//! surviving reloads (keys carry the deployment, so a new one never reads an old entry).
//!
//! Entries are immutable (`Arc<Entry>`); a 304 refresh replaces one. Memory is bounded by
//! the byte size of entries (body, fields, key); past the bound, entries of deployments other
//! than the current one go first, then the least recently used, down to 90 % so a burst of
//! inserts does not sort the whole store each time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use regex::Regex;

use super::key::{vary_values, ExperimentSource, Key};
use crate::http1::HeaderMap;

/// Default bound of the store's memory.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;
/// Bookkeeping per entry counted on top of its bytes.
const ENTRY_OVERHEAD: usize = 256;

/// A stored response.
#[derive(Debug)]
pub struct Entry {
    pub key: Key,
    pub status: u16,
    /// Fields as sent to the client (no `Cache-Status`, `Age` or `Set-Cookie`).
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub stored: Instant,
    /// `Age` the response had when it arrived.
    pub initial_age: u64,
    pub lifetime: Duration,
    /// How long past its lifetime it may be served while one request revalidates it.
    pub stale_while_revalidate: Duration,
    /// How long past its lifetime it may stand in for an upstream error.
    pub stale_if_error: Duration,
    /// `no-cache` or `must-revalidate`: never served stale, `no-cache` not even fresh.
    pub no_cache: bool,
    pub must_revalidate: bool,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Secondary key: the `Vary` names and the request's values for them.
    pub vary: Vec<String>,
    pub vary_values: Vec<String>,
    last_used: AtomicU64,
}

impl Entry {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: Key,
        status: u16,
        headers: HeaderMap,
        lifetime: Duration,
        stale_while_revalidate: Duration,
        stale_if_error: Duration,
        vary: Vec<String>,
        vary_values: Vec<String>,
        initial_age: u64,
    ) -> Entry {
        let first = |k: &str| headers.raw(k).and_then(|v| v.first()).cloned();
        let cc = super::freshness::parse(headers.raw("Cache-Control"));
        Entry {
            etag: first("Etag"),
            last_modified: first("Last-Modified"),
            no_cache: cc.no_cache,
            must_revalidate: cc.must_revalidate,
            key,
            status,
            headers,
            body: Vec::new(),
            stored: Instant::now(),
            initial_age,
            lifetime,
            stale_while_revalidate,
            stale_if_error,
            vary,
            vary_values,
            last_used: AtomicU64::new(0),
        }
    }

    /// Current age (RFC 9111 4.2.3, whole seconds).
    pub fn age(&self) -> u64 {
        self.initial_age + self.stored.elapsed().as_secs()
    }

    pub fn fresh(&self) -> bool {
        !self.no_cache
            && self.stored.elapsed() + Duration::from_secs(self.initial_age) < self.lifetime
    }

    /// Stale by no more than `window`.
    pub fn within(&self, window: Duration) -> bool {
        !self.must_revalidate
            && self.stored.elapsed() + Duration::from_secs(self.initial_age)
                < self.lifetime.saturating_add(window)
    }

    pub fn has_validators(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }

    /// Worth keeping: still servable in some way, or able to be revalidated.
    fn useful(&self) -> bool {
        self.has_validators() || self.within(self.stale_while_revalidate.max(self.stale_if_error))
    }

    fn size(&self) -> usize {
        let fields: usize = self
            .headers
            .iter()
            .map(|(k, vs)| k.len() + vs.iter().map(String::len).sum::<usize>())
            .sum();
        ENTRY_OVERHEAD + self.body.len() + fields + 2 * self.key.primary.len()
    }

    /// The entry after a 304: fields of the 304 replace the stored ones (RFC 9111 4.3.4),
    /// and its age starts over.
    pub fn refreshed(&self, update: &HeaderMap, lifetime: Duration) -> Entry {
        let mut headers = self.headers.clone();
        for (k, vs) in update.iter() {
            if !matches!(
                k.as_str(),
                "Content-Length" | "Content-Encoding" | "Set-Cookie"
            ) {
                headers.set_raw(k.clone(), vs.clone());
            }
        }
        let mut e = Entry::new(
            self.key.clone(),
            self.status,
            headers,
            lifetime,
            self.stale_while_revalidate,
            self.stale_if_error,
            self.vary.clone(),
            self.vary_values.clone(),
            super::freshness::initial_age(update),
        );
        e.body = self.body.clone();
        e
    }
}

/// Process-wide settings from the agent: which deployment serves, where the experiment arm
/// comes from, and the memory bound.
#[derive(Debug, Clone)]
pub struct Settings {
    pub deploy: String,
    pub experiment: ExperimentSource,
    pub max_bytes: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Vec<Arc<Entry>>>,
    bytes: usize,
    count: usize,
}

struct Store {
    inner: RwLock<Inner>,
    settings: RwLock<Arc<Settings>>,
    tick: AtomicU64,
}

static STORE: LazyLock<Store> = LazyLock::new(|| Store {
    inner: RwLock::new(Inner::default()),
    settings: RwLock::new(Arc::new(Settings {
        deploy: String::new(),
        experiment: ExperimentSource::None,
        max_bytes: DEFAULT_MAX_BYTES,
    })),
    tick: AtomicU64::new(1),
});

fn write() -> std::sync::RwLockWriteGuard<'static, Inner> {
    STORE.inner.write().unwrap_or_else(|e| e.into_inner())
}

fn read() -> std::sync::RwLockReadGuard<'static, Inner> {
    STORE.inner.read().unwrap_or_else(|e| e.into_inner())
}

pub fn settings() -> Arc<Settings> {
    Arc::clone(&STORE.settings.read().unwrap_or_else(|e| e.into_inner()))
}

/// Sets the deployment, experiment source and bound; entries of other deployments stay
/// (unreachable) until the bound needs their room.
pub fn configure(s: Settings) {
    let max = s.max_bytes;
    *STORE.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
    let mut inner = write();
    if inner.bytes > max {
        evict(&mut inner, max);
    }
}

/// The stored variant of `key` that matches the request's `Vary` values.
pub fn lookup(key: &Key, request: &HeaderMap) -> Option<Arc<Entry>> {
    let inner = read();
    let variants = inner.entries.get(&key.primary)?;
    let found = variants
        .iter()
        .find(|e| key.disable_vary || vary_values(&e.vary, request) == e.vary_values)?;
    found.last_used.store(
        STORE.tick.fetch_add(1, Ordering::Relaxed),
        Ordering::Relaxed,
    );
    Some(Arc::clone(found))
}

/// Whether an entry of `size` bytes can be stored at all (an eighth of the bound at most).
pub fn fits(body_len: usize) -> bool {
    body_len + ENTRY_OVERHEAD <= settings().max_bytes / 8
}

/// Stores `entry`, replacing the variant with the same secondary key; false when too big.
pub fn insert(entry: Entry) -> bool {
    let size = entry.size();
    let max = settings().max_bytes;
    if size > max / 8 {
        return false;
    }
    entry.last_used.store(
        STORE.tick.fetch_add(1, Ordering::Relaxed),
        Ordering::Relaxed,
    );
    let mut inner = write();
    let inner = &mut *inner;
    let variants = inner.entries.entry(entry.key.primary.clone()).or_default();
    let mut freed = 0;
    let mut removed = 0;
    variants.retain(|e| {
        let same =
            entry.key.disable_vary || (e.vary == entry.vary && e.vary_values == entry.vary_values);
        let drop = same || !e.useful();
        if drop {
            freed += e.size();
            removed += 1;
        }
        !drop
    });
    variants.push(Arc::new(entry));
    inner.bytes = inner.bytes + size - freed;
    inner.count = inner.count + 1 - removed;
    if inner.bytes > max {
        evict(inner, max);
    }
    true
}

/// Drops entries until the store is under 90 % of `max`: old deployments first, then the
/// least recently used.
fn evict(inner: &mut Inner, max: usize) {
    let current = settings().deploy.clone();
    let target = max / 10 * 9;
    let mut order: Vec<(bool, u64, String, usize)> = inner
        .entries
        .iter()
        .flat_map(|(k, vs)| {
            vs.iter().enumerate().map(|(i, e)| {
                (
                    e.key.deploy == current,
                    e.last_used.load(Ordering::Relaxed),
                    k.clone(),
                    i,
                )
            })
        })
        .collect();
    order.sort();
    let mut gone: HashMap<String, Vec<usize>> = HashMap::new();
    let mut bytes = inner.bytes;
    for (_, _, k, i) in order {
        if bytes <= target {
            break;
        }
        bytes -= inner.entries[&k][i].size();
        gone.entry(k).or_default().push(i);
    }
    for (k, mut idx) in gone {
        idx.sort_unstable_by(|a, b| b.cmp(a));
        let variants = inner.entries.get_mut(&k).expect("listed above");
        for i in idx {
            variants.swap_remove(i);
            inner.count -= 1;
        }
        if variants.is_empty() {
            inner.entries.remove(&k);
        }
    }
    inner.bytes = bytes;
}

/// Removes an entry that has become useless (expired without validators).
pub fn remove(entry: &Arc<Entry>) {
    let mut inner = write();
    let inner = &mut *inner;
    let Some(variants) = inner.entries.get_mut(&entry.key.primary) else {
        return;
    };
    let before = variants.len();
    variants.retain(|e| !Arc::ptr_eq(e, entry));
    if variants.len() < before {
        inner.bytes -= entry.size();
        inner.count -= 1;
    }
    if variants.is_empty() {
        inner.entries.remove(&entry.key.primary);
    }
}

/// Whether an entry is past every use and should go.
pub fn expired(entry: &Entry) -> bool {
    !entry.useful()
}

/// Purges entries whose shown key matches `pattern` (every entry without one); returns
/// how many went.
pub fn purge(pattern: Option<&Regex>) -> usize {
    let mut inner = write();
    let inner = &mut *inner;
    let mut removed = 0;
    let mut freed = 0;
    inner.entries.retain(|_, variants| {
        variants.retain(|e| {
            let hit = pattern.is_none_or(|re| re.is_match(&e.key.shown));
            if hit {
                removed += 1;
                freed += e.size();
            }
            !hit
        });
        !variants.is_empty()
    });
    inner.bytes -= freed;
    inner.count -= removed;
    removed
}

/// (entries, bytes, bound) for the admin view.
pub fn stats() -> (usize, usize, usize) {
    let inner = read();
    (inner.count, inner.bytes, settings().max_bytes)
}

#[cfg(test)]
pub(crate) fn test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(deploy: &str, path: &str) -> Key {
        Key {
            shown: format!("GET-http-h-{path}"),
            primary: format!("{deploy}\u{0}\u{0}GET-http-h-{path}"),
            deploy: deploy.to_owned(),
            disable_vary: false,
        }
    }

    fn entry(k: Key, body: usize, vary: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new(
            k,
            200,
            HeaderMap::default(),
            Duration::from_secs(60),
            Duration::ZERO,
            Duration::ZERO,
            vary.iter().map(|(n, _)| n.to_string()).collect(),
            vary.iter().map(|(_, v)| v.to_string()).collect(),
            0,
        );
        e.body = vec![b'x'; body];
        e
    }

    fn set(deploy: &str, max: usize) {
        configure(Settings {
            deploy: deploy.to_owned(),
            experiment: ExperimentSource::None,
            max_bytes: max,
        });
    }

    #[test]
    fn variants_and_bound() {
        let _g = test_lock();
        purge(None);
        set("old", 1 << 20);
        let mut gzip = HeaderMap::default();
        gzip.add("Accept-Encoding", "gzip");
        assert!(insert(entry(
            key("old", "/v"),
            10,
            &[("Accept-Encoding", "gzip")]
        )));
        assert!(insert(entry(
            key("old", "/v"),
            20,
            &[("Accept-Encoding", "")]
        )));
        assert_eq!(lookup(&key("old", "/v"), &gzip).unwrap().body.len(), 10);
        assert_eq!(
            lookup(&key("old", "/v"), &HeaderMap::default())
                .unwrap()
                .body
                .len(),
            20
        );
        for i in 0..4 {
            assert!(insert(entry(key("old", &format!("/o{i}")), 100_000, &[])));
        }
        set("new", 1 << 20);
        for i in 0..8 {
            assert!(insert(entry(key("new", &format!("/n{i}")), 100_000, &[])));
        }
        let (_, bytes, max) = stats();
        assert!(bytes <= max, "{bytes} > {max}");
        // The old deployment's entries went first; every new one is still there.
        for i in 0..8 {
            assert!(lookup(&key("new", &format!("/n{i}")), &HeaderMap::default()).is_some());
        }
        assert!(lookup(&key("old", "/o0"), &HeaderMap::default()).is_none());
        assert!(!insert(entry(key("new", "/huge"), 200_000, &[])));
        let re = Regex::new("/n[0-2]$").unwrap();
        assert_eq!(purge(Some(&re)), 3);
        assert!(lookup(&key("new", "/n1"), &HeaderMap::default()).is_none());
        assert!(lookup(&key("new", "/n4"), &HeaderMap::default()).is_some());
        purge(None);
        assert_eq!(stats().0, 0);
        set("", DEFAULT_MAX_BYTES);
    }
}
