//! Caddy's log encoders (modules/logging/encoders.go, filterencoder.go, filters.go) over a
//! small field tree: `json` (zap's JSON), `console` (zap's console line: time, level, logger
//! and message in tab-separated columns, then the fields as spaced JSON) and `filter`
//! (field operations by `a>b>c` path, then the wrapped encoder).

use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::access_log::Level;
use crate::route::{err, Result};

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Str(Cow<'a, str>),
    /// An address, written as a string.
    Ip(IpAddr),
    /// A number written as a string (`remote_port`).
    Digits(u64),
    Int(u64),
    Dur(Duration),
    List(Vec<Cow<'a, str>>),
    /// A list borrowed as it is (header values).
    Strs(&'a [String]),
    /// Raw bytes (zap's `ByteString`): UTF-8 as it is, each stray byte as `\ufffd`.
    Bytes(&'a [u8]),
    Obj(Fields<'a>),
}

/// Fields in order, as zap writes them.
pub type Fields<'a> = Vec<(Cow<'a, str>, Val<'a>)>;

/// How `ts` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeFormat {
    /// Seconds since the epoch as a float (`unix_seconds_float`, JSON's default).
    Seconds,
    Millis,
    Nanos,
    /// `2006/01/02 15:04:05.000` (`wall_milli`, the console's default), in UTC.
    WallMilli,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DurationFormat {
    Seconds,
    Nanos,
    Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LevelFormat {
    Lower,
    Upper,
    /// Upper case in ANSI colours (the console's default).
    Color,
}

/// Caddy's `LogEncoderConfig`, shared by `json` and `console`.
#[derive(Debug, Clone)]
pub struct Style {
    message_key: String,
    level_key: String,
    time_key: String,
    name_key: String,
    line_ending: String,
    time_format: TimeFormat,
    duration_format: DurationFormat,
    level_format: LevelFormat,
}

impl Style {
    fn compile(m: &Map<String, Value>, console: bool) -> Result<Style> {
        let text = |k: &str| m.get(k).and_then(Value::as_str);
        let key = |k: &str, default: &str| text(k).unwrap_or(default).to_owned();
        let unsupported =
            |what: &str, v: &str| err(format!("{what} {v:?} is not supported by the engine"));
        Ok(Style {
            message_key: key("message_key", "msg"),
            level_key: key("level_key", "level"),
            time_key: key("time_key", "ts"),
            name_key: key("name_key", "logger"),
            line_ending: key("line_ending", "\n"),
            time_format: match text("time_format").unwrap_or("") {
                "" if console => TimeFormat::WallMilli,
                "" | "unix_seconds_float" => TimeFormat::Seconds,
                "unix_milli_float" => TimeFormat::Millis,
                "unix_nano" => TimeFormat::Nanos,
                "wall_milli" => TimeFormat::WallMilli,
                other => return unsupported("time_format", other),
            },
            duration_format: match text("duration_format").unwrap_or("") {
                "" | "seconds" | "s" => DurationFormat::Seconds,
                "nano" | "nanos" | "ns" => DurationFormat::Nanos,
                "ms" | "milli" | "millis" => DurationFormat::Millis,
                other => return unsupported("duration_format", other),
            },
            level_format: match text("level_format").unwrap_or("") {
                "" if console => LevelFormat::Color,
                "" | "lower" => LevelFormat::Lower,
                "upper" => LevelFormat::Upper,
                "color" => LevelFormat::Color,
                other => return unsupported("level_format", other),
            },
        })
    }

    fn level(&self, out: &mut Vec<u8>, level: Level) {
        let name = level.name();
        match self.level_format {
            LevelFormat::Lower => out.extend_from_slice(name.as_bytes()),
            LevelFormat::Upper => out.extend_from_slice(name.to_ascii_uppercase().as_bytes()),
            LevelFormat::Color => {
                let colour = match level {
                    Level::Debug => 35,
                    Level::Info => 34,
                    Level::Warn => 33,
                    _ => 31,
                };
                let _ = write!(out, "\x1b[{colour}m{}\x1b[0m", name.to_ascii_uppercase());
            }
        }
    }

    fn time(&self, out: &mut Vec<u8>, now: SystemTime, quoted: bool) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let _ = match self.time_format {
            TimeFormat::Seconds => write!(out, "{}", since.as_secs_f64()),
            TimeFormat::Millis => write!(out, "{}", since.as_secs_f64() * 1e3),
            TimeFormat::Nanos => write!(out, "{}", since.as_nanos()),
            TimeFormat::WallMilli => {
                let [y, mo, d, h, mi, sec] = super::roll::civil(since);
                let q = if quoted { "\"" } else { "" };
                write!(
                    out,
                    "{q}{y:04}/{mo:02}/{d:02} {h:02}:{mi:02}:{sec:02}.{:03}{q}",
                    since.subsec_millis()
                )
            }
        };
    }
}

/// A field operation of the `filter` encoder.
#[derive(Debug, Clone)]
pub enum Filter {
    Delete,
    Replace(String),
    Rename(String),
    IpMask { v4: u8, v6: u8 },
}

impl Filter {
    fn compile(m: &Map<String, Value>) -> Result<Filter> {
        let name = m.get("filter").and_then(Value::as_str).unwrap_or("");
        let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let bits = |k: &str| {
            m.get(k)
                .and_then(Value::as_u64)
                .map_or(0, |n| n.min(128) as u8)
        };
        Ok(match name {
            "delete" => Filter::Delete,
            "replace" => Filter::Replace(text("value")),
            "rename" => Filter::Rename(text("name")),
            "ip_mask" => Filter::IpMask {
                v4: bits("ipv4_cidr"),
                v6: bits("ipv6_cidr"),
            },
            other => {
                return err(format!(
                    "loading log filter module: unknown module: caddy.logging.encoders.filter.{other} (not supported by the engine)"
                ))
            }
        })
    }

    fn mask_ip(&self, ip: IpAddr) -> IpAddr {
        let Filter::IpMask { v4, v6 } = self else {
            return ip;
        };
        match ip {
            IpAddr::V4(a) => {
                let keep = u32::MAX
                    .checked_shl(32 - u32::from((*v4).min(32)))
                    .unwrap_or(0);
                IpAddr::from((u32::from(a) & keep).to_be_bytes())
            }
            IpAddr::V6(a) => {
                let keep = u128::MAX.checked_shl(128 - u32::from(*v6)).unwrap_or(0);
                IpAddr::from((u128::from(a) & keep).to_be_bytes())
            }
        }
    }

    fn mask(&self, s: &str) -> String {
        match s.trim().parse::<IpAddr>() {
            Ok(ip) => self.mask_ip(ip).to_string(),
            Err(_) => s.to_owned(),
        }
    }

    /// Applies the operation to the field at `path` (keys of nested objects).
    fn apply(&self, fields: &mut Fields<'_>, path: &[String]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut here = fields;
        for p in parents {
            let next = here.iter_mut().find(|(k, _)| k == p);
            match next {
                Some((_, Val::Obj(inner))) => here = inner,
                _ => return,
            }
        }
        let Some(i) = here.iter().position(|(k, _)| k == last) else {
            return;
        };
        match self {
            Filter::Delete => {
                here.remove(i);
            }
            Filter::Replace(v) => here[i].1 = Val::Str(Cow::Owned(v.clone())),
            Filter::Rename(n) => here[i].0 = Cow::Owned(n.clone()),
            Filter::IpMask { .. } => {
                here[i].1 = match &here[i].1 {
                    Val::Str(s) => Val::Str(Cow::Owned(self.mask(s))),
                    Val::Ip(ip) => Val::Ip(self.mask_ip(*ip)),
                    Val::List(l) => Val::List(l.iter().map(|s| Cow::Owned(self.mask(s))).collect()),
                    Val::Strs(l) => Val::List(l.iter().map(|s| Cow::Owned(self.mask(s))).collect()),
                    other => other.clone(),
                }
            }
        }
    }
}

/// One log's encoder.
#[derive(Debug, Clone)]
pub enum Encoder {
    Json(Style),
    Console(Style),
    Filter {
        wrap: Box<Encoder>,
        fields: Vec<(Vec<String>, Filter)>,
    },
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::Json(Style::compile(&Map::new(), false).expect("defaults compile"))
    }
}

impl Encoder {
    /// Caddy's default encoder: the console's on a standard stream when stderr is a terminal
    /// (coloured unless `NO_COLOR` is set or `TERM=xterm-mono`), else JSON.
    pub fn for_stream(standard: bool) -> Encoder {
        use std::io::IsTerminal;
        if !standard || !std::io::stderr().is_terminal() {
            return Encoder::default();
        }
        let mut style = Style::compile(&Map::new(), true).expect("defaults compile");
        let mono = std::env::var_os("NO_COLOR").is_some()
            || std::env::var("TERM").is_ok_and(|t| t == "xterm-mono");
        if mono {
            style.level_format = LevelFormat::Upper;
        }
        Encoder::Console(style)
    }

    pub fn compile(v: Option<&Value>) -> Result<Encoder> {
        let Some(v) = v else {
            return Ok(Encoder::default());
        };
        let Value::Object(m) = v else {
            return err("encoder: expected a JSON object");
        };
        match m.get("format").and_then(Value::as_str).unwrap_or("") {
            "json" => Ok(Encoder::Json(Style::compile(m, false)?)),
            "console" => Ok(Encoder::Console(Style::compile(m, true)?)),
            "filter" => {
                let wrap = match m.get("wrap") {
                    Some(w) => Encoder::compile(Some(w))?,
                    None => Encoder::default(),
                };
                let mut fields = Vec::new();
                if let Some(Value::Object(f)) = m.get("fields") {
                    for (path, op) in f {
                        let Value::Object(op) = op else {
                            return err("filter: expected a JSON object");
                        };
                        let path = path.split('>').map(str::to_owned).collect();
                        fields.push((path, Filter::compile(op)?));
                    }
                }
                Ok(Encoder::Filter {
                    wrap: Box::new(wrap),
                    fields,
                })
            }
            other => err(format!(
                "loading log encoder module: unknown module: caddy.logging.encoders.{other} (not supported by the engine)"
            )),
        }
    }

    /// The line for an entry.
    pub fn encode(
        &self,
        level: Level,
        now: SystemTime,
        logger: &str,
        msg: &str,
        mut fields: Fields<'_>,
    ) -> Vec<u8> {
        match self {
            Encoder::Filter { wrap, fields: ops } => {
                for (path, op) in ops {
                    op.apply(&mut fields, path);
                }
                wrap.encode(level, now, logger, msg, fields)
            }
            Encoder::Json(s) => {
                let mut out = Vec::with_capacity(512);
                out.push(b'{');
                key(&mut out, &s.level_key, false);
                out.push(b'"');
                s.level(&mut out, level);
                out.extend_from_slice(b"\",");
                key(&mut out, &s.time_key, false);
                s.time(&mut out, now, true);
                out.push(b',');
                key(&mut out, &s.name_key, false);
                json_str(&mut out, logger);
                out.push(b',');
                key(&mut out, &s.message_key, false);
                json_str(&mut out, msg);
                for (k, v) in &fields {
                    out.push(b',');
                    key(&mut out, k, false);
                    value(&mut out, v, s.duration_format, false);
                }
                out.push(b'}');
                out.extend_from_slice(s.line_ending.as_bytes());
                out
            }
            Encoder::Console(s) => {
                let mut out = Vec::with_capacity(512);
                s.time(&mut out, now, false);
                out.push(b'\t');
                s.level(&mut out, level);
                let _ = write!(out, "\t{logger}\t{msg}");
                if !fields.is_empty() {
                    out.push(b'\t');
                    object(&mut out, &fields, s.duration_format, true);
                }
                out.extend_from_slice(s.line_ending.as_bytes());
                out
            }
        }
    }
}

/// zap's JSON string escaping: `\` and `"`, the named control escapes, `\u00XX` for other
/// control bytes; everything else as UTF-8.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_escaped(out, s);
    out.push(b'"');
}

/// zap's `AppendByteString`: as [`json_str`], with every byte that starts no valid UTF-8
/// sequence written as the escape `\ufffd` (one per byte, as Go's `DecodeRune` steps).
fn json_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    for chunk in b.utf8_chunks() {
        json_escaped(out, chunk.valid());
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

/// The body of [`json_str`]. Only ASCII bytes are ever escaped, and every byte of a
/// multi-byte UTF-8 sequence is above them, so the bytes between two escapes are copied as
/// one run: an access log line is mostly such runs.
fn json_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

/// A key and its colon (zap's spaced form adds a space after the colon).
fn key(out: &mut Vec<u8>, k: &str, spaced: bool) {
    json_str(out, k);
    out.extend_from_slice(if spaced { b": " } else { b":" });
}

fn sep(out: &mut Vec<u8>, spaced: bool) {
    out.extend_from_slice(if spaced { b", " } else { b"," });
}

fn object(out: &mut Vec<u8>, fields: &Fields<'_>, d: DurationFormat, spaced: bool) {
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            sep(out, spaced);
        }
        key(out, k, spaced);
        value(out, v, d, spaced);
    }
    out.push(b'}');
}

fn list<'s>(out: &mut Vec<u8>, items: impl Iterator<Item = &'s str>, spaced: bool) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            sep(out, spaced);
        }
        json_str(out, s);
    }
    out.push(b']');
}

