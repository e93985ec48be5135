//! Mutation fuzzer for the sans-IO HTTP/1.1 request parser and chunked decoder.
//!
//! cargo-fuzz needs a nightly toolchain (libFuzzer's sanitizer flags), so this is a
//! coverage-free equivalent that runs on stable. It mutates a seed corpus of valid and
//! invalid request heads and chunked bodies (bit flips, inserts, deletes, splices, and
//! mutations aimed at CRLF, colons and digits), feeds each input whole and cut at random
//! points, and checks:
//!
//! - nothing panics (each input runs under `catch_unwind`);
//! - the parser gives the same answer whether the bytes arrive at once or in pieces, and a
//!   complete head parses the same from exactly the bytes it claims;
//! - the chunked decoder gives the same data, consumption and end state fed whole or in
//!   pieces, and agrees with `buffered`;
//! - a body chunk-encoded here (random chunk sizes, extensions, trailers, bare-LF lines)
//!   decodes back to itself, alone and behind a parsed request head.
//!
//! Inputs that produce an outcome not seen before join the corpus, a cheap stand-in for
//! coverage feedback. A failing input is printed in hex and saved under `--crash-dir`.
//!
//! `cargo run --release --example fuzz_http1 -- --seconds 600`
//! (`--iterations N`, `--seed S`, `--crash-dir DIR`, `--replay FILE`).

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zeroserve_proxy::http1::{
    buffered, parse_request, BodyKind, ChunkedDecoder, ParserConfig, Status,
};

/// xorshift64*: small, fast and good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n`; `n` must be positive.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET /a%20b?x=1&y=%zz HTTP/1.1\r\nHost: h:80\r\nConnection: close\r\n\r\n",
    b"GET http://user@h:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD /x HTTP/1.1\nHost: h\nAccept: */*\n\n",
    b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT / HTTP/1.0\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST http://h/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
      5\r\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n\
      4;ext=\"v\"\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nBad Name: v\r\n\r\n",
    b"GET /\x80 HTTP/1.1\r\nHost: h\xff\r\n\r\n",
    b"3\r\nabc\r\n0\r\n\r\n",
    b"A;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\n",
    b"1\na\r\n0\n\n",
    b"ffffffffffffffff\r\nab",
    b"0000000000000001 ; a ; b\t\r\nZ\r\n0\r\n\r\n",
];

/// Byte values the parser and decoder treat specially.
const SPECIAL: &[u8] = b" \t\r\n:;,=\"%/?#*@[]0123456789abcdefABCDEF\x00\x7f\x80\xff";

/// Fragments worth splicing in whole.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b": ",
    b"Host: h\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: identity\r\n",
    b"Content-Length: ",
    b"Content-Length: 18446744073709551616\r\n",
    b"Connection: close, keep-alive\r\n",
    b"Expect: 100-continue\r\n",
    b" HTTP/1.1\r\n",
    b" HTTP/1.0\r\n",
    b" HTTP/1.10\r\n",
    b"0\r\n\r\n",
    b"0\r\nT: v\r\n\r\n",
    b"ffffffffffffffff",
    b"10000000000000000",
    b";ext=1",
    b"http://",
    b"*",
];

const MAX_INPUT: usize = 1 << 16;

fn ascii_number(rng: &mut Rng) -> Vec<u8> {
    let n = match rng.below(4) {
        0 => rng.next() % 16,
        1 => rng.next() % 70_000,
        2 => rng.next(),
        _ => u64::MAX - rng.next() % 4,
    };
    let mut s = if rng.one_in(2) {
        format!("{n:x}")
    } else {
        n.to_string()
    };
    if rng.one_in(4) {
        s.insert_str(0, &"0".repeat(rng.below(18)));
    }
    s.into_bytes()
}

