//! Send of an owned buffer; partial sends hand the buffer back with its new offset.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use crate::ring::{OpId, Owned, Ring};

impl Ring {
    /// Sends `buf[offset..]`. The buffer returns in the final completion as
    /// `Owned::Buf(buf, offset)`; the result is the number of bytes sent.
    pub fn send(
        &mut self,
        sock: &impl AsRawFd,
        buf: Vec<u8>,
        offset: usize,
        tag: u64,
    ) -> io::Result<OpId> {
        assert!(offset < buf.len(), "send of an empty range");
        let len = u32::try_from(buf.len() - offset).unwrap_or(u32::MAX);
        let op = self.alloc(tag, Owned::Buf(buf, offset));
        let Owned::Buf(buf, _) = self.owned_mut(op) else {
            unreachable!("allocated as a buffer")
        };
        let ptr = buf[offset..].as_ptr();
        let entry = opcode::Send::new(types::Fd(sock.as_raw_fd()), ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        // Safety: the Vec lives in the op's slot and is neither touched nor dropped before
        // the final completion, so its heap block stays valid for the kernel's read.
        unsafe { self.push(entry, op) }?;
        Ok(op)
    }
}
