//! Caddy's `caddy_http_*` Prometheus metrics (modules/caddyhttp/metrics.go), kept per worker
//! thread and summed when scraped.
//!
//! Caddy instruments every matched top-level route once, labelled with the module name of
//! the route's first handler: the request counter and error counter by `server, handler`,
//! and four histograms by `server, handler, code, method` (plus `host` with `per_host`).
//! Each worker owns a [`Shard`] behind its own mutex: the worker is the only writer, so the
//! lock is uncontended except for the instant a scrape reads it.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// Prometheus' `DefBuckets`, for the two duration histograms.
const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// `ExponentialBuckets(256, 4, 8)`, for the two size histograms.
const SIZE_BUCKETS: [f64; 8] = [
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
];

/// Caddy's `SanitizeMethod`: the regular methods (exact upper or lower case), else `OTHER`.
pub fn sanitize_method(m: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .iter()
        .find(|k| **k == m || k.to_ascii_lowercase() == m)
        .copied()
        .unwrap_or("OTHER")
}

/// Caddy's `SanitizeCode`: 0 (nothing written) counts as 200.
pub fn sanitize_code(code: u16) -> u16 {
    if code == 0 {
        200
    } else {
        code
    }
}

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        if self.counts.is_empty() {
            self.counts = vec![0; other.counts.len()];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// `server, handler[, host]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RouteKey {
    server: Arc<str>,
    handler: Arc<str>,
    host: Option<Box<str>>,
}

/// `server, handler, code, method[, host]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StatusKey {
    route: RouteKey,
    code: u16,
    method: &'static str,
}

#[derive(Debug, Clone, Default)]
struct RouteCounts {
    requests: u64,
    errors: u64,
}

#[derive(Debug, Clone, Default)]
struct StatusSeries {
    request_duration: Histogram,
    request_size: Histogram,
    response_size: Histogram,
    response_duration: Histogram,
}

/// One worker's counters.
#[derive(Debug, Default)]
pub struct Shard {
    routes: HashMap<RouteKey, RouteCounts>,
    statuses: HashMap<StatusKey, StatusSeries>,
}

/// What one instrumented route saw of a request.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub server: &'a Arc<str>,
    pub handler: &'a Arc<str>,
    pub host: Option<&'a str>,
    pub method: &'static str,
    /// Status as the route's wrapper saw it: written by a handler, or the handler error's.
    pub code: u16,
    pub duration: f64,
    pub request_size: u64,
    pub response_size: u64,
    /// Time to the first written header; `None` when the route wrote nothing.
    pub ttfb: Option<f64>,
    pub error: bool,
}

/// An instrumented route a request being handled is inside (the scraping request itself).
#[derive(Debug, Clone)]
pub struct Running<'a> {
    pub server: &'a Arc<str>,
    pub handler: &'a Arc<str>,
    pub host: Option<String>,
}

impl Running<'_> {
    fn key(&self) -> RouteKey {
        RouteKey {
            server: Arc::clone(self.server),
            handler: Arc::clone(self.handler),
            host: self.host.as_deref().map(Box::from),
        }
    }
}

impl Shard {
    /// Counts one instrumented route of a finished request.
    pub fn record(&mut self, o: &Observation<'_>) {
        let route = RouteKey {
            server: Arc::clone(o.server),
            handler: Arc::clone(o.handler),
            host: o.host.map(Box::from),
        };
        let counts = self.routes.entry(route.clone()).or_default();
        counts.requests += 1;
        if o.error {
            counts.errors += 1;
        }
        let key = StatusKey {
            route,
            code: sanitize_code(o.code),
            method: o.method,
        };
        let s = self.statuses.entry(key).or_default();
        s.request_duration.observe(&DURATION_BUCKETS, o.duration);
        s.request_size.observe(&SIZE_BUCKETS, o.request_size as f64);
        s.response_size
            .observe(&SIZE_BUCKETS, o.response_size as f64);
        if let Some(t) = o.ttfb {
            s.response_duration.observe(&DURATION_BUCKETS, t);
        }
    }
}

/// Every worker's shard, for one engine; shards outlive reloads like Caddy's collectors.
#[derive(Debug, Default)]
pub struct Registry {
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
}

