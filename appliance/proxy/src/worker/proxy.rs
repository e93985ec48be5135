//! `reverse_proxy` on a worker: the round trips a request's routes ask for, and the replay of
//! the routes with each result (see `route::handlers::reverse_proxy`).
//!
//! Flow of one proxied request: the routes stop with a [`Call`]; the request head is kept
//! (the routes run again from it), the client's body stays on the wire. A call takes a
//! pooled connection to the upstream or connects a new one, sends the prepared head, then
//! forwards the client's body as it arrives (Content-Length bytes as they are, chunked
//! bodies re-chunked, like Go's transport). The response head is parsed as it comes in;
//! 1xx heads are passed on to the client. With the head, the routes run again: they either
//! copy the response (head encoded for the client at once, body relayed as it arrives,
//! re-framed for the client, without buffering it whole), answer otherwise (the upstream
//! body is dropped), retry, or fail into the error routes. A failure before the head
//! (refused or timed-out dial, reset, malformed head, header timeout) becomes the
//! invocation's failure instead. The connection goes back to the worker's pool when the
//! exchange ended cleanly on both sides.

use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{Discard, Phase};
use super::upstream::{errno_text, idle_deadline, UpConn, Wait, SURPLUS_IDLE};
use super::{tag, Worker, OUTPUT_HIGH_WATER, SEND, UP_CONNECT, UP_RECV, UP_SEND, UP_TIMER};
use crate::buf::Lent;
use crate::http1::client::{parse_response, RequestBody, ResponseBody};
use crate::http1::response::{
    encode, encode_interim, encode_streamed, Exchange, BUFFER_BEFORE_CHUNKING,
};
use crate::http1::sniff::detect_content_type;
use crate::http1::status::body_allowed;
use crate::http1::HeaderMap;
use crate::http1::{BodyKind, ChunkedDecoder, Head, Response, Status, Version};
use crate::ring::{Completion, OpId, Owned};
use crate::route::ctx::{Ctx, HandlerError};
use crate::route::exec::{serve, Outcome};
use crate::route::handlers::cache::{take_capture, Capture, PARKED};
use crate::route::handlers::encode::{StreamEncoder, StreamPlan};
use crate::route::handlers::reverse_proxy::fastcgi::record::Decoder;
use crate::route::handlers::reverse_proxy::fastcgi::BodyFraming;
use crate::route::handlers::reverse_proxy::flush::GoWriter;
use crate::route::handlers::reverse_proxy::hosts::Host;
use crate::route::handlers::reverse_proxy::{
    going_away, Call, Failure, FlushInterval, Invocation, Peer, Streaming, Target, Transport,
};
use crate::route::Program;

/// Stop reading an upstream while this much of its response waits for the client.
const UP_INPUT_HIGH_WATER: usize = 1 << 20;
/// Upstream sockets read into buffers of their own, larger than the client ones: a response
/// body comes in a few reads (loopback delivers up to 64 KiB at a time) rather than one per
/// 16 KiB, each read costing a recv, a completion and often an ACK. Buffers are held only
/// from a completion to its copy, or to the end of the client send that reads them in place
/// (at most a quarter of them at a time, see `BufRing::can_lend`), so a few dozen serve any
/// number of connections. (128 KiB buffers measured slower: 47 against 41 µs per 100 KB
/// response.)
pub(super) const UP_BUFFERS: u16 = 64;
pub(super) const UP_BUFFER_SIZE: usize = 64 << 10;
/// How far into a read the end of a response head is looked for (see `up_read`).
const HEAD_SCAN: usize = 8 << 10;
/// Reads of one upstream waiting, lent, for the client's send (see `pass_through`).
const MAX_LENT: usize = 8;

/// A request being proxied, kept on its client connection.
#[derive(Debug)]
pub struct Proxying {
    /// The program the request started on: every replay runs against it.
    pub program: Arc<Program>,
    pub server: usize,
    /// The client's request head, rebuilt for each replay.
    pub head: KeptHead,
    /// The body, when a handler had it buffered before the proxy ran.
    pub body_data: Option<Vec<u8>>,
    pub exchange: Exchange,
    pub post: bool,
    /// The client body still on the wire (not yet forwarded or skipped).
    pub client_body: Option<Discard>,
    pub done: Vec<Invocation>,
    pub stage: Stage,
    /// `{http.request.uuid}` and password checks from earlier runs, so replays agree.
    pub request_id: Option<String>,
    pub checked: Vec<(String, String, bool)>,
    /// When the request arrived: the access log and metrics time it from here.
    pub arrived: Instant,
}

#[derive(Debug)]
pub enum Stage {
    /// Between a result and the replay that decides what follows.
    Idle,
    /// A call the routes just asked for.
    Start(Call),
    /// Waiting out `try_interval` before the call.
    Waiting(Call, OpId),
    Trip(Box<Trip>),
}

/// The client's request head with where each of its parts lies, so that a replay rebuilds
/// the parsed head without parsing it again.
#[derive(Debug)]
pub struct KeptHead {
    /// The head's bytes: UTF-8 throughout, as the parser took each line as UTF-8.
    text: String,
    method: Range<usize>,
    target: Range<usize>,
    version: Version,
    headers: Vec<(Range<usize>, Range<usize>)>,
    host: Range<usize>,
    body: BodyKind,
    close: bool,
    keep_alive_10: bool,
    expect: Option<Range<usize>>,
}

impl KeptHead {
    /// Keeps `head`, parsed from (and borrowing) `raw`.
    pub fn new(head: &Head<'_>, raw: &[u8]) -> KeptHead {
        let base = raw.as_ptr() as usize;
        // An absent part (no Host) may be a constant "" rather than a slice of `raw`.
        let span = |part: &str| match part.len() {
            0 => 0..0,
            n => {
                let start = part.as_ptr() as usize - base;
                start..start + n
            }
        };
        KeptHead {
            text: std::str::from_utf8(raw)
                .expect("a parsed head is UTF-8")
                .to_owned(),
            method: span(head.method),
            target: span(head.target),
            version: head.version,
            headers: head
                .headers
                .iter()
                .map(|(n, v)| (span(n), span(v)))
                .collect(),
            host: span(head.host),
            body: head.body,
            close: head.close,
            keep_alive_10: head.keep_alive_10,
            expect: head.expect.map(span),
        }
    }

    /// The parsed head, as the parser returned it.
    pub fn head(&self) -> Head<'_> {
        let at = |r: &Range<usize>| &self.text[r.clone()];
        Head {
            method: at(&self.method),
            target: at(&self.target),
            version: self.version,
            headers: self.headers.iter().map(|(n, v)| (at(n), at(v))).collect(),
            host: at(&self.host),
            body: self.body,
            close: self.close,
            keep_alive_10: self.keep_alive_10,
            expect: self.expect.as_ref().map(at),
        }
    }

    /// The client asked for `100 Continue` before sending its body.
    fn expects_continue(&self) -> bool {
        self.expect.as_ref().is_some_and(|r| {
            crate::http1::parse::has_token([&self.text[r.clone()]], "100-continue")
        })
    }
}

/// One attempt in progress.
#[derive(Debug)]
pub struct Trip {
    pub up: usize,
    pub index: usize,
    pub host: Arc<Host>,
    pub head_request: bool,
    pub gzip: bool,
    pub body: RequestBody,
    /// The request (head and body) is fully queued for the upstream.
    pub request_done: bool,
    pub transport: Transport,
    pub started: Instant,
    /// The whole request, kept when it can be sent again on a new connection.
    pub resend: Option<Vec<u8>>,
    /// Response fields set before the proxy ran, sent with 1xx heads.
    pub interim_fields: crate::http1::HeaderMap,
    /// Once the routes chose to copy the response: how its body moves to the client.
    pub relay: Option<Relay>,
    /// `response_buffers` of the handler (0: none, -1: the whole body).
    pub response_buffers: i64,
    /// How the client's body is framed for the upstream.
    pub framing: BodyFraming,
}

