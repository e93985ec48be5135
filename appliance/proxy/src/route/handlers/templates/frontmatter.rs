//! Caddy's `splitFrontMatter`: YAML (`---`), TOML (`+++`) or JSON (`{`) front matter split from
//! the body. The YAML and TOML readers take the flat documents front matter usually is: keys
//! with scalar values (strings, quoted or not, integers, floats, booleans, null) and lists of
//! scalars (`[a, b]`, or YAML `- item` lines); anything else is an error. JSON is full JSON,
//! its numbers floats as Go's decoder makes them.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::value::Val;

/// (opening fence, closing fences, format)
const FENCES: &[(&str, &[&str], Format)] = &[
    ("---", &["---", "..."], Format::Yaml),
    ("+++", &["+++"], Format::Toml),
    ("{", &["}"], Format::Json),
];

#[derive(Clone, Copy)]
enum Format {
    Yaml,
    Toml,
    Json,
}

/// The front matter's keys and the body after it.
pub fn split(input: &str) -> Result<(BTreeMap<String, Val>, String), String> {
    let first_end = input.find('\n');
    let first = first_end.map_or(input, |i| &input[..i]);
    let Some((_, closing, format)) = FENCES.iter().find(|(open, _, _)| *open == first) else {
        return Ok((BTreeMap::new(), input.to_owned()));
    };
    let first_end = first_end.unwrap_or(input.len());
    let rest = &input[first_end..];
    let Some((start, fence)) = closing
        .iter()
        .find_map(|f| rest.find(&format!("\n{f}")).map(|i| (i, *f)))
    else {
        return Err("unterminated front matter".into());
    };
    let end = first_end + start + 1;
    let matter = &input[first_end..end];
    let meta = match format {
        Format::Yaml => scalars(matter, ':')?,
        Format::Toml => scalars(matter, '=')?,
        Format::Json => json(matter)?,
    };
    Ok((meta, input[end + fence.len()..].to_owned()))
}

fn json(matter: &str) -> Result<BTreeMap<String, Val>, String> {
    let v: serde_json::Value =
        serde_json::from_str(&format!("{{{matter}}}")).map_err(|e| e.to_string())?;
    match from_json(&v) {
        Val::Map(m) => Ok((*m).clone()),
        _ => Err("front matter is not an object".into()),
    }
}

fn from_json(v: &serde_json::Value) -> Val {
    use serde_json::Value as J;
    match v {
        J::Null => Val::Nil,
        J::Bool(b) => Val::Bool(*b),
        J::Number(n) => Val::Float(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Val::from(s.as_str()),
        J::Array(a) => Val::list(a.iter().map(from_json).collect()),
        J::Object(o) => Val::Map(Rc::new(
            o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect(),
        )),
    }
}

/// A scalar as YAML (and, for the forms they share, TOML) reads it.
fn scalar(raw: &str) -> Result<Val, String> {
    let s = raw.trim();
    if let Some(q) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Ok(Val::from(q.replace("\\\"", "\"").replace("\\\\", "\\")));
    }
    if let Some(q) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Ok(Val::from(q.replace("''", "'")));
    }
    if let Some(items) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if items.trim().is_empty() {
            return Ok(Val::list(Vec::new()));
        }
        return items
            .split(',')
            .map(scalar)
            .collect::<Result<_, _>>()
            .map(Val::list);
    }
    if s.starts_with(['{', '&', '*', '|', '>', '!']) {
        return Err(format!("unsupported front matter value: {s}"));
    }
    Ok(match s {
        "" | "~" | "null" | "Null" | "NULL" => Val::Nil,
        "true" | "True" | "TRUE" => Val::Bool(true),
        "false" | "False" | "FALSE" => Val::Bool(false),
        _ => {
            if let Ok(i) = s.replace('_', "").parse::<i64>() {
                Val::Int(i)
            } else if let Some(f) = s
                .parse::<f64>()
                .ok()
                .filter(|_| s.contains(['.', 'e', 'E']))
            {
                Val::Float(f)
            } else {
                Val::from(s)
            }
        }
    })
}

/// `key<sep> value` lines; YAML's `- item` lines under an empty key make a list.
fn scalars(matter: &str, sep: char) -> Result<BTreeMap<String, Val>, String> {
    let mut out = BTreeMap::new();
    let mut list_key: Option<(String, Vec<Val>)> = None;
    for line in matter.lines() {
        let content = strip_comment(line);
        if content.trim().is_empty() {
            continue;
        }
        if sep == ':' {
            if let Some(item) = content.trim_start().strip_prefix("- ") {
                let Some((_, items)) = list_key.as_mut() else {
                    return Err(format!("unsupported front matter line: {line}"));
                };
                items.push(scalar(item)?);
                continue;
            }
        }
        if line.starts_with([' ', '\t']) {
            return Err(format!("unsupported front matter line: {line}"));
        }
        if let Some((k, items)) = list_key.take() {
            out.insert(k, list_or_null(items));
        }
        let Some((k, v)) = content.split_once(sep) else {
            return Err(format!("unsupported front matter line: {line}"));
        };
        let key = k.trim().trim_matches('"').to_owned();
        if sep == ':' && v.trim().is_empty() {
            list_key = Some((key, Vec::new()));
            continue;
        }
        out.insert(key, scalar(v)?);
    }
    if let Some((k, items)) = list_key {
        out.insert(
            k,
            if items.is_empty() {
                Val::Nil
            } else {
                Val::list(items)
            },
        );
    }
    Ok(out)
}

/// A key with no value is null; with `- item` lines under it, a list.
fn list_or_null(items: Vec<Val>) -> Val {
    if items.is_empty() {
        Val::Nil
    } else {
        Val::list(items)
    }
}

/// A line without its `#` comment (outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if i == 0 || line[..i].ends_with([' ', '\t']) => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_toml_json() {
        let (m, body) =
            split("---\ntitle: Hello\ncount: 3\ntags:\n  - a\n  - b\n---\nBody\n").unwrap();
        assert_eq!(body, "\nBody\n");
        assert_eq!(
            Val::Map(Rc::new(m)).to_text(),
            "map[count:3 tags:[a b] title:Hello]"
        );
        let (m, _) = split("+++\ntitle = \"T\"\ndraft = true\n+++\nx").unwrap();
        assert_eq!(Val::Map(Rc::new(m)).to_text(), "map[draft:true title:T]");
        let (m, body) = split("{\n\"n\": 2\n}\nrest").unwrap();
        assert_eq!(
            (Val::Map(Rc::new(m)).to_text(), body.as_str()),
            ("map[n:2]".into(), "\nrest")
        );
        assert_eq!(split("no front matter").unwrap().1, "no front matter");
        assert!(split("---\na: 1\n").is_err());
    }
}
