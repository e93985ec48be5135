//! Caddy's access logs: the `handled request` entry (modules/caddyhttp/server.go
//! `logRequest`, marshalers.go) and the `http.log.error` entry of a handler error, the
//! server's `logs` mapping of hosts to logger names, and the custom logs of `logging.logs`
//! (writer, encoder, level, include/exclude, sampling) that receive each entry.
//!
//! Workers format the line and hand it to one logger thread per engine over a bounded
//! channel; a full channel drops the line and counts it, so a slow disk never stalls a
//! worker. The logger thread owns the open files (shared by every config the engine runs,
//! as Caddy's writers outlive reloads) and writes them in batches.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::encode::{Encoder, Fields, Val};
use crate::http1::HeaderMap;
use crate::route::{err, str_list, CompileError, Result};

/// Lines waiting for the logger thread before workers start dropping them.
const QUEUE: usize = 8192;
/// How long the logger thread lets lines gather while requests keep coming (8,192 lines per
/// 20 ms: 400,000 lines a second before any is dropped).
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(20);
/// Caddy's (lumberjack's) defaults for a rolled file: 100 MiB, 10 backups, gzip.
const ROLL_SIZE_MB: u64 = 100;
const ROLL_KEEP: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Panic,
    Fatal,
}

impl Level {
    fn parse(s: &str) -> Result<Level> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "" | "info" => Level::Info,
            "debug" => Level::Debug,
            "warn" => Level::Warn,
            "error" => Level::Error,
            "panic" => Level::Panic,
            "fatal" => Level::Fatal,
            _ => return err(format!("unrecognized log level: {s}")),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Panic => "panic",
            Level::Fatal => "fatal",
        }
    }
}

/// Where a custom log writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    Stdout,
    Stderr,
    Discard,
    File(FileSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileSpec {
    pub path: PathBuf,
    /// `None` with `roll: false`; else the size in bytes that starts a new file.
    pub roll_size: Option<u64>,
    pub roll_keep: usize,
    pub roll_gzip: bool,
}

/// One entry of `logging.logs`.
#[derive(Debug, Clone)]
pub struct Sink {
    writer: Arc<Writer>,
    encoder: Encoder,
    level: Level,
    include: Vec<String>,
    exclude: Vec<String>,
    sampling: Option<Arc<Sampler>>,
}

/// zap's sampler as Caddy configures it (`sampling`): per level and message, in each
/// `interval` the first `first` entries pass, then every `thereafter`-th.
#[derive(Debug)]
struct Sampler {
    interval: std::time::Duration,
    first: u64,
    thereafter: u64,
    /// (level, message) → (end of the current interval, entries seen in it).
    counts: std::sync::Mutex<HashMap<(Level, String), (std::time::Instant, u64)>>,
}

impl Sampler {
    fn compile(v: &Value) -> Result<Sampler> {
        // Caddy's defaults for what is left out: 1s, 100, 100.
        let n = |k: &str| v.get(k).and_then(Value::as_u64).filter(|n| *n > 0);
        let interval = match v.get("interval") {
            Some(d) => crate::route::duration(d, "interval")?,
            None => std::time::Duration::ZERO,
        };
        Ok(Sampler {
            interval: if interval.is_zero() {
                std::time::Duration::from_secs(1)
            } else {
                interval
            },
            first: n("first").unwrap_or(100),
            thereafter: n("thereafter").unwrap_or(100),
            counts: Default::default(),
        })
    }

    fn allows(&self, level: Level, msg: &str, now: std::time::Instant) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let slot = counts
            .entry((level, msg.to_owned()))
            .or_insert((now + self.interval, 0));
        if now > slot.0 {
            *slot = (now + self.interval, 0);
        }
        slot.1 += 1;
        slot.1 <= self.first || (slot.1 - self.first) % self.thereafter == 0
    }
}

impl Sink {
    fn compile(v: &Value) -> Result<Sink> {
        let Value::Object(m) = v else {
            return err("expected a JSON object");
        };
        let writer = compile_writer(m.get("writer"))?;
        let encoder = match m.get("encoder") {
            Some(e) => Encoder::compile(Some(e))?,
            None => Encoder::for_stream(matches!(writer, Writer::Stdout | Writer::Stderr)),
        };
        Ok(Sink {
            writer: Arc::new(writer),
            encoder,
            level: Level::parse(m.get("level").and_then(Value::as_str).unwrap_or(""))?,
            include: str_list(m.get("include"), "include")?,
            exclude: str_list(m.get("exclude"), "exclude")?,
            sampling: m
                .get("sampling")
                .map(|v| Sampler::compile(v).map(Arc::new))
                .transpose()?,
        })
    }

