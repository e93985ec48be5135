//! Multishot recv into the ring's provided buffers.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use crate::ring::{OpId, Owned, Ring};

impl Ring {
    /// Arms a multishot recv on `sock` into the first buffer group (see `recv_multi_from`).
    pub fn recv_multi(&mut self, sock: &impl AsRawFd, tag: u64) -> io::Result<OpId> {
        self.recv_multi_from(sock, 0, tag)
    }

    /// Arms a multishot recv on `sock` into buffer group `group`; each completion names the
    /// provided buffer it filled (see [`crate::buf::BufRing`]), which the caller recycles
    /// after copying it out.
    pub fn recv_multi_from(
        &mut self,
        sock: &impl AsRawFd,
        group: u16,
        tag: u64,
    ) -> io::Result<OpId> {
        let group = self.buffers_of(group).group();
        let op = self.alloc(tag, Owned::Nothing);
        let entry = opcode::RecvMulti::new(types::Fd(sock.as_raw_fd()), group).build();
        // Safety: the kernel writes only into provided buffers, which the ring owns until it
        // is dropped (after the io_uring instance itself).
        unsafe { self.push(entry, op) }?;
        Ok(op)
    }
}