#[derive(Debug)]
pub struct Relay {
    /// How the upstream delimits the body, and what is left of it.
    pub from: From,
    /// The client's framing: chunks, or raw bytes.
    pub chunked: bool,
    /// No body goes to the client (HEAD, 204, 304), though the upstream's is still read.
    pub bodiless: bool,
    /// The connection closes after the response.
    pub close: bool,
    /// Transparent gzip decoding (the transport asked for gzip itself).
    pub gunzip: Option<flate2::write::GzDecoder<Vec<u8>>>,
    /// The client's head, held back until the first body bytes: Go's writer sniffs the
    /// `Content-Type` from them when the response has none.
    pub pending: Option<(Response, Exchange)>,
    /// The `encode` around the response, decided with the first body bytes, and then its
    /// compressor.
    pub encode: Option<StreamPlan>,
    pub encoder: Option<StreamEncoder>,
    /// Compressed bytes held back (with `pending`) while Go's writer would still buffer them.
    pub held: Option<Vec<u8>>,
    /// The `cache` handler's copy of the body, stored when the relay ends cleanly.
    pub capture: Option<Capture>,
    /// `response_buffers`: the body read so far, while the head waits for it.
    pub buffer: Option<Vec<u8>>,
    /// A tunnel closes at `stream_timeout`, and after `stream_close_delay` once a reload
    /// unloaded its handler.
    pub stream_end: Option<Instant>,
    pub unload_end: Option<Instant>,
    /// Go's writer buffers (bodies of known length unless flushed write by write), and the
    /// delayed flush of a positive `flush_interval`.
    pub go: Option<GoWriter>,
    pub flush_timer: Option<OpId>,
}

#[derive(Debug)]
pub enum From {
    Nothing,
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
    /// After a 101: raw bytes both ways until either side closes.
    Tunnel,
}

/// What a replay of the routes decided.
struct Replayed {
    outcome: Outcome,
    resp: Response,
    call: Option<Call>,
    relay: Option<usize>,
    interim: Vec<u8>,
    request_id: Option<String>,
    checked: Vec<(String, String, bool)>,
    capture: Option<Capture>,
    encode: Option<StreamPlan>,
}

fn failure(status: u16, message: String, dial: bool) -> Failure {
    Failure {
        error: HandlerError { status, message },
        dial,
    }
}

/// Runs the request's routes again with the invocations recorded so far.
fn replay(
    p: &mut Proxying,
    conn_peer: Option<std::net::SocketAddr>,
    local: Option<std::net::SocketAddr>,
    fresh: Option<usize>,
) -> Replayed {
    // Lent to the run, and back with what it added.
    let request_id = p.request_id.take();
    let checked = std::mem::take(&mut p.checked);
    let server = &p.program.servers[p.server.min(p.program.servers.len() - 1)];
    let head = p.head.head();
    let mut ctx = Ctx::for_server(&head, conn_peer, local, Some(server));
    ctx.body = p.body_data.as_deref();
    ctx.proxy.done = &p.done;
    ctx.proxy.fresh = fresh;
    if let Some(id) = request_id {
        ctx.keep_request_id(id);
    }
    ctx.checked = checked;
    let outcome = serve(server, &mut ctx);
    ctx.trace.started_at(p.arrived);
    crate::observe::finished(server, &ctx);
    Replayed {
        outcome,
        resp: std::mem::take(&mut ctx.resp),
        call: ctx.proxy.call.take(),
        relay: ctx.proxy.relay,
        interim: std::mem::take(&mut ctx.interim),
        request_id: ctx.take_request_id(),
        checked: std::mem::take(&mut ctx.checked),
        capture: take_capture(&mut ctx),
        encode: ctx.proxy.encode.take(),
    }
}

impl Worker {
    /// Advances the proxied request on client `i` as far as it can go now, then sends what
    /// is queued for the client.
    pub(super) fn drive(&mut self, i: usize) -> io::Result<()> {
        self.advance(i)?;
        self.send_lent(i, false)?;
        self.flush(i)?;
        self.maybe_free(i);
        Ok(())
    }

    /// Queues client `i`'s output to go out at the end of the current completion group:
    /// the upstream reads that complete together then leave as one send, whichever order
    /// their completions (and the client's send completion) come in. Sends are only
    /// submitted once the group is handled anyway, so this delays nothing.
    fn flush_later(&mut self, i: usize) {
        if !self.flush_later.contains(&i) {
            self.flush_later.push(i);
        }
    }

    /// Sends what the completion group queued (see `flush_later`).
    pub(super) fn flush_deferred(&mut self) -> io::Result<()> {
        while let Some(i) = self.flush_later.pop() {
            self.send_lent(i, false)?;
            self.flush(i)?;
            self.maybe_free(i);
        }
        Ok(())
    }

