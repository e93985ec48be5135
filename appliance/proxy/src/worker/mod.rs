//! Thread-per-core workers. Each owns an io_uring, a provided-buffer ring, one SO_REUSEPORT
//! listener per address, and its connections; nothing is shared with other workers except
//! the immutable `Program` behind an `Arc`.
//!
//! Flow: multishot accept → multishot recv into provided buffers → bytes copied into the
//! connection's input → sans-IO parse → route evaluation → response encoded into the
//! connection's output → one send in flight per connection. Commands from the control thread
//! (config swap, stop) arrive over a channel, announced by an eventfd read on the ring.
//! Errors: a socket error ends that connection only; a ring error ends the worker.

pub mod conn;
pub mod listener;
pub mod proxy;
pub mod upstream;

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http1::date::DateCache;
use crate::http1::parse::has_token;
use crate::http1::response::{encode, Exchange, FileSource};
use crate::http1::{
    buffered, parse_request, BodyKind, ChunkedDecoder, ParseError, Response, Status,
};
use crate::ring::eventfd::EventFd;
use crate::ring::ops::accept::accepted;
use crate::ring::sendfile::send_file;
use crate::ring::{Completion, OpId, Owned, Ring};
use crate::route::ctx::Ctx;
use crate::route::exec::{serve, Outcome};
use crate::route::Program;
use conn::{Conn, Discard, Phase, DISCARD_LIMIT};

const RING_ENTRIES: u32 = 512;
const BUFFERS: u16 = 256;
const BUFFER_SIZE: usize = 16 << 10;
/// Stop parsing pipelined requests while this much output is unsent.
const OUTPUT_HIGH_WATER: usize = 256 << 10;
/// Stop reading from a peer whose unparsed input has grown past this (it pipelines requests
/// without reading the responses); any single request head or buffered body has its own,
/// smaller limit.
const INPUT_HIGH_WATER: usize = 32 << 20;
/// How long a connection that refused an oversized body drains input before closing
/// (Go's `rstAvoidanceDelay`).
const LINGER: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(250);
/// The clock's shortest wait: deadlines this close share one wake-up (each wake-up scans
/// every connection, so thousands of them with deadlines spread out cost at most 100 scans
/// a second).
const MIN_TICK: Duration = Duration::from_millis(10);
/// Largest request body buffered for handlers that read it (`{http.request.body}`).
const MAX_BUFFERED_BODY: usize = 16 << 20;
/// How much of a streamed file body is read per send.
const STREAM_CHUNK: usize = 256 << 10;
/// Most unsent bytes a client socket holds (TCP_NOTSENT_LOWAT). Beyond the window, queued
/// bytes are pushed out by the client's ACKs, in whatever context receives them: on a local
/// client that is the client's own CPU. Kept low, the rest waits in the file or buffer and
/// the worker sends it when woken (a 1 MB file: the client's kernel time per response
/// 256 -> 156 µs, p95 at a fixed rate 7.3 -> 5.2 ms; docs/engine.md), and idle
/// connections park no response bytes in the kernel.
const UNSENT_LOWAT: u32 = 16 << 10;
/// Length of "PRI * HTTP/2.0", what Go peeks for before reading a first request.
const H2C_PREFACE_LINE: usize = 14;

const KIND_SHIFT: u32 = 56;
const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const WAKE: u64 = 4;
const CLOCK: u64 = 5;
const CANCEL: u64 = 6;
const UP_CONNECT: u64 = 7;
const UP_SEND: u64 = 8;
const UP_RECV: u64 = 9;
const UP_TIMER: u64 = 10;

fn tag(kind: u64, index: usize) -> u64 {
    kind << KIND_SHIFT | index as u64
}

/// A listener to run: a fresh socket, or `None` to keep the worker's socket for `addr`.
#[derive(Debug)]
pub struct ListenerSpec {
    pub addr: SocketAddr,
    pub server: usize,
    pub socket: Option<OwnedFd>,
}

/// Messages from the control thread.
pub enum Command {
    Swap {
        program: Arc<Program>,
        listeners: Vec<ListenerSpec>,
        ack: Sender<()>,
    },
    Stop {
        grace: Duration,
    },
}

struct Listener {
    addr: SocketAddr,
    fd: OwnedFd,
    server: usize,
    accept: Option<OpId>,
}

