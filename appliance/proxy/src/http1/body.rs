//! Request body framing: Content-Length or chunked (RFC 9112 §6–§7), as a sans-IO decoder.
//!
//! The chunked decoder follows Go's `internal/chunked` reader: size lines may end in bare
//! LF, extensions after `;` are ignored, sizes are at most 16 hex digits, chunk data must be
//! followed by exactly CRLF, lines are capped at 4096 bytes, and the trailer section ends
//! with an empty line.

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

const MAX_LINE: usize = 4096;

/// Malformed chunked framing; what follows on the wire cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// What one call to [`ChunkedDecoder::feed`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes used (framing and data).
    pub consumed: usize,
    /// Whether the terminating chunk and trailer have been read.
    pub done: bool,
}

/// Incremental chunked-body decoder.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            line: Vec::new(),
        }
    }
}

fn parse_size(line: &[u8]) -> Result<u64, ChunkError> {
    let end = line
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    let line = &line[..end];
    let line = match line.iter().position(|c| *c == b';') {
        Some(i) => &line[..i],
        None => line,
    };
    let line = {
        let e = line
            .iter()
            .rposition(|c| !matches!(c, b' ' | b'\t'))
            .map_or(0, |i| i + 1);
        &line[..e]
    };
    if line.is_empty() || line.len() > 16 {
        return Err(ChunkError);
    }
    let mut n: u64 = 0;
    for c in line {
        let d = (*c as char).to_digit(16).ok_or(ChunkError)?;
        n = n << 4 | u64::from(d);
    }
    Ok(n)
}

impl ChunkedDecoder {
    /// Whether the whole body has been read.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds `input`; calls `data` with each run of body bytes.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<Progress, ChunkError> {
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            match self.state {
                State::Size | State::Trailer => {
                    let rest = &input[pos..];
                    let Some(nl) = rest.iter().position(|c| *c == b'\n') else {
                        self.line.extend_from_slice(rest);
                        pos = input.len();
                        if self.line.len() >= MAX_LINE {
                            return Err(ChunkError);
                        }
                        break;
                    };
                    self.line.extend_from_slice(&rest[..=nl]);
                    pos += nl + 1;
                    if self.line.len() >= MAX_LINE {
                        return Err(ChunkError);
                    }
                    let line = std::mem::take(&mut self.line);
                    if self.state == State::Size {
                        let n = parse_size(&line)?;
                        self.state = if n == 0 {
                            State::Trailer
                        } else {
                            State::Data(n)
                        };
                    } else if line == b"\r\n" || line == b"\n" {
                        self.state = State::Done;
                    } else if !line.contains(&b':') {
                        return Err(ChunkError);
                    }
                }
                State::Data(left) => {
                    let take = (input.len() - pos).min(usize::try_from(left).unwrap_or(usize::MAX));
                    data(&input[pos..pos + take]);
                    pos += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => {
                    self.line.push(input[pos]);
                    pos += 1;
                    if self.line.len() == 2 {
                        if self.line != b"\r\n" {
                            return Err(ChunkError);
                        }
                        self.line.clear();
                        self.state = State::Size;
                    }
                }
                State::Done => unreachable!("loop condition"),
            }
        }
        Ok(Progress {
            consumed: pos,
            done: self.done(),
        })
    }
}

/// The whole body, if `input` (the bytes after the head) holds all of it: the decoded data
/// and the number of input bytes it spans. `Ok(None)` means more input is needed.
pub fn buffered(input: &[u8], kind: BodyKind) -> Result<Option<(Vec<u8>, usize)>, ChunkError> {
    match kind {
        BodyKind::None => Ok(Some((Vec::new(), 0))),
        BodyKind::Length(n) => Ok(usize::try_from(n)
            .ok()
            .filter(|n| *n <= input.len())
            .map(|n| (input[..n].to_vec(), n))),
        BodyKind::Chunked => {
            let mut dec = ChunkedDecoder::default();
            let mut data = Vec::new();
            let p = dec.feed(input, |d| data.extend_from_slice(d))?;
            Ok(p.done.then_some((data, p.consumed)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), ChunkError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut used = 0;
        for c in chunks {
            used += d.feed(c, |b| out.extend_from_slice(b))?.consumed;
        }
        Ok((out, d.done(), used))
    }

    #[test]
    fn whole() {
        let (out, done, used) = decode(&[b"3\r\nabc\r\n0\r\n\r\nNEXT"]).unwrap();
        assert_eq!((out.as_slice(), done, used), (&b"abc"[..], true, 13));
    }

    #[test]
    fn byte_by_byte_with_extension_and_trailer() {
        let input = b"A;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\n";
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        let (out, done, used) = decode(&pieces).unwrap();
        assert_eq!(
            (out.as_slice(), done, used),
            (&b"0123456789"[..], true, input.len())
        );
    }

    #[test]
    fn bare_lf_size_line() {
        assert!(decode(&[b"1\na\r\n0\n\n"]).unwrap().1);
    }

    #[test]
    fn rejects() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"-1\r\n",
            b"11111111111111111\r\n",
            b"3\r\nabcXY",
            b"0\r\nnot a trailer\r\n",
        ] {
            assert_eq!(decode(&[bad]).unwrap_err(), ChunkError, "{bad:?}");
        }
    }

    #[test]
    fn whole_bodies() {
        assert_eq!(
            buffered(b"abcX", BodyKind::Length(3)).unwrap(),
            Some((b"abc".to_vec(), 3))
        );
        assert_eq!(buffered(b"ab", BodyKind::Length(3)).unwrap(), None);
        assert_eq!(
            buffered(b"2\r\nab\r\n0\r\n\r\nX", BodyKind::Chunked).unwrap(),
            Some((b"ab".to_vec(), 12))
        );
        assert_eq!(buffered(b"2\r\nab", BodyKind::Chunked).unwrap(), None);
        assert!(buffered(b"zz\r\n", BodyKind::Chunked).is_err());
    }

    #[test]
    fn long_line() {
        let line = vec![b'1'; 5000];
        assert_eq!(decode(&[&line]).unwrap_err(), ChunkError);
    }
}