impl Registry {
    /// A new shard for a worker thread.
    pub fn shard(&self) -> Arc<Mutex<Shard>> {
        let s = Arc::new(Mutex::new(Shard::default()));
        self.shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&s));
        s
    }

    /// The Prometheus text exposition of every shard summed, as Go's `promhttp` writes it:
    /// families by name, series by label values, labels by name, nothing for an empty family.
    /// `running` are the routes in flight now: a request counts when it completes, and the
    /// worker handles one at a time, so only a request reading the metrics is inside routes.
    pub fn render(&self, running: &[Running<'_>]) -> String {
        let mut routes: HashMap<RouteKey, RouteCounts> = HashMap::new();
        let mut statuses: HashMap<StatusKey, StatusSeries> = HashMap::new();
        for shard in self.shards.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in &shard.routes {
                let t = routes.entry(k.clone()).or_default();
                t.requests += v.requests;
                t.errors += v.errors;
            }
            for (k, v) in &shard.statuses {
                let t = statuses.entry(k.clone()).or_default();
                t.request_duration.merge(&v.request_duration);
                t.request_size.merge(&v.request_size);
                t.response_size.merge(&v.response_size);
                t.response_duration.merge(&v.response_duration);
            }
        }
        let mut route_rows: Vec<(Vec<(&str, String)>, &RouteCounts)> =
            routes.iter().map(|(k, v)| (route_labels(k), v)).collect();
        route_rows.sort_by(|a, b| a.0.cmp(&b.0));
        // Caddy's gauge has a series for every route a request ever entered: those counted,
        // and those inside now (before the first of their requests completes).
        let mut in_flight: HashMap<RouteKey, f64> =
            routes.keys().map(|k| (k.clone(), 0.0)).collect();
        for r in running {
            *in_flight.entry(r.key()).or_default() += 1.0;
        }
        let mut in_flight_rows: Vec<(Vec<(&str, String)>, f64)> = in_flight
            .iter()
            .map(|(k, v)| (route_labels(k), *v))
            .collect();
        in_flight_rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut status_rows: Vec<(Vec<(&str, String)>, &StatusSeries)> = statuses
            .iter()
            .map(|(k, v)| (status_labels(k), v))
            .collect();
        status_rows.sort_by(|a, b| a.0.cmp(&b.0));

        let mut out = String::new();
        let hist = |out: &mut String, name, help, pick: fn(&StatusSeries) -> &Histogram, b| {
            let rows: Vec<_> = status_rows
                .iter()
                .filter(|(_, s)| pick(s).count > 0)
                .map(|(l, s)| (l, pick(s)))
                .collect();
            histogram_family(out, name, help, b, &rows);
        };
        hist(
            &mut out,
            "caddy_http_request_duration_seconds",
            "Histogram of round-trip request durations.",
            |s| &s.request_duration,
            &DURATION_BUCKETS[..],
        );
        counter_family(
            &mut out,
            "caddy_http_request_errors_total",
            "counter",
            "Number of requests resulting in middleware errors.",
            route_rows
                .iter()
                .filter(|(_, c)| c.errors > 0)
                .map(|(l, c)| (l, c.errors as f64)),
        );
        hist(
            &mut out,
            "caddy_http_request_size_bytes",
            "Total size of the request. Includes body",
            |s| &s.request_size,
            &SIZE_BUCKETS[..],
        );
        counter_family(
            &mut out,
            "caddy_http_requests_in_flight",
            "gauge",
            "Number of requests currently handled by this server.",
            // A request waiting on an upstream is not counted (the known gap).
            in_flight_rows.iter().map(|(l, v)| (l, *v)),
        );
        counter_family(
            &mut out,
            "caddy_http_requests_total",
            "counter",
            "Counter of HTTP(S) requests made.",
            route_rows.iter().map(|(l, c)| (l, c.requests as f64)),
        );
        hist(
            &mut out,
            "caddy_http_response_duration_seconds",
            "Histogram of times to first byte in response bodies.",
            |s| &s.response_duration,
            &DURATION_BUCKETS[..],
        );
        hist(
            &mut out,
            "caddy_http_response_size_bytes",
            "Size of the returned response.",
            |s| &s.response_size,
            &SIZE_BUCKETS[..],
        );
        out
    }
}

fn route_labels(k: &RouteKey) -> Vec<(&'static str, String)> {
    let mut l = vec![
        ("handler", k.handler.to_string()),
        ("server", k.server.to_string()),
    ];
    if let Some(h) = &k.host {
        l.insert(1, ("host", h.to_string()));
    }
    l
}

fn status_labels(k: &StatusKey) -> Vec<(&'static str, String)> {
    let mut l = vec![("code", k.code.to_string())];
    l.extend(route_labels(&k.route));
    let at = l.len() - 1;
    l.insert(at, ("method", k.method.to_owned()));
    l
}

