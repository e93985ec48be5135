//! Go's `http.DetectContentType` (the WHATWG MIME sniffing subset net/http implements), used
//! where Go's server sniffs: a handler wrote body bytes without setting `Content-Type`.

/// Bytes Go looks at.
const SNIFF_LEN: usize = 512;

fn is_ws(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_tt(c: u8) -> bool {
    c == b' ' || c == b'>'
}

/// HTML signatures: matched case-insensitively after leading whitespace, and followed by a
/// space or `>`.
const HTML: [&[u8]; 17] = [
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
];

/// Exact prefixes, in Go's order after the HTML and XML checks.
const EXACT: [(&[u8], &str); 20] = [
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"\xFE\xFF", "text/plain; charset=utf-16be"),
    (b"\xFF\xFE", "text/plain; charset=utf-16le"),
    (b"\xEF\xBB\xBF", "text/plain; charset=utf-8"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"BM", "image/bmp"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\x0D\x0A\x1A\x0A", "image/png"),
    (b"\xFF\xD8\xFF", "image/jpeg"),
    (b"OggS\x00", "application/ogg"),
    (b"\x1A\x45\xDF\xA3", "video/webm"),
    (
        b"\x52\x61\x72\x20\x1A\x07\x00",
        "application/x-rar-compressed",
    ),
    (b"\x50\x4B\x03\x04", "application/zip"),
    (b"\x1F\x8B\x08", "application/x-gzip"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x00\x61\x73\x6D", "application/wasm"),
];

/// The `Content-Type` Go's server would add for a body starting with `data`.
pub fn detect_content_type(data: &[u8]) -> &'static str {
    let data = &data[..data.len().min(SNIFF_LEN)];
    let start = data.iter().position(|c| !is_ws(*c)).unwrap_or(data.len());
    let trimmed = &data[start..];
    for sig in HTML {
        if trimmed.len() > sig.len()
            && trimmed[..sig.len()].eq_ignore_ascii_case(sig)
            && is_tt(trimmed[sig.len()])
        {
            return "text/html; charset=utf-8";
        }
    }
    if trimmed.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    for (sig, ct) in EXACT {
        if data.starts_with(sig) {
            return ct;
        }
    }
    let masked = |sig: &[u8], mask: &[u8]| {
        data.len() >= sig.len()
            && sig
                .iter()
                .zip(mask)
                .zip(data)
                .all(|((s, m), d)| d & m == *s)
    };
    if masked(
        b"RIFF\x00\x00\x00\x00WEBPVP",
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF",
    ) {
        return "image/webp";
    }
    if masked(
        b"RIFF\x00\x00\x00\x00WAVE",
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
    ) {
        return "audio/wave";
    }
    if masked(
        b"RIFF\x00\x00\x00\x00AVI ",
        b"\xFF\xFF\xFF\xFF\x00\x00\x00\x00\xFF\xFF\xFF\xFF",
    ) {
        return "video/avi";
    }
    if data.starts_with(b"ID3") {
        return "audio/mpeg";
    }
    if is_mp4(data) {
        return "video/mp4";
    }
    let binary = data
        .iter()
        .any(|c| matches!(c, 0x00..=0x08 | 0x0B | 0x0E..=0x1A | 0x1C..=0x1F));
    if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// Go's `mp4Sig`: an `ftyp` box whose brands include `mp4`.
fn is_mp4(data: &[u8]) -> bool {
    if data.len() < 12 {
        return false;
    }
    let box_size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if data.len() < box_size || box_size % 4 != 0 || &data[4..8] != b"ftyp" {
        return false;
    }
    (8..box_size)
        .step_by(4)
        .any(|st| st != 12 && data.get(st..st + 3) == Some(b"mp4"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples() {
        assert_eq!(detect_content_type(b""), "text/plain; charset=utf-8");
        assert_eq!(
            detect_content_type(b"GET /x\nhost: a\n"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            detect_content_type(b"  <html><body>"),
            "text/html; charset=utf-8"
        );
        assert_eq!(detect_content_type(b"<HTML"), "text/plain; charset=utf-8");
        assert_eq!(
            detect_content_type(b"<?xml version"),
            "text/xml; charset=utf-8"
        );
        assert_eq!(detect_content_type(b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(
            detect_content_type(b"\x00\x01binary"),
            "application/octet-stream"
        );
        assert_eq!(
            detect_content_type(b"{\"a\": 1}"),
            "text/plain; charset=utf-8"
        );
    }
}
