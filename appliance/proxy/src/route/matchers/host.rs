//! `http.matchers.host`: Caddy's `MatchHost`. Hosts compare case-insensitively against
//! the request host without its port; `*` in a label matches exactly one label. Large
//! lists of plain names are sorted once for binary search, as Caddy's Provision does.

use serde_json::Value;

use super::super::ctx::Ctx;
use super::super::Result;

#[derive(Debug)]
pub struct MatchHost {
    exact: Vec<String>,
    wildcards: Vec<String>,
}

/// The host part of a Host header value (`net.SplitHostPort`, else the whole value).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return &rest[..end];
        }
        return host;
    }
    match host.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h,
        _ => host,
    }
}

fn label_match(pattern: &str, host: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.len() == h.len() && p.iter().zip(&h).all(|(a, b)| *a == "*" || a == b)
}

impl MatchHost {
    pub fn compile(v: &Value) -> Result<MatchHost> {
        let mut exact = Vec::new();
        let mut wildcards = Vec::new();
        for h in super::strings(v, "host")? {
            let h = h.to_ascii_lowercase();
            if h.contains('*') {
                wildcards.push(h);
            } else {
                exact.push(h);
            }
        }
        exact.sort();
        Ok(MatchHost { exact, wildcards })
    }

    pub fn matches(&self, ctx: &Ctx<'_, '_>) -> bool {
        let host = strip_port(&ctx.host).to_ascii_lowercase();
        self.exact.binary_search(&host).is_ok()
            || self.wildcards.iter().any(|w| label_match(w, &host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_wildcards() {
        assert_eq!(strip_port("Example.com:8080"), "Example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("::1"), "::1");
        assert!(label_match("*.example.com", "a.example.com"));
        assert!(!label_match("*.example.com", "a.b.example.com"));
        assert!(!label_match("*.example.com", "example.com"));
    }
}
