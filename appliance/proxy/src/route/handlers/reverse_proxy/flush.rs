//! When the bytes of a proxied response reach the client: Go's response writer, as Caddy's
//! `copyResponse` drives it for a body of known length without `flush_interval -1`.
//!
//! Go buffers a response twice: the body goes through a 2 KiB `bufio.Writer` (the
//! `response.w`) into the chunk writer, which writes the head once, then the body, into the
//! connection's 4 KiB `bufio.Writer`, which writes to the socket. A `bufio.Writer` passes a
//! write straight through when it is empty and the write does not fit, and otherwise fills
//! itself and writes out its whole buffer. Nothing else leaves before a flush: the end of the
//! handler, or Caddy's `maxLatencyWriter` (`flush_interval` > 0), which flushes that long
//! after the first write since its last flush (and once that long after the head).
//!
//! [`GoWriter`] replays those rules on the lengths of the body writes and keeps the bytes
//! that would still sit in Go's buffers.

/// `bufferBeforeChunkingSize`: the response's own buffer.
const RESPONSE_BUFFER: usize = 2048;
/// The connection's write buffer (`bufio.NewWriterSize(conn, 4<<10)`).
const CONN_BUFFER: usize = 4096;

/// The unsent tail of one response (head, then body) and the state of Go's two buffers.
#[derive(Debug)]
pub struct GoWriter {
    /// Bytes of the response not yet on the wire, in order.
    hold: Vec<u8>,
    /// Length of the head while it waits for the first body bytes to leave the response
    /// buffer (the chunk writer writes it then); `None` once written.
    head: Option<usize>,
    /// Bytes in the response buffer and in the connection buffer.
    response: usize,
    conn: usize,
    /// Bytes the connection buffer wrote to the socket during the current call.
    sent: usize,
    /// `maxLatencyWriter.flushPending`: a delayed flush is due.
    pub flush_pending: bool,
}

impl GoWriter {
    /// Takes over a response whose encoded head is `head`; with a periodic flush, a
    /// delayed flush is pending from the start, as Caddy arms it before the first write.
    pub fn new(head: &[u8], periodic: bool) -> GoWriter {
        // Room for what Go's two buffers can hold besides the head, so holding never grows.
        let mut hold = Vec::with_capacity(head.len() + RESPONSE_BUFFER + CONN_BUFFER);
        hold.extend_from_slice(head);
        GoWriter {
            head: Some(hold.len()),
            hold,
            response: 0,
            conn: 0,
            sent: 0,
            flush_pending: periodic,
        }
    }

