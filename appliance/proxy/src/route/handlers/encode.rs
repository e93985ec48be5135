//! `http.handlers.encode`: compresses responses written after it (gzip, zstd).
//!
//! Flow: the first encoding the client accepts (by q-value, then `prefer`) that is offered
//! is chosen up front; If-None-Match loses our `-<encoding>` ETag suffix so upstream
//! validators still match. When a later handler writes a response whose body (or declared
//! Content-Length) exceeds `minimum_length` and which the matcher accepts (by default the
//! compressible Content-Types), the body is compressed: Content-Encoding set, Content-Length
//! and Accept-Ranges removed, `Vary: Accept-Encoding` added, a strong ETag suffixed. A 304
//! gets the Vary too. `Cache-Control: no-transform` on the request or response prevents it.
//! Errors: an unknown encoding is a compile error. Performance: compresses the whole body in
//! one call; gzip via flate2 (level 5), zstd via libzstd (level 3). flate2 runs on its zlib-rs
//! backend: at level 5 on a 100 KB HTML file it needs half the CPU of the default miniz_oxide.
//! A body that is a whole settled file (see `FileKey`) is compressed once per encoding and
//! level: the result is kept in a cache shared by the workers (16 MiB, oldest out first) and
//! reused while the file is unchanged, which is what the same request costs again in Caddy
//! minus the compression.

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Map, Value};

use super::super::ctx::Ctx;
use super::super::{err, str_list, Result};
use super::file_server::{accepted_encodings, read_small_file, ByteCache};
use super::headers::ResponseMatcher;
use crate::http1::response::FileKey;
use crate::http1::HeaderMap;

/// Compressed whole files by file, encoding and level.
type Memo = (FileKey, &'static str, i32);

static COMPRESSED: LazyLock<Mutex<ByteCache<Memo, Arc<[u8]>>>> =
    LazyLock::new(|| Mutex::new(ByteCache::new(16 << 20)));

const DEFAULT_TYPES: &[&str] = &[
    "application/atom+xml*",
    "application/eot*",
    "application/font*",
    "application/geo+json*",
    "application/graphql+json*",
    "application/graphql-response+json*",
    "application/javascript*",
    "application/json*",
    "application/ld+json*",
    "application/manifest+json*",
    "application/opentype*",
    "application/otf*",
    "application/rss+xml*",
    "application/truetype*",
    "application/ttf*",
    "application/vnd.api+json*",
    "application/vnd.ms-fontobject*",
    "application/wasm*",
    "application/x-httpd-cgi*",
    "application/x-javascript*",
    "application/x-opentype*",
    "application/x-otf*",
    "application/x-perl*",
    "application/x-protobuf*",
    "application/x-ttf*",
    "application/xhtml+xml*",
    "application/xml*",
    "font/*",
    "image/svg+xml*",
    "image/vnd.microsoft.icon*",
    "image/x-icon*",
    "multipart/bag*",
    "multipart/mixed*",
    "text/*",
];

#[derive(Debug)]
pub struct Encode {
    offered: Vec<(String, i32)>,
    prefer: Vec<String>,
    min_length: usize,
    matcher: Arc<ResponseMatcher>,
}

/// How a streamed (proxied) response is encoded: decided, as Caddy's writer decides, when its
/// first body bytes arrive, then compressed piece by piece.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    pub encoding: String,
    level: i32,
    min_length: usize,
    matcher: Arc<ResponseMatcher>,
}

impl StreamPlan {
    /// Whether the response, its headers final (a missing Content-Type sniffed first: see
    /// [`StreamPlan::long_enough`]), is to be compressed.
    pub fn wants(&self, status: u16, hdr: &HeaderMap) -> bool {
        hdr.get("Content-Encoding").is_empty()
            && !no_transform(hdr.get("Cache-Control"))
            && self.matcher.matches(status, hdr)
    }

