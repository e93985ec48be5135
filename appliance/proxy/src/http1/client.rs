//! The client half of HTTP/1.1, for `reverse_proxy`'s upstream connections: the request head
//! as Go's `Request.write` puts it on the wire, and a response-head parser with Go's
//! `ReadResponse` + transport framing rules. Sans-IO like the rest of `http1`.

use super::header::HeaderMap;
use super::parse::{has_token, Status};
use super::response::push_decimal;

/// Largest upstream response head accepted (Go's transport default is 1 MiB of headers
/// plus slack; a bigger head is a failed round trip).
const MAX_RESPONSE_HEAD: usize = 1 << 20;

/// How the body of an outgoing request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body and no length header.
    None,
    /// `Content-Length: 0` without a body (Go sends it for POST, PUT, PATCH and any method
    /// but GET/HEAD whose request had a zero length).
    Empty,
    Length(u64),
    Chunked,
}

/// Writes a request head: request line, `Host`, `User-Agent` (omitted when empty), the
/// framing header, the other fields sorted by name, then `extra` (the transport's own
/// `Accept-Encoding`), as Go's `Request.write` orders them.
pub fn write_request_head(
    method: &str,
    target: &str,
    host: &str,
    headers: &HeaderMap,
    body: RequestBody,
    extra: &[(&str, &str)],
    out: &mut Vec<u8>,
) {
    let field = |out: &mut Vec<u8>, k: &str, v: &str| {
        // CR and LF become spaces, so they trim like the blanks around the value.
        let v = v.trim_matches([' ', '\t', '\r', '\n']);
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend(
            v.bytes()
                .map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
        out.extend_from_slice(b"\r\n");
    };
    for part in [method, " ", target, " HTTP/1.1\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    field(out, "Host", host);
    if let Some(ua) = headers.raw("User-Agent").and_then(|v| v.first()) {
        if !ua.is_empty() {
            field(out, "User-Agent", ua);
        }
    }
    match body {
        RequestBody::None => {}
        RequestBody::Empty => field(out, "Content-Length", "0"),
        RequestBody::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, n, 1);
            out.extend_from_slice(b"\r\n");
        }
        RequestBody::Chunked => field(out, "Transfer-Encoding", "chunked"),
    }
    const SKIP: [&str; 5] = [
        "Host",
        "User-Agent",
        "Content-Length",
        "Transfer-Encoding",
        "Trailer",
    ];
    let mut sorted: Vec<&(String, Vec<String>)> = headers
        .iter()
        .filter(|(k, _)| !SKIP.contains(&k.as_str()))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, vs) in sorted {
        for v in vs {
            field(out, k, v);
        }
    }
    for (k, v) in extra {
        field(out, k, v);
    }
    out.extend_from_slice(b"\r\n");
}

/// How an upstream response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body (HEAD request, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes.
    Close,
}

/// A parsed upstream response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// `HTTP/1.1` (else 1.0).
    pub http11: bool,
    pub status: u16,
    /// Go's `Response.Status`: code and reason, e.g. `200 OK`.
    pub status_text: String,
    /// Fields with canonical names; `Transfer-Encoding` removed, as Go's transport does.
    pub headers: HeaderMap,
    pub body: ResponseBody,
    /// The connection cannot carry another request afterwards.
    pub close: bool,
}

/// An upstream response head Go's client would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedResponse;