/// Start and end of a random non-empty range of `input` (which must be non-empty).
fn range(rng: &mut Rng, len: usize) -> (usize, usize) {
    let a = rng.below(len);
    let b = a + 1 + rng.below((len - a).min(64));
    (a, b)
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(input.len() + 1);
        match rng.below(11) {
            0 if at < input.len() => input[at] ^= 1 << rng.below(8),
            1 if at < input.len() => input[at] = *rng.pick(SPECIAL),
            2 => input.insert(at, *rng.pick(SPECIAL)),
            3 => input.insert(at, rng.next() as u8),
            4 if !input.is_empty() => {
                let (a, b) = range(rng, input.len());
                input.drain(a..b);
            }
            5 => {
                let t = rng.pick(TOKENS);
                input.splice(at..at, t.iter().copied());
            }
            6 => {
                // Splice a range of another corpus entry over or into this one.
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let (a, b) = range(rng, other.len());
                    let end = if rng.one_in(2) {
                        (at + (b - a)).min(input.len())
                    } else {
                        at
                    };
                    input.splice(at..end, other[a..b].iter().copied());
                }
            }
            7 if !input.is_empty() => {
                // Repeat a range, to reach the size limits.
                let (a, b) = range(rng, input.len());
                let piece = input[a..b].to_vec();
                let most = if rng.one_in(8) { 4096 } else { 8 };
                let times = 1 + rng.below(most);
                for _ in 0..times {
                    input.splice(b..b, piece.iter().copied());
                }
            }
            8 => {
                // Replace the run of hex digits around `at` with another number.
                let hex = |c: &u8| c.is_ascii_hexdigit();
                let mut a = at.min(input.len());
                while a > 0 && hex(&input[a - 1]) {
                    a -= 1;
                }
                let mut b = at.min(input.len());
                while b < input.len() && hex(&input[b]) {
                    b += 1;
                }
                let n = ascii_number(rng);
                input.splice(a..b, n);
            }
            9 => {
                // Line endings: CRLF to bare LF, LF to CRLF, or a stray CR.
                let from = at.min(input.len());
                if let Some(i) = input[from..].iter().position(|c| *c == b'\n') {
                    let i = from + i;
                    match rng.below(3) {
                        0 if i > 0 && input[i - 1] == b'\r' => {
                            input.remove(i - 1);
                        }
                        1 => input.insert(i, b'\r'),
                        _ => input.insert(i + 1, b'\r'),
                    }
                }
            }
            _ => {
                // Colons: drop the next one, or add one.
                let from = at.min(input.len());
                match input[from..].iter().position(|c| *c == b':') {
                    Some(i) if rng.one_in(2) => {
                        input.remove(from + i);
                    }
                    _ => input.insert(at, b':'),
                }
            }
        }
    }
    input.truncate(MAX_INPUT);
}

/// Sorted cut points inside `0..len`: none, a few random ones, or every byte.
fn cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let mut v: Vec<usize> = match rng.below(4) {
        0 => Vec::new(),
        1 if len <= 4096 => (1..len).collect(),
        _ => (0..1 + rng.below(8)).map(|_| rng.below(len)).collect(),
    };
    v.sort_unstable();
    v.dedup();
    v
}

/// The parser's answer as a comparable string.
fn parse_summary(input: &[u8], cfg: &ParserConfig) -> String {
    match parse_request(input, cfg) {
        Ok(Status::Complete(head, used)) => format!("complete {used} {head:?}"),
        Ok(Status::Partial) => "partial".to_owned(),
        Err(e) => format!("error {e:?}"),
    }
}

type Decoded = Result<(Vec<u8>, usize, bool), ()>;

/// Decodes `input` fed in the pieces `cuts` makes, as a connection would.
fn decode(input: &[u8], cuts: &[usize]) -> Decoded {
    let mut dec = ChunkedDecoder::default();
    let mut out = Vec::new();
    let mut used = 0;
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let piece = &input[start..end];
        let p = dec
            .feed(piece, |d| out.extend_from_slice(d))
            .map_err(|_| ())?;
        // Until the body ends, everything offered must be taken.
        assert!(
            p.consumed <= piece.len() && (p.done || p.consumed == piece.len()),
            "decoder took {} of {} bytes, done {}",
            p.consumed,
            piece.len(),
            p.done
        );
        assert_eq!(p.done, dec.done());
        used += p.consumed;
        if p.done {
            break;
        }
        start = end;
    }
    Ok((out, used, dec.done()))
}

/// What one input showed: its outcome class (for corpus growth) or a broken invariant.
type Verdict = Result<String, String>;