pub struct Worker {
    ring: Ring,
    program: Arc<Program>,
    listeners: Vec<Option<Listener>>,
    conns: Vec<Option<Conn>>,
    free_conns: Vec<usize>,
    rx: Receiver<Command>,
    wake: Arc<EventFd>,
    date: DateCache,
    stop_deadline: Option<Instant>,
    clock: Option<OpId>,
    wake_op: Option<OpId>,
    /// Upstream connections of `reverse_proxy` (busy and pooled).
    ups: Vec<Option<upstream::UpConn>>,
    free_ups: Vec<usize>,
    idle_ups: upstream::IdlePool,
    /// Client slots whose output waits for the end of the completion group (see
    /// `proxy::flush_later`).
    flush_later: Vec<usize>,
    /// The provided-buffer group upstream sockets read into.
    up_group: u16,
}

impl Worker {
    /// Sets up the ring and buffers; fails before any socket is touched.
    pub fn new(
        program: Arc<Program>,
        listeners: Vec<ListenerSpec>,
        rx: Receiver<Command>,
        wake: Arc<EventFd>,
    ) -> io::Result<Worker> {
        let mut ring = Ring::new(RING_ENTRIES)?;
        ring.register_buffers(BUFFERS, BUFFER_SIZE)?;
        let up_group = ring.register_buffers(proxy::UP_BUFFERS, proxy::UP_BUFFER_SIZE)?;
        let mut w = Worker {
            ring,
            program,
            listeners: Vec::new(),
            conns: Vec::new(),
            free_conns: Vec::new(),
            rx,
            wake,
            date: DateCache::default(),
            stop_deadline: None,
            clock: None,
            wake_op: None,
            ups: Vec::new(),
            free_ups: Vec::new(),
            idle_ups: upstream::IdlePool::default(),
            flush_later: Vec::new(),
            up_group,
        };
        w.set_listeners(listeners)?;
        w.wake_op = Some(w.ring.read_counter(&*w.wake, tag(WAKE, 0))?);
        w.clock = Some(w.ring.timeout(TICK, tag(CLOCK, 0))?);
        Ok(w)
    }

    /// Runs until stopped and every connection is gone.
    pub fn run(mut self) -> io::Result<()> {
        let mut done = Vec::new();
        loop {
            self.ring.submit_and_wait(1)?;
            self.date.tick();
            self.ring.drain(&mut done);
            for c in done.drain(..) {
                self.complete(c)?;
            }
            self.flush_deferred()?;
            if self.stop_deadline.is_some() && self.conns.iter().all(Option::is_none) {
                break;
            }
        }
        // Hand every lent buffer back before the ring goes away.
        for u in 0..self.ups.len() {
            self.up_close(u)?;
        }
        for op in [self.clock.take(), self.wake_op.take()]
            .into_iter()
            .flatten()
        {
            self.ring.cancel(op, tag(CANCEL, 0))?;
        }
        while self.ring.in_flight() > 0 {
            self.ring.submit_and_wait(1)?;
            self.ring.drain(&mut done);
            done.clear();
        }
        Ok(())
    }

