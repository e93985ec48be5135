//! Request-head parser: request line, header fields, message framing (RFC 9112 §2–§6).
//!
//! Flow: [`parse_request`] looks for a complete head in the caller's bytes and either
//! returns `Status::Partial` (need more bytes), a [`Head`] borrowing the buffer plus the
//! number of bytes it used, or a [`ParseError`] naming the response Go's server would send.
//! Checks run in the order net/http runs them, so that a request with several faults gets
//! the same status and text as from Caddy. Where Go is lax in ways that enable request
//! smuggling, we are strict: obs-fold and Transfer-Encoding on HTTP/1.0 are refused, and a
//! body framed by both Content-Length and Transfer-Encoding is refused unless
//! `allow_length_with_chunked` restores Go's rule.

use super::body::BodyKind;

/// Limits and strictness switches, strict by default.
#[derive(Debug, Clone)]
pub struct ParserConfig {
    /// Caddy's `max_header_bytes` (Go's `MaxHeaderBytes`, 1 MiB by default). Go reads up to
    /// this plus 4096 bytes of head before answering 431.
    pub max_header_bytes: usize,
    /// Accept Content-Length together with Transfer-Encoding: chunked (chunked wins), as Go does.
    pub allow_length_with_chunked: bool,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            max_header_bytes: 1 << 20,
            allow_length_with_chunked: false,
        }
    }
}

/// Protocol version of a request (`HTTP/1.x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

impl Version {
    /// Go's `ProtoAtLeast(1, 1)`.
    pub fn at_least_11(self) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= 1)
    }
}

/// Result of feeding bytes to the parser.
#[derive(Debug)]
pub enum Status<T> {
    Complete(T, usize),
    Partial,
}

/// Why a head was refused; each maps to the exact response Go writes on the raw conn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// 400 with an optional reason appended to the status text and body.
    BadRequest(Option<&'static str>),
    /// 431: head longer than the limit.
    TooLarge,
    /// 505: not HTTP/1.x.
    UnsupportedVersion,
    /// 501: a Transfer-Encoding other than a single `chunked`.
    UnsupportedTransferEncoding,
}

impl ParseError {
    /// The bytes Go's server writes for this error before closing the connection.
    pub fn response(self) -> Vec<u8> {
        const HEADERS: &str =
            "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n";
        let (status, body) = match self {
            ParseError::BadRequest(None) => ("400 Bad Request".to_owned(), None),
            ParseError::BadRequest(Some(why)) => (format!("400 Bad Request: {why}"), None),
            ParseError::TooLarge => ("431 Request Header Fields Too Large".to_owned(), None),
            ParseError::UnsupportedVersion => (
                "505 HTTP Version Not Supported: unsupported protocol version".to_owned(),
                None,
            ),
            ParseError::UnsupportedTransferEncoding => (
                "501 Not Implemented".to_owned(),
                Some("Unsupported transfer encoding"),
            ),
        };
        let body = body.unwrap_or(&status);
        format!("HTTP/1.1 {status}{HEADERS}{body}").into_bytes()
    }
}

/// A parsed request head borrowing the input buffer.
#[derive(Debug)]
pub struct Head<'b> {
    pub method: &'b str,
    /// Request target exactly as sent (origin-, absolute- or asterisk-form).
    pub target: &'b str,
    pub version: Version,
    /// Header fields in arrival order; names as sent, values trimmed of SP/HTAB.
    pub headers: Vec<(&'b str, &'b str)>,
    /// The request's host: the authority of an absolute-form target, else the Host header.
    pub host: &'b str,
    pub body: BodyKind,
    /// Go's `Request.Close`: the connection ends after this exchange.
    pub close: bool,
    /// HTTP/1.0 request that asked for keep-alive.
    pub keep_alive_10: bool,
    /// Value of `Expect`, if any.
    pub expect: Option<&'b str>,
}

impl<'b> Head<'b> {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

fn is_tchar(c: u8) -> bool {
    super::header::is_token_byte(c)
}

fn is_value_byte(c: u8) -> bool {
    c >= 0x80 || (c >= 0x20 && c != 0x7f) || c == b'\t'
}

/// Bytes Go's `httpguts.ValidHostHeader` allows, looked up per byte of every Host value.
static HOST_BYTE: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'!' | b'$'..=b'.' | b':' | b';' | b'=' | b'[' | b']' | b'_' | b'~'
    ));

fn is_host_byte(c: u8) -> bool {
    HOST_BYTE[usize::from(c)]
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|c| *c != b' ' && *c != b'\t');
    match start {
        None => &[],
        Some(a) => {
            let b = s
                .iter()
                .rposition(|c| *c != b' ' && *c != b'\t')
                .unwrap_or(a);
            &s[a..=b]
        }
    }
}

