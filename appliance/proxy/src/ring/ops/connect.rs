//! Connect of a socket to a peer address, TCP or unix (upstream connections of
//! `reverse_proxy`).

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use crate::ring::{OpId, Owned, Ring};

impl Ring {
    /// Connects `sock` to `addr`; the result is 0 or a negated errno.
    pub fn connect(
        &mut self,
        sock: &impl AsRawFd,
        addr: socket2::SockAddr,
        tag: u64,
    ) -> io::Result<OpId> {
        let op = self.alloc(tag, Owned::Addr(Box::new(addr)));
        let Owned::Addr(sa) = self.owned_mut(op) else {
            unreachable!("allocated as an address")
        };
        let entry =
            opcode::Connect::new(types::Fd(sock.as_raw_fd()), sa.as_ptr().cast(), sa.len()).build();
        // Safety: the address is boxed in the op's slot until the final completion, so the
        // kernel reads valid memory whenever it copies it in.
        unsafe { self.push(entry, op) }?;
        Ok(op)
    }
}