    fn set_listeners(&mut self, specs: Vec<ListenerSpec>) -> io::Result<()> {
        let keep: Vec<SocketAddr> = specs.iter().map(|s| s.addr).collect();
        for i in 0..self.listeners.len() {
            let gone = self.listeners[i]
                .as_ref()
                .is_some_and(|l| !keep.contains(&l.addr));
            if gone {
                let l = self.listeners[i].take().expect("checked");
                if let Some(op) = l.accept {
                    self.ring.cancel(op, tag(CANCEL, 0))?;
                }
            }
        }
        for spec in specs {
            match spec.socket {
                Some(fd) => {
                    let index = match self.listeners.iter().position(Option::is_none) {
                        Some(i) => i,
                        None => {
                            self.listeners.push(None);
                            self.listeners.len() - 1
                        }
                    };
                    let accept = self.ring.accept_multi(&fd, tag(ACCEPT, index))?;
                    self.listeners[index] = Some(Listener {
                        addr: spec.addr,
                        fd,
                        server: spec.server,
                        accept: Some(accept),
                    });
                }
                None => {
                    for l in self.listeners.iter_mut().flatten() {
                        if l.addr == spec.addr {
                            l.server = spec.server;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn complete(&mut self, c: Completion) -> io::Result<()> {
        let index = (c.tag & ((1 << KIND_SHIFT) - 1)) as usize;
        match c.tag >> KIND_SHIFT {
            ACCEPT => self.on_accept(index, c),
            RECV => self.on_recv(index, c),
            SEND => self.on_send(index, c),
            WAKE => self.on_wake(c),
            CLOCK => self.on_clock(),
            UP_CONNECT => self.on_up_connect(index, c),
            UP_SEND => self.on_up_send(index, c),
            UP_RECV => self.on_up_recv(index, c),
            UP_TIMER => self.on_up_timer(index, c),
            _ => Ok(()),
        }
    }

    fn on_accept(&mut self, index: usize, c: Completion) -> io::Result<()> {
        let Some(l) = self.listeners.get_mut(index).and_then(Option::as_mut) else {
            return Ok(());
        };
        if l.accept != Some(c.op) {
            return Ok(());
        }
        let server = l.server;
        if !c.more {
            l.accept = None;
            if self.stop_deadline.is_none() {
                let op = self.ring.accept_multi(&l.fd, tag(ACCEPT, index))?;
                l.accept = Some(op);
            }
        }
        let Ok(fd) = accepted(&c) else { return Ok(()) };
        if self.stop_deadline.is_some() {
            return Ok(());
        }
        // Go enables TCP_NODELAY and keepalive on every accepted connection.
        let srv = &self.program.servers[server];
        let sock = socket2::SockRef::from(&fd);
        let _ = sock.set_tcp_nodelay(true);
        let _ = sock.set_tcp_notsent_lowat(UNSENT_LOWAT);
        let mut keepalive = socket2::TcpKeepalive::new()
            .with_interval(srv.keepalive.interval)
            .with_retries(srv.keepalive.count);
        if let Some(idle) = srv.keepalive.idle {
            keepalive = keepalive.with_time(idle);
        }
        let _ = sock.set_tcp_keepalive(&keepalive);
        let now = self.date.instant();
        let mut conn = Conn::new(fd, server);
        conn.started = true;
        conn.deadline = srv.read_header_timeout.map(|t| now + t);
        let slot = match self.free_conns.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        conn.recv = Some(self.ring.recv_multi(&conn.fd, tag(RECV, slot))?);
        self.conns[slot] = Some(conn);
        Ok(())
    }

    fn on_recv(&mut self, i: usize, c: Completion) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        if conn.recv != Some(c.op) {
            return Ok(());
        }
        if !c.more {
            conn.recv = None;
        }
        if c.result > 0 {
            let bid = c
                .buffer_id
                .expect("recv with buffer select names its buffer");
            let bufs = self.ring.buffers();
            if !conn.lingering && !conn.closing {
                conn.input
                    .extend_from_slice(bufs.filled(bid, c.result as usize));
            }
            bufs.recycle(bid);
            self.process(i);
            self.drive(i)?;
        } else if c.result == 0 {
            conn.read_closed = true;
            if matches!(
                conn.phase,
                Phase::Body {
                    response: Some(_),
                    ..
                }
            ) {
                // Go answers a request whose body ended early, then closes.
                self.body_failed(i);
            } else if conn.lingering || conn.output.is_empty() && !conn.sending {
                self.teardown(i)?;
            } else {
                conn.close_after = true;
            }
        } else if c.result != -libc::ENOBUFS && c.result != -libc::ECANCELED {
            self.teardown(i)?;
        }
        self.flush(i)?;
        self.rearm_recv(i)?;
        self.maybe_free(i);
        Ok(())
    }

    /// Keeps exactly one multishot recv armed while reading makes sense: not after EOF or
    /// teardown, and not while a peer that pipelines without reading our answers has filled
    /// the input past `INPUT_HIGH_WATER` (then it resumes once sends drain the backlog).
    fn rearm_recv(&mut self, i: usize) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        let flooded = conn.input.len() > INPUT_HIGH_WATER;
        match conn.recv {
            Some(op) if flooded && !conn.read_paused => {
                conn.read_paused = true;
                self.ring.cancel(op, tag(CANCEL, 0))?;
            }
            None if !conn.read_closed && !conn.closing && !flooded => {
                conn.read_paused = false;
                conn.recv = Some(self.ring.recv_multi(&conn.fd, tag(RECV, i))?);
            }
            _ => {}
        }
        Ok(())
    }

    fn on_send(&mut self, i: usize, c: Completion) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        conn.sending = false;
        if c.result < 0 || conn.closing {
            self.teardown(i)?;
            self.maybe_free(i);
            return Ok(());
        }
        // A send hands its buffer back; the wait for room after a sendfile has none.
        if let Owned::Buf(mut buf, offset) = c.owned {
            let sent = offset + c.result as usize;
            if sent < buf.len() {
                conn.sending = true;
                self.ring.send(&conn.fd, buf, sent, tag(SEND, i))?;
                return Ok(());
            }
            buf.clear();
            conn.spare = buf;
        }
        self.process(i);
        self.drive(i)?;
        self.flush(i)?;
        self.rearm_recv(i)?;
        self.maybe_free(i);
        Ok(())
    }

    fn on_wake(&mut self, c: Completion) -> io::Result<()> {
        if Some(c.op) != self.wake_op {
            return Ok(());
        }
        self.wake_op = None;
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Swap {
                    program,
                    listeners,
                    ack,
                } => {
                    self.program = program;
                    self.proxy_reloaded();
                    self.set_listeners(listeners)?;
                    let _ = ack.send(());
                }
                Command::Stop { grace } => self.begin_stop(grace)?,
            }
        }
        if self.stop_deadline.is_none() || self.conns.iter().any(Option::is_some) {
            self.wake_op = Some(self.ring.read_counter(&*self.wake, tag(WAKE, 0))?);
        }
        Ok(())
    }

    fn begin_stop(&mut self, grace: Duration) -> io::Result<()> {
        self.stop_deadline = Some(Instant::now() + grace);
        for l in self.listeners.drain(..).flatten() {
            if let Some(op) = l.accept {
                self.ring.cancel(op, tag(CANCEL, 0))?;
            }
        }
        for u in 0..self.ups.len() {
            if self.ups[u].as_ref().is_some_and(|c| c.owner.is_none()) {
                self.up_close(u)?;
            }
        }
        for i in 0..self.conns.len() {
            let Some(conn) = self.conns[i].as_mut() else {
                continue;
            };
            if grace.is_zero() || conn.idle() {
                self.teardown(i)?;
                self.maybe_free(i);
            }
        }
        Ok(())
    }

    fn on_clock(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let hard_stop = self.stop_deadline.is_some_and(|d| now >= d);
        for i in 0..self.conns.len() {
            let Some(conn) = self.conns[i].as_ref() else {
                continue;
            };
            let write_expired = conn.writing() && conn.write_deadline.is_some_and(|d| now >= d);
            if hard_stop || write_expired {
                self.teardown(i)?;
            } else if conn.deadline.is_some_and(|d| now >= d) {
                self.read_expired(i)?;
            }
            self.maybe_free(i);
        }
        self.up_clock(now)?;
        self.clock = None;
        if self.stop_deadline.is_none() || self.conns.iter().any(Option::is_some) {
            let wait = self.next_deadline(now).saturating_duration_since(now);
            self.clock = Some(self.ring.timeout(wait.max(MIN_TICK), tag(CLOCK, 0))?);
        }
        Ok(())
    }

    /// When the clock must next run: a tick from `now`, or sooner for a client or upstream
    /// deadline due before then, so a timeout ends the connection when Caddy's would (Go's
    /// deadlines are timers of their own) rather than up to a tick late.
    fn next_deadline(&self, now: Instant) -> Instant {
        let upstream = self
            .ups
            .iter()
            .flatten()
            .filter(|c| !c.closing)
            .map(|c| c.deadline.map(|(at, _)| at));
        self.conns
            .iter()
            .flatten()
            .flat_map(|c| [c.deadline, c.write_deadline.filter(|_| c.writing())])
            .chain(upstream)
            .chain([self.stop_deadline])
            .flatten()
            .filter(|d| *d > now)
            .fold(now + TICK, Instant::min)
    }

    /// The read deadline passed. Waiting for a head (idle, or part of one arrived), Go closes
    /// without a word; while a handler reads the body, it gets what arrived and the rest is
    /// skipped with no deadline; while the body is skipped after the handler, the answer goes
    /// out with `Connection: close` and the connection closes.
    fn read_expired(&mut self, i: usize) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        conn.deadline = None;
        match &mut conn.phase {
            Phase::Head if conn.wants_body && !conn.lingering => {
                conn.body_cut = true;
                self.process(i);
                self.drive(i)?;
            }
            Phase::Body {
                response: Some(_), ..
            } if !conn.lingering => self.body_failed(i),
            _ => return self.teardown(i),
        }
        self.flush(i)
    }