fn check_chunked(input: &[u8], cuts: &[usize]) -> Verdict {
    let whole = decode(input, &[]);
    let split = decode(input, cuts);
    if whole != split {
        return Err(format!(
            "chunked: whole {whole:?} != split at {cuts:?} {split:?}"
        ));
    }
    let Ok((out, used, done)) = whole else {
        if buffered(input, BodyKind::Chunked).is_ok() {
            return Err("chunked: decoder refused, buffered accepted".to_owned());
        }
        return Ok("chunked-error".to_owned());
    };
    if used > input.len() {
        return Err(format!("chunked: consumed {used} of {}", input.len()));
    }
    let buf = buffered(input, BodyKind::Chunked).map_err(|_| "buffered refused".to_owned())?;
    let expect = done.then(|| (out.clone(), used));
    if buf != expect {
        return Err(format!("chunked: buffered {buf:?} != decoder {expect:?}"));
    }
    Ok(format!("chunked-{}", if done { "done" } else { "more" }))
}

fn check_parser(input: &[u8], cfg: &ParserConfig, cuts: &[usize]) -> Verdict {
    let whole = parse_summary(input, cfg);
    // A connection re-parses its growing buffer after each read and acts on the first
    // answer that is not Partial; that answer must not depend on how the bytes arrived.
    for &end in cuts {
        let early = parse_summary(&input[..end], cfg);
        if early != "partial" {
            if early != whole {
                return Err(format!(
                    "parser: first {end} bytes give {early}, all give {whole}"
                ));
            }
            break;
        }
    }
    match parse_request(input, cfg) {
        Ok(Status::Complete(head, used)) => {
            if used == 0 || used > input.len() {
                return Err(format!("parser: used {used} of {}", input.len()));
            }
            let again = parse_summary(&input[..used], cfg);
            if again != whole {
                return Err(format!("parser: its own {used} bytes give {again}"));
            }
            let rest = &input[used..];
            let body = match head.body {
                BodyKind::Chunked => check_chunked(rest, &cuts_within(cuts, used))?,
                BodyKind::Length(n) => format!("length-{}", n <= rest.len() as u64),
                BodyKind::None => "none".to_owned(),
            };
            Ok(format!("complete/{}/{body}", head.version.minor))
        }
        Ok(Status::Partial) => Ok("partial".to_owned()),
        Err(e) => Ok(format!("{e:?}")),
    }
}

/// The cut points after `from`, relative to it: the same reads, seen by the body decoder.
fn cuts_within(cuts: &[usize], from: usize) -> Vec<usize> {
    cuts.iter()
        .filter(|c| **c > from)
        .map(|c| c - from)
        .collect()
}

/// Chunk-encodes `body` in random-sized chunks with the spellings the decoder accepts.
fn encode_chunked(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let eol = |rng: &mut Rng| -> &'static [u8] {
        if rng.one_in(4) {
            b"\n"
        } else {
            b"\r\n"
        }
    };
    let size_line = |rng: &mut Rng, out: &mut Vec<u8>, n: usize| {
        let hex = if rng.one_in(2) {
            format!("{n:x}")
        } else {
            format!("{n:X}")
        };
        let zeros = rng.below(17 - hex.len());
        out.extend(std::iter::repeat_n(b'0', zeros));
        out.extend_from_slice(hex.as_bytes());
        if rng.one_in(3) {
            out.extend_from_slice(b" ;name=\"va;lue\"\t");
        }
        out.extend_from_slice(eol(rng));
    };
    let mut rest = body;
    while !rest.is_empty() {
        let most = if rng.one_in(2) { 8 } else { 5000 };
        let n = 1 + rng.below(rest.len().min(most));
        size_line(rng, &mut out, n);
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    size_line(rng, &mut out, 0);
    for i in 0..rng.below(3) {
        out.extend_from_slice(format!("Trailer-{i}: v:{i}").as_bytes());
        out.extend_from_slice(eol(rng));
    }
    out.extend_from_slice(eol(rng));
    out
}

