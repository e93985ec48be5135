//! RFC 9111 freshness: `Cache-Control` directives of requests and responses, the freshness
//! lifetime of a response (section 4.2.1), its age, and whether a shared cache may store it
//! (section 3).

use std::time::Duration;

use crate::http1::HeaderMap;
use crate::route::handlers::file_server::parse_http_time;

/// The `Cache-Control` directives a shared cache acts on. Delta-seconds that do not parse
/// make the directive count as absent, except `max-age`/`s-maxage`, where RFC 9111 4.2.1
/// asks to treat an invalid value as stale (0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub only_if_cached: bool,
}

fn seconds(v: Option<&str>) -> Option<u64> {
    let v = v?.trim_matches('"');
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // RFC 9111 1.2.2: a value too large saturates.
    Some(v.parse().unwrap_or(u64::MAX))
}

/// Parses every `Cache-Control` field line (comma-separated, case-insensitive names).
pub fn parse(values: Option<&[String]>) -> Directives {
    let mut d = Directives::default();
    for part in values.unwrap_or(&[]).iter().flat_map(|v| v.split(',')) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, arg) = match part.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (part, None),
        };
        match name.to_ascii_lowercase().as_str() {
            "no-store" => d.no_store = true,
            "no-cache" => d.no_cache = true,
            "private" => d.private = true,
            "public" => d.public = true,
            "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
            "max-age" => d.max_age = Some(seconds(arg).unwrap_or(0)),
            "s-maxage" => d.s_maxage = Some(seconds(arg).unwrap_or(0)),
            "stale-while-revalidate" => d.stale_while_revalidate = seconds(arg),
            "stale-if-error" => d.stale_if_error = seconds(arg),
            "only-if-cached" => d.only_if_cached = true,
            _ => {}
        }
    }
    d
}

/// Status codes the plugin stores (Souin's `isCacheableCode`), less 206: the engine keeps
/// whole representations only.
pub fn cacheable_status(status: u16, additional: &[u16]) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 404 | 405 | 410 | 414 | 501
    ) || additional.contains(&status)
}

/// Why a response is not stored; the text is the plugin's `detail` in `Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Status,
    NoStore,
    Private,
    VaryStar,
}

impl NotStored {
    pub fn detail(self) -> &'static str {
        match self {
            NotStored::Status => "UNCACHEABLE-STATUS-CODE",
            NotStored::NoStore => "NO-STORE-DIRECTIVE",
            NotStored::Private => "PRIVATE-OR-AUTHENTICATED-RESPONSE",
            NotStored::VaryStar => "UPSTREAM-VARY-STAR",
        }
    }
}

/// RFC 9111 section 3 for a shared cache: may this response be stored?
pub fn storable(
    status: u16,
    additional: &[u16],
    request: &Directives,
    response: &Directives,
    authorized: bool,
    vary_star: bool,
) -> Result<(), NotStored> {
    if !cacheable_status(status, additional) {
        return Err(NotStored::Status);
    }
    if request.no_store || response.no_store {
        return Err(NotStored::NoStore);
    }
    // 3.5: a request with credentials only with a response that allows sharing it.
    let shared_ok = response.public || response.s_maxage.is_some() || response.must_revalidate;
    if response.private || (authorized && !shared_ok) {
        return Err(NotStored::Private);
    }
    if vary_star {
        return Err(NotStored::VaryStar);
    }
    Ok(())
}

/// The freshness lifetime (4.2.1): `s-maxage`, then `max-age`, then `Expires` less `Date`
/// (or less `now` without a usable `Date`), then the configured default.
pub fn lifetime(
    response: &Directives,
    headers: &HeaderMap,
    now: u64,
    default: Duration,
) -> Duration {
    if let Some(s) = response.s_maxage.or(response.max_age) {
        return Duration::from_secs(s);
    }
    if let Some(expires) = headers.raw("Expires").and_then(|v| v.first()) {
        // An invalid Expires (including "0") means already expired.
        let Some(exp) = parse_http_time(expires) else {
            return Duration::ZERO;
        };
        let date = date_of(headers).unwrap_or(now);
        return Duration::from_secs(exp.saturating_sub(date));
    }
    default
}

/// The response's `Date` in seconds since the epoch.
pub fn date_of(headers: &HeaderMap) -> Option<u64> {
    headers
        .raw("Date")
        .and_then(|v| v.first())
        .and_then(|d| parse_http_time(d))
}

/// The age the response already had when it arrived: its `Age` field (4.2.3; the apparent
/// age from `Date` is ignored, as clocks of origins drift).
pub fn initial_age(headers: &HeaderMap) -> u64 {
    seconds(
        headers
            .raw("Age")
            .and_then(|v| v.first())
            .map(String::as_str),
    )
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(s: &str) -> Directives {
        parse(Some(&[s.to_owned()]))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::default();
        for (k, v) in pairs {
            h.add(k, v);
        }
        h
    }

    #[test]
    fn directives() {
        let d = cc("public, Max-Age=60, s-maxage=\"30\", stale-while-revalidate=5, no-cache");
        assert!(d.public && d.no_cache && !d.no_store);
        assert_eq!((d.max_age, d.s_maxage), (Some(60), Some(30)));
        assert_eq!(d.stale_while_revalidate, Some(5));
        assert_eq!(cc("max-age=abc").max_age, Some(0));
        assert_eq!(cc("stale-if-error=x").stale_if_error, None);
        assert_eq!(
            cc("max-age=99999999999999999999999").max_age,
            Some(u64::MAX)
        );
        assert_eq!(parse(None), Directives::default());
    }

    #[test]
    fn lifetime_order() {
        let now = 1_700_000_000;
        let h = headers(&[
            ("Date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ("Expires", "Tue, 14 Nov 2023 22:15:00 GMT"),
        ]);
        let ttl = Duration::from_secs(7);
        assert_eq!(
            lifetime(&cc("s-maxage=3, max-age=9"), &h, now, ttl).as_secs(),
            3
        );
        assert_eq!(lifetime(&cc("max-age=9"), &h, now, ttl).as_secs(), 9);
        assert_eq!(lifetime(&cc(""), &h, now, ttl).as_secs(), 100);
        let bad = headers(&[("Expires", "0")]);
        assert_eq!(lifetime(&cc(""), &bad, now, ttl), Duration::ZERO);
        assert_eq!(lifetime(&cc(""), &HeaderMap::default(), now, ttl), ttl);
    }

    #[test]
    fn storability() {
        let none = Directives::default();
        assert_eq!(storable(200, &[], &none, &none, false, false), Ok(()));
        assert_eq!(
            storable(500, &[], &none, &none, false, false),
            Err(NotStored::Status)
        );
        assert_eq!(storable(500, &[500], &none, &none, false, false), Ok(()));
        assert_eq!(
            storable(200, &[], &cc("no-store"), &none, false, false),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            storable(200, &[], &none, &cc("no-store"), false, false),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            storable(200, &[], &none, &cc("private"), false, false),
            Err(NotStored::Private)
        );
        assert_eq!(
            storable(200, &[], &none, &none, true, false),
            Err(NotStored::Private)
        );
        assert_eq!(
            storable(200, &[], &none, &cc("public"), true, false),
            Ok(())
        );
        assert_eq!(
            storable(200, &[], &none, &none, false, true),
            Err(NotStored::VaryStar)
        );
    }

    #[test]
    fn age_field() {
        assert_eq!(initial_age(&headers(&[("Age", "12")])), 12);
        assert_eq!(initial_age(&headers(&[("Age", "-1")])), 0);
    }
}