    fn advance(&mut self, i: usize) -> io::Result<()> {
        loop {
            let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
                return Ok(());
            };
            if conn.closing {
                return Ok(());
            }
            let Phase::Proxy(p) = &mut conn.phase else {
                return Ok(());
            };
            match &mut p.stage {
                Stage::Idle | Stage::Waiting(..) => return Ok(()),
                Stage::Start(call) if !call.delay.is_zero() => {
                    let wait = call.delay;
                    call.delay = Duration::ZERO;
                    let Stage::Start(call) = std::mem::replace(&mut p.stage, Stage::Idle) else {
                        unreachable!()
                    };
                    let op = self.ring.timeout(wait, tag(UP_TIMER, i))?;
                    let Some(Phase::Proxy(p)) = self.conns[i].as_mut().map(|c| &mut c.phase) else {
                        unreachable!()
                    };
                    p.stage = Stage::Waiting(call, op);
                    return Ok(());
                }
                Stage::Start(_) => {
                    let Stage::Start(call) = std::mem::replace(&mut p.stage, Stage::Idle) else {
                        unreachable!()
                    };
                    self.begin_call(i, call)?;
                }
                Stage::Trip(_) => {
                    if !self.advance_trip(i)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Starts one attempt: records it, then connects (or reuses) and queues the request.
    fn begin_call(&mut self, i: usize, call: Call) -> io::Result<()> {
        if call.index == PARKED {
            // A cache waiter's delay is over: look again, without an upstream.
            return self.replay_after(i, call.index, false);
        }
        let now = Instant::now();
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let Phase::Proxy(p) = &mut conn.phase else {
            unreachable!()
        };
        if call.index == p.done.len() {
            p.done.push(Invocation {
                started: now,
                tries: 0,
                dial: String::new(),
                set_cookie: None,
                failure: None,
                answer: None,
                host: None,
                latency: Duration::ZERO,
                body_spent: false,
            });
        }
        let inv = &mut p.done[call.index];
        inv.tries += 1;
        inv.failure = None;
        inv.answer = None;
        let Some(target) = call.target else {
            inv.failure = Some(failure(503, "no upstreams available".to_owned(), true));
            return self.replay_after(i, call.index, false);
        };
        inv.dial = target.host.dial.clone();
        inv.set_cookie = target.set_cookie.clone();
        inv.host = Some(Arc::clone(&target.host));
        let peer = match &target.peer {
            Ok(peer) => peer.clone(),
            Err(why) => {
                inv.failure = Some(failure(502, why.clone(), true));
                return self.replay_after(i, call.index, false);
            }
        };
        let streamed = matches!(target.body, RequestBody::Length(_) | RequestBody::Chunked);
        if streamed && p.body_data.is_none() && p.done.iter().any(|d| d.body_spent) {
            // An earlier attempt read (part of) the body from the client and Go's transport
            // closed it: the retry's write fails before anything reaches the upstream.
            let inv = &mut p.done[call.index];
            inv.failure = Some(failure(
                502,
                "http: invalid Read on closed Body".to_owned(),
                false,
            ));
            return self.replay_after(i, call.index, false);
        }
        let body_data = p.body_data.clone();
        // A FastCGI request never shares a connection (Caddy dials one per request).
        let pooled = if target.fastcgi.is_some() {
            None
        } else {
            self.up_take(&peer, i)
        };
        let up = match pooled {
            Some(u) => u,
            None => match self.up_connect(peer.clone(), target.transport, i) {
                Ok(u) => u,
                Err(e) => {
                    let Some(Phase::Proxy(p)) = self.conns[i].as_mut().map(|c| &mut c.phase) else {
                        unreachable!()
                    };
                    p.done[call.index].failure = Some(failure(
                        502,
                        format!(
                            "dial {peer}: {}",
                            errno_text(e.raw_os_error().unwrap_or(libc::EIO))
                        ),
                        true,
                    ));
                    return self.replay_after(i, call.index, false);
                }
            },
        };
        target.host.begin();
        let Target {
            head,
            body,
            head_request,
            gzip,
            transport,
            host,
            interim_fields,
            response_buffers,
            fastcgi,
            ..
        } = target;
        let framing = BodyFraming::of(body, fastcgi.is_some());
        let u = self.ups[up].as_mut().expect("just taken");
        if let Some(x) = fastcgi {
            u.fcgi = Some(Decoder::new(*x));
        }
        u.output.extend_from_slice(&head);
        let mut request_done = matches!(body, RequestBody::None | RequestBody::Empty);
        if let (false, Some(data)) = (request_done, body_data) {
            framing.piece(&data, &mut u.output);
            framing.end(&mut u.output);
            request_done = true;
        }
        let resend = (request_done && u.reused).then(|| u.output.clone());
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let expects = matches!(&conn.phase, Phase::Proxy(p) if p.exchange.http11 && !request_done && p.head.expects_continue());
        if expects {
            // Go sends 100 Continue when the proxy's transport starts reading the body.
            conn.output
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let Phase::Proxy(p) = &mut conn.phase else {
            unreachable!()
        };
        p.stage = Stage::Trip(Box::new(Trip {
            up,
            index: call.index,
            host,
            head_request,
            gzip,
            body,
            request_done,
            transport,
            interim_fields,
            started: Instant::now(),
            resend,
            relay: None,
            response_buffers,
            framing,
        }));
        self.flush(i)
    }

    /// A pooled connection to `addr`, now owned by client `i`.
    fn up_take(&mut self, addr: &Peer, i: usize) -> Option<usize> {
        while let Some(u) = self.idle_ups.take(addr) {
            let usable = self.ups[u].as_ref().is_some_and(UpConn::ready);
            if usable {
                let c = self.ups[u].as_mut().expect("checked");
                c.owner = Some(i);
                c.deadline = None;
                c.reused = true;
                return Some(u);
            }
        }
        None
    }

    /// A new connection to the target's address, connecting on the ring.
    fn up_connect(&mut self, addr: Peer, t: Transport, i: usize) -> io::Result<usize> {
        let (domain, protocol) = match &addr {
            Peer::Tcp(a) => (
                socket2::Domain::for_address(*a),
                Some(socket2::Protocol::TCP),
            ),
            Peer::Unix(_) => (socket2::Domain::UNIX, None),
        };
        let sockaddr = addr.sockaddr()?;
        let sock = socket2::Socket::new(
            domain,
            socket2::Type::STREAM.nonblocking().cloexec(),
            protocol,
        )?;
        // Go's dialer sets TCP_NODELAY and keep-alive probes (Caddy's `probe_interval`, 30s).
        let _ = sock.set_tcp_nodelay(true);
        let probes = t.probe_interval;
        let _ = sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(probes)
                .with_interval(probes),
        );
        let fd: std::os::fd::OwnedFd = sock.into();
        let slot = match self.free_ups.pop() {
            Some(s) => s,
            None => {
                self.ups.push(None);
                self.ups.len() - 1
            }
        };
        let mut c = UpConn::new(fd, addr, i);
        c.connect = Some(self.ring.connect(&c.fd, sockaddr, tag(UP_CONNECT, slot))?);
        c.deadline = Some((Instant::now() + t.dial_timeout, Wait::Dial));
        self.ups[slot] = Some(c);
        Ok(slot)
    }

    /// Moves the current trip on; true when the stage changed and driving should go on.
    fn advance_trip(&mut self, i: usize) -> io::Result<bool> {
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let Phase::Proxy(p) = &mut conn.phase else {
            unreachable!()
        };
        let Stage::Trip(trip) = &mut p.stage else {
            unreachable!()
        };
        let up = trip.up;
        let index = trip.index;
        let Some(u) = self.ups.get_mut(up).and_then(Option::as_mut) else {
            unreachable!("a trip's upstream lives until the trip ends")
        };
        if u.connect.is_some() {
            return Ok(false);
        }
        // Forward the client's body as far as the upstream's queue allows.
        if !trip.request_done && u.output.len() < OUTPUT_HIGH_WATER {
            // Go's transport closes the client's body once an attempt on a live connection
            // starts writing, however little it read: a retry cannot send it again.
            p.done[index].body_spent |= p.client_body.is_some();
            match &mut p.client_body {
                None => trip.request_done = true,
                Some(Discard::Length(left)) => {
                    let take = (*left).min(conn.input.len() as u64) as usize;
                    trip.framing.piece(&conn.input[..take], &mut u.output);
                    conn.input.drain(..take);
                    *left -= take as u64;
                    if *left == 0 {
                        trip.framing.end(&mut u.output);
                        p.client_body = None;
                        trip.request_done = true;
                    }
                }
                Some(Discard::Chunked(dec)) => {
                    let (out, framing) = (&mut u.output, trip.framing);
                    match dec.feed(&conn.input, |d| framing.piece(d, out)) {
                        Ok(prog) => {
                            conn.input.drain(..prog.consumed);
                            if prog.done {
                                framing.end(&mut u.output);
                                p.client_body = None;
                                trip.request_done = true;
                            }
                        }
                        Err(_) => {
                            // A broken client body: the upstream request cannot complete.
                            conn.close_after = true;
                            conn.read_closed = true;
                            conn.input.clear();
                            p.client_body = None;
                            u.error = Some(libc::EPROTO);
                        }
                    }
                }
            }
        }
        if trip.request_done && trip.relay.is_none() && u.deadline.is_none() {
            if let Some(t) = trip.transport.response_header_timeout {
                u.deadline = Some((Instant::now() + t, Wait::Header));
            }
        }
        self.up_flush(up)?;
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let Phase::Proxy(p) = &mut conn.phase else {
            unreachable!()
        };
        let Stage::Trip(trip) = &mut p.stage else {
            unreachable!()
        };
        let u = self.ups[up].as_mut().expect("trip upstream");
        if let Some(d) = &mut u.fcgi {
            // A FastCGI exchange has a write deadline, then a read deadline, for all of it.
            let written = trip.request_done && !u.sending && u.output.is_empty();
            let wait = if written { Wait::Read } else { Wait::Write };
            u.deadline = d.deadline(Instant::now(), written).map(|at| (at, wait));
        }
        if trip.relay.is_some() {
            return self.relay(i);
        }
        // Waiting for the response head.
        loop {
            match parse_response(&u.input, trip.head_request) {
                Ok(Status::Partial) => break,
                Err(_) => {
                    let f = failure(
                        502,
                        "net/http: HTTP/1.x transport connection broken: malformed HTTP response"
                            .to_owned(),
                        false,
                    );
                    return self.trip_failed(i, f).map(|()| true);
                }
                Ok(Status::Complete(mut head, used)) => {
                    u.input.drain(..used);
                    if head.status / 100 == 1 && head.status != 101 {
                        // Caddy passes 1xx responses on (with the headers set so far).
                        let mut hdr = trip.interim_fields.clone();
                        for (k, vs) in head.headers.iter() {
                            for v in vs {
                                hdr.add(k, v);
                            }
                        }
                        encode_interim(head.status, &hdr, p.exchange.http11, &mut conn.output);
                        continue;
                    }
                    if u.fcgi.is_none() {
                        u.deadline = trip
                            .transport
                            .read_timeout
                            .map(|t| (Instant::now() + t, Wait::Read));
                    }
                    let gunzip = trip.gzip
                        && head
                            .headers
                            .get("Content-Encoding")
                            .eq_ignore_ascii_case("gzip");
                    if gunzip {
                        head.headers.del("Content-Encoding");
                        head.headers.del("Content-Length");
                    }
                    let from = match head.body {
                        ResponseBody::None => From::Nothing,
                        ResponseBody::Length(n) => From::Length(n),
                        ResponseBody::Chunked => From::Chunked(ChunkedDecoder::default()),
                        ResponseBody::Close => From::Close,
                    };
                    let inv = &mut p.done[index];
                    inv.latency = trip.started.elapsed();
                    inv.answer = Some(head);
                    trip.relay = Some(Relay {
                        from,
                        chunked: false,
                        bodiless: true,
                        close: false,
                        gunzip: gunzip.then(|| flate2::write::GzDecoder::new(Vec::new())),
                        pending: None,
                        encode: None,
                        encoder: None,
                        held: None,
                        capture: None,
                        buffer: (trip.response_buffers != 0).then(Vec::new),
                        stream_end: None,
                        unload_end: None,
                        go: None,
                        flush_timer: None,
                    });
                    return self.replay_after(i, index, true).map(|()| true);
                }
            }
        }
        if u.error.is_some() || u.eof {
            let stale = u.reused && u.input.is_empty() && u.error != Some(libc::ETIME);
            let text = match u.error {
                Some(e) if e == libc::ETIME => {
                    "net/http: timeout awaiting response headers".to_owned()
                }
                Some(e) => format!("read {}: {}", u.addr, errno_text(e)),
                None => "EOF".to_owned(),
            };
            let status = if u.error == Some(libc::ETIME) {
                504
            } else {
                502
            };
            if let (true, Some(request)) = (stale, trip.resend.clone()) {
                // A pooled connection the upstream had closed: Go's transport sends the
                // request again on a new connection when nothing of it can be lost.
                let (addr, transport) = (u.addr.clone(), trip.transport);
                self.up_close(up)?;
                let fresh = self.up_connect(addr, transport, i)?;
                let c = self.ups[fresh].as_mut().expect("just connected");
                c.output = request;
                let Some(Phase::Proxy(p)) = self.conns[i].as_mut().map(|c| &mut c.phase) else {
                    unreachable!()
                };
                let Stage::Trip(trip) = &mut p.stage else {
                    unreachable!()
                };
                trip.up = fresh;
                return Ok(true);
            }
            return self
                .trip_failed(i, failure(status, text, false))
                .map(|()| true);
        }
        Ok(false)
    }

    /// The attempt failed before an answer: release the upstream and let the routes decide.
    fn trip_failed(&mut self, i: usize, f: Failure) -> io::Result<()> {
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let Phase::Proxy(p) = &mut conn.phase else {
            unreachable!()
        };
        let Stage::Trip(trip) = &p.stage else {
            unreachable!()
        };
        let (up, index) = (trip.up, trip.index);
        trip.host.end();
        p.done[index].failure = Some(f);
        p.stage = Stage::Idle;
        self.up_close(up)?;
        self.replay_after(i, index, false)
    }

    /// Runs the routes again now that attempt `index` has a result, and acts on them;
    /// `answered` when the result is a response (its trip still holds the connection).
    fn replay_after(&mut self, i: usize, index: usize, answered: bool) -> io::Result<()> {
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let Phase::Proxy(p) = &mut conn.phase else {
            unreachable!()
        };
        let r = replay(p, conn.peer, conn.local, Some(index));
        self.conclude(i, r, answered.then_some(index))
    }

    /// Acts on a replay: another call, the relayed upstream response, or a plain response.
    fn conclude(&mut self, i: usize, r: Replayed, answered: Option<usize>) -> io::Result<()> {
        let date = self.date.now().to_owned();
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        conn.output.extend_from_slice(&r.interim);
        let Phase::Proxy(p) = &mut conn.phase else {
            unreachable!()
        };
        p.request_id = r.request_id;
        p.checked = r.checked;
        let relaying = answered.is_some() && r.outcome == Outcome::Respond && r.relay == answered;
        if relaying {
            let Stage::Trip(trip) = &mut p.stage else {
                unreachable!()
            };
            let relay = trip.relay.as_mut().expect("answered trips relay");
            relay.capture = r.capture;
            let tunnel = r.resp.status == 101;
            if tunnel {
                relay.from = From::Tunnel;
                relay.stream_end = trip
                    .transport
                    .stream
                    .stream_timeout
                    .map(|t| Instant::now() + t);
            }
            let h = &r.resp.headers;
            let sniff = !p.exchange.head
                && body_allowed(r.resp.status)
                && !h.has("Content-Type")
                && h.get("Content-Encoding").is_empty()
                && !h.has("Transfer-Encoding");
            let encodable = !p.exchange.head && body_allowed(r.resp.status) && r.encode.is_some();
            let mut resp = r.resp;
            if let (true, Some(plan)) = (p.exchange.head, &r.encode) {
                // HEAD: Caddy's encoder decides on the declared length when it closes, and Go
                // counts the empty compressed stream it then writes as the Content-Length.
                if plan.long_enough(&resp.headers, 0) && plan.wants(resp.status, &resp.headers) {
                    resp.body = plan.start(&mut resp.headers).finish();
                    relay.close = encode(&resp, p.exchange, &date, &mut conn.output) || tunnel;
                    relay.bodiless = true;
                    return Ok(());
                }
            }
            relay.encode = r.encode;
            if tunnel {
                relay.buffer = None;
            }
            if trip.framing == BodyFraming::Stdin && relay.encode.is_none() {
                // Caddy copies a FastCGI response without flushing: Go's writer holds the
                // first 2 KiB, so a body that ends within them gets a Content-Length.
                relay.pending = Some((resp, p.exchange));
                relay.held = Some(Vec::new());
                return Ok(());
            }
            if sniff || encodable || relay.buffer.is_some() {
                relay.pending = Some((resp, p.exchange));
                return Ok(());
            }
            let mark = conn.output.len();
            let f = encode_streamed(&resp, p.exchange, &date, None, &mut conn.output);
            relay.chunked = f.chunked;
            relay.bodiless = f.bodiless;
            // After a tunnel the connection carries no more HTTP.
            relay.close = f.close || tunnel;
            let stream = &trip.transport.stream;
            relay.go = go_writer(relay, stream, &resp.headers, &mut conn.output, mark);
            if let (Some(_), FlushInterval::Every(d)) = (&relay.go, stream.flush_interval) {
                relay.flush_timer = Some(self.ring.timeout(d, tag(UP_TIMER, i))?);
            }
            return Ok(());
        }
        // Any answered trip not relayed is over: its body is not wanted. The connection can
        // serve again only when that body is already read whole.
        if let Stage::Trip(trip) = &p.stage {
            let (up, index, transport) = (trip.up, trip.index, trip.transport);
            let request_done = trip.request_done;
            trip.host.end();
            let body = p.done[index].answer.as_ref().map(|a| (a.body, a.close));
            p.stage = Stage::Idle;
            let u = self.ups[up].as_mut().expect("trip upstream");
            let whole = match body {
                Some((ResponseBody::None, false)) => u.input.is_empty(),
                Some((ResponseBody::Length(n), false)) => u.input.len() as u64 == n,
                _ => false,
            } && u.unread == 0;
            if whole && request_done && u.ready() && u.output.is_empty() && !u.sending {
                u.input.clear();
                self.up_release(up, transport)?;
            } else {
                self.up_close(up)?;
            }
        }
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let Phase::Proxy(p) = &mut conn.phase else {
            unreachable!()
        };
        match r.outcome {
            Outcome::Proxy => {
                p.stage = Stage::Start(r.call.expect("a Proxy outcome carries its call"));
                Ok(())
            }
            Outcome::Abort => {
                conn.phase = Phase::Done;
                conn.close_after = true;
                conn.read_closed = true;
                self.flush(i)
            }
            Outcome::Respond => {
                self.finish_plain(i, r.resp);
                self.process(i);
                self.flush(i)
            }
        }
    }

    /// Ends the proxied request with an ordinary response (after the rest of the client's
    /// body, as for any handler).
    fn finish_plain(&mut self, i: usize, resp: Response) {
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let phase = std::mem::replace(&mut conn.phase, Phase::Head);
        let Phase::Proxy(p) = phase else {
            unreachable!()
        };
        conn.after_post = p.post;
        match p.client_body {
            None => {
                let server = &p.program.servers[p.server.min(p.program.servers.len() - 1)];
                Self::respond(conn, &resp, p.exchange, &mut self.date, server);
            }
            Some(discard) => {
                conn.phase = Phase::Body {
                    discard,
                    seen: 0,
                    response: Some(resp),
                    exchange: p.exchange,
                };
            }
        }
    }

    /// Sends the body bytes the upstream of client `i`'s relay lent (see `pass_through`),
    /// after the client's output, unless a send is in flight: they then wait for it, or,
    /// with `now` (the relay is about to add to the output), are copied into the output.
    fn send_lent(&mut self, i: usize, now: bool) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        let Phase::Proxy(p) = &conn.phase else {
            return Ok(());
        };
        let Stage::Trip(trip) = &p.stage else {
            return Ok(());
        };
        let Some(up) = self.ups.get_mut(trip.up).and_then(Option::as_mut) else {
            return Ok(());
        };
        if up.lent.is_empty() {
            return Ok(());
        }
        // Past Go's write deadline the worker's flush fails the response instead.
        let late = conn.write_deadline.is_some_and(|d| Instant::now() >= d);
        if !conn.sending && !conn.closing && !late {
            let lent = std::mem::take(&mut up.lent);
            let spare = std::mem::take(&mut conn.spare);
            let buf = std::mem::replace(&mut conn.output, spare);
            conn.sending = true;
            self.ring
                .send_lent(&conn.fd, buf, self.up_group, lent, tag(SEND, i))?;
        } else if now || conn.closing || late {
            let bufs = self.ring.buffers_of(self.up_group);
            for l in &up.lent {
                conn.output.extend_from_slice(bufs.lent(*l));
            }
            bufs.give_back(up.lent.drain(..));
        }
        Ok(())
    }

    /// Relays response body bytes to the client; true when the request finished.
    fn relay(&mut self, i: usize) -> io::Result<bool> {
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let Phase::Proxy(p) = &conn.phase else {
            unreachable!()
        };
        let Stage::Trip(trip) = &p.stage else {
            unreachable!()
        };
        let u = self.ups[trip.up].as_ref().expect("trip upstream");
        let relay = trip.relay.as_ref().expect("relaying");
        // Lent bytes stay last in line: whatever the relay adds now goes after them, so they
        // leave first, after the send in flight if there is one (as Go's write of them would
        // return only once the socket took the bytes before).
        let more = u.input.is_empty()
            && !u.eof
            && u.error.is_none()
            && matches!(relay.from, From::Length(n) if n > 0);
        if !more {
            if conn.sending && !conn.closing && !u.lent.is_empty() {
                return Ok(false);
            }
            self.send_lent(i, true)?;
        }
        let conn = self.conns[i].as_mut().expect("driven conns exist");
        let Phase::Proxy(p) = &mut conn.phase else {
            unreachable!()
        };
        let Stage::Trip(trip) = &mut p.stage else {
            unreachable!()
        };
        let up = trip.up;
        let u = self.ups[up].as_mut().expect("trip upstream");
        let relay = trip.relay.as_mut().expect("relaying");
        let mut finished = false;
        let mut broken = false;
        if conn.output.len() < OUTPUT_HIGH_WATER {
            let mut piece: Vec<u8> = Vec::new();
            match &mut relay.from {
                From::Nothing => finished = true,
                From::Length(left) => {
                    let take = (*left).min(u.input.len() as u64) as usize;
                    if take == u.input.len() {
                        // The usual case: all that came in is body, so the buffer itself moves
                        // on instead of being copied and drained.
                        piece = std::mem::take(&mut u.input);
                    } else {
                        piece.extend_from_slice(&u.input[..take]);
                        u.input.drain(..take);
                    }
                    *left -= take as u64;
                    finished = *left == 0;
                    broken = !finished && (u.eof || u.error.is_some()) && u.input.is_empty();
                }
                From::Chunked(dec) => match dec.feed(&u.input, |d| piece.extend_from_slice(d)) {
                    Ok(prog) => {
                        u.input.drain(..prog.consumed);
                        finished = prog.done;
                        broken = !finished && (u.eof || u.error.is_some()) && u.input.is_empty();
                    }
                    Err(_) => broken = true,
                },
                From::Close => {
                    piece.append(&mut u.input);
                    finished = u.eof || u.error.is_some();
                }
                From::Tunnel => {
                    conn.output.append(&mut u.input);
                    if u.output.len() < OUTPUT_HIGH_WATER {
                        u.output.append(&mut conn.input);
                    }
                    // The upstream closing ends the tunnel; the client closing tears it down.
                    finished = u.eof || u.error.is_some();
                }
            }
            if let Some(g) = &mut relay.gunzip {
                if g.write_all(&piece).is_err() || (finished && g.try_finish().is_err()) {
                    broken = true;
                }
                piece = std::mem::take(g.get_mut());
            }
            if let (Some(t), true) = (trip.transport.read_timeout, !piece.is_empty()) {
                u.deadline = Some((Instant::now() + t, Wait::Read));
            }
            if let Some(c) = &mut relay.capture {
                if broken || !c.feed(&piece) {
                    relay.capture = None;
                }
            }
            // Caddy's bufferedBody: the head waits until `response_buffers` bytes (or all of
            // the body) are read; they go out as one write, the rest as it was read.
            let mut split = None;
            if let Some(buf) = &mut relay.buffer {
                buf.append(&mut piece);
                let limit = usize::try_from(trip.response_buffers).ok();
                if finished || broken || limit.is_some_and(|n| buf.len() >= n) {
                    piece = relay.buffer.take().expect("checked");
                    split = limit.filter(|&n| n < piece.len());
                }
            }
            let first = relay.pending.is_some() && relay.held.is_none();
            if first && (!piece.is_empty() || finished || broken) {
                let (mut resp, x) = relay.pending.take().expect("checked");
                let plan = relay.encode.take();
                // Caddy's encoder judges the first write: a long one gets its type sniffed
                // into the headers, then compression if the matcher accepts the response.
                if let Some(plan) = plan.filter(|pl| pl.long_enough(&resp.headers, piece.len())) {
                    if !resp.headers.has("Content-Type") {
                        resp.headers
                            .set("Content-Type", detect_content_type(&piece));
                    }
                    if plan.wants(resp.status, &resp.headers) {
                        relay.encoder = Some(plan.start(&mut resp.headers));
                    }
                }
                let unflushed = trip.framing == BodyFraming::Stdin
                    || (relay.encoder.is_some() && matches!(relay.from, From::Length(_)));
                if unflushed {
                    // A known length (and any FastCGI body) is copied without flushes, so
                    // Go's writer still sees the whole (compressed) body when it is short:
                    // hold it back that long.
                    relay.pending = Some((resp, x));
                    relay.held = Some(Vec::new());
                } else {
                    let h = &resp.headers;
                    let sniff = !piece.is_empty()
                        && !h.has("Content-Type")
                        && h.get("Content-Encoding").is_empty()
                        && !h.has("Transfer-Encoding");
                    let sniffed = sniff.then(|| detect_content_type(&piece));
                    let mark = conn.output.len();
                    let f = encode_streamed(&resp, x, self.date.now(), sniffed, &mut conn.output);
                    relay.chunked = f.chunked;
                    relay.bodiless = f.bodiless;
                    relay.close = f.close;
                    let stream = &trip.transport.stream;
                    relay.go = go_writer(relay, stream, &resp.headers, &mut conn.output, mark);
                    if let (Some(_), FlushInterval::Every(d)) = (&relay.go, stream.flush_interval) {
                        relay.flush_timer = Some(self.ring.timeout(d, tag(UP_TIMER, i))?);
                    }
                }
            }
            if let Some(enc) = &mut relay.encoder {
                // Unknown lengths are flushed write by write (Caddy's flush_interval -1).
                let mut out = enc.feed(&piece, relay.held.is_none());
                if finished {
                    if let Some(enc) = relay.encoder.take() {
                        out.extend_from_slice(&enc.finish());
                    }
                }
                piece = out;
            }
            if let Some(held) = &mut relay.held {
                held.append(&mut piece);
                if finished || held.len() > BUFFER_BEFORE_CHUNKING {
                    let held = relay.held.take().expect("checked");
                    let (mut resp, x) = relay.pending.take().expect("held with its head");
                    if finished {
                        // The whole body is known: Go's writer gives it a length.
                        resp.body = held;
                        relay.close = encode(&resp, x, self.date.now(), &mut conn.output);
                        relay.bodiless = true;
                    } else {
                        let f = encode_streamed(&resp, x, self.date.now(), None, &mut conn.output);
                        relay.chunked = f.chunked;
                        relay.bodiless = f.bodiless;
                        relay.close = f.close;
                        piece = held;
                    }
                }
            }
            if let Some(go) = &mut relay.go {
                go.write(&piece, &mut conn.output);
                if finished {
                    go.flush(&mut conn.output);
                } else if let (false, false, FlushInterval::Every(d)) = (
                    go.flush_pending,
                    piece.is_empty(),
                    trip.transport.stream.flush_interval,
                ) {
                    // Caddy's maxLatencyWriter: the first write after a flush arms the next.
                    go.flush_pending = true;
                    relay.flush_timer = Some(self.ring.timeout(d, tag(UP_TIMER, i))?);
                }
                piece.clear();
            }
            if !relay.bodiless && !piece.is_empty() {
                if relay.chunked {
                    let split = split.filter(|_| relay.encoder.is_none() && relay.held.is_none());
                    let (a, b) = piece.split_at(split.unwrap_or(piece.len()));
                    for part in [a, b] {
                        if !part.is_empty() {
                            conn.output
                                .extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                            conn.output.extend_from_slice(part);
                            conn.output.extend_from_slice(b"\r\n");
                        }
                    }
                } else if conn.output.is_empty() {
                    // Hand the piece over whole; the emptied output buffer (the connection's
                    // spare, with its capacity) becomes the upstream's next input buffer.
                    std::mem::swap(&mut conn.output, &mut piece);
                    if u.input.capacity() == 0 {
                        u.input = piece;
                    }
                } else {
                    conn.output.extend_from_slice(&piece);
                    if u.input.capacity() == 0 {
                        // Keep the allocation for the upstream's next reads.
                        piece.clear();
                        u.input = piece;
                    }
                }
            }
        }
        if broken {
            // Headers are out: Caddy aborts the client connection (ErrAbortHandler).
            let up = trip.up;
            trip.host.end();
            let held = relay.go.take();
            let unsent = relay.pending.take().zip(relay.held.take());
            conn.phase = Phase::Done;
            conn.close_after = true;
            conn.read_closed = true;
            if let Some(((resp, x), body)) = unsent {
                // The head still waited with the body so far (see `unflushed`): Go's writer
                // holds both and sends them before the close.
                let f = encode_streamed(&resp, x, self.date.now(), None, &mut conn.output);
                if f.chunked && !f.bodiless && !body.is_empty() {
                    conn.output
                        .extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                    conn.output.extend_from_slice(&body);
                    conn.output.extend_from_slice(b"\r\n");
                } else if !f.bodiless {
                    conn.output.extend_from_slice(&body);
                }
                self.up_close(up)?;
                return self.flush(i).map(|()| false);
            }
            if let Some(mut go) = held {
                // What Go's writer held goes out before the close, as from Caddy.
                go.flush(&mut conn.output);
                self.up_close(up)?;
                return self.flush(i).map(|()| false);
            }
            conn.output.clear();
            self.up_close(up)?;
            self.teardown(i)?;
            return Ok(false);
        }
        if !finished {
            // Hold the upstream back while the client is slow.
            if u.input.len() > UP_INPUT_HIGH_WATER && !u.read_paused {
                if let Some(op) = u.recv {
                    u.read_paused = true;
                    self.ring.cancel(op, tag(super::CANCEL, 0))?;
                }
            } else if u.input.len() <= UP_INPUT_HIGH_WATER && u.read_paused && u.recv.is_none() {
                u.read_paused = false;
            }
            // A tunnel may have queued client bytes for the upstream.
            self.up_flush(up)?;
            return Ok(false);
        }
        if relay.chunked && !relay.bodiless {
            conn.output.extend_from_slice(b"0\r\n\r\n");
        }
        if let Some(c) = relay.capture.take() {
            c.finish();
        }
        // A worker that is stopping closes connections once their response is out.
        let close = relay.close || self.stop_deadline.is_some();
        let answer_close = p.done[trip.index].answer.as_ref().is_none_or(|a| a.close);
        let reusable = trip.request_done
            && !answer_close
            && u.ready()
            && u.input.is_empty()
            && u.unread == 0
            && trip.transport.keep_alive;
        let transport = trip.transport;
        trip.host.end();
        let phase = std::mem::replace(&mut conn.phase, Phase::Head);
        let Phase::Proxy(p) = phase else {
            unreachable!()
        };
        conn.after_post = p.post;
        if close {
            conn.phase = Phase::Done;
            conn.close_after = true;
        } else if let Some(discard) = p.client_body {
            conn.phase = Phase::Body {
                discard,
                seen: 0,
                response: None,
                exchange: p.exchange,
            };
        } else {
            let server = &p.program.servers[p.server.min(p.program.servers.len() - 1)];
            conn.deadline = Some(Instant::now() + server.idle_timeout);
        }
        if reusable {
            self.up_release(up, transport)?;
        } else {
            self.up_close(up)?;
        }
        self.flush(i)?;
        self.process(i);
        self.flush(i)?;
        Ok(false)
    }

    /// Queues the upstream's output: one send in flight at a time.
    fn up_flush(&mut self, u: usize) -> io::Result<()> {
        let Some(c) = self.ups.get_mut(u).and_then(Option::as_mut) else {
            return Ok(());
        };
        let failed = c.error.is_some() || c.write_error.is_some();
        if c.sending || c.closing || c.connect.is_some() || c.output.is_empty() || failed {
            return self.up_rearm(u);
        }
        let spare = std::mem::take(&mut c.spare);
        let buf = std::mem::replace(&mut c.output, spare);
        c.sending = true;
        self.ring.send(&c.fd, buf, 0, tag(UP_SEND, u))?;
        self.up_rearm(u)
    }

    /// Keeps one multishot recv armed on a connected, open upstream.
    fn up_rearm(&mut self, u: usize) -> io::Result<()> {
        let Some(c) = self.ups.get_mut(u).and_then(Option::as_mut) else {
            return Ok(());
        };
        if c.recv.is_none() && c.connect.is_none() && !c.closing && !c.eof && !c.read_paused {
            c.recv = Some(
                self.ring
                    .recv_multi_from(&c.fd, self.up_group, tag(UP_RECV, u))?,
            );
        }
        Ok(())
    }

    /// Parks a connection that finished an exchange cleanly, or closes it.
    fn up_release(&mut self, u: usize, t: Transport) -> io::Result<()> {
        let Some(c) = self.ups.get_mut(u).and_then(Option::as_mut) else {
            return Ok(());
        };
        c.owner = None;
        // A read paused for a slow client resumes: the pool keeps a recv armed.
        c.read_paused = false;
        if !t.keep_alive || self.stop_deadline.is_some() {
            return self.up_close(u);
        }
        let now = Instant::now();
        c.deadline = Some(
            if self.idle_ups.put(c.addr.clone(), u, t.max_idle_per_host) {
                idle_deadline(now, t.idle_timeout)
            } else {
                idle_deadline(now, SURPLUS_IDLE)
            },
        );
        self.up_rearm(u)
    }

    /// Starts dropping an upstream connection; the slot frees when no op is in flight.
    pub(super) fn up_close(&mut self, u: usize) -> io::Result<()> {
        let Some(c) = self.ups.get_mut(u).and_then(Option::as_mut) else {
            return Ok(());
        };
        if c.owner.is_none() {
            let addr = c.addr.clone();
            self.idle_ups.remove(&addr, u);
        }
        let c = self.ups[u].as_mut().expect("checked");
        c.owner = None;
        self.ring
            .buffers_of(self.up_group)
            .give_back(c.lent.drain(..));
        if !c.closing {
            c.closing = true;
            for op in [c.recv, c.connect].into_iter().flatten() {
                self.ring.cancel(op, tag(super::CANCEL, 0))?;
            }
        }
        self.up_maybe_free(u);
        Ok(())
    }

    fn up_maybe_free(&mut self, u: usize) {
        let free =
            self.ups.get(u).and_then(Option::as_ref).is_some_and(|c| {
                c.closing && c.recv.is_none() && c.connect.is_none() && !c.sending
            });
        if free {
            self.ups[u] = None;
            self.free_ups.push(u);
        }
    }

    pub(super) fn on_up_connect(&mut self, u: usize, c: Completion) -> io::Result<()> {
        let Some(up) = self.ups.get_mut(u).and_then(Option::as_mut) else {
            return Ok(());
        };
        if up.connect != Some(c.op) {
            return Ok(());
        }
        up.connect = None;
        if up.closing {
            self.up_maybe_free(u);
            return Ok(());
        }
        up.deadline = None;
        let owner = up.owner;
        if c.result < 0 {
            let text = format!("dial {}: connect: {}", up.addr, errno_text(-c.result));
            up.error = Some(-c.result);
            if let Some(i) = owner {
                let f = failure(
                    if c.result == -libc::ETIMEDOUT {
                        504
                    } else {
                        502
                    },
                    text,
                    true,
                );
                self.trip_failed(i, f)?;
                return self.drive(i);
            }
            return self.up_close(u);
        }
        match owner {
            Some(i) => self.drive(i),
            None => self.up_close(u),
        }
    }

    pub(super) fn on_up_send(&mut self, u: usize, c: Completion) -> io::Result<()> {
        let Some(up) = self.ups.get_mut(u).and_then(Option::as_mut) else {
            return Ok(());
        };
        up.sending = false;
        let Owned::Buf(mut buf, offset) = c.owned else {
            unreachable!("send completions return their buffer")
        };
        if up.closing {
            self.up_maybe_free(u);
            return Ok(());
        }
        if c.result < 0 {
            up.write_error = Some(-c.result);
        } else {
            let sent = offset + c.result as usize;
            if sent < buf.len() {
                up.sending = true;
                self.ring.send(&up.fd, buf, sent, tag(UP_SEND, u))?;
                return Ok(());
            }
            buf.clear();
            up.spare = buf;
        }
        match up.owner {
            Some(i) => self.drive(i),
            None => Ok(()),
        }
    }

    pub(super) fn on_up_recv(&mut self, u: usize, c: Completion) -> io::Result<()> {
        let Some(up) = self.ups.get_mut(u).and_then(Option::as_mut) else {
            return Ok(());
        };
        if up.recv != Some(c.op) {
            return Ok(());
        }
        let mut stray = false;
        if c.result > 0 {
            let bid = c
                .buffer_id
                .expect("recv with buffer select names its buffer");
            stray = self.up_read(u, bid, c.result as usize)?;
        }
        let up = self.ups[u].as_mut().expect("a live recv keeps its slot");
        if !c.more {
            up.recv = None;
        }
        if c.result == 0 {
            up.take_input(&[], true);
            up.eof = true;
        } else if c.result < 0 && c.result != -libc::ENOBUFS && c.result != -libc::ECANCELED {
            up.error = Some(-c.result);
        }
        if up.closing {
            self.up_maybe_free(u);
            return Ok(());
        }
        match up.owner {
            // A pooled connection has nothing to say: data or a close ends it.
            None => {
                if stray || c.result == 0 || up.error.is_some() {
                    return self.up_close(u);
                }
                self.up_rearm(u)
            }
            Some(i) => {
                self.advance(i)?;
                self.flush_later(i);
                self.up_rearm(u)
            }
        }
    }

    /// Takes one read of upstream `u` (`n` bytes in provided buffer `bid`). When it starts
    /// with the response head, the head goes in alone and the routes answer it first, so the
    /// body after it can pass straight to the client (see `pass_through`) rather than be
    /// copied in, moved down and copied out again. The slot keeps this connection meanwhile:
    /// its recv is still recorded, so closing it cannot free the slot. True when bytes came
    /// that no exchange owns (an exchange that ended at the head leaves none).
    fn up_read(&mut self, u: usize, bid: u16, n: usize) -> io::Result<bool> {
        let group = self.up_group;
        let mut from = 0;
        if let Some(i) = self.awaiting_head(u) {
            let data = self.ring.buffers_of(group).filled(bid, n);
            // Heads are short: past this, or with bare LFs, the read goes in whole.
            let scan = &data[..n.min(HEAD_SCAN)];
            if let Some(end) = scan.windows(4).position(|w| w == b"\r\n\r\n") {
                let up = self.ups[u].as_mut().expect("checked");
                up.take_input(&data[..end + 4], false);
                from = end + 4;
                up.unread = n - from;
                self.advance(i)?;
            }
        }
        let up = self.ups[u].as_mut().expect("a live recv keeps its slot");
        up.unread = 0;
        let bufs = self.ring.buffers_of(group);
        let lend = bufs.can_lend();
        let data = &bufs.filled(bid, n)[from..];
        let client = up
            .owner
            .and_then(|i| self.conns.get_mut(i))
            .and_then(Option::as_mut);
        let stray = up.owner.is_none() && !data.is_empty();
        let passed = client.map_or(Pass::No, |conn| pass_through(conn, up, u, data, lend));
        match passed {
            Pass::Lent => {
                up.lent.push(Lent {
                    bid,
                    start: from,
                    len: n - from,
                });
                self.ring.buffers_of(group).lend();
            }
            Pass::Copied => self.ring.buffers_of(group).recycle(bid),
            Pass::No => {
                if !up.closing {
                    up.take_input(data, false);
                }
                self.ring.buffers_of(group).recycle(bid);
            }
        }
        Ok(stray)
    }

    /// The client whose trip on upstream `u` waits for the response head, with nothing of
    /// the response read yet.
    fn awaiting_head(&self, u: usize) -> Option<usize> {
        let up = self.ups.get(u)?.as_ref()?;
        if up.closing || !up.input.is_empty() || up.fcgi.is_some() {
            return None;
        }
        let i = up.owner?;
        let Phase::Proxy(p) = &self.conns.get(i)?.as_ref()?.phase else {
            return None;
        };
        match &p.stage {
            Stage::Trip(trip) if trip.up == u && trip.relay.is_none() => Some(i),
            _ => None,
        }
    }

    pub(super) fn on_up_timer(&mut self, i: usize, c: Completion) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        let Phase::Proxy(p) = &mut conn.phase else {
            return Ok(());
        };
        let Stage::Waiting(_, op) = &p.stage else {
            return self.delayed_flush(i, c.op);
        };
        if *op != c.op {
            return Ok(());
        }
        let Stage::Waiting(call, _) = std::mem::replace(&mut p.stage, Stage::Idle) else {
            unreachable!()
        };
        p.stage = Stage::Start(call);
        self.drive(i)
    }

    /// A `flush_interval` timer ran out: what Go's writer holds goes out, if still due.
    fn delayed_flush(&mut self, i: usize, op: OpId) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        let Phase::Proxy(p) = &mut conn.phase else {
            return Ok(());
        };
        let Stage::Trip(trip) = &mut p.stage else {
            return Ok(());
        };
        let Some(relay) = trip.relay.as_mut().filter(|r| r.flush_timer == Some(op)) else {
            return Ok(());
        };
        relay.flush_timer = None;
        if let Some(go) = relay.go.as_mut().filter(|g| g.flush_pending) {
            go.flush(&mut conn.output);
        }
        self.flush(i)
    }

