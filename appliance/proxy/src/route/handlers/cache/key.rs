//! Cache keys: the plugin's key (`GET-http-example.com-/path?query` plus configured header
//! values, or a template), prefixed by the deployment and experiment the request belongs to,
//! and the `Vary` secondary key that picks one stored variant.

use regex::Regex;
use serde_json::Value;

use crate::http1::header::canonical_key;
use crate::http1::HeaderMap;
use crate::route::ctx::Ctx;
use crate::route::placeholder::replace_all;
use crate::route::{err, str_list, Result};

/// One `key { ... }` block (souin's `Key`).
#[derive(Debug, Clone, Default)]
pub struct KeyRule {
    disable_host: bool,
    disable_method: bool,
    disable_query: bool,
    disable_scheme: bool,
    pub disable_vary: bool,
    hash: bool,
    hide: bool,
    headers: Vec<String>,
    template: Option<String>,
}

impl KeyRule {
    pub fn compile(v: Option<&Value>) -> Result<KeyRule> {
        let m = match v {
            None | Some(Value::Null) => return Ok(KeyRule::default()),
            Some(Value::Object(m)) => m,
            Some(_) => return err("cache key: expected a JSON object"),
        };
        let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
        Ok(KeyRule {
            disable_host: flag("disable_host"),
            disable_method: flag("disable_method"),
            disable_query: flag("disable_query"),
            disable_scheme: flag("disable_scheme"),
            disable_vary: flag("disable_vary"),
            hash: flag("hash"),
            hide: flag("hide"),
            headers: str_list(m.get("headers"), "cache key headers")?,
            template: m
                .get("template")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        })
    }
}

/// The default key rule and the `cache_keys` overrides (regexp on the request URI).
#[derive(Debug, Default)]
pub struct KeyRules {
    pub default: KeyRule,
    overrides: Vec<(Regex, KeyRule)>,
}

impl KeyRules {
    pub fn compile(key: Option<&Value>, cache_keys: Option<&Value>) -> Result<KeyRules> {
        let mut overrides = Vec::new();
        if let Some(Value::Object(m)) = cache_keys {
            for (pattern, rule) in m {
                let re = Regex::new(pattern)
                    .or_else(|e| err(format!("cache_keys: invalid regexp {pattern:?}: {e}")))?;
                overrides.push((re, KeyRule::compile(Some(rule))?));
            }
        }
        Ok(KeyRules {
            default: KeyRule::compile(key)?,
            overrides,
        })
    }

    /// The rule for this request: the first override whose regexp matches its URI.
    pub fn pick(&self, request_uri: &str) -> &KeyRule {
        self.overrides
            .iter()
            .find(|(re, _)| re.is_match(request_uri))
            .map_or(&self.default, |(_, r)| r)
    }
}

/// Where the experiment arm of a request is read from (appliance config `cache`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ExperimentSource {
    #[default]
    None,
    Header(String),
    Cookie(String),
}

/// A request's keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The plugin's key, shown in `Cache-Status` (empty with `hide`).
    pub shown: String,
    /// The store's primary key: deployment, experiment, then the plugin's key.
    pub primary: String,
    pub deploy: String,
    pub disable_vary: bool,
}

/// Computes the keys of the request in `ctx`.
pub fn compute(rules: &KeyRules, deploy: &str, experiment: &ExperimentSource, ctx: &Ctx) -> Key {
    let uri = ctx.uri.request_uri();
    let rule = rules.pick(&uri);
    let plugin = match &rule.template {
        Some(t) => replace_all(t, ctx),
        None => {
            let mut k = String::with_capacity(64 + uri.len());
            if !rule.disable_method {
                k.push_str(&ctx.method);
                k.push('-');
            }
            if !rule.disable_scheme {
                k.push_str("http-");
            }
            if !rule.disable_host {
                k.push_str(&ctx.host);
                k.push('-');
            }
            k.push_str(&ctx.uri.path);
            if !rule.disable_query && !ctx.uri.query.is_empty() {
                k.push('?');
                k.push_str(&ctx.uri.query);
            }
            for h in &rule.headers {
                k.push('-');
                k.push_str(ctx.headers.get(h));
            }
            k
        }
    };
    let plugin = if rule.hash {
        xxhash_rust::xxh64::xxh64(plugin.as_bytes(), 0).to_string()
    } else {
        plugin
    };
    let arm = experiment_of(experiment, &ctx.headers);
    Key {
        primary: format!("{deploy}\u{0}{arm}\u{0}{plugin}"),
        shown: if rule.hide { String::new() } else { plugin },
        deploy: deploy.to_owned(),
        disable_vary: rule.disable_vary,
    }
}

