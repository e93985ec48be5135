//! `http.matchers.file` (`file` and `try_files`): the first candidate (by `try_policy`) that
//! exists under `root`, where a candidate ending in `/` must be a directory and any other
//! must not (`first_exist_fallback` takes the last entry unchecked). A match sets `{http.matchers.file.relative|absolute|type|remainder}`; an entry
//! `=NNN` fails the request with that status. `split_path` cuts a candidate after the first
//! listed (case-insensitive) suffix that ends a path segment, leaving the rest as remainder.

use std::fs;

use serde_json::Value;

use super::super::ctx::{Ctx, HandlerError};
use super::super::handlers::file_server::sanitized_join;
use super::super::placeholder::{replace_all, replace_all_or};
use super::super::{err, root_field, str_list, Result};
use super::path::clean;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    FirstExist,
    /// Like `FirstExist`, but the last entry is taken without looking at the disk.
    FirstExistFallback,
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
    /// `None` for an unchecked fallback.
    meta: Option<fs::Metadata>,
}

impl MatchFile {
    pub fn compile(v: &Value) -> Result<MatchFile> {
        let policy = match v.get("try_policy").and_then(Value::as_str).unwrap_or("") {
            "" | "first_exist" => Policy::FirstExist,
            "first_exist_fallback" => Policy::FirstExistFallback,
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
            root: root_field(v.get("root")),
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

    fn candidate(
        &self,
        file: &str,
        root: &str,
        ctx: &Ctx<'_, '_>,
        stat: bool,
    ) -> Option<Candidate> {
        let (mut rel, remainder) = self.split(&clean(&replace_all(file, ctx)));
        if file.ends_with('/') {
            rel.push('/');
        }
        let abs = sanitized_join(root, &rel);
        let meta = if stat {
            Some(fs::metadata(&abs).ok()?)
        } else {
            None
        };
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
        let last = self.try_files.len().saturating_sub(1);
        for (i, f) in self.try_files.iter().enumerate() {
            if let Some(code) = f.strip_prefix('=').and_then(|c| c.parse::<u16>().ok()) {
                if (100..=999).contains(&code) {
                    ctx.matcher_error = Some(HandlerError {
                        status: code,
                        message: code.to_string(),
                    });
                    return false;
                }
            }
            let fallback = self.policy == Policy::FirstExistFallback && i == last;
            let Some(c) = self.candidate(f, &root, ctx, !fallback) else {
                continue;
            };
            let Some(meta) = &c.meta else {
                best = Some(c);
                break;
            };
            let strict = if c.abs.ends_with('/') {
                meta.is_dir()
            } else {
                !meta.is_dir()
            };
            let size = |c: &Candidate| c.meta.as_ref().map_or(0, fs::Metadata::len);
            let modified = |c: &Candidate| c.meta.as_ref().and_then(|m| m.modified().ok());
            let better = match (self.policy, &best) {
                (Policy::FirstExist | Policy::FirstExistFallback, _) => strict,
                (_, None) => true,
                (Policy::LargestSize, Some(b)) => size(&c) > size(b),
                (Policy::SmallestSize, Some(b)) => size(&c) < size(b),
                (Policy::MostRecent, Some(b)) => modified(&c) > modified(b),
            };
            if better {
                let first = matches!(self.policy, Policy::FirstExist | Policy::FirstExistFallback);
                best = Some(c);
                if first {
                    break;
                }
            }
        }
        let Some(c) = best else { return false };
        let kind = if c.meta.as_ref().is_some_and(fs::Metadata::is_dir) {
            "directory"
        } else {
            "file"
        };
        ctx.set_capture("http.matchers.file.relative".into(), c.rel);
        ctx.set_capture("http.matchers.file.absolute".into(), c.abs);
        ctx.set_capture("http.matchers.file.remainder".into(), c.remainder);
        ctx.set_capture("http.matchers.file.type".into(), kind.into());
        true
    }
}