    fn stderr() -> Sink {
        Sink {
            writer: Arc::new(Writer::Stderr),
            encoder: Encoder::for_stream(true),
            level: Level::Info,
            include: Vec::new(),
            exclude: Vec::new(),
            sampling: None,
        }
    }

    /// Caddy's `loggerAllowed`: the longest matching include and exclude namespaces decide.
    fn allows(&self, name: &str) -> bool {
        if self.include.is_empty() && self.exclude.is_empty() {
            return true;
        }
        // `ns` covers itself and its children ("a.b" covers "a.b" and "a.b.c", not "a.bc").
        let covers = |ns: &str| {
            ns.is_empty()
                || ns == "*"
                || name
                    .strip_prefix(ns)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        };
        let longest = |list: &[String]| {
            list.iter()
                .filter(|ns| covers(ns))
                .map(|ns| ns.len().max(1))
                .max()
                .unwrap_or(0)
        };
        let accept = longest(&self.include);
        if !self.include.is_empty() && accept == 0 {
            return false;
        }
        let reject = longest(&self.exclude);
        if reject > 0 && reject >= accept {
            return false;
        }
        accept > reject || self.include.is_empty()
    }
}

fn compile_writer(v: Option<&Value>) -> Result<Writer> {
    let Some(Value::Object(m)) = v else {
        return Ok(Writer::Stderr);
    };
    let output = m.get("output").and_then(Value::as_str).unwrap_or("");
    Ok(match output {
        "stderr" => Writer::Stderr,
        "stdout" => Writer::Stdout,
        "discard" => Writer::Discard,
        "file" => {
            let Some(path) = m.get("filename").and_then(Value::as_str) else {
                return err("writer file: filename is required");
            };
            let roll = m.get("roll").and_then(Value::as_bool).unwrap_or(true);
            let mb = m
                .get("roll_size_mb")
                .and_then(Value::as_u64)
                .filter(|n| *n > 0)
                .unwrap_or(ROLL_SIZE_MB);
            Writer::File(FileSpec {
                path: PathBuf::from(path),
                roll_size: roll.then_some(mb << 20),
                roll_keep: m
                    .get("roll_keep")
                    .and_then(Value::as_u64)
                    .map_or(ROLL_KEEP, |n| n as usize),
                roll_gzip: m.get("roll_gzip").and_then(Value::as_bool).unwrap_or(true),
            })
        }
        other => {
            return err(format!(
                "loading log writer module: unknown module: caddy.logging.writers.{other} (not supported by the engine)"
            ))
        }
    })
}

/// `logging.logs`, with Caddy's implicit `default` log (stderr) when none is configured.
#[derive(Debug, Clone)]
pub struct Logs {
    sinks: Vec<Sink>,
}

impl Logs {
    pub fn compile(root: &Map<String, Value>) -> Result<Logs> {
        let mut sinks = Vec::new();
        let mut has_default = false;
        if let Some(Value::Object(logs)) = root.get("logging").and_then(|l| l.get("logs")) {
            for (name, v) in logs {
                has_default |= name == "default";
                let sink = Sink::compile(v).map_err(|e| {
                    CompileError(format!("setting up custom log '{name}': {}", e.0))
                })?;
                sinks.push(sink);
            }
        }
        if !has_default {
            sinks.push(Sink::stderr());
        }
        Ok(Logs { sinks })
    }
}

/// A server's `logs` (Caddy's `ServerLogConfig`).
#[derive(Debug, Clone, Default)]
pub struct ServerLogs {
    default_logger_name: String,
    logger_names: HashMap<String, Vec<String>>,
    skip_hosts: Vec<String>,
    skip_unmapped_hosts: bool,
    pub log_credentials: bool,
}

