//! FastCGI 1.0 records on the wire: what Caddy's client writes (one Responder request with
//! id 1, no keep-conn flag, streams cut at 65,500 bytes and padded to 8) and a decoder that
//! turns the responder's STDOUT stream into the HTTP/1.1 response the proxy's parser reads:
//! the CGI header block as the head (`Status` gives the status line), the rest as the body,
//! in chunks ended by END_REQUEST unless the script declared a length. The decoder also keeps
//! the exchange's deadlines and, with `capture_stderr`, the STDERR stream and its log.

use std::time::Instant;

use super::Exchange;
use crate::http1::header::canonical_key;

const VERSION: u8 = 1;
pub const BEGIN_REQUEST: u8 = 1;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
const RESPONDER: u16 = 1;
/// Caddy's client request id (one request per connection).
const REQUEST_ID: u16 = 1;
/// Caddy's `maxWrite`: the largest record body it writes.
pub const MAX_WRITE: usize = 65500;
/// The longest CGI header block held while waiting for its end (as for HTTP upstreams' heads).
const MAX_HEAD: usize = 1 << 20;

/// Appends one record: header, content, padding to a multiple of 8.
pub fn record(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    debug_assert!(content.len() <= usize::from(u16::MAX));
    let len = content.len() as u16;
    let pad = (8 - content.len() % 8) % 8;
    out.extend_from_slice(&[VERSION, kind]);
    out.extend_from_slice(&REQUEST_ID.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[pad as u8, 0]);
    out.extend_from_slice(content);
    out.extend_from_slice(&[0; 8][..pad]);
}

/// A stream's data as records of at most `MAX_WRITE` bytes (nothing for no data; the empty
/// record that ends a stream is [`end_stream`]).
pub fn stream(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    for piece in data.chunks(MAX_WRITE) {
        record(out, kind, piece);
    }
}

pub fn end_stream(out: &mut Vec<u8>, kind: u8) {
    record(out, kind, &[]);
}

/// BEGIN_REQUEST for the Responder role; the connection closes after the request.
pub fn begin_request(out: &mut Vec<u8>) {
    let role = RESPONDER.to_be_bytes();
    record(out, BEGIN_REQUEST, &[role[0], role[1], 0, 0, 0, 0, 0, 0]);
}

fn put_size(out: &mut Vec<u8>, n: usize) {
    if n > 127 {
        out.extend_from_slice(&((n as u32) | 1 << 31).to_be_bytes());
    } else {
        out.push(n as u8);
    }
}

/// The PARAMS stream with its closing empty record. Like Caddy, a value too long for one
/// record is cut so the pair fits, and pairs are packed into records of `MAX_WRITE` bytes.
pub fn params(out: &mut Vec<u8>, pairs: &[(String, String)]) {
    let mut content: Vec<u8> = Vec::new();
    for (k, v) in pairs {
        let mut v = v.as_bytes();
        if 8 + k.len() + v.len() > MAX_WRITE {
            v = &v[..MAX_WRITE.saturating_sub(8 + k.len())];
        }
        let mut pair = Vec::with_capacity(8 + k.len() + v.len());
        put_size(&mut pair, k.len());
        put_size(&mut pair, v.len());
        pair.extend_from_slice(k.as_bytes());
        pair.extend_from_slice(v);
        if content.len() + pair.len() > MAX_WRITE {
            record(out, PARAMS, &content);
            content.clear();
        }
        content.extend_from_slice(&pair);
    }
    if !content.is_empty() {
        record(out, PARAMS, &content);
    }
    end_stream(out, PARAMS);
}

/// Why the responder's output cannot be read as a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadResponse(pub String);

#[derive(Debug)]
enum Body {
    /// The CGI header block is still arriving.
    Head,
    /// The responder declared a length: bytes pass as they are, up to it.
    Declared(u64),
    /// Chunks until END_REQUEST.
    Chunked,
    /// No body can follow (HEAD, 1xx, 204, 304), or it is over: output is dropped.
    Nothing,
}

