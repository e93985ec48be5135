//! Multishot accept: one SQE yields a completion per accepted connection.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{opcode, types};

use crate::ring::{Completion, OpId, Owned, Ring};

impl Ring {
    /// Arms a multishot accept on `listener`; accepted sockets are close-on-exec.
    pub fn accept_multi(&mut self, listener: &impl AsRawFd, tag: u64) -> io::Result<OpId> {
        let op = self.alloc(tag, Owned::Nothing);
        let entry = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build();
        // Safety: a multishot accept without an address buffer lends the kernel no memory.
        unsafe { self.push(entry, op) }?;
        Ok(op)
    }
}

/// Takes ownership of the socket an accept completion reports.
pub fn accepted(c: &Completion) -> io::Result<OwnedFd> {
    if c.result < 0 {
        return Err(io::Error::from_raw_os_error(-c.result));
    }
    // Safety: a non-negative accept result is a descriptor the kernel just installed in our
    // table for this completion alone; nothing else refers to it yet.
    Ok(unsafe { OwnedFd::from_raw_fd(c.result) })
}