/// Prometheus' label value escaping (`\`, `"`, newline).
fn write_labels(out: &mut String, labels: &[(&str, String)], le: Option<&str>) {
    out.push('{');
    let mut first = true;
    let extra = le.map(|v| ("le", v.to_owned()));
    for (k, v) in labels.iter().chain(extra.iter()) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter_family<'a>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    rows: impl Iterator<Item = (&'a Vec<(&'static str, String)>, f64)>,
) {
    let mut rows = rows.peekable();
    if rows.peek().is_none() {
        return;
    }
    header(out, name, kind, help);
    for (labels, v) in rows {
        out.push_str(name);
        write_labels(out, labels, None);
        let _ = writeln!(out, " {}", go_float(v));
    }
}

fn histogram_family(
    out: &mut String,
    name: &str,
    help: &str,
    bounds: &[f64],
    rows: &[(&Vec<(&'static str, String)>, &Histogram)],
) {
    if rows.is_empty() {
        return;
    }
    header(out, name, "histogram", help);
    for (labels, h) in rows {
        let mut cumulative = 0;
        for (i, n) in h.counts.iter().enumerate() {
            cumulative += n;
            let le = bounds.get(i).map_or("+Inf".to_owned(), |b| go_float(*b));
            let _ = write!(out, "{name}_bucket");
            write_labels(out, labels, Some(&le));
            let _ = writeln!(out, " {cumulative}");
        }
        let _ = write!(out, "{name}_sum");
        write_labels(out, labels, None);
        let _ = writeln!(out, " {}", go_float(h.sum));
        let _ = write!(out, "{name}_count");
        write_labels(out, labels, None);
        let _ = writeln!(out, " {}", h.count);
    }
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which the text exposition uses: shortest
/// round-trip digits, in exponent form when the decimal exponent is below -4 or at least 6
/// (`1.048576e+06`, `3.6605e-05`, `262144`).
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.048576e6".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        assert_eq!(go_float(1048576.0), "1.048576e+06");
        assert_eq!(go_float(4194304.0), "4.194304e+06");
        assert_eq!(go_float(262144.0), "262144");
        assert_eq!(go_float(3.6605e-05), "3.6605e-05");
        assert_eq!(go_float(0.000160711), "0.000160711");
        assert_eq!(go_float(6.068999999999999e-06), "6.068999999999999e-06");
        assert_eq!(go_float(1.7957621469428477e9), "1.7957621469428477e+09");
        assert_eq!(go_float(174.0), "174");
        assert_eq!(go_float(0.005), "0.005");
        assert_eq!(go_float(2.5), "2.5");
        assert_eq!(go_float(10.0), "10");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
    }

    #[test]
    fn methods_and_codes() {
        assert_eq!(sanitize_method("get"), "GET");
        assert_eq!(sanitize_method("Get"), "OTHER");
        assert_eq!(sanitize_method("PROPFIND"), "OTHER");
        assert_eq!(sanitize_code(0), 200);
        assert_eq!(sanitize_code(404), 404);
    }

    #[test]
    fn render_sums_shards_in_caddy_order() {
        let reg = Registry::default();
        let (a, b) = (reg.shard(), reg.shard());
        let server: Arc<str> = Arc::from("srv0");
        let handler: Arc<str> = Arc::from("subroute");
        let o = Observation {
            server: &server,
            handler: &handler,
            host: None,
            method: "GET",
            code: 200,
            duration: 0.001,
            request_size: 116,
            response_size: 5,
            ttfb: Some(0.0005),
            error: false,
        };
        a.lock().unwrap().record(&o);
        b.lock().unwrap().record(&Observation {
            request_size: 300,
            ..o.clone()
        });
        let text = reg.render(&[]);
        assert!(
            text.contains("caddy_http_requests_total{handler=\"subroute\",server=\"srv0\"} 2\n")
        );
        assert!(text.contains(
            "caddy_http_request_size_bytes_bucket{code=\"200\",handler=\"subroute\",method=\"GET\",server=\"srv0\",le=\"256\"} 1\n"
        ));
        assert!(text.contains(
            "caddy_http_request_size_bytes_bucket{code=\"200\",handler=\"subroute\",method=\"GET\",server=\"srv0\",le=\"1024\"} 2\n"
        ));
        assert!(text.contains("caddy_http_request_size_bytes_sum{code=\"200\",handler=\"subroute\",method=\"GET\",server=\"srv0\"} 416\n"));
        assert!(!text.contains("request_errors_total"));
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        let mut sorted = families.clone();
        sorted.sort();
        assert_eq!(families, sorted);
        assert_eq!(families.len(), 6);
    }

    #[test]
    fn per_host_label_sits_between_handler_and_method() {
        let reg = Registry::default();
        let server: Arc<str> = Arc::from("s");
        let handler: Arc<str> = Arc::from("error");
        reg.shard().lock().unwrap().record(&Observation {
            server: &server,
            handler: &handler,
            host: Some("_other"),
            method: "OTHER",
            code: 403,
            duration: 0.0,
            request_size: 0,
            response_size: 0,
            ttfb: None,
            error: true,
        });
        let text = reg.render(&[]);
        assert!(text.contains(
            "caddy_http_request_errors_total{handler=\"error\",host=\"_other\",server=\"s\"} 1\n"
        ));
        assert!(text.contains("caddy_http_request_duration_seconds_count{code=\"403\",handler=\"error\",host=\"_other\",method=\"OTHER\",server=\"s\"} 1\n"));
        assert!(!text.contains("response_duration"));
    }
}
