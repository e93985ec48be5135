//! `http.matchers.file` (`file` and `try_files`): the first candidate (by `try_policy`) that
//! exists under `root`, where a candidate ending in `/` must be a directory and any other
//! must not. A match sets `{http.matchers.file.relative|absolute|type|remainder}`; an entry
//! `=NNN` fails the request with that status. `split_path` cuts a candidate after the first
//! listed (case-insensitive) suffix that ends a path segment, leaving the rest as remainder.

use std::fs;

use serde_json::Value;

use super::super::ctx::{Ctx, HandlerError};
use super::super::handlers::file_server::sanitized_join;
use super::super::placeholder::{replace_all, replace_all_or};
use super::super::{err, str_list, Result};
use super::path::clean;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    FirstExist,
    LargestSize,
    SmallestSize,
    MostRecent,
}

#[derive(Debug)]
pub struct MatchFile {
    root: String,
    try_files: Vec<String>,
    policy: Policy,
    split_path: Vec<String>,
}

struct Candidate {
    rel: String,
    abs: String,
    remainder: String,
    meta: fs::Metadata,
}

impl MatchFile {
    pub fn compile(v: &Value) -> Result<MatchFile> {
        let policy = match v.get("try_policy").and_then(Value::as_str).unwrap_or("") {
            "" | "first_exist" => Policy::FirstExist,
            "largest_size" => Policy::LargestSize,
            "smallest_size" => Policy::SmallestSize,
            "most_recently_modified" => Policy::MostRecent,
            other => return err(format!("unknown try policy {other}")),
        };
        let mut try_files = str_list(v.get("try_files"), "try_files")?;
        if v.get("try_files").is_none() {
            try_files.push("{http.request.uri.path}".into());
        }
        Ok(MatchFile {
            root: v
                .get("root")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .unwrap_or("{http.vars.root}")
                .to_owned(),
            try_files,
            policy,
            split_path: str_list(v.get("split_path"), "split_path")?,
        })
    }

    /// Caddy's `firstSplit`: only the first occurrence of each split value is considered,
    /// and it counts only if it ends the path or a segment.
    fn split(&self, path: &str) -> (String, String) {
        let lower = path.to_lowercase();
        for s in &self.split_path {
            let needle = s.to_lowercase();
            let Some(i) = lower
                .find(&needle)
                .filter(|i| i + needle.len() < path.len())
            else {
                continue;
            };
            let pos = i + needle.len();
            if path[pos..].starts_with('/') {
                return (path[..pos].to_owned(), path[pos..].to_owned());
            }
        }
        (path.to_owned(), String::new())
    }

    fn candidate(&self, file: &str, root: &str, ctx: &Ctx<'_, '_>) -> Option<Candidate> {
        let (mut rel, remainder) = self.split(&clean(&replace_all(file, ctx)));
        if file.ends_with('/') {
            rel.push('/');
        }
        let abs = sanitized_join(root, &rel);
        let meta = fs::metadata(&abs).ok()?;
        Some(Candidate {
            rel,
            abs,
            remainder,
            meta,
        })
    }

    pub fn matches(&self, ctx: &mut Ctx<'_, '_>) -> bool {
        let root = replace_all_or(&self.root, &*ctx, ".");
        let mut best: Option<Candidate> = None;
        for f in &self.try_files {
            if let Some(code) = f.strip_prefix('=').and_then(|c| c.parse::<u16>().ok()) {
                if (100..=999).contains(&code) {
                    ctx.matcher_error = Some(HandlerError {
                        status: code,
                        message: code.to_string(),
                    });
                    return false;
                }
            }
            let Some(c) = self.candidate(f, &root, ctx) else {
                continue;
            };
            let strict = if c.abs.ends_with('/') {
                c.meta.is_dir()
            } else {
                !c.meta.is_dir()
            };
            let better = match (self.policy, &best) {
                (Policy::FirstExist, _) => strict,
                (_, None) => true,
                (Policy::LargestSize, Some(b)) => c.meta.len() > b.meta.len(),
                (Policy::SmallestSize, Some(b)) => c.meta.len() < b.meta.len(),
                (Policy::MostRecent, Some(b)) => c.meta.modified().ok() > b.meta.modified().ok(),
            };
            if better {
                best = Some(c);
                if self.policy == Policy::FirstExist {
                    break;
                }
            }
        }
        let Some(c) = best else { return false };
        let kind = if c.meta.is_dir() { "directory" } else { "file" };
        ctx.set_capture("http.matchers.file.relative".into(), c.rel);
        ctx.set_capture("http.matchers.file.absolute".into(), c.abs);
        ctx.set_capture("http.matchers.file.remainder".into(), c.remainder);
        ctx.set_capture("http.matchers.file.type".into(), kind.into());
        true
    }
}
