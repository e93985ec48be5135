//! One-shot poll for writability: how a worker waits for socket room while the kernel sends a
//! file itself (see `ring::sendfile`).

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use crate::ring::{OpId, Owned, Ring};

impl Ring {
    /// Completes once `fd` is writable (or has an error); the result is the ready mask.
    pub fn poll_writable(&mut self, fd: &impl AsRawFd, tag: u64) -> io::Result<OpId> {
        let op = self.alloc(tag, Owned::Nothing);
        let entry = opcode::PollAdd::new(types::Fd(fd.as_raw_fd()), libc::POLLOUT as u32).build();
        // Safety: a poll carries only a descriptor and a mask, no memory.
        unsafe { self.push(entry, op) }?;
        Ok(op)
    }
}