fn check_roundtrip(rng: &mut Rng) -> Verdict {
    let len = if rng.one_in(8) {
        rng.below(20_000)
    } else {
        rng.below(64)
    };
    let body: Vec<u8> = (0..len)
        .map(|_| {
            if rng.one_in(2) {
                *rng.pick(SPECIAL)
            } else {
                rng.next() as u8
            }
        })
        .collect();
    let enc = encode_chunked(rng, &body);
    let mut wire = enc.clone();
    wire.extend_from_slice(b"GET /next HTTP/1.1\r\n");
    let c = cuts(rng, wire.len());
    let got = decode(&wire, &c);
    let want = Ok((body.clone(), enc.len(), true));
    if got != want {
        return Err(format!(
            "round trip: encoded {} split at {c:?}: got {got:?}, want {want:?}",
            hex(&enc)
        ));
    }
    let mut req = b"POST /r HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let head_len = req.len();
    req.extend_from_slice(&enc);
    match parse_request(&req, &ParserConfig::default()) {
        Ok(Status::Complete(h, used)) if used == head_len && h.body == BodyKind::Chunked => {}
        other => return Err(format!("round trip: head parsed as {other:?}")),
    }
    let whole = buffered(&req[head_len..], BodyKind::Chunked);
    if whole != Ok(Some((body, enc.len()))) {
        return Err(format!("round trip: buffered gave {whole:?}"));
    }
    Ok("roundtrip".to_owned())
}

fn configs() -> [ParserConfig; 3] {
    [
        ParserConfig::default(),
        ParserConfig {
            max_header_bytes: 0,
            allow_length_with_chunked: true,
        },
        ParserConfig {
            max_header_bytes: 64,
            allow_length_with_chunked: false,
        },
    ]
}

/// Runs every check on one input; `seed` drives the cut points and the round trip.
fn check(input: &[u8], seed: u64) -> Verdict {
    let mut rng = Rng::new(seed);
    let cfg = &configs()[rng.below(3)];
    let c = cuts(&mut rng, input.len());
    let parsed = check_parser(input, cfg, &c)?;
    let chunked = check_chunked(input, &c)?;
    let trip = check_roundtrip(&mut rng)?;
    Ok(format!("{parsed} {chunked} {trip}"))
}

