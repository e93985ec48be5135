//! Go's `mime.TypeByExtension` on Linux as Caddy's binary behaves here: a small built-in
//! table, extended by the shared-mime database (`globs2`, where the built-ins win), and by
//! `mime.types` files for extensions still unknown (which override the built-ins when there
//! is no `globs2`); `text/*` types get `; charset=utf-8`. Loaded once per process.

use std::collections::HashMap;
use std::sync::OnceLock;

const BUILTIN: &[(&str, &str)] = &[
    (".avif", "image/avif"),
    (".css", "text/css; charset=utf-8"),
    (".gif", "image/gif"),
    (".htm", "text/html; charset=utf-8"),
    (".html", "text/html; charset=utf-8"),
    (".jpeg", "image/jpeg"),
    (".jpg", "image/jpeg"),
    (".js", "text/javascript; charset=utf-8"),
    (".json", "application/json"),
    (".mjs", "text/javascript; charset=utf-8"),
    (".pdf", "application/pdf"),
    (".png", "image/png"),
    (".svg", "image/svg+xml"),
    (".wasm", "application/wasm"),
    (".webp", "image/webp"),
    (".xml", "text/xml; charset=utf-8"),
];

const GLOBS: &[&str] = &["/usr/local/share/mime/globs2", "/usr/share/mime/globs2"];
const TYPE_FILES: &[&str] = &[
    "/etc/mime.types",
    "/etc/apache2/mime.types",
    "/etc/apache/mime.types",
    "/etc/httpd/conf/mime.types",
];

fn with_charset(t: &str) -> String {
    if t.starts_with("text/") && !t.contains("charset=") {
        format!("{t}; charset=utf-8")
    } else {
        t.to_owned()
    }
}

fn load() -> HashMap<String, String> {
    let mut map: HashMap<String, String> = BUILTIN
        .iter()
        .map(|(e, t)| ((*e).to_owned(), (*t).to_owned()))
        .collect();
    for path in GLOBS {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 3 || fields[0].is_empty() || fields[2].len() < 3 {
                continue;
            }
            if fields[0].starts_with('#') || !fields[2].starts_with("*.") {
                continue;
            }
            let ext = &fields[2][1..];
            if ext.contains(['?', '*', '[']) || map.contains_key(ext) {
                continue;
            }
            map.insert(ext.to_owned(), with_charset(fields[1]));
        }
        break;
    }
    let from_globs = map.len() > BUILTIN.len();
    for path in TYPE_FILES {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let Some(t) = fields.next().filter(|t| !t.starts_with('#')) else {
                continue;
            };
            for ext in fields {
                if ext.starts_with('#') {
                    break;
                }
                let key = format!(".{ext}");
                if !from_globs || !map.contains_key(&key) {
                    map.insert(key, with_charset(t));
                }
            }
        }
    }
    map
}

/// The MIME type for a file extension including its dot (`.txt`), or `None`.
pub fn type_by_extension(ext: &str) -> Option<&'static str> {
    static TABLE: OnceLock<HashMap<String, String>> = OnceLock::new();
    let table = TABLE.get_or_init(load);
    table
        .get(ext)
        .or_else(|| table.get(&ext.to_lowercase()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::type_by_extension;

    #[test]
    fn builtins_and_system() {
        assert_eq!(type_by_extension(".css"), Some("text/css; charset=utf-8"));
        assert_eq!(type_by_extension(".PNG"), Some("image/png"));
        assert_eq!(type_by_extension(".nope-nope"), None);
        if std::path::Path::new("/etc/mime.types").exists() {
            assert_eq!(type_by_extension(".bin"), Some("application/octet-stream"));
        }
    }
}
