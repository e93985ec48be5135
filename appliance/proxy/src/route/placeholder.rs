//! Caddy's placeholder replacer (`caddy.Replacer.replace`): `{key}` is looked up, `\{` and
//! `\}` are literal braces, and an unknown key is either kept verbatim (`ReplaceKnown`) or
//! dropped (`ReplaceAll`). The scan is done at request time on the configured string, because
//! which keys are known (regexp captures, error fields) decides how the rest is tokenised,
//! exactly as in Caddy.

use std::borrow::Cow;

/// Something that can resolve placeholder keys (without braces).
pub trait Lookup {
    fn lookup(&self, key: &str) -> Option<Cow<'_, str>>;
}

/// Whether `s` could contain a placeholder at all (a cheap pre-check at compile time).
pub fn has_placeholder(s: &str) -> bool {
    s.contains('{')
}

/// Caddy's `ReplaceAll(input, "")`.
pub fn replace_all(input: &str, l: &impl Lookup) -> String {
    replace(input, l, true, "")
}

/// Caddy's `ReplaceKnown(input, "")`.
pub fn replace_known(input: &str, l: &impl Lookup) -> String {
    replace(input, l, false, "")
}

/// Caddy's `ReplaceAll(input, empty)` with a substitute for empty values.
pub fn replace_all_or(input: &str, l: &impl Lookup, empty: &str) -> String {
    replace(input, l, true, empty)
}

fn replace(input: &str, l: &impl Lookup, unknown_as_empty: bool, empty: &str) -> String {
    if !input.contains('{') {
        return input.to_owned();
    }
    let b = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut last = 0;
    let mut i = 0;
    'scan: while i < b.len() {
        if i > 0 && b[i - 1] == b'\\' && (b[i] == b'}' || b[i] == b'{') {
            out.push_str(&input[last..i - 1]);
            last = i;
            i += 1;
            continue;
        }
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        let Some(rel) = input[i..].find('}') else {
            i += 1;
            continue;
        };
        let mut end = i + rel;
        while end > 0 && end < b.len() - 1 && b[end - 1] == b'\\' {
            match input[end + 1..].find('}') {
                Some(next) => end += next + 1,
                None => {
                    i += 1;
                    continue 'scan;
                }
            }
        }
        out.push_str(&input[last..i]);
        let key = &input[i + 1..end];
        match l.lookup(key) {
            Some(v) if !v.is_empty() => out.push_str(&v),
            Some(_) => out.push_str(empty),
            None if unknown_as_empty => out.push_str(empty),
            None => {
                last = i;
                i += 1;
                continue;
            }
        }
        i = end + 1;
        last = i;
    }
    out.push_str(&input[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct L;
    impl Lookup for L {
        fn lookup(&self, key: &str) -> Option<Cow<'_, str>> {
            match key {
                "a" => Some("A".into()),
                "empty" => Some("".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn caddy_rules() {
        assert_eq!(replace_all("x{a}y", &L), "xAy");
        assert_eq!(replace_all("x{nope}y", &L), "xy");
        assert_eq!(replace_known("x{nope}y", &L), "x{nope}y");
        assert_eq!(replace_known("{nope{a}", &L), "{nopeA");
        assert_eq!(replace_all(r"\{a\}", &L), "{a}");
        assert_eq!(replace_all("{a", &L), "{a");
        assert_eq!(replace_all_or("[{empty}]", &L, "-"), "[-]");
        assert_eq!(replace_all("no braces", &L), "no braces");
    }
}
