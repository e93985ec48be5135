//! A header map with Go's `http.Header` semantics: keys are canonicalised on `set`/`add`/
//! `get`/`del`, values keep their order, and direct `set_raw` writes bypass canonicalisation
//! exactly like `h[key] = values` in Go.

use std::borrow::Cow;

/// Go's `textproto.CanonicalMIMEHeaderKey`: keys with bytes outside the token set are
/// returned unchanged.
pub fn canonical_key(name: &str) -> String {
    canonical(name).into_owned()
}

/// RFC 9110 token bytes, looked up per byte of every name canonicalised.
static TOKEN: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(b, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'|' | b'~'));

/// Whether `c` may appear in an RFC 9110 token (a field name, a method).
pub fn is_token_byte(c: u8) -> bool {
    TOKEN[usize::from(c)]
}

/// [`canonical_key`] without an allocation when `name` is canonical already (lookups mostly
/// name fields that way).
fn canonical(name: &str) -> Cow<'_, str> {
    let mut upper = true;
    let mut same = true;
    for c in name.bytes() {
        if !TOKEN[usize::from(c)] {
            return Cow::Borrowed(name);
        }
        let want = if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        };
        same &= want == c;
        upper = c == b'-';
    }
    if same {
        return Cow::Borrowed(name);
    }
    let mut upper = true;
    let mut out = String::with_capacity(name.len());
    for c in name.bytes() {
        out.push(char::from(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        }));
        upper = c == b'-';
    }
    Cow::Owned(out)
}

/// Ordered multimap of header fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap(pub Vec<(String, Vec<String>)>);

impl HeaderMap {
    /// Values stored under exactly `key` (Go's `h[key]`).
    pub fn raw(&self, key: &str) -> Option<&[String]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Values of `name`, canonicalised (Go's `h.Values(name)`; `None` when absent).
    pub fn values(&self, name: &str) -> Option<&[String]> {
        self.raw(&canonical(name))
    }

    /// Go's `Header.Get`: the first value, or "".
    pub fn get(&self, name: &str) -> &str {
        self.values(name)
            .and_then(|v| v.first())
            .map_or("", String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.values(name).is_some()
    }

    /// Go's `h[key] = values`.
    pub fn set_raw(&mut self, key: String, values: Vec<String>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = values,
            None => self.0.push((key, values)),
        }
    }

    /// Go's `Header.Set`.
    pub fn set(&mut self, name: &str, value: &str) {
        self.set_raw(canonical_key(name), vec![value.to_owned()]);
    }

    /// Go's `Header.Add`.
    pub fn add(&mut self, name: &str, value: &str) {
        let key = canonical(name);
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1.push(value.to_owned()),
            None => self.0.push((key.into_owned(), vec![value.to_owned()])),
        }
    }

    /// Go's `Header.Add` of each of `values`, canonicalising the name once.
    pub fn add_all(&mut self, name: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let key = canonical(name);
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1.extend_from_slice(values),
            None => self.0.push((key.into_owned(), values.to_vec())),
        }
    }

    /// Go's `Header.Del`.
    pub fn del(&mut self, name: &str) {
        let key = canonical(name);
        self.0.retain(|(k, _)| *k != key);
    }

    /// Removes every field for which `pred(key)` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = &(String, Vec<String>)> {
        self.0.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut (String, Vec<String>)> {
        self.0.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical() {
        assert_eq!(canonical_key("x-foo-BAR"), "X-Foo-Bar");
        assert_eq!(canonical_key("aaa"), "Aaa");
        assert_eq!(canonical_key("bad key"), "bad key");
        assert_eq!(canonical_key("Content-Type"), "Content-Type");
        assert_eq!(canonical_key("-x--y"), "-X--Y");
        assert_eq!(canonical_key("ETAG"), "Etag");
        assert_eq!(canonical_key(""), "");
    }

    #[test]
    fn go_semantics() {
        let mut h = HeaderMap::default();
        h.add("x-a", "1");
        h.add("X-A", "2");
        h.set_raw("x-raw".into(), vec!["r".into()]);
        assert_eq!(h.values("x-A").unwrap(), ["1", "2"]);
        assert_eq!(h.get("x-raw"), "");
        assert_eq!(h.raw("x-raw").unwrap(), ["r"]);
        h.set("X-a", "3");
        assert_eq!(h.get("x-a"), "3");
        h.del("x-a");
        assert!(!h.has("X-A"));
    }
}
