//! `http.handlers.map`: lazily computed placeholders. Each destination (`{name}`) resolves,
//! when first used, to the output of the first mapping whose `input` equals the expanded
//! `source` (or whose `input_regexp` matches it, with `$1`-style expansion), else to the
//! default; a `null` output skips that mapping.

use regex::Regex;
use serde_json::{Map, Value};

use super::super::ctx::value_string;
use super::super::placeholder::{replace_all, Lookup};
use super::super::{err, str_list, CompileError, Result};

#[derive(Debug)]
struct Mapping {
    input: String,
    re: Option<Regex>,
    outputs: Vec<Value>,
}

#[derive(Debug)]
pub struct MapHandler {
    source: String,
    destinations: Vec<String>,
    mappings: Vec<Mapping>,
    defaults: Vec<String>,
}

impl MapHandler {
    pub fn compile(m: &Map<String, Value>) -> Result<MapHandler> {
        let mut destinations = Vec::new();
        for d in str_list(m.get("destinations"), "destinations")? {
            if d.matches('{').count() != 1 || !d.starts_with('{') {
                return err("destination must be a placeholder and only a placeholder");
            }
            destinations.push(d.trim_matches(['{', '}']).to_owned());
        }
        let mut mappings = Vec::new();
        for (i, mp) in m
            .get("mappings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let input = mp
                .get("input")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let re =
                match mp.get("input_regexp").and_then(Value::as_str) {
                    Some(r) if !r.is_empty() => Some(super::super::regex(r).map_err(|e| {
                        CompileError(format!("compiling regexp for mapping {i}: {e}"))
                    })?),
                    _ => None,
                };
            let outputs: Vec<Value> = mp
                .get("outputs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if outputs.len() != destinations.len() {
                return err(format!(
                    "mapping {i} has {} outputs but there are {} destinations defined",
                    outputs.len(),
                    destinations.len()
                ));
            }
            mappings.push(Mapping { input, re, outputs });
        }
        Ok(MapHandler {
            source: m
                .get("source")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            destinations,
            mappings,
            defaults: str_list(m.get("defaults"), "defaults")?,
        })
    }

    /// The value of destination `key`, if it is one of ours.
    pub fn lookup(&self, key: &str, l: &impl Lookup) -> Option<String> {
        let idx = self.destinations.iter().position(|d| d == key)?;
        let input = replace_all(&self.source, l);
        for m in &self.mappings {
            let out = &m.outputs[idx];
            if out.is_null() {
                continue;
            }
            let out = value_string(out);
            if let Some(re) = &m.re {
                if let Some(caps) = re.captures(&input) {
                    let mut dst = String::new();
                    caps.expand(&out, &mut dst);
                    return Some(dst);
                }
                continue;
            }
            if input == m.input {
                return Some(replace_all(&out, l));
            }
        }
        Some(
            self.defaults
                .get(idx)
                .map_or(String::new(), |d| replace_all(d, l)),
        )
    }
}