    /// A reload replaced the config the open tunnels were proxied under. Caddy's cleanup of
    /// the old handler closes them after `stream_close_delay`, or at once without one; the
    /// engine keeps those without a delay open (the product keeps WebSockets across reloads).
    pub(super) fn proxy_reloaded(&mut self) {
        let now = Instant::now();
        for conn in self.conns.iter_mut().flatten() {
            let Phase::Proxy(p) = &mut conn.phase else {
                continue;
            };
            let Stage::Trip(trip) = &mut p.stage else {
                continue;
            };
            let delay = trip.transport.stream.stream_close_delay;
            if let (Some(relay), Some(delay)) = (trip.relay.as_mut(), delay) {
                // Only the first unload counts: the handler it cleaned up is gone.
                if matches!(relay.from, From::Tunnel) && relay.unload_end.is_none() {
                    relay.unload_end = Some(now + delay);
                }
            }
        }
    }

    /// Closes the tunnels whose `stream_timeout` or unload delay passed.
    fn tunnel_clock(&mut self, now: Instant) -> io::Result<()> {
        for i in 0..self.conns.len() {
            let Some(Phase::Proxy(p)) = self.conns[i].as_mut().map(|c| &mut c.phase) else {
                continue;
            };
            let Stage::Trip(trip) = &p.stage else {
                continue;
            };
            let Some(relay) = &trip.relay else {
                continue;
            };
            let due = |at: Option<Instant>| at.is_some_and(|t| now >= t);
            let unloaded = due(relay.unload_end);
            if !unloaded && !due(relay.stream_end) {
                continue;
            }
            // On unload Caddy says goodbye to both ends of a WebSocket first.
            let websocket = unloaded
                && p.done[trip.index].answer.as_ref().is_some_and(|a| {
                    crate::http1::parse::has_token(
                        a.headers
                            .values("Upgrade")
                            .unwrap_or(&[])
                            .iter()
                            .map(String::as_str),
                        "websocket",
                    )
                });
            let up = trip.up;
            trip.host.end();
            let conn = self.conns[i].as_mut().expect("checked");
            if websocket {
                conn.output.extend_from_slice(&going_away(false));
                if let Some(u) = self.ups[up].as_mut() {
                    u.output.extend_from_slice(&going_away(true));
                }
                self.up_flush(up)?;
            }
            let conn = self.conns[i].as_mut().expect("checked");
            conn.phase = Phase::Done;
            conn.close_after = true;
            conn.read_closed = true;
            self.up_close(up)?;
            self.flush(i)?;
            self.maybe_free(i);
        }
        Ok(())
    }