/// Reads FastCGI records from the responder and appends the equivalent HTTP/1.1 response.
#[derive(Debug)]
pub struct Decoder {
    /// Record bytes not yet complete.
    pending: Vec<u8>,
    /// STDOUT bytes of the CGI header block.
    stdout: Vec<u8>,
    body: Body,
    /// END_REQUEST was read (or the connection ended): nothing more is translated.
    done: bool,
    x: Exchange,
    /// The response's status, once its header block is read.
    status: Option<u16>,
    /// STDERR bytes so far (kept only to be logged).
    stderr: Vec<u8>,
    /// The write and read deadlines, from the first time the connected exchange is driven.
    deadlines: Option<(Option<Instant>, Option<Instant>)>,
}

impl Decoder {
    pub fn new(x: Exchange) -> Decoder {
        Decoder {
            pending: Vec::new(),
            stdout: Vec::new(),
            body: Body::Head,
            done: false,
            x,
            status: None,
            stderr: Vec::new(),
            deadlines: None,
        }
    }

    /// The deadline in force at `now`: the write deadline while the request is not all
    /// written, then the read deadline (Go fails the first read after it, however late the
    /// writing ended). The worker asks each time it drives the connected exchange, first
    /// when the connect completes: Caddy's deadlines date from the dial.
    pub fn deadline(&mut self, now: Instant, written: bool) -> Option<Instant> {
        let x = &self.x;
        let (write, read) = *self.deadlines.get_or_insert_with(|| {
            (
                x.write_timeout.map(|t| now + t),
                x.read_timeout.map(|t| now + t),
            )
        });
        if written {
            read
        } else {
            write
        }
    }

    /// Feeds bytes read from the responder; the translation is appended to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), BadResponse> {
        if self.done {
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        let mut at = 0;
        while self.pending.len() - at >= 8 {
            let h = &self.pending[at..at + 8];
            if h[0] != VERSION {
                return Err(BadResponse("fcgi: invalid header version".into()));
            }
            let kind = h[1];
            let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            let total = 8 + len + usize::from(h[6]);
            if kind == END_REQUEST {
                // Caddy stops reading at the header of END_REQUEST.
                self.pending.clear();
                return self.end(out);
            }
            if self.pending.len() - at < total {
                break;
            }
            let content = self.pending[at + 8..at + 8 + len].to_vec();
            at += total;
            // Caddy's reader takes any record other than STDERR as response output; STDERR
            // only goes to its log (`capture_stderr`).
            if kind != STDERR {
                self.stdout_data(&content, out)?;
            } else if self.x.stderr.is_some() {
                self.stderr.extend_from_slice(&content);
            }
        }
        self.pending.drain(..at);
        Ok(())
    }

    /// The response is over (END_REQUEST, or the responder closed the connection).
    pub fn end(&mut self, out: &mut Vec<u8>) -> Result<(), BadResponse> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        if let Body::Head = self.body {
            // Go's header reader accepts a block cut short by the end of the stream.
            let block = std::mem::take(&mut self.stdout);
            self.start(&block, out)?;
        }
        if let Body::Chunked = std::mem::replace(&mut self.body, Body::Nothing) {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        Ok(())
    }

    fn stdout_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), BadResponse> {
        match &mut self.body {
            Body::Head => {
                self.stdout.extend_from_slice(data);
                if let Some((end, next)) = head_end(&self.stdout) {
                    let rest = self.stdout.split_off(next);
                    self.stdout.truncate(end);
                    let block = std::mem::take(&mut self.stdout);
                    self.start(&block, out)?;
                    return self.stdout_data(&rest, out);
                }
                if self.stdout.len() > MAX_HEAD {
                    return Err(BadResponse("fcgi: response header block too long".into()));
                }
            }
            Body::Declared(left) => {
                let take = (*left).min(data.len() as u64) as usize;
                out.extend_from_slice(&data[..take]);
                *left -= take as u64;
            }
            Body::Chunked => chunk(out, data),
            Body::Nothing => {}
        }
        Ok(())
    }

    /// Turns the CGI header block into the response head and picks the body's framing.
    fn start(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<(), BadResponse> {
        let fields = parse_fields(block)?;
        let mut status = 200;
        let mut reason = String::new();
        if let Some((_, v)) = fields.iter().find(|(k, _)| k == "Status") {
            let (code, text) = v.split_once(' ').unwrap_or((v, ""));
            status = code
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=999).contains(c))
                .ok_or_else(|| {
                    BadResponse(format!("strconv.Atoi: parsing {code:?}: invalid syntax"))
                })?;
            reason = text.to_owned();
        }
        let mut head = format!("HTTP/1.1 {status:03}");
        if !reason.is_empty() {
            head.push(' ');
            head.push_str(&reason);
        }
        head.push_str("\r\n");
        let mut declared = None;
        for (k, v) in &fields {
            match k.as_str() {
                // The body arrives whole (not chunked) on STDOUT; its framing is ours.
                "Transfer-Encoding" => continue,
                "Content-Length" => match v.trim().parse::<u64>() {
                    Ok(n) if declared.is_none() => declared = Some(n),
                    _ => continue,
                },
                _ => {}
            }
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        self.status = Some(status);
        self.body = if self.x.head_request || !body_allowed(status) {
            Body::Nothing
        } else if let Some(n) = declared {
            Body::Declared(n)
        } else {
            head.push_str("Transfer-Encoding: chunked\r\n");
            Body::Chunked
        };
        head.push_str("\r\n");
        out.extend_from_slice(head.as_bytes());
        Ok(())
    }
}