fn value(out: &mut Vec<u8>, v: &Val<'_>, d: DurationFormat, spaced: bool) {
    match v {
        Val::Str(s) => json_str(out, s),
        Val::Int(n) => {
            let _ = write!(out, "{n}");
        }
        // Addresses and digits need no escaping.
        Val::Ip(ip) => {
            let _ = write!(out, "\"{ip}\"");
        }
        Val::Digits(n) => {
            let _ = write!(out, "\"{n}\"");
        }
        Val::Dur(t) => {
            let _ = match d {
                DurationFormat::Seconds => write!(out, "{}", t.as_secs_f64()),
                DurationFormat::Nanos => write!(out, "{}", t.as_nanos()),
                DurationFormat::Millis => write!(out, "{}", t.as_secs_f64() * 1e3),
            };
        }
        Val::List(l) => list(out, l.iter().map(|s| &**s), spaced),
        Val::Strs(l) => list(out, l.iter().map(String::as_str), spaced),
        Val::Bytes(b) => json_bytes(out, b),
        Val::Obj(f) => object(out, f, d, spaced),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields<'static> {
        vec![
            (
                "request".into(),
                Val::Obj(vec![
                    ("remote_ip".into(), Val::Str("127.0.0.1".into())),
                    ("client_ip".into(), Val::Str("2001:db8::1".into())),
                    (
                        "headers".into(),
                        Val::Obj(vec![
                            ("X-Q".into(), Val::List(vec!["\"x\"".into(), "2".into()])),
                            ("X-Secret".into(), Val::List(vec!["s".into()])),
                        ]),
                    ),
                ]),
            ),
            ("duration".into(), Val::Dur(Duration::from_nanos(87_570))),
            ("status".into(), Val::Int(200)),
        ]
    }

    fn encode(cfg: Value, level: Level) -> String {
        let e = Encoder::compile(Some(&cfg)).unwrap();
        let now = UNIX_EPOCH + Duration::from_millis(1_795_763_441_221);
        String::from_utf8(e.encode(
            level,
            now,
            "http.log.access.log0",
            "handled request",
            fields(),
        ))
        .unwrap()
    }

    #[test]
    fn console_like_caddy() {
        assert_eq!(
            encode(serde_json::json!({"format": "console"}), Level::Info),
            concat!(
                "2026/11/27 07:10:41.221\t\x1b[34mINFO\x1b[0m\thttp.log.access.log0\thandled request\t",
                r#"{"request": {"remote_ip": "127.0.0.1", "client_ip": "2001:db8::1", "headers": {"X-Q": ["\"x\"", "2"], "X-Secret": ["s"]}}, "duration": 0.00008757, "status": 200}"#,
                "\n"
            )
        );
    }

    #[test]
    fn filters_like_caddy() {
        let cfg = serde_json::json!({
            "format": "filter",
            "wrap": {"format": "json", "level_format": "upper"},
            "fields": {
                "request>headers>X-Q": {"filter": "delete"},
                "request>headers>X-Secret": {"filter": "replace", "value": "hidden"},
                "request>remote_ip": {"filter": "ip_mask", "ipv4_cidr": 16, "ipv6_cidr": 32},
                "request>client_ip": {"filter": "ip_mask", "ipv4_cidr": 16, "ipv6_cidr": 32},
                "status": {"filter": "rename", "name": "code"},
                "no>such": {"filter": "delete"}
            }
        });
        assert_eq!(
            encode(cfg, Level::Error),
            concat!(
                r#"{"level":"ERROR","ts":1795763441.221,"logger":"http.log.access.log0","msg":"handled request","#,
                r#""request":{"remote_ip":"127.0.0.0","client_ip":"2001:db8::","headers":{"X-Secret":"hidden"}},"duration":0.00008757,"code":200}"#,
                "\n"
            )
        );
    }

    #[test]
    fn unsupported_modules_are_refused() {
        for cfg in [
            serde_json::json!({"format": "append"}),
            serde_json::json!({"format": "filter", "fields": {"a": {"filter": "hash"}}}),
            serde_json::json!({"format": "json", "time_format": "rfc3339"}),
        ] {
            assert!(Encoder::compile(Some(&cfg)).is_err(), "{cfg}");
        }
    }

    #[test]
    fn strings_escape_like_zap() {
        let mut out = Vec::new();
        json_str(
            &mut out,
            "a\"b\\c\n\r\t\u{1}\u{1f}\u{7f} \u{e9}\u{20ac}\u{1f600}<>&\u{2028}",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\u{7f} \u{e9}\u{20ac}\u{1f600}<>&\u{2028}\""
        );
    }

    #[test]
    fn bytes_escape_stray_bytes_one_by_one_like_zap() {
        let mut out = Vec::new();
        value(
            &mut out,
            &Val::Bytes(b"a\"\x01 \xff\xfe \xc3\xa9 \xe2\x82x \xef\xbf\xbd\n"),
            DurationFormat::Seconds,
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"\\u0001 \\ufffd\\ufffd \u{e9} \\ufffd\\ufffdx \u{fffd}\\n\""
        );
    }
}