    /// One body write: appends to `out` what goes on the wire now.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.sent = 0;
        self.response_write(data.len());
        self.release(data, out);
    }

    /// One body write of `n` bytes that stay where they are, for a caller that sends them
    /// itself right after `out`: true when Go's buffers would pass all of them on now, after
    /// moving to `out` what they held; false, with nothing changed, when some would stay.
    pub fn write_through(&mut self, n: usize, out: &mut Vec<u8>) -> bool {
        let before = (self.head, self.response, self.conn);
        self.sent = 0;
        self.response_write(n);
        if self.sent == self.hold.len() + n {
            out.append(&mut self.hold);
            self.head = None;
            return true;
        }
        (self.head, self.response, self.conn) = before;
        false
    }

    /// Nothing waits in Go's buffers.
    pub fn empty(&self) -> bool {
        self.hold.is_empty()
    }

    /// A flush (Caddy's delayed flush, or the end of the response): everything goes out.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.hold);
        self.head = None;
        self.response = 0;
        self.conn = 0;
        self.flush_pending = false;
    }

    /// Moves the first `sent` bytes of the held ones followed by `data` to `out`, and keeps
    /// the rest of `data`.
    fn release(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let from_hold = self.sent.min(self.hold.len());
        out.extend_from_slice(&self.hold[..from_hold]);
        self.hold.drain(..from_hold);
        let from_data = self.sent - from_hold;
        out.extend_from_slice(&data[..from_data]);
        self.hold.extend_from_slice(&data[from_data..]);
    }

    /// `bufio.Writer.Write` on the response buffer.
    fn response_write(&mut self, mut n: usize) {
        while n > RESPONSE_BUFFER - self.response {
            if self.response == 0 {
                self.chunk_write(n);
                return;
            }
            let copied = RESPONSE_BUFFER - self.response;
            self.response = 0;
            self.chunk_write(RESPONSE_BUFFER);
            n -= copied;
        }
        self.response += n;
    }

    /// The chunk writer: the head first, then the bytes, into the connection buffer.
    fn chunk_write(&mut self, n: usize) {
        if let Some(head) = self.head.take() {
            self.conn_write(head);
        }
        self.conn_write(n);
    }

    /// `bufio.Writer.Write` on the connection buffer.
    fn conn_write(&mut self, mut n: usize) {
        while n > CONN_BUFFER - self.conn {
            if self.conn == 0 {
                self.sent += n;
                return;
            }
            let copied = CONN_BUFFER - self.conn;
            self.sent += CONN_BUFFER;
            self.conn = 0;
            n -= copied;
        }
        self.conn += n;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{going_away, FlushInterval, Streaming};
    use super::*;

    fn streaming(json: &str) -> Streaming {
        let serde_json::Value::Object(m) = serde_json::from_str(json).unwrap() else {
            unreachable!()
        };
        Streaming::compile(&m).unwrap()
    }

    #[test]
    fn options_as_caddy_reads_them() {
        let interval = |json| streaming(json).flush_interval;
        assert_eq!(interval("{}"), FlushInterval::Never);
        assert_eq!(interval(r#"{"flush_interval": 0}"#), FlushInterval::Never);
        assert_eq!(
            interval(r#"{"flush_interval": -1}"#),
            FlushInterval::Immediate
        );
        assert_eq!(
            interval(r#"{"flush_interval": "-1s"}"#),
            FlushInterval::Immediate
        );
        assert_eq!(
            interval(r#"{"flush_interval": "200ms"}"#),
            FlushInterval::Every(Duration::from_millis(200))
        );
        let s = streaming(r#"{"stream_timeout": "5s", "stream_close_delay": 2000000000}"#);
        assert_eq!(s.stream_timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.stream_close_delay, Some(Duration::from_secs(2)));
    }

    #[test]
    fn event_streams_and_unknown_lengths_flush_at_once() {
        let s = streaming(r#"{"flush_interval": "1s"}"#);
        let every = FlushInterval::Every(Duration::from_secs(1));
        assert_eq!(s.flush_for("text/plain", true), every);
        assert_eq!(s.flush_for("text/plain", false), FlushInterval::Immediate);
        for sse in ["text/event-stream", "Text/Event-Stream; charset=utf-8"] {
            assert_eq!(s.flush_for(sse, true), FlushInterval::Immediate);
        }
    }

    #[test]
    fn going_away_frames() {
        assert_eq!(going_away(false), [0x88, 2, 0x03, 0xe9]);
        let masked = going_away(true);
        assert_eq!(masked[..2], [0x88, 0x82]);
        let key = &masked[2..6];
        assert_eq!([masked[6] ^ key[0], masked[7] ^ key[1]], [0x03, 0xe9]);
    }

    /// Total bytes on the wire after each write of a body written in `writes` pieces.
    fn wire(head: usize, writes: &[usize]) -> Vec<usize> {
        let mut w = GoWriter::new(&vec![b'h'; head], false);
        let mut out = Vec::new();
        writes
            .iter()
            .map(|&n| {
                w.write(&vec![b'b'; n], &mut out);
                out.len()
            })
            .collect()
    }

    #[test]
    fn small_writes_leave_in_connection_buffer_loads() {
        // Measured with Caddy 2.11.7: a 140-byte head and 1000-byte writes reach the client
        // 4096 bytes at a time (after the 5th and the 9th write).
        assert_eq!(
            wire(140, &[1000; 9]),
            [0, 0, 0, 0, 4096, 4096, 4096, 4096, 8192]
        );
    }

    #[test]
    fn large_writes_pass_through_empty_buffers() {
        // Caddy 2.11.7: 3000 bytes stay; then 5000 fill the connection buffer to 4096 and
        // the rest waits; 1500 more stay in the response buffer.
        assert_eq!(wire(140, &[3000, 5000, 1500]), [0, 4096, 4096]);
        assert_eq!(wire(100, &[10000]), [10100]);
    }

    #[test]
    fn writes_through_only_what_goes_out_whole() {
        let mut w = GoWriter::new(b"HEAD", false);
        let mut out = Vec::new();
        assert!(
            !w.write_through(3000, &mut out),
            "3000 bytes wait in the buffers"
        );
        assert!(out.is_empty() && !w.empty());
        assert!(
            w.write_through(10000, &mut out),
            "the head and 10000 bytes go out"
        );
        assert_eq!(out, b"HEAD");
        assert!(w.empty());
        w.write(&[b'x'; 100], &mut out);
        assert_eq!(out.len(), 4, "a short write stays in the response buffer");
        assert!(
            !w.write_through(3000, &mut out),
            "part of 3000 more would stay"
        );
        assert!(
            w.write_through(10000, &mut out),
            "held bytes go out before it"
        );
        assert_eq!(out.len(), 4 + 100);
        assert!(w.empty());
    }

    #[test]
    fn flush_sends_everything_in_order() {
        let mut w = GoWriter::new(b"HEAD", true);
        assert!(w.flush_pending);
        let mut out = Vec::new();
        w.write(b"body", &mut out);
        assert!(out.is_empty());
        w.flush(&mut out);
        assert_eq!(out, b"HEADbody");
        assert!(!w.flush_pending);
        w.write(&[b'x'; 5000], &mut out);
        assert_eq!(
            out.len(),
            8 + 5000,
            "an empty pair of buffers passes a long write on"
        );
    }
}
