//! io_uring driver: the only place (with `buf/`) that talks to the kernel ring.
//!
//! Flow: callers submit typed ops (one file per opcode in `ops/`), each carrying a caller
//! `tag`. Any memory an op lends to the kernel (send buffers, eventfd counters, timespecs) is
//! moved into the op's slot here and only handed back in the final [`Completion`], so the
//! worker above never holds a reference into memory the kernel may still write or read, and
//! dropping a connection early cannot free a buffer that is in flight.
//!
//! user_data layout: low 32 bits are the slot index, high 32 bits its generation, so a
//! cancellation aimed at a finished op can never hit a newer op that reused the slot.

pub mod eventfd;
pub mod ops;
pub mod probe;
pub mod sendfile;

use std::io;

use io_uring::{cqueue, squeue, IoUring};

use crate::buf::BufRing;

/// Identifies one submitted op (its user_data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpId(u64);

/// Memory owned by an in-flight op, returned with its final completion.
#[derive(Debug, Default)]
pub enum Owned {
    #[default]
    Nothing,
    /// A send buffer and the offset the send started at.
    Buf(Vec<u8>, usize),
    /// A send of a buffer and lent provided buffers; the final completion turns it into
    /// `Buf` (see [`ops::send::LentSend::settle`]).
    Lent(Box<ops::send::LentSend>),
    /// The 8-byte counter an eventfd read fills.
    Counter(Box<[u8; 8]>),
    /// The timespec a timeout points at.
    Timespec(Box<io_uring::types::Timespec>),
    /// The peer address a connect points at.
    Addr(Box<socket2::SockAddr>),
}

/// One completion, with the caller's tag.
#[derive(Debug)]
pub struct Completion {
    pub tag: u64,
    pub op: OpId,
    pub result: i32,
    /// True when a multishot op stays armed after this completion.
    pub more: bool,
    /// Provided-buffer id the kernel picked, for ops that select buffers.
    pub buffer_id: Option<u16>,
    /// The op's lent memory; `Nothing` until the final completion.
    pub owned: Owned,
}

struct Slot {
    generation: u32,
    live: Option<(u64, Owned)>,
}

/// A single-issuer ring plus the table of in-flight ops.
pub struct Ring {
    // Declared first so it is dropped (and the kernel stops touching memory) before `bufs`.
    uring: IoUring,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Provided-buffer rings, indexed by group id.
    bufs: Vec<BufRing>,
}

impl Ring {
    /// Creates a ring sized for `entries` submissions.
    pub fn new(entries: u32) -> io::Result<Ring> {
        let uring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_defer_taskrun()
            .setup_cqsize(entries * 4)
            .build(entries)?;
        Ok(Ring {
            uring,
            slots: Vec::new(),
            free: Vec::new(),
            bufs: Vec::new(),
        })
    }

    /// Registers a provided-buffer ring of `count` buffers of `size` bytes; returns its group
    /// id (0 for the first, then 1, ...). Groups let sockets with different read patterns
    /// pick different buffer sizes.
    pub fn register_buffers(&mut self, count: u16, size: usize) -> io::Result<u16> {
        let group = u16::try_from(self.bufs.len()).map_err(io::Error::other)?;
        let bufs = BufRing::register(&self.uring.submitter(), group, count, size)?;
        self.bufs.push(bufs);
        Ok(group)
    }

    /// The first provided-buffer ring (group 0).
    pub fn buffers(&mut self) -> &mut BufRing {
        self.buffers_of(0)
    }

    /// The provided-buffer ring of `group`; panics if it was not registered (a programming
    /// error).
    pub fn buffers_of(&mut self, group: u16) -> &mut BufRing {
        &mut self.bufs[usize::from(group)]
    }

    /// Number of ops still owned by the kernel.
    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn alloc(&mut self, tag: u64, owned: Owned) -> OpId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    live: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.live = Some((tag, owned));
        OpId(u64::from(slot.generation) << 32 | u64::from(index))
    }

    fn owned_mut(&mut self, op: OpId) -> &mut Owned {
        let slot = &mut self.slots[(op.0 & 0xffff_ffff) as usize];
        &mut slot.live.as_mut().expect("op is live").1
    }

    /// Queues one SQE whose pointers, if any, point into memory owned by slot `op`.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until the op's final completion; ops in
    /// `ops/` guarantee this by pointing only into `Owned` memory held in the slot, or
    /// into the provided-buffer ring that lives as long as the ring.
    unsafe fn push(&mut self, entry: squeue::Entry, op: OpId) -> io::Result<()> {
        let entry = entry.user_data(op.0);
        loop {
            // Safety: forwarded from this function's contract.
            if unsafe { self.uring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.uring.submit()?;
        }
    }

    /// Submits queued SQEs and waits for at least `want` completions.
    pub fn submit_and_wait(&mut self, want: usize) -> io::Result<()> {
        match self.uring.submit_and_wait(want) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves all available completions into `out`.
    pub fn drain(&mut self, out: &mut Vec<Completion>) {
        let mut cq = self.uring.completion();
        cq.sync();
        for cqe in &mut cq {
            let ud = cqe.user_data();
            let index = (ud & 0xffff_ffff) as usize;
            let generation = (ud >> 32) as u32;
            let more = cqueue::more(cqe.flags());
            let Some(slot) = self.slots.get_mut(index) else {
                continue;
            };
            if slot.generation != generation {
                continue;
            }
            let Some((tag, _)) = slot.live.as_ref() else {
                continue;
            };
            let tag = *tag;
            let mut result = cqe.result();
            let owned = if more {
                Owned::Nothing
            } else {
                let (_, owned) = slot.live.take().expect("checked above");
                self.free.push(index as u32);
                match owned {
                    Owned::Lent(send) => {
                        let (owned, settled) = send.settle(&mut self.bufs, result);
                        result = settled;
                        owned
                    }
                    owned => owned,
                }
            };
            out.push(Completion {
                tag,
                op: OpId(ud),
                result,
                more,
                buffer_id: cqueue::buffer_select(cqe.flags()),
                owned,
            });
        }
    }
}
