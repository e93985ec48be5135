//! Response encoder reproducing Go's `net/http` server output byte for byte: handler
//! headers sorted by name, then the server-added `Date`, `Content-Length`, `Connection`
//! and `Transfer-Encoding`, with Go's rules for when each appears.

use super::header::HeaderMap;
use super::status::{body_allowed, reason};

/// Bodies longer than this reach Go's chunk writer before the handler returns, so Go can no
/// longer compute a Content-Length (its `bufferBeforeChunkingSize`).
pub const BUFFER_BEFORE_CHUNKING: usize = 2048;

/// Identity of a file's contents: device, inode, size and change times (ns). Made only for a
/// file whose last change is over a second old, so that a later write, however quick, moves
/// its ctime past the one recorded here (timestamps are coarser than writes are fast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    ctime: i64,
}

impl FileKey {
    /// The key of a file `meta` describes, if the file has settled.
    pub fn settled(meta: &std::fs::Metadata) -> Option<FileKey> {
        use std::os::unix::fs::MetadataExt;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let settled = i64::try_from(now.as_secs()).ok()? - 1;
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        (meta.is_file() && meta.ctime() < settled).then(|| FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: ns(meta.mtime(), meta.mtime_nsec()),
            ctime: ns(meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// A whole settled file's contents in memory.
#[derive(Debug)]
pub struct FileBytes {
    pub key: FileKey,
    pub bytes: Box<[u8]>,
}

/// Where a file body's bytes are.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// An open file, read as the body goes out.
    Open(std::sync::Arc<std::fs::File>),
    /// The whole file, shared with the file cache.
    Memory(std::sync::Arc<FileBytes>),
}

/// A byte range of a file, sent after `body` without being copied into it at once.
#[derive(Debug, Clone)]
pub struct FileBody {
    pub source: FileSource,
    pub offset: u64,
    pub len: u64,
}

impl PartialEq for FileBody {
    fn eq(&self, other: &Self) -> bool {
        let same = match (&self.source, &other.source) {
            (FileSource::Open(a), FileSource::Open(b)) => std::sync::Arc::ptr_eq(a, b),
            (FileSource::Memory(a), FileSource::Memory(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        };
        same && self.offset == other.offset && self.len == other.len
    }
}

impl Eq for FileBody {}

impl FileBody {
    /// Reads up to `max` bytes from the front of the range into `out` and advances it.
    pub fn read_chunk(&mut self, max: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let want = (self.len.min(max as u64)) as usize;
        match &self.source {
            FileSource::Memory(m) => {
                let range = usize::try_from(self.offset)
                    .ok()
                    .and_then(|start| m.bytes.get(start..start + want))
                    .ok_or(std::io::ErrorKind::UnexpectedEof)?;
                out.extend_from_slice(range);
            }
            FileSource::Open(file) => {
                let start = out.len();
                out.resize(start + want, 0);
                let mut filled = 0;
                while filled < want {
                    let n =
                        file.read_at(&mut out[start + filled..], self.offset + filled as u64)?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    filled += n;
                }
            }
        }
        self.offset += want as u64;
        self.len -= want as u64;
        Ok(())
    }

    /// The whole remaining range, read now.
    pub fn read_all(mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_chunk(usize::try_from(self.len).unwrap_or(usize::MAX), &mut out)?;
        Ok(out)
    }

    /// The key of the file, if this range is all of a cached file.
    pub fn whole_file(&self) -> Option<FileKey> {
        match &self.source {
            FileSource::Memory(m) if self.offset == 0 && self.len == m.bytes.len() as u64 => {
                Some(m.key)
            }
            _ => None,
        }
    }
}

/// A complete response as a handler produced it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Body bytes still in a file (large static files); sent after `body`.
    pub file: Option<FileBody>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: HeaderMap::default(),
            body: Vec::new(),
            file: None,
        }
    }
}

/// Facts about the exchange that shape the response framing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exchange {
    /// Request was HTTP/1.1 or later.
    pub http11: bool,
    /// Request method was HEAD.
    pub head: bool,
    /// The connection must close after this response (request asked, or body unusable).
    pub close: bool,
    /// HTTP/1.0 request with `Connection: keep-alive`.
    pub keep_alive_10: bool,
    /// Unread request body too large to discard: Go answers `Connection: close` always.
    pub body_too_large: bool,
}

/// The server-written fields a head leaves out of the handler's (at most these four names),
/// kept without an allocation per response.
#[derive(Default)]
struct Exclude {
    names: [&'static str; 4],
    len: usize,
}

impl Exclude {
    fn push(&mut self, name: &'static str) {
        if !self.names().contains(&name) {
            self.names[self.len] = name;
            self.len += 1;
        }
    }