/// `check` under `catch_unwind`, so a panic is reported like any other failure.
fn check_caught(input: &[u8], seed: u64) -> Result<String, String> {
    match panic::catch_unwind(AssertUnwindSafe(|| check(input, seed))) {
        Ok(v) => v,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("panic: {msg}"))
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

/// Outcome of a fuzz run.
struct Report {
    inputs: u64,
    failures: u64,
    corpus: usize,
    /// Outcome classes reached (parser answer, body framing, decoder result).
    outcomes: HashSet<String>,
    elapsed: Duration,
}

/// Fuzzes until `deadline` passes or `iterations` inputs have run; failures are printed and
/// saved under `crash_dir`.
fn run(seed: u64, deadline: Duration, iterations: u64, crash_dir: &Path, verbose: bool) -> Report {
    let mut rng = Rng::new(seed);
    let mut corpus: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.to_vec()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let start = Instant::now();
    let mut last_note = start;
    let (mut inputs, mut failures) = (0u64, 0u64);
    while inputs < iterations && start.elapsed() < deadline {
        let mut input = rng.pick(&corpus).clone();
        if !rng.one_in(16) {
            mutate(&mut rng, &corpus, &mut input);
        }
        let case = rng.next();
        inputs += 1;
        match check_caught(&input, case) {
            Ok(outcome) => {
                if corpus.len() < 4096 && seen.insert(outcome) {
                    corpus.push(input);
                }
            }
            Err(why) => {
                failures += 1;
                let file = crash_dir.join(format!("crash-{case:016x}.bin"));
                let saved = std::fs::create_dir_all(crash_dir)
                    .and_then(|()| std::fs::write(&file, &input))
                    .map_or_else(
                        |e| format!("not saved: {e}"),
                        |()| file.display().to_string(),
                    );
                eprintln!(
                    "FAIL case {case:016x}: {why}\n  input ({} bytes, {saved}): {}",
                    input.len(),
                    hex(&input)
                );
            }
        }
        if verbose && last_note.elapsed() >= Duration::from_secs(10) {
            last_note = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "{inputs} inputs, {:.0}/s, corpus {}, {failures} failures",
                inputs as f64 / secs,
                corpus.len()
            );
        }
    }
    Report {
        inputs,
        failures,
        corpus: corpus.len(),
        outcomes: seen,
        elapsed: start.elapsed(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: fuzz_http1 [--seconds N] [--iterations N] [--seed S] [--crash-dir DIR] \
         [--replay FILE]"
    );
    std::process::exit(2)
}

fn main() {
    let mut seconds: Option<u64> = None;
    let mut iterations = u64::MAX;
    let mut seed = 0x5eed_f00d_u64;
    let mut crash_dir = std::env::temp_dir().join("fuzz_http1");
    let mut replay: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        let num = |s: String| s.parse::<u64>().unwrap_or_else(|_| usage());
        match a.as_str() {
            "--seconds" => seconds = Some(num(val())),
            "--iterations" => iterations = num(val()),
            "--seed" => seed = num(val()),
            "--crash-dir" => crash_dir = PathBuf::from(val()),
            "--replay" => replay = Some(PathBuf::from(val())),
            _ => usage(),
        }
    }
    if let Some(file) = replay {
        let input = std::fs::read(&file).unwrap_or_else(|e| {
            eprintln!("fuzz_http1: {}: {e}", file.display());
            std::process::exit(2)
        });
        // A saved crash names its case seed (cut points, parser limits); also try others.
        let named = file
            .file_stem()
            .and_then(|s| s.to_str()?.strip_prefix("crash-"))
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        let failed = named
            .into_iter()
            .chain(0..256)
            .filter_map(|s| check_caught(&input, s).err())
            .inspect(|why| eprintln!("FAIL: {why}"))
            .count();
        println!("fuzz_http1: replay {}: {failed} failures", file.display());
        std::process::exit(i32::from(failed > 0));
    }
    let deadline = match (seconds, iterations) {
        (Some(s), _) => Duration::from_secs(s),
        (None, u64::MAX) => Duration::from_secs(10),
        (None, _) => Duration::MAX,
    };
    let r = run(seed, deadline, iterations, &crash_dir, true);
    let secs = r.elapsed.as_secs_f64();
    println!(
        "fuzz_http1: {} inputs in {secs:.1}s ({:.0}/s), {} outcome classes, corpus {}, \
         {} failures{}",
        r.inputs,
        r.inputs as f64 / secs,
        r.outcomes.len(),
        r.corpus,
        r.failures,
        if r.failures > 0 {
            format!(", saved in {}", crash_dir.display())
        } else {
            String::new()
        }
    );
    std::process::exit(i32::from(r.failures > 0));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short fixed-seed run, so `cargo test` (and `make test`) fuzzes a little every time.
    #[test]
    fn short_fuzz_run_finds_nothing() {
        let dir = std::env::temp_dir().join("fuzz_http1-test");
        let r = run(1, Duration::from_secs(3), 200_000, &dir, false);
        assert!(r.inputs > 100, "only {} inputs ran", r.inputs);
        assert_eq!(r.failures, 0, "failing inputs saved in {}", dir.display());
    }

    /// The checks are live: a corrupted encoding no longer decodes to the body.
    #[test]
    fn roundtrip_check_sees_corruption() {
        let mut rng = Rng::new(7);
        let enc = encode_chunked(&mut rng, b"hello world");
        let mut bad = enc.clone();
        let at = bad.iter().position(|c| *c == b'h').unwrap();
        bad[at] = b'j';
        assert_eq!(decode(&enc, &[3]).unwrap().0, b"hello world");
        assert_ne!(decode(&bad, &[3]).unwrap().0, b"hello world");
    }

    /// Without coverage feedback the mutations must still reach every kind of answer.
    /// Bounded by count, not time: a fixed seed and count give the same inputs on a loaded
    /// machine as on an idle one (the time limit only guards against a hang).
    #[test]
    fn short_run_reaches_every_outcome() {
        let dir = std::env::temp_dir().join("fuzz_http1-test");
        let r = run(2, Duration::from_secs(300), 20_000, &dir, false);
        assert_eq!(r.inputs, 20_000, "the run stopped early");
        for want in [
            "complete/1/chunked-done",
            "complete/1/chunked-more",
            "complete/1/chunked-error",
            "complete/0/length-true",
            "complete/1/none",
            "partial",
            "TooLarge",
            "UnsupportedVersion",
            "UnsupportedTransferEncoding",
            "BadRequest(Some(\"missing required Host header\"))",
            " chunked-done ",
            " chunked-error ",
        ] {
            assert!(
                r.outcomes.iter().any(|o| o.contains(want)),
                "{want} never reached in {} inputs",
                r.inputs
            );
        }
    }
}
