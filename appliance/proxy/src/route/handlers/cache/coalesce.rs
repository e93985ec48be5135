//! Request coalescing across workers: the first miss for a key becomes its flight's owner
//! and goes upstream; later misses for the key wait until the owner has stored the response
//! (then they hit) or given up (then they go upstream themselves, without storing waits).
//!
//! Thread-per-core: a waiting request is parked on its own worker, which looks again after a
//! delay (a ring timeout, replaying the routes as a `reverse_proxy` retry does), so no worker
//! ever blocks and no cross-worker wake-up is needed. The delay grows with the flight's age
//! (1 ms to 16 ms), so a waiter on a fast origin answers within a millisecond or two and a
//! slow origin costs a few replays per waiter. A flight whose owner vanished (client gone
//! mid-request) expires after the handler's lock timeout and the next request takes it over.
//!
//! The owner of a flight is its client connection (peer and local address): a replay of the
//! owner's routes after its upstream round trip recognises its own flight. When the owner's
//! response was not storable, the key is marked "pass" for a moment, so the waiters and the
//! requests right behind them go upstream in parallel instead of one by one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::store::Entry;

/// The client connection a flight belongs to.
pub type Owner = (Option<SocketAddr>, Option<SocketAddr>);

/// How long a non-storable answer lets requests for its key bypass coalescing.
const PASS: Duration = Duration::from_secs(1);
const MIN_DELAY: Duration = Duration::from_millis(1);
const MAX_DELAY: Duration = Duration::from_millis(16);

/// What the owner is doing.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Fetching a response to store.
    Fetch,
    /// Fetching again for this stale entry: conditionally when it has validators; it
    /// stands in if the upstream fails.
    Stale(Arc<Entry>),
}

#[derive(Debug)]
enum Slot {
    Running {
        owner: Owner,
        started: Instant,
        mode: Mode,
    },
    Pass(Instant),
}

static FLIGHTS: LazyLock<Mutex<HashMap<String, Slot>>> = LazyLock::new(Default::default);

fn flights() -> std::sync::MutexGuard<'static, HashMap<String, Slot>> {
    FLIGHTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The answer to a miss.
#[derive(Debug, PartialEq, Eq)]
pub enum Join {
    /// This request owns the flight: go upstream.
    Lead,
    /// Another request is fetching: look again after this delay.
    Wait(Duration),
    /// The key's last answer was not storable: go upstream without a flight.
    Pass,
}

/// Joins the flight for `key` (the primary key; the caller adds the owner to it when
/// coalescing is off, so every request leads its own flight).
pub fn join(key: &str, owner: Owner, mode: Mode, lock_timeout: Duration) -> Join {
    let now = Instant::now();
    let mut map = flights();
    match map.get(key) {
        Some(Slot::Running {
            owner: o, started, ..
        }) if *o != owner && now.duration_since(*started) < lock_timeout => {
            let age = now.duration_since(*started);
            return Join::Wait((age / 4).clamp(MIN_DELAY, MAX_DELAY));
        }
        Some(Slot::Pass(until)) if now < *until => return Join::Pass,
        _ => {}
    }
    map.insert(
        key.to_owned(),
        Slot::Running {
            owner,
            started: now,
            mode,
        },
    );
    Join::Lead
}

/// The mode of `owner`'s flight for `key`, if it still owns one.
pub fn mine(key: &str, owner: Owner) -> Option<Mode> {
    match flights().get(key) {
        Some(Slot::Running { owner: o, mode, .. }) if *o == owner => Some(mode.clone()),
        _ => None,
    }
}

/// Whether someone else is fetching `key` right now (stale-while-revalidate serves stale
/// to everyone but the revalidating request).
pub fn busy(key: &str, owner: Owner, lock_timeout: Duration) -> bool {
    matches!(flights().get(key), Some(Slot::Running { owner: o, started, .. })
        if *o != owner && started.elapsed() < lock_timeout)
}

/// Ends `owner`'s flight: stored answers wake the waiters into hits; others mark the key
/// "pass" for a moment.
pub fn release(key: &str, owner: Owner, stored: bool) {
    let mut map = flights();
    if matches!(map.get(key), Some(Slot::Running { owner: o, .. }) if *o == owner) {
        if stored {
            map.remove(key);
        } else {
            map.insert(key.to_owned(), Slot::Pass(Instant::now() + PASS));
        }
    }
    // Passes expire on their own; drop stale ones now and then so the table stays small.
    if map.len() > 4096 {
        let now = Instant::now();
        map.retain(|_, s| !matches!(s, Slot::Pass(until) if *until <= now));
    }
}

/// The client connection `owner` went away: its flights go to the next request for their
/// keys at once instead of expiring after the lock timeout.
pub fn abandon(owner: Owner) {
    flights().retain(|_, s| !matches!(s, Slot::Running { owner: o, .. } if *o == owner));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(port: u16) -> Owner {
        (Some(SocketAddr::from(([127, 0, 0, 1], port))), None)
    }

    #[test]
    fn one_leader_then_waiters() {
        let t = Duration::from_secs(10);
        let k = "coalesce-test-1";
        assert_eq!(join(k, owner(1), Mode::Fetch, t), Join::Lead);
        assert!(matches!(join(k, owner(2), Mode::Fetch, t), Join::Wait(d) if d >= MIN_DELAY));
        assert!(mine(k, owner(1)).is_some() && mine(k, owner(2)).is_none());
        assert!(busy(k, owner(2), t) && !busy(k, owner(1), t));
        // The owner itself re-entering keeps leading.
        assert_eq!(join(k, owner(1), Mode::Fetch, t), Join::Lead);
        release(k, owner(2), true);
        assert!(mine(k, owner(1)).is_some(), "only the owner releases");
        release(k, owner(1), true);
        assert_eq!(join(k, owner(2), Mode::Fetch, t), Join::Lead);
        release(k, owner(2), false);
        assert_eq!(join(k, owner(3), Mode::Fetch, t), Join::Pass);
        let k = "coalesce-test-3";
        assert_eq!(join(k, owner(4), Mode::Fetch, t), Join::Lead);
        abandon(owner(4));
        assert_eq!(join(k, owner(5), Mode::Fetch, t), Join::Lead);
    }

    #[test]
    fn abandoned_flight_expires() {
        let k = "coalesce-test-2";
        assert_eq!(join(k, owner(1), Mode::Fetch, Duration::ZERO), Join::Lead);
        assert_eq!(join(k, owner(2), Mode::Fetch, Duration::ZERO), Join::Lead);
        assert!(mine(k, owner(2)).is_some());
    }
}