    /// Upstream deadlines, from the worker's clock tick.
    pub(super) fn up_clock(&mut self, now: Instant) -> io::Result<()> {
        self.tunnel_clock(now)?;
        for u in 0..self.ups.len() {
            let Some(c) = self.ups[u].as_mut() else {
                continue;
            };
            let Some((at, why)) = c.deadline else {
                continue;
            };
            if now < at || c.closing {
                continue;
            }
            c.deadline = None;
            match (why, c.owner) {
                (Wait::Idle, _) | (_, None) => self.up_close(u)?,
                (Wait::Dial, Some(i)) => {
                    let f = failure(504, format!("dial {}: i/o timeout", c.addr), true);
                    self.trip_failed(i, f)?;
                    self.drive(i)?;
                }
                (Wait::Header | Wait::Read | Wait::Write, Some(i)) => {
                    c.error = Some(libc::ETIME);
                    self.drive(i)?;
                }
            }
        }
        Ok(())
    }

    /// The client went away: drop its upstream exchange too.
    pub(super) fn proxy_teardown(&mut self, i: usize) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Ok(());
        };
        let Phase::Proxy(p) = &mut conn.phase else {
            return Ok(());
        };
        // A cache flight this client led goes to the next request rather than expiring.
        crate::route::handlers::cache::abandon(conn.peer, conn.local);
        if let Stage::Trip(trip) = &p.stage {
            let up = trip.up;
            trip.host.end();
            p.stage = Stage::Idle;
            conn.phase = Phase::Done;
            self.up_close(up)?;
        }
        Ok(())
    }
}

