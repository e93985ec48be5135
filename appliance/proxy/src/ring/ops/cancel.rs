//! Async cancel of one earlier op (by its user_data).

use std::io;

use io_uring::opcode;

use crate::ring::{OpId, Owned, Ring};

impl Ring {
    /// Asks the kernel to cancel `target`; the target still delivers its own final
    /// completion (usually `-ECANCELED`), which is when its memory comes back.
    pub fn cancel(&mut self, target: OpId, tag: u64) -> io::Result<OpId> {
        let op = self.alloc(tag, Owned::Nothing);
        let entry = opcode::AsyncCancel::new(target.0).build();
        // Safety: a cancel carries only the target's user_data, no memory.
        unsafe { self.push(entry, op) }?;
        Ok(op)
    }
}
