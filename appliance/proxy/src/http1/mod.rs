//! Sans-IO HTTP/1.1 (RFC 9112): request-head parser, body framing, response encoder.
//! Nothing here knows about sockets or the ring; it turns bytes into requests and responses
//! into bytes, mirroring what Go's net/http server (and so Caddy) accepts and sends.

/// A 256-entry table, built at compile time, of the bytes `b` for which the predicate holds:
/// the parser and the path escaper look bytes up instead of testing each against a list.
macro_rules! byte_table {
    (|$b:ident| $pred:expr) => {{
        let mut table = [false; 256];
        let mut c = 0;
        while c < 256 {
            let $b = c as u8;
            table[c] = $pred;
            c += 1;
        }
        table
    }};
}
pub(crate) use byte_table;

pub mod body;
pub mod client;
pub mod date;
pub mod header;
pub mod parse;
pub mod response;
pub mod sniff;
pub mod status;

pub use body::{buffered, BodyKind, ChunkedDecoder, Progress};
pub use header::HeaderMap;
pub use parse::{parse_request, Head, ParseError, ParserConfig, Status, Version};
pub use response::Response;