impl ServerLogs {
    pub fn compile(v: &Value) -> Result<ServerLogs> {
        let Value::Object(m) = v else {
            return err("logs: expected a JSON object");
        };
        let mut logger_names = HashMap::new();
        if let Some(Value::Object(names)) = m.get("logger_names") {
            for (host, v) in names {
                let list = match v {
                    Value::String(s) => vec![s.clone()],
                    other => str_list(Some(other), "logger_names")?,
                };
                logger_names.insert(host.clone(), list);
            }
        }
        Ok(ServerLogs {
            default_logger_name: m
                .get("default_logger_name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            logger_names,
            skip_hosts: str_list(m.get("skip_hosts"), "skip_hosts")?,
            skip_unmapped_hosts: m
                .get("skip_unmapped_hosts")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            log_credentials: m
                .get("should_log_credentials")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// Caddy's `shouldLogRequest`, on the host without its port.
    pub fn should_log(&self, host: &str) -> bool {
        let host = host_only(host);
        if self.skip_hosts.iter().any(|p| match_wildcard(host, p)) {
            return false;
        }
        if self.logger_names.contains_key(host) {
            return true;
        }
        !self.skip_unmapped_hosts
    }

    /// Caddy's `getLoggerNames`: exact host, then with each label in turn made a wildcard.
    pub fn logger_names(&self, host: &str) -> &[String] {
        let host = host_only(host);
        if let Some(n) = self.logger_names.get(host) {
            return n;
        }
        let mut labels: Vec<&str> = host.split('.').collect();
        for i in 0..labels.len() {
            if labels[i].is_empty() {
                continue;
            }
            labels[i] = "*";
            if let Some(n) = self.logger_names.get(&labels.join(".")) {
                return n;
            }
        }
        std::slice::from_ref(&self.default_logger_name)
    }
}

/// Go's `net.SplitHostPort` host, or the whole string when it has no port.
fn host_only(host: &str) -> &str {
    crate::route::matchers::host::strip_port(host)
}

/// certmagic's `MatchWildcard`: `*` stands for exactly one label.
fn match_wildcard(subject: &str, pattern: &str) -> bool {
    let (subject, pattern) = (subject.to_ascii_lowercase(), pattern.to_ascii_lowercase());
    if subject == pattern {
        return true;
    }
    if !pattern.contains('*') {
        return false;
    }
    let s: Vec<&str> = subject.split('.').collect();
    let p: Vec<&str> = pattern.split('.').collect();
    s.len() == p.len() && s.iter().zip(&p).all(|(a, b)| *b == "*" || a == b)
}

/// Everything a `handled request` entry says about one exchange.
pub struct Entry<'a> {
    pub remote: Option<std::net::SocketAddr>,
    pub client_ip: &'a str,
    pub proto: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    pub uri: &'a str,
    pub headers: &'a HeaderMap,
    pub bytes_read: u64,
    pub user_id: &'a str,
    pub duration: std::time::Duration,
    pub size: u64,
    /// 0 when no handler wrote (logged as `NOP`).
    pub status: u16,
    pub resp_headers: &'a HeaderMap,
    /// `log_append` fields in the order they were added.
    pub extra: &'a [(String, String)],
}

/// Caddy's `LoggableHTTPHeader`: credentials become `REDACTED` unless the server logs them.
fn headers<'a>(h: &'a HeaderMap, credentials: bool) -> Val<'a> {
    Val::Obj(
        h.iter()
            .map(|(name, values)| {
                let secret = !credentials
                    && [
                        "cookie",
                        "set-cookie",
                        "authorization",
                        "proxy-authorization",
                    ]
                    .iter()
                    .any(|s| name.eq_ignore_ascii_case(s));
                let values = if secret {
                    Val::List(vec![Cow::Borrowed("REDACTED")])
                } else {
                    Val::Strs(values)
                };
                (Cow::Borrowed(name.as_str()), values)
            })
            .collect(),
    )
}

/// The entry's level: Caddy logs 5xx at error, everything else at info.
pub fn level_of(status: u16) -> Level {
    if status >= 500 {
        Level::Error
    } else {
        Level::Info
    }
}

/// The entry's message: `NOP` when no handler wrote a response.
fn message(e: &Entry<'_>) -> &'static str {
    if e.status == 0 {
        "NOP"
    } else {
        "handled request"
    }
}

/// Caddy's `LoggableHTTPRequest` of the entry's request (the `request` field, which modules
/// also log of the requests they make).
pub fn request_object<'a>(e: &'a Entry<'a>, credentials: bool) -> Val<'a> {
    let s = |v: &'a str| Val::Str(Cow::Borrowed(v));
    let (ip, port) = match e.remote {
        Some(a) => (Val::Ip(a.ip()), Val::Digits(u64::from(a.port()))),
        None => (s(""), s("")),
    };
    Val::Obj(vec![
        ("remote_ip".into(), ip),
        ("remote_port".into(), port),
        ("client_ip".into(), s(e.client_ip)),
        ("proto".into(), s(e.proto)),
        ("method".into(), s(e.method)),
        ("host".into(), s(e.host)),
        ("uri".into(), s(e.uri)),
        ("headers".into(), headers(e.headers, credentials)),
    ])
}

/// The entry's fields after the message, in Caddy's order.
fn fields<'a>(e: &'a Entry<'a>, credentials: bool) -> Fields<'a> {
    let s = |v: &'a str| Val::Str(Cow::Borrowed(v));
    let mut out: Fields<'a> = vec![
        ("request".into(), request_object(e, credentials)),
        ("bytes_read".into(), Val::Int(e.bytes_read)),
        ("user_id".into(), s(e.user_id)),
        ("duration".into(), Val::Dur(e.duration)),
        ("size".into(), Val::Int(e.size)),
        ("status".into(), Val::Int(u64::from(e.status))),
        ("resp_headers".into(), headers(e.resp_headers, credentials)),
    ];
    for (k, v) in e.extra {
        out.push((Cow::Borrowed(k.as_str()), s(v)));
    }
    out
}

/// Caddy's error log entry (`http.log.error`) for a handler error: the request, the
/// duration, the status, and the error's id and trace. The engine has no Go stack to name
/// and gives its errors no id (`{http.error.id}` is empty too), so those two are empty.
pub fn error_fields<'a>(e: &'a Entry<'a>, credentials: bool) -> Fields<'a> {
    let mut all = fields(e, credentials);
    let request = all.swap_remove(0);
    vec![
        request,
        ("duration".into(), Val::Dur(e.duration)),
        ("status".into(), Val::Int(u64::from(e.status))),
        ("err_id".into(), Val::Str("".into())),
        ("err_trace".into(), Val::Str("".into())),
    ]
}

impl Logs {
    /// Formats the entry once per custom log that takes it (by logger name and level) and
    /// queues each line (the queue counts what it has to drop).
    pub fn emit(&self, q: &Queue, names: &[String], e: &Entry<'_>, credentials: bool) {
        self.emit_as(
            q,
            names,
            "http.log.access",
            level_of(e.status),
            message(e),
            &|| fields(e, credentials),
        );
    }