/// What `pass_through` did with a read.
enum Pass {
    /// The relay must see the bytes.
    No,
    /// Copied into the client's output.
    Copied,
    /// To be sent from the provided buffer itself, after the client's output: the caller
    /// lends the buffer (see `send_lent`).
    Lent,
}

/// Passes `data`, just read from upstream `u`, on to the client when the body passes through
/// unchanged, counted off the body's length, through Go's writer model when the response has
/// one: all of it is sent from the provided buffer in place when Go's buffers would let all
/// of it go (and `lend` allows a loan), else it is copied into the client's output; either
/// way the reads of a completion group leave in one send. No when the relay must see the
/// bytes: no response head yet, bytes already waiting in the upstream's input, a framing,
/// decoder, encoder, sniff, buffer, cache capture or periodic flush in the way, more than the
/// body's rest, a client output past its high-water mark (the upstream's input then holds the
/// backlog), or bytes to copy behind lent ones.
fn pass_through(
    conn: &mut super::conn::Conn,
    up: &mut UpConn,
    u: usize,
    data: &[u8],
    lend: bool,
) -> Pass {
    let queued = conn.output.len() + up.lent_bytes();
    if conn.closing || queued >= OUTPUT_HIGH_WATER || !up.input.is_empty() {
        return Pass::No;
    }
    if up.closing || up.fcgi.is_some() {
        return Pass::No;
    }
    let Phase::Proxy(p) = &mut conn.phase else {
        return Pass::No;
    };
    let Stage::Trip(trip) = &mut p.stage else {
        return Pass::No;
    };
    let Some(relay) = trip.relay.as_mut().filter(|_| trip.up == u) else {
        return Pass::No;
    };
    let periodic = matches!(
        trip.transport.stream.flush_interval,
        FlushInterval::Every(_)
    );
    let plain = !relay.chunked
        && !relay.bodiless
        && relay.gunzip.is_none()
        && relay.pending.is_none()
        && relay.encoder.is_none()
        && relay.held.is_none()
        && relay.capture.is_none()
        && relay.buffer.is_none()
        && (relay.go.is_none() || !periodic);
    let From::Length(left) = &mut relay.from else {
        return Pass::No;
    };
    if !plain || *left < data.len() as u64 {
        return Pass::No;
    }
    // Bytes Go's writer releases join the output, which must not grow behind lent bytes.
    let lent = lend
        && !data.is_empty()
        && up.lent.len() < MAX_LENT
        && relay.go.as_mut().is_none_or(|go| {
            (up.lent.is_empty() || go.empty()) && go.write_through(data.len(), &mut conn.output)
        });
    if !lent && !up.lent.is_empty() {
        return Pass::No;
    }
    *left -= data.len() as u64;
    if let Some(t) = trip.transport.read_timeout {
        up.deadline = Some((Instant::now() + t, Wait::Read));
    }
    if lent {
        return Pass::Lent;
    }
    match &mut relay.go {
        Some(go) => go.write(data, &mut conn.output),
        None => conn.output.extend_from_slice(data),
    }
    Pass::Copied
}

