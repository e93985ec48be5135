//! Upstream connections of `reverse_proxy`, driven on the worker's ring like client ones:
//! connect, one send in flight, a multishot recv into the provided buffers. Each worker keeps
//! its own keep-alive pool per upstream address (Caddy's transport defaults: up to 32 idle
//! connections per host, closed after 2 minutes idle); an idle pooled connection keeps its
//! recv armed, so an upstream that closes it is noticed and the socket dropped at once.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::buf::Lent;
use crate::ring::OpId;
use crate::route::handlers::reverse_proxy::fastcgi::record::Decoder;
use crate::route::handlers::reverse_proxy::Peer;

/// Why an upstream deadline exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Dial,
    /// Waiting for the response head after the request went out.
    Header,
    /// Between reads of the response (`read_timeout`; a FastCGI exchange's whole response).
    Read,
    /// A FastCGI request not all written yet (`write_timeout`).
    Write,
    /// Idle in the pool.
    Idle,
}

#[derive(Debug)]
pub struct UpConn {
    pub fd: OwnedFd,
    pub addr: Peer,
    pub connect: Option<OpId>,
    pub recv: Option<OpId>,
    pub sending: bool,
    pub output: Vec<u8>,
    pub spare: Vec<u8>,
    pub input: Vec<u8>,
    /// The client connection slot this exchange belongs to; `None` while pooled.
    pub owner: Option<usize>,
    /// Teardown started: the slot frees once no op is in flight.
    pub closing: bool,
    /// The upstream closed its side (or reading failed).
    pub eof: bool,
    /// Reading (or connecting) failed with this errno.
    pub error: Option<i32>,
    /// Sending failed with this errno: the upload stops, but a response may still arrive
    /// (an upstream that answers early and closes its reading side).
    pub write_error: Option<i32>,
    /// Carried an earlier exchange (a failure before any answer may be a stale close).
    pub reused: bool,
    /// Recv cancelled while the client drains what was already read.
    pub read_paused: bool,
    pub deadline: Option<(Instant, Wait)>,
    /// Bytes of the current read still in their buffer while the routes answer the response
    /// head in front of them: until they are taken, the connection cannot go back to the pool.
    pub unread: usize,
    /// A FastCGI responder: its records are translated into `input` as they arrive.
    pub fcgi: Option<Decoder>,
    /// Body bytes read into provided buffers that go to the client as they are, in place,
    /// after all of its output (nothing is added to that output while they wait).
    pub lent: Vec<Lent>,
}

impl UpConn {
    pub fn new(fd: OwnedFd, addr: Peer, owner: usize) -> UpConn {
        UpConn {
            fd,
            addr,
            connect: None,
            recv: None,
            sending: false,
            output: Vec::new(),
            spare: Vec::new(),
            input: Vec::new(),
            owner: Some(owner),
            closing: false,
            eof: false,
            error: None,
            write_error: None,
            reused: false,
            read_paused: false,
            deadline: None,
            unread: 0,
            fcgi: None,
            lent: Vec::new(),
        }
    }

    /// Takes bytes read from the upstream into `input` (through the FastCGI decoder for a
    /// responder); `eof` when the upstream closed. A responder's broken output is a
    /// protocol error, like a reset.
    pub fn take_input(&mut self, data: &[u8], eof: bool) {
        let Some(d) = &mut self.fcgi else {
            self.input.extend_from_slice(data);
            return;
        };
        let fed = if eof {
            d.end(&mut self.input)
        } else {
            d.feed(data, &mut self.input)
        };
        if fed.is_err() {
            self.error = Some(libc::EPROTO);
        }
    }

    /// Bytes waiting in `lent`.
    pub fn lent_bytes(&self) -> usize {
        self.lent.iter().map(|l| l.len).sum()
    }

    /// Connected, and neither failed nor closed.
    pub fn ready(&self) -> bool {
        self.connect.is_none()
            && !self.closing
            && !self.eof
            && self.error.is_none()
            && self.write_error.is_none()
    }
}

/// Idle connections per upstream address, most recently used last.
#[derive(Debug, Default)]
pub struct IdlePool {
    idle: HashMap<Peer, Vec<usize>>,
}

impl IdlePool {
    pub fn take(&mut self, addr: &Peer) -> Option<usize> {
        self.idle.get_mut(addr)?.pop()
    }

    /// Parks `slot`; false when `max` connections to `addr` were idle already, which makes
    /// it a surplus connection (see `SURPLUS_IDLE`).
    pub fn put(&mut self, addr: Peer, slot: usize, max: usize) -> bool {
        let list = self.idle.entry(addr).or_default();
        list.push(slot);
        list.len() <= max
    }

    pub fn remove(&mut self, addr: &Peer, slot: usize) {
        if let Some(list) = self.idle.get_mut(addr) {
            list.retain(|s| *s != slot);
        }
    }
}

/// Go's text for a socket errno, as it appears in its dial and I/O errors.
pub fn errno_text(errno: i32) -> String {
    match errno {
        libc::ECONNREFUSED => "connection refused".to_owned(),
        libc::ECONNRESET => "connection reset by peer".to_owned(),
        libc::EPIPE => "broken pipe".to_owned(),
        libc::ETIMEDOUT => "connection timed out".to_owned(),
        libc::ENETUNREACH => "network is unreachable".to_owned(),
        libc::EHOSTUNREACH => "no route to host".to_owned(),
        libc::EADDRNOTAVAIL => "cannot assign requested address".to_owned(),
        other => {
            let text = std::io::Error::from_raw_os_error(other).to_string();
            let text = text.split(" (os error").next().unwrap_or("").to_owned();
            let mut c = text.chars();
            c.next()
                .map_or(String::new(), |f| f.to_lowercase().chain(c).collect())
        }
    }
}

/// How long an idle pooled connection may wait for reuse before the periodic sweep closes it.
pub fn idle_deadline(now: Instant, idle: Duration) -> (Instant, Wait) {
    (now + idle, Wait::Idle)
}

/// How long a connection released while `max_idle_conns_per_host` were idle already stays
/// for reuse. Go closes it at once, but its requests take connections back one by one as
/// they come; a worker releases a whole completion batch at once, and the requests that
/// follow arrive a batch later, so closing the surplus at once redialled most of it moments
/// later (3-7x Caddy's dials under 64 concurrent clients). One clock step keeps the bound
/// on idle connections without that churn.
pub const SURPLUS_IDLE: Duration = Duration::from_millis(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_errno_texts() {
        assert_eq!(errno_text(libc::ECONNREFUSED), "connection refused");
        assert_eq!(errno_text(libc::ENOENT), "no such file or directory");
    }

    #[test]
    fn pool_limits_per_host() {
        let a = Peer::Tcp("127.0.0.1:1".parse().unwrap());
        let b = Peer::Unix("/run/b.sock".into());
        let mut p = IdlePool::default();
        assert!(p.put(a.clone(), 1, 2) && p.put(a.clone(), 2, 2) && !p.put(a.clone(), 3, 2));
        assert!(p.put(b.clone(), 4, 2));
        // A surplus connection is parked too, most recently used last, until it is closed.
        assert_eq!(p.take(&a), Some(3));
        p.remove(&a, 1);
        assert_eq!(
            (p.take(&a), p.take(&a), p.take(&b)),
            (Some(2), None, Some(4))
        );
    }
}