/// Whether a comma-separated header value list contains `token` (case-insensitive).
pub fn has_token<'a>(values: impl IntoIterator<Item = &'a str>, token: &str) -> bool {
    values.into_iter().any(|v| {
        v.split(',')
            .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
    })
}

fn parse_version(s: &[u8]) -> Option<Version> {
    match s {
        b"HTTP/1.1" => Some(Version { major: 1, minor: 1 }),
        b"HTTP/1.0" => Some(Version { major: 1, minor: 0 }),
        [b'H', b'T', b'T', b'P', b'/', ma, b'.', mi]
            if ma.is_ascii_digit() && mi.is_ascii_digit() =>
        {
            Some(Version {
                major: ma - b'0',
                minor: mi - b'0',
            })
        }
        _ => None,
    }
}

fn valid_target(t: &[u8]) -> bool {
    if t.is_empty() || t.iter().any(|c| *c < 0x20 || *c == 0x7f) {
        return false;
    }
    let path_end = t.iter().position(|c| *c == b'?').unwrap_or(t.len());
    let path = &t[..path_end];
    let escapes_ok = path.iter().enumerate().all(|(i, c)| {
        *c != b'%'
            || (path.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && path.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return false;
    }
    if t == b"*" || t[0] == b'/' {
        return true;
    }
    // absolute-form: scheme ":" ...
    match t.iter().position(|c| *c == b':') {
        Some(0) | None => false,
        Some(i) => {
            t[0].is_ascii_alphabetic()
                && t[1..i]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
        }
    }
}

/// Authority of an absolute-form target (`http://host:port/...`), if any.
fn absolute_authority(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return None;
    }
    let rest = target.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    Some(auth.rsplit_once('@').map_or(auth, |(_, h)| h))
}

fn lines(buf: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let nl = buf[pos..].iter().position(|c| *c == b'\n')?;
        let line_end = pos + nl;
        let mut line = &buf[pos..line_end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        pos = line_end + 1;
        Some((line, pos))
    })
}

