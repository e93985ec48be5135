//! Relative timeout, used as the workers' clock tick.

use std::io;
use std::time::Duration;

use io_uring::{opcode, types};

use crate::ring::{OpId, Owned, Ring};

impl Ring {
    /// Completes with `-ETIME` after `after` has elapsed.
    pub fn timeout(&mut self, after: Duration, tag: u64) -> io::Result<OpId> {
        let ts = types::Timespec::new()
            .sec(after.as_secs())
            .nsec(after.subsec_nanos());
        let op = self.alloc(tag, Owned::Timespec(Box::new(ts)));
        let Owned::Timespec(ts) = self.owned_mut(op) else {
            unreachable!("allocated as a timespec")
        };
        let entry = opcode::Timeout::new(&**ts as *const types::Timespec).build();
        // Safety: the timespec is boxed in the op's slot until the final completion.
        unsafe { self.push(entry, op) }?;
        Ok(op)
    }
}