/// Parses a response head at the start of `buf`; `head_request` says the request was HEAD
/// (the response then has no body whatever its headers say).
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
) -> Result<Status<ResponseHead>, MalformedResponse> {
    let Some(end) = find_head_end(buf) else {
        return if buf.len() > MAX_RESPONSE_HEAD {
            Err(MalformedResponse)
        } else {
            Ok(Status::Partial)
        };
    };
    let text = std::str::from_utf8(&buf[..end.0]).map_err(|_| MalformedResponse)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().ok_or(MalformedResponse)?;
    let (proto, rest) = status_line.split_once(' ').ok_or(MalformedResponse)?;
    let http11 = match proto {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(MalformedResponse),
    };
    let rest = rest.trim_start_matches(' ');
    let code = rest.get(..3).ok_or(MalformedResponse)?;
    if !code.bytes().all(|c| c.is_ascii_digit()) || rest.len() > 3 && !rest[3..].starts_with(' ') {
        return Err(MalformedResponse);
    }
    let status: u16 = code.parse().map_err(|_| MalformedResponse)?;
    if status < 100 {
        return Err(MalformedResponse);
    }
    let mut headers = HeaderMap::default();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(MalformedResponse)?;
        if name.is_empty() || name.ends_with([' ', '\t']) {
            return Err(MalformedResponse);
        }
        headers.add(name, value.trim_matches([' ', '\t']));
    }
    let chunked = match headers.raw("Transfer-Encoding").unwrap_or(&[]) {
        [] => false,
        [one] if one.eq_ignore_ascii_case("chunked") => true,
        _ => return Err(MalformedResponse),
    };
    headers.del("Transfer-Encoding");
    let lengths = headers.raw("Content-Length").unwrap_or(&[]);
    let length = match lengths.first() {
        None => None,
        Some(first) => {
            if lengths.iter().any(|l| l.trim() != first.trim()) {
                return Err(MalformedResponse);
            }
            Some(first.trim().parse::<u64>().map_err(|_| MalformedResponse)?)
        }
    };
    let connection = headers.raw("Connection").unwrap_or(&[]);
    let mut close = has_token(connection.iter().map(String::as_str), "close")
        || (!http11 && !has_token(connection.iter().map(String::as_str), "keep-alive"));
    let body = if head_request || status / 100 == 1 || status == 204 || status == 304 {
        ResponseBody::None
    } else if chunked {
        headers.del("Content-Length");
        ResponseBody::Chunked
    } else if let Some(n) = length {
        ResponseBody::Length(n)
    } else {
        close = true;
        ResponseBody::Close
    };
    // The code and, after one space, the reason: `rest` as it stands.
    let status_text = rest.to_owned();
    Ok(Status::Complete(
        ResponseHead {
            http11,
            status,
            status_text,
            headers,
            body,
            close,
        },
        end.1,
    ))
}

/// End of the head: (length before the blank line, bytes including it).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|c| *c == b'\n') {
        let at = i + nl;
        let next = &buf[at + 1..];
        if next.starts_with(b"\r\n") {
            return Some((at, at + 3));
        }
        if next.starts_with(b"\n") {
            return Some((at, at + 2));
        }
        i = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, head: bool) -> (ResponseHead, usize) {
        match parse_response(s.as_bytes(), head) {
            Ok(Status::Complete(h, n)) => (h, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_head_order() {
        let mut h = HeaderMap::default();
        h.add("X-B", "2");
        h.add("User-Agent", "curl");
        h.add("Content-Length", "5");
        h.add("A-First", "1");
        let mut out = Vec::new();
        write_request_head(
            "POST",
            "/p?q",
            "example.com",
            &h,
            RequestBody::Length(5),
            &[("Accept-Encoding", "gzip")],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /p?q HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl\r\nContent-Length: 5\r\n\
             A-First: 1\r\nX-B: 2\r\nAccept-Encoding: gzip\r\n\r\n"
        );
        let mut h = HeaderMap::default();
        h.set("User-Agent", "");
        let mut out = Vec::new();
        write_request_head("GET", "/", "h", &h, RequestBody::None, &[], &mut out);
        assert_eq!(out, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn response_framing() {
        let (h, n) = parse(
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-a: 1\r\n\r\nabc",
            false,
        );
        assert_eq!((h.status, h.body, n), (200, ResponseBody::Length(3), 46));
        assert_eq!(
            (h.headers.get("X-A"), h.status_text.as_str()),
            ("1", "200 OK")
        );
        let (h, _) = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
            false,
        );
        assert_eq!(h.body, ResponseBody::Chunked);
        assert!(!h.headers.has("Content-Length") && !h.headers.has("Transfer-Encoding"));
        let (h, _) = parse("HTTP/1.0 200 OK\r\n\r\n", false);
        assert_eq!((h.body, h.close), (ResponseBody::Close, true));
        let (h, _) = parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert_eq!((h.body, h.close), (ResponseBody::None, false));
        let (h, _) = parse(
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            false,
        );
        assert_eq!((h.body, h.close), (ResponseBody::None, true));
        let (h, _) = parse("HTTP/1.1 299\r\n\r\n", false);
        assert_eq!(h.status_text, "299");
    }

    #[test]
    fn response_partial_and_bad() {
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nA: b\r\n", false),
            Ok(Status::Partial)
        ));
        assert!(parse_response(b"HTTP/2 200 OK\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n", false).is_err());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false).is_err());
    }
}