/// The experiment arm the request belongs to ("" without one).
pub fn experiment_of(source: &ExperimentSource, headers: &HeaderMap) -> String {
    match source {
        ExperimentSource::None => String::new(),
        ExperimentSource::Header(h) => headers.get(h).to_owned(),
        ExperimentSource::Cookie(name) => cookie(headers, name).unwrap_or_default(),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .raw("Cookie")?
        .iter()
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// The header names a response varies on (`Vary`, canonical), or `None` for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for v in headers.raw("Vary").unwrap_or(&[]) {
        for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            let name = canonical_key(name);
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Some(names)
}

/// The request's values for `names`: the secondary key of one variant (RFC 9111 4.1,
/// values compared after joining field lines and trimming).
pub fn vary_values(names: &[String], headers: &HeaderMap) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            headers
                .raw(n)
                .map(|v| v.iter().map(|s| s.trim()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, ParserConfig, Status};

    fn with_ctx<R>(req: &str, f: impl FnOnce(&Ctx) -> R) -> R {
        let Ok(Status::Complete(head, _)) = parse_request(req.as_bytes(), &ParserConfig::default())
        else {
            panic!("bad request")
        };
        let ctx = Ctx::new(&head, None, None);
        f(&ctx)
    }

    const REQ: &str = "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Arm: blue\r\nCookie: a=1; exp=\"green\"\r\nAccept-Encoding: gzip\r\n\r\n";

    #[test]
    fn plugin_shape() {
        let rules = KeyRules::default();
        let k = with_ctx(REQ, |c| compute(&rules, "d1", &ExperimentSource::None, c));
        assert_eq!(k.shown, "GET-http-example.com-/a/b?x=1");
        assert_eq!(k.primary, "d1\u{0}\u{0}GET-http-example.com-/a/b?x=1");
    }

    #[test]
    fn versions_and_rules() {
        let key: Value = serde_json::from_str(
            r#"{"disable_query":true,"disable_scheme":true,"headers":["X-Arm"]}"#,
        )
        .unwrap();
        let over: Value =
            serde_json::from_str(r#"{"/a/.*":{"hide":true,"disable_method":true}}"#).unwrap();
        let rules = KeyRules::compile(Some(&key), None).unwrap();
        let k = with_ctx(REQ, |c| {
            compute(&rules, "d2", &ExperimentSource::Header("X-Arm".into()), c)
        });
        assert_eq!(k.shown, "GET-example.com-/a/b-blue");
        assert_eq!(k.primary, "d2\u{0}blue\u{0}GET-example.com-/a/b-blue");
        let rules = KeyRules::compile(Some(&key), Some(&over)).unwrap();
        let k = with_ctx(REQ, |c| {
            compute(&rules, "d2", &ExperimentSource::Cookie("exp".into()), c)
        });
        assert_eq!(k.shown, "");
        assert_eq!(k.primary, "d2\u{0}green\u{0}http-example.com-/a/b?x=1");
    }

    #[test]
    fn vary() {
        let mut h = HeaderMap::default();
        h.add("Vary", "accept-encoding, X-Arm");
        h.add("Vary", "Accept-Encoding");
        let names = vary_names(&h).unwrap();
        assert_eq!(names, ["Accept-Encoding", "X-Arm"]);
        let values = with_ctx(REQ, |c| vary_values(&names, &c.headers));
        assert_eq!(values, ["gzip", "blue"]);
        h.add("Vary", "*");
        assert_eq!(vary_names(&h), None);
    }
}
