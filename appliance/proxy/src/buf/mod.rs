//! Provided-buffer ring (IORING_REGISTER_PBUF_RING): a pool of equal buffers the kernel
//! picks from for multishot recv, so idle connections hold no receive memory.
//!
//! Lifecycle: a buffer belongs to the kernel from the moment its entry is published (tail
//! store) until a completion names its id; then it is ours until [`BufRing::recycle`]
//! publishes it again. Data is only exposed through [`BufRing::filled`] for an id a
//! completion just returned, which is the window in which the kernel cannot write it.
//!
//! A buffer may also be lent to a send ([`BufRing::lend`]): it then stays out of the kernel's
//! reach until the ring hands it back ([`BufRing::give_back`]) once the send completes.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

const PAGE: usize = 4096;

/// A registered buffer group: the shared ring of entries plus the buffers themselves.
pub struct BufRing {
    ring: NonNull<BufRingEntry>,
    ring_layout: Layout,
    data: NonNull<u8>,
    data_layout: Layout,
    count: u16,
    size: usize,
    group: u16,
    tail: u16,
    /// Buffers lent to sends (or kept for one) and not given back yet.
    lent: u16,
}

/// Bytes of a provided buffer that a send reads in place.
#[derive(Debug, Clone, Copy)]
pub struct Lent {
    pub bid: u16,
    pub start: usize,
    pub len: usize,
}

impl BufRing {
    /// Allocates `count` (a power of two) buffers of `size` bytes and registers them as
    /// group `group` with the ring behind `submitter`.
    pub fn register(
        submitter: &Submitter<'_>,
        group: u16,
        count: u16,
        size: usize,
    ) -> io::Result<BufRing> {
        assert!(count.is_power_of_two() && size > 0);
        let ring_layout = Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<BufRingEntry>(),
            PAGE,
        )
        .map_err(io::Error::other)?;
        let data_layout =
            Layout::from_size_align(usize::from(count) * size, PAGE).map_err(io::Error::other)?;
        // Safety: both layouts have non-zero size (count and size are non-zero).
        let ring = NonNull::new(unsafe { alloc::alloc_zeroed(ring_layout) })
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?
            .cast::<BufRingEntry>();
        // Safety: as above.
        let Some(data) = NonNull::new(unsafe { alloc::alloc(data_layout) }) else {
            // Safety: `ring` was allocated just above with `ring_layout`.
            unsafe { alloc::dealloc(ring.as_ptr().cast(), ring_layout) };
            return Err(io::ErrorKind::OutOfMemory.into());
        };
        let mut this = BufRing {
            ring,
            ring_layout,
            data,
            data_layout,
            count,
            size,
            group,
            tail: 0,
            lent: 0,
        };
        for bid in 0..count {
            this.stage(bid);
        }
        // Safety: the entry array is page aligned, `count` entries long, and stays allocated
        // until `Drop`, which runs only after the owning ring (declared before it) is closed.
        unsafe {
            submitter.register_buf_ring_with_flags(ring.as_ptr() as u64, count, group, 0)?;
        }
        this.publish();
        Ok(this)
    }

    /// The buffer group id to pass to recv.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// The bytes the kernel wrote into buffer `bid` (a completion just returned it).
    pub fn filled(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count && len <= self.size);
        // Safety: `bid` is in range, so the slice lies inside `data`; a completion handed
        // the buffer back to us and it is not republished while this borrow lives (recycle
        // takes `&mut self`).
        unsafe {
            std::slice::from_raw_parts(self.data.as_ptr().add(usize::from(bid) * self.size), len)
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        assert!(bid < self.count);
        self.stage(bid);
        self.publish();
    }

    /// Counts a buffer just returned by a completion as lent: instead of recycling it, the
    /// caller keeps it for a send that reads it in place, and [`BufRing::give_back`] ends
    /// the loan.
    pub fn lend(&mut self) {
        self.lent += 1;
    }

    /// Ends these loans: the kernel may fill their buffers again (one publish for all).
    pub fn give_back(&mut self, loans: impl IntoIterator<Item = Lent>) {
        for l in loans {
            assert!(l.bid < self.count);
            self.lent -= 1;
            self.stage(l.bid);
        }
        self.publish();
    }

    /// Whether lending one more buffer leaves the kernel three quarters of the group, so
    /// loans held while clients read do not starve the receives (with half, a 64-buffer group
    /// under 64 busy connections ran out about every other response, each time costing a
    /// completion and a new recv: 42.6 against 37.7 µs per proxied 100 KB response).
    pub fn can_lend(&self) -> bool {
        self.lent < self.count / 4
    }

    /// The bytes of a loan, as [`BufRing::filled`] gave them.
    pub fn lent(&self, l: Lent) -> &[u8] {
        &self.filled(l.bid, l.start + l.len)[l.start..]
    }

    fn stage(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        // Safety: `index < count`, so the entry lies in our allocation; the kernel reads
        // entries only up to the published tail, and this one is past it.
        let entry = unsafe { &mut *self.ring.as_ptr().add(index) };
        // Safety: `bid < count`, so the address is inside `data`.
        let addr = unsafe { self.data.as_ptr().add(usize::from(bid) * self.size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // Safety: the ring base is valid and page aligned; the tail field overlays entry 0's
        // reserved word, which the kernel reads atomically, hence the atomic release store.
        unsafe {
            let tail = BufRingEntry::tail(self.ring.as_ptr()) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // Safety: both blocks were allocated in `register` with these layouts, and the ring
        // that could write to them has been dropped already (field order in `Ring`).
        unsafe {
            alloc::dealloc(self.ring.as_ptr().cast(), self.ring_layout);
            alloc::dealloc(self.data.as_ptr(), self.data_layout);
        }
    }
}
