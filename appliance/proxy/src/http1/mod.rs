//! Sans-IO HTTP/1.1 (RFC 9112): request-head parser, body framing, response encoder.
//! Nothing here knows about sockets or the ring; it turns bytes into requests and responses
//! into bytes, mirroring what Go's net/http server (and so Caddy) accepts and sends.

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
