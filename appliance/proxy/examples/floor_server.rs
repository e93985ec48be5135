//! The floor of CPU per request for a server built like the engine, on this machine: the
//! engine's own ring layer (multishot accept, multishot recv into provided buffers, one send
//! per read) answering every read with the same response bytes, with no parsing, routing or
//! clock. What it costs per request is what the kernel and the ring cost; anything a real
//! server does comes on top. `bench/http_bench.py` runs it beside Caddy and zeroserve on the
//! respond workload, so the CPU and p95 goals can be read against that floor.
//!
//! It assumes what wrk does: one request in flight per connection, each arriving in one read.
//! A read that held two pipelined requests would get one answer, so it is a measuring tool,
//! not a server.
//!
//!     floor_server CONFIG
//!
//! CONFIG holds the port (127.0.0.1) on its first line, then the response bytes exactly.

use std::io;
use std::net::TcpListener;
use std::os::fd::OwnedFd;

use zeroserve_proxy::ring::ops::accept::accepted;
use zeroserve_proxy::ring::{Completion, Owned, Ring};

const ACCEPT: u64 = u64::MAX;
/// The engine's client buffer ring, as `worker::Worker` registers it.
const BUFFERS: u16 = 256;
const BUFFER_SIZE: usize = 16 << 10;

struct Conn {
    fd: OwnedFd,
    /// Sends in flight; the socket closes once it is closing and none is left.
    sending: usize,
    /// The peer closed, a read failed, or a send fell short.
    closing: bool,
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, config] = args.as_slice() else {
        eprintln!("usage: floor_server CONFIG");
        std::process::exit(2);
    };
    let config = std::fs::read(config)?;
    let newline = config.iter().position(|&b| b == b'\n');
    let (port, response) = config.split_at(newline.unwrap_or(config.len()));
    let port: u16 = std::str::from_utf8(port)
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| io::Error::other("CONFIG: no port on the first line"))?;
    let response = response.get(1..).unwrap_or_default().to_vec();
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let mut ring = Ring::new(1024)?;
    ring.register_buffers(BUFFERS, BUFFER_SIZE)?;
    ring.accept_multi(&listener, ACCEPT)?;
    // Indexed by accept order and never reused, so a late completion cannot reach a newer
    // connection; a plain index keeps the lookup off the floor being measured (a run accepts
    // a few thousand connections).
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut done: Vec<Completion> = Vec::new();
    loop {
        ring.submit_and_wait(1)?;
        ring.drain(&mut done);
        for c in done.drain(..) {
            if c.tag == ACCEPT {
                if !c.more {
                    ring.accept_multi(&listener, ACCEPT)?;
                }
                let Ok(fd) = accepted(&c) else { continue };
                socket2::SockRef::from(&fd).set_tcp_nodelay(true)?;
                ring.recv_multi(&fd, (conns.len() as u64) << 1)?;
                conns.push(Some(Conn {
                    fd,
                    sending: 0,
                    closing: false,
                }));
                continue;
            }
            let (id, is_send) = (c.tag >> 1, c.tag & 1 == 1);
            let Some(conn) = conns.get_mut(id as usize).and_then(Option::as_mut) else {
                continue;
            };
            if is_send {
                conn.sending -= 1;
                // The buffer comes back with the final completion; a failed or short send
                // (never seen for a response this small on loopback) ends the connection.
                let whole = matches!(c.owned, Owned::Buf(ref b, at)
                    if usize::try_from(c.result).is_ok_and(|sent| at + sent == b.len()));
                conn.closing |= !whole;
            } else {
                if let Some(bid) = c.buffer_id {
                    ring.buffers().recycle(bid);
                }
                if c.result > 0 {
                    ring.send(&conn.fd, response.clone(), 0, id << 1 | 1)?;
                    conn.sending += 1;
                } else {
                    conn.closing = true;
                }
                if c.result > 0 && !c.more {
                    ring.recv_multi(&conn.fd, id << 1)?;
                }
            }
            if conn.closing && conn.sending == 0 {
                conns[id as usize] = None;
            }
        }
    }
}