/// Parses one request head from the start of `buf`.
pub fn parse_request<'b>(
    buf: &'b [u8],
    cfg: &ParserConfig,
) -> Result<Status<Head<'b>>, ParseError> {
    use ParseError::BadRequest;
    let limit = cfg.max_header_bytes + 4096;
    let mut it = lines(buf);
    let Some((line, mut consumed)) = it.next() else {
        return if buf.len() > limit {
            Err(ParseError::TooLarge)
        } else {
            Ok(Status::Partial)
        };
    };
    // Head bytes up to the blank line; find it before judging anything else (counting the
    // fields, so that they are collected into one allocation afterwards).
    let fields_start = consumed;
    let mut count = 0;
    let mut complete = false;
    for (l, end) in it.by_ref() {
        consumed = end;
        if l.is_empty() {
            complete = true;
            break;
        }
        count += 1;
        if consumed > limit {
            break;
        }
    }
    if consumed > limit || (!complete && buf.len() > limit) {
        return Err(ParseError::TooLarge);
    }
    if !complete {
        return Ok(Status::Partial);
    }

    // Request line: method SP target SP version, split on the first two spaces like Go.
    let line = std::str::from_utf8(line).map_err(|_| BadRequest(None))?;
    let (method, rest) = line.split_once(' ').ok_or(BadRequest(None))?;
    let (target, proto) = rest.split_once(' ').ok_or(BadRequest(None))?;
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(BadRequest(None));
    }
    let version = parse_version(proto.as_bytes()).ok_or(BadRequest(None))?;
    if !valid_target(target.as_bytes()) {
        return Err(BadRequest(None));
    }

    let mut headers: Vec<(&'b str, &'b str)> = Vec::with_capacity(count);
    let mut bad_name = false;
    for (f, _) in lines(&buf[fields_start..consumed]).take(count) {
        // obs-fold (RFC 9112 §5.2): Go joins it; we refuse it, as a smuggling vector.
        if f[0] == b' ' || f[0] == b'\t' {
            return Err(BadRequest(None));
        }
        let colon = f.iter().position(|c| *c == b':').ok_or(BadRequest(None))?;
        let (name, value) = (&f[..colon], trim(&f[colon + 1..]));
        if name.is_empty() || !name.iter().all(|c| is_tchar(*c) || *c == b' ') {
            return Err(BadRequest(None));
        }
        bad_name |= name.contains(&b' ');
        if !value.iter().all(|c| is_value_byte(*c)) {
            return Err(BadRequest(None));
        }
        let name = std::str::from_utf8(name).map_err(|_| BadRequest(None))?;
        let value = std::str::from_utf8(value).map_err(|_| BadRequest(None))?;
        headers.push((name, value));
    }

    let mut head = Head {
        method,
        target,
        version,
        headers,
        host: "",
        body: BodyKind::None,
        close: false,
        keep_alive_10: false,
        expect: None,
    };

    // Framing (Go's readTransfer). Transfer-Encoding is ignored on HTTP/1.0 requests.
    let te: Vec<&str> = head.values("Transfer-Encoding").collect();
    let cls: Vec<&str> = head.values("Content-Length").collect();
    let mut chunked = false;
    // Go ignores Transfer-Encoding on HTTP/1.0; it is faulty framing there (RFC 9112 §6.1),
    // so we refuse it rather than guess where the body ends.
    if !te.is_empty() && !version.at_least_11() {
        return Err(BadRequest(None));
    }
    if !te.is_empty() {
        if te.len() != 1 || !te[0].eq_ignore_ascii_case("chunked") {
            return Err(ParseError::UnsupportedTransferEncoding);
        }
        if !cls.is_empty() && !cfg.allow_length_with_chunked {
            return Err(BadRequest(None));
        }
        chunked = true;
    }
    if chunked {
        head.body = BodyKind::Chunked;
    } else if let Some(first) = cls.first() {
        if cls.iter().any(|c| c != first) || first.is_empty() {
            return Err(BadRequest(None));
        }
        if !first.bytes().all(|c| c.is_ascii_digit()) {
            return Err(BadRequest(None));
        }
        let n: u64 = first.parse().map_err(|_| BadRequest(None))?;
        if n > i64::MAX as u64 {
            return Err(BadRequest(None));
        }
        if n > 0 {
            head.body = BodyKind::Length(n);
        }
    }

    if version.major != 1 {
        return Err(ParseError::UnsupportedVersion);
    }

    let (host, more_hosts) = {
        let mut hosts = head.values("Host");
        (hosts.next(), hosts.next().is_some())
    };
    if more_hosts {
        return Err(BadRequest(None));
    }
    if version.at_least_11() && host.is_none() && method != "CONNECT" {
        return Err(BadRequest(Some("missing required Host header")));
    }
    if let Some(h) = host {
        if !h.bytes().all(is_host_byte) {
            return Err(BadRequest(Some("malformed Host header")));
        }
    }
    if bad_name {
        return Err(BadRequest(Some("invalid header name")));
    }
    head.host = absolute_authority(target)
        .filter(|a| !a.is_empty())
        .or(host)
        .unwrap_or("");

    let has_close = has_token(head.values("Connection"), "close");
    let has_keep_alive = has_token(head.values("Connection"), "keep-alive");
    if version.at_least_11() {
        head.close = has_close;
    } else {
        head.close = has_close || !has_keep_alive;
        head.keep_alive_10 = has_keep_alive;
    }
    head.expect = head.header("Expect");
    Ok(Status::Complete(head, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Result<Status<Head<'_>>, ParseError> {
        parse_request(input.as_bytes(), &ParserConfig::default())
    }

    /// `req!(input => ok(method, target, consumed))` or `req!(input => err(ParseError))`.
    macro_rules! req {
        ($name:ident: $input:expr => partial) => {
            #[test]
            fn $name() {
                assert!(matches!(parse($input), Ok(Status::Partial)));
            }
        };
        ($name:ident: $input:expr => err($e:expr)) => {
            #[test]
            fn $name() {
                assert_eq!(parse($input).unwrap_err(), $e);
            }
        };
        ($name:ident: $input:expr => ok($m:expr, $t:expr, $body:expr, $close:expr)) => {
            #[test]
            fn $name() {
                let input: &str = $input;
                match parse(input).unwrap() {
                    Status::Complete(h, n) => {
                        assert_eq!(
                            (h.method, h.target, h.body, h.close),
                            ($m, $t, $body, $close)
                        );
                        assert_eq!(n, input.len());
                    }
                    Status::Partial => panic!("partial"),
                }
            }
        };
    }

    use BodyKind::{Chunked, Length, None as NoBody};
    use ParseError::*;

    req!(simple: "GET / HTTP/1.1\r\nHost: a\r\n\r\n" => ok("GET", "/", NoBody, false));
    req!(bare_lf: "GET /x HTTP/1.1\nHost: a\n\n" => ok("GET", "/x", NoBody, false));
    req!(http10_closes: "GET / HTTP/1.0\r\n\r\n" => ok("GET", "/", NoBody, true));
    req!(http10_keepalive: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" => ok("GET", "/", NoBody, false));
    req!(conn_close: "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n" => ok("GET", "/", NoBody, true));
    req!(content_length: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n" => ok("POST", "/", Length(5), false));
    req!(dup_same_cl: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n" => ok("POST", "/", Length(5), false));
    req!(chunked: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n" => ok("POST", "/", Chunked, false));
    req!(absolute_form: "GET http://h/p?q HTTP/1.1\r\nHost: a\r\n\r\n" => ok("GET", "http://h/p?q", NoBody, false));
    req!(asterisk: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" => ok("OPTIONS", "*", NoBody, false));
    req!(partial_line: "GET / HTTP/1.1\r\nHost" => partial);
    req!(partial_empty: "" => partial);
    req!(no_host: "GET / HTTP/1.1\r\n\r\n" => err(BadRequest(Some("missing required Host header"))));
    req!(two_hosts: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" => err(BadRequest(None)));
    req!(bad_host: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n" => err(BadRequest(Some("malformed Host header"))));
    req!(space_before_colon: "GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n" => err(BadRequest(Some("invalid header name"))));
    req!(space_before_colon_host: "GET / HTTP/1.1\r\nHost : a\r\n\r\n" => err(BadRequest(Some("missing required Host header"))));
    req!(cl_and_te: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" => err(BadRequest(None)));
    req!(differing_cl: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n" => err(BadRequest(None)));
    req!(negative_cl: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n" => err(BadRequest(None)));
    req!(plus_cl: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n" => err(BadRequest(None)));
    req!(te_gzip: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" => err(UnsupportedTransferEncoding));
    req!(te_twice: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" => err(UnsupportedTransferEncoding));
    req!(te_in_http10: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" => err(BadRequest(None)));
    req!(obs_fold: "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n" => err(BadRequest(None)));
    req!(bare_cr: "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n" => err(BadRequest(None)));
    req!(http2: "GET / HTTP/2.0\r\nHost: a\r\n\r\n" => err(UnsupportedVersion));
    req!(bad_version: "GET / HTTP/1\r\nHost: a\r\n\r\n" => err(BadRequest(None)));
    req!(bad_escape: "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n" => err(BadRequest(None)));
    req!(query_escape_ok: "GET /a?%zz HTTP/1.1\r\nHost: a\r\n\r\n" => ok("GET", "/a?%zz", NoBody, false));
    req!(relative_target: "GET foo HTTP/1.1\r\nHost: a\r\n\r\n" => err(BadRequest(None)));
    req!(bad_method: "G(T / HTTP/1.1\r\nHost: a\r\n\r\n" => err(BadRequest(None)));
    req!(no_colon: "GET / HTTP/1.1\r\nHost: a\r\nJunk\r\n\r\n" => err(BadRequest(None)));

    #[test]
    fn too_large() {
        let big = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(1 << 21));
        assert_eq!(parse(&big).unwrap_err(), TooLarge);
        let partial = "a".repeat((1 << 20) + 5000);
        assert_eq!(parse(&partial).unwrap_err(), TooLarge);
    }

    #[test]
    fn host_from_absolute_form() {
        let Status::Complete(h, _) =
            parse("GET http://u@example.com:81/p HTTP/1.1\r\nHost: a\r\n\r\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(h.host, "example.com:81");
    }

    /// Mutated requests (byte flips, inserts, cuts) must parse or be refused, never panic,
    /// and a complete parse must never claim more bytes than it was given.
    #[test]
    fn mutations_never_panic() {
        let seeds: [&[u8]; 3] = [
            b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h:80\r\nConnection: close\r\n\r\n",
            b"POST http://h/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"PUT / HTTP/1.0\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let special = b" :\r\n\t%/?*\x00\x7f\xff,;=\"";
        for _ in 0..50_000 {
            let mut input = seeds[(next() % 3) as usize].to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % (input.len() + 1);
                let byte = if next() % 2 == 0 {
                    special[(next() as usize) % special.len()]
                } else {
                    next() as u8
                };
                match next() % 3 {
                    0 if at < input.len() => input[at] = byte,
                    1 => input.insert(at, byte),
                    _ => input.truncate(at),
                }
            }
            let cfg = ParserConfig::default();
            if let Ok(Status::Complete(_, used)) = parse_request(&input, &cfg) {
                assert!(used <= input.len());
            }
            let mut dec = super::super::body::ChunkedDecoder::default();
            if let Ok(p) = dec.feed(&input, |_| {}) {
                assert!(p.consumed <= input.len());
            }
        }
    }

    #[test]
    fn lax_switches() {
        let cfg = ParserConfig {
            allow_length_with_chunked: true,
            ..ParserConfig::default()
        };
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let Status::Complete(h, _) = parse_request(input, &cfg).unwrap() else {
            panic!()
        };
        assert_eq!(h.body, Chunked);
    }
}