    /// Caddy's encoder looks at a first write longer than `minimum_length` (or a declared
    /// length over it): it sets a missing Content-Type from those bytes, then decides.
    pub fn long_enough(&self, hdr: &HeaderMap, first: usize) -> bool {
        let declared = hdr.get("Content-Length").parse::<usize>().unwrap_or(0);
        first > self.min_length || declared > self.min_length
    }

    /// Marks `hdr` as encoded and returns the compressor.
    pub fn start(&self, hdr: &mut HeaderMap) -> StreamEncoder {
        mark_encoded(hdr, &self.encoding);
        match self.encoding.as_str() {
            "gzip" => StreamEncoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(self.level.clamp(0, 9) as u32),
            )),
            _ => match zstd::stream::write::Encoder::new(Vec::new(), self.level) {
                Ok(e) => StreamEncoder::Zstd(e),
                Err(_) => StreamEncoder::Gzip(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::default(),
                )),
            },
        }
    }
}

/// A compressor fed piece by piece; each call returns the bytes ready so far.
pub enum StreamEncoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl std::fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamEncoder::Gzip(_) => "StreamEncoder::Gzip",
            StreamEncoder::Zstd(_) => "StreamEncoder::Zstd",
        })
    }
}

impl StreamEncoder {
    /// Compresses `piece`, flushing when asked (Caddy flushes bodies of unknown length as
    /// they come); writing into a Vec cannot fail.
    pub fn feed(&mut self, piece: &[u8], flush: bool) -> Vec<u8> {
        match self {
            StreamEncoder::Gzip(e) => {
                let _ = e.write_all(piece);
                if flush {
                    let _ = e.flush();
                }
                std::mem::take(e.get_mut())
            }
            StreamEncoder::Zstd(e) => {
                let _ = e.write_all(piece);
                if flush {
                    let _ = e.flush();
                }
                std::mem::take(e.get_mut())
            }
        }
    }

    /// The end of the stream.
    pub fn finish(self) -> Vec<u8> {
        match self {
            StreamEncoder::Gzip(e) => e.finish().unwrap_or_default(),
            StreamEncoder::Zstd(e) => e.finish().unwrap_or_default(),
        }
    }
}

fn vary_has_accept_encoding(hdr: &HeaderMap) -> bool {
    hdr.values("Vary").is_some_and(|vs| {
        vs.iter().any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("Accept-Encoding"))
        })
    })
}

/// Caddy's header changes for an encoded response.
fn mark_encoded(hdr: &mut HeaderMap, encoding: &str) {
    hdr.del("Content-Length");
    hdr.set("Content-Encoding", encoding);
    if !vary_has_accept_encoding(hdr) {
        hdr.add("Vary", "Accept-Encoding");
    }
    hdr.del("Accept-Ranges");
    let etag = hdr.get("Etag").to_owned();
    if !etag.is_empty() && !etag.starts_with("W/") {
        let base = etag.strip_suffix('"').unwrap_or(&etag);
        hdr.set("Etag", &format!("{base}-{encoding}\""));
    }
}

fn no_transform(cache_control: &str) -> bool {
    cache_control.contains("no-transform")
}

impl Encode {
    pub fn compile(m: &Map<String, Value>) -> Result<Encode> {
        let mut offered = Vec::new();
        if let Some(Value::Object(encs)) = m.get("encodings") {
            for (name, cfg) in encs {
                let level = cfg.get("level").and_then(Value::as_i64);
                let level = match name.as_str() {
                    "gzip" => level.unwrap_or(5) as i32,
                    "zstd" => level.unwrap_or(3) as i32,
                    other => return err(format!("unknown encoding: {other}")),
                };
                offered.push((name.clone(), level));
            }
        }
        let matcher = match m.get("match") {
            Some(v) => ResponseMatcher::compile(v)?,
            None => ResponseMatcher::content_types(DEFAULT_TYPES),
        };
        Ok(Encode {
            offered,
            prefer: str_list(m.get("prefer"), "prefer")?,
            min_length: m
                .get("minimum_length")
                .and_then(Value::as_u64)
                .unwrap_or(512) as usize,
            matcher: Arc::new(matcher),
        })
    }

