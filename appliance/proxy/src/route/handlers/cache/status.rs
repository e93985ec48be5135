//! `Cache-Status` values (RFC 9211) in the shapes the cache-handler plugin (Souin) writes:
//! the cache name first, then `hit` or `fwd=...`, `stored`, `key=...` and `detail=...` in
//! the plugin's order for each case.

/// A fresh (or stale, with `fwd=stale`) hit: Souin's `manageAge`, detail = the storer name.
pub fn hit(name: &str, ttl: i64, key: &str, stale: bool) -> String {
    let mut s = format!("{name}; hit; ttl={ttl}; key={key}; detail=DEFAULT");
    if stale {
        s.push_str("; fwd=stale");
    }
    s
}

/// A stale entry served because the upstream failed (stale-if-error).
pub fn stale_on_error(name: &str, ttl: i64, key: &str, upstream_status: u16) -> String {
    format!(
        "{}; fwd-status={upstream_status}",
        hit(name, ttl, key, true)
    )
}

/// A miss whose response was stored.
pub fn stored(name: &str, key: &str) -> String {
    format!("{name}; fwd=uri-miss; stored; key={key}")
}

/// A miss whose response was not stored, with the plugin's detail; the plugin puts the key
/// before the detail for these two and after it otherwise.
pub fn not_stored(name: &str, key: &str, detail: &str) -> String {
    match detail {
        "UNCACHEABLE-STATUS-CODE" | "PRIVATE-OR-AUTHENTICATED-RESPONSE" => {
            format!("{name}; fwd=uri-miss; key={key}; detail={detail}")
        }
        _ => format!("{name}; fwd=uri-miss; detail={detail}; key={key}"),
    }
}

/// A stale entry revalidated upstream (`fwd-status` is the upstream's answer).
pub fn revalidated(name: &str, key: &str, upstream_status: u16) -> String {
    format!("{name}; fwd=stale; fwd-status={upstream_status}; key={key}; detail=REVALIDATED")
}

/// The request was not looked up at all.
pub fn bypass(name: &str, detail: &str) -> String {
    format!("{name}; fwd=bypass; detail={detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_shapes() {
        let k = "GET-http-example.com-/";
        assert_eq!(
            hit("Souin", 9, k, false),
            "Souin; hit; ttl=9; key=GET-http-example.com-/; detail=DEFAULT"
        );
        assert_eq!(
            hit("Souin", -2, k, true),
            "Souin; hit; ttl=-2; key=GET-http-example.com-/; detail=DEFAULT; fwd=stale"
        );
        assert_eq!(
            stored("Souin", k),
            "Souin; fwd=uri-miss; stored; key=GET-http-example.com-/"
        );
        assert_eq!(
            not_stored("Souin", k, "NO-STORE-DIRECTIVE"),
            "Souin; fwd=uri-miss; detail=NO-STORE-DIRECTIVE; key=GET-http-example.com-/"
        );
        assert_eq!(
            not_stored("Souin", k, "UNCACHEABLE-STATUS-CODE"),
            "Souin; fwd=uri-miss; key=GET-http-example.com-/; detail=UNCACHEABLE-STATUS-CODE"
        );
        assert_eq!(
            bypass("Souin", "UNSUPPORTED-METHOD"),
            "Souin; fwd=bypass; detail=UNSUPPORTED-METHOD"
        );
    }
}