impl Drop for Decoder {
    /// Caddy logs the captured STDERR when it closes the response body, which closes the
    /// connection; the decoder goes with the connection. Without a response (the header
    /// block never came, or was malformed) Caddy has no body to close and logs nothing.
    fn drop(&mut self) {
        if let (Some(log), Some(status)) = (&self.x.stderr, self.status) {
            if !self.stderr.is_empty() {
                log.emit(status, &self.stderr);
            }
        }
    }
}

fn body_allowed(status: u16) -> bool {
    !(status / 100 == 1 || status == 204 || status == 304)
}

fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// End of the header block (`\r\n\r\n`, `\n\n` or mixed): where it ends and the body starts.
fn head_end(b: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c != b'\n' {
            continue;
        }
        let line = &b[line_start..i];
        if line.is_empty() || line == b"\r" {
            return Some((line_start, i + 1));
        }
        line_start = i + 1;
    }
    None
}

/// Go's `textproto.ReadMIMEHeader` on the CGI header block: canonical keys, values trimmed,
/// continuation lines joined with a space.
fn parse_fields(block: &[u8]) -> Result<Vec<(String, String)>, BadResponse> {
    let text = String::from_utf8_lossy(block);
    let mut fields: Vec<(String, String)> = Vec::new();
    let malformed = |l: &str| BadResponse(format!("malformed MIME header line: {l}"));
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(last) = fields.last_mut() else {
                return Err(BadResponse(format!(
                    "malformed MIME header initial line: {line}"
                )));
            };
            last.1.push(' ');
            last.1.push_str(line.trim_matches([' ', '\t']));
            continue;
        }
        let (k, v) = line.split_once(':').ok_or_else(|| malformed(line))?;
        let valid = |c: u8| c.is_ascii_graphic() && c != b':';
        if k.is_empty() || !k.bytes().all(valid) {
            return Err(malformed(line));
        }
        fields.push((canonical_key(k), v.trim_matches([' ', '\t']).to_owned()));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdout(text: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        stream(&mut v, STDOUT, text);
        v
    }

    fn end() -> Vec<u8> {
        let mut v = Vec::new();
        record(&mut v, END_REQUEST, &[0; 8]);
        v
    }

    fn decode(input: &[u8], head_request: bool) -> String {
        let mut d = Decoder::new(Exchange {
            head_request,
            ..Exchange::default()
        });
        let mut out = Vec::new();
        // byte by byte: any cut of the records gives the same translation
        for b in input {
            d.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn records_are_padded_and_cut_like_caddys() {
        let mut out = Vec::new();
        begin_request(&mut out);
        assert_eq!(out, [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        out.clear();
        record(&mut out, STDIN, b"abc");
        assert_eq!(
            out,
            [1, 5, 0, 1, 0, 3, 5, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]
        );
        out.clear();
        stream(&mut out, STDIN, &vec![7; MAX_WRITE + 1]);
        assert_eq!(out.len(), 8 + MAX_WRITE + 4 + 8 + 1 + 7);
        assert_eq!(&out[4..6], &(MAX_WRITE as u16).to_be_bytes());
    }

    #[test]
    fn params_use_short_and_long_lengths() {
        let mut out = Vec::new();
        let long = "x".repeat(200);
        params(
            &mut out,
            &[("A".into(), "b".into()), ("L".into(), long.clone())],
        );
        let content = &out[8..8 + 2 + 2 + 1 + 4 + 1 + 200];
        assert_eq!(&content[..4], b"\x01\x01Ab");
        assert_eq!(&content[4..9], b"\x01\x80\x00\x00\xc8");
        assert_eq!(&content[10..], long.as_bytes());
        // the closing empty PARAMS record
        assert_eq!(&out[out.len() - 8..], [1, 4, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn stdout_becomes_a_chunked_response_and_status_is_kept() {
        let mut input =
            stdout(b"Status: 404 Not Found\r\nX-A: 1\r\nContent-type: text/html\r\n\r\nno");
        let mut err = Vec::new();
        record(&mut err, STDERR, b"warning");
        input.extend(err);
        input.extend(stdout(b"pe"));
        input.extend(end());
        assert_eq!(
            decode(&input, false),
            "HTTP/1.1 404 Not Found\r\nStatus: 404 Not Found\r\nX-A: 1\r\n\
             Content-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n\
             2\r\nno\r\n2\r\npe\r\n0\r\n\r\n"
        );
    }

    #[test]
    fn declared_length_passes_as_it_is() {
        let mut input = stdout(b"Content-Length: 2\n\nokEXTRA");
        input.extend(end());
        assert_eq!(
            decode(&input, false),
            "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"
        );
    }

    #[test]
    fn head_and_304_have_no_body_and_cut_blocks_count() {
        let mut input = stdout(b"Content-Type: text/plain\r\n\r\nbody");
        input.extend(end());
        assert_eq!(
            decode(&input, true),
            "HTTP/1.1 200\r\nContent-Type: text/plain\r\n\r\n"
        );
        let mut input = stdout(b"Status: 304\r\n\r\n");
        input.extend(end());
        assert_eq!(decode(&input, false), "HTTP/1.1 304\r\nStatus: 304\r\n\r\n");
        // no blank line before the end: the fields so far, an empty body
        let mut d = Decoder::new(Exchange::default());
        let mut out = Vec::new();
        d.feed(&stdout(b"X-A: 1\r\nX-B:  2 \r\n  more"), &mut out)
            .unwrap();
        d.end(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200\r\nX-A: 1\r\nX-B: 2 more\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        );
    }

    #[test]
    fn bad_output_is_an_error() {
        let mut d = Decoder::new(Exchange::default());
        let mut out = Vec::new();
        assert!(d.feed(&stdout(b"no colon here\r\n\r\n"), &mut out).is_err());
        let mut d = Decoder::new(Exchange::default());
        assert!(d.feed(&stdout(b"Status: abc\r\n\r\n"), &mut out).is_err());
        let mut d = Decoder::new(Exchange::default());
        assert!(d.feed(&[2, 6, 0, 1, 0, 0, 0, 0], &mut out).is_err());
        let mut d = Decoder::new(Exchange::default());
        let endless = vec![b'x'; MAX_HEAD + 1];
        assert!(d.feed(&stdout(&endless), &mut out).is_err());
    }

    #[test]
    fn deadlines_date_from_the_first_drive() {
        use std::time::Duration;
        let second = Duration::from_secs(1);
        let mut d = Decoder::new(Exchange {
            read_timeout: Some(2 * second),
            write_timeout: Some(second),
            ..Exchange::default()
        });
        let t0 = Instant::now();
        assert_eq!(d.deadline(t0, false), Some(t0 + second));
        // later drives keep the deadlines; the read one holds once all is written
        let later = t0 + 5 * second;
        assert_eq!(d.deadline(later, false), Some(t0 + second));
        assert_eq!(d.deadline(later, true), Some(t0 + 2 * second));
        let mut d = Decoder::new(Exchange::default());
        assert_eq!(d.deadline(t0, false), None);
        assert_eq!(d.deadline(t0, true), None);
    }

    #[test]
    fn status_is_kept_and_stderr_only_when_captured() {
        let mut input = Vec::new();
        record(&mut input, STDERR, b"PHP message: x");
        input.extend(stdout(b"Status: 503\r\n\r\n"));
        input.extend(end());
        let mut d = Decoder::new(Exchange::default());
        d.feed(&input, &mut Vec::new()).unwrap();
        assert_eq!(d.status, Some(503));
        assert!(d.stderr.is_empty());
    }
}
