//! `http.matchers.query`: every configured key must be present with one of its values (`*`
//! accepts any); an empty matcher matches only a request without query parameters; a query
//! string Go cannot parse (bad escape, `;` in a key) matches nothing.

use serde_json::Value;

use super::super::ctx::{parse_query, Ctx};
use super::super::placeholder::replace_all;
use super::super::{err, str_list, Result};

#[derive(Debug)]
pub struct MatchQuery(Vec<(String, Vec<String>)>);

impl MatchQuery {
    pub fn compile(v: &Value) -> Result<MatchQuery> {
        let Value::Object(m) = v else {
            return err("query: expected an object");
        };
        m.iter()
            .map(|(k, v)| Ok((k.clone(), str_list(Some(v), "query")?)))
            .collect::<Result<_>>()
            .map(MatchQuery)
    }

    pub fn matches(&self, ctx: &Ctx<'_, '_>) -> bool {
        if self.0.is_empty() {
            return parse_query(&ctx.uri.query).unwrap_or_else(|p| p).is_empty();
        }
        let Ok(parsed) = parse_query(&ctx.uri.query) else {
            return false;
        };
        self.0.iter().all(|(key, vals)| {
            let key = replace_all(key, ctx);
            let present: Vec<&str> = parsed
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            !present.is_empty()
                && vals.iter().any(|v| {
                    let v = replace_all(v, ctx);
                    v == "*" || present.contains(&v.as_str())
                })
        })
    }
}