    /// Queues the error log entry for a handler error with `message`.
    pub fn emit_error(
        &self,
        q: &Queue,
        names: &[String],
        e: &Entry<'_>,
        message: &str,
        level: Level,
        credentials: bool,
    ) {
        self.emit_as(q, names, "http.log.error", level, message, &|| {
            error_fields(e, credentials)
        });
    }

    /// Queues an entry of a module's own logger (`logger`, no access log name appended).
    pub fn emit_module<'a>(
        &self,
        q: &Queue,
        logger: &str,
        level: Level,
        msg: &str,
        fields: &dyn Fn() -> Fields<'a>,
    ) {
        self.emit_as(q, &[String::new()], logger, level, msg, fields);
    }

    fn emit_as<'a>(
        &self,
        q: &Queue,
        names: &[String],
        base: &str,
        level: Level,
        msg: &str,
        fields: &dyn Fn() -> Fields<'a>,
    ) {
        let now = SystemTime::now();
        for name in names {
            let logger = if name.is_empty() {
                base.to_owned()
            } else {
                format!("{base}.{name}")
            };
            for sink in &self.sinks {
                if level < sink.level || *sink.writer == Writer::Discard || !sink.allows(&logger) {
                    continue;
                }
                let sampled = sink.sampling.as_ref();
                if sampled.is_some_and(|s| !s.allows(level, msg, std::time::Instant::now())) {
                    continue;
                }
                let line = sink.encoder.encode(level, now, &logger, msg, fields());
                q.send(Arc::clone(&sink.writer), line);
            }
        }
    }
}

type Line = (Arc<Writer>, Vec<u8>);

/// The workers' end of the logger thread's channel.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Line>,
    dropped: Arc<AtomicU64>,
}

impl Queue {
    /// Starts the logger thread; it ends once every `Queue` clone is gone.
    pub fn start() -> std::io::Result<Queue> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("zeroserve-log".into())
            .spawn(move || run(rx))?;
        Ok(Queue {
            tx,
            dropped: Arc::default(),
        })
    }

    /// Queues a line without ever blocking; a line that does not fit is dropped and counted.
    fn send(&self, w: Arc<Writer>, line: Vec<u8>) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send((w, line))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// An open log file and its size, for rolling.