    /// The plan for a streamed response under `encoding` (chosen by [`Encode::run`]).
    pub fn stream_plan(&self, encoding: &str) -> StreamPlan {
        StreamPlan {
            encoding: encoding.to_owned(),
            level: self
                .offered
                .iter()
                .find(|(n, _)| n == encoding)
                .map_or(0, |(_, l)| *l),
            min_length: self.min_length,
            matcher: Arc::clone(&self.matcher),
        }
    }

    /// Chooses the encoding for this request, if any, and registers it on the context.
    pub fn run<'p>(&'p self, ctx: &mut Ctx<'p, '_>) {
        if no_transform(ctx.headers.get("Cache-Control")) {
            return;
        }
        let accepted = accepted_encodings(ctx.headers.get("Accept-Encoding"), &self.prefer);
        let Some(chosen) = accepted
            .into_iter()
            .find(|a| self.offered.iter().any(|(o, _)| o == a))
        else {
            return;
        };
        let inm = ctx.headers.get("If-None-Match").to_owned();
        let suffix = format!("-{chosen}\"");
        if !inm.is_empty() && !inm.starts_with("W/") {
            if let Some(stripped) = inm.strip_suffix(&suffix) {
                ctx.headers.set("If-None-Match", &format!("{stripped}\""));
            }
        }
        ctx.encoders.push((self, chosen));
    }

    /// Compresses `ctx.resp` as Caddy's encoding response writer would.
    pub fn apply(&self, encoding: &str, ctx: &mut Ctx<'_, '_>) {
        let status = ctx.resp.status;
        let hdr = &mut ctx.resp.headers;
        if status == 304 && !vary_has_accept_encoding(hdr) {
            hdr.add("Vary", "Accept-Encoding");
        }
        let declared = hdr.get("Content-Length").parse::<usize>().unwrap_or(0);
        // A streamed file body counts through the declared length.
        let long = ctx.resp.body.len() > self.min_length || declared > self.min_length;
        if !long
            || !hdr.get("Content-Encoding").is_empty()
            || no_transform(hdr.get("Cache-Control"))
            || !self.matcher.matches(status, hdr)
        {
            read_small_file(&mut ctx.resp);
            return;
        }
        let level = self
            .offered
            .iter()
            .find(|(n, _)| n == encoding)
            .map_or(0, |(_, l)| *l);
        let name = if encoding == "gzip" { "gzip" } else { "zstd" };
        let memo = match (&ctx.resp.file, ctx.resp.body.is_empty()) {
            (Some(file), true) => file.whole_file().map(|k| (k, name, level)),
            _ => None,
        };
        let cached = memo.and_then(|m| COMPRESSED.lock().ok()?.get(&m));
        let compressed = if let Some(hit) = cached {
            ctx.resp.file = None;
            hit.to_vec()
        } else {
            // A HEAD response has no body here, yet Go counts the bytes of the (empty) stream
            // the encoder still writes on close, and sends that as the Content-Length.
            let mut body = std::mem::take(&mut ctx.resp.body);
            if let Some(file) = ctx.resp.file.take() {
                match file.read_all() {
                    Ok(mut rest) => body.append(&mut rest),
                    Err(_) => {
                        ctx.resp.status = 500;
                        return;
                    }
                }
            }
            let compressed = compress(encoding, level, &body);
            if let (Some(m), Ok(mut cache)) = (memo, COMPRESSED.lock()) {
                cache.insert(m, Arc::from(compressed.as_slice()), compressed.len());
            }
            compressed
        };
        mark_encoded(&mut ctx.resp.headers, encoding);
        ctx.resp.body = compressed;
    }
}

fn compress(encoding: &str, level: i32, body: &[u8]) -> Vec<u8> {
    match encoding {
        "gzip" => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.clamp(0, 9) as u32),
            );
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(body);
            enc.finish().unwrap_or_default()
        }
        _ => zstd::bulk::compress(body, level).unwrap_or_default(),
    }
}
