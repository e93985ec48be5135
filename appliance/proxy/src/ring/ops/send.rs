//! Send of an owned buffer; partial sends hand the buffer back with its new offset. A send
//! may also read provided buffers in place after the owned bytes (one `sendmsg` over all
//! of them); it completes like a plain send (see [`LentSend`]).

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types};

use crate::buf::{BufRing, Lent};
use crate::ring::{OpId, Owned, Ring};

/// The memory of a send over an owned buffer followed by lent provided buffers: the
/// kernel reads the iovecs through the message header, all boxed in the op's slot.
pub struct LentSend {
    buf: Vec<u8>,
    group: u16,
    lent: Vec<Lent>,
    iov: Vec<libc::iovec>,
    msg: libc::msghdr,
}

impl std::fmt::Debug for LentSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LentSend")
            .field("buf", &self.buf.len())
            .field("group", &self.group)
            .field("lent", &self.lent)
            .finish()
    }
}

impl LentSend {
    /// After the final completion (`result` bytes sent, or a negated errno): the loans end,
    /// and the send completes as a plain one of the owned buffer, which then holds what was
    /// not sent (with a result of 0, so the caller sends it from its start).
    pub(crate) fn settle(self, bufs: &mut [BufRing], result: i32) -> (Owned, i32) {
        let LentSend {
            mut buf,
            group,
            lent,
            ..
        } = self;
        let bufs = &mut bufs[usize::from(group)];
        let mut result = result;
        let total = buf.len() + lent.iter().map(|l| l.len).sum::<usize>();
        if let Ok(mut sent) = usize::try_from(result) {
            if sent < total {
                let from_buf = sent.min(buf.len());
                buf.drain(..from_buf);
                sent -= from_buf;
                for l in &lent {
                    let data = bufs.lent(*l);
                    let skip = sent.min(data.len());
                    buf.extend_from_slice(&data[skip..]);
                    sent -= skip;
                }
                result = 0;
            }
        }
        bufs.give_back(lent);
        (Owned::Buf(buf, 0), result)
    }
}

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

    /// Sends `buf` and then the `lent` bytes of provided-buffer group `group` in place, as
    /// one message. The final completion gives the loans back and returns like [`Ring::send`]
    /// from offset 0: `Owned::Buf` with what was not sent, if anything (see
    /// [`LentSend::settle`]).
    pub fn send_lent(
        &mut self,
        sock: &impl AsRawFd,
        buf: Vec<u8>,
        group: u16,
        lent: Vec<Lent>,
        tag: u64,
    ) -> io::Result<OpId> {
        let bufs = self.buffers_of(group);
        let mut iov = Vec::with_capacity(lent.len() + 1);
        let owned = (!buf.is_empty()).then_some(&buf[..]);
        for part in owned.into_iter().chain(lent.iter().map(|l| bufs.lent(*l))) {
            iov.push(libc::iovec {
                iov_base: part.as_ptr().cast_mut().cast(),
                iov_len: part.len(),
            });
        }
        let send = Box::new(LentSend {
            buf,
            group,
            lent,
            iov,
            msg: libc::msghdr {
                msg_name: std::ptr::null_mut(),
                msg_namelen: 0,
                msg_iov: std::ptr::null_mut(),
                msg_iovlen: 0,
                msg_control: std::ptr::null_mut(),
                msg_controllen: 0,
                msg_flags: 0,
            },
        });
        let op = self.alloc(tag, Owned::Lent(send));
        let Owned::Lent(send) = self.owned_mut(op) else {
            unreachable!("allocated as a lent send")
        };
        send.msg.msg_iov = send.iov.as_mut_ptr();
        send.msg.msg_iovlen = send.iov.len();
        let entry = opcode::SendMsg::new(types::Fd(sock.as_raw_fd()), &send.msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build();
        // Safety: the header, the iovecs and the owned buffer live in the op's boxed slot
        // until the final completion; the iovecs point into that buffer's heap block and into
        // provided buffers the caller lent (`BufRing::lend`), which only `settle` gives back,
        // after the final completion, so the kernel never refills them while it reads them.
        unsafe { self.push(entry, op) }?;
        Ok(op)
    }
}
