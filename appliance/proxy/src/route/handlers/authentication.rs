//! `http.handlers.authentication` with the `http_basic` provider (`basic_auth`).
//!
//! Flow: credentials come from `Authorization: Basic` (scheme case-insensitive, standard
//! base64, split at the first colon); the password is checked against the account's bcrypt
//! hash, and an unknown user is checked against another account's hash (result discarded)
//! so timing does not reveal which users exist. Failure sets `WWW-Authenticate: Basic realm="..."`
//! (default realm `restricted`) and fails the request with 401; success sets
//! `{http.auth.user.id}` and continues. Errors: only bcrypt hashes are accepted.
//! Performance: one bcrypt verification per request, as in Caddy without its hash cache (the
//! routes' replays after a `reverse_proxy` round trip reuse the verdict).

use base64::Engine as _;
use serde_json::{Map, Value};

use super::super::ctx::{Ctx, HandlerError};
use super::super::{err, Result};

#[derive(Debug)]
pub struct Authentication {
    accounts: Vec<(String, String)>,
    realm: String,
    fake_hash: String,
}

impl Authentication {
    pub fn compile(m: &Map<String, Value>) -> Result<Authentication> {
        let Some(basic) = m.get("providers").and_then(|p| p.get("http_basic")) else {
            return err("authentication: only the http_basic provider is supported by the engine");
        };
        let algorithm = basic
            .get("hash")
            .and_then(|h| h.get("algorithm"))
            .and_then(Value::as_str)
            .unwrap_or("bcrypt");
        if algorithm != "bcrypt" {
            return err(format!("unrecognized hash algorithm: {algorithm}"));
        }
        let mut accounts = Vec::new();
        for a in basic
            .get("accounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let user = a.get("username").and_then(Value::as_str).unwrap_or("");
            let hash = a.get("password").and_then(Value::as_str).unwrap_or("");
            if user.is_empty() || hash.is_empty() {
                return err("account missing username or password");
            }
            accounts.push((user.to_owned(), hash.to_owned()));
        }
        // Unknown users are checked against the first account's hash: same cost, and the
        // result is discarded, so timing does not reveal which users exist.
        let fake_hash = accounts.first().map(|(_, h)| h.clone()).unwrap_or_default();
        Ok(Authentication {
            accounts,
            realm: basic
                .get("realm")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .unwrap_or("restricted")
                .to_owned(),
            fake_hash,
        })
    }

    fn credentials(header: &str) -> Option<(String, String)> {
        let prefix = header.get(..6)?;
        if !prefix.eq_ignore_ascii_case("Basic ") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&header[6..])
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_owned(), p.to_owned()))
    }

    /// `Ok` continues the chain; `Err` is the 401 to raise.
    pub fn run(&self, ctx: &mut Ctx<'_, '_>) -> std::result::Result<(), HandlerError> {
        let authed = Self::credentials(ctx.headers.get("Authorization")).and_then(|(u, p)| {
            let account = self.accounts.iter().find(|(name, _)| *name == u);
            let known = ctx.checked.iter().find(|(cu, cp, _)| *cu == u && *cp == p);
            let ok = match known {
                Some((_, _, ok)) => *ok,
                None => {
                    let hash = account.map_or(self.fake_hash.as_str(), |(_, h)| h.as_str());
                    let ok = bcrypt::verify(&p, hash).unwrap_or(false);
                    ctx.checked.push((u.clone(), p, ok));
                    ok
                }
            };
            (ok && account.is_some()).then_some(u)
        });
        match authed {
            Some(user) => {
                ctx.set_capture("http.auth.user.id".into(), user);
                Ok(())
            }
            None => {
                ctx.resp.headers.set(
                    "WWW-Authenticate",
                    &format!("Basic realm=\"{}\"", self.realm),
                );
                Err(HandlerError {
                    status: 401,
                    message: "not authenticated".into(),
                })
            }
        }
    }
}