    /// Skipping the rest of a body failed (deadline or end of input): the answer waiting for
    /// it goes out, then the connection closes. Go adds `Connection: close` unless the
    /// handler had read the body itself (and closed it after its read timed out).
    fn body_failed(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let Phase::Body {
            response: Some(resp),
            mut exchange,
            ..
        } = std::mem::replace(&mut conn.phase, Phase::Head)
        else {
            return;
        };
        exchange.close |= !std::mem::take(&mut conn.body_cut);
        let program = Arc::clone(&self.program);
        let server = &program.servers[conn.server.min(program.servers.len() - 1)];
        Self::respond(conn, &resp, exchange, &mut self.date, server);
        conn.phase = Phase::Done;
        conn.close_after = true;
    }

    /// Starts dropping a connection: cancel its recv; the slot frees once no op is in flight.
    fn teardown(&mut self, i: usize) -> io::Result<()> {
        self.proxy_teardown(i)?;
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        if !conn.closing {
            conn.closing = true;
            conn.read_closed = true;
            if conn.sending {
                // A send waiting on a peer that stopped reading would hold the slot forever;
                // the shutdown fails it (what was queued still goes out, then the FIN).
                let _ = socket2::SockRef::from(&conn.fd).shutdown(std::net::Shutdown::Both);
            }
            if let Some(op) = conn.recv {
                self.ring.cancel(op, tag(CANCEL, 0))?;
            }
        }
        Ok(())
    }

