//! `http.matchers.path`: Caddy's `MatchPath`. Case-insensitive; the request path is cleaned
//! first (dot segments resolved, doubled slashes merged unless the pattern has `//`); a
//! pattern with one leading or trailing `*` is a suffix or prefix match, `*x*` a substring
//! match, and anything else a `path.Match` glob (which is exact when it has no wildcards).
//! A `%` in a pattern compares against the escaped path instead of the decoded one.

use serde_json::Value;

use super::super::ctx::Ctx;
use super::super::Result;

#[derive(Debug)]
pub struct MatchPath(Vec<String>);

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

const TMP: char = '\u{fffe}';

/// Caddy's `CleanPath`: `path.Clean` keeping a trailing slash, optionally keeping `//`.
pub fn clean_path(p: &str, merge_slashes: bool) -> String {
    let keep_trailing = |cleaned: String, orig: &str| {
        if cleaned != "/" && orig.ends_with('/') {
            cleaned + "/"
        } else {
            cleaned
        }
    };
    if merge_slashes {
        return keep_trailing(clean(p), p);
    }
    let mut marked = String::with_capacity(p.len() + 4);
    let mut prev_slash = false;
    for ch in p.chars() {
        if ch == '/' && prev_slash {
            marked.push(TMP);
        }
        prev_slash = ch == '/';
        marked.push(ch);
    }
    keep_trailing(clean(&marked), &marked).replace(TMP, "")
}

/// Go's `path.Match`; a malformed pattern matches nothing.
pub fn glob(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, chars consumed including ']').
        let mut i = 0;
        let negate = p.first() == Some(&'^');
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        loop {
            let ch = *p.get(i)?;
            if ch == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let (lo, step) = if ch == '\\' {
                (*p.get(i + 1)?, 2)
            } else {
                (ch, 1)
            };
            i += step;
            let mut hi = lo;
            if p.get(i) == Some(&'-') && p.get(i + 1) != Some(&']') {
                let h = *p.get(i + 1)?;
                let (h, s) = if h == '\\' {
                    (*p.get(i + 2)?, 3)
                } else {
                    (h, 2)
                };
                hi = h;
                i += s;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        }
    }
    fn rec(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => {
                let rest = &p[1..];
                (0..=n.len())
                    .take_while(|i| *i == 0 || n[i - 1] != '/')
                    .any(|i| rec(rest, &n[i..]))
            }
            Some('?') => n.first().is_some_and(|c| *c != '/') && rec(&p[1..], &n[1..]),
            Some('[') => match n.first() {
                Some(c) if *c != '/' => match class(&p[1..], *c) {
                    Some((true, used)) => rec(&p[1 + used..], &n[1..]),
                    _ => false,
                },
                _ => false,
            },
            Some('\\') => match (p.get(1), n.first()) {
                (Some(a), Some(b)) if a == b => rec(&p[2..], &n[1..]),
                _ => false,
            },
            Some(c) => n.first() == Some(c) && rec(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    rec(&p, &n)
}

impl MatchPath {
    pub fn compile(v: &Value) -> Result<MatchPath> {
        Ok(MatchPath(
            super::strings(v, "path")?
                .into_iter()
                .map(|p| p.to_lowercase())
                .collect(),
        ))
    }

    pub fn matches(&self, ctx: &Ctx<'_, '_>) -> bool {
        let path = ctx.uri.path.to_lowercase();
        self.0
            .iter()
            .any(|pattern| matches_one(pattern, &path, &ctx.uri.escaped_path()))
    }
}

fn matches_one(pattern: &str, lower_path: &str, escaped: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let merge = !pattern.contains("//");
    if pattern.contains('%') {
        return glob(pattern, &clean_path(escaped, merge).to_lowercase());
    }
    let path = clean_path(lower_path, merge);
    let stars = pattern.matches('*').count();
    if stars == 2 && pattern.len() >= 2 && pattern.starts_with('*') && pattern.ends_with('*') {
        return path.contains(&pattern[1..pattern.len() - 1]);
    }
    if stars == 1 {
        if let Some(suffix) = pattern.strip_prefix('*') {
            return path.ends_with(suffix);
        }
        if let Some(prefix) = pattern.strip_suffix('*') {
            return path.starts_with(prefix);
        }
    }
    glob(pattern, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clean() {
        for (a, b) in [
            ("", "."),
            ("/", "/"),
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("a//b/./c/", "a/b/c"),
            ("/a/b/..", "/a"),
        ] {
            assert_eq!(clean(a), b, "{a}");
        }
        assert_eq!(clean_path("/a//b/", true), "/a/b/");
        assert_eq!(clean_path("/a//b/../c", false), "/a//c");
    }

    #[test]
    fn globs() {
        assert!(glob("/a/*.txt", "/a/b.txt"));
        assert!(!glob("/a/*.txt", "/a/b/c.txt"));
        assert!(glob("/a/?", "/a/x"));
        assert!(glob("/[a-c]x", "/bx"));
        assert!(!glob("/[^a-c]x", "/bx"));
        assert!(glob("/exact", "/exact"));
        assert!(!glob("/[", "/["));
    }

    #[test]
    fn caddy_rules() {
        let m = |p: &str, path: &str| matches_one(p, &path.to_lowercase(), path);
        assert!(m("/foo*", "/foo/bar"));
        assert!(m("/foo*", "/foobar"));
        assert!(!m("/foo", "/foo/"));
        assert!(m("*.php", "/x/index.php"));
        assert!(m("*bar*", "/foo/bar/baz"));
        assert!(m("/foo/*", "/foo/../foo/x"));
        assert!(!m("/admin*", "/./x/../Admin2/../public"));
        assert!(m("/admin*", "//admin/x"));
        assert!(!m("/a//b", "/a/b"));
        assert!(m("/a//b", "/a//b"));
        assert!(m("/a/*/c", "/a/b/c"));
    }
}