struct Open {
    out: BufWriter<File>,
    size: u64,
}

fn open(path: &std::path::Path) -> std::io::Result<Open> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let size = f.metadata()?.len();
    Ok(Open {
        out: BufWriter::with_capacity(64 << 10, f),
        size,
    })
}

/// The logger thread's outputs; everything is buffered and written once per batch.
#[derive(Default)]
struct Outputs {
    /// One handle per path, whatever roll settings the configs naming it have had.
    files: HashMap<PathBuf, Open>,
    failed: HashSet<PathBuf>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Outputs {
    fn write(&mut self, (writer, line): Line) {
        match &*writer {
            Writer::Stdout => self.stdout.extend_from_slice(&line),
            Writer::Stderr => self.stderr.extend_from_slice(&line),
            Writer::Discard => {}
            Writer::File(spec) => {
                if let Err(e) = write_file(&mut self.files, spec, &line) {
                    if self.failed.insert(spec.path.clone()) {
                        eprintln!("zeroserve: access log {}: {e}", spec.path.display());
                    }
                }
            }
        }
    }

    fn flush(&mut self) {
        for f in self.files.values_mut() {
            let _ = f.out.flush();
        }
        for (buf, mut out) in [
            (
                &mut self.stdout,
                Box::new(std::io::stdout()) as Box<dyn Write>,
            ),
            (&mut self.stderr, Box::new(std::io::stderr())),
        ] {
            if !buf.is_empty() {
                let _ = out.write_all(buf);
                let _ = out.flush();
                buf.clear();
            }
        }
    }
}

/// The logger thread. It blocks while the server is idle, so the first line of a burst is
/// written at once; then it sleeps between batches while lines keep coming, so a busy
/// server costs one wake-up and one write per batch, not per line.
fn run(rx: Receiver<Line>) {
    let mut out = Outputs::default();
    while let Ok(first) = rx.recv() {
        out.write(first);
        loop {
            out.flush();
            std::thread::sleep(BATCH_WAIT);
            let mut any = false;
            while let Ok(line) = rx.try_recv() {
                out.write(line);
                any = true;
            }
            if !any {
                break;
            }
        }
    }
    out.flush();
}

fn write_file(
    files: &mut HashMap<PathBuf, Open>,
    spec: &FileSpec,
    line: &[u8],
) -> std::io::Result<()> {
    let f = match files.get_mut(&spec.path) {
        Some(f) => f,
        None => files.entry(spec.path.clone()).or_insert(open(&spec.path)?),
    };
    if let Some(max) = spec.roll_size {
        if f.size > 0 && f.size + line.len() as u64 > max {
            f.out.flush()?;
            super::roll::roll(spec)?;
            *f = open(&spec.path)?;
        }
    }
    f.out.write_all(line)?;
    f.size += line.len() as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Formats one `handled request` line for `logger` with `enc`.
    fn format_entry(
        enc: &Encoder,
        logger: &str,
        e: &Entry<'_>,
        credentials: bool,
        now: SystemTime,
    ) -> Vec<u8> {
        enc.encode(
            level_of(e.status),
            now,
            logger,
            message(e),
            fields(e, credentials),
        )
    }

    fn sink(include: &[&str], exclude: &[&str]) -> Sink {
        Sink {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            ..Sink::stderr()
        }
    }

    #[test]
    fn include_exclude_like_caddy() {
        assert!(sink(&[], &[]).allows("http.log.access.log0"));
        assert!(sink(&["http.log.access.log0"], &[]).allows("http.log.access.log0"));
        assert!(!sink(&["http.log.access.log0"], &[]).allows("http.log.access.log01"));
        assert!(!sink(&["http.log.access.log0"], &[]).allows("http.log.access"));
        assert!(!sink(&[], &["http.log.access.log0"]).allows("http.log.access.log0"));
        assert!(sink(&[], &["http.log.access.log0"]).allows("http.log.access"));
        assert!(sink(&["http.log"], &["http.log.access"]).allows("http.log.error"));
        assert!(!sink(&["http.log"], &["http.log.access"]).allows("http.log.access.x"));
        assert!(sink(&["http.log.access.x"], &["http.log"]).allows("http.log.access.x"));
    }

    #[test]
    fn host_mapping() {
        let logs = ServerLogs::compile(&serde_json::json!({
            "logger_names": {"a.example": ["log0"], "*.wild.example": ["w"], "b.example": ""},
            "skip_hosts": ["c.example", "*.skip.example", "d.example:8080"],
            "default_logger_name": "dflt"
        }))
        .unwrap();
        assert_eq!(logs.logger_names("a.example:8080"), vec!["log0"]);
        assert_eq!(logs.logger_names("x.wild.example"), vec!["w"]);
        assert_eq!(logs.logger_names("b.example"), vec![""]);
        assert_eq!(logs.logger_names("other"), vec!["dflt"]);
        assert!(logs.should_log("a.example"));
        assert!(!logs.should_log("c.example:80"));
        assert!(!logs.should_log("q.skip.example"));
        // Caddy compares skip_hosts with the port stripped, so a pattern with a port
        // never matches (what `caddy adapt` emits for a site with a port).
        assert!(logs.should_log("d.example:8080"));
    }

    #[test]
    fn entry_shape_and_escaping() {
        let mut req = HeaderMap::default();
        req.add("User-Agent", "t\"\u{1}é");
        req.add("Cookie", "a=b");
        req.add("Cookie", "c=d");
        let mut resp = HeaderMap::default();
        resp.add("Server", "Caddy");
        resp.set_raw("Content-Type".into(), Vec::new());
        let e = Entry {
            remote: Some("127.0.0.1:5000".parse().unwrap()),
            client_ip: "127.0.0.1",
            proto: "HTTP/1.1",
            method: "GET",
            host: "h:1",
            uri: "/p?q=1",
            headers: &req,
            bytes_read: 3,
            user_id: "bob",
            duration: std::time::Duration::from_nanos(258_886),
            size: 5,
            status: 200,
            resp_headers: &resp,
            extra: &[("foo".into(), "bar".into())],
        };
        let now =
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_795_762_148_919_767_600);
        let line = format_entry(&Encoder::default(), "http.log.access.log0", &e, false, now);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            concat!(
                r#"{"level":"info","ts":1795762148.9197676,"logger":"http.log.access.log0","msg":"handled request","#,
                r#""request":{"remote_ip":"127.0.0.1","remote_port":"5000","client_ip":"127.0.0.1","proto":"HTTP/1.1","method":"GET","host":"h:1","uri":"/p?q=1","#,
                r#""headers":{"User-Agent":["t\"\u0001é"],"Cookie":["REDACTED"]}},"bytes_read":3,"user_id":"bob","duration":0.000258886,"#,
                r#""size":5,"status":200,"resp_headers":{"Server":["Caddy"],"Content-Type":[]},"foo":"bar"}"#,
                "\n"
            )
        );
        let nop = Entry { status: 0, ..e };
        let line = format_entry(&Encoder::default(), "http.log.access", &nop, true, now);
        let text = String::from_utf8(line).unwrap();
        assert!(text.contains(r#""msg":"NOP""#));
        assert!(text.contains(r#""Cookie":["a=b","c=d"]"#));
    }

    #[test]
    fn sampling_like_zap() {
        let s = Sampler::compile(
            &serde_json::json!({"interval": 1_000_000_000u64, "first": 3, "thereafter": 5}),
        )
        .unwrap();
        let t = std::time::Instant::now();
        let passed: Vec<bool> = (0..14).map(|_| s.allows(Level::Info, "m", t)).collect();
        let expect = [
            true, true, true, false, false, false, false, true, false, false, false, false, true,
            false,
        ];
        assert_eq!(passed, expect);
        // Other messages and levels count apart; a new interval starts over.
        assert!(s.allows(Level::Error, "m", t) && s.allows(Level::Info, "other", t));
        assert!(s.allows(Level::Info, "m", t + std::time::Duration::from_secs(2)));
        let d = Sampler::compile(&serde_json::json!({})).unwrap();
        assert_eq!((d.interval.as_secs(), d.first, d.thereafter), (1, 100, 100));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tx, rx) = sync_channel(2);
        let q = Queue {
            tx,
            dropped: Arc::default(),
        };
        for _ in 0..5 {
            q.send(Arc::new(Writer::Stderr), b"x\n".to_vec());
        }
        assert_eq!((rx.try_iter().count(), q.dropped()), (2, 3));
    }

    #[test]
    fn levels_and_writers() {
        assert_eq!(level_of(404), Level::Info);
        assert_eq!(level_of(502), Level::Error);
        assert!(compile_writer(Some(&serde_json::json!({"output": "net"}))).is_err());
    }
}