    fn maybe_free(&mut self, i: usize) {
        let free = self
            .conns
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.closing && c.recv.is_none() && !c.sending);
        if free {
            self.conns[i] = None;
            self.free_conns.push(i);
        }
    }

    /// Queues output: one send in flight at a time; starts the close once all is sent.
    fn flush(&mut self, i: usize) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        if conn.sending || conn.closing {
            return Ok(());
        }
        if conn.writing()
            && conn
                .write_deadline
                .is_some_and(|d| self.date.instant() >= d)
        {
            // Go's write fails once the deadline passed: the answer never leaves.
            return self.teardown(i);
        }
        if conn.output.is_empty() {
            if let Some(file) = &mut conn.stream {
                if let FileSource::Open(f) = &file.source {
                    // The kernel sends an open file from the page cache itself; the poll's
                    // completion comes back here (and to pipelined requests) like a send's.
                    let Ok(n) = send_file(&conn.fd, f, file.offset, file.len) else {
                        conn.stream = None;
                        return self.teardown(i);
                    };
                    file.offset += n;
                    file.len -= n;
                    if file.len == 0 {
                        conn.stream = None;
                    }
                    conn.sending = true;
                    self.ring.poll_writable(&conn.fd, tag(SEND, i))?;
                    return Ok(());
                }
                if file.read_chunk(STREAM_CHUNK, &mut conn.output).is_err() {
                    // The length was promised already; all we can do is cut the connection.
                    conn.stream = None;
                    conn.output.clear();
                    return self.teardown(i);
                }
                if file.len == 0 {
                    conn.stream = None;
                }
            }
        }
        if !conn.output.is_empty() {
            let spare = std::mem::take(&mut conn.spare);
            let buf = std::mem::replace(&mut conn.output, spare);
            conn.sending = true;
            self.ring.send(&conn.fd, buf, 0, tag(SEND, i))?;
        } else if conn.close_after && !conn.lingering {
            if !conn.linger || conn.read_closed {
                return self.teardown(i);
            }
            // Go's closeWriteAndWait: FIN, then keep draining for a moment so the peer reads
            // the response rather than a reset, then close.
            let _ = socket2::SockRef::from(&conn.fd).shutdown(std::net::Shutdown::Write);
            conn.lingering = true;
            conn.input.clear();
            conn.deadline = Some(self.date.instant() + LINGER);
        }
        Ok(())
    }

    /// Parses and answers as many buffered requests as output room allows.
    fn process(&mut self, i: usize) {
        let program = Arc::clone(&self.program);
        let stopping = self.stop_deadline.is_some();
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let server = &program.servers[conn.server.min(program.servers.len() - 1)];
        loop {
            // A file still streaming holds back the responses pipelined behind it.
            let busy = conn.output.len() > OUTPUT_HIGH_WATER || conn.stream.is_some();
            if conn.closing || conn.lingering || busy {
                return;
            }
            match &mut conn.phase {
                Phase::Done | Phase::Proxy(_) => return,
                Phase::Head => {
                    if !Self::next_request(conn, &program, server, stopping, &mut self.date) {
                        return;
                    }
                }
                Phase::Body {
                    discard,
                    seen,
                    response,
                    exchange,
                } => {
                    let budget = DISCARD_LIMIT + 1 - *seen;
                    let (used, data, finished, broken) = match discard {
                        Discard::Length(left) => {
                            let take = (*left).min(budget).min(conn.input.len() as u64);
                            *left -= take;
                            (take as usize, take, *left == 0, false)
                        }
                        Discard::Chunked(dec) => {
                            let mut data = 0u64;
                            match dec.feed(&conn.input, |d| data += d.len() as u64) {
                                Ok(p) => (p.consumed, data, p.done, false),
                                Err(_) => (conn.input.len(), data, false, true),
                            }
                        }
                    };
                    conn.input.drain(..used);
                    *seen += data;
                    if broken {
                        // Malformed chunked framing: the rest of the stream cannot be trusted.
                        conn.output
                            .extend_from_slice(&ParseError::BadRequest(None).response());
                        conn.phase = Phase::Done;
                        conn.close_after = true;
                        return;
                    }
                    let mut x = *exchange;
                    if *seen > DISCARD_LIMIT {
                        x.body_too_large = true;
                    } else if !finished {
                        return;
                    }
                    let resp = response.take();
                    // Past the limit, Go answers, then closes the body, which reads on (up to
                    // the limit again) when no more than that is declared to be left, and only
                    // then sends its FIN (closeWriteAndWait).
                    let reads_on = x.body_too_large
                        && resp.is_some()
                        && match discard {
                            Discard::Length(left) => *left > 0 && *left <= DISCARD_LIMIT,
                            Discard::Chunked(_) => !finished,
                        };
                    let old = std::mem::replace(&mut conn.phase, Phase::Head);
                    conn.body_cut = false;
                    match resp {
                        Some(resp) => {
                            Self::respond(conn, &resp, x, &mut self.date, server);
                            if let (true, Phase::Body { discard, .. }) = (reads_on, old) {
                                conn.close_after = false;
                                conn.phase = Phase::Body {
                                    discard,
                                    seen: 0,
                                    response: None,
                                    exchange: x,
                                };
                            }
                        }
                        // The response went out already (relayed from an upstream, or above).
                        None if x.body_too_large => {
                            conn.phase = Phase::Done;
                            conn.close_after = true;
                            conn.linger = true;
                        }
                        None => conn.deadline = Some(self.date.instant() + server.idle_timeout),
                    }
                }
            }
        }
    }

    /// Handles the request at the front of the input; false when it must wait for bytes.
    fn next_request(
        conn: &mut Conn,
        program: &Arc<Program>,
        server: &crate::route::Server,
        stopping: bool,
        date: &mut DateCache,
    ) -> bool {
        if conn.after_post {
            let n = conn
                .input
                .iter()
                .take(4)
                .take_while(|c| **c == b'\r' || **c == b'\n')
                .count();
            conn.input.drain(..n);
        }
        // Go first peeks for the 14-byte h2c preface line ("PRI * HTTP/2.0"), so it parses
        // nothing on a fresh connection until that much has arrived.
        if conn.input.is_empty() || (conn.fresh && conn.input.len() < H2C_PREFACE_LINE) {
            return false;
        }
        conn.fresh = false;
        if !conn.started && !conn.wants_body && conn.input.len() >= 4 {
            // Go switches from the idle deadline to the header deadline once the next request
            // shows its first 4 bytes (its Peek(4) between requests).
            let now = date.instant();
            conn.started = true;
            conn.deadline = server.read_header_timeout.map(|t| now + t);
        }
        let head = match parse_request(&conn.input, &server.parser) {
            Ok(Status::Partial) => return false,
            Err(e) => {
                // Go arms the write deadline however reading the head ended.
                conn.write_deadline = server.write_timeout.map(|t| date.instant() + t);
                conn.output.extend_from_slice(&e.response());
                conn.phase = Phase::Done;
                conn.close_after = true;
                // Go drains (closeWriteAndWait) only after 431, as the peer may still be
                // sending the oversized head; other errors close at once.
                conn.linger = e == ParseError::TooLarge;
                return false;
            }
            Ok(Status::Complete(head, used)) => (head, used),
        };
        let (head, used) = head;
        if std::mem::take(&mut conn.started) {
            // The head is in (parsed again later only to rerun routes that read the body):
            // Caddy gives the body `read_timeout` and the answer `write_timeout` from now.
            let now = date.instant();
            conn.deadline = server.read_timeout.map(|t| now + t);
            conn.write_deadline = server.write_timeout.map(|t| now + t);
        }
        let exchange = Exchange {
            http11: head.version.at_least_11(),
            head: head.method == "HEAD",
            close: head.close || stopping,
            keep_alive_10: head.keep_alive_10 && !stopping,
            body_too_large: false,
        };
        if head.expect.is_some_and(|v| !has_token([v], "100-continue")) {
            // Go answers this itself, before any handler: no Server header, then close.
            let mut r = Response::new(417);
            r.headers.set("Connection", "close");
            let _ = encode(&r, exchange, date.now(), &mut conn.output);
            conn.phase = Phase::Done;
            conn.close_after = true;
            return false;
        }
        if head.method == "OPTIONS" && head.target == "*" {
            // Go's own handler for `OPTIONS *`; Caddy never sees it.
            let mut r = Response::new(200);
            r.headers.set("Content-Length", "0");
            conn.input.drain(..used);
            conn.deadline = None;
            conn.phase = Phase::Head;
            Self::respond(conn, &r, exchange, date, server);
            return true;
        }
        if head.method.len() > 32 {
            // Caddy refuses a very long method before any route, with an empty 405.
            let mut r = Response::new(405);
            r.headers.set("Server", "Caddy");
            let discard = discard_of(head.body);
            conn.input.drain(..used);
            conn.deadline = None;
            conn.phase = Phase::Head;
            match discard {
                None => Self::respond(conn, &r, exchange, date, server),
                Some(discard) => {
                    conn.phase = Phase::Body {
                        discard,
                        seen: 0,
                        response: Some(r),
                        exchange,
                    }
                }
            }
            return true;
        }
        // A handler that reads the body sees all of it: the routes ran once without it and
        // asked; the head is parsed again each time until the whole body is in.
        let mut body_data = None;
        let mut consumed = used;
        let mut rest = None;
        if conn.wants_body {
            let got = match buffered(&conn.input[used..], head.body) {
                Ok(None) if conn.body_cut => cut_body(&conn.input[used..], head.body),
                other => other.map(|b| b.map(|(data, wire)| (data, wire, None))),
            };
            match got {
                Ok(Some((data, wire, left))) => {
                    body_data = Some(data);
                    consumed += wire;
                    rest = left;
                }
                Ok(None) => {
                    if conn.input.len() > MAX_BUFFERED_BODY {
                        let mut r = Response::new(413);
                        r.headers.set("Connection", "close");
                        let _ = encode(&r, exchange, date.now(), &mut conn.output);
                        conn.phase = Phase::Done;
                        conn.close_after = true;
                    }
                    return false;
                }
                Err(_) => {
                    conn.output
                        .extend_from_slice(&ParseError::BadRequest(None).response());
                    conn.phase = Phase::Done;
                    conn.close_after = true;
                    return false;
                }
            }
        }
        if conn.peer.is_none() {
            let sock = socket2::SockRef::from(&conn.fd);
            let canonical =
                |a: Option<SocketAddr>| a.map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()));
            conn.peer = canonical(sock.peer_addr().ok().and_then(|a| a.as_socket()));
            conn.local = canonical(sock.local_addr().ok().and_then(|a| a.as_socket()));
        }
        let mut ctx = Ctx::for_server(&head, conn.peer, conn.local, Some(server));
        ctx.trace.started_at(date.instant());
        ctx.body = body_data.as_deref();
        let outcome = serve(server, &mut ctx);
        if ctx.body_wanted.get() && body_data.is_none() {
            // Go sends 100 Continue when a handler first reads a body the client holds back.
            let expects = head.expect.is_some_and(|v| has_token([v], "100-continue"));
            if expects && exchange.http11 {
                conn.output
                    .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            conn.wants_body = true;
            return true;
        }
        crate::observe::finished(server, &ctx);
        let call = ctx.proxy.call.take();
        let request_id = ctx.request_id().map(str::to_owned);
        let checked = std::mem::take(&mut ctx.checked);
        let resp = std::mem::take(&mut ctx.resp);
        conn.output.extend_from_slice(&ctx.interim);
        let body = if body_data.is_some() {
            BodyKind::None
        } else {
            head.body
        };
        let post = head.method == "POST";
        let kept =
            (outcome == Outcome::Proxy).then(|| proxy::KeptHead::new(&head, &conn.input[..used]));
        drop(ctx);
        drop(head);
        conn.input.drain(..consumed);
        conn.after_post = post;
        conn.wants_body = false;
        let body_deadline = conn.deadline.take();
        let cut = std::mem::take(&mut conn.body_cut);
        if outcome == Outcome::Abort {
            // No FIN-and-drain: flush() sees nothing to send on a read-closed connection and
            // tears it down at once, like Go's abort panic.
            conn.phase = Phase::Done;
            conn.close_after = true;
            conn.read_closed = true;
            return false;
        }
        let discard = rest.or(discard_of(body));
        if outcome == Outcome::Proxy {
            // The routes wait for an upstream round trip; the head is kept for their replay.
            let call = call.expect("a Proxy outcome carries its call");
            let p = proxy::Proxying {
                program: Arc::clone(program),
                server: conn.server,
                head: kept.expect("kept for a Proxy outcome"),
                body_data,
                exchange,
                post,
                client_body: discard,
                done: Vec::new(),
                stage: proxy::Stage::Start(call),
                request_id,
                checked,
                arrived: date.instant(),
            };
            conn.phase = Phase::Proxy(Box::new(p));
            return false;
        }
        match discard {
            None => Self::respond(conn, &resp, exchange, date, server),
            Some(discard) => {
                // Skipping the body after the handler is bound by the read deadline; what
                // a handler left after its own read timed out is skipped with none (Go clears
                // the deadline then).
                conn.deadline = if cut { None } else { body_deadline };
                conn.body_cut = cut;
                conn.phase = Phase::Body {
                    discard,
                    seen: 0,
                    response: Some(resp),
                    exchange,
                }
            }
        }
        true
    }

    fn respond(
        conn: &mut Conn,
        resp: &Response,
        x: Exchange,
        date: &mut DateCache,
        server: &crate::route::Server,
    ) {
        if !x.head {
            conn.stream = resp.file.clone();
        }
        if encode(resp, x, date.now(), &mut conn.output) {
            conn.phase = Phase::Done;
            conn.close_after = true;
            conn.linger = x.body_too_large;
        } else {
            conn.deadline = Some(date.instant() + server.idle_timeout);
        }
    }
}

