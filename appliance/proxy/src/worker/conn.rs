//! Per-connection state: buffered input, queued output, where the current request is.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Instant;

use crate::http1::response::Exchange;
use crate::http1::{ChunkedDecoder, Response};
use crate::ring::OpId;

/// Go discards at most this much unread request body before answering, then gives up and
/// closes (`maxPostHandlerReadBytes` + 1).
pub const DISCARD_LIMIT: u64 = 256 << 10;

/// How the rest of the current request body is being skipped.
#[derive(Debug)]
pub enum Discard {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// Where the connection is in its request/response cycle.
#[derive(Debug)]
pub enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Skipping the body of a request whose response waits until the body is read.
    Body {
        discard: Discard,
        seen: u64,
        response: Option<Response>,
        exchange: Exchange,
    },
    /// Waiting for, or relaying, an upstream round trip (`reverse_proxy`).
    Proxy(Box<super::proxy::Proxying>),
    /// No more requests will be read.
    Done,
}

#[derive(Debug)]
pub struct Conn {
    pub fd: OwnedFd,
    pub server: usize,
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    pub input: Vec<u8>,
    pub output: Vec<u8>,
    /// The rest of a file body, read chunk by chunk as sends complete.
    pub stream: Option<crate::http1::response::FileBody>,
    /// A send is in flight (its buffer is owned by the ring).
    pub sending: bool,
    /// Reusable allocation for the next send.
    pub spare: Vec<u8>,
    pub recv: Option<OpId>,
    /// The recv was cancelled because the input backlog is too large.
    pub read_paused: bool,
    pub phase: Phase,
    /// Close once output is flushed.
    pub close_after: bool,
    /// Peer closed its side, or reading was abandoned.
    pub read_closed: bool,
    /// Teardown started: waiting for in-flight ops to finish before dropping the socket.
    pub closing: bool,
    /// Read deadline for the current wait (idle, header, body, or linger).
    pub deadline: Option<Instant>,
    /// The current request began to arrive (from accept for the first request, from its
    /// first bytes for later ones) and its head is not read yet.
    pub started: bool,
    /// Go's write deadline: set when a head is read, for the answer to be written by.
    pub write_deadline: Option<Instant>,
    /// The read deadline passed while a handler waited for the body: it runs on what came.
    pub body_cut: bool,
    /// Send a FIN and drain input for a moment before closing (Go's closeWriteAndWait, after
    /// an oversized head or body).
    pub linger: bool,
    /// Draining now, until the deadline.
    pub lingering: bool,
    /// Previous request was a POST: Go tolerates stray CRLF before the next one.
    pub after_post: bool,
    /// The routes asked for the body of the request at the front: buffer it, then rerun.
    pub wants_body: bool,
    /// No request has been read yet.
    pub fresh: bool,
}

impl Conn {
    pub fn new(fd: OwnedFd, server: usize) -> Conn {
        Conn {
            fd,
            server,
            peer: None,
            local: None,
            input: Vec::new(),
            output: Vec::new(),
            stream: None,
            sending: false,
            spare: Vec::new(),
            recv: None,
            read_paused: false,
            phase: Phase::Head,
            close_after: false,
            read_closed: false,
            closing: false,
            deadline: None,
            started: false,
            write_deadline: None,
            body_cut: false,
            linger: false,
            lingering: false,
            after_post: false,
            wants_body: false,
            fresh: true,
        }
    }

    /// Nothing buffered, nothing owed: safe to close on shutdown.
    pub fn idle(&self) -> bool {
        matches!(self.phase, Phase::Head)
            && self.input.is_empty()
            && self.output.is_empty()
            && self.stream.is_none()
            && !self.sending
    }

    /// Output is written or waiting to be (what a write deadline cuts short).
    pub fn writing(&self) -> bool {
        self.sending || !self.output.is_empty() || self.stream.is_some()
    }
}