    fn names(&self) -> &[&'static str] {
        &self.names[..self.len]
    }
}

/// Go's `Header.Get` on values found already: the first, or "".
fn first(values: Option<&[String]>) -> &str {
    values.and_then(|v| v.first()).map_or("", String::as_str)
}

fn has_token(values: Option<&[String]>, token: &str) -> bool {
    values.is_some_and(|vs| super::parse::has_token(vs.iter().map(String::as_str), token))
}

/// Writes header fields sorted by name (Go's `Header.WriteSubset`), skipping `exclude`;
/// CR and LF in values become spaces and surrounding blanks are trimmed.
fn write_fields(headers: &HeaderMap, exclude: &[&str], out: &mut Vec<u8>) {
    type Field = (String, Vec<String>);
    static NONE: Field = (String::new(), Vec::new());
    // Sorted on the stack: a response rarely has more fields than this.
    let mut few = [&NONE; 32];
    let mut many = Vec::new();
    let kept = headers
        .iter()
        .filter(|(k, _)| !exclude.contains(&k.as_str()));
    let sorted: &mut [&Field] = if headers.0.len() <= few.len() {
        let mut n = 0;
        for f in kept {
            few[n] = f;
            n += 1;
        }
        &mut few[..n]
    } else {
        many.extend(kept);
        &mut many
    };
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    for (k, vs) in sorted.iter() {
        for v in vs {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            // CR and LF turn into blanks before the trim, so they are trimmed like blanks.
            let v = v.as_bytes();
            let start = v.iter().position(|b| !blank(b)).unwrap_or(v.len());
            let end = v.iter().rposition(|b| !blank(b)).map_or(start, |i| i + 1);
            let v = &v[start..end];
            if v.iter().any(|b| *b == b'\r' || *b == b'\n') {
                out.extend(v.iter().map(|b| match b {
                    b'\r' | b'\n' => b' ',
                    other => *other,
                }));
            } else {
                out.extend_from_slice(v);
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Appends `n` in decimal with at least `width` digits (zero-padded, `width` at most 20), as
/// `write!(out, "{n:0width$}")` would, without the formatting machinery (a per-response cost).
pub fn push_decimal(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i.min(digits.len() - width.min(digits.len()))..]);
}

/// Appends `n` in lower-case hexadecimal (a chunk size line's number).
pub fn push_hex(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn status_line(status: u16, http11: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if http11 { b"HTTP/1.1 " } else { b"HTTP/1.0 " });
    push_decimal(out, status.into(), 3);
    match reason(status) {
        Some(text) => {
            out.push(b' ');
            out.extend_from_slice(text.as_bytes());
        }
        None => {
            out.extend_from_slice(b" status code ");
            push_decimal(out, status.into(), 0);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// An informational (1xx) response as Go writes it mid-handler: status line and the current
/// header fields without framing headers; the final response follows later.
pub fn encode_interim(status: u16, headers: &HeaderMap, http11: bool, out: &mut Vec<u8>) {
    status_line(status, http11, out);
    write_fields(headers, &["Content-Length", "Transfer-Encoding"], out);
    out.extend_from_slice(b"\r\n");
}

/// How the body after an encoded head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// The connection must close after this response.
    pub close: bool,
    /// Body bytes go out as chunks (terminated by `0\r\n\r\n`).
    pub chunked: bool,
    /// The head promised this many body bytes.
    pub length: Option<u64>,
    /// No body bytes may follow (HEAD, 1xx, 204, 304).
    pub bodiless: bool,
}

/// Appends the wire form of `resp` to `out`; returns whether the connection must close.
pub fn encode(resp: &Response, x: Exchange, date: &str, out: &mut Vec<u8>) -> bool {
    let n = resp.body.len();
    let f = encode_head(resp, x, date, Some(n), None, out);
    // A body shorter than its declared length (a handler failed after stating it) leaves
    // Go's connection unusable, so it closes once the bytes there are went out. A file body
    // the worker sends after these bytes counts.
    let streamed = resp.file.as_ref().filter(|_| !x.head).map_or(0, |f| f.len);
    let short = !f.bodiless && f.length.is_some_and(|l| n as u64 + streamed < l);
    if f.bodiless || n == 0 {
        if f.chunked && !x.head {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        return f.close || short;
    }
    if f.chunked {
        push_hex(out, n as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&resp.body);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
    } else if f.length.is_some_and(|l| n as u64 > l) {
        // Go refuses a write past the declared length (ErrContentLength), so nothing of the
        // body goes out, and the connection closes as the length was not met.
        return true;
    } else {
        out.extend_from_slice(&resp.body);
    }
    f.close || short
}

/// Appends only the head of `resp`, whose body (of unknown size unless a `Content-Length`
/// header says otherwise) a producer streams afterwards: Go's writer once the handler has
/// flushed, so chunked on HTTP/1.1 and close-delimited on HTTP/1.0. `sniffed` is the
/// `Content-Type` Go's writer adds from the first body bytes when the handler set none.
pub fn encode_streamed(
    resp: &Response,
    x: Exchange,
    date: &str,
    sniffed: Option<&str>,
    out: &mut Vec<u8>,
) -> Framing {
    encode_head(resp, x, date, None, sniffed, out)
}

/// The head for a body of `n` bytes (`None`: streamed, size unknown).
fn encode_head(
    resp: &Response,
    x: Exchange,
    date: &str,
    n: Option<usize>,
    sniffed: Option<&str>,
    out: &mut Vec<u8>,
) -> Framing {
    let status = resp.status;
    let direct_write = n.is_none_or(|n| n > BUFFER_BEFORE_CHUNKING);
    let n = n.unwrap_or(0);
    let mut exclude = Exclude::default();
    let mut close = x.close;

    // The fields the framing depends on, found in one pass (Go reads `h[key]`, so the names
    // are matched exactly).
    let (mut te, mut cl, mut connection, mut has_date) = (None, None, None, false);
    for (k, vs) in resp.headers.iter() {
        match k.as_str() {
            "Transfer-Encoding" => te = Some(vs.as_slice()),
            "Content-Length" => cl = Some(vs.as_slice()),
            "Connection" => connection = Some(vs.as_slice()),
            "Date" => has_date = true,
            _ => {}
        }
    }
    let has_te = te.is_some();
    let mut content_length: Option<usize> = cl
        .and_then(|v| v.first())
        .and_then(|v| v.trim().parse().ok());
    let mut set_cl = None;
    if !direct_write && !has_te && body_allowed(status) && cl.is_none() && (!x.head || n > 0) {
        content_length = Some(n);
        set_cl = Some(n);
    }
    let mut set_connection: Option<&str> = None;
    let has_cl = content_length.is_some();
    if x.keep_alive_10 && (x.head || has_cl || !body_allowed(status)) {
        if connection.is_none() {
            set_connection = Some("keep-alive");
        }
        close = false;
    } else if !x.http11 || x.close {
        close = true;
    }
    if first(connection) == "close" {
        close = true;
    }
    if x.body_too_large {
        close = true;
        exclude.push("Connection");
        set_connection = Some("close");
    }
    if !body_allowed(status) {
        exclude.push("Content-Length");
        exclude.push("Transfer-Encoding");
        if status == 304 {
            exclude.push("Content-Type");
        }
    }
    let date = (!has_date).then_some(date);
    let te_value = first(te);
    let mut chunking = false;
    let mut set_te = None;
    if x.head || !body_allowed(status) || has_cl {
        exclude.push("Transfer-Encoding");
    } else if x.http11 {
        if has_te && te_value == "identity" {
            close = true;
            exclude.push("Transfer-Encoding");
        } else {
            chunking = true;
            set_te = Some("chunked");
            if has_te && te_value == "chunked" {
                exclude.push("Transfer-Encoding");
            }
        }
    } else {
        close = true;
        exclude.push("Transfer-Encoding");
    }
    if chunking {
        exclude.push("Content-Length");
    }
    if close && !has_token(connection, "close") && !x.body_too_large {
        exclude.push("Connection");
        set_connection = x.http11.then_some("close");
    }

    status_line(status, x.http11, out);
    write_fields(&resp.headers, exclude.names(), out);
    if let Some(d) = date {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(d.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(cl) = set_cl.filter(|_| !chunking && body_allowed(status)) {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, cl as u64, 0);
        out.extend_from_slice(b"\r\n");
    }
    let mut field = |name: &[u8], value: &str| {
        out.extend_from_slice(name);
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    if let Some(ct) = sniffed {
        field(b"Content-Type: ", ct);
    }
    if let Some(c) = set_connection {
        field(b"Connection: ", c);
    }
    if let Some(te) = set_te {
        field(b"Transfer-Encoding: ", te);
    }
    out.extend_from_slice(b"\r\n");
    Framing {
        close,
        chunked: chunking,
        length: content_length.map(|l| l as u64),
        bodiless: x.head || !body_allowed(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Fri, 27 Nov 2026 04:13:42 GMT";

    fn wire(resp: &Response, x: Exchange) -> (String, bool) {
        let mut out = Vec::new();
        let close = encode(resp, x, DATE, &mut out);
        (String::from_utf8(out).unwrap(), close)
    }

    fn http11() -> Exchange {
        Exchange {
            http11: true,
            ..Exchange::default()
        }
    }

    fn hello() -> Response {
        let mut r = Response::new(200);
        r.headers.set("Server", "Caddy");
        r.headers.set("Content-Type", "text/plain; charset=utf-8");
        r.body = b"hi there".to_vec();
        r
    }

    #[test]
    fn file_body_meets_the_declared_length() {
        let mut r = Response::new(200);
        r.headers.set("Content-Length", "300000");
        let file = std::fs::File::open("/dev/null").unwrap();
        r.file = Some(FileBody {
            source: FileSource::Open(std::sync::Arc::new(file)),
            offset: 0,
            len: 300_000,
        });
        assert!(
            !wire(&r, http11()).1,
            "the file makes up the length: keep-alive"
        );
        r.file.as_mut().unwrap().len = 299_999;
        assert!(wire(&r, http11()).1, "one byte short: close");
    }

    #[test]
    fn sorted_then_extras() {
        let (w, close) = wire(&hello(), http11());
        assert_eq!(w, format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nServer: Caddy\r\nDate: {DATE}\r\nContent-Length: 8\r\n\r\nhi there"));
        assert!(!close);
    }

    #[test]
    fn head_keeps_length_drops_body() {
        let x = Exchange {
            head: true,
            ..http11()
        };
        let (w, _) = wire(&hello(), x);
        assert!(w.ends_with("Content-Length: 8\r\n\r\n"), "{w}");
    }

    #[test]
    fn no_content_has_no_length() {
        let (w, _) = wire(&Response::new(204), http11());
        assert_eq!(
            w,
            format!("HTTP/1.1 204 No Content\r\nDate: {DATE}\r\n\r\n")
        );
    }

    #[test]
    fn empty_ok_has_zero_length() {
        let (w, _) = wire(&Response::new(200), http11());
        assert!(w.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn large_body_is_chunked() {
        let mut r = Response::new(200);
        r.body = vec![b'a'; 3000];
        let (w, close) = wire(&r, http11());
        assert!(w.contains("Transfer-Encoding: chunked\r\n\r\nbb8\r\n"));
        assert!(w.ends_with("a\r\n0\r\n\r\n"));
        assert!(!close);
    }

    #[test]
    fn large_body_http10_closes() {
        let mut r = Response::new(200);
        r.body = vec![b'a'; 3000];
        let (w, close) = wire(&r, Exchange::default());
        assert!(w.starts_with("HTTP/1.0 200 OK\r\nDate:"));
        assert!(!w.contains("Content-Length") && !w.contains("chunked"));
        assert!(close);
    }

    #[test]
    fn close_requested() {
        let x = Exchange {
            close: true,
            ..http11()
        };
        let (w, close) = wire(&hello(), x);
        assert!(w.contains("Content-Length: 8\r\nConnection: close\r\n\r\n"));
        assert!(close);
    }

    #[test]
    fn keep_alive_10() {
        let x = Exchange {
            keep_alive_10: true,
            ..Exchange::default()
        };
        let (w, close) = wire(&hello(), x);
        assert!(w.contains("Content-Length: 8\r\nConnection: keep-alive\r\n\r\n"));
        assert!(!close);
    }

    #[test]
    fn numbers_like_fmt() {
        let text = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            f(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(&|o| push_decimal(o, 7, 3)), "007");
        assert_eq!(text(&|o| push_decimal(o, 0, 0)), "0");
        for n in [0, 7, 10, 102_400, u64::MAX] {
            assert_eq!(text(&|o| push_decimal(o, n, 1)), n.to_string());
        }
        assert_eq!(
            text(&|o| push_decimal(o, u64::MAX, 3)),
            u64::MAX.to_string()
        );
        assert_eq!(text(&|o| push_hex(o, 0)), "0");
        assert_eq!(text(&|o| push_hex(o, 3000)), "bb8");
        assert_eq!(
            text(&|o| status_line(42, false, o)),
            "HTTP/1.0 042 status code 42\r\n"
        );
    }

    #[test]
    fn unknown_status() {
        let (w, _) = wire(&Response::new(599), http11());
        assert!(w.starts_with("HTTP/1.1 599 status code 599\r\n"));
    }
}