/// A body as a handler sees it: its data, the input bytes it spans, and how to skip the rest.
type SeenBody = (Vec<u8>, usize, Option<Discard>);

/// The part of a body that arrived before the read deadline, as a handler reading it sees it.
fn cut_body(
    input: &[u8],
    kind: BodyKind,
) -> Result<Option<SeenBody>, crate::http1::body::ChunkError> {
    match kind {
        BodyKind::None => Ok(Some((Vec::new(), 0, None))),
        BodyKind::Length(n) => {
            let have = usize::try_from(n).map_or(input.len(), |n| n.min(input.len()));
            let left = n - have as u64;
            let rest = (left > 0).then_some(Discard::Length(left));
            Ok(Some((input[..have].to_vec(), have, rest)))
        }
        // Go's chunked reader keeps its timeout error, so nothing more of the body is read:
        // whatever follows is taken for the next request.
        BodyKind::Chunked => {
            let mut data = Vec::new();
            let p = ChunkedDecoder::default().feed(input, |d| data.extend_from_slice(d))?;
            Ok(Some((data, p.consumed, None)))
        }
    }
}

/// How to skip a body of this kind, if there is one.
fn discard_of(kind: BodyKind) -> Option<Discard> {
    match kind {
        BodyKind::None => None,
        BodyKind::Length(n) => Some(Discard::Length(n)),
        BodyKind::Chunked => Some(Discard::Chunked(ChunkedDecoder::default())),
    }
}
