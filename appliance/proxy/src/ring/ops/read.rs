//! Read of an 8-byte eventfd counter (the workers' wake-up channel).

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use crate::ring::{OpId, Owned, Ring};

impl Ring {
    /// Reads the eventfd counter; completes when another thread signals the eventfd.
    pub fn read_counter(&mut self, fd: &impl AsRawFd, tag: u64) -> io::Result<OpId> {
        let op = self.alloc(tag, Owned::Counter(Box::new([0; 8])));
        let Owned::Counter(counter) = self.owned_mut(op) else {
            unreachable!("allocated as a counter")
        };
        let entry = opcode::Read::new(types::Fd(fd.as_raw_fd()), counter.as_mut_ptr(), 8).build();
        // Safety: the counter is boxed inside the op's slot, so its address is stable and it
        // is only dropped after the final completion.
        unsafe { self.push(entry, op) }?;
        Ok(op)
    }
}