/// Go's writer model for a response whose head was just encoded at `mark` of `output`:
/// Caddy flushes write by write only for `flush_interval -1`, Server-Sent Events and bodies
/// of unknown length (a decoded gzip body is one); the rest waits in Go's buffers.
fn go_writer(
    relay: &Relay,
    stream: &Streaming,
    headers: &HeaderMap,
    output: &mut Vec<u8>,
    mark: usize,
) -> Option<GoWriter> {
    let known = matches!(relay.from, From::Length(_)) && relay.gunzip.is_none();
    if relay.chunked || relay.bodiless || relay.encoder.is_some() || !known {
        return None;
    }
    match stream.flush_for(headers.get("Content-Type"), true) {
        FlushInterval::Immediate => None,
        interval => {
            let go = GoWriter::new(&output[mark..], matches!(interval, FlushInterval::Every(_)));
            output.truncate(mark);
            Some(go)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, ParserConfig};

    #[test]
    fn kept_head_is_the_parsed_head() {
        let heads = [
            "GET /a%20b?q=1 HTTP/1.1\r\nHost: ex.com\r\nX-A: 1\r\nX-A:  2 \r\n\r\n",
            // No Host (HTTP/1.0), and a host from an absolute-form target.
            "POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            "GET http://u@h:8/p HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
            "CONNECT h:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for raw in heads {
            let Ok(Status::Complete(head, used)) =
                parse_request(raw.as_bytes(), &ParserConfig::default())
            else {
                panic!("{raw:?} parses")
            };
            let kept = KeptHead::new(&head, &raw.as_bytes()[..used]);
            assert_eq!(format!("{:?}", kept.head()), format!("{head:?}"));
            assert_eq!(kept.expects_continue(), head.expect.is_some());
        }
    }
}
